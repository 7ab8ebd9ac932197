//! Follows what each path holds as the capture goes (uploads answered 2xx, multipart completions, copies, deletes), and checks what S3's HEAD and GET report against it.
//!
//! Every leg is followed on its own: the upstream leg is what the server received, the client leg
//! what the client sent. A write is *confirmed* by its 2xx answer; a write whose body arrived whole
//! but whose answer never came (a reset, a dropped response: "did it commit?") is *unconfirmed*:
//! the server may hold it or what was there before. A later HEAD or GET that reports one of the
//! candidates settles it; one that reports none of them is a finding:
//! "s3 returned size X for KEY, uploaded Y". The reads of one download (ranges, a cut range
//! fetched again) are one finding naming them all.
//!
//! Paths: S3 objects are `/BUCKET/KEY` whatever the addressing style (see `s3_request`); any other
//! HTTP upload (DVC, faultline's built-in store) is named by its request path, query dropped,
//! percent-decoded. S3's DeleteObjects (a key list in a POST body) is not followed.

use std::collections::BTreeMap;

use super::content_address::percent_decode;
use super::exchange::Exchange;
use super::leg;
use super::p2phttp::P2pRequest;
use super::s3_checksum;
use super::s3_content::{self, Content};
use super::s3_multipart::Assembled;
use super::s3_request::{Operation, S3Request};
use super::target;
use crate::direction::Leg;

/// One write that left a path holding something.
#[derive(Debug, Clone)]
pub struct Holding {
    /// The write's exchange.
    pub exchange: usize,
    /// `PutObject`, `CompleteMultipartUpload`, `CopyObject`, `DeleteObject`, `PUT`, `POST`,
    /// `DELETE`, `MOVE`, `COPY`.
    pub how: &'static str,
    /// The bytes, when the capture shows them (`None` for a delete or bytes not in the capture).
    pub content: Option<Content>,
    /// True for a delete.
    pub deleted: bool,
}

/// What one path holds on one leg at the end of the capture.
#[derive(Debug, Clone)]
pub struct PathState {
    /// The leg.
    pub leg: Option<Leg>,
    /// `/BUCKET/KEY` or the request path.
    pub path: String,
    /// What the last acknowledged write left.
    pub confirmed: Option<Holding>,
    /// Later writes whose answer never came: the server may hold any of these instead.
    pub unconfirmed: Vec<Holding>,
    /// Every write to the path, whatever its outcome (exchange ids).
    pub writes: Vec<usize>,
    /// A HEAD or GET of it showed another size or other bytes than it should hold (the
    /// finding is made): an audit that finds the upload right says so beside it.
    pub read_back_wrong: bool,
}

/// What a GET's bytes were compared with: the write the path held, if the capture shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadCompared {
    /// The bytes are the write's (exchange id of the write).
    Same(usize),
    /// The bytes differ from the write's (exchange id of the write, first differing object
    /// offset); the finding is already made.
    Differs(usize, Option<u64>),
    /// Nothing to compare with: why.
    Not(String),
}

/// One S3 GetObject (200 or 206, not a part, not a version) and what its bytes were compared with.
#[derive(Debug, Clone)]
pub struct ReadCheck {
    /// The GET's exchange.
    pub exchange: usize,
    /// The comparison.
    pub compared: ReadCompared,
}

/// The path a plain (non-S3) HTTP request names: its path, query dropped, percent-decoded.
pub fn plain_path(ex: &Exchange) -> String {
    let origin = target::origin_form(&ex.target);
    percent_decode(origin.split(['?', '#']).next().unwrap_or(""))
}

