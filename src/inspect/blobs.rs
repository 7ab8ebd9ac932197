//! ByteStream blobs: every Read (or Write) of one resource, across streams and connections, stitched by offset and checked against the digest and size in its resource name.
//!
//! A Read delivers `ReadResponse.data` from its `read_offset`; a client whose stream was cut
//! (RST_STREAM, a GOAWAY, an UNAVAILABLE) resumes with a new Read at the offset it has, on the
//! same connection or another. The blob is laid together the way such a client does: the bytes
//! before a resume offset stay, the resumed bytes follow. Each reader is followed on its own: a
//! resume continues the cut Read it resumes (see [`resumed_chain`]), so bytes another reader got
//! never fill its hole. Two things make a Read group CORRUPT on top of a digest or size
//! mismatch, each naming the resource and the offset:
//! - a resume that does not continue where the stream it resumes stopped (bytes never arrived);
//! - bytes laid over bytes already there that differ, and the special case of a server that
//!   ignored `read_offset`: the bytes at offset K equal the blob's bytes at 0.
//!
//! Writes are laid the way the server stores them: WriteRequest data at its `write_offset`,
//! a QueryWriteStatus answer truncating to its `committed_size`; the whole is checked when the
//! last Write was accepted (`grpc-status: 0`). Bytes never written that the server committed
//! anyway (a `committed_size` past them, or a `finish_write` answered OK) are CORRUPT, naming
//! their offsets.
//!
//! Digests: the function named in the path, or the one the hash length implies; a 64-hex-digit
//! hash may be SHA-256 or BLAKE3, so both are computed and the report says which one matched.
//! `compressed-blobs/…` name the digest of the uncompressed bytes: not checked.

use std::collections::BTreeMap;

use serde::Serialize;

use super::attempts::BodySource;
use super::blob_layout::Stitch;
use super::bytestream_call::{Call, Placement};
use super::content_address::AddressCheck;
use super::digest::HashAlgo;
use super::leg;
use super::objects::Transfer;
use crate::direction::Leg;
use crate::h2::bytestream::Method;
use crate::h2::resource_name::{DigestFunction, DigestGuess, ResourceName};

/// Bytes compared to tell a server that ignored `read_offset`.
const IGNORED_PROBE: u64 = 4096;
/// Fewer equal bytes than this prove nothing about an ignored offset.
const IGNORED_MIN: u64 = 16;

/// One call's part of a blob.
#[derive(Debug, Clone, Serialize)]
pub struct BlobCall {
    /// The TCP flow.
    pub flow: u64,
    /// The HTTP/2 stream.
    pub stream: u32,
    /// `Read`, `Write` or `QueryWriteStatus`.
    pub method: &'static str,
    /// `read_offset`, or the first `write_offset`.
    pub offset: u64,
    /// Data bytes of its complete messages.
    pub length: u64,
    /// `read_limit`, when set.
    pub limit: Option<u64>,
    /// It ended with `grpc-status: 0`, not reset.
    pub complete: bool,
    /// Its `grpc-status`.
    pub grpc_status: Option<u32>,
    /// RST_STREAM code name, when reset.
    pub reset: Option<String>,
    /// `committed_size` it reported (WriteResponse, QueryWriteStatusResponse).
    pub committed_size: Option<u64>,
}

/// Calls a text or HTML report lists per blob (a blob read 300 times made a 9 MB cell);
/// `--json` keeps them all.
pub const LISTED_CALLS: usize = 20;

impl BlobCall {
    /// Where the call's bytes lie and how it ended, as a report lists it: `@0+65536`,
    /// `@1032192+0 UNAVAILABLE`, `@0+4000 RST CANCEL`; a QueryWriteStatus says what it answered
    /// (`committed 983040`, `committed 3000000 complete`).
    pub fn carried_text(&self) -> String {
        let end = match (&self.reset, self.grpc_status) {
            (Some(code), _) => format!(" RST {code}"),
            (None, Some(0)) => String::new(),
            (None, Some(status)) => format!(
                " {}",
                crate::h2::grpc_status::status_name(status)
                    .map_or(status.to_string(), str::to_owned)
            ),
            (None, None) => " unfinished".into(),
        };
        if self.method == "QueryWriteStatus" {
            return match self.committed_size {
                Some(c) => format!("committed {c}{end}"),
                None => format!("no answer{end}"),
            };
        }
        format!("@{}+{}{end}", self.offset, self.length)
    }
}

