//! Ending a connection once a direction has relayed an exact number of bytes (shared by `reset`
//! and `truncate`, which differ only in how the connection ends).

use tokio::time::Instant;

use super::plan::{split_at_limit, EndHow, Mark, Step};
use super::StreamFault;
use crate::direction::Direction;

/// Relays exactly `limit` bytes of one direction, then ends the connection with `how`.
#[derive(Debug)]
pub struct CutAfter {
    limit: u64,
    counted: u64,
    how: EndHow,
    rule: usize,
    direction: Direction,
    done: bool,
}

impl CutAfter {
    /// A cut for rule number `rule` (0-based) on `direction`.
    pub fn new(limit: u64, how: EndHow, rule: usize, direction: Direction) -> Self {
        CutAfter {
            limit,
            counted: 0,
            how,
            rule,
            direction,
            done: false,
        }
    }
}

impl StreamFault for CutAfter {
    fn apply(&mut self, steps: Vec<Step>, _arrival: Instant) -> Vec<Step> {
        if self.done {
            return steps;
        }
        let (mut before, rest) = split_at_limit(steps, &mut self.counted, self.limit);
        if rest.is_some() {
            self.done = true;
            let verb = match self.how {
                EndHow::Reset => "reset",
                EndHow::Finish => "truncated",
            };
            before.push(Step::End {
                how: self.how,
                mark: Mark {
                    rule: self.rule,
                    note: format!("{verb} {} after {} bytes", self.direction, self.limit),
                },
            });
        }
        before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::plan::sent_len;

    #[test]
    fn relays_exactly_the_limit_across_chunks_then_ends() {
        let now = Instant::now();
        let mut cut = CutAfter::new(100, EndHow::Reset, 0, Direction::ClientToUpstream);
        let first = cut.apply(vec![Step::send(60, now)], now);
        assert_eq!(sent_len(&first), 60);
        assert!(!first.iter().any(|s| matches!(s, Step::End { .. })));
        let second = cut.apply(vec![Step::send(60, now)], now);
        assert_eq!(sent_len(&second), 40);
        match second.last() {
            Some(Step::End { how, mark }) => {
                assert_eq!(*how, EndHow::Reset);
                assert_eq!(mark.note, "reset client->upstream after 100 bytes");
            }
            other => panic!("expected an End step, got {other:?}"),
        }
    }

    #[test]
    fn a_limit_of_zero_ends_before_any_byte() {
        let now = Instant::now();
        let mut cut = CutAfter::new(0, EndHow::Finish, 3, Direction::UpstreamToClient);
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
}
