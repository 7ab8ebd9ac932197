//! The RFC 9112 §6 rules that decide how each message body is delimited, from heads alone.

use crate::http::body::BodyKind;
use crate::http::error::HttpErrorKind;
use crate::http::headers::{self, HeaderFields};
use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;

/// What a response's framing needs to remember about the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RequestContext {
    /// The request was HEAD: its responses never carry a body.
    pub is_head: bool,
    /// The request was CONNECT: a 2xx answer turns the connection into a tunnel.
    pub is_connect: bool,
    /// The request may switch protocols (CONNECT, or an HTTP/1.1 Upgrade request).
    pub wants_switch: bool,
}

impl RequestContext {
    /// Captures the framing-relevant facts of a request head.
    pub fn of(head: &RequestHead) -> Self {
        let is_connect = head.is_method("CONNECT");
        RequestContext {
            is_head: head.is_method("HEAD"),
            is_connect,
            wants_switch: is_connect || head.requests_upgrade(),
        }
    }
}

/// How a response is framed and what it does to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResponseFraming {
    /// The body delimitation.
    pub body: BodyKind,
    /// A 1xx other than 101: the request still awaits its final response.
    pub interim: bool,
    /// 101, or 2xx to CONNECT: both directions become a tunnel after this head.
    pub switches: bool,
}

/// Body of a request (RFC 9112 §6.3 rules 4–6): chunked, Content-Length, or none at all.
/// A Transfer-Encoding that does not end in chunked cannot be delimited and is an error.
/// Transfer-Encoding with Content-Length is an error too (rule 3): an intermediary may forward
/// such a request only without its Content-Length, and faultline never rewrites a head, so a
/// server that frames it by Content-Length would read the chunked body as requests of its own
/// (a trial smuggled `GET /fail/1` past a respond rule that way).
pub(crate) fn request_body(head: &RequestHead) -> Result<BodyKind, HttpErrorKind> {
    let coding = transfer_coding(&head.headers)?;
    if coding.is_some() && headers::first_value(&head.headers, "content-length").is_some() {
        return Err(HttpErrorKind::ContentLengthWithTransferEncoding);
    }
    match coding {
        Some(TransferCoding::Chunked) => Ok(BodyKind::Chunked),
        Some(TransferCoding::Other(value)) => Err(HttpErrorKind::InvalidTransferEncoding { value }),
        None => Ok(content_length(&head.headers)?.map_or(BodyKind::None, BodyKind::Length)),
    }
}

/// Body of a response (RFC 9112 §6.3 rules 1–7) given what the request was; `None` for `request`
/// means no request is known (an unsolicited response), framed as if it answered a GET.
pub(crate) fn response_body(
    head: &ResponseHead,
    request: Option<RequestContext>,
) -> Result<ResponseFraming, HttpErrorKind> {
    let request = request.unwrap_or_default();
    let status = head.status;
    let none = |interim, switches| ResponseFraming {
        body: BodyKind::None,
        interim,
        switches,
    };
    if status == 101 {
        return if request.wants_switch {
            Ok(none(false, true))
        } else {
            Err(HttpErrorKind::UnexpectedSwitch)
        };
    }
    if (100..200).contains(&status) {
        return Ok(none(true, false));
    }
    if request.is_connect && (200..300).contains(&status) {
        return Ok(none(false, true));
    }
    if request.is_head || status == 204 || status == 304 {
        return Ok(none(false, false));
    }
    let body = match transfer_coding(&head.headers)? {
        Some(TransferCoding::Chunked) => BodyKind::Chunked,
        Some(TransferCoding::Other(_)) => BodyKind::UntilClose,
        None => content_length(&head.headers)?.map_or(BodyKind::UntilClose, BodyKind::Length),
    };
    Ok(ResponseFraming {
        body,
        interim: false,
        switches: false,
    })
}

/// The outcome of reading Transfer-Encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TransferCoding {
    /// Chunked is the final (and only chunked) coding.
    Chunked,
    /// Codings that do not end with chunked; the value is kept for the error message.
    Other(String),
}