/// One blob, stitched from its calls and checked.
#[derive(Debug, Clone, Serialize)]
pub struct BlobCheck {
    /// Capture leg.
    #[serde(serialize_with = "leg::serialize")]
    pub leg: Option<Leg>,
    /// `download` (Read) or `upload` (Write).
    pub transfer: Transfer,
    /// The blob's resource name without upload id or trailing parts.
    pub resource: String,
    /// The instance name prefix (may be empty).
    pub instance_name: String,
    /// The hash in the name.
    pub hash: String,
    /// The size in the name.
    pub size: u64,
    /// The compressor of a `compressed-blobs/…` name.
    pub compressor: Option<String>,
    /// The digest function named or implied (`sha256 or blake3` for a bare 64-hex hash).
    pub digest_function: String,
    /// Its calls, in time order.
    pub calls: Vec<BlobCall>,
    /// Bytes the calls make up.
    pub length: u64,
    /// The calls cover the whole blob.
    pub complete: bool,
    /// The whole against the name (`null` while incomplete).
    pub check: Option<AddressCheck>,
    /// The digest function whose digest matched.
    pub matched: Option<String>,
    /// The last `committed_size` the server reported (writes).
    pub committed_size: Option<u64>,
    /// Resumes that did not continue, differing bytes, unreadable messages: one sentence each.
    pub problems: Vec<String>,
    /// True for a mismatch (a Read, or a Write the server accepted) or a resume that did not
    /// continue the blob.
    pub corrupt: bool,
    /// Bytes a resumed Write skipped (`[from, to)`: the server had committed `from`), which is
    /// why the blob is incomplete; `problems` says it in full.
    #[serde(skip)]
    pub skipped: Option<(u64, u64)>,
    /// Bytes a resumed Read skipped (`[from, to)`: where the stream it resumed stopped, where
    /// the resume asked to start), even when another reader's bytes cover them.
    #[serde(skip)]
    pub hole: Option<(u64, u64)>,
}

impl BlobCheck {
    /// The calls a text or HTML report lists (the first [`LISTED_CALLS`]), and what it says of
    /// the rest (`and 280 more Reads`).
    pub fn listed_calls(&self) -> (&[BlobCall], Option<String>) {
        let n = self.calls.len().min(LISTED_CALLS);
        let rest = &self.calls[n..];
        let more = (!rest.is_empty()).then(|| {
            let method = rest[0].method;
            let noun = if rest.iter().all(|c| c.method == method) && method != "QueryWriteStatus" {
                method
            } else {
                "call"
            };
            format!(
                "and {}",
                crate::plural::count(rest.len() as u64, &format!("more {noun}"))
            )
        });
        (&self.calls[..n], more)
    }

    /// The digest function a report names beside the resource: the one whose digest matched,
    /// else the ones named or implied (`sha256 or blake3` until one of them matched).
    pub fn function_text(&self) -> &str {
        self.matched.as_deref().unwrap_or(&self.digest_function)
    }

    /// The blob's result as a report line says it. `named`: the line names [`function_text`]
    /// already, so a match does not repeat it. A corrupt blob whose laid bytes match the name
    /// (another reader's bytes cover a resume's hole, a call answered short beside whole ones)
    /// says what is corrupt first, never a bare "matches".
    pub fn result_text(&self, named: bool) -> String {
        let function = match (&self.matched, named) {
            (Some(f), false) => format!(" ({f})"),
            _ => String::new(),
        };
        match &self.check {
            Some(AddressCheck::Matches) if self.corrupt => match self.hole {
                Some((from, to)) => format!(
                    "bytes {from}..{to} never reached the Read that resumed past them; the bytes the other Reads carried match{function}"
                ),
                None => format!(
                    "a call went wrong (see below), though the bytes laid together match{function}"
                ),
            },
            Some(c) => format!("{}{function}", c.describe()),
            None => self.incomplete_text(),
        }
    }

