//! The `terminate` fault: end a long-lived connection after a time, whatever traffic flows.

use serde::Deserialize;

use super::plan::EndHow;
use crate::units::Span;

/// How `terminate` ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TerminateHow {
    /// TCP RST on both legs: what a crashing proxy or a load balancer timeout looks like.
    #[default]
    Rst,
    /// FIN on both legs: a polite close in the middle of a stream.
    Fin,
}

impl From<TerminateHow> for EndHow {
    fn from(how: TerminateHow) -> EndHow {
        match how {
            TerminateHow::Rst => EndHow::Reset,
            TerminateHow::Fin => EndHow::Finish,
        }
    }
}

/// `fault.terminate = { after = "30s", how = "rst" }`: kills streams such as a gRPC
/// ByteStream.Read that never go idle, so a byte trigger would never fire.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terminate {
    /// Time since the connection opened.
    pub after: Span,
    /// `rst` (default) or `fin`.
    #[serde(default)]
    pub how: TerminateHow,
}
