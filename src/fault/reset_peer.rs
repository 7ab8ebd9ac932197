//! The `reset_peer` fault: the first data of a direction makes the connection reset after a
//! delay, and nothing of it is relayed (Toxiproxy's `reset_peer`).

use serde::Deserialize;
use tokio::time::Instant;

use super::plan::{pause_until, EndHow, Mark, RuleId, Step};
use super::scope::Scope;
use super::StreamFault;
use crate::units::Span;

/// `fault.reset_peer = { timeout = "100ms" }`: when the first bytes (or the end) of the matched
/// direction arrive, they are dropped and both legs are reset (RST) `timeout` later; `"0ms"`
/// resets at once. A server that crashes on the request it reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPeer {
    /// Time between the first data and the reset.
    pub timeout: Span,
}

/// One pending reset on one payload stream.
#[derive(Debug)]
pub struct ResettingPeer {
    timeout: std::time::Duration,
    mark: Option<Mark>,
}

impl ResettingPeer {
    /// A reset for `rule` triggered by the first data of `scope`.
    pub fn new(params: &ResetPeer, rule: &RuleId, scope: &Scope) -> Self {
        ResettingPeer {
            timeout: params.timeout.0,
            mark: Some(Mark::rule(
                rule,
                match params.timeout.0.is_zero() {
                    true => format!("reset at once on the first data of {}", scope.subject()),
                    false => format!(
                        "reset {:?} after the first data of {}",
                        params.timeout.0,
                        scope.subject()
                    ),
                },
            )),
        }
    }

    fn trigger(&mut self, at: Instant) -> Vec<Step> {
        let Some(mark) = self.mark.take() else {
            return Vec::new();
        };
        let mut steps = Vec::with_capacity(2);
        if !self.timeout.is_zero() {
            steps.push(pause_until(at + self.timeout, None));
        }
        steps.push(Step::End {
            how: EndHow::Reset,
            mark,
        });
        steps
    }
}

impl StreamFault for ResettingPeer {
    fn apply(&mut self, steps: Vec<Step>, arrival: Instant) -> Vec<Step> {
        if self.mark.is_none() {
            return steps;
        }
        // What came with the trigger is dropped: the peer never sees it.
        let mut out: Vec<Step> = steps
            .into_iter()
            .filter_map(|step| match step {
                Step::Send { len, .. } => Some(Step::Skip { len }),
                Step::Skip { len } => Some(Step::Skip { len }),
                _ => None,
            })
            .collect();
        out.extend(self.trigger(arrival));
        out
    }

    fn at_end(&mut self, mut steps: Vec<Step>, at: Instant) -> Vec<Step> {
        steps.extend(self.trigger(at));
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::fault::plan::sent_len;
    use std::time::Duration;

    fn fault(ms: u64) -> ResettingPeer {
        ResettingPeer::new(
            &ResetPeer {
                timeout: Span(Duration::from_millis(ms)),
            },
            &RuleId::new(0, "r"),
            &Scope::direction(Direction::ClientToUpstream),
        )
    }

    #[test]
    fn the_first_chunk_is_dropped_and_the_reset_waits_for_the_timeout() {
        let now = Instant::now();
        let plan = fault(250).apply(vec![Step::send(10, now)], now);
        assert_eq!(sent_len(&plan), 0);
        match plan.as_slice() {
            [Step::Skip { len: 10 }, Step::Insert { not_before, .. }, Step::End {
                how: EndHow::Reset, ..
            }] => assert_eq!(*not_before, now + Duration::from_millis(250)),
            other => panic!("unexpected plan {other:?}"),
        }
    }

    /// A trial's summaries read "reset 0ns after the first data".
    #[test]
    fn the_note_says_at_once_for_a_zero_timeout() {
        let note = |ms| fault(ms).mark.map(|m| m.note).unwrap_or_default();
        assert_eq!(
            note(0),
            "reset at once on the first data of client->upstream"
        );
        assert!(note(250).starts_with("reset 250ms after"), "{}", note(250));
    }

    #[test]
    fn a_zero_timeout_resets_at_once_and_an_end_triggers_too() {
        let now = Instant::now();
        let plan = fault(0).apply(vec![Step::send(3, now)], now);
        assert!(matches!(
            plan.as_slice(),
            [Step::Skip { len: 3 }, Step::End { .. }]
        ));
        let mut idle = fault(0);
        let end = idle.at_end(Vec::new(), now);
        assert!(matches!(end.as_slice(), [Step::End { .. }]));
        assert!(idle.at_end(Vec::new(), now).is_empty(), "it fires once");
    }
}