    /// What an incomplete blob's calls carried: how many of the blob's bytes, and the first range
    /// missing (`length` is where the furthest call ended, holes included, so it overstates).
    pub fn incomplete_text(&self) -> String {
        if let Some((from, to)) = self.skipped {
            return format!(
                "incomplete: bytes {from}..{to} never stored (a resumed Write skipped what the server had not committed)"
            );
        }
        let mut spans: Vec<(u64, u64)> = self
            .calls
            .iter()
            .filter(|c| c.length > 0)
            .map(|c| (c.offset, c.offset.saturating_add(c.length)))
            .collect();
        spans.sort_unstable();
        let (mut crossed, mut reach, mut hole) = (0u64, 0u64, None);
        for (start, end) in spans {
            if start > reach && hole.is_none() {
                hole = Some((reach, start));
            }
            if end > reach {
                crossed += end - start.max(reach);
                reach = end;
            }
        }
        if hole.is_none() && reach < self.size {
            hole = Some((reach, self.size));
        }
        let mut s = format!("incomplete ({crossed} of {} bytes", self.size);
        if let Some((from, to)) = hole {
            s.push_str(&format!("; bytes {from}..{to} missing"));
        }
        s.push(')');
        s
    }
}

/// The blob a resource name is about, as grouping and reports name it.
fn canonical(name: &ResourceName) -> String {
    let mut s = String::new();
    if !name.instance_name.is_empty() {
        s.push_str(&name.instance_name);
        s.push('/');
    }
    match &name.compressor {
        Some(c) => s.push_str(&format!("compressed-blobs/{c}/")),
        None => s.push_str("blobs/"),
    }
    if let Some(f) = &name.digest_function {
        s.push_str(f);
        s.push('/');
    }
    s.push_str(&format!("{}/{}", name.hash, name.size));
    s
}

fn function_name(f: &DigestFunction) -> String {
    match f {
        DigestFunction::Sha256 => "sha256".into(),
        DigestFunction::Sha1 => "sha1".into(),
        DigestFunction::Md5 => "md5".into(),
        DigestFunction::Sha384 => "sha384".into(),
        DigestFunction::Sha512 => "sha512".into(),
        DigestFunction::Blake3 => "blake3".into(),
        DigestFunction::Other(name) => name.clone(),
    }
}

fn algo_of(f: &DigestFunction) -> Option<HashAlgo> {
    match f {
        DigestFunction::Sha256 => Some(HashAlgo::Sha256),
        DigestFunction::Sha1 => Some(HashAlgo::Sha1),
        DigestFunction::Md5 => Some(HashAlgo::Md5),
        DigestFunction::Sha384 => Some(HashAlgo::Sha384),
        DigestFunction::Sha512 => Some(HashAlgo::Sha512),
        DigestFunction::Blake3 => Some(HashAlgo::Blake3_256),
        DigestFunction::Other(_) => None,
    }
}

/// The functions to try, and how the report names the guess; `Err` says why none can be tried.
fn functions(name: &ResourceName) -> (Result<Vec<DigestFunction>, String>, String) {
    match name.digest() {
        DigestGuess::Known(f) => {
            let label = function_name(&f);
            match algo_of(&f) {
                Some(_) => (Ok(vec![f]), label),
                None => (
                    Err(format!("digest function {label} is not implemented here")),
                    label,
                ),
            }
        }
        DigestGuess::Ambiguous(list) => {
            let label = list
                .iter()
                .map(function_name)
                .collect::<Vec<_>>()
                .join(" or ");
            (Ok(list), label)
        }
        DigestGuess::Unknown => (
            Err(format!(
                "no digest function has {}-hex-digit hashes",
                name.hash.len()
            )),
            "unknown".into(),
        ),
    }
}

