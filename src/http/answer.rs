//! Responses faultline writes itself (a `respond` rule, a strict-mode `400`, a forward-proxy
//! refusal): reason phrases and complete answers that close the connection.

/// Reason phrases of the statuses faultline and scenarios use; others get a generic phrase.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}

/// A complete HTTP/1.1 answer: status line, `headers` in order, `Content-Length`,
/// `Connection: close`, then `body`. The connection closes after it, so a keep-alive client
/// retries on a fresh connection and no framing ambiguity is left behind.
pub fn closing_answer(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
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
