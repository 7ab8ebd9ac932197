//! HTTP/2 error codes (RFC 9113 §7) by number and by name, for RST_STREAM, GOAWAY and scenario files.

use std::fmt;

/// An error code as carried by RST_STREAM and GOAWAY. Unknown codes are valid on the wire
/// (RFC 9113 §7: "MUST NOT trigger any special behavior") and are kept as their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

/// Every code RFC 9113 defines, in numeric order: (number, name).
const NAMES: [(u32, &str); 14] = [
    (0x0, "NO_ERROR"),
    (0x1, "PROTOCOL_ERROR"),
    (0x2, "INTERNAL_ERROR"),
    (0x3, "FLOW_CONTROL_ERROR"),
    (0x4, "SETTINGS_TIMEOUT"),
    (0x5, "STREAM_CLOSED"),
    (0x6, "FRAME_SIZE_ERROR"),
    (0x7, "REFUSED_STREAM"),
    (0x8, "CANCEL"),
    (0x9, "COMPRESSION_ERROR"),
    (0xa, "CONNECT_ERROR"),
    (0xb, "ENHANCE_YOUR_CALM"),
    (0xc, "INADEQUATE_SECURITY"),
    (0xd, "HTTP_1_1_REQUIRED"),
];

impl ErrorCode {
    /// Graceful shutdown / a stream ended early without a problem.
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    /// A generic protocol violation.
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    /// An unexpected internal error.
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    /// The stream is no longer needed (what gRPC uses for a cancelled call).
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    /// The stream was refused before any processing (safe to retry).
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);

    /// The RFC 9113 name, or `None` for a code the RFC does not define.
    pub fn name(self) -> Option<&'static str> {
        NAMES
            .iter()
            .find(|(number, _)| *number == self.0)
            .map(|(_, name)| *name)
    }

    /// The code for an RFC 9113 name as written in a scenario (`"CANCEL"`). Names are matched
    /// exactly (upper case, underscores); `None` for anything else, so a typo is caught at load.
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        NAMES
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(number, _)| ErrorCode(*number))
    }

    /// Every defined name, for error messages that list what is accepted.
    pub fn names() -> impl Iterator<Item = &'static str> {
        NAMES.iter().map(|(_, name)| *name)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "0x{:x}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_maps_to_its_number_and_back() {
        for name in ErrorCode::names() {
            let code = ErrorCode::from_name(name).expect("defined name");
            assert_eq!(code.name(), Some(name));
        }
        assert_eq!(ErrorCode::from_name("CANCEL"), Some(ErrorCode(8)));
        assert_eq!(ErrorCode(0xd).to_string(), "HTTP_1_1_REQUIRED");
    }

    #[test]
    fn unknown_codes_and_names_are_not_invented() {
        assert_eq!(ErrorCode(0x1234).name(), None);
        assert_eq!(ErrorCode(0x1234).to_string(), "0x1234");
        assert_eq!(ErrorCode::from_name("cancel"), None);
        assert_eq!(ErrorCode::from_name("NOPE"), None);
    }
}
