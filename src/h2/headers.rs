//! A decoded header list (request, response or trailers) and the lookups rules and `inspect` need.

use std::fmt;

use super::grpc_status::decode_message;

/// One header field as decoded: raw bytes, because HTTP/2 field values need not be UTF-8 and an
/// observer must not reject what the peers accept.
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderField {
    /// Field name (lower case in valid HTTP/2; pseudo-headers start with `:`).
    pub name: Vec<u8>,
    /// Field value.
    pub value: Vec<u8>,
}

impl fmt::Debug for HeaderField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            String::from_utf8_lossy(&self.name),
            String::from_utf8_lossy(&self.value)
        )
    }
}

/// The fields of one header block, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderList {
    /// Fields in block order (pseudo-headers first in a valid block).
    pub fields: Vec<HeaderField>,
}

impl HeaderList {
    /// A list from (name, value) pairs, for tests and for faultline's own answers.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> HeaderList {
        HeaderList {
            fields: pairs
                .into_iter()
                .map(|(name, value)| HeaderField {
                    name: name.as_bytes().to_vec(),
                    value: value.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    /// The value of the first field named `name` (names compare ASCII case-insensitively, so a
    /// rule written `Content-Type` still matches).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| f.value.as_slice())
    }

    /// Every value named `name` (ASCII case-insensitive), in order: a `cookie` split into crumbs
    /// (RFC 9113 §8.2.3) or any field sent more than once.
    pub fn values(&self, name: &str) -> Vec<&[u8]> {
        self.fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| f.value.as_slice())
            .collect()
    }

    /// The first value named `name` as text (lossy UTF-8), for matching and reports.
    pub fn get_str(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| f.value.as_slice())
    }

    /// `:method`.
    pub fn method(&self) -> Option<String> {
        self.get_str(":method")
    }

    /// `:path`.
    pub fn path(&self) -> Option<String> {
        self.get_str(":path")
    }

    /// `:authority`, or `host` when a client sent that instead (RFC 9113 §8.3.1 allows either).
    pub fn authority(&self) -> Option<String> {
        self.get_str(":authority").or_else(|| self.get_str("host"))
    }

    /// `:scheme`.
    pub fn scheme(&self) -> Option<String> {
        self.get_str(":scheme")
    }

    /// `:status` as a number; `None` when absent or not three digits.
    pub fn status(&self) -> Option<u16> {
        let raw = self.get(":status")?;
        if raw.len() != 3 || !raw.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(raw).ok()?.parse().ok()
    }

    /// `content-type`.
    pub fn content_type(&self) -> Option<String> {
        self.get_str("content-type")
    }

    /// Whether `content-type` is gRPC (`application/grpc` or `application/grpc+proto` etc.).
    pub fn is_grpc(&self) -> bool {
        self.content_type().is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct == "application/grpc"
                || ct.starts_with("application/grpc+")
                || ct.starts_with("application/grpc;")
        })
    }

    /// `grpc-status` as a number, when present and numeric.
    pub fn grpc_status(&self) -> Option<u32> {
        std::str::from_utf8(self.get("grpc-status")?)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// `grpc-message`, percent-decoded as the gRPC spec encodes it (invalid escapes kept as sent).
    pub fn grpc_message(&self) -> Option<String> {
        self.get("grpc-message").map(decode_message)
    }

    /// Sum of field sizes as RFC 9113 §6.5.2 counts them (name + value + 32 each).
    pub fn list_size(&self) -> usize {
        self.fields
            .iter()
            .map(|f| f.name.len() + f.value.len() + 32)
            .sum()
    }
}

/// The request that asked for `Upgrade: h2c`, as HTTP/2 stream 1 carries it (RFC 7540 §3.2):
/// pseudo-headers from the request line and Host, the other fields lowercased, minus the
/// hop-by-hop ones the upgrade consumed. The proxy's session and `inspect` both read an
/// upgraded stream 1 through it.
pub fn upgraded_request(head: &crate::http::RequestHead) -> HeaderList {
    let authority = head.host().unwrap_or_default().to_string();
    let mut list = HeaderList::from_pairs([
        (":method", head.method.as_str()),
        (":scheme", "http"),
        (":authority", authority.as_str()),
        (":path", head.target.as_str()),
    ]);
    const HOP: [&str; 5] = [
        "connection",
        "upgrade",
        "http2-settings",
        "host",
        "keep-alive",
    ];
    for (name, value) in &head.headers {
        let name = name.to_ascii_lowercase();
        if !HOP.contains(&name.as_str()) {
            list.fields.push(HeaderField {
                name: name.into_bytes(),
                value: value.clone(),
            });
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_headers_and_grpc_fields_are_found() {
        let list = HeaderList::from_pairs([
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/google.bytestream.ByteStream/Read"),
            (":authority", "localhost:50051"),
            ("content-type", "application/grpc"),
        ]);
        assert_eq!(list.method().as_deref(), Some("POST"));
        assert_eq!(
            list.path().as_deref(),
            Some("/google.bytestream.ByteStream/Read")
        );
        assert_eq!(list.authority().as_deref(), Some("localhost:50051"));
        assert!(list.is_grpc());
        assert_eq!(list.get("Content-Type"), Some(&b"application/grpc"[..]));

        let trailers =
            HeaderList::from_pairs([("grpc-status", "14"), ("grpc-message", "upstream%20gone%2")]);
        assert_eq!(trailers.grpc_status(), Some(14));
        assert_eq!(trailers.grpc_message().as_deref(), Some("upstream gone%2"));
    }

    #[test]
    fn status_must_be_three_digits() {
        assert_eq!(
            HeaderList::from_pairs([(":status", "200")]).status(),
            Some(200)
        );
        assert_eq!(HeaderList::from_pairs([(":status", "20")]).status(), None);
        assert_eq!(HeaderList::from_pairs([(":status", "+20")]).status(), None);
    }
}
