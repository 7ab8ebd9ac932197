//! The `timeout` fault: a direction that swallows every byte, and a connection closed after a
//! time (Toxiproxy's `timeout`): the peer that never answers.

use serde::Deserialize;
use tokio::time::Instant;

use super::plan::{pause_until, EndHow, Mark, RuleId, Step};
use super::scope::Scope;
use super::StreamFault;
use crate::units::Span;

/// `fault.timeout = { after = "5s" }`: while the rule is in force, bytes of the matched direction
/// are read and dropped (never relayed); `after` that long from when the rule came into force
/// for the connection, both legs are closed with FIN. Without `after` the connection is never
/// closed by the timer. As Toxiproxy's timeout, the source's end closes the connection, and so
/// does lifting the rule (the stream has a gap: relaying on would hide it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeout {
    /// When the connection closes; absent: never.
    pub after: Option<Span>,
}

/// The dropping half of one timeout on one payload stream (the close is a connection timer).
#[derive(Debug)]
pub struct Dropping {
    /// The mark of the first drop; taken once it is planned.
    mark: Option<Mark>,
    rule: RuleId,
    subject: String,
}

impl Dropping {
    /// Drops the bytes of `scope` for `rule`.
    pub fn new(rule: &RuleId, scope: &Scope) -> Self {
        Dropping {
            mark: Some(
                Mark::rule(
                    rule,
                    format!("timeout: bytes of {} dropped", scope.subject()),
                )
                .once_per_connection(),
            ),
            rule: rule.clone(),
            subject: scope.subject(),
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

    /// The source's end closes the connection (both legs, FIN), as Toxiproxy's timeout closes
    /// its link when its input ends: holding it open would leave a connection neither peer can
    /// end. The end counts as the rule firing only when no byte was dropped before it.
    fn at_end(&mut self, mut steps: Vec<Step>, _at: Instant) -> Vec<Step> {
        let what = format!("timeout: the end of {} closes the connection", self.subject);
        let mark = match self.mark.take() {
            Some(first) => Mark {
                note: what,
                ..first
            },
            None => Mark::follow_up(&self.rule, what),
        };
        steps.push(Step::End {
            how: EndHow::Finish,
            mark,
        });
        steps
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
        // The end closes the connection; the rule fired already, so its note does not count
        // again.
        match fault.at_end(Vec::new(), now).as_slice() {
            [Step::End {
                how: EndHow::Finish,
                mark,
            }] => {
                assert!(mark.rule.is_none(), "{mark:?}");
                assert!(mark.note.contains("(rule \"r\")"), "{}", mark.note);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_end_with_no_byte_before_it_is_the_firing() {
        let now = Instant::now();
        let mut fault = Dropping::new(
            &RuleId::new(0, "r"),
            &Scope::direction(Direction::ClientToUpstream),
        );
        match fault.at_end(Vec::new(), now).as_slice() {
            [Step::End {
                how: EndHow::Finish,
                mark,
            }] => {
                assert_eq!(
                    mark.rule.as_ref().map(|r| r.name.to_string()),
                    Some("r".into())
                );
                assert!(mark.note.contains("closes the connection"), "{}", mark.note);
            }
            other => panic!("{other:?}"),
        }
    }
}
