//! A parsed HTTP/1 response head (status line and header fields).

use crate::http::error::HttpErrorKind;
use crate::http::headers::{self, HeaderFields};

/// A response head exactly as received; framing decisions are made elsewhere because they also
/// depend on the request it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code (100–999 as httparse accepts them).
    pub status: u16,
    /// Reason phrase, possibly empty.
    pub reason: String,
    /// Minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Header fields in wire order.
    pub headers: HeaderFields,
    /// Bytes of the head on the wire, including leading empty lines and the final blank line.
    pub head_len: usize,
}

impl ResponseHead {
    /// Parses a head from `buf`; `Ok(None)` when it is not complete yet.
    pub(crate) fn parse(buf: &[u8], max_headers: usize) -> Result<Option<Self>, HttpErrorKind> {
        let mut slots = vec![httparse::EMPTY_HEADER; max_headers];
        let mut res = httparse::Response::new(&mut slots);
        match res.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => Ok(Some(ResponseHead {
                status: res.code.unwrap_or_default(),
                reason: res.reason.unwrap_or_default().to_string(),
                version: res.version.unwrap_or(1),
                headers: res
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

    /// True when list header `name` contains `token` (case-insensitive), e.g.
    /// `has_token("connection", "close")` to see that the connection ends after this message.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        headers::has_token(&self.headers, name, token)
    }

    /// True for an interim 1xx response other than 101: the final response is still to come.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_line_and_headers() {
        let h = ResponseHead::parse(b"HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\nbody", 100);
        let h = h.ok().flatten().expect("complete head");
        assert_eq!(
            (h.status, h.version, h.reason.as_str()),
            (404, 0, "Not Found")
        );
        assert_eq!(h.header("server"), Some(&b"x"[..]));
        assert_eq!(h.head_len, 37);
        assert!(!h.is_interim());
        let h = ResponseHead::parse(b"HTTP/1.1 100 Continue\r\n\r\n", 100);
        assert!(h.ok().flatten().is_some_and(|h| h.is_interim()));
        assert!(ResponseHead::parse(b"HTTP/1.1 2x0 OK\r\n\r\n", 100).is_err());
    }
}
