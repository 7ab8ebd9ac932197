//! gRPC status codes by number and by name, and the percent-encoding of `grpc-message`.

/// Every status code of the gRPC spec (`doc/statuscodes.md`), numbered 0..=16.
const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of a gRPC status code (`14` → `UNAVAILABLE`), `None` outside 0..=16.
pub fn status_name(code: u32) -> Option<&'static str> {
    NAMES.get(code as usize).copied()
}

/// The code of a gRPC status name, exactly as the spec spells it (`"UNAVAILABLE"` → 14).
pub fn status_code(name: &str) -> Option<u32> {
    NAMES
        .iter()
        .position(|known| *known == name)
        .map(|i| i as u32)
}

/// Percent-encodes a `grpc-message` value as the gRPC HTTP/2 spec requires: bytes outside
/// printable ASCII (0x20..=0x7e) and `%` itself become `%XX`.
pub fn encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &byte in message.as_bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes of a `grpc-message` value; malformed escapes stay literal (the spec asks
/// receivers to be lenient) and invalid UTF-8 becomes U+FFFD.
pub fn decode_message(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            let hex = std::str::from_utf8(&raw[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_match() {
        assert_eq!(status_name(14), Some("UNAVAILABLE"));
        assert_eq!(status_code("UNAVAILABLE"), Some(14));
        assert_eq!(status_name(0), Some("OK"));
        assert_eq!(status_name(16), Some("UNAUTHENTICATED"));
        assert_eq!(status_name(17), None);
        assert_eq!(status_code("unavailable"), None);
        for code in 0..=16 {
            assert_eq!(status_code(status_name(code).expect("named")), Some(code));
        }
    }

    #[test]
    fn messages_round_trip_through_percent_encoding() {
        let message = "50% done — retry";
        let encoded = encode_message(message);
        assert_eq!(encoded, "50%25 done %E2%80%94 retry");
        assert_eq!(decode_message(encoded.as_bytes()), message);
        assert_eq!(decode_message(b"bad %zz escape %4"), "bad %zz escape %4");
    }
}
