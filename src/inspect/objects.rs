//! Checks each content-addressed object whole, stitched from the pieces it crossed in (resumes, chunks).
//!
//! An object may cross in pieces: a download cut at N and resumed with `Range: bytes=N-` (a 206
//! whose `Content-Range` says where it starts) or p2phttp `offset=N`, on another connection or
//! not; a p2phttp `put` resumed at the server's `putoffset`; git-annex chunk keys (`-S…-C<n>`),
//! each a slice of one object. Pieces are laid in time order the way a client (or a server, for
//! uploads) keeps them: the bytes before a resume offset stay, the piece's bytes follow. Where a
//! resume overlaps bytes already there, they must be the same bytes: if not, the resume does not
//! continue the object and the offset is named. Once the pieces cover the whole object, its digest
//! is computed over them and compared with the address.
//!
//! Upload pieces answered with an HTTP error are left out: the server discarded them.
//!
//! Plain uploads sent whole in one request are `content_checks` (and their retries
//! `attempt_groups`); every other object is checked here: every download, p2phttp `put`s, chunked
//! and resumed uploads. S3 GETs of a single-part object are pieces of the object their ETag
//! names (ranged and resumed downloads); a whole S3 GET alone is `s3`'s, S3 multipart uploads
//! are assembled by `s3_multipart`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::attempts::BodySource;
use super::content_address::{self, AddressCheck, ContentAddress, Scheme};
use super::digest::{HashAlgo, Hasher};
use super::download_holes::{self, Span};
use super::exchange::Exchange;
use super::leg;
use super::p2phttp::{self, P2pRequest};
use super::s3_checksum;
use super::s3_request::{Operation, S3Request};
use super::segments::{self, Seg};
use crate::direction::Leg;

/// Block size for reading retained bodies.
const BLOCK: usize = 256 * 1024;

/// Which way an object crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transfer {
    /// Request bodies (PUT, POST, p2phttp `put`).
    Upload,
    /// Response bodies (GET 200/206, p2phttp `get`).
    Download,
}

/// One exchange's part of an object.
#[derive(Debug, Clone, Serialize)]
pub struct Piece {
    /// Exchange id.
    pub exchange: usize,
    /// Where its bytes start in the object.
    pub offset: u64,
    /// Content bytes it carried.
    pub length: u64,
    /// True when it carried all it announced.
    pub complete: bool,
}

/// One object, stitched from its pieces and checked.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectCheck {
    /// Capture leg.
    #[serde(serialize_with = "leg::serialize")]
    pub leg: Option<Leg>,
    /// Upload or download.
    pub transfer: Transfer,
    /// The object's address (chunk fields dropped for chunked objects).
    pub address: ContentAddress,
    /// Its pieces, in time order.
    pub pieces: Vec<Piece>,
    /// Bytes of the object the pieces make up.
    pub length: u64,
    /// True when the pieces cover the whole object and the last one completed.
    pub complete: bool,
    /// The whole object against its address (`null` while incomplete).
    pub check: Option<AddressCheck>,
    /// Resumes that did not continue the object, gaps, incomplete ends: one sentence each.
    pub problems: Vec<String>,
    /// True for a mismatch (a download, or an upload the server accepted) or a resume whose
    /// bytes differ from the ones before it.
    pub corrupt: bool,
}

/// Rewords an object's or blob's "incomplete: N of M bytes crossed" when the capture missed
/// bytes of its transfer: the capture holds N, the rest may well have crossed.
pub(crate) fn capture_missed(problems: &mut [String]) {
    for problem in problems {
        let held = problem
            .strip_prefix("incomplete: ")
            .and_then(|p| p.split_once(" bytes crossed"));
        if let Some((held, rest)) = held {
            *problem = format!(
                "incomplete in the capture: it holds {held} bytes{rest} (the capture missed bytes of the transfer, not the connection)"
            );
        }
    }
}

/// What one exchange contributes.
struct Spec {
    exchange: usize,
    offset: u64,
    length: u64,
    complete: bool,
    accepted: bool,
    download: bool,
}

/// Whether an upload was accepted: a p2phttp `put` says `stored`, anything else answers 2xx.
pub fn accepted(ex: &Exchange) -> bool {
    match P2pRequest::of(ex) {
        Some(p) if p.operation == "put" => p.stored(ex).unwrap_or(false),
        _ => ex.succeeded(),
    }
}

/// `bytes N-M/T` → (N, T when known).
pub(crate) fn content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    Some((start, total.trim().parse().ok()))
}

