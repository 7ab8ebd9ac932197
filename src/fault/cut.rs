//! Ending a connection once a payload stream has relayed an exact number of bytes (shared by
//! `reset` and `truncate`, which differ only in how the connection ends).

use tokio::time::Instant;

use super::plan::{split_at_limit, EndHow, Mark, RuleId, Step};
use super::scope::Scope;
use super::StreamFault;

/// Relays exactly `limit` payload bytes of one stream, then ends the connection with `how`.
#[derive(Debug)]
pub struct CutAfter {
    limit: u64,
    counted: u64,
    how: EndHow,
    mark: Option<Mark>,
}

impl CutAfter {
    /// A cut for `rule` after `limit` bytes of `scope`.
    pub fn new(limit: u64, how: EndHow, rule: &RuleId, scope: &Scope) -> Self {
        let verb = match how {
            EndHow::Reset => "reset".to_string(),
            EndHow::Finish => "truncated".to_string(),
            EndHow::ResetStream { code } => {
                format!("reset the stream ({}) on", crate::h2::ErrorCode(code))
            }
        };
        CutAfter {
            limit,
            counted: 0,
            how,
            mark: Some(Mark::rule(
                rule,
                format!(
                    "{verb} {} after {limit} bytes{}",
                    scope.direction,
                    scope.counted_suffix()
                ),
            )),
        }
    }
}

impl StreamFault for CutAfter {
    fn apply(&mut self, steps: Vec<Step>, _arrival: Instant) -> Vec<Step> {
        let Some(mark) = self.mark.take() else {
            return steps;
        };
        let (mut before, rest) = split_at_limit(steps, &mut self.counted, self.limit);
        if rest.is_some() {
            before.push(Step::End {
                how: self.how,
                mark,
            });
        } else {
            self.mark = Some(mark);
        }
        before
    }

    fn counted(&self) -> Option<u64> {
        Some(self.counted)
    }

    fn resume_from(&mut self, counted: u64) {
        self.counted = counted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::fault::plan::{sent_len, Role};
    use crate::fault::scope::MessageScope;

    #[test]
    fn relays_exactly_the_limit_across_chunks_then_ends() {
        let now = Instant::now();
        let scope = Scope::direction(Direction::ClientToUpstream);
        let mut cut = CutAfter::new(100, EndHow::Reset, &RuleId::new(0, "r"), &scope);
        let first = cut.apply(vec![Step::send(60, now)], now);
        assert_eq!(sent_len(&first), 60);
        assert!(!first.iter().any(|s| matches!(s, Step::End { .. })));
        let second = cut.apply(vec![Step::send(60, now)], now);
        assert_eq!(sent_len(&second), 40);
        match second.last() {
            Some(Step::End { how, mark }) => {
                assert_eq!(*how, EndHow::Reset);
                assert_eq!(mark.note, "reset client->upstream after 100 bytes");
                assert_eq!(mark.rule, Some(RuleId::new(0, "r")));
            }
            other => panic!("expected an End step, got {other:?}"),
        }
        assert_eq!(sent_len(&cut.apply(vec![Step::send(5, now)], now)), 5);
    }

    #[test]
    fn a_limit_of_zero_ends_before_any_byte() {
        let now = Instant::now();
        let scope = Scope::direction(Direction::UpstreamToClient);
        let mut cut = CutAfter::new(0, EndHow::Finish, &RuleId::new(3, "r"), &scope);
        let plan = cut.apply(vec![Step::send(10, now)], now);
        assert_eq!(sent_len(&plan), 0);
        assert!(matches!(
            plan.as_slice(),
            [Step::End {
                how: EndHow::Finish,
                ..
            }]
        ));
    }

    #[test]
    fn in_a_message_only_body_payload_counts() {
        let now = Instant::now();
        let scope = Scope::message(
            Direction::ClientToUpstream,
            MessageScope {
                name: "PUT /x (attempt 1)".into(),
                body: "the body of PUT /x (attempt 1)".into(),
                body_len: Some(10),
            },
        );
        let mut cut = CutAfter::new(4, EndHow::Finish, &RuleId::new(1, "r"), &scope);
        let plan = cut.apply(
            vec![
                Step::send_as(50, now, Role::Head),
                Step::send_as(3, now, Role::Framing),
                Step::send_as(10, now, Role::Payload),
            ],
            now,
        );
        assert_eq!(sent_len(&plan), 57);
        match plan.last() {
            Some(Step::End { mark, .. }) => assert_eq!(
                mark.note,
                "truncated client->upstream after 4 bytes of the body of PUT /x (attempt 1)"
            ),
            other => panic!("expected an End step, got {other:?}"),
        }
    }
}
