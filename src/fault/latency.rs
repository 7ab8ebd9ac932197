//! The `latency` fault: delay each chunk of a payload stream by a fixed time plus seeded jitter.

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use tokio::time::Instant;

use super::plan::{place_mark, Mark, RuleId, Step};
use super::scope::Scope;
use super::StreamFault;
use crate::units::Span;

/// `fault.latency = { delay = "250ms", jitter = "50ms" }`: a one-way delay measured from each
/// chunk's arrival, so it adds latency without throttling throughput (it is not cumulative).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Fixed part of the delay.
    pub delay: Span,
    /// Upper bound of a uniform random extra delay, drawn per chunk from the seeded stream.
    pub jitter: Option<Span>,
}

/// Per-direction state of a latency fault.
#[derive(Debug)]
pub struct Delaying {
    delay: Duration,
    jitter: Duration,
    rng: ChaCha8Rng,
    last: Option<Instant>,
    mark: Option<Mark>,
}

/// The capture comment: the jitter is named only when there is one.
fn note(delay: Duration, jitter: Duration, scope: &Scope) -> String {
    if jitter.is_zero() {
        format!("latency {delay:?} on {}", scope.subject())
    } else {
        format!(
            "latency {delay:?} (+ jitter up to {jitter:?}) on {}",
            scope.subject()
        )
    }
}

impl Delaying {
    /// Starts delaying for rule `rule` on `direction`, with its own random stream.
    pub fn new(params: &Latency, rule: &RuleId, scope: &Scope, rng: ChaCha8Rng) -> Self {
        let jitter = params.jitter.map(|j| j.0).unwrap_or_default();
        Delaying {
            delay: params.delay.0,
            jitter,
            rng,
            last: None,
            mark: Some(Mark::rule(rule, note(params.delay.0, jitter, scope))),
        }
    }

    fn sample(&mut self) -> Duration {
        if self.jitter.is_zero() {
            self.delay
        } else {
            let extra = self.rng.gen_range(0..=self.jitter.as_nanos() as u64);
            self.delay + Duration::from_nanos(extra)
        }
    }
}

/// Bytes a latency may hold in flight: a delay line of depth D carries at most D per latency
/// period, and the pump's 4 MiB let a 1 s latency carry 4 MiB/s (a Toxiproxy trial's 50 MB took
/// 13 s). Toxiproxy's latency toxic buffers 1024 chunks of up to 32 KiB; so does this.
pub const LATENCY_QUEUE: usize = 32 * 1024 * 1024;

impl StreamFault for Delaying {
    fn queue_limit(&self) -> Option<usize> {
        Some(LATENCY_QUEUE)
    }

    fn apply(&mut self, mut steps: Vec<Step>, arrival: Instant) -> Vec<Step> {
        let deadline = arrival + self.sample();
        for step in &mut steps {
            let Some(not_before) = step.not_before_mut() else {
                continue;
            };
            let mut at = (*not_before).max(deadline);
            if let Some(last) = self.last {
                at = at.max(last);
            }
            self.last = Some(at);
            *not_before = at;
        }
        place_mark(&mut steps, &mut self.mark);
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::seed::{stream, Purpose};

    fn latency(delay_ms: u64, jitter_ms: Option<u64>) -> Latency {
        Latency {
            delay: Span(Duration::from_millis(delay_ms)),
            jitter: jitter_ms.map(|j| Span(Duration::from_millis(j))),
        }
    }

    fn not_before(steps: &[Step]) -> Vec<Instant> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Send { not_before, .. } => Some(*not_before),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_capture_comment_names_jitter_only_when_there_is_one() {
        let scope = Scope::direction(Direction::UpstreamToClient);
        let plain = note(Duration::from_millis(200), Duration::ZERO, &scope);
        assert!(plain.starts_with("latency 200ms on "), "{plain}");
        assert!(!plain.contains("jitter"), "{plain}");
        let jittered = note(
            Duration::from_millis(200),
            Duration::from_millis(50),
            &scope,
        );
        assert!(jittered.contains("(+ jitter up to 50ms)"), "{jittered}");
    }

    #[test]
    fn each_chunk_is_delayed_from_its_own_arrival() {
        let t0 = Instant::now();
        let rng = stream(1, Purpose::FaultTiming, &[]);
        let mut fault = Delaying::new(
            &latency(100, None),
            &RuleId::new(0, "r"),
            &Scope::direction(Direction::UpstreamToClient),
            rng,
        );
        let a = fault.apply(vec![Step::send(10, t0)], t0);
        let t1 = t0 + Duration::from_millis(500);
        let b = fault.apply(vec![Step::send(10, t1)], t1);
        assert_eq!(not_before(&a), vec![t0 + Duration::from_millis(100)]);
        assert_eq!(not_before(&b), vec![t1 + Duration::from_millis(100)]);
        assert!(matches!(&a[0], Step::Send { mark: Some(_), .. }));
        assert!(matches!(&b[0], Step::Send { mark: None, .. }));
    }

    #[test]
    fn jitter_stays_in_bounds_and_never_reorders() {
        let t0 = Instant::now();
        let rng = stream(9, Purpose::FaultTiming, &[]);
        let mut fault = Delaying::new(
            &latency(10, Some(50)),
            &RuleId::new(0, "r"),
            &Scope::direction(Direction::ClientToUpstream),
            rng,
        );
        let mut previous = t0;
        for i in 0..200u64 {
            let arrival = t0 + Duration::from_millis(i);
            let plan = fault.apply(vec![Step::send(1, arrival)], arrival);
            let at = not_before(&plan)[0];
            assert!(at >= arrival + Duration::from_millis(10));
            assert!(at >= previous);
            assert!(at <= arrival + Duration::from_millis(60) || at == previous);
            previous = at;
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let t0 = Instant::now();
        let run = || {
            let rng = stream(42, Purpose::FaultTiming, &[3]);
            let mut fault = Delaying::new(
                &latency(0, Some(1000)),
                &RuleId::new(0, "r"),
                &Scope::direction(Direction::ClientToUpstream),
                rng,
            );
            (0..10)
                .map(|_| not_before(&fault.apply(vec![Step::send(1, t0)], t0))[0])
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