/// The number of body bytes the response said it carries: p2phttp's `X-git-annex-data-length`,
/// `Content-Length`, the span of a `Content-Range`, or what a p2phttp download's key still needs
/// from its offset (the key's `-s` size). `None` when nothing states it (a chunked answer of
/// a path that names no size). What a cut response is measured against.
pub fn stated_response_length(ex: &Exchange) -> Option<u64> {
    let header = |name| {
        ex.response_header(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let p2p = P2pRequest::of(ex);
    let span = || {
        let value = ex.response_header("content-range")?;
        let range = value
            .trim()
            .strip_prefix("bytes")?
            .trim()
            .split('/')
            .next()?;
        let (first, last) = range.split_once('-')?;
        let (first, last): (u64, u64) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
        last.checked_sub(first).map(|n| n + 1)
    };
    p2p.as_ref()
        .and_then(|_| header("x-git-annex-data-length"))
        .or_else(|| header("content-length"))
        .or_else(span)
        .or_else(|| {
            p2p.filter(|p| p.operation == "get" && ex.response.status == Some(200))?
                .key_remaining()
        })
}

/// The number of body bytes the request said it carries: `Content-Length`, or for a p2phttp
/// `put` (a chunked body) its `X-git-annex-data-length`, else what its key still needs from its
/// offset. What a cut request is measured against.
pub fn stated_request_length(ex: &Exchange) -> Option<u64> {
    ex.request.expected.or_else(|| {
        let put = P2pRequest::of(ex).filter(|p| p.operation == "put")?;
        p2phttp::data_length(ex, false).or_else(|| put.key_remaining())
    })
}

/// The size of the whole object a 200 answer to a GET states: its offset (a p2phttp resume)
/// plus its stated length, unless a `Content-Encoding` makes the length that of other bytes.
fn stated_object_size(ex: &Exchange, offset: u64) -> Option<u64> {
    let encoded = ex
        .response_header("content-encoding")
        .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
    if encoded || ex.response.status != Some(200) {
        return None;
    }
    Some(offset + stated_response_length(ex)?)
}

/// The object address and piece of `ex`, if it carries a content-addressed body; `whole` is
/// true for a plain upload sent in one request (checked by `content_checks` instead).
fn piece_of(ex: &Exchange) -> Option<(ContentAddress, Spec, bool, Option<u64>)> {
    let Some(address) = content_address::parse_target(&ex.target) else {
        return s3_download_piece(ex);
    };
    let p2p = P2pRequest::of(ex);
    let chunk_offset = address.chunk.map_or(0, |c| c.offset());
    if ex.method == "GET" && ex.response_body.is_some() {
        let (offset, total) = if ex.response.status == Some(206) {
            ex.response_header("content-range")
                .and_then(content_range)?
        } else {
            let offset = p2p.as_ref().map_or(0, |p| p.offset);
            (offset, stated_object_size(ex, offset))
        };
        let announced = p2phttp::data_length(ex, true);
        let body = ex.response.body_length;
        let length = announced.map_or(body, |n| n.min(body));
        let complete = ex.response.complete && announced.is_none_or(|n| body >= n);
        let spec = Spec {
            exchange: ex.id,
            offset: chunk_offset + offset,
            length,
            complete,
            accepted: true,
            download: true,
        };
        return Some((address.object(), spec, false, total));
    }
    if ex.is_upload() && ex.body.is_some() {
        let p2p_put = p2p.as_ref().is_some_and(|p| p.operation == "put");
        if p2p.is_some() && !p2p_put {
            return None; // checkpresent, putoffset, lockcontent…: no object bytes
        }
        if ex.response.status.is_some_and(|s| !(200..300).contains(&s)) {
            // An error answer: the server threw these bytes away (git-annex's p2phttp server
            // answers 500 to a put it could not use, and `putoffset` then shows it kept nothing
            // of it). A reset or a `{"stored":false}` leaves what arrived in place.
            return None;
        }
        let offset = p2p.as_ref().map_or(0, |p| p.offset);
        let announced = p2phttp::data_length(ex, false).filter(|_| p2p_put);
        let body = ex.request.length;
        let length = announced.map_or(body, |n| n.min(body));
        let complete = ex.request.complete && announced.is_none_or(|n| body >= n);
        let whole = !p2p_put && address.chunk.is_none();
        let spec = Spec {
            exchange: ex.id,
            offset: chunk_offset + offset,
            length,
            complete,
            accepted: accepted(ex),
            download: false,
        };
        return Some((address.object(), spec, whole, None));
    }
    None
}

/// A GetObject of a single-part S3 object as a piece of the object its ETag (the MD5 of its
/// bytes) names, so ranged downloads (s3transfer fetches big objects in 8 MiB ranges) and resumes
/// after a cut are checked whole. A whole 200 is `whole`: `s3` checks it on its own, and it is
/// stitched only beside a cut or ranged piece. A multipart ETag (`…-N`), or one SSE-KMS/SSE-C
/// makes something else than an MD5, names no digest: such GETs are no pieces.
fn s3_download_piece(ex: &Exchange) -> Option<(ContentAddress, Spec, bool, Option<u64>)> {
    let r = S3Request::of(ex)?;
    if r.operation != Operation::GetObject
        || r.part_number.is_some()
        || ex.response_body.is_none()
        || s3_checksum::etag_is_not_md5(&ex.request_headers, &ex.response_headers)
    {
        return None;
    }
    let md5 = r.etag.as_deref().and_then(s3_checksum::etag_md5)?;
    let (offset, size) = match r.status {
        Some(206) => ex
            .response_header("content-range")
            .and_then(content_range)?,
        Some(200) => (
            0,
            ex.response_header("content-length")
                .and_then(|v| v.trim().parse::<u64>().ok()),
        ),
        _ => return None,
    };
    let address = ContentAddress {
        algo: HashAlgo::Md5,
        digest: md5,
        size,
        scheme: Scheme::S3,
        key: Some(r.path.clone()),
        backend: Some("ETag".into()),
        chunk: None,
    };
    let complete = ex.response.complete;
    let spec = Spec {
        exchange: ex.id,
        offset,
        length: ex.response.body_length,
        complete,
        accepted: true,
        download: true,
    };
    let whole = r.status == Some(200) && complete;
    Some((address, spec, whole, size))
}

/// True when `ex` is a GET of a single-part S3 object, checked here against its ETag (the MD5).
pub fn is_s3_download_piece(ex: &Exchange) -> bool {
    s3_download_piece(ex).is_some()
}

fn body(exchanges: &mut [Exchange], id: usize, download: bool) -> Option<&mut dyn BodySource> {
    let ex = exchanges.get_mut(id)?;
    let b = if download {
        ex.response_body.as_mut()?
    } else {
        ex.body.as_mut()?
    };
    Some(b as &mut dyn BodySource)
}

/// Reads `buf.len()` bytes of segment `seg` from object offset `at` (inside the segment).
fn read_seg(
    exchanges: &mut [Exchange],
    seg: &Seg,
    download: bool,
    at: u64,
    buf: &mut [u8],
) -> Option<()> {
    body(exchanges, seg.source, download)?
        .read_at(seg.from + (at - seg.start), buf)
        .ok()
}

/// Stitches and checks every object that is not a plain whole upload; returns them in order of
/// their first piece, with a finding for each corrupt one.
pub fn check_objects(exchanges: &mut [Exchange], findings: &mut Vec<String>) -> Vec<ObjectCheck> {
    type Group = (ContentAddress, Vec<Spec>, bool, Option<u64>);
    // The digest is in the key: an S3 key overwritten between two downloads names two objects.
    type Key = (Option<Leg>, Transfer, String, String);
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    let mut order = Vec::new();
    for ex in exchanges.iter() {
        let Some((address, spec, whole, total)) = piece_of(ex) else {
            continue;
        };
        let transfer = if spec.download {
            Transfer::Download
        } else {
            Transfer::Upload
        };
        let key = (ex.leg, transfer, address.name(), address.digest.clone());
        let entry = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            (address, Vec::new(), true, None)
        });
        entry.2 &= whole;
        entry.3 = total.or(entry.3);
        entry.1.push(spec);
    }
    let mut out = Vec::new();
    for key in order {
        let Some((address, specs, whole, total)) = groups.remove(&key) else {
            continue;
        };
        if whole {
            continue;
        }
        let (leg, transfer, _, _) = key;
        out.push(stitch(
            exchanges, leg, transfer, address, specs, total, findings,
        ));
    }
    out
}