/// Groups the calls by blob, stitches each group and checks it; a finding per corrupt blob.
pub fn check_blobs(mut calls: Vec<Call>, findings: &mut Vec<String>) -> Vec<BlobCheck> {
    type Key = (Option<Leg>, Transfer, String);
    let mut groups: BTreeMap<Key, (ResourceName, Vec<usize>)> = BTreeMap::new();
    let mut order = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let Some(name) = call
            .resource_name
            .as_deref()
            .and_then(|n| ResourceName::parse(n).ok())
        else {
            continue;
        };
        let transfer = match call.method {
            Method::Read => Transfer::Download,
            Method::Write | Method::QueryWriteStatus => Transfer::Upload,
        };
        let key = (call.leg, transfer, canonical(&name));
        groups
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                (name, Vec::new())
            })
            .1
            .push(i);
    }
    let mut out = Vec::new();
    for key in order {
        let Some((name, mut members)) = groups.remove(&key) else {
            continue;
        };
        members.sort_by_key(|&i| (calls[i].opened_ns, calls[i].flow, calls[i].stream));
        let (leg, transfer, resource) = key;
        let blob = Blob {
            leg,
            transfer,
            resource,
            name,
        };
        let check = match transfer {
            Transfer::Download => blob.reads(&mut calls, &members),
            Transfer::Upload => blob.writes(&mut calls, &members),
        };
        if let Some(check) = check {
            if check.corrupt {
                findings.push(blob.finding(&check));
            }
            out.push(check);
        }
    }
    out
}

/// One reader's Reads of a blob as the capture shows them: a Read, then each resume that
/// continues it (a client resumes its own cut stream; bytes another reader got are not its).
struct Chain {
    /// Its latest Read.
    last: usize,
    /// Where its first Read started.
    start: u64,
    /// The Read whose bytes reached furthest, and where they stopped.
    reach_by: usize,
    reach: u64,
    /// Its latest Read was cut: a later Read may resume it.
    open: bool,
}

/// The chain Read `i` (at `offset` > 0) resumes: of the chains whose latest Read was cut before
/// it opened (or when that is not known), the one it continues with the fewest bytes behind it
/// (`offset` within what the chain delivered); else the one that stopped closest before
/// `offset` (a resume that skipped bytes). `None`: no Read was waiting for a resume, so this is
/// a reader of its own (a range Read).
fn resumed_chain(chains: &[Chain], calls: &[Call], i: usize, offset: u64) -> Option<usize> {
    let opened = calls[i].opened_ns;
    let waiting = |c: &Chain| {
        let last = &calls[c.last];
        c.open
            && c.start <= offset
            && last
                .reset_ns
                .or(last.answered_ns)
                .is_none_or(|t| t <= opened)
    };
    let candidates = || chains.iter().enumerate().filter(|(_, c)| waiting(c));
    candidates()
        .filter(|(_, c)| offset <= c.reach)
        .min_by_key(|(_, c)| c.reach)
        .or_else(|| candidates().max_by_key(|(_, c)| c.reach))
        .map(|(k, _)| k)
}

struct Blob {
    leg: Option<Leg>,
    transfer: Transfer,
    resource: String,
    name: ResourceName,
}

/// Where one call was: `stream 3 (flow 2)`.
fn at_call(call: &Call) -> String {
    format!("stream {} (flow {})", call.stream, call.flow)
}

impl Blob {
    fn call_summary(call: &Call) -> BlobCall {
        BlobCall {
            flow: call.flow,
            stream: call.stream,
            method: match call.method {
                Method::Read => "Read",
                Method::Write => "Write",
                Method::QueryWriteStatus => "QueryWriteStatus",
            },
            offset: u64::try_from(call.offset).unwrap_or(0),
            length: call.kept(),
            limit: u64::try_from(call.limit).ok().filter(|&l| l > 0),
            complete: call.ok(),
            grpc_status: call.grpc_status,
            reset: call.reset.clone(),
            committed_size: call.committed_size.and_then(|c| u64::try_from(c).ok()),
        }
    }

    fn empty(&self, calls: &[Call], members: &[usize], label: String) -> BlobCheck {
        BlobCheck {
            leg: self.leg,
            transfer: self.transfer,
            resource: self.resource.clone(),
            instance_name: self.name.instance_name.clone(),
            hash: self.name.hash.clone(),
            size: self.name.size,
            compressor: self.name.compressor.clone(),
            digest_function: label,
            calls: members
                .iter()
                .map(|&i| Self::call_summary(&calls[i]))
                .collect(),
            length: 0,
            complete: false,
            check: None,
            matched: None,
            committed_size: None,
            problems: Vec::new(),
            corrupt: false,
            skipped: None,
            hole: None,
        }
    }