/// Follows every path through the capture; `uploads[id]` is the content of S3 upload exchange `id`.
pub fn follow(
    exchanges: &mut [Exchange],
    requests: &[Option<S3Request>],
    uploads: &[Option<Content>],
    assembled: &[Assembled],
    findings: &mut Vec<String>,
) -> (Vec<PathState>, Vec<ReadCheck>) {
    let mut states: BTreeMap<(Option<Leg>, String), PathState> = BTreeMap::new();
    let mut wrong_reads: Vec<WrongRead> = Vec::new();
    let mut reads: Vec<ReadCheck> = Vec::new();
    for id in 0..exchanges.len() {
        let leg_of = exchanges[id].leg;
        let writes: Vec<(String, (Holding, Outcome))> = match &requests[id] {
            Some(r) => match s3_write(r, &exchanges[id], uploads, assembled, &states) {
                Some(w) => vec![(r.path.clone(), w)],
                None => {
                    if matches!(r.operation, Operation::HeadObject | Operation::GetObject) {
                        let compared = match states.get_mut(&(leg_of, r.path.clone())) {
                            Some(state) => {
                                let (wrong, compared) = check_read(exchanges, r, state);
                                if let Some(wrong) = wrong {
                                    state.read_back_wrong = true;
                                    merge(&mut wrong_reads, wrong);
                                }
                                compared
                            }
                            None => ReadCompared::Not("no upload of it is in the capture".into()),
                        };
                        if is_object_read(exchanges, r) {
                            reads.push(ReadCheck {
                                exchange: id,
                                compared,
                            });
                        }
                    }
                    continue;
                }
            },
            None => match plain_write(&exchanges[id]) {
                Some(w) => vec![(plain_path(&exchanges[id]), w)],
                None => webdav_move(&exchanges[id], &states),
            },
        };
        for (path, (holding, outcome)) in writes {
            let state = states
                .entry((leg_of, path.clone()))
                .or_insert_with(|| PathState {
                    leg: leg_of,
                    path,
                    confirmed: None,
                    unconfirmed: Vec::new(),
                    writes: Vec::new(),
                    read_back_wrong: false,
                });
            state.writes.push(id);
            match outcome {
                Outcome::Confirmed => {
                    state.confirmed = Some(holding);
                    state.unconfirmed.clear();
                }
                Outcome::Unconfirmed => state.unconfirmed.push(holding),
                Outcome::Failed => {}
            }
        }
    }
    findings.extend(wrong_reads.iter().map(WrongRead::finding));
    (states.into_values().collect(), reads)
}

/// A GET whose body is bytes of the object the path holds now: answered 200 or 206, not one
/// part (`partNumber`), not another version.
fn is_object_read(exchanges: &[Exchange], r: &S3Request) -> bool {
    r.operation == Operation::GetObject
        && matches!(r.status, Some(200 | 206))
        && r.part_number.is_none()
        && !target::origin_form(&exchanges[r.exchange].target).contains("versionId=")
}

/// A HEAD or GET that showed something other than the write the path should hold.
///
/// The reads of one download (s3transfer's ranges, a cut range fetched again, a resume) all show
/// the same wrong object: they are one finding naming every read and the first offset where any
/// of them differs, not one finding per range.
#[derive(Debug)]
struct WrongRead {
    /// Reads that agree on this are one finding: leg, path, HEAD/GET, the write they contradict,
    /// and what the server reported (size, ETag).
    key: (
        Option<Leg>,
        String,
        &'static str,
        usize,
        Option<u64>,
        Option<String>,
    ),
    /// The reads (exchange ids).
    reads: Vec<usize>,
    /// The first object offset where a read's bytes differ from the write's.
    offset: Option<u64>,
    /// What was reported against what was uploaded, without the offset and the exchanges.
    what: Wrong,
    /// The leg's name.
    leg_name: &'static str,
    /// `PutObject exchange N[, and M unanswered later writes]`.
    write: String,
}

/// How a read contradicted the write.
#[derive(Debug)]
enum Wrong {
    /// Another size: (reported, uploaded).
    Size(u64, u64),
    /// Another ETag than the uploaded bytes make (`ETag X, the uploaded bytes make Y`).
    Etag(String),
    /// The ETag agrees, the bytes do not.
    Bytes,
}