/// The pieces laid over each other in time order.
struct Layout {
    /// The object's bytes: which exchange holds each run.
    segs: Vec<Seg>,
    /// Gaps and pieces that do not continue the bytes before them, in time order.
    problems: Vec<String>,
    /// Indices (into the specs) of the pieces whose bytes differ from those laid before them.
    discontinuous: Vec<usize>,
}

impl Layout {
    fn len(&self) -> u64 {
        self.segs.last().map_or(0, Seg::end)
    }

    fn has_holes(&self) -> bool {
        let mut at = 0;
        self.segs.iter().any(|s| {
            let hole = s.start > at;
            at = s.end();
            hole
        })
    }
}

/// Lays `specs` (except the `skipped` indices) over each other in time order, as the receiving
/// side writes them: a piece overwrites the bytes at its offsets.
fn lay(exchanges: &mut [Exchange], specs: &[Spec], skipped: &[usize], download: bool) -> Layout {
    let mut segs: Vec<Seg> = Vec::new();
    let mut problems = Vec::new();
    let mut discontinuous = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        if skipped.contains(&i) {
            continue;
        }
        let start = spec.offset;
        let covered = segs.last().map_or(0, Seg::end);
        if start > covered && segs.iter().all(|s| s.end() < start) {
            problems.push(format!(
                "exchange {} starts at offset {start} but only {covered} bytes came before it: bytes {covered}..{start} never crossed here",
                spec.exchange
            ));
        }
        if let Some(at) = overlap_difference(exchanges, &segs, download, spec) {
            problems.push(format!(
                "{} (exchange {}) does not continue the earlier bytes: they differ at offset {at}",
                resume_phrase(start),
                spec.exchange
            ));
            discontinuous.push(i);
        }
        // Overwrite [start, end). A piece never ends the object: a chunk or a resumed range
        // completes without being the object's last bytes.
        segments::lay(
            &mut segs,
            Seg {
                start,
                source: spec.exchange,
                from: 0,
                len: spec.length,
            },
        );
    }
    Layout {
        segs,
        problems,
        discontinuous,
    }
}

