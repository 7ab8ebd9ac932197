//! A parsed HTTP/1 request head and the questions the proxy asks of it (path, host, expectations).

use crate::http::error::HttpErrorKind;
use crate::http::headers::{self, HeaderFields};

/// A request head exactly as received: nothing is normalized, so the raw bytes stay authoritative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Method token, case preserved (`GET`, `PUT`, …).
    pub method: String,
    /// Request target as sent: origin-form, absolute-form, authority-form (CONNECT) or `*`.
    pub target: String,
    /// Minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Header fields in wire order.
    pub headers: HeaderFields,
    /// Bytes of the head on the wire, including leading empty lines and the final blank line.
    pub head_len: usize,
}

impl RequestHead {
    /// Parses a head from `buf`; `Ok(None)` when it is not complete yet.
    pub(crate) fn parse(buf: &[u8], max_headers: usize) -> Result<Option<Self>, HttpErrorKind> {
        let mut slots = vec![httparse::EMPTY_HEADER; max_headers];
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => Ok(Some(RequestHead {
                method: req.method.unwrap_or_default().to_string(),
                target: req.path.unwrap_or_default().to_string(),
                version: req.version.unwrap_or(1),
                headers: req
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), h.value.to_vec()))
                    .collect(),
                head_len,
            })),
            Ok(httparse::Status::Partial) => Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                Err(HttpErrorKind::TooManyHeaders { limit: max_headers })
            }
            Err(e) => Err(HttpErrorKind::InvalidHead {
                reason: e.to_string(),
            }),
        }
    }

    /// First value of header `name` (case-insensitive), raw bytes.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        headers::first_value(&self.headers, name)
    }

    /// Every value of header `name` (case-insensitive), one per field line, in wire order.
    pub fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// True when list header `name` contains `token` (case-insensitive), e.g.
    /// `has_token("connection", "close")` to see that the connection ends after this message.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        headers::has_token(&self.headers, name, token)
    }

    /// True when the method is `method` (methods are case-sensitive, RFC 9110 §9.1).
    pub fn is_method(&self, method: &str) -> bool {
        self.method == method
    }

    /// True for an absolute-form target (`http://host/path`), as sent to forward proxies.
    pub fn is_absolute_form(&self) -> bool {
        scheme_end(&self.target).is_some()
    }

    /// The path of the target without query: `/a/b` for `/a/b?x` and for `http://h/a/b?x`
    /// (`/` when an absolute-form target has none), `*` for the asterisk form, and empty for the
    /// authority form of CONNECT, which has no path.
    pub fn path(&self) -> &str {
        let rest = match self.after_authority() {
            Some(rest) if rest.is_empty() || rest.starts_with('?') => return "/",
            Some(rest) => rest,
            None if self.target.starts_with('/') || self.target == "*" => &self.target,
            None => return "",
        };
        rest.split('?').next().unwrap_or(rest)
    }

    /// The query string of the target (after the first `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The host the request is for: the authority of an absolute-form target (RFC 9112 §3.2.2 says it
    /// wins over Host), else the Host header, else the CONNECT target. Includes a port if one was sent.
    pub fn host(&self) -> Option<&str> {
        if let Some(start) = scheme_end(&self.target) {
            let authority = self.target[start..]
                .split(['/', '?'])
                .next()
                .unwrap_or_default();
            let host = authority.rsplit('@').next().unwrap_or(authority);
            return (!host.is_empty()).then_some(host);
        }
        if let Some(host) = self.header("host") {
            let host = std::str::from_utf8(headers::trim_ows(host)).ok()?;
            return (!host.is_empty()).then_some(host);
        }
        (self.is_method("CONNECT") && !self.target.is_empty()).then_some(self.target.as_str())
    }

    /// True when the client waits for `100 Continue` before sending its body
    /// (`Expect: 100-continue`, honoured only in HTTP/1.1 per RFC 9110 §10.1.1).
    pub fn expects_continue(&self) -> bool {
        self.version == 1
            && self
                .header("expect")
                .is_some_and(|v| headers::trim_ows(v).eq_ignore_ascii_case(b"100-continue"))
    }

    /// True when the client asks to switch protocols (an `Upgrade` header in HTTP/1.1;
    /// RFC 9110 §7.8 makes servers ignore it in HTTP/1.0).
    pub fn requests_upgrade(&self) -> bool {
        self.version == 1 && self.header("upgrade").is_some()
    }

    /// The target after `scheme://authority`, for absolute-form targets.
    fn after_authority(&self) -> Option<&str> {
        let start = scheme_end(&self.target)?;
        let rest = &self.target[start..];
        Some(rest.find(['/', '?']).map_or("", |i| &rest[i..]))
    }
}

/// Offset just past `://` when `target` starts with a URI scheme (ALPHA *( ALPHA / DIGIT / + - . )).
fn scheme_end(target: &str) -> Option<usize> {
    let idx = target.find("://")?;
    let scheme = &target[..idx];
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then_some(idx + 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> RequestHead {
        match RequestHead::parse(s.as_bytes(), 100) {
            Ok(Some(head)) => head,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn origin_form_helpers() {
        let h = parse(
            "\r\nGET /a/b?x=1&y HTTP/1.1\r\nHost: example.com:8080\r\nExpect: 100-Continue\r\n\r\n",
        );
        assert_eq!(h.head_len, 2 + 25 + 24 + 22 + 2);
        assert_eq!(h.path(), "/a/b");
        assert_eq!(h.query(), Some("x=1&y"));
        assert_eq!(h.host(), Some("example.com:8080"));
        assert!(!h.is_absolute_form());
        assert!(h.expects_continue());
        assert_eq!(h.header("HOST"), Some(&b"example.com:8080"[..]));
    }

    #[test]
    fn absolute_authority_and_asterisk_forms() {
        let h = parse("GET http://user@proxy.test:3128?q HTTP/1.1\r\nHost: other\r\n\r\n");
        assert!(h.is_absolute_form());
        assert_eq!(h.host(), Some("proxy.test:3128"));
        assert_eq!(h.path(), "/");
        assert_eq!(h.query(), Some("q"));
        let h = parse("GET https://x.test/p/q HTTP/1.1\r\n\r\n");
        assert_eq!(h.path(), "/p/q");
        let h = parse("CONNECT x.test:443 HTTP/1.1\r\n\r\n");
        assert_eq!(h.host(), Some("x.test:443"));
        assert_eq!(h.path(), "");
        let h = parse("OPTIONS * HTTP/1.0\r\nExpect: 100-continue\r\nUpgrade: x\r\n\r\n");
        assert_eq!(h.path(), "*");
        assert_eq!(h.host(), None);
        assert!(!h.expects_continue(), "HTTP/1.0 ignores Expect");
        assert!(!h.requests_upgrade(), "HTTP/1.0 ignores Upgrade");
    }

    #[test]
    fn partial_and_errors() {
        assert_eq!(
            RequestHead::parse(b"GET / HTTP/1.1\r\nHost: x\r\n", 100),
            Ok(None)
        );
        assert!(matches!(
            RequestHead::parse(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\n\r\n", 1),
            Err(HttpErrorKind::TooManyHeaders { limit: 1 })
        ));
        assert!(matches!(
            RequestHead::parse(b"GET / HTTP/9.1\r\n\r\n", 100),
            Err(HttpErrorKind::InvalidHead { .. })
        ));
    }
}