impl WrongRead {
    fn finding(&self) -> String {
        let path = &self.key.1;
        let detail = match (&self.what, self.offset) {
            (Wrong::Size(reported, uploaded), _) => {
                format!("s3 returned size {reported} for {path}, uploaded {uploaded}")
            }
            (Wrong::Etag(etags), Some(offset)) => format!(
                "s3 returned other bytes for {path} than were uploaded: they differ at offset {offset} ({etags})"
            ),
            (Wrong::Etag(etags), None) => format!("s3 returned {etags} for {path}"),
            (Wrong::Bytes, offset) => format!(
                "s3 returned other bytes for {path} than were uploaded: they differ at offset {}",
                offset.map_or("?".into(), |o| o.to_string())
            ),
        };
        format!(
            "CORRUPT: {detail} ({} {}, {} leg; {})",
            self.key.2,
            crate::plural::named("exchange", &self.reads),
            self.leg_name,
            self.write
        )
    }
}

/// Adds `wrong` to the finding of earlier reads of the same wrong object, or as a new one.
fn merge(all: &mut Vec<WrongRead>, wrong: WrongRead) {
    match all.iter_mut().find(|w| w.key == wrong.key) {
        Some(w) => {
            w.reads.extend(wrong.reads);
            w.offset = match (w.offset, wrong.offset) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        None => all.push(wrong),
    }
}

/// How a write ended.
enum Outcome {
    /// Answered 2xx (and no `<Error>` body).
    Confirmed,
    /// Its body arrived whole, its answer never came.
    Unconfirmed,
    /// Refused, or cut before its body was whole without a 2xx.
    Failed,
}

fn outcome(ex: &Exchange, succeeded: bool) -> Outcome {
    if succeeded {
        Outcome::Confirmed
    } else if ex.response.status.is_none() && ex.request.complete {
        Outcome::Unconfirmed
    } else {
        Outcome::Failed
    }
}

/// A write an S3 request makes (`None` for reads and everything else).
fn s3_write(
    r: &S3Request,
    ex: &Exchange,
    uploads: &[Option<Content>],
    assembled: &[Assembled],
    states: &BTreeMap<(Option<Leg>, String), PathState>,
) -> Option<(Holding, Outcome)> {
    let (id, leg_of) = (ex.id, ex.leg);
    let ex_outcome = |complete: bool| {
        if r.succeeded() {
            Outcome::Confirmed
        } else if r.status.is_none() && complete {
            Outcome::Unconfirmed
        } else {
            Outcome::Failed
        }
    };
    let (how, content, deleted, complete) = match r.operation {
        // A body cut before its end was never stored, answered or not (a trial's audit said
        // "stored 65536 bytes" of a PutObject reset after 64 KiB on every attempt).
        Operation::PutObject => ("PutObject", uploads[id].clone(), false, ex.request.complete),
        Operation::CompleteMultipartUpload => {
            let a = assembled.iter().find(|a| a.complete == id);
            (
                "CompleteMultipartUpload",
                a.and_then(|a| a.content.clone()),
                false,
                a.is_some(),
            )
        }
        Operation::CopyObject => {
            let source = format!("/{}", r.copy_source.as_deref().unwrap_or(""));
            // The copy has the source's bytes, and the ETag S3 answered for it (a copy of a
            // multipart object is no longer multipart).
            let content = states
                .get(&(leg_of, source))
                .and_then(|s| s.confirmed.as_ref())
                .filter(|h| !h.deleted)
                .and_then(|h| h.content.clone())
                .map(|c| Content {
                    etag: r.etag.clone(),
                    ..c
                });
            ("CopyObject", content, false, true)
        }
        Operation::DeleteObject => ("DeleteObject", None, true, true),
        _ => return None,
    };
    let mut outcome = ex_outcome(complete);
    if r.operation == Operation::PutObject && uploads[id].is_none() {
        outcome = Outcome::Failed;
    }
    Some((
        Holding {
            exchange: id,
            how,
            content,
            deleted,
        },
        outcome,
    ))
}

/// A write a plain HTTP request makes: PUT/POST uploads and DELETEs (not git-annex p2phttp).
fn plain_write(ex: &Exchange) -> Option<(Holding, Outcome)> {
    if P2pRequest::of(ex).is_some() {
        return None;
    }
    let (how, deleted) = match ex.method.as_str() {
        "PUT" => ("PUT", false),
        "POST" => ("POST", false),
        "DELETE" => ("DELETE", true),
        _ => return None,
    };
    let content = (!deleted).then(|| Content {
        spans: if ex.request.length > 0 {
            vec![s3_content::Span {
                exchange: ex.id,
                from: 0,
                len: ex.request.length,
            }]
        } else {
            Vec::new()
        },
        length: ex.request.length,
        md5: Some(ex.request.md5.clone()),
        sha256: Some(ex.request.sha256.clone()),
        etag: Some(ex.request.md5.clone()),
        readable: ex
            .body
            .as_ref()
            .is_some_and(|b| b.incomplete_copy().is_none()),
    });
    Some((
        Holding {
            exchange: ex.id,
            how,
            content,
            deleted,
        },
        outcome(ex, ex.succeeded()),
    ))
}

/// The writes a WebDAV MOVE or COPY makes: its `Destination` holds what the source held (git-annex
/// PUTs to a temporary name, then MOVEs it: an audit of the final path found it "never stored"),
/// and a MOVE leaves the source deleted. Nothing for other requests.
fn webdav_move(
    ex: &Exchange,
    states: &BTreeMap<(Option<Leg>, String), PathState>,
) -> Vec<(String, (Holding, Outcome))> {
    let how = match ex.method.as_str() {
        "MOVE" => "MOVE",
        "COPY" => "COPY",
        _ => return Vec::new(),
    };
    let Some(destination) = ex.request_header("destination") else {
        return Vec::new();
    };
    let to = percent_decode(
        target::origin_form(destination)
            .split(['?', '#'])
            .next()
            .unwrap_or(""),
    );
    let from = plain_path(ex);
    let held = states
        .get(&(ex.leg, from.clone()))
        .and_then(|s| s.confirmed.as_ref())
        .filter(|h| !h.deleted);
    let content = held.and_then(|h| h.content.clone());
    let ended = || outcome(ex, ex.succeeded());
    let mut writes = vec![(
        to,
        (
            Holding {
                exchange: ex.id,
                how,
                content,
                deleted: false,
            },
            ended(),
        ),
    )];
    if how == "MOVE" {
        writes.push((
            from,
            (
                Holding {
                    exchange: ex.id,
                    how,
                    content: None,
                    deleted: true,
                },
                ended(),
            ),
        ));
    }
    writes
}

/// A HEAD or GET of an object whose writes the capture shows: its size, ETag and (for a GET) its
/// bytes must be one of the candidates'. Returns how it did not.
fn check_read(
    exchanges: &mut [Exchange],
    r: &S3Request,
    state: &mut PathState,
) -> (Option<WrongRead>, ReadCompared) {
    let not = |why: &str| (None, ReadCompared::Not(why.to_string()));
    if !matches!(r.status, Some(200 | 206)) || r.part_number.is_some() {
        return not("a part or no object"); // a part's size, or no object
    }
    if target::origin_form(&exchanges[r.exchange].target).contains("versionId=") {
        return not("another version than the last write");
    }
    let candidates: Vec<Holding> = state
        .confirmed
        .iter()
        .chain(&state.unconfirmed)
        .filter(|h| !h.deleted)
        .cloned()
        .collect();
    if candidates.is_empty() {
        return not("the path was deleted");
    }
    let ex = &exchanges[r.exchange];
    let etag_meaningful = !s3_checksum::etag_is_not_md5(&ex.request_headers, &ex.response_headers);
    let agrees = |h: &Holding| match &h.content {
        None => true,
        Some(c) => {
            r.reported_size.is_none_or(|s| s == c.length)
                && (!etag_meaningful
                    || match (&r.etag, &c.etag) {
                        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                        _ => true,
                    })
        }
    };
    let what = if r.operation == Operation::HeadObject {
        "HEAD"
    } else {
        "GET"
    };
    let leg_name = leg::name(ex.leg);
    let wrong =
        |holding: &Holding, what_wrong: Wrong, offset: Option<u64>, later: usize| WrongRead {
            key: (
                state.leg,
                r.path.clone(),
                what,
                holding.exchange,
                r.reported_size,
                r.etag.clone(),
            ),
            reads: vec![r.exchange],
            offset,
            what: what_wrong,
            leg_name,
            write: format!(
                "{} exchange {}{}",
                holding.how,
                holding.exchange,
                if later > 0 {
                    format!(", and {later} unanswered later writes")
                } else {
                    String::new()
                }
            ),
        };
    let Some(agreeing) = candidates.iter().position(agrees) else {
        let last = &candidates[0];
        // Only a candidate with known bytes can disagree.
        let Some(c) = last.content.clone() else {
            return not("the upload's bytes are not in the capture");
        };
        let later = candidates.len() - 1;
        if let Some(reported) = r.reported_size.filter(|&s| s != c.length) {
            return (
                Some(wrong(last, Wrong::Size(reported, c.length), None, later)),
                ReadCompared::Differs(last.exchange, None),
            );
        }
        let etags = format!(
            "ETag {}, the uploaded bytes make {}",
            r.etag.as_deref().unwrap_or("?"),
            c.etag.as_deref().unwrap_or("?")
        );
        let offset = differing_offset(exchanges, r, &c);
        return (
            Some(wrong(last, Wrong::Etag(etags), offset, later)),
            ReadCompared::Differs(last.exchange, offset),
        );
    };
    let holding = candidates[agreeing].clone();
    if state.confirmed.as_ref().map(|h| h.exchange) != Some(holding.exchange) {
        // The server shows an unanswered write took effect.
        state.confirmed = Some(holding.clone());
        state.unconfirmed.clear();
    }
    if r.operation != Operation::GetObject {
        return not("a HEAD");
    }
    let Some(content) = holding.content.as_ref().filter(|c| c.readable) else {
        return not("the upload's bytes are not in the capture");
    };
    if !comparable(exchanges, r, content) {
        return not("the GET's bytes lie outside the uploaded object or were not kept");
    }
    let start = read_start(&exchanges[r.exchange], r).unwrap_or(0);
    match s3_content::first_difference(exchanges, &content.spans, r.exchange, start) {
        Ok(Some(offset)) => (
            Some(wrong(&holding, Wrong::Bytes, Some(offset), 0)),
            ReadCompared::Differs(holding.exchange, Some(offset)),
        ),
        Ok(None) => (None, ReadCompared::Same(holding.exchange)),
        Err(()) => not("the kept bytes could not be read back"),
    }
}

/// Where a GET's body starts in the object: its `Content-Range` start for a 206, 0 for a 200.
fn read_start(ex: &Exchange, r: &S3Request) -> Option<u64> {
    if r.status == Some(206) {
        ex.response_header("content-range")
            .and_then(|v| v.trim().strip_prefix("bytes"))
            .and_then(|v| v.trim().split('-').next())
            .and_then(|v| v.trim().parse::<u64>().ok())
    } else {
        Some(0)
    }
}

/// True when [`differing_offset`] can compare the GET with `content`: both kept, the body
/// inside the object.
fn comparable(exchanges: &[Exchange], r: &S3Request, content: &Content) -> bool {
    let ex = &exchanges[r.exchange];
    r.operation == Operation::GetObject
        && content.readable
        && ex.response_body.is_some()
        && read_start(ex, r).is_some_and(|start| start + ex.response.body_length <= content.length)
}

/// The first object offset where a GET's body differs from `content` (both readable, the body
/// inside the object); `None` when they agree or cannot be compared.
fn differing_offset(exchanges: &mut [Exchange], r: &S3Request, content: &Content) -> Option<u64> {
    if r.operation != Operation::GetObject || !content.readable {
        return None;
    }
    let ex = &exchanges[r.exchange];
    let start = read_start(ex, r)?;
    let got = ex.response.body_length;
    if start + got > content.length || ex.response_body.is_none() {
        return None;
    }
    s3_content::first_difference(exchanges, &content.spans, r.exchange, start)
        .ok()
        .flatten()
}
