//! Assembles each S3 multipart object from the parts that were really acknowledged, in CompleteMultipartUpload order, and checks it against the ETag S3 answered.
//!
//! S3 keeps, for each part number of an upload, the last part upload it acknowledged; the
//! CompleteMultipartUpload body lists part numbers and ETags in object order. So the stored
//! object is: for each listed part, the last UploadPart of that upload id and number answered 2xx
//! before the Complete (on the same leg), its bytes in listing order. Retried parts, parts
//! reset mid-body and parts answered 5xx are thereby left out, exactly as S3 leaves them out.
//! The assembled bytes give S3's multipart ETag (MD5 of the part MD5s, `-N`), compared with the
//! ETag the Complete answered: a mismatch, answered 200, means S3 stored another object than
//! the capture's parts make.

use serde::Serialize;

use super::attempts::BodySource;
use super::content_address::{AddressCheck, ContentAddress, Scheme};
use super::digest::HashAlgo;
use super::exchange::Exchange;
use super::leg;
use super::objects::{ObjectCheck, Piece, Transfer};
use super::s3_checksum;
use super::s3_content::{self, Content};
use super::s3_request::{element, unescape, unquote, Operation, S3Request};

/// Largest CompleteMultipartUpload body read (10,000 parts of ~100 bytes each fit).
const MAX_COMPLETE_BODY: u64 = 4 * 1024 * 1024;

/// One assembled multipart object.
#[derive(Debug, Clone)]
pub struct Assembled {
    /// The CompleteMultipartUpload exchange.
    pub complete: usize,
    /// The object's bytes, when every listed part was found.
    pub content: Option<Content>,
    /// The report entry.
    pub check: ObjectCheck,
}

/// A part as the CompleteMultipartUpload body lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Listed {
    number: u32,
    etag: String,
}

/// Assembles every CompleteMultipartUpload whose request body arrived whole; `uploads` holds the
/// content of each UploadPart exchange (by exchange id).
pub fn assemble(
    exchanges: &mut [Exchange],
    requests: &[Option<S3Request>],
    uploads: &[Option<Content>],
    findings: &mut Vec<String>,
) -> Vec<Assembled> {
    let mut out = Vec::new();
    for (id, req) in requests.iter().enumerate() {
        let Some(req) = req.as_ref() else { continue };
        if req.operation != Operation::CompleteMultipartUpload || !exchanges[id].request.complete {
            continue;
        }
        let Some(listed) = read_listing(&mut exchanges[id]) else {
            continue;
        };
        out.push(assemble_one(
            exchanges, requests, uploads, id, req, &listed, findings,
        ));
    }
    out
}

