//! Responses faultline writes itself (a `respond` rule, a strict-mode `400`, a forward-proxy
//! refusal): reason phrases and complete answers that close the connection.

/// Reason phrases of the statuses faultline and scenarios use; others get a generic phrase.
pub fn reason_phrase(status: u16) -> &'static str {
    // The IANA registry's phrase where the status is registered (the `http` crate keeps it),
    // else the class: a client reads the code, the phrase only helps a person.
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or(match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        })
}

/// A complete HTTP/1.1 answer: status line, `headers` in order, `Content-Length`,
/// `Connection: close`, then `body`. The connection closes after it, so a keep-alive client
/// retries on a fresh connection and no framing ambiguity is left behind.
pub fn closing_answer(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut bytes = closing_head(status, headers, Some(body.len()));
    bytes.extend_from_slice(body);
    bytes
}

/// The head of a closing answer: status line, `headers` in order, `Content-Length` when
/// `content_length` says (a 204 must not carry one, RFC 9110 §8.6), `Connection: close`.
pub fn closing_head(
    status: u16,
    headers: &[(&str, &str)],
    content_length: Option<usize>,
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(len) = content_length {
        out.push_str(&format!("Content-Length: {len}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// A `text/plain` answer from faultline itself, saying why in the body.
pub fn plain_answer(status: u16, reason: &str) -> Vec<u8> {
    let body = format!("{status} {}: {reason}\n", reason_phrase(status));
    closing_answer(status, &[("Content-Type", "text/plain")], body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_complete_and_close() {
        let text = String::from_utf8(plain_answer(400, "bad")).expect("utf8");
        assert_eq!(
            text,
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 21\r\nConnection: close\r\n\r\n400 Bad Request: bad\n"
        );
        assert_eq!(reason_phrase(599), "Server Error");
    }
}
