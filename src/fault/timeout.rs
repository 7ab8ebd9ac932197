//! The `timeout` fault: a direction that swallows every byte, and a connection closed after a
//! time (Toxiproxy's `timeout`): the peer that never answers.

use serde::Deserialize;
use tokio::time::Instant;

use super::plan::{pause_until, Mark, RuleId, Step};
use super::scope::Scope;
use super::StreamFault;
use crate::units::Span;

/// `fault.timeout = { after = "5s" }`: while the rule is in force, bytes of the matched direction
/// are read and dropped (never relayed, even after the rule is lifted); `after` that long from
/// when the rule came into force for the connection, both legs are closed with FIN. Without
/// `after` the connection is never closed by this fault.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeout {
    /// When the connection closes; absent: never.
    pub after: Option<Span>,
}

/// The dropping half of one timeout on one payload stream (the close is a connection timer).
#[derive(Debug)]
pub struct Dropping {
    mark: Option<Mark>,
}

impl Dropping {
    /// Drops the bytes of `scope` for `rule`.
    pub fn new(rule: &RuleId, scope: &Scope) -> Self {
        Dropping {
            mark: Some(Mark::rule(
                rule,
                format!("timeout: bytes of {} dropped", scope.subject()),
            )),
        }
    }
}

impl StreamFault for Dropping {
    fn apply(&mut self, steps: Vec<Step>, arrival: Instant) -> Vec<Step> {
        let mut out = Vec::with_capacity(steps.len() + 1);
        if let Some(mark) = self.mark.take() {
            // Nothing is written; an empty step carries the note (log, counter, capture).
            out.push(pause_until(arrival, Some(mark)));
        }
        for step in steps {
            match step {
                Step::Send { len, .. } => out.push(Step::Skip { len }),
                Step::Insert { .. } => {}
                other => out.push(other),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::fault::plan::sent_len;

    #[test]
    fn every_byte_is_dropped_and_the_first_drop_is_marked() {
        let now = Instant::now();
        let mut fault = Dropping::new(
            &RuleId::new(0, "r"),
            &Scope::direction(Direction::ClientToUpstream),
        );
        let first = fault.apply(vec![Step::send(10, now)], now);
        assert_eq!(sent_len(&first), 0);
        assert!(matches!(
            first.as_slice(),
            [Step::Insert { mark: Some(_), .. }, Step::Skip { len: 10 }]
        ));
        let second = fault.apply(vec![Step::send(5, now), Step::send(7, now)], now);
        assert_eq!(second, vec![Step::Skip { len: 5 }, Step::Skip { len: 7 }]);
    }
}