/// Reads Transfer-Encoding across all its field lines. When present it overrides Content-Length
/// (RFC 9112 §6.3 rule 3), which is then ignored. Empty lists and chunked applied twice are errors.
fn transfer_coding(fields: &HeaderFields) -> Result<Option<TransferCoding>, HttpErrorKind> {
    if headers::first_value(fields, "transfer-encoding").is_none() {
        return Ok(None);
    }
    let raw = || {
        headers::values(fields, "transfer-encoding")
            .map(String::from_utf8_lossy)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let codings: Vec<&[u8]> = headers::list_elements(fields, "transfer-encoding")
        .map(|e| headers::trim_ows(e.split(|b| *b == b';').next().unwrap_or(e)))
        .collect();
    let chunked = |c: &[u8]| c.eq_ignore_ascii_case(b"chunked");
    match (
        codings.iter().filter(|c| chunked(c)).count(),
        codings.last(),
    ) {
        (_, None) | (2.., _) => Err(HttpErrorKind::InvalidTransferEncoding { value: raw() }),
        (1, Some(last)) if chunked(last) => Ok(Some(TransferCoding::Chunked)),
        _ => Ok(Some(TransferCoding::Other(raw()))),
    }
}

/// Reads Content-Length across all its field lines: every element must be 1*DIGIT fitting in u64,
/// and identical repeats (`5, 5`) are tolerated as RFC 9110 §8.6 allows; differing ones are an error.
fn content_length(fields: &HeaderFields) -> Result<Option<u64>, HttpErrorKind> {
    let mut found: Option<u64> = None;
    for value in headers::values(fields, "content-length") {
        let mut any = false;
        for element in value.split(|b| *b == b',') {
            let n = parse_decimal(headers::trim_ows(element))?;
            any = true;
            match found {
                Some(prev) if prev != n => return Err(HttpErrorKind::ConflictingContentLength),
                _ => found = Some(n),
            }
        }
        if !any {
            return Err(HttpErrorKind::InvalidContentLength);
        }
    }
    Ok(found)
}

/// Parses 1*DIGIT with overflow checking (no sign, no spaces, no hex).
fn parse_decimal(digits: &[u8]) -> Result<u64, HttpErrorKind> {
    if digits.is_empty() {
        return Err(HttpErrorKind::InvalidContentLength);
    }
    digits.iter().try_fold(0u64, |acc, b| {
        let d = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            _ => return Err(HttpErrorKind::InvalidContentLength),
        };
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(d))
            .ok_or(HttpErrorKind::InvalidContentLength)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HeaderFields {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn req(method: &str, pairs: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: method.into(),
            target: "/".into(),
            version: 1,
            headers: fields(pairs),
            head_len: 0,
        }
    }

    fn res(status: u16, pairs: &[(&str, &str)]) -> ResponseHead {
        ResponseHead {
            status,
            reason: String::new(),
            version: 1,
            headers: fields(pairs),
            head_len: 0,
        }
    }

    #[test]
    fn content_length_rules() {
        let cl = |v: &[(&str, &str)]| content_length(&fields(v));
        assert_eq!(cl(&[]), Ok(None));
        assert_eq!(cl(&[("Content-Length", "42")]), Ok(Some(42)));
        assert_eq!(
            cl(&[("content-length", "7, 7"), ("Content-Length", "7")]),
            Ok(Some(7))
        );
        assert_eq!(
            cl(&[("Content-Length", "7, 8")]),
            Err(HttpErrorKind::ConflictingContentLength)
        );
        assert_eq!(
            cl(&[("Content-Length", "7"), ("Content-Length", "8")]),
            Err(HttpErrorKind::ConflictingContentLength)
        );
        for bad in [
            "",
            "-1",
            "+1",
            "0x10",
            "1 2",
            "12a",
            "99999999999999999999",
            ",",
        ] {
            assert_eq!(
                cl(&[("Content-Length", bad)]),
                Err(HttpErrorKind::InvalidContentLength),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn transfer_encoding_rules() {
        let te = |v: &str| request_body(&req("POST", &[("Transfer-Encoding", v)]));
        assert_eq!(te("chunked"), Ok(BodyKind::Chunked));
        // Both framings in one request: a smuggling shape (RFC 9112 §6.3 rule 3).
        for te in ["chunked", "gzip, chunked"] {
            for headers in [
                [("Transfer-Encoding", te), ("Content-Length", "3")],
                [("Content-Length", "3"), ("Transfer-Encoding", te)],
            ] {
                assert_eq!(
                    request_body(&req("POST", &headers)),
                    Err(HttpErrorKind::ContentLengthWithTransferEncoding),
                    "{headers:?}"
                );
            }
        }
        assert_eq!(te("gzip, Chunked"), Ok(BodyKind::Chunked));
        for bad in ["gzip", "chunked, gzip", "chunked, chunked", "", " , "] {
            assert!(
                matches!(te(bad), Err(HttpErrorKind::InvalidTransferEncoding { .. })),
                "{bad:?}"
            );
        }
        let r =
            |v: &str| response_body(&res(200, &[("Transfer-Encoding", v)]), None).map(|f| f.body);
        assert_eq!(r("chunked, gzip"), Ok(BodyKind::UntilClose));
        assert_eq!(r("gzip,chunked"), Ok(BodyKind::Chunked));
    }

    #[test]
    fn request_and_response_body_rules() {
        assert_eq!(request_body(&req("POST", &[])), Ok(BodyKind::None));
        assert_eq!(
            request_body(&req("POST", &[("Content-Length", "0")])),
            Ok(BodyKind::Length(0))
        );
        let get = Some(RequestContext::default());
        let head = Some(RequestContext {
            is_head: true,
            ..Default::default()
        });
        let connect = Some(RequestContext::of(&req("CONNECT", &[])));
        let upgrade = Some(RequestContext::of(&req("GET", &[("Upgrade", "websocket")])));
        let cl = [("Content-Length", "10")];
        let body = |s, r| response_body(&res(s, &cl), r);
        assert_eq!(body(200, get).map(|f| f.body), Ok(BodyKind::Length(10)));
        assert_eq!(body(200, head).map(|f| f.body), Ok(BodyKind::None));
        assert_eq!(body(204, get).map(|f| f.body), Ok(BodyKind::None));
        assert_eq!(body(304, get).map(|f| f.body), Ok(BodyKind::None));
        assert_eq!(
            body(100, get).map(|f| (f.body, f.interim)),
            Ok((BodyKind::None, true))
        );
        assert_eq!(
            body(200, connect).map(|f| (f.body, f.switches)),
            Ok((BodyKind::None, true))
        );
        assert_eq!(
            body(407, connect).map(|f| (f.body, f.switches)),
            Ok((BodyKind::Length(10), false))
        );
        assert_eq!(body(101, upgrade).map(|f| f.switches), Ok(true));
        assert_eq!(body(101, get), Err(HttpErrorKind::UnexpectedSwitch));
        assert_eq!(
            response_body(&res(200, &[]), None).map(|f| f.body),
            Ok(BodyKind::UntilClose)
        );
    }
}
