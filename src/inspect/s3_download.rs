//! S3 downloads whose ETag names no digest of their bytes (a multipart object's `…-N`, SSE-KMS): the GETs of one download stitched into one object, checked against the upload the capture shows.
//!
//! s3transfer's `download_file` fetches a big object in ranges (a cut range fetched again); a
//! single-part object's ranges are checked whole against its ETag (the MD5) in `objects`. A
//! multipart object's ETag is an MD5 of part MD5s, which the downloaded bytes cannot be checked
//! against without the part sizes, so `stored` compares each GET with the bytes the path was
//! uploaded with. Those comparisons were silent when they agreed, and a download with nothing to
//! compare with (its upload not in the capture) said nothing at all: here each download becomes
//! one report object (transfer `download`) that says it matches the upload, differs from it, or
//! was not checked and why.

use std::collections::BTreeMap;

use super::content_address::{AddressCheck, ContentAddress, Scheme};
use super::digest::HashAlgo;
use super::download_holes::{self, Span};
use super::exchange::Exchange;
use super::objects::{ObjectCheck, Piece, Transfer};
use super::s3_request::S3Request;
use super::stored::{ReadCheck, ReadCompared};
use crate::direction::Leg;

/// One object per download: the `reads` of each (leg, path, ETag), in order of their first
/// GET, leaving out the GETs `objects` checks against an MD5 ETag (`covered`).
pub fn downloads(
    exchanges: &[Exchange],
    requests: &[Option<S3Request>],
    reads: &[ReadCheck],
    covered: impl Fn(&Exchange) -> bool,
    findings: &mut Vec<String>,
) -> Vec<ObjectCheck> {
    type Key = (Option<Leg>, String, String);
    let mut groups: BTreeMap<Key, Vec<&ReadCheck>> = BTreeMap::new();
    let mut order: Vec<Key> = Vec::new();
    for read in reads {
        let ex = &exchanges[read.exchange];
        let Some(r) = requests[read.exchange].as_ref() else {
            continue;
        };
        if covered(ex) || ex.response_body.is_none() {
            continue;
        }
        let etag = r.etag.clone().unwrap_or_default();
        let key = (ex.leg, r.path.clone(), etag);
        groups
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(read);
    }
    order
        .into_iter()
        .filter_map(|key| {
            let group = groups.remove(&key)?;
            Some(object(exchanges, key, &group, findings))
        })
        .collect()
}

/// `bytes N-M/T` → (N, T when known).
fn range_of(ex: &Exchange) -> Option<(u64, Option<u64>)> {
    if ex.response.status == Some(206) {
        let value = ex.response_header("content-range")?;
        let (range, total) = value.trim().strip_prefix("bytes")?.trim().split_once('/')?;
        let start = range.split('-').next()?.trim().parse().ok()?;
        Some((start, total.trim().parse().ok()))
    } else {
        let total = ex
            .response_header("content-length")
            .and_then(|v| v.trim().parse().ok());
        Some((0, total))
    }
}

/// Bytes of `0..total` the pieces cover (overlaps counted once).
fn covered_bytes(pieces: &[Piece]) -> u64 {
    let mut spans: Vec<(u64, u64)> = pieces
        .iter()
        .map(|p| (p.offset, p.offset + p.length))
        .collect();
    spans.sort_unstable();
    let (mut total, mut reach) = (0u64, 0u64);
    for (start, end) in spans {
        let start = start.max(reach);
        if end > start {
            total += end - start;
            reach = end;
        }
    }
    total
}

fn object(
    exchanges: &[Exchange],
    (leg, path, etag): (Option<Leg>, String, String),
    group: &[&ReadCheck],
    findings: &mut Vec<String>,
) -> ObjectCheck {
    let mut pieces = Vec::new();
    let mut total = None;
    for read in group {
        let ex = &exchanges[read.exchange];
        let (offset, size) = range_of(ex).unwrap_or((0, None));
        total = total.or(size);
        pieces.push(Piece {
            exchange: read.exchange,
            offset,
            length: ex.response.body_length,
            complete: ex.response.complete,
        });
    }
    let covered = covered_bytes(&pieces);
    let complete = total.is_some_and(|t| covered >= t);
    let multipart = etag.contains('-');
    let mut address = ContentAddress {
        algo: HashAlgo::Md5,
        digest: etag.clone(),
        size: total,
        scheme: Scheme::S3,
        key: Some(path),
        backend: Some(
            if multipart {
                "ETag (multipart)"
            } else {
                "ETag"
            }
            .into(),
        ),
        chunk: None,
    };
    let differs = group.iter().find_map(|r| match r.compared {
        ReadCompared::Differs(write, offset) => Some((r.exchange, write, offset)),
        _ => None,
    });
    let not = group.iter().find_map(|r| match &r.compared {
        ReadCompared::Not(why) => Some(why.clone()),
        _ => None,
    });
    let same = group.iter().find_map(|r| match r.compared {
        ReadCompared::Same(write) => Some(write),
        _ => None,
    });
    let mut problems = Vec::new();
    let spans: Vec<(Span, usize)> = pieces
        .iter()
        .map(|p| {
            let span = Span {
                start: p.offset,
                len: p.length,
            };
            (span, p.exchange)
        })
        .collect();
    let holes = download_holes::skipped(exchanges, &spans);
    problems.extend(holes.iter().map(|h| h.describe(exchanges)));
    let kind = if multipart {
        "a multipart ETag is no digest of the bytes"
    } else {
        "this ETag (server-side encryption) is no MD5 of the bytes"
    };
    let check = if let Some((read, write, offset)) = differs {
        // `stored` made the finding; the object says where too.
        problems.push(format!(
            "exchange {read} differs from the upload (exchange {write}){}",
            offset.map_or(String::new(), |o| format!(" at object offset {o}"))
        ));
        Some(AddressCheck::DigestMismatch {
            expected: etag,
            actual: format!(
                "other bytes than the upload (exchange {write}) wrote{}",
                offset.map_or(String::new(), |o| format!(", from offset {o}"))
            ),
        })
    } else if !complete {
        problems.push(format!(
            "incomplete: {covered} of {} bytes crossed",
            total.map_or("?".into(), |t| t.to_string())
        ));
        None
    } else if let (Some(write), None) = (same, &not) {
        address.backend = Some(format!(
            "{}, compared with the upload (exchange {write})",
            address.backend.as_deref().unwrap_or("ETag")
        ));
        Some(AddressCheck::Matches)
    } else {
        Some(AddressCheck::NotChecked {
            reason: format!(
                "{}, and {kind}",
                not.unwrap_or_else(|| "no upload of it is in the capture".into())
            ),
        })
    };
    if !holes.is_empty() {
        let ids: Vec<usize> = pieces.iter().map(|p| p.exchange).collect();
        findings.push(format!(
            "CORRUPT: download of {} ({} leg, {}): {}",
            address.name(),
            super::leg::name(leg),
            crate::plural::named("exchange", &ids),
            holes
                .iter()
                .map(|h| h.describe(exchanges))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    ObjectCheck {
        leg,
        transfer: Transfer::Download,
        address,
        pieces,
        length: covered,
        complete,
        check,
        problems,
        corrupt: differs.is_some() || !holes.is_empty(),
    }
}
