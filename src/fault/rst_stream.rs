//! The `rst_stream` fault: end one HTTP/2 stream — after bytes of its DATA in the rule's
//! direction, or a time after it opened — with RST_STREAM to both peers, while the connection and
//! every other stream on it carry on (what middleware does to a long-lived gRPC read).

use serde::de::{self, Deserializer, Visitor};
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
    /// RFC 9113 error code sent in both RST_STREAM frames, by name (`"CANCEL"`, any case) or
    /// number (`8`, `0x8`; 0 to 0xd, the codes the RFC defines); default `CANCEL`.
    #[serde(default = "cancel")]
    pub code: StreamErrorCode,
}

/// An RFC 9113 error code, written in scenario files by name or by number (0 to 0xd: a number
/// the RFC does not define is valid on the wire, but in a file it is more likely a typo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamErrorCode(pub ErrorCode);

fn cancel() -> StreamErrorCode {
    StreamErrorCode(ErrorCode::CANCEL)
}

impl<'de> Deserialize<'de> for StreamErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CodeVisitor;
        fn numbered<E: de::Error>(code: i128) -> Result<StreamErrorCode, E> {
            u32::try_from(code)
                .ok()
                .map(ErrorCode)
                .filter(|c| c.name().is_some())
                .map(StreamErrorCode)
                .ok_or_else(|| {
                    E::custom(format!(
                        "{code} is not an HTTP/2 error code RFC 9113 defines: use 0-13 (0x0-0xd, e.g. 8 = CANCEL) or a name: {}",
                        ErrorCode::names().collect::<Vec<_>>().join(", ")
                    ))
                })
        }
        impl Visitor<'_> for CodeVisitor {
            type Value = StreamErrorCode;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an HTTP/2 error code by name or number, like \"CANCEL\" or 8")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StreamErrorCode, E> {
                numbered(i128::from(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StreamErrorCode, E> {
                numbered(i128::from(v))
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<StreamErrorCode, E> {
                // Names are matched as the spec spells them, but `cancel` is what people type.
                ErrorCode::from_name(&name.to_ascii_uppercase())
                    .map(StreamErrorCode)
                    .ok_or_else(|| {
                        let known: Vec<&str> = ErrorCode::names().collect();
                        E::custom(format!(
                            "unknown HTTP/2 error code {name:?}: expected one of {} (or its number, 0-13)",
                            known.join(", ")
                        ))
                    })
            }
        }
        d.deserialize_any(CodeVisitor)
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
        // A trial's `code = 8` was refused "expected a string", while grpc_status takes numbers.
        for number in ["8", "0x8"] {
            let r: RstStream =
                toml::from_str(&format!("at = \"1s\"\ncode = {number}")).expect("by number");
            assert_eq!(r.code, StreamErrorCode(ErrorCode::CANCEL), "{number}");
        }
        let r: RstStream = toml::from_str("at = \"1s\"\ncode = 0").expect("NO_ERROR");
        assert_eq!(r.code, StreamErrorCode(ErrorCode::NO_ERROR));
        for bad in ["14", "-1", "4294967304"] {
            let e = toml::from_str::<RstStream>(&format!("at = \"1s\"\ncode = {bad}"))
                .expect_err(bad)
                .to_string();
            assert!(
                e.contains(&format!(
                    "{bad} is not an HTTP/2 error code RFC 9113 defines"
                )) && e.contains("8 = CANCEL"),
                "{e}"
            );
        }
        let e = toml::from_str::<RstStream>("at = \"1s\"\ncode = true").expect_err("a bool");
        assert!(e.to_string().contains("\"CANCEL\" or 8"), "{e}");
        assert_eq!(both.validate().map_err(|e| e.key), Err("at"));
    }
}