fn assemble_one(
    exchanges: &mut [Exchange],
    requests: &[Option<S3Request>],
    uploads: &[Option<Content>],
    id: usize,
    req: &S3Request,
    listed: &[Listed],
    findings: &mut Vec<String>,
) -> Assembled {
    let leg_of = exchanges[id].leg;
    let mut problems = Vec::new();
    let mut pieces = Vec::new();
    let mut spans = Vec::new();
    let mut md5s = Vec::new();
    let mut offset = 0u64;
    let mut whole = true;
    for part in listed {
        // The last acknowledged upload of this part before the Complete, on this leg.
        let found = (0..id).rev().find(|&u| {
            requests[u].as_ref().is_some_and(|r| {
                r.operation == Operation::UploadPart
                    && r.upload_id == req.upload_id
                    && r.path == req.path
                    && r.part_number == Some(part.number)
                    && r.succeeded()
            }) && exchanges[u].leg == leg_of
                && exchanges[u].request.complete
        });
        let Some(u) = found else {
            problems.push(format!(
                "part {} was never acknowledged in this capture",
                part.number
            ));
            whole = false;
            continue;
        };
        let answered = requests[u].as_ref().and_then(|r| r.etag.clone());
        if answered
            .as_deref()
            .is_some_and(|a| !a.eq_ignore_ascii_case(&part.etag))
        {
            problems.push(format!(
                "part {} is listed with ETag {} but its acknowledged upload (exchange {u}) was answered ETag {}",
                part.number,
                part.etag,
                answered.unwrap_or_default()
            ));
        }
        let Some(content) = uploads[u].as_ref() else {
            problems.push(format!(
                "part {} (exchange {u}): bytes unknown",
                part.number
            ));
            whole = false;
            continue;
        };
        pieces.push(Piece {
            exchange: u,
            offset,
            length: content.length,
            complete: true,
        });
        offset += content.length;
        spans.extend(content.spans.iter().copied());
        match &content.md5 {
            Some(m) => md5s.push(m.clone()),
            None => whole = false,
        }
    }
    let computed = whole.then(|| s3_checksum::multipart_etag(&md5s)).flatten();
    let answered = req.etag.clone();
    let no_answer = req.status.is_none();
    let check = match (&computed, &answered) {
        _ if !whole => None,
        (Some(c), Some(a)) => Some(if a.eq_ignore_ascii_case(c) {
            AddressCheck::Matches
        } else {
            AddressCheck::DigestMismatch {
                expected: a.clone(),
                actual: c.clone(),
            }
        }),
        (_, None) => Some(AddressCheck::NotChecked {
            reason: if no_answer {
                "CompleteMultipartUpload got no answer: whether S3 assembled the object is unknown"
                    .into()
            } else if !exchanges[id].response.complete {
                format!(
                    "CompleteMultipartUpload was answered {} but the answer was cut before its ETag",
                    exchanges[id].response_text()
                )
            } else {
                format!(
                    "CompleteMultipartUpload was answered {} without an ETag",
                    exchanges[id].response_text()
                )
            },
        }),
        (None, Some(_)) => Some(AddressCheck::NotChecked {
            reason: "a part's bytes were not retained".into(),
        }),
    };
    if !whole {
        problems.push(format!(
            "incomplete: {} of {} listed parts found",
            pieces.len(),
            listed.len()
        ));
    }
    let corrupt = req.succeeded() && check.as_ref().is_some_and(|c| c.is_mismatch());
    let address = ContentAddress {
        algo: HashAlgo::Md5,
        digest: answered.clone().or(computed.clone()).unwrap_or_default(),
        size: None,
        scheme: Scheme::S3,
        key: Some(req.path.clone()),
        backend: Some("ETag (multipart)".into()),
        chunk: None,
    };
    if corrupt {
        let ids: Vec<usize> = pieces.iter().map(|p| p.exchange).collect();
        findings.push(format!(
            "CORRUPT: s3 multipart upload of {} ({} leg, CompleteMultipartUpload exchange {id}, {}): S3 answered ETag {}, the acknowledged parts ({}) make {}{}",
            req.path,
            leg::name(leg_of),
            exchanges[id].response_text(),
            answered.as_deref().unwrap_or("?"),
            crate::plural::named("exchange", &ids),
            computed.as_deref().unwrap_or("?"),
            if problems.is_empty() { String::new() } else { format!("; {}", problems.join("; ")) }
        ));
    }
    let content = (whole && pieces.len() == listed.len()).then(|| {
        let readable = spans.iter().all(|s| {
            exchanges[s.exchange]
                .body
                .as_ref()
                .is_some_and(|b| b.incomplete_copy().is_none())
        });
        let digests = readable
            .then(|| s3_content::hash(exchanges, &spans, &[HashAlgo::Md5, HashAlgo::Sha256]))
            .flatten();
        let (md5, sha256) = match digests.as_deref() {
            Some([m, s]) => (Some(m.clone()), Some(s.clone())),
            _ => (None, None),
        };
        Content {
            spans: spans.clone(),
            length: offset,
            md5,
            sha256,
            etag: computed.clone(),
            readable,
        }
    });
    Assembled {
        complete: id,
        content,
        check: ObjectCheck {
            leg: leg_of,
            transfer: Transfer::Upload,
            address,
            pieces,
            length: offset,
            complete: whole,
            check,
            problems,
            corrupt,
        },
    }
}

/// The parts a CompleteMultipartUpload body lists, in order.
fn read_listing(ex: &mut Exchange) -> Option<Vec<Listed>> {
    let body = ex.body.as_mut()?;
    if body.incomplete_copy().is_some() || body.len() > MAX_COMPLETE_BODY {
        return None;
    }
    let mut bytes = vec![0u8; body.len() as usize];
    body.read_at(0, &mut bytes).ok()?;
    Some(parse_listing(&String::from_utf8_lossy(&bytes)))
}

/// `<Part><PartNumber>1</PartNumber><ETag>"…"</ETag></Part>…` → the listed parts.
fn parse_listing(xml: &str) -> Vec<Listed> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<Part>") {
        let after = &rest[start + 6..];
        let end = after.find("</Part>").unwrap_or(after.len());
        let part = &after[..end];
        let number = element(part, "PartNumber").and_then(|n| n.trim().parse().ok());
        let etag = element(part, "ETag").map(|e| unquote(&unescape(e)));
        if let (Some(number), Some(etag)) = (number, etag) {
            out.push(Listed { number, etag });
        }
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_and_answers_are_read_from_s3_xml() {
        let body = r#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>"ce1717e2468046e3f7e083388b6ad21d"</ETag><PartNumber>1</PartNumber></Part><Part><ETag>&quot;572987c0d71f1e9c5dc155c4acf69825&quot;</ETag><ChecksumCRC32>01QKCg==</ChecksumCRC32><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>"#;
        assert_eq!(
            parse_listing(body),
            vec![
                Listed {
                    number: 1,
                    etag: "ce1717e2468046e3f7e083388b6ad21d".into()
                },
                Listed {
                    number: 2,
                    etag: "572987c0d71f1e9c5dc155c4acf69825".into()
                },
            ]
        );
    }
}
