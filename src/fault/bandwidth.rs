//! The `bandwidth` fault: pace a payload stream to a byte rate.

use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::plan::{place_mark, Mark, RuleId, Step};
use super::scope::Scope;
use super::{ReadAhead, StreamFault};
use crate::units::Rate;

/// `fault.bandwidth = { rate = "256KiB/s" }`: a slow link, for timeouts that only trigger on
/// large transfers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bandwidth {
    /// Bytes per second in the matched direction.
    pub rate: Rate,
}

/// Per-direction pacing state: when the link is next free.
#[derive(Debug)]
pub struct Pacing {
    rate: u64,
    quantum: usize,
    next_free: Option<Instant>,
    /// How long the faults before this one held the last chunk past its arrival (a latency
    /// rule earlier in the chain): that wait is theirs, not the link's backlog.
    lead: Duration,
    mark: Option<Mark>,
}

/// Pieces are sized to about 20 ms of transfer so pacing looks smooth to the receiver.
const PIECES_PER_SECOND: u64 = 50;
const MAX_PIECE: u64 = 256 * 1024;

/// How much transfer time the pump may hold read ahead of the link. Bytes read are planned at
/// once, on this rate's schedule; keeping that backlog this short (as Toxiproxy does, which
/// reads only as fast as it writes) lets a removed or changed limit reach the bytes still in
/// the sender's TCP window within this time instead of after megabytes queued at the old rate.
pub const LOOKAHEAD: Duration = Duration::from_millis(20);

impl Pacing {
    /// Starts pacing for rule `rule` on `direction`.
    pub fn new(params: &Bandwidth, rule: &RuleId, scope: &Scope) -> Self {
        let rate = params.rate.0.max(1);
        Pacing {
            rate,
            quantum: (rate / PIECES_PER_SECOND).clamp(1, MAX_PIECE) as usize,
            next_free: None,
            lead: Duration::ZERO,
            mark: Some(Mark::rule(
                rule,
                format!("bandwidth limited to {rate} bytes/s on {}", scope.subject()),
            )),
        }
    }

    fn transfer_time(&self, len: usize) -> Duration {
        Duration::from_nanos(((len as u128 * 1_000_000_000) / self.rate as u128) as u64)
    }

    /// The bytes the link carries in `time`, at least one.
    fn bytes_in(&self, time: Duration) -> usize {
        let bytes = (time.as_nanos() * self.rate as u128) / 1_000_000_000;
        usize::try_from(bytes).unwrap_or(usize::MAX).max(1)
    }
}

impl StreamFault for Pacing {
    fn apply(&mut self, steps: Vec<Step>, arrival: Instant) -> Vec<Step> {
        let mut out = Vec::with_capacity(steps.len());
        for step in steps {
            match step {
                Step::Send {
                    mut len,
                    not_before,
                    mut mark,
                    role,
                } => {
                    self.lead = not_before.saturating_duration_since(arrival);
                    while len > 0 {
                        let piece = len.min(self.quantum);
                        // An idle link does not bank credit: a pause is not followed by a burst.
                        let start = match self.next_free {
                            Some(free) => free.max(not_before),
                            None => not_before,
                        };
                        self.next_free = Some(start + self.transfer_time(piece));
                        out.push(Step::Send {
                            len: piece,
                            not_before: start,
                            mark: mark.take(),
                            role,
                        });
                        len -= piece;
                    }
                }
                // Bytes faultline made go out whole, in their turn on the link.
                Step::Insert {
                    bytes,
                    not_before,
                    mark,
                    role,
                } => {
                    let start = match self.next_free {
                        Some(free) => free.max(not_before),
                        None => not_before,
                    };
                    self.next_free = Some(start + self.transfer_time(bytes.len()));
                    out.push(Step::Insert {
                        bytes,
                        not_before: start,
                        mark,
                        role,
                    });
                }
                other => out.push(other),
            }
        }
        place_mark(&mut out, &mut self.mark);
        out
    }

