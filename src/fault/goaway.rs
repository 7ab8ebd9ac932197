//! The `goaway` fault: tell the HTTP/2 client, as its server would, that the connection is going
//! away — gracefully (in-flight streams finish, new calls go to a new connection) or not (GOAWAY
//! to both peers, then the connection closes).

use serde::Deserialize;

use super::rst_stream::StreamErrorCode;
use super::FaultError;
use crate::h2::ErrorCode;
use crate::units::Span;

/// `fault.goaway = { at = "10s", code = "NO_ERROR", graceful = true }` or `{ after_streams = 3 }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goaway {
    /// Time after the connection opened.
    pub at: Option<Span>,
    /// Once this many streams were opened on the connection (GOAWAY names the highest of them).
    pub after_streams: Option<u64>,
    /// RFC 9113 error code, by name or number (default `NO_ERROR`).
    #[serde(default = "no_error")]
    pub code: StreamErrorCode,
    /// `true` (default): GOAWAY with the highest stream already open, nothing else. `false`:
    /// GOAWAY to both peers, then close the connection.
    #[serde(default = "yes")]
    pub graceful: bool,
}

fn no_error() -> StreamErrorCode {
    StreamErrorCode(ErrorCode::NO_ERROR)
}

fn yes() -> bool {
    true
}

impl Goaway {
    /// Exactly one trigger, and a stream count of at least one.
    pub fn validate(&self) -> Result<(), FaultError> {
        match (self.at, self.after_streams) {
            (Some(_), Some(_)) => Err(FaultError::new(
                "after_streams",
                "give either `at` (time) or `after_streams` (a count), not both",
            )),
            (None, None) => Err(FaultError::new(
                "at",
                "missing trigger: give `at` (time, e.g. \"10s\") or `after_streams` (e.g. 3)",
            )),
            (None, Some(0)) => Err(FaultError::new(
                "after_streams",
                "after_streams counts opened streams and starts at 1",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_are_exclusive_and_defaults_are_graceful_no_error() {
        let g: Goaway = toml::from_str("after_streams = 2").expect("valid");
        assert!(g.graceful);
        assert_eq!(g.code, StreamErrorCode(ErrorCode::NO_ERROR));
        assert!(g.validate().is_ok());
        let zero: Goaway = toml::from_str("after_streams = 0").expect("parses");
        assert_eq!(zero.validate().map_err(|e| e.key), Err("after_streams"));
        let none: Goaway = toml::from_str("graceful = false").expect("parses");
        assert_eq!(none.validate().map_err(|e| e.key), Err("at"));
    }
}
