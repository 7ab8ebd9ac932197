//! The `stall` fault: stop relaying a payload stream mid-way while keeping both sockets open.

use serde::Deserialize;
use tokio::time::Instant;

use super::plan::{place_mark, split_at_limit, Mark, RuleId, Step};
use super::scope::{Scope, Unresolved};
use super::StreamFault;
use crate::units::{Amount, Span};

/// `fault.stall = { after = "1MiB", duration = "10s" }`: a hung upload or download, the case that
/// exercises a client's read and idle timeouts. Without `duration` the stall lasts forever.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stall {
    /// Bytes relayed before the stall (default 0: stall from the first byte).
    #[serde(default)]
    pub after: Option<Amount>,
    /// How long the stall lasts; absent means it never ends.
    pub duration: Option<Span>,
}

/// Where a stall instance is.
#[derive(Debug)]
enum Phase {
    /// Counting bytes toward the limit.
    Relaying,
    /// Bytes wait until `until`; `mark` rides on the first of them.
    Paused { until: Instant, mark: Option<Mark> },
    /// Stalled for good: nothing more is relayed.
    Holding,
}

/// One stall on one payload stream.
#[derive(Debug)]
pub struct Stalling {
    limit: u64,
    counted: u64,
    duration: Option<std::time::Duration>,
    rule: RuleId,
    note: String,
    phase: Phase,
}

impl Stalling {
    /// A stall for `rule` on `scope`; fails when `after` is a percentage of a body of unknown
    /// length.
    pub fn new(params: &Stall, rule: &RuleId, scope: &Scope) -> Result<Self, Unresolved> {
        let limit = scope.resolve(params.after.unwrap_or(Amount::Bytes(0)))?;
        let duration = params.duration.map(|d| d.0);
        let how_long = match duration {
            Some(d) => format!("for {d:?}"),
            None => "forever".to_string(),
        };
        Ok(Stalling {
            limit,
            counted: 0,
            duration,
            rule: rule.clone(),
            note: format!(
                "stalled {} {how_long} after {limit} bytes{}",
                scope.direction,
                scope.counted_suffix()
            ),
            phase: Phase::Relaying,
        })
    }

    fn delay_until(mut steps: Vec<Step>, until: Instant, mark: &mut Option<Mark>) -> Vec<Step> {
        for step in &mut steps {
            if let Some(at) = step.not_before_mut() {
                *at = (*at).max(until);
            }
        }
        place_mark(&mut steps, mark);
        steps
    }
}

impl StreamFault for Stalling {
    fn apply(&mut self, steps: Vec<Step>, arrival: Instant) -> Vec<Step> {
        match &mut self.phase {
            Phase::Holding => Vec::new(),
            Phase::Paused { until, mark } => {
                if arrival >= *until && mark.is_none() {
                    return steps;
                }
                let until = *until;
                Self::delay_until(steps, until, mark)
            }
            Phase::Relaying => {
                let (mut before, rest) = split_at_limit(steps, &mut self.counted, self.limit);
                let Some(rest) = rest else {
                    return before;
                };
                let mark = Mark::rule(&self.rule, std::mem::take(&mut self.note));
                match self.duration {
                    None => {
                        self.phase = Phase::Holding;
                        before.push(Step::Hold { mark });
                        before
                    }
                    Some(duration) => {
                        let until = arrival + duration;
                        let mut mark = Some(mark);
                        before.extend(Self::delay_until(rest, until, &mut mark));
                        self.phase = Phase::Paused { until, mark };
                        before
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::fault::plan::sent_len;
    use std::time::Duration;

    fn stall(after: u64, secs: Option<u64>) -> Stall {
        Stall {
            after: Some(Amount::Bytes(after)),
            duration: secs.map(|s| Span(Duration::from_secs(s))),
        }
    }

    #[test]
    fn bytes_after_the_limit_wait_for_the_duration() {
        let t0 = Instant::now();
        let mut fault = Stalling::new(
            &stall(10, Some(2)),
            &RuleId::new(0, "r"),
            &Scope::direction(Direction::ClientToUpstream),
        )
        .expect("bytes resolve");
        let plan = fault.apply(vec![Step::send(30, t0)], t0);
        assert_eq!(sent_len(&plan), 30);
        match plan.as_slice() {
            [Step::Send {
                len: 10,
                not_before: a,
                mark: None,
                ..
            }, Step::Send {
                len: 20,
                not_before: b,
                mark: Some(_),
                ..
            }] => {
                assert_eq!(*a, t0);
                assert_eq!(*b, t0 + Duration::from_secs(2));
            }
            other => panic!("unexpected plan {other:?}"),
        }
        // A chunk arriving during the stall waits too; one after it passes through.
        let during = fault.apply(vec![Step::send(5, t0 + Duration::from_secs(1))], t0);
        assert!(
            matches!(&during[0], Step::Send { not_before, .. } if *not_before == t0 + Duration::from_secs(2))
        );
        let after = t0 + Duration::from_secs(3);
        let later = fault.apply(vec![Step::send(5, after)], after);
        assert!(matches!(&later[0], Step::Send { not_before, .. } if *not_before == after));
    }

    #[test]
    fn a_stall_without_duration_holds_forever() {
        let t0 = Instant::now();
        let mut fault = Stalling::new(
            &stall(4, None),
            &RuleId::new(0, "r"),
            &Scope::direction(Direction::UpstreamToClient),
        )
        .expect("bytes resolve");
        let plan = fault.apply(vec![Step::send(10, t0)], t0);
        assert_eq!(sent_len(&plan), 4);
        assert!(matches!(plan.last(), Some(Step::Hold { .. })));
        assert!(fault.apply(vec![Step::send(10, t0)], t0).is_empty());
    }

    #[test]
    fn a_stall_at_a_chunk_boundary_marks_the_first_delayed_chunk() {
        let t0 = Instant::now();
        let mut fault = Stalling::new(
            &stall(10, Some(1)),
            &RuleId::new(0, "r"),
            &Scope::direction(Direction::ClientToUpstream),
        )
        .expect("bytes resolve");
        let first = fault.apply(vec![Step::send(10, t0)], t0);
        assert_eq!(sent_len(&first), 10);
        let next = fault.apply(vec![Step::send(3, t0)], t0);
        assert!(
            matches!(&next[0], Step::Send { mark: Some(_), not_before, .. } if *not_before == t0 + Duration::from_secs(1))
        );
    }
}