/// Stitches one object from its pieces and checks it against its address.
///
/// Where a piece's bytes do not continue the bytes before it and the server refused that piece
/// (an upload answered without `stored`, or cut), the server may have dropped its bytes or kept
/// them: git-annex's p2phttp server does either, depending on whether the refused request
/// overlapped the one before it. The object is laid both ways; if it verifies only without the
/// refused pieces, that is what the server stored, and it is said.
fn stitch(
    exchanges: &mut [Exchange],
    leg: Option<Leg>,
    transfer: Transfer,
    address: ContentAddress,
    specs: Vec<Spec>,
    total: Option<u64>,
    findings: &mut Vec<String>,
) -> ObjectCheck {
    let download = transfer == Transfer::Download;
    let last = specs.last();
    let expected = address.size.or(total);
    let checked = |exchanges: &mut [Exchange], layout: &Layout| {
        let len = layout.len();
        let complete = !layout.has_holes()
            && match expected {
                Some(size) => {
                    size == len && last.is_some_and(|s| s.complete || s.offset + s.length < size)
                }
                None => last.is_some_and(|s| s.complete),
            };
        let check = complete.then(|| {
            let digest = digest_of(exchanges, &layout.segs, download, &address, len);
            address.check(len, digest.as_deref())
        });
        (complete, check)
    };
    let mut layout = lay(exchanges, &specs, &[], download);
    let (mut complete, mut check) = checked(exchanges, &layout);
    let mut dropped = Vec::new();
    if !download && !matches!(check, Some(AddressCheck::Matches)) {
        let refused: Vec<usize> = layout
            .discontinuous
            .iter()
            .copied()
            .filter(|&i| !specs[i].accepted && Some(i) != specs.len().checked_sub(1))
            .collect();
        if !refused.is_empty() {
            let without = lay(exchanges, &specs, &refused, download);
            let (c, k) = checked(exchanges, &without);
            if matches!(k, Some(AddressCheck::Matches)) {
                (layout, complete, check, dropped) = (without, c, k, refused);
            }
        }
    }
    let len = layout.len();
    let mut problems = Vec::new();
    let verified = matches!(check, Some(AddressCheck::Matches));
    let differs = if verified {
        // The stitched object hashes to its address, so its bytes are the truth: name the pieces
        // that carried other bytes (the server replaced or dropped them), not the ones that
        // disagreed with them.
        problems.extend(wrong_pieces(exchanges, &layout.segs, download, &specs));
        if !dropped.is_empty() {
            let ids: Vec<usize> = dropped.iter().map(|&i| specs[i].exchange).collect();
            problems.push(format!(
                "the object verifies only without the bytes of refused {}: the server dropped them",
                crate::plural::named("exchange", &ids)
            ));
        }
        false
    } else {
        problems.extend(layout.problems.iter().cloned());
        !layout.discontinuous.is_empty()
    };
    if !complete && !layout.has_holes() {
        problems.push(format!(
            "incomplete: {len} of {} bytes crossed",
            expected.map_or("?".into(), |e| e.to_string())
        ));
    }
    let holes = if download {
        let spans: Vec<(Span, usize)> = specs
            .iter()
            .map(|s| {
                let span = Span {
                    start: s.offset,
                    len: s.length,
                };
                (span, s.exchange)
            })
            .collect();
        download_holes::skipped(exchanges, &spans)
    } else {
        Vec::new()
    };
    for hole in &holes {
        // Said once, as the hole the client skipped rather than bytes that never crossed.
        let generic = format!("exchange {} starts at offset {} ", hole.after, hole.end);
        problems.retain(|p| !p.starts_with(&generic));
        problems.push(hole.describe(exchanges));
    }
    let accepted = last.is_some_and(|s| s.accepted);
    let mismatch = check.as_ref().is_some_and(|c| c.is_mismatch());
    let corrupt = if download {
        mismatch || differs || !holes.is_empty()
    } else {
        accepted && (mismatch || differs)
    };
    let pieces: Vec<Piece> = specs
        .iter()
        .map(|s| Piece {
            exchange: s.exchange,
            offset: s.offset,
            length: s.length,
            complete: s.complete,
        })
        .collect();
    if corrupt {
        let ids: Vec<usize> = pieces.iter().map(|p| p.exchange).collect();
        let mut why: Vec<String> = problems.clone();
        if let Some(c) = check.as_ref().filter(|c| c.is_mismatch()) {
            why.push(match c {
                AddressCheck::DigestMismatch { expected, actual } => {
                    format!(
                    "content MISMATCH: the {} says {expected}, the {len} bytes {} hash to {actual}",
                    if address.scheme == Scheme::S3 { "ETag" } else { "key" },
                    if download { "received" } else { "stored" }
                )
                }
                AddressCheck::SizeMismatch { expected, actual } => {
                    format!("size MISMATCH: the key says {expected} bytes, {actual} crossed")
                }
                _ => String::new(),
            });
        }
        findings.push(format!(
            "CORRUPT: {} of {} ({} leg, {}): {}",
            if download { "download" } else { "upload" },
            address.name(),
            leg::name(leg),
            crate::plural::named("exchange", &ids),
            why.join("; ")
        ));
    }
    ObjectCheck {
        leg,
        transfer,
        address,
        pieces,
        length: len,
        complete,
        check,
        problems,
        corrupt,
    }
}