    /// Reads while less than half of [`LOOKAHEAD`] is planned ahead of the link, up to what
    /// fills it; otherwise waits until the link has drained to that half.
    fn read_ahead(&self, now: Instant) -> ReadAhead {
        // A chunk read now reaches this fault `lead` later (the faults before it hold it).
        let reaches = now + self.lead;
        let backlog = self.next_free.map_or(Duration::ZERO, |free| {
            free.saturating_duration_since(reaches)
        });
        if backlog <= LOOKAHEAD / 2 {
            ReadAhead::UpTo(self.bytes_in(LOOKAHEAD - backlog))
        } else {
            ReadAhead::Wait(now + (backlog - LOOKAHEAD / 2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::fault::plan::sent_len;

    #[test]
    fn pieces_are_spaced_by_the_rate() {
        let t0 = Instant::now();
        let params = Bandwidth { rate: Rate(1000) };
        let mut pacing = Pacing::new(
            &params,
            &RuleId::new(0, "r"),
            &Scope::direction(Direction::UpstreamToClient),
        );
        let plan = pacing.apply(vec![Step::send(100, t0)], t0);
        assert_eq!(sent_len(&plan), 100);
        assert_eq!(plan.len(), 5, "1000 B/s in 20-byte pieces");
        let last = match plan.last() {
            Some(Step::Send { not_before, .. }) => *not_before,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(last - t0, Duration::from_millis(80));
        // The next chunk, arriving at once, waits for the link.
        let next = pacing.apply(vec![Step::send(20, t0)], t0);
        assert!(
            matches!(&next[0], Step::Send { not_before, .. } if *not_before - t0 == Duration::from_millis(100))
        );
    }

    #[test]
    fn the_pump_reads_only_a_short_time_ahead_of_the_link() {
        let t0 = Instant::now();
        let mut pacing = Pacing::new(
            &Bandwidth {
                rate: Rate(100_000),
            },
            &RuleId::new(0, "r"),
            &Scope::direction(Direction::UpstreamToClient),
        );
        // An idle link: 20 ms worth.
        assert_eq!(pacing.read_ahead(t0), ReadAhead::UpTo(2000));
        pacing.apply(vec![Step::send(2000, t0)], t0);
        // 20 ms planned: wait until only 10 ms are left, then top up to 20 ms again.
        assert_eq!(
            pacing.read_ahead(t0),
            ReadAhead::Wait(t0 + Duration::from_millis(10))
        );
        let later = t0 + Duration::from_millis(12);
        assert_eq!(pacing.read_ahead(later), ReadAhead::UpTo(1200));
    }

    #[test]
    fn a_delay_before_pacing_is_not_counted_as_backlog() {
        let t0 = Instant::now();
        let mut pacing = Pacing::new(
            &Bandwidth { rate: Rate(1000) },
            &RuleId::new(0, "r"),
            &Scope::direction(Direction::UpstreamToClient),
        );
        // A latency rule before this one holds the chunk 1 s: the link is not behind for that.
        let held = t0 + Duration::from_secs(1);
        pacing.apply(vec![Step::send(10, held)], t0);
        assert_eq!(pacing.read_ahead(t0), ReadAhead::UpTo(10));
    }

    #[test]
    fn an_idle_link_does_not_burst_afterwards() {
        let t0 = Instant::now();
        let mut pacing = Pacing::new(
            &Bandwidth { rate: Rate(1000) },
            &RuleId::new(0, "r"),
            &Scope::direction(Direction::UpstreamToClient),
        );
        pacing.apply(vec![Step::send(20, t0)], t0);
        let later = t0 + Duration::from_secs(10);
        let plan = pacing.apply(vec![Step::send(40, later)], later);
        let times: Vec<_> = plan
            .iter()
            .filter_map(|s| match s {
                Step::Send { not_before, .. } => Some(*not_before - later),
                _ => None,
            })
            .collect();
        assert_eq!(times, vec![Duration::ZERO, Duration::from_millis(20)]);
    }
}
