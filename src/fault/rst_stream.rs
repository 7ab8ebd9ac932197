//! The `rst_stream` fault: end one HTTP/2 stream — after bytes of its DATA in the rule's
//! direction, or a time after it opened — with RST_STREAM to both peers, while the connection and
//! every other stream on it carry on (what middleware does to a long-lived gRPC read).

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::FaultError;
use crate::h2::ErrorCode;
use crate::units::{Amount, Span};

/// `fault.rst_stream = { after = "1MiB", code = "CANCEL" }` or `{ at = "30s" }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RstStream {
    /// DATA payload bytes of the stream relayed in the rule's direction before the reset.
    pub after: Option<Amount>,
    /// Time after the stream opened.
    pub at: Option<Span>,
    /// RFC 9113 error code name sent in both RST_STREAM frames (default `CANCEL`).
    #[serde(default = "cancel")]
    pub code: StreamErrorCode,
}

/// An RFC 9113 error code, written by name in scenario files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamErrorCode(pub ErrorCode);

fn cancel() -> StreamErrorCode {
    StreamErrorCode(ErrorCode::CANCEL)
}

impl<'de> Deserialize<'de> for StreamErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        // Names are matched as the spec spells them, but `cancel` is what people type.
        ErrorCode::from_name(&name.to_ascii_uppercase())
            .map(StreamErrorCode)
            .ok_or_else(|| {
                let known: Vec<&str> = ErrorCode::names().collect();
                de::Error::custom(format!(
                    "unknown HTTP/2 error code {name:?}: expected one of {}",
                    known.join(", ")
                ))
            })
    }
}

impl RstStream {
    /// Exactly one trigger.
    pub fn validate(&self) -> Result<(), FaultError> {
        match (self.after, self.at) {
            (Some(_), Some(_)) => Err(FaultError::new(
                "at",
                "give either `after` (bytes of the stream) or `at` (time after it opened), not both",
            )),
            (None, None) => Err(FaultError::new(
                "after",
                "missing trigger: give `after` (bytes, e.g. \"1MiB\") or `at` (time, e.g. \"30s\")",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_by_name_and_default_to_cancel() {
        let r: RstStream = toml::from_str("after = 10").expect("valid");
        assert_eq!(r.code, StreamErrorCode(ErrorCode::CANCEL));
        let r: RstStream = toml::from_str("at = \"1s\"\ncode = \"INTERNAL_ERROR\"").expect("valid");
        assert_eq!(r.code, StreamErrorCode(ErrorCode::INTERNAL_ERROR));
        let r: RstStream = toml::from_str("at = \"1s\"\ncode = \"cancel\"").expect("any case");
        assert_eq!(r.code, StreamErrorCode(ErrorCode::CANCEL));
        let e = toml::from_str::<RstStream>("at = \"1s\"\ncode = \"OOPS\"").expect_err("bad");
        assert!(e.to_string().contains("REFUSED_STREAM"), "{e}");
        assert!(r.validate().is_ok());
        let both: RstStream = toml::from_str("at = \"1s\"\nafter = 1").expect("parses");
        assert_eq!(both.validate().map_err(|e| e.key), Err("at"));
    }
}