    /// Checks the laid bytes `[0, len)` against the name; sets `check`, `matched`, `complete`.
    fn verify(&self, calls: &mut [Call], stitch: &Stitch, out: &mut BlobCheck) {
        let len = stitch.end();
        out.length = len;
        let contiguous = stitch.contiguous() == len;
        if let Some(c) = &self.name.compressor {
            out.complete = contiguous && len > 0;
            out.check = out.complete.then(|| AddressCheck::NotChecked {
                reason: format!(
                    "compressed-blobs/{c}: the name gives the digest of the uncompressed bytes"
                ),
            });
            return;
        }
        let size = self.name.size;
        if len > size {
            out.complete = contiguous;
            out.check = Some(AddressCheck::SizeMismatch {
                expected: size,
                actual: len,
            });
            return;
        }
        if !contiguous || len < size {
            if out.skipped.is_some() {
                // The resume that skipped them is named already.
                return;
            }
            out.problems.push(format!(
                "incomplete: {} of {size} bytes crossed{}",
                stitch.contiguous(),
                if contiguous {
                    String::new()
                } else {
                    format!(" contiguously from offset 0 ({len} laid with holes)")
                }
            ));
            return;
        }
        out.complete = true;
        let (functions, _) = functions(&self.name);
        let functions = match functions {
            Ok(f) => f,
            Err(reason) => {
                out.check = Some(AddressCheck::NotChecked { reason });
                return;
            }
        };
        let algos: Vec<HashAlgo> = functions.iter().filter_map(algo_of).collect();
        let Some(digests) = stitch.digests(calls, &algos, len) else {
            out.check = Some(AddressCheck::NotChecked {
                reason: "kept data could not be read back".into(),
            });
            return;
        };
        let expected = self.name.hash.to_ascii_lowercase();
        match digests.iter().position(|d| *d == expected) {
            Some(i) => {
                out.check = Some(AddressCheck::Matches);
                out.matched = Some(function_name(&functions[i]));
            }
            None => {
                if functions.len() > 1 {
                    let tried: Vec<String> = functions
                        .iter()
                        .zip(&digests)
                        .map(|(f, d)| format!("{} {d}", function_name(f)))
                        .collect();
                    out.problems.push(format!(
                        "the {len} bytes match the hash under no candidate function ({})",
                        tried.join(", ")
                    ));
                }
                out.check = Some(AddressCheck::DigestMismatch {
                    expected,
                    actual: digests[0].clone(),
                });
            }
        }
    }

