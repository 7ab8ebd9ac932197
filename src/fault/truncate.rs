//! The `truncate` fault: relay an exact number of bytes, then close both legs cleanly (FIN).

use serde::Deserialize;

use crate::units::Amount;

/// `fault.truncate = { after = "100KiB" }`: the short-body case, where the peer sees a clean EOF
/// and must notice by itself that bytes are missing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Truncate {
    /// Bytes relayed in the matched direction (or of the matched message's body) before the
    /// clean close; HTTP rules may give a percentage of the body (`"50%"`).
    pub after: Amount,
}
