//! Offsets to steps: turns the raw byte ranges of one chunk, as a protocol session classifies
//! them (head, framing, payload, skipped, inserted), into plan steps, passing each message's
//! ranges through that message's fault chain on the way.

use bytes::Bytes;
use tokio::time::Instant;

use super::SessionPlan;
use crate::fault::plan::{Mark, Role, Step};
use crate::fault::FaultChain;

/// The plan of one chunk under construction, front to back, at absolute stream offsets.
///
/// Ranges of the current message are batched and handed to its fault chain on [`flush`]; the
/// first terminal step a chain returns (end, hold, park, answer) finishes the plan, and nothing
/// after it is planned.
///
/// [`flush`]: ChunkPlan::flush
#[derive(Debug)]
pub struct ChunkPlan {
    /// Absolute offset of the next byte not yet planned.
    pos: u64,
    /// Absolute offset just past the chunk.
    end: u64,
    arrival: Instant,
    out: Vec<Step>,
    batch: Vec<Step>,
    finished: bool,
}

impl ChunkPlan {
    /// A plan for `len` bytes starting at absolute offset `start`, read at `arrival`.
    pub fn new(start: u64, len: usize, arrival: Instant) -> Self {
        ChunkPlan {
            pos: start,
            end: start + len as u64,
            arrival,
            out: Vec::new(),
            batch: Vec::new(),
            finished: false,
        }
    }

    /// When the chunk was read.
    pub fn arrival(&self) -> Instant {
        self.arrival
    }

    /// Absolute offset just past the chunk.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Absolute offset of the next byte not planned yet.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Whether a terminal step ended the plan.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Relays the bytes up to absolute offset `to` as `role` bytes of the current message.
    /// Offsets before the current position (bytes planned earlier) are ignored.
    pub fn relay(&mut self, to: u64, role: Role) {
        let len = self.advance(to);
        if len == 0 || self.finished {
            return;
        }
        if let Some(Step::Send {
            len: last,
            not_before,
            mark: None,
            role: last_role,
        }) = self.batch.last_mut()
        {
            if *last_role == role && *not_before == self.arrival {
                *last += len;
                return;
            }
        }
        self.batch.push(Step::send_as(len, self.arrival, role));
    }

    /// Relays the bytes up to absolute offset `to` not before `not_before`, carrying `mark`:
    /// bytes whose timing a fault chain already decided.
    pub fn relay_at(&mut self, to: u64, not_before: Instant, mark: Option<Mark>) {
        let len = self.advance(to);
        if len == 0 || self.finished {
            return;
        }
        self.batch.push(Step::Send {
            len,
            not_before: not_before.max(self.arrival),
            mark,
            role: Role::Payload,
        });
    }

    /// Writes `bytes` made by faultline at the current position not before `not_before`,
    /// carrying `mark` (empty bytes with a mark: a note with no bytes of its own).
    pub fn insert_at(&mut self, bytes: Bytes, not_before: Instant, mark: Option<Mark>) {
        if self.finished || (bytes.is_empty() && mark.is_none()) {
            return;
        }
        self.batch.push(Step::Insert {
            bytes,
            not_before: not_before.max(self.arrival),
            mark,
            role: Role::Framing,
        });
    }

    /// The batched steps, for a chain the caller applies itself; the batch is left empty.
    pub fn take_batch(&mut self) -> Vec<Step> {
        std::mem::take(&mut self.batch)
    }

    /// Appends steps a chain returned (after flushing the batch); a terminal step finishes
    /// the plan.
    pub fn push_steps(&mut self, steps: Vec<Step>) {
        self.flush(None);
        if !self.finished {
            self.push_all(steps);
        }
    }

    /// Consumes the bytes up to absolute offset `to` without relaying them.
    pub fn skip(&mut self, to: u64) {
        let len = self.advance(to);
        if len > 0 && !self.finished {
            self.batch.push(Step::Skip { len });
        }
    }

    /// Writes `bytes` made by faultline at the current position, as `role` bytes of the current
    /// message.
    pub fn insert(&mut self, bytes: Bytes, role: Role) {
        if !self.finished && !bytes.is_empty() {
            self.batch.push(Step::Insert {
                bytes,
                not_before: self.arrival,
                mark: None,
                role,
            });
        }
    }