    fn reads(&self, calls: &mut [Call], members: &[usize]) -> Option<BlobCheck> {
        let (_, label) = functions(&self.name);
        let mut out = self.empty(calls, members, label);
        let mut stitch = Stitch::default();
        let mut differs = false;
        // Cut streams: (call, offset where its delivered bytes stopped).
        let mut cuts: Vec<(usize, u64)> = Vec::new();
        // Reads whose first bytes equal the blob's first bytes: (call, offset).
        let mut from_zero: Vec<(usize, u64)> = Vec::new();
        // Reads that ended OK at their read_limit: (call, offset where they stopped).
        let mut chunks: Vec<(usize, u64)> = Vec::new();
        // A Read that starts past where an OK-ended chunk stopped: (call, chunk, stop, offset),
        // a finding if nothing fills the bytes in between.
        let mut skips: Vec<(usize, usize, u64, u64)> = Vec::new();
        // Each reader's Reads: a Read and the resumes that continue it.
        let mut chains: Vec<Chain> = Vec::new();
        let mut unchecked = Vec::new();
        for &i in members {
            out.problems.extend(
                calls[i]
                    .problems
                    .iter()
                    .map(|p| format!("{}: {p}", at_call(&calls[i]))),
            );
            if let Some(why) = &calls[i].unchecked {
                unchecked.push(format!("{}: {why}", at_call(&calls[i])));
                continue;
            }
            let Ok(offset) = u64::try_from(calls[i].offset) else {
                out.problems.push(format!(
                    "{}: negative read_offset {}",
                    at_call(&calls[i]),
                    calls[i].offset
                ));
                continue;
            };
            let len = calls[i].kept();
            // A resume past every byte that ever arrived here: the bytes in between never
            // crossed (which client resumed is not in the capture, so several clients on the
            // same blob never make this a finding as long as one of them got those bytes).
            let have = stitch.contiguous();
            // A client reading in read_limit chunks continues where its last chunk stopped; a
            // Read opened after such a chunk ended that starts past it skipped bytes (as a
            // resume after a reset does). Reads opened while the chunk was still running may
            // be a parallel reader's, so only a chunk answered before this Read opened counts.
            let chunk = chunks.iter().rev().find(|(j, stop)| {
                *stop == have
                    && calls[*j]
                        .answered_ns
                        .is_some_and(|t| t <= calls[i].opened_ns)
            });
            let mut resumed = None;
            if let (true, Some(&(j, stop))) = (offset > have, chunk) {
                skips.push((i, j, stop, offset));
            } else if offset > 0 {
                // A resume continues one reader's cut chain: the bytes another reader got do
                // not fill its hole (they are not in this client's hands).
                resumed = resumed_chain(&chains, calls, i, offset);
                if let Some(k) = resumed {
                    let (j, stop) = (chains[k].reach_by, chains[k].reach);
                    if offset > stop {
                        out.problems.push(format!(
                            "the resume at offset {offset} ({}) does not continue where {} stopped at offset {stop}: bytes {stop}..{offset} never arrived",
                            at_call(&calls[i]),
                            at_call(&calls[j]),
                        ));
                        out.hole.get_or_insert((stop, offset));
                        differs = true;
                    } else if offset < stop && self.leg != Some(Leg::Upstream) {
                        // On the upstream leg the bytes past the resume offset went to
                        // faultline, which dropped them with the stream its rule cut: what the
                        // client held is the client leg's to say.
                        out.problems.push(format!(
                            "the resume at offset {offset} ({}) goes back before where {} stopped at offset {stop}: correct if the client dropped those {} bytes; a client that appends them would hold {} bytes",
                            at_call(&calls[i]),
                            at_call(&calls[j]),
                            stop - offset,
                            stop.saturating_add(self.name.size.saturating_sub(offset)),
                        ));
                    }
                }
            }
            // A Read from 0 opened on the connection after a Read there was reset: a retry that
            // is correct only if the client dropped what it had. The wire cannot show what the
            // client kept, so this is a note for whoever reads the report, not a finding.
            if offset == 0 && have > 0 {
                let cut_here = cuts.iter().rev().find(|(j, stop)| {
                    *stop > 0
                        && calls[*j].flow == calls[i].flow
                        && calls[*j]
                            .reset_ns
                            .is_some_and(|reset| reset <= calls[i].opened_ns)
                });
                if let Some(&(j, stop)) = cut_here {
                    // A reset after the whole blob crossed cut nothing of it: say what it carried.
                    let ended = if stop >= self.name.size {
                        format!("was reset after carrying all {stop} bytes of the blob")
                    } else {
                        format!("was cut at offset {stop}")
                    };
                    out.problems.push(format!(
                        "the Read from offset 0 ({}) starts over after {} {ended}: correct if the client dropped those {stop} bytes; a client that appends them would hold {} bytes",
                        at_call(&calls[i]),
                        at_call(&calls[j]),
                        stop.saturating_add(self.name.size),
                    ));
                }
            }
            let place = Placement {
                at: offset,
                from: 0,
                len,
            };
            let probe = len.min(offset).min(IGNORED_PROBE);
            let ignored = offset > 0 && probe >= IGNORED_MIN && {
                let mut known = vec![0u8; probe as usize];
                let mut mine = vec![0u8; probe as usize];
                stitch.read(calls, 0, &mut known).is_some()
                    && calls[i].data.read_at(0, &mut mine).is_ok()
                    && known == mine
            };
            if let Some(at) = stitch.difference(calls, i, place) {
                differs = true;
                if ignored {
                    out.problems.push(format!(
                        "the Read at offset {offset} ({}) ignored read_offset: its bytes are the blob's bytes from offset 0 (they differ from the bytes already there at offset {at})",
                        at_call(&calls[i])
                    ));
                } else {
                    out.problems.push(format!(
                        "the Read at offset {offset} ({}) does not continue the earlier bytes: they differ at offset {at}",
                        at_call(&calls[i])
                    ));
                }
            } else if ignored {
                from_zero.push((i, offset));
            }
            stitch.lay(i, place);
            let call = &calls[i];
            let delivered_all = call.limit > 0 || offset + len >= self.name.size;
            if call.ok() && call.response_ended && !delivered_all && self.name.compressor.is_none()
            {
                out.problems.push(format!(
                    "{} answered OK after {len} bytes from offset {offset}: the blob has {} more",
                    at_call(call),
                    self.name.size - offset - len
                ));
                differs = true;
            }
            let cut = !(call.ok() && call.response_ended);
            if cut {
                cuts.push((i, offset + len));
            } else if call.limit > 0 {
                chunks.push((i, offset + len));
            }
            let end = offset + len;
            match resumed {
                Some(k) => {
                    let chain = &mut chains[k];
                    chain.last = i;
                    if end > chain.reach {
                        (chain.reach_by, chain.reach) = (i, end);
                    }
                    chain.open = cut;
                }
                None => chains.push(Chain {
                    last: i,
                    start: offset,
                    reach_by: i,
                    reach: end,
                    open: cut,
                }),
            }
        }
        for (i, j, stop, offset) in skips {
            if stitch.covers(stop, offset) {
                continue;
            }
            out.problems.push(format!(
                "the Read at offset {offset} ({}) does not continue where {} stopped at offset {stop} (it ended OK at its read_limit): bytes {stop}..{offset} never arrived",
                at_call(&calls[i]),
                at_call(&calls[j]),
            ));
            differs = true;
        }
        if !unchecked.is_empty() {
            return Some(self.unchecked(calls, &stitch, out, unchecked));
        }
        self.verify(calls, &stitch, &mut out);
        let mismatch = out.check.as_ref().is_some_and(AddressCheck::is_mismatch);
        if mismatch || (self.name.compressor.is_some() && !from_zero.is_empty()) {
            for (i, offset) in from_zero {
                out.problems.push(format!(
                    "the Read at offset {offset} ({}) ignored read_offset: its bytes are the blob's bytes from offset 0",
                    at_call(&calls[i])
                ));
                differs = true;
            }
        }
        out.corrupt = mismatch || differs;
        Some(out)
    }

