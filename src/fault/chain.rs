//! The faults acting on one payload stream, applied in rule order: one chain per direction of a
//! connection (TCP faults) and one per message that HTTP rules armed.

use tokio::time::Instant;

use super::plan::{all_payload, Step};
use super::StreamFault;

/// Faults applied in order (the scenario's rule order) to every plan of one payload stream.
#[derive(Debug, Default)]
pub struct FaultChain {
    faults: Vec<Box<dyn StreamFault>>,
    /// A whole-direction chain counts every byte, whatever the protocol session said about it.
    counts_every_byte: bool,
}

impl FaultChain {
    /// The chain of a whole direction: its faults count every byte relayed.
    pub fn for_direction(faults: Vec<Box<dyn StreamFault>>) -> Self {
        FaultChain {
            faults,
            counts_every_byte: true,
        }
    }

    /// The chain of one message: its faults count the message's payload bytes only.
    pub fn for_message(faults: Vec<Box<dyn StreamFault>>) -> Self {
        FaultChain {
            faults,
            counts_every_byte: false,
        }
    }

    /// No fault on this stream: plans pass unchanged.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// The plan for a chunk of `len` payload bytes that arrived at `arrival`.
    pub fn plan(&mut self, len: usize, arrival: Instant) -> Vec<Step> {
        self.apply(vec![Step::send(len, arrival)], arrival)
    }

    /// Applies the chain's faults, in order, to a plan for a chunk that arrived at `arrival`.
    pub fn apply(&mut self, steps: Vec<Step>, arrival: Instant) -> Vec<Step> {
        if self.faults.is_empty() {
            return steps;
        }
        let mut steps = if self.counts_every_byte {
            all_payload(steps)
        } else {
            steps
        };
        for fault in &mut self.faults {
            steps = fault.apply(steps, arrival);
        }
        steps
    }
}