    /// Passes the batched steps through `chain` (the current message's faults, if any) into the
    /// plan.
    pub fn flush(&mut self, chain: Option<&mut FaultChain>) {
        let steps = std::mem::take(&mut self.batch);
        if steps.is_empty() || self.finished {
            return;
        }
        let steps = match chain {
            Some(chain) => chain.apply(steps, self.arrival),
            None => steps,
        };
        self.push_all(steps);
    }

    /// Ends the plan with `step` after what is planned so far (batched steps go out without a
    /// chain: call [`flush`](Self::flush) first when they belong to a message).
    pub fn stop(&mut self, step: Step) {
        self.flush(None);
        if !self.finished {
            self.out.push(step);
            self.finished = true;
        }
    }

    /// The plan, leaving the last `deferred` bytes of the chunk for the next call. Bytes between
    /// the current position and the deferred tail must have been planned by the caller.
    pub fn finish(mut self, deferred: usize) -> SessionPlan {
        self.flush(None);
        SessionPlan {
            steps: self.out,
            deferred: if self.finished { 0 } else { deferred },
        }
    }

    fn push_all(&mut self, steps: Vec<Step>) {
        for step in steps {
            let terminal = step.is_terminal();
            self.out.push(step);
            if terminal {
                self.finished = true;
                break;
            }
        }
    }

    /// Moves the position to `to` (clamped to the chunk) and returns how many bytes it passed.
    fn advance(&mut self, to: u64) -> usize {
        let to = to.min(self.end);
        if to <= self.pos {
            return 0;
        }
        let len = (to - self.pos) as usize;
        self.pos = to;
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::fault::plan::{EndHow, Mark, RuleId};
    use crate::fault::scope::Scope;
    use crate::fault::truncate::Truncate;
    use crate::fault::Fault;
    use crate::seed::{stream, Purpose};
    use crate::units::Amount;

    fn truncate_after(n: u64) -> FaultChain {
        let fault = Fault::Truncate(Truncate {
            after: Amount::Bytes(n),
        });
        let scope = Scope::direction(Direction::ClientToUpstream);
        let rng = stream(0, Purpose::FaultTiming, &[]);
        FaultChain::for_message(vec![(
            0,
            fault
                .stream_fault(&RuleId::new(0, "t"), &scope, rng)
                .expect("resolves")
                .expect("a stream fault"),
        )])
    }

    #[test]
    fn adjacent_ranges_of_one_role_merge_and_skips_stay_apart() {
        let now = Instant::now();
        let mut plan = ChunkPlan::new(100, 30, now);
        plan.relay(110, Role::Payload);
        plan.relay(115, Role::Payload);
        plan.skip(120);
        plan.relay(90, Role::Payload);
        plan.relay(130, Role::Framing);
        let done = plan.finish(0);
        assert_eq!(
            done.steps,
            vec![
                Step::send(15, now),
                Step::Skip { len: 5 },
                Step::send_as(10, now, Role::Framing),
            ]
        );
    }

    #[test]
    fn a_chain_cut_finishes_the_plan_and_drops_the_deferred_tail() {
        let now = Instant::now();
        let mut chain = truncate_after(4);
        let mut plan = ChunkPlan::new(0, 20, now);
        plan.relay(5, Role::Head);
        plan.relay(15, Role::Payload);
        plan.flush(Some(&mut chain));
        assert!(plan.is_finished());
        plan.relay(20, Role::Payload);
        let done = plan.finish(3);
        assert_eq!(done.deferred, 0);
        assert!(matches!(
            done.steps.as_slice(),
            [
                Step::Send { len: 5, .. },
                Step::Send { len: 4, .. },
                Step::End {
                    how: EndHow::Finish,
                    ..
                }
            ]
        ));
    }

    #[test]
    fn stop_ends_after_what_was_planned() {
        let now = Instant::now();
        let mut plan = ChunkPlan::new(0, 10, now);
        plan.relay(4, Role::Payload);
        plan.insert(Bytes::from_static(b"xy"), Role::Head);
        plan.stop(Step::Park);
        plan.stop(Step::Hold {
            mark: Mark::proxy("ignored"),
        });
        let done = plan.finish(0);
        assert_eq!(done.steps.len(), 3);
        assert_eq!(done.steps[2], Step::Park);
    }
}
