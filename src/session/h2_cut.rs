//! Where a stream's fault chain ended a DATA frame, and the frame that must go out instead: the
//! kept payload under a rewritten 9-byte header (padding dropped), nothing re-serialized but the
//! header. Pure: the HTTP/2 session turns the result into steps and frames for both peers.

use tokio::time::Instant;

use crate::fault::plan::{EndHow, Mark, Step};

/// How a whole DATA frame lies in the chunk: header (with the Pad Length byte of a padded frame),
/// payload, padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLayout {
    /// Header bytes (9, or 10 with Pad Length).
    pub head: usize,
    /// DATA payload bytes.
    pub payload: usize,
    /// Padding bytes.
    pub padding: usize,
}

impl FrameLayout {
    /// All bytes of the frame.
    pub fn total(&self) -> usize {
        self.head + self.payload + self.padding
    }
}

/// What a chain made of one DATA frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameFate {
    /// The frame goes out whole, on these steps (timing and marks from the chain).
    Whole(Vec<Step>),
    /// The chain ended the stream inside (or right after) this frame.
    Cut {
        /// Payload bytes relayed before the end.
        kept: usize,
        /// When the kept bytes may leave (the latest instant the chain gave them), and the marks
        /// they carried.
        not_before: Instant,
        /// Marks the chain put on the kept bytes (a latency note, …).
        marks: Vec<Mark>,
        /// How the stream ends (`None`: stalled for good, nothing more of it is relayed).
        end: Option<EndHow>,
        /// The mark of the end (the rule that cut, what it did).
        mark: Mark,
    },
}

/// Reads a chain's output over a frame laid out as `layout` (the input was the header and
/// padding as framing, the payload as payload, in that order; faults only split, delay or cut).
pub fn fate_of(layout: FrameLayout, output: Vec<Step>, arrival: Instant) -> FrameFate {
    let mut sent = 0usize;
    let mut not_before = arrival;
    let mut marks = Vec::new();
    let mut end = None;
    for step in &output {
        match step {
            Step::Send {
                len,
                not_before: at,
                mark,
                ..
            } => {
                sent += len;
                not_before = not_before.max(*at);
                marks.extend(mark.clone());
            }
            Step::End { how, mark } => {
                end = Some((Some(*how), mark.clone()));
                break;
            }
            Step::Hold { mark } => {
                end = Some((None, mark.clone()));
                break;
            }
            _ => {}
        }
    }
    match end {
        None => FrameFate::Whole(output),
        Some((end, mark)) => FrameFate::Cut {
            kept: sent.saturating_sub(layout.head).min(layout.payload),
            not_before,
            marks,
            end,
            mark,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::fault::plan::{Role, RuleId};
    use crate::fault::scope::Scope;
    use crate::fault::truncate::Truncate;
    use crate::fault::{Fault, FaultChain};
    use crate::seed::{stream, Purpose};
    use crate::units::Amount;

    fn frame_steps(layout: FrameLayout, at: Instant) -> Vec<Step> {
        vec![
            Step::send_as(layout.head, at, Role::Framing),
            Step::send_as(layout.payload, at, Role::Payload),
            Step::send_as(layout.padding, at, Role::Framing),
        ]
    }

    #[test]
    fn a_truncate_inside_the_payload_keeps_the_prefix() {
        let now = Instant::now();
        let scope = Scope::direction(Direction::UpstreamToClient);
        let fault = Fault::Truncate(Truncate {
            after: Amount::Bytes(5),
        })
        .stream_fault(
            &RuleId::new(1, "t"),
            &scope,
            stream(0, Purpose::FaultTiming, &[]),
        )
        .expect("resolves")
        .expect("a fault");
        let mut chain = FaultChain::for_message(vec![(1, fault)]);
        let layout = FrameLayout {
            head: 10,
            payload: 8,
            padding: 3,
        };
        let fate = fate_of(layout, chain.apply(frame_steps(layout, now), now), now);
        match fate {
            FrameFate::Cut { kept, end, .. } => {
                assert_eq!(kept, 5);
                assert_eq!(end, Some(EndHow::Finish));
            }
            other => panic!("expected a cut, got {other:?}"),
        }
        let mut untouched = FaultChain::for_message(Vec::new());
        let whole = fate_of(layout, untouched.apply(frame_steps(layout, now), now), now);
        assert!(matches!(whole, FrameFate::Whole(steps) if steps.len() == 3));
    }
}
