//! The plan vocabulary: what a pump must do with the bytes it just read, decided by pure faults.
//!
//! A plan is a list of [`Step`]s over one chunk: send the next `len` bytes not before an instant,
//! close the connection (FIN or RST), or hold the direction. Faults rewrite plans; only the pump
//! executes them, which keeps every fault testable without sockets or clocks.

use tokio::time::Instant;

/// Why a step exists: the rule that acted and a sentence saying what it did. It becomes a log line,
/// a rule counter in the exit summary and (with captures) a packet comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Index of the rule in the scenario, in file order (0-based).
    pub rule: usize,
    /// What happened, e.g. `reset client->upstream after 65536 bytes`.
    pub note: String,
}

/// How a fault ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndHow {
    /// Abort both legs with a TCP RST (SO_LINGER 0).
    Reset,
    /// Close both legs cleanly with a FIN.
    Finish,
}

/// One instruction for the pump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write the next `len` bytes of the chunk, not before `not_before`.
    Send {
        len: usize,
        not_before: Instant,
        mark: Option<Mark>,
    },
    /// End the whole connection now, after everything before this step was written.
    End { how: EndHow, mark: Mark },
    /// Stop relaying this direction for good while keeping both sockets open.
    Hold { mark: Mark },
    /// Consume the next `len` bytes of the chunk without relaying them (a request faultline
    /// answers itself never reaches the upstream).
    Skip { len: usize },
    /// Write these bytes (an answer from faultline itself) to the destination, then close the
    /// connection.
    Answer { bytes: Vec<u8>, mark: Mark },
    /// Stop relaying this direction and wake the other one: faultline owes the client an answer
    /// (or a close) once the responses before it are done.
    Park,
}

impl Step {
    /// A plain send of `len` bytes that may go out at `at`.
    pub fn send(len: usize, at: Instant) -> Step {
        Step::Send {
            len,
            not_before: at,
            mark: None,
        }
    }
}

/// Bytes in the Send steps of a plan: what the plan will write.
pub fn sent_len(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|s| match s {
            Step::Send { len, .. } => *len,
            _ => 0,
        })
        .sum()
}

/// Splits a plan where a byte counter reaches `limit`.
///
/// `counted` is how many bytes this fault has already seen pass in earlier plans; it is advanced
/// by the bytes kept. Returns the steps up to and including byte number `limit`, and `Some(rest)`
/// when the limit was reached inside (or exactly at the end of) this plan; `rest` holds the steps
/// after the limit, with a Send split in two when the limit falls inside it. Non-Send steps are
/// kept in order on the side where they stand.
pub fn split_at_limit(
    steps: Vec<Step>,
    counted: &mut u64,
    limit: u64,
) -> (Vec<Step>, Option<Vec<Step>>) {
    if *counted >= limit {
        return (Vec::new(), Some(steps));
    }
    let mut before = Vec::with_capacity(steps.len() + 1);
    let mut iter = steps.into_iter();
    while let Some(step) = iter.next() {
        match step {
            Step::Send {
                len,
                not_before,
                mark,
            } => {
                let room = limit - *counted;
                if (len as u64) < room {
                    *counted += len as u64;
                    before.push(Step::Send {
                        len,
                        not_before,
                        mark,
                    });
                    continue;
                }
                // The limit falls inside or at the end of this send.
                let head = room as usize;
                *counted = limit;
                if head > 0 {
                    before.push(Step::Send {
                        len: head,
                        not_before,
                        mark: mark.clone(),
                    });
                }
                let mut rest = Vec::new();
                if len > head {
                    rest.push(Step::Send {
                        len: len - head,
                        not_before,
                        mark: if head == 0 { mark } else { None },
                    });
                }
                rest.extend(iter);
                return (before, Some(rest));
            }
            other => before.push(other),
        }
    }
    if *counted >= limit {
        (before, Some(Vec::new()))
    } else {
        (before, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(steps: &[Step]) -> Vec<usize> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Send { len, .. } => Some(*len),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_limit_inside_a_send_splits_it() {
        let now = Instant::now();
        let mut counted = 0;
        let (before, rest) = split_at_limit(vec![Step::send(100, now)], &mut counted, 30);
        assert_eq!(lens(&before), vec![30]);
        assert_eq!(lens(&rest.expect("limit reached")), vec![70]);
        assert_eq!(counted, 30);
    }

    #[test]
    fn a_limit_at_the_end_of_a_plan_is_reached_with_nothing_left() {
        let now = Instant::now();
        let mut counted = 10;
        let (before, rest) = split_at_limit(vec![Step::send(20, now)], &mut counted, 30);
        assert_eq!(lens(&before), vec![20]);
        assert_eq!(rest, Some(Vec::new()));
    }

    #[test]
    fn a_limit_not_reached_keeps_everything_and_counts() {
        let now = Instant::now();
        let mut counted = 0;
        let (before, rest) = split_at_limit(
            vec![Step::send(5, now), Step::send(6, now)],
            &mut counted,
            30,
        );
        assert_eq!(lens(&before), vec![5, 6]);
        assert!(rest.is_none());
        assert_eq!(counted, 11);
    }

    #[test]
    fn a_zero_limit_is_reached_before_the_first_byte() {
        let now = Instant::now();
        let mut counted = 0;
        let (before, rest) = split_at_limit(vec![Step::send(5, now)], &mut counted, 0);
        assert!(before.is_empty());
        assert_eq!(lens(&rest.expect("reached")), vec![5]);
    }
}