fn resume_phrase(start: u64) -> String {
    if start > 0 {
        format!("the resume at offset {start}")
    } else {
        "the retry from offset 0".into()
    }
}

/// What a problem says of a piece that carried the object's bytes from another offset; the
/// verdict's warning about such a piece finds it by these words.
pub(crate) const SENT_AS_OFFSET: &str = ", sent as offset ";

/// Bytes of a piece looked up in the verified object to say where they really belong.
const NEEDLE: usize = 64;

/// One sentence for each piece whose bytes differ from the verified object `segs`, in time order.
///
/// A client that resends the rest of a consumed body under offset 0 (an HTTP library retrying a
/// streamed request on a fresh connection) leaves exactly this: the bytes are the object's, from
/// the wrong offset. Where the piece's first bytes occur in the object, that offset is named.
fn wrong_pieces(
    exchanges: &mut [Exchange],
    segs: &[Seg],
    download: bool,
    specs: &[Spec],
) -> Vec<String> {
    let mut out = Vec::new();
    for spec in specs {
        let Some(at) = overlap_difference(exchanges, segs, download, spec) else {
            continue;
        };
        let mut sentence = format!(
            "{} (exchange {}) carried other bytes than the object's: they differ at offset {at}",
            resume_phrase(spec.offset),
            spec.exchange
        );
        let mut needle = vec![0u8; (spec.length.min(NEEDLE as u64)) as usize];
        let found = body(exchanges, spec.exchange, download)
            .and_then(|b| b.read_at(0, &mut needle).ok())
            .and_then(|()| find_in_object(exchanges, segs, download, &needle));
        if let Some(from) = found.filter(|&from| from != spec.offset) {
            sentence.push_str(&format!(
                "; they are the object's bytes from offset {from}{SENT_AS_OFFSET}{}",
                spec.offset
            ));
        }
        out.push(sentence);
    }
    out
}

/// The one offset of `needle` in the object laid out by `segs` (without holes); `None` when it
/// is not there or there more than once (a repeating object says nothing about where a piece
/// came from).
fn find_in_object(
    exchanges: &mut [Exchange],
    segs: &[Seg],
    download: bool,
    needle: &[u8],
) -> Option<u64> {
    if needle.is_empty() {
        return None;
    }
    let finder = memchr::memmem::Finder::new(needle);
    // A window of the object: the last `needle.len() - 1` bytes of the previous block, then a
    // block, so a match across a block boundary is found.
    let keep = needle.len() - 1;
    let mut window: Vec<u8> = Vec::with_capacity(BLOCK + keep);
    let mut window_start = 0u64;
    let mut buf = vec![0u8; BLOCK];
    let mut found = None;
    for seg in segs {
        let mut at = seg.start;
        while at < seg.end() {
            let n = ((seg.end() - at) as usize).min(BLOCK);
            read_seg(exchanges, seg, download, at, &mut buf[..n])?;
            window.extend_from_slice(&buf[..n]);
            for i in finder.find_iter(&window) {
                if found.replace(window_start + i as u64).is_some() {
                    return None;
                }
            }
            let drop = window.len().saturating_sub(keep);
            window.drain(..drop);
            window_start += drop as u64;
            at += n as u64;
        }
    }
    found
}

/// The first object offset where `spec`'s bytes differ from bytes already laid there.
fn overlap_difference(
    exchanges: &mut [Exchange],
    segs: &[Seg],
    download: bool,
    spec: &Spec,
) -> Option<u64> {
    let (start, end) = (spec.offset, spec.offset + spec.length);
    let mut old = vec![0u8; BLOCK];
    let mut new = vec![0u8; BLOCK];
    for seg in segs {
        let (from, to) = (seg.start.max(start), seg.end().min(end));
        let mut at = from;
        while at < to {
            let n = ((to - at) as usize).min(BLOCK);
            read_seg(exchanges, seg, download, at, &mut old[..n])?;
            body(exchanges, spec.exchange, download)?
                .read_at(at - start, &mut new[..n])
                .ok()?;
            if let Some(i) = old[..n].iter().zip(&new[..n]).position(|(a, b)| a != b) {
                return Some(at + i as u64);
            }
            at += n as u64;
        }
    }
    None
}

