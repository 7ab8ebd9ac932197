//! The `slow_close` fault: hold back the end of a payload stream (the FIN it carries) for a while.

use serde::Deserialize;
use tokio::time::Instant;

use super::plan::{pause_until, Mark, RuleId, Step};
use super::scope::Scope;
use super::StreamFault;
use crate::units::Span;

/// `fault.slow_close = { delay = "2s" }`: when the source of the matched direction closes, its
/// close reaches the destination `delay` later, while every byte before it passes unchanged
/// (Toxiproxy's `slow_close`): for clients that wrongly wait for the peer's close.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowClose {
    /// How long the close is held back.
    pub delay: Span,
}

/// One delayed close on one payload stream.
#[derive(Debug)]
pub struct ClosingSlowly {
    delay: std::time::Duration,
    mark: Option<Mark>,
}

impl ClosingSlowly {
    /// A delayed close for `rule` on `scope`.
    pub fn new(params: &SlowClose, rule: &RuleId, scope: &Scope) -> Self {
        ClosingSlowly {
            delay: params.delay.0,
            mark: Some(Mark::rule(
                rule,
                format!(
                    "close of {} held back {:?}",
                    scope.subject(),
                    params.delay.0
                ),
            )),
        }
    }
}

impl StreamFault for ClosingSlowly {
    fn apply(&mut self, steps: Vec<Step>, _arrival: Instant) -> Vec<Step> {
        steps
    }

    fn at_end(&mut self, mut steps: Vec<Step>, at: Instant) -> Vec<Step> {
        steps.push(pause_until(at + self.delay, self.mark.take()));
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::fault::plan::sent_len;
    use std::time::Duration;

    fn fault() -> ClosingSlowly {
        ClosingSlowly::new(
            &SlowClose {
                delay: Span(Duration::from_millis(300)),
            },
            &RuleId::new(0, "r"),
            &Scope::direction(Direction::UpstreamToClient),
        )
    }

    #[test]
    fn bytes_pass_unchanged() {
        let now = Instant::now();
        let plan = fault().apply(vec![Step::send(10, now)], now);
        assert_eq!(plan, vec![Step::send(10, now)]);
        assert_eq!(sent_len(&plan), 10);
    }

    #[test]
    fn the_end_waits_for_the_delay_and_is_marked() {
        let now = Instant::now();
        let mut fault = fault();
        let end = fault.at_end(Vec::new(), now);
        match end.as_slice() {
            [Step::Insert {
                bytes,
                not_before,
                mark: Some(mark),
                ..
            }] => {
                assert!(bytes.is_empty());
                assert_eq!(*not_before, now + Duration::from_millis(300));
                assert!(mark.note.contains("held back"), "{}", mark.note);
            }
            other => panic!("unexpected plan {other:?}"),
        }
    }
}
