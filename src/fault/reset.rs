//! The `reset` fault: abort both legs with a TCP RST after a number of bytes or a time.

use serde::Deserialize;

use super::FaultError;
use crate::units::{Amount, Span};

/// `fault.reset = { after = "64KiB" }` or `fault.reset = { at = "2s" }`: the abrupt failure
/// (ECONNRESET) that HTTP libraries most often retry wrongly.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reset {
    /// Bytes relayed in the matched direction (or of the matched message's body) before the
    /// reset; HTTP rules may give a percentage of the body (`"50%"`).
    pub after: Option<Amount>,
    /// Time since the connection opened before the reset, whatever traffic flows.
    pub at: Option<Span>,
}

impl Reset {
    /// Exactly one trigger must be given: both or neither would be a guess.
    pub fn validate(&self) -> Result<(), FaultError> {
        match (self.after, self.at) {
            (Some(_), Some(_)) => Err(FaultError::new(
                "at",
                "give either `after` (bytes) or `at` (time), not both",
            )),
            (None, None) => Err(FaultError::new(
                "after",
                "missing trigger: give `after` (bytes, e.g. \"64KiB\") or `at` (time, e.g. \"2s\")",
            )),
            _ => Ok(()),
        }
    }
}