fn digest_of(
    exchanges: &mut [Exchange],
    segs: &[Seg],
    download: bool,
    address: &ContentAddress,
    len: u64,
) -> Option<String> {
    let mut hasher = Hasher::new(address.algo)?;
    let mut buf = vec![0u8; BLOCK];
    let mut hashed = 0u64;
    for seg in segs {
        if seg.start != hashed {
            return None;
        }
        let mut at = seg.start;
        while at < seg.end() {
            let n = ((seg.end() - at) as usize).min(BLOCK);
            read_seg(exchanges, seg, download, at, &mut buf[..n])?;
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        hashed = seg.end();
    }
    (hashed == len).then(|| hasher.finish_hex())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::body_store::{MemoryUse, RetainedBody};
    use crate::inspect::legs::tests::exchange;
    use sha2::{Digest, Sha256};

    fn retained(bytes: &[u8]) -> RetainedBody {
        let mut body = RetainedBody::new(MemoryUse::default());
        body.append(bytes);
        body
    }

    /// A GET of `target` answered `status` with `bytes` (a 206 says where they start).
    fn download(
        id: usize,
        target: &str,
        status: u16,
        at: u64,
        total: u64,
        bytes: &[u8],
    ) -> Exchange {
        let mut ex = exchange(id, Leg::Client, id as u64, "GET", target, Some("h"));
        ex.request.length = 0;
        ex.response.status = Some(status);
        ex.response.body_length = bytes.len() as u64;
        if status == 206 {
            let range = format!("bytes {at}-{}/{total}", at + bytes.len() as u64 - 1);
            ex.response_headers.push(("content-range".into(), range));
        }
        ex.response_body = Some(retained(bytes));
        ex
    }

    fn object(n: usize) -> (Vec<u8>, String) {
        // Not periodic, so a run of its bytes sits at one offset only.
        let mut state = 0x2545_f491_u32;
        let bytes: Vec<u8> = (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect();
        let key = format!("SHA256E-s{n}--{}.bin", hex::encode(Sha256::digest(&bytes)));
        (bytes, key)
    }

    #[test]
    fn content_range_values() {
        assert_eq!(content_range("bytes 100-199/300"), Some((100, Some(300))));
        assert_eq!(content_range("bytes 100-199/*"), Some((100, None)));
        assert_eq!(content_range("items 1-2/3"), None);
    }

    /// A DVC download cut at 1 MiB of a 200 that said `Content-Length: 12000000` (the md5 path
    /// names no size): the object is incomplete at 1048576 of 12000000 bytes, not "of ?".
    #[test]
    fn a_cut_download_is_measured_against_its_content_length() {
        let bytes = vec![7u8; 1_048_576];
        let target = "/files/md5/76/e97278d329d19142f5157733bdd13a";
        let mut cut = download(0, target, 200, 0, 0, &bytes);
        cut.response.complete = false;
        cut.response_headers
            .push(("content-length".into(), "12000000".into()));
        assert_eq!(stated_response_length(&cut), Some(12_000_000));
        let mut exchanges = vec![cut];
        let mut findings = Vec::new();
        let objects = check_objects(&mut exchanges, &mut findings);
        assert_eq!(objects.len(), 1, "{objects:?}");
        assert!(
            objects[0]
                .problems
                .contains(&"incomplete: 1048576 of 12000000 bytes crossed".to_string()),
            "{objects:?}"
        );
        // An encoded body's Content-Length is not the object's size.
        exchanges[0]
            .response_headers
            .push(("content-encoding".into(), "gzip".into()));
        let objects = check_objects(&mut exchanges, &mut Vec::new());
        assert!(
            objects[0]
                .problems
                .contains(&"incomplete: 1048576 of ? bytes crossed".to_string()),
            "{objects:?}"
        );
    }

    /// What a cut message is measured against: a 206's span, p2phttp's data length, else the
    /// key's size from the offset; a put's data length or key size when chunked.
    #[test]
    fn stated_lengths_come_from_headers_or_the_key() {
        let (bytes, key) = object(300_000);
        let ranged = download(0, "/x", 206, 100, 1_000, &bytes[..50]);
        assert_eq!(stated_response_length(&ranged), Some(50));
        let get = download(
            0,
            &format!("/git-annex/u/v4/key/{key}?clientuuid=c&offset=102400"),
            200,
            0,
            0,
            &bytes[..10],
        );
        assert_eq!(
            stated_response_length(&get),
            Some(197_600),
            "the key's -s300000"
        );
        let mut put = exchange(
            0,
            Leg::Client,
            1,
            "POST",
            &format!("/git-annex/u/v4/put?key={key}&offset=0"),
            Some("h"),
        );
        put.request.expected = None;
        assert_eq!(stated_request_length(&put), Some(300_000));
        put.request_headers
            .push(("x-git-annex-data-length".into(), "400000".into()));
        assert_eq!(stated_request_length(&put), Some(400_000));
        let plain = exchange(1, Leg::Client, 1, "GET", "/x", Some("h"));
        assert_eq!(stated_response_length(&plain), None);
    }

    #[test]
    fn a_range_resume_on_another_connection_is_one_object() {
        let (bytes, key) = object(10_000);
        let target = format!("/annex/objects/{key}");
        let mut cut = download(0, &target, 200, 0, 0, &bytes[..4_000]);
        cut.response.complete = false;
        let mut exchanges = vec![
            cut,
            download(1, &target, 206, 3_000, 10_000, &bytes[3_000..]),
        ];
        let mut findings = Vec::new();
        let objects = check_objects(&mut exchanges, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].check, Some(AddressCheck::Matches), "{objects:?}");
        assert_eq!(objects[0].length, 10_000);
    }

    #[test]
    fn a_resume_that_does_not_continue_the_bytes_is_corrupt_with_the_offset() {
        let (bytes, key) = object(10_000);
        let target = format!("/annex/objects/{key}");
        let mut other = bytes[3_000..].to_vec();
        other[1_500] ^= 1; // object offset 4_500: beyond the overlap, caught by the digest
        other[500] ^= 1; // object offset 3_500: inside the overlap with the first piece
        let mut cut = download(0, &target, 200, 0, 0, &bytes[..4_000]);
        cut.response.complete = false;
        let mut exchanges = vec![cut, download(1, &target, 206, 3_000, 10_000, &other)];
        let mut findings = Vec::new();
        let objects = check_objects(&mut exchanges, &mut findings);
        assert!(objects[0].corrupt);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].contains(&format!("CORRUPT: download of {key}"))
                && findings[0].contains("the resume at offset 3000 (exchange 1) does not continue the earlier bytes: they differ at offset 3500")
                && findings[0].contains("content MISMATCH"),
            "{findings:?}"
        );
    }

    /// A download in one piece that hashes wrong names its one exchange in the singular, as the
    /// git-annex section of scenarios/README.md quotes it (it said "exchanges 2").
    #[test]
    fn a_corrupt_download_in_one_piece_names_one_exchange() {
        let (mut bytes, key) = object(3_000);
        bytes[1_000] ^= 1;
        let target = format!("/annex/objects/{key}");
        let mut exchanges = vec![
            exchange(0, Leg::Client, 0, "GET", "/config", Some("h")),
            exchange(1, Leg::Client, 1, "GET", "/other", Some("h")),
            download(2, &target, 200, 0, 0, &bytes),
        ];
        let mut findings = Vec::new();
        check_objects(&mut exchanges, &mut findings);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].starts_with(&format!(
                "CORRUPT: download of {key} (client leg, exchange 2): content MISMATCH: the key says"
            )),
            "{findings:?}"
        );
    }

    /// http-client's hidden retry: the rest of a consumed body sent again as offset 0, then a
    /// whole retry that verifies. The object is sound; the resent piece is named, with where its
    /// bytes really belong, and the good retry is not blamed for disagreeing with it.
    #[test]
    fn a_piece_from_the_wrong_offset_is_named_where_the_object_verifies() {
        let (bytes, key) = object(10_000);
        let target = format!("/annex/objects/{key}");
        let mut cut = download(0, &target, 200, 0, 0, &bytes[..4_000]);
        cut.response.complete = false;
        let mut resent = download(1, &target, 200, 0, 0, &bytes[6_000..]);
        resent.response.complete = false;
        let mut exchanges = vec![cut, resent, download(2, &target, 200, 0, 0, &bytes)];
        let mut findings = Vec::new();
        let objects = check_objects(&mut exchanges, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(objects[0].check, Some(AddressCheck::Matches));
        assert!(!objects[0].corrupt);
        assert_eq!(
            objects[0].problems,
            vec![
                "the retry from offset 0 (exchange 1) carried other bytes than the object's: \
                 they differ at offset 0; they are the object's bytes from offset 6000, sent as offset 0"
                    .to_string()
            ]
        );
    }

    /// A p2phttp `put` of `bytes` at `offset`, announcing `announced` bytes; `stored` is the
    /// server's answer (`None`: the connection was reset before one).
    fn put(
        id: usize,
        key: &str,
        offset: u64,
        announced: u64,
        bytes: &[u8],
        stored: Option<bool>,
    ) -> Exchange {
        let target = format!("/git-annex/u/v4/put?key={key}&offset={offset}");
        let mut ex = exchange(id, Leg::Upstream, id as u64, "POST", &target, Some("h"));
        ex.request.length = bytes.len() as u64;
        ex.request.complete = stored.is_some();
        ex.request_headers
            .push(("x-git-annex-data-length".into(), announced.to_string()));
        ex.body = Some(retained(bytes));
        ex.response.status = stored.map(|_| 200);
        if let Some(stored) = stored {
            ex.response_text = format!(r#"{{"plusuuids":[],"stored":{stored}}}"#).into_bytes();
        }
        ex
    }

    /// git-annex's p2phttp server refused a put that resent the tail of the file as offset 0 and
    /// kept the bytes it had; the resume from its `putoffset` verifies only without the refused
    /// piece, and inspect says so instead of crying corruption.
    #[test]
    fn a_refused_piece_the_server_dropped_is_left_out_when_that_verifies() {
        let (bytes, key) = object(10_000);
        let mut exchanges = vec![
            put(0, &key, 0, 10_000, &bytes[..4_000], None),
            put(1, &key, 0, 10_000, &bytes[8_000..], Some(false)),
            put(2, &key, 4_000, 6_000, &bytes[4_000..], Some(true)),
        ];
        let mut findings = Vec::new();
        let objects = check_objects(&mut exchanges, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(objects[0].check, Some(AddressCheck::Matches), "{objects:?}");
        assert_eq!(
            objects[0].problems,
            vec![
                "the retry from offset 0 (exchange 1) carried other bytes than the object's: \
                 they differ at offset 0; they are the object's bytes from offset 8000, sent as offset 0"
                    .to_string(),
                "the object verifies only without the bytes of refused exchange 1: the server dropped them"
                    .to_string(),
            ]
        );
    }

    /// The same refused piece, but the server kept its bytes and accepted the resume: the object
    /// it stored is wrong, and the piece is named.
    #[test]
    fn a_refused_piece_the_object_needs_stays_corrupt() {
        let (bytes, key) = object(10_000);
        let mut exchanges = vec![
            put(0, &key, 0, 10_000, &bytes[..4_000], None),
            put(1, &key, 0, 10_000, &bytes[5_000..], Some(false)),
            put(2, &key, 5_000, 5_000, &bytes[5_000..], Some(true)),
        ];
        let mut findings = Vec::new();
        let objects = check_objects(&mut exchanges, &mut findings);
        assert!(objects[0].corrupt, "{objects:?}");
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].contains("the retry from offset 0 (exchange 1) does not continue the earlier bytes: they differ at offset 0")
                && findings[0].contains("content MISMATCH"),
            "{findings:?}"
        );
    }

    #[test]
    fn chunks_make_up_their_object() {
        let (bytes, key) = object(250);
        let (fields, name) = key.split_once("--").expect("key");
        let mut exchanges: Vec<Exchange> = (0..3)
            .map(|c| {
                let chunk = format!("{fields}-S100-C{}--{name}", c + 1);
                let end = ((c + 1) * 100).min(250);
                download(c, &format!("/dav/{chunk}"), 200, 0, 0, &bytes[c * 100..end])
            })
            .collect();
        let mut findings = Vec::new();
        let objects = check_objects(&mut exchanges, &mut findings);
        assert_eq!(objects.len(), 1, "{objects:?}");
        assert_eq!(objects[0].address.key.as_deref(), Some(key.as_str()));
        assert_eq!(objects[0].check, Some(AddressCheck::Matches));
        assert!(findings.is_empty());
    }

    /// A GetObject answered with `etag`: an S3 download (SigV4 headers on the request).
    fn s3_get(id: usize, status: u16, at: u64, total: u64, bytes: &[u8], etag: &str) -> Exchange {
        let mut ex = download(id, "/bkt/big.bin", status, at, total, bytes);
        ex.request_headers
            .push(("x-amz-content-sha256".into(), "UNSIGNED-PAYLOAD".into()));
        ex.response_headers
            .push(("etag".into(), format!("\"{etag}\"")));
        if status == 200 {
            ex.response_headers
                .push(("content-length".into(), total.to_string()));
        }
        ex
    }

    #[test]
    fn s3_ranged_downloads_are_checked_whole_against_a_single_part_etag() {
        let (bytes, _) = object(30_000);
        let etag = hex::encode(md5::Md5::digest(&bytes));
        let mut other = bytes.clone();
        other[25_000] ^= 1;
        let other_etag = hex::encode(md5::Md5::digest(&other));
        let mut cut = s3_get(4, 200, 0, 30_000, &bytes[..5_000], &etag);
        cut.response.complete = false;
        let mut exchanges = vec![
            // s3transfer's ranges, answered out of order.
            s3_get(0, 206, 10_000, 30_000, &bytes[10_000..20_000], &etag),
            s3_get(1, 206, 0, 30_000, &bytes[..10_000], &etag),
            s3_get(2, 206, 20_000, 30_000, &bytes[20_000..], &etag),
            // Overwritten since: another object, whose second range came back damaged.
            s3_get(3, 206, 0, 30_000, &other[..20_000], &other_etag),
            s3_get(5, 206, 20_000, 30_000, &bytes[20_000..], &other_etag),
            // A cut whole GET, resumed with a Range.
            cut,
            s3_get(6, 206, 5_000, 30_000, &bytes[5_000..], &etag),
            // A whole GET alone (checked by `s3`), and a multipart ETag (no digest): no objects.
            s3_get(7, 200, 0, 30_000, &bytes, &etag),
            s3_get(
                8,
                206,
                0,
                30_000,
                &bytes,
                "0123456789abcdef0123456789abcdef-3",
            ),
        ];
        for (i, ex) in exchanges.iter_mut().enumerate() {
            ex.id = i;
            match i {
                5 | 6 => ex.target = "/bkt/resumed.bin".into(),
                7 => ex.target = "/bkt/whole.bin".into(),
                _ => {}
            }
        }
        let mut findings = Vec::new();
        let objects = check_objects(&mut exchanges, &mut findings);
        let got: Vec<(Vec<usize>, Option<&AddressCheck>, bool)> = objects
            .iter()
            .map(|o| {
                (
                    o.pieces.iter().map(|p| p.exchange).collect(),
                    o.check.as_ref(),
                    o.corrupt,
                )
            })
            .collect();
        assert_eq!(got.len(), 3, "{objects:#?}");
        assert_eq!(got[0], (vec![0, 1, 2], Some(&AddressCheck::Matches), false));
        assert_eq!(got[1].0, vec![3, 4]);
        assert!(got[1].2 && got[1].1.is_some_and(|c| c.is_mismatch()));
        assert_eq!(got[2], (vec![5, 6], Some(&AddressCheck::Matches), false));
        assert_eq!(objects[0].address.scheme, Scheme::S3);
        assert_eq!(objects[0].address.key.as_deref(), Some("/bkt/big.bin"));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].starts_with("CORRUPT: download of /bkt/big.bin (client leg, exchanges 3, 4): content MISMATCH: the ETag says"),
            "{findings:?}"
        );
    }
}