    fn writes(&self, calls: &mut [Call], members: &[usize]) -> Option<BlobCheck> {
        let (_, label) = functions(&self.name);
        let mut out = self.empty(calls, members, label);
        let mut stitch = Stitch::default();
        let mut committed: Option<u64> = None;
        let mut gap = false;
        let mut accepted = None;
        // What made the server hold the blob whole: a Write with finish_write answered OK, or
        // the largest committed_size it reported (with the call that reported it).
        let mut finished: Option<usize> = None;
        let mut most: Option<(u64, usize)> = None;
        let mut unchecked = Vec::new();
        for &i in members {
            out.problems.extend(
                calls[i]
                    .problems
                    .iter()
                    .map(|p| format!("{}: {p}", at_call(&calls[i]))),
            );
            if let Some(why) = &calls[i].unchecked {
                unchecked.push(format!("{}: {why}", at_call(&calls[i])));
                continue;
            }
            let reported = calls[i]
                .committed_size
                .and_then(|c| u64::try_from(c).ok())
                .filter(|_| calls[i].ok());
            if let Some(c) = reported.filter(|&c| most.is_none_or(|(m, _)| c > m)) {
                most = Some((c, i));
            }
            if calls[i].method == Method::Write && calls[i].finish_write && calls[i].ok() {
                finished = Some(i);
            }
            if calls[i].method == Method::QueryWriteStatus {
                if let Some(c) = reported {
                    // The server keeps what it committed; anything sent beyond is gone.
                    stitch.cut(c, u64::MAX);
                    committed = Some(c);
                }
                continue;
            }
            let placements = calls[i].placements.clone();
            if let (Some(first), Some(c)) = (placements.first(), committed) {
                if first.at > c {
                    out.problems.push(format!(
                        "the resumed Write at offset {} ({}) skips bytes {c}..{} the server had not committed (committed_size {c})",
                        first.at,
                        at_call(&calls[i]),
                        first.at
                    ));
                    out.skipped.get_or_insert((c, first.at));
                    gap = true;
                }
            }
            for place in placements {
                if let Some(at) = stitch.difference(calls, i, place) {
                    out.problems.push(format!(
                        "the Write at offset {} ({}) sends other bytes than an earlier Write at offset {at}",
                        place.at,
                        at_call(&calls[i])
                    ));
                }
                stitch.lay(i, place);
            }
            committed = reported.or(committed);
            accepted = Some(calls[i].ok());
        }
        out.committed_size = committed;
        if !unchecked.is_empty() {
            return Some(self.unchecked(calls, &stitch, out, unchecked));
        }
        self.verify(calls, &stitch, &mut out);
        let accepted = accepted.unwrap_or(false);
        if accepted
            && self.name.compressor.is_none()
            && committed.is_some_and(|c| c != self.name.size)
        {
            out.problems.push(format!(
                "the server reported committed_size {} for a blob of {} bytes",
                committed.unwrap_or_default(),
                self.name.size
            ));
        }
        // Bytes never written that the server took for written: it committed past them, or
        // finished the blob with them missing.
        let tail = (self.name.compressor.is_none() && stitch.end() < self.name.size)
            .then(|| (stitch.end(), self.name.size));
        let hole = out.skipped.or(stitch.first_hole()).or(tail);
        let committed_hole = hole.and_then(|(from, to)| {
            let why = match (most, finished) {
                (Some((c, j)), _) if c >= to => {
                    format!("{} reported committed_size {c}", at_call(&calls[j]))
                }
                (_, Some(j)) => format!(
                    "{} sent finish_write and was answered OK",
                    at_call(&calls[j])
                ),
                _ => return None,
            };
            Some(format!(
                "bytes {from}..{to} were never written, yet the server committed them: {why}"
            ))
        });
        let committed_past_hole = committed_hole.is_some();
        out.problems.extend(committed_hole);
        let mismatch = out.check.as_ref().is_some_and(AddressCheck::is_mismatch);
        out.corrupt = accepted && (mismatch || gap) || committed_past_hole;
        Some(out)
    }

