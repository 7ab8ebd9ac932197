//! Rewriting a forward-proxy request head for the origin: the absolute-form target becomes
//! origin-form and the Host header names the target's authority, as squid, nginx and mitmproxy
//! do. Origin servers that are not proxies often mishandle absolute-form targets (Python's
//! http.server stores `PUT http://h:p/x` under a folder named `http:`).
//!
//! Only the request line and the Host header change; every other header line is kept byte for
//! byte, in order.

use crate::http::authority::origin_form_of;

/// The head `raw` (a complete request head, blank line included) rewritten for the origin at
/// `authority`, or `None` when its target is not absolute-form (nothing to rewrite) or the head
/// is not shaped as expected.
pub fn rewrite_for_origin(raw: &[u8], authority: &str) -> Option<Vec<u8>> {
    // Leading empty lines before the request line are allowed (RFC 9112 §2.2); keep them.
    let start = raw.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let line_end = start + raw[start..].iter().position(|&b| b == b'\n')? + 1;
    let line = std::str::from_utf8(&raw[start..line_end]).ok()?;
    let eol = if line.ends_with("\r\n") { "\r\n" } else { "\n" };
    let mut parts = line.trim_end_matches(['\r', '\n']).splitn(3, ' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let origin = origin_form_of(target)?;

    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..start]);
    out.extend_from_slice(format!("{method} {origin} {version}{eol}").as_bytes());
    let mut host_written = false;
    let mut rest = &raw[line_end..];
    while !rest.is_empty() {
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (field, tail) = rest.split_at(len);
        rest = tail;
        let is_blank = field.iter().all(|&b| b == b'\r' || b == b'\n');
        let name = field.split(|&b| b == b':').next().unwrap_or_default();
        if is_blank {
            if !host_written {
                out.extend_from_slice(format!("Host: {authority}{eol}").as_bytes());
            }
            out.extend_from_slice(field);
            out.extend_from_slice(rest);
            break;
        }
        if name.eq_ignore_ascii_case(b"host") {
            if !host_written {
                out.extend_from_slice(name);
                out.extend_from_slice(format!(": {authority}{eol}").as_bytes());
                host_written = true;
            }
            continue;
        }
        out.extend_from_slice(field);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: Option<Vec<u8>>) -> String {
        String::from_utf8(bytes.expect("rewritten")).expect("utf8")
    }

    #[test]
    fn the_target_becomes_origin_form_and_host_names_the_authority() {
        let head = b"PUT http://127.0.0.1:9/files/x?y=1 HTTP/1.1\r\nhost: wrong\r\nX-A: b\r\n\r\n";
        assert_eq!(
            text(rewrite_for_origin(head, "127.0.0.1:9")),
            "PUT /files/x?y=1 HTTP/1.1\r\nhost: 127.0.0.1:9\r\nX-A: b\r\n\r\n"
        );
    }

    #[test]
    fn a_missing_host_is_added_and_duplicates_dropped() {
        let head = b"\r\nGET http://h HTTP/1.1\r\nAccept: */*\r\n\r\n";
        assert_eq!(
            text(rewrite_for_origin(head, "h")),
            "\r\nGET / HTTP/1.1\r\nAccept: */*\r\nHost: h\r\n\r\n"
        );
        let head = b"GET http://h/a HTTP/1.1\nHost: a\nHost: b\n\n";
        assert_eq!(
            text(rewrite_for_origin(head, "h")),
            "GET /a HTTP/1.1\nHost: h\n\n"
        );
    }

    #[test]
    fn origin_form_heads_are_left_alone() {
        assert_eq!(rewrite_for_origin(b"GET /a HTTP/1.1\r\n\r\n", "h"), None);
        assert_eq!(rewrite_for_origin(b"", "h"), None);
    }
}
