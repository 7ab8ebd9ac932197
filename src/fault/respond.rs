//! The `respond` fault: answer an HTTP request from faultline instead of forwarding it.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::FaultError;
use crate::http::answer::{closing_head, reason_phrase};

/// When faultline answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum RespondAfter {
    /// As soon as the request head arrived; the body is never read, so the connection is closed
    /// after the answer.
    #[serde(rename = "request-head")]
    RequestHead,
    /// After reading (and discarding) the whole request body, as a server that rejects an upload
    /// after receiving it would.
    #[default]
    #[serde(rename = "request-body")]
    RequestBody,
}

/// `fault.respond = { status = 500, after = "request-body" }`: "fail the first attempt of each
/// upload", the failure HTTP clients are supposed to retry correctly. The request never reaches
/// the upstream; the answer carries `Connection: close` and faultline closes the connection after
/// it, so a keep-alive client retries on a fresh connection.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Respond {
    /// Status code of a final answer, 200–599.
    pub status: u16,
    /// Response body (default: the status line's reason phrase).
    pub body: Option<String>,
    /// Extra response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `request-head` or `request-body` (default).
    #[serde(default)]
    pub after: RespondAfter,
}

impl Respond {
    /// The status must be a real HTTP status and headers must not break the framing we write.
    pub fn validate(&self) -> Result<(), FaultError> {
        if !(200..=599).contains(&self.status) {
            return Err(FaultError::new(
                "status",
                "faultline's answer is final: a status between 200 and 599 (a 1xx is not an answer)",
            ));
        }
        if self.body.is_some() && !self.has_body() {
            return Err(FaultError::new(
                "body",
                format!("a {} answer has no body; remove `body`", self.status),
            ));
        }
        for (name, value) in &self.headers {
            let framing = ["content-length", "transfer-encoding", "connection"];
            if framing.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(FaultError::new(
                    "headers",
                    "Content-Length, Transfer-Encoding and Connection are set by faultline",
                ));
            }
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(FaultError::new(
                    "headers",
                    format!(
                        "{name:?} is not a header name: letters, digits and !#$%&'*+-.^_`|~ only (RFC 9110 §5.1)"
                    ),
                ));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(FaultError::new(
                    "headers",
                    format!("the value of {name} must be one line of text"),
                ));
            }
        }
        Ok(())
    }

    /// Whether an answer with this status carries a body (204, 205 and 304 never do: RFC 9110
    /// §15.3.5, §15.3.6, §15.4.5).
    pub fn has_body(&self) -> bool {
        !matches!(self.status, 204 | 205 | 304)
    }

    /// The exact bytes faultline sends: status line, headers, `Content-Length` (none for a 204),
    /// `Connection: close`, and the body unless the status has none or the request was a `HEAD`
    /// (whose answer states the length of the body a GET would get, without it).
    pub fn response_bytes(&self, head_request: bool) -> Vec<u8> {
        let body = if self.has_body() {
            self.body.clone().unwrap_or_else(|| {
                format!(
                    "{} {} (injected by faultline)\n",
                    self.status,
                    reason_phrase(self.status)
                )
            })
        } else {
            String::new()
        };
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        // A 204 carries no Content-Length (RFC 9110 §8.6), and a 304's may only state the length
        // the 200 would have had, which faultline does not know: `0` told a cache (an HTTP/1
        // trial) that the resource was now empty. Neither has a body either way.
        let length = (!matches!(self.status, 204 | 304)).then_some(body.len());
        let mut bytes = closing_head(self.status, &headers, length);
        if !head_request {
            bytes.extend_from_slice(body.as_bytes());
        }
        bytes
    }
}

/// A `tchar` of RFC 9110 §5.6.2, of which header names are made.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_is_complete_and_closes() {
        let respond = Respond {
            status: 500,
            body: Some("no".into()),
            headers: BTreeMap::from([("Retry-After".to_string(), "1".to_string())]),
            after: RespondAfter::RequestBody,
        };
        let text = String::from_utf8(respond.response_bytes(false)).expect("utf8");
        assert_eq!(
            text,
            "HTTP/1.1 500 Internal Server Error\r\nRetry-After: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
        );
    }

    #[test]
    fn framing_headers_and_bad_statuses_are_rejected() {
        let mut respond = Respond {
            status: 700,
            body: None,
            headers: BTreeMap::new(),
            after: RespondAfter::RequestHead,
        };
        assert_eq!(respond.validate().map_err(|e| e.key), Err("status"));
        respond.status = 503;
        respond.headers.insert("Content-Length".into(), "3".into());
        assert_eq!(respond.validate().map_err(|e| e.key), Err("headers"));
    }

    /// Found by a trial: a 204 went out with `Content-Length: 2` and a body, a HEAD got the
    /// body, 101 passed as a final answer, and a header name with a space was sent.
    #[test]
    fn answers_keep_to_http_rules() {
        let answer = |status: u16, body: Option<&str>| Respond {
            status,
            body: body.map(str::to_string),
            headers: BTreeMap::new(),
            after: RespondAfter::RequestBody,
        };
        let no_content = String::from_utf8(answer(204, None).response_bytes(false)).expect("utf8");
        assert_eq!(
            no_content,
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
        );
        let not_modified =
            String::from_utf8(answer(304, None).response_bytes(false)).expect("utf8");
        assert_eq!(
            not_modified,
            "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n"
        );
        // 205 Reset Content has no content either (RFC 9110 §15.3.6): a trial's body was sent.
        for status in [204, 205, 304] {
            assert_eq!(
                answer(status, Some("hi")).validate().map_err(|e| e.key),
                Err("body"),
                "{status}"
            );
        }
        let reset = String::from_utf8(answer(205, None).response_bytes(false)).expect("utf8");
        assert!(
            reset.ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n"),
            "{reset}"
        );
        let head =
            String::from_utf8(answer(503, Some("hello")).response_bytes(true)).expect("utf8");
        assert!(
            head.ends_with("Content-Length: 5\r\nConnection: close\r\n\r\n"),
            "{head}"
        );
        for status in [100, 101, 199] {
            assert_eq!(
                answer(status, None).validate().map_err(|e| e.key),
                Err("status")
            );
        }
        for bad in ["Bad Header", "", "x:y", "é"] {
            let mut r = answer(500, None);
            r.headers.insert(bad.to_string(), "v".to_string());
            assert_eq!(r.validate().map_err(|e| e.key), Err("headers"), "{bad:?}");
        }
        assert!(String::from_utf8(answer(418, None).response_bytes(false))
            .expect("utf8")
            .starts_with("HTTP/1.1 418 I'm a teapot\r\n"));
    }
}