    /// A blob with calls whose messages could not be read (gRPC compression not read here, a
    /// message too large): what the others laid matches, or the blob is not checked. Never a
    /// finding: the bytes the application got are not in the capture as such.
    fn unchecked(
        &self,
        calls: &mut [Call],
        stitch: &Stitch,
        mut out: BlobCheck,
        unchecked: Vec<String>,
    ) -> BlobCheck {
        let mut whole = BlobCheck {
            problems: Vec::new(),
            ..out.clone()
        };
        self.verify(calls, stitch, &mut whole);
        if whole.check == Some(AddressCheck::Matches) {
            out = BlobCheck {
                problems: out.problems,
                ..whole
            };
        } else {
            out.length = stitch.end();
            out.complete = false;
            out.check = Some(AddressCheck::NotChecked {
                reason: unchecked[0].clone(),
            });
        }
        out.problems.extend(unchecked);
        out.corrupt = false;
        out
    }

    fn finding(&self, check: &BlobCheck) -> String {
        let mut why = check.problems.clone();
        match &check.check {
            Some(AddressCheck::DigestMismatch { expected, actual }) => why.push(format!(
                "content MISMATCH: the name says {expected}, the {} bytes {} hash to {actual}",
                check.length,
                if self.transfer == Transfer::Download {
                    "read"
                } else {
                    "written"
                }
            )),
            Some(AddressCheck::SizeMismatch { expected, actual }) => why.push(format!(
                "size MISMATCH: the name says {expected} bytes, {actual} crossed"
            )),
            _ => {}
        }
        format!(
            "CORRUPT: ByteStream {} of {} ({} leg): {}",
            if self.transfer == Transfer::Download {
                "Read"
            } else {
                "Write"
            },
            self.resource,
            leg::name(self.leg),
            why.join("; ")
        )
    }
}
