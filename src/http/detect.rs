//! Guesses from the first bytes of a connection whether the client speaks HTTP/1, HTTP/2 or neither.

/// Verdict of [`looks_like_http1_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// Starts with a known HTTP/1 method followed by a space.
    Http1,
    /// Starts with the HTTP/2 connection preface (`PRI * HTTP/2.0…`, prior knowledge h2).
    Http2,
    /// Cannot be HTTP/1 or HTTP/2 (TLS, another protocol, garbage): relay as plain TCP.
    NotHttp,
    /// Too few bytes to tell; read more (within the detection timeout) and ask again.
    NeedMore,
}

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Methods accepted as HTTP/1: RFC 9110, PATCH, and the WebDAV family that real servers see.
/// A fixed list rather than "any token" keeps other text protocols from being mistaken for HTTP.
const METHODS: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"CONNECT",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"REPORT",
    b"SEARCH",
    b"MKACTIVITY",
    b"CHECKOUT",
    b"MERGE",
];

/// Decides the protocol from the first bytes a client sent, so the proxy can pick HTTP tracking,
/// h2 handling or a plain TCP relay once per connection. Looks at no more than the preface length.
pub fn looks_like_http1_request(prefix: &[u8]) -> Detection {
    let n = prefix.len().min(H2_PREFACE.len());
    if prefix[..n] == H2_PREFACE[..n] {
        return if n == H2_PREFACE.len() {
            Detection::Http2
        } else {
            Detection::NeedMore
        };
    }
    let mut may_grow = false;
    for method in METHODS {
        let n = prefix.len().min(method.len() + 1);
        let candidate = &prefix[..n];
        if candidate.len() == method.len() + 1 {
            if candidate.starts_with(method) && candidate[method.len()] == b' ' {
                return Detection::Http1;
            }
        } else if method.starts_with(candidate) {
            may_grow = true;
        }
    }
    if may_grow {
        Detection::NeedMore
    } else {
        Detection::NotHttp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_methods_preface_and_others() {
        assert_eq!(
            looks_like_http1_request(b"GET / HTTP/1.1\r\n"),
            Detection::Http1
        );
        assert_eq!(looks_like_http1_request(b"PROPFIND "), Detection::Http1);
        assert_eq!(
            looks_like_http1_request(b"CONNECT x:443 HTTP/1.1"),
            Detection::Http1
        );
        assert_eq!(looks_like_http1_request(b""), Detection::NeedMore);
        assert_eq!(looks_like_http1_request(b"PO"), Detection::NeedMore);
        assert_eq!(looks_like_http1_request(b"POST"), Detection::NeedMore);
        assert_eq!(
            looks_like_http1_request(b"PRI * HTTP/2.0\r\n"),
            Detection::NeedMore
        );
        assert_eq!(looks_like_http1_request(H2_PREFACE), Detection::Http2);
        assert_eq!(
            looks_like_http1_request(b"PRI * HTTP/1.1\r\n"),
            Detection::NotHttp
        );
        assert_eq!(
            looks_like_http1_request(b"get / HTTP/1.1"),
            Detection::NotHttp
        );
        assert_eq!(
            looks_like_http1_request(b"GETX / HTTP/1.1"),
            Detection::NotHttp
        );
        assert_eq!(
            looks_like_http1_request(b"\x16\x03\x01\x02\x00"),
            Detection::NotHttp
        );
        assert_eq!(
            looks_like_http1_request(b"SSH-2.0-OpenSSH"),
            Detection::NotHttp
        );
    }
}
