//! The `respond` fault: answer an HTTP request from faultline instead of forwarding it.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::FaultError;
use crate::http::answer::{closing_answer, reason_phrase};

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
    /// Status code, 100–599.
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
        if !(100..=599).contains(&self.status) {
            return Err(FaultError::new(
                "status",
                "an HTTP status is between 100 and 599",
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
            let multiline = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
            if name.is_empty() || name.contains(':') || multiline(name) || multiline(value) {
                return Err(FaultError::new(
                    "headers",
                    "header names and values must be single-line text",
                ));
            }
        }
        Ok(())
    }

    /// The exact bytes faultline sends: status line, headers, `Connection: close`, body.
    pub fn response_bytes(&self) -> Vec<u8> {
        let body = self.body.clone().unwrap_or_else(|| {
            format!(
                "{} {} (injected by faultline)\n",
                self.status,
                reason_phrase(self.status)
            )
        });
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        closing_answer(self.status, &headers, body.as_bytes())
    }
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
        let text = String::from_utf8(respond.response_bytes()).expect("utf8");
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
}
