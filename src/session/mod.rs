//! Protocol sessions: the layer between a protocol's framing and the one fault engine.
//!
//! A session follows one connection's messages (HTTP/1 today, HTTP/2 streams next), decides
//! which rules act on each message ([`arming`]), builds each message's fault chain
//! ([`message`]), and maps the message's head, framing and payload back to raw byte ranges of
//! the chunk the pump read ([`offsets`]). It owns no fault logic: cuts, stalls and delays are
//! the `fault` module's, the same code that acts on plain TCP directions. Everything here is
//! pure (no I/O, no clock: the pump passes the arrival instant in), so it is unit-tested and
//! fuzzed without sockets.

pub mod arming;
pub mod conformance;
pub mod exchanges;
pub mod http1;
pub mod message;
pub mod offsets;

use tokio::time::Instant;

use crate::fault::plan::Step;

pub use arming::RunCounters;
pub use http1::{Http1Session, RunView};

/// A session's plan for one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlan {
    /// What to do with the chunk's bytes, front to back.
    pub steps: Vec<Step>,
    /// Bytes at the end of the chunk the session holds back until it can decide on them (an
    /// incomplete head): the pump keeps them and passes them again, first, with the next chunk.
    pub deferred: usize,
}

impl SessionPlan {
    /// Relay all `len` bytes unchanged as they arrived.
    pub fn relay(len: usize, arrival: Instant) -> SessionPlan {
        SessionPlan {
            steps: vec![Step::send(len, arrival)],
            deferred: 0,
        }
    }
}
