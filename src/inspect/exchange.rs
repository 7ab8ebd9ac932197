//! Follows the HTTP/1 exchanges of one reassembled flow and records what each request and response carried.

use std::collections::VecDeque;

use md5::{Digest, Md5};
use serde::Serialize;
use sha2::Sha256;

use super::body_store::{MemoryUse, RetainedBody};
use super::content_address;
use super::http::{
    looks_like_http1_request, BodyKind, Detection, Direction, FrameEvent, HeaderFields,
    Http1Conversation, RequestHead, ResponseHead,
};
use super::leg;
use super::reassembly::{FlowInfo, StreamConsumer};
use super::s3_request;
use super::target;
use crate::direction::Leg;

impl RequestBody {
    /// The body's bytes as a table cell or sentence says them: `N` when whole, `N of M` when
    /// cut with a stated length, `N (length unknown: chunked)` when nothing stated one (a trial
    /// read "1310306 of ?" as a missing number). `unit` follows the numbers (" bytes", or ""
    /// in a column headed "bytes").
    pub fn bytes_text(&self, unit: &str) -> String {
        match (self.complete, self.expected) {
            (true, _) => format!("{}{unit}", self.length),
            (false, Some(e)) => format!("{} of {e}{unit}", self.length),
            (false, None) if self.chunked => {
                format!("{}{unit} (length unknown: chunked)", self.length)
            }
            (false, None) => format!("{}{unit} (length unknown)", self.length),
        }
    }

    /// What cut the body (`?` when the analysis could not tell).
    pub fn cut_text(&self) -> &str {
        self.cut_by.as_deref().unwrap_or("?")
    }
}

/// Methods whose request bodies are retained for byte-for-byte comparison between attempts.
pub const UPLOAD_METHODS: [&str; 3] = ["PUT", "POST", "PATCH"];

/// What the request body was, as it crossed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestBody {
    /// Payload bytes received (chunked transfer coding removed).
    pub length: u64,
    /// Content-Length, when the request declared one (0 for a request without a body).
    pub expected: Option<u64>,
    /// True for `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// True when the message ended as its framing says (all Content-Length bytes, or the last chunk).
    pub complete: bool,
    /// What cut an incomplete body: "connection reset", "connection closed", "capture gap",
    /// "capture ended", or an HTTP framing error; `null` when complete.
    pub cut_by: Option<String>,
    /// MD5 of the payload bytes received, lowercase hex.
    pub md5: String,
    /// SHA-256 of the payload bytes received, lowercase hex.
    pub sha256: String,
    /// The `Range` header (a resumed download asks for `bytes=N-`).
    pub range: Option<String>,
}

/// How the request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A final response head arrived (see `status`).
    Status,
    /// The connection ended without a response.
    NoResponse,
    /// The connection was reset before a response arrived.
    ConnectionReset,
}

/// The response to one request.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseInfo {
    /// Whether and how the request was answered.
    pub outcome: Outcome,
    /// Final status code (1xx interim responses are skipped), when `outcome` is `status`.
    pub status: Option<u16>,
    /// Response body payload bytes received.
    pub body_length: u64,
    /// True when the response message ended as its framing says.
    pub complete: bool,
    /// The `Content-Range` header of a partial response (`bytes N-M/T`).
    pub content_range: Option<String>,
    /// True when the response stated no length and was not chunked: its body ends with the
    /// connection, so a client cannot tell a cut one from a whole one (no length to compare).
    pub close_delimited: bool,
    /// What cut an incomplete response: the note of the rule's fault that ended it (as in
    /// `faults`), else "connection closed", "connection reset" or "capture ended"; `null` when
    /// complete or unanswered.
    pub cut_by: Option<String>,
}

impl ResponseInfo {
    /// No answer (yet): what a request starts with.
    pub(crate) fn none() -> ResponseInfo {
        ResponseInfo {
            outcome: Outcome::NoResponse,
            status: None,
            body_length: 0,
            complete: false,
            content_range: None,
            close_delimited: false,
            cut_by: None,
        }
    }
}

/// A fault annotation (pcapng packet comment) that touched this exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultNote {
    /// The comment text, e.g. `faultline: rule "x" reset client->upstream after 65536 bytes`.
    pub text: String,
    /// `client->upstream` or `upstream->client`: the direction of the annotated packet.
    pub direction: String,
    /// Stream offset of the annotated packet in that direction.
    pub offset: u64,
    /// `message` when the offset lies inside this exchange's request or response, `flow` when it
    /// could only be tied to the connection.
    pub scope: &'static str,
}

impl FaultNote {
    /// Whether a rule's fault made the note (`rule "NAME" …`, or an HTTP/2 frame note ending
    /// `(rule "NAME")`), not faultline's own bookkeeping such as `run stopped`.
    pub fn is_rule_fault(&self) -> bool {
        super::text::fault_rule(&self.text).is_some()
    }
}

/// One request and its response, as one flow carried them.
#[derive(Debug, Serialize)]
pub struct Exchange {
    /// The exchange's number: its place among the HTTP/1 exchanges of every leg of the capture
    /// (0-based, in time order of request heads), whichever legs `--leg` shows, so the same
    /// request has the same number in every report of the capture. With `--leg both` it is also
    /// the index in the report's `exchanges` list.
    pub id: usize,
    /// Capture leg (`None`: not a faultline leg, "unknown" in JSON).
    #[serde(serialize_with = "leg::serialize")]
    pub leg: Option<Leg>,
    /// Flow id (see `flows`).
    pub flow: u64,
    /// Request head time, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Request method.
    pub method: String,
    /// Request target as sent.
    pub target: String,
    /// The Host header, when the request had one.
    pub host: Option<String>,
    /// The request body.
    pub request: RequestBody,
    /// The response.
    pub response: ResponseInfo,
    /// Fault comments that touched this exchange.
    pub faults: Vec<FaultNote>,
    /// Stream offsets `[start, end)` of the request message (end absent when it never ended).
    #[serde(skip)]
    pub(crate) request_range: (u64, Option<u64>),
    #[serde(skip)]
    pub(crate) response_range: Option<(u64, Option<u64>)>,
    /// The retained body of an upload (PUT/POST/PATCH), for comparison; dropped after the report.
    #[serde(skip)]
    pub(crate) body: Option<RetainedBody>,
    /// The retained response body of a download of a content-addressed object (GET 200/206).
    #[serde(skip)]
    pub(crate) response_body: Option<RetainedBody>,
    /// Request headers the analysis reads (see [`KEPT_HEADERS`]), names lowercase.
    #[serde(skip)]
    pub(crate) request_headers: Vec<(String, String)>,
    /// Response headers the analysis reads (see [`KEPT_HEADERS`]), names lowercase.
    #[serde(skip)]
    pub(crate) response_headers: Vec<(String, String)>,
    /// The first [`RESPONSE_TEXT`] bytes of the response body (p2phttp answers in JSON).
    #[serde(skip)]
    pub(crate) response_text: Vec<u8>,
    /// True when the response stated no length and was not chunked: its body ends with the
    /// connection, so a client cannot tell a cut one from a whole one (no length to compare).
    #[serde(skip)]
    pub(crate) response_until_close: bool,
    /// What ended an incomplete response (`None` when complete): a rule's fault note when
    /// faultline's fault cut it, else "connection closed", "connection reset" or "capture
    /// ended" (the peer, or the capture, ended it).
    #[serde(skip)]
    pub(crate) response_cut_by: Option<ResponseCut>,
}

impl ResponseCut {
    /// As `--json`'s `response.cut_by` says it.
    pub(crate) fn text(&self) -> &str {
        match self {
            ResponseCut::Fault(note) => note,
            ResponseCut::Closed => "connection closed",
            ResponseCut::Reset => "connection reset",
            ResponseCut::CaptureEnded => "capture ended",
        }
    }
}

/// What ended a response before its framing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResponseCut {
    /// A rule's fault that ends connections, marked on this exchange (its note's text).
    Fault(String),
    /// The connection closed (FIN) with no fault mark on it: the upstream ended it.
    Closed,
    /// The connection was reset with no fault mark on it.
    Reset,
    /// The capture ended while the response was still arriving.
    CaptureEnded,
}

/// Headers kept for the analysis: resumes, WebDAV moves, p2phttp data lengths, JSON answers,
/// S3's integrity data (`content-md5`, `etag`, `content-encoding` for aws-chunked).
pub const KEPT_HEADERS: [&str; 9] = [
    "range",
    "content-range",
    "destination",
    "x-git-annex-data-length",
    "content-type",
    "content-length",
    "content-md5",
    "etag",
    "content-encoding",
];

/// Header name prefixes kept too: S3's `x-amz-*` (checksums, decoded lengths, copy sources,
/// encryption) and `x-amzn-*` (request ids that tell an S3 answer).
pub const KEPT_PREFIXES: [&str; 1] = ["x-amz"];

/// At most this many prefixed headers are kept per message (a hostile peer could send thousands).
const KEPT_PREFIXED_MAX: usize = 64;

/// Bytes of each response body kept as text (p2phttp's JSON answers are far smaller).
pub const RESPONSE_TEXT: usize = 1024;

impl Exchange {
    /// True for PUT/POST/PATCH.
    pub fn is_upload(&self) -> bool {
        UPLOAD_METHODS.contains(&self.method.as_str())
    }

    /// The resource the request acts on, the same for its absolute and origin forms (see
    /// [`target::resource`]): what leg comparison and attempt grouping compare.
    pub fn resource(&self) -> String {
        target::resource(&self.target, self.host.as_deref())
    }

    /// "status N", "connection reset" or "no response".
    pub fn response_text(&self) -> String {
        match (self.response.outcome, self.response.status) {
            (Outcome::Status, Some(s)) => format!("status {s}"),
            (Outcome::ConnectionReset, _) => "connection reset".into(),
            _ => "no response".into(),
        }
    }

    /// A kept request header (`name` lowercase).
    pub(crate) fn request_header(&self, name: &str) -> Option<&str> {
        self.request_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A kept response header (`name` lowercase).
    pub(crate) fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// What stands in for this exchange when `--leg` leaves its leg out: its number, leg, flow
    /// and time, and nothing an analysis acts on (no method, target, headers, body or answer), so
    /// the exchanges shown keep the numbers they have in a report of every leg. Placeholders are
    /// numbered with the rest and dropped before the report is rendered.
    pub(crate) fn placeholder(self) -> Exchange {
        Exchange {
            id: self.id,
            leg: self.leg,
            flow: self.flow,
            time_ns: self.time_ns,
            ..Exchange::empty()
        }
    }

    /// An exchange with nothing in it: no method, target, body or answer, a request that never
    /// ended.
    pub(crate) fn empty() -> Exchange {
        Exchange {
            id: 0,
            leg: None,
            flow: 0,
            time_ns: 0,
            method: String::new(),
            target: String::new(),
            host: None,
            request: RequestBody::default(),
            response: ResponseInfo::none(),
            faults: Vec::new(),
            request_range: (0, None),
            response_range: None,
            body: None,
            response_body: None,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            response_text: Vec::new(),
            response_until_close: false,
            response_cut_by: None,
        }
    }

    /// True for a [`Self::placeholder`]: a real request always has a method (an HTTP token is
    /// never empty).
    pub(crate) fn is_placeholder(&self) -> bool {
        self.method.is_empty()
    }

    /// True for a 2xx final status.
    pub fn succeeded(&self) -> bool {
        self.response
            .status
            .is_some_and(|s| (200..300).contains(&s))
    }
}

fn kept(headers: &HeaderFields) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = KEPT_HEADERS
        .iter()
        .filter_map(|name| header(headers, name).map(|v| (name.to_string(), v)))
        .collect();
    let prefixed = headers.iter().filter(|(n, _)| {
        KEPT_PREFIXES.iter().any(|p| {
            n.get(..p.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(p))
        })
    });
    out.extend(prefixed.take(KEPT_PREFIXED_MAX).map(|(n, v)| {
        (
            n.to_ascii_lowercase(),
            String::from_utf8_lossy(v).trim().to_string(),
        )
    }));
    out
}

/// The first `name` header's value (case-insensitive name), as text, trimmed.
pub(crate) fn header(headers: &HeaderFields, name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tracking {
    Undecided,
    Http,
    NotHttp,
    Stopped,
}

/// The running body hashes of the request currently being received.
struct Hashers {
    md5: Md5,
    sha256: Sha256,
}

/// The HTTP view of one flow, fed by the reassembler; [`FlowHttp::finish`] yields its exchanges.
pub struct FlowHttp {
    leg: Option<Leg>,
    flow: u64,
    conversation: Http1Conversation,
    tracking: Tracking,
    exchanges: Vec<Exchange>,
    current_request: Option<usize>,
    hashers: Option<Hashers>,
    awaiting: VecDeque<usize>,
    current_response: Option<usize>,
    comments: Vec<(Direction, u64, String)>,
    reset: bool,
    closed: [bool; 2],
    warnings: Vec<String>,
    memory: MemoryUse,
    /// False for a flow read only to number the exchanges of a leg `--leg` leaves out: no body
    /// is kept or hashed, so such a flow costs little time and no memory budget the inspected
    /// legs need.
    retain: bool,
    /// A CONNECT request waits for its answer (the bytes after it may be a tunnel).
    connect_pending: bool,
    /// A CONNECT was answered 2xx: the connection became its tunnel.
    connect_answered: bool,
    /// Where the tunnel starts per direction (client->upstream, upstream->client), after a
    /// CONNECT 2xx or a 101.
    tunnel: [Option<u64>; 2],
    /// HTTP tracking stopped at bytes the capture missed (see [`FlowOutcome::capture_missed`]).
    capture_missed: bool,
}

/// Whether the flow's HTTP/1 exchanges turned it into a CONNECT tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelState {
    /// No CONNECT, a refused one, or a 101 switch (another protocol, not read as a tunnel).
    None,
    /// A CONNECT awaits its answer: the bytes after it may become the tunnel.
    Pending,
    /// A CONNECT was answered 2xx: the tunnel starts at these offsets (client->upstream,
    /// upstream->client).
    Open([u64; 2]),
}

/// What a finished flow contributes to the report.
pub struct FlowOutcome {
    /// Its exchanges, with faults assigned.
    pub exchanges: Vec<Exchange>,
    /// True when the flow carried HTTP/1.
    pub http: bool,
    /// Problems worth a line in the report (framing lost, gaps).
    pub warnings: Vec<String>,
    /// Fault comments seen on the flow.
    pub faults: Vec<String>,
    /// True when HTTP tracking stopped because the capture missed bytes of the flow: what the
    /// capture holds of it cannot show its transfers whole.
    pub capture_missed: bool,
    /// True when the capture ended while the flow was still open (no FIN from the client, no
    /// RST): what was in flight there has no known end, neither accepted nor refused.
    pub open_at_end: bool,
    /// True when the flow was TLS that could not be decrypted (no keys in the capture or
    /// `--keylog`): nothing in it was checked.
    pub undecrypted: bool,
}

impl FlowHttp {
    /// A tracker for a new flow; `memory` accounts retained upload bodies.
    pub fn new(info: &FlowInfo, memory: MemoryUse) -> Self {
        FlowHttp {
            leg: leg::of_interface(info.interface.as_deref()),
            flow: info.id,
            conversation: Http1Conversation::new(),
            tracking: Tracking::Undecided,
            exchanges: Vec::new(),
            current_request: None,
            hashers: None,
            awaiting: VecDeque::new(),
            current_response: None,
            comments: Vec::new(),
            reset: false,
            closed: [false; 2],
            warnings: Vec::new(),
            memory,
            retain: true,
            connect_pending: false,
            connect_answered: false,
            tunnel: [None, None],
            capture_missed: false,
        }
    }

    /// A tracker that keeps no body: the flow is on a leg `--leg` leaves out, read only so its
    /// exchanges take their numbers (see [`Exchange::placeholder`]).
    pub fn numbering_only(info: &FlowInfo, memory: MemoryUse) -> Self {
        FlowHttp {
            retain: false,
            ..Self::new(info, memory)
        }
    }

    /// Whether a CONNECT turned the flow into a tunnel, and where it starts.
    pub fn tunnel_state(&self) -> TunnelState {
        match (self.connect_answered, self.tunnel) {
            (true, [Some(client), Some(server)]) => TunnelState::Open([client, server]),
            (true, _) => TunnelState::Pending,
            // A flow whose HTTP/1 broke opens no tunnel.
            (false, _) if self.connect_pending && self.tracking == Tracking::Http => {
                TunnelState::Pending
            }
            _ => TunnelState::None,
        }
    }

    fn stop(&mut self, why: String, cut_by: &str) {
        if self.tracking == Tracking::Http {
            self.warnings.push(format!("flow {}: {why}", self.flow));
            self.capture_missed |= cut_by == "capture gap";
        }
        if self.exchanges.is_empty() {
            self.tracking = Tracking::NotHttp;
        } else {
            self.tracking = Tracking::Stopped;
        }
        self.cut_current(cut_by);
    }

    fn cut_current(&mut self, why: &str) {
        if let Some(i) = self.current_request.take() {
            let ex = &mut self.exchanges[i];
            ex.request.cut_by.get_or_insert_with(|| why.to_string());
            Self::seal_hashes(ex, self.hashers.take());
        }
    }

    fn seal_hashes(ex: &mut Exchange, hashers: Option<Hashers>) {
        if let Some(h) = hashers {
            ex.request.md5 = hex::encode(h.md5.finalize());
            ex.request.sha256 = hex::encode(h.sha256.finalize());
        }
    }

    fn on_request(
        &mut self,
        events: Vec<FrameEvent<RequestHead>>,
        chunk: &[u8],
        chunk_start: u64,
        ts: u64,
    ) {
        for event in events {
            match event {
                FrameEvent::Head {
                    head, start, body, ..
                } => {
                    self.cut_current("HTTP framing");
                    let (expected, chunked) = match body {
                        BodyKind::Length(n) => (Some(n), false),
                        BodyKind::Chunked => (None, true),
                        BodyKind::None | BodyKind::UntilClose => (Some(0), false),
                    };
                    let upload = UPLOAD_METHODS.contains(&head.method.as_str());
                    let host = header(&head.headers, "host");
                    let request_headers = kept(&head.headers);
                    let range = header(&head.headers, "range");
                    self.connect_pending |= head.method.eq_ignore_ascii_case("CONNECT");
                    let index = self.exchanges.len();
                    self.exchanges.push(Exchange {
                        id: 0,
                        leg: self.leg,
                        flow: self.flow,
                        time_ns: ts,
                        method: head.method,
                        target: head.target,
                        host,
                        request: RequestBody {
                            expected,
                            chunked,
                            range,
                            ..RequestBody::default()
                        },
                        response: ResponseInfo::none(),
                        faults: Vec::new(),
                        request_range: (start, None),
                        response_range: None,
                        body: (upload && self.retain)
                            .then(|| RetainedBody::new(self.memory.clone())),
                        response_body: None,
                        request_headers,
                        response_headers: Vec::new(),
                        response_text: Vec::new(),
                        response_until_close: false,
                        response_cut_by: None,
                    });
                    self.current_request = Some(index);
                    // A numbering-only flow's exchanges become placeholders: nothing to hash.
                    self.hashers = self.retain.then(|| Hashers {
                        md5: Md5::new(),
                        sha256: Sha256::new(),
                    });
                    self.awaiting.push_back(index);
                }
                FrameEvent::Body(piece) => {
                    let (Some(i), Some(bytes)) =
                        (self.current_request, piece.bytes_in(chunk, chunk_start))
                    else {
                        continue;
                    };
                    let ex = &mut self.exchanges[i];
                    ex.request.length += bytes.len() as u64;
                    if let Some(h) = &mut self.hashers {
                        h.md5.update(bytes);
                        h.sha256.update(bytes);
                    }
                    if let Some(body) = &mut ex.body {
                        body.append(bytes);
                    }
                }
                FrameEvent::MessageEnd { end } => {
                    if let Some(i) = self.current_request.take() {
                        let ex = &mut self.exchanges[i];
                        ex.request.complete = true;
                        ex.request_range.1 = Some(end);
                        Self::seal_hashes(ex, self.hashers.take());
                    }
                }
                FrameEvent::Tunnel { start } => {
                    self.tracking = Tracking::Stopped;
                    self.tunnel[0] = Some(start);
                }
            }
        }
    }

    fn on_response(
        &mut self,
        events: Vec<FrameEvent<ResponseHead>>,
        chunk: &[u8],
        chunk_start: u64,
    ) {
        for event in events {
            match event {
                FrameEvent::Head {
                    head, start, body, ..
                } => {
                    if head.is_interim() {
                        continue;
                    }
                    self.current_response = self.awaiting.pop_front();
                    if let Some(i) = self.current_response {
                        let ex = &mut self.exchanges[i];
                        if ex.method.eq_ignore_ascii_case("CONNECT") {
                            self.connect_pending = false;
                            self.connect_answered = (200..300).contains(&head.status);
                        }
                        ex.response.outcome = Outcome::Status;
                        ex.response.status = Some(head.status);
                        ex.response.content_range = header(&head.headers, "content-range");
                        ex.response_headers = kept(&head.headers);
                        ex.response_range = Some((start, None));
                        ex.response_until_close = body == BodyKind::UntilClose;
                        ex.response.close_delimited = ex.response_until_close;
                        // A compressed body (Content-Encoding) is not the addressed content:
                        // it is not kept, so it is never checked against the address.
                        let encoded = header(&head.headers, "content-encoding")
                            .is_some_and(|e| !e.eq_ignore_ascii_case("identity"));
                        if self.retain
                            && ex.method == "GET"
                            && matches!(head.status, 200 | 206)
                            && !encoded
                            && (content_address::parse_target(&ex.target).is_some()
                                || s3_request::is_s3(ex))
                        {
                            ex.response_body = Some(RetainedBody::new(self.memory.clone()));
                        }
                    }
                }
                FrameEvent::Body(piece) => {
                    if let Some(i) = self.current_response {
                        let ex = &mut self.exchanges[i];
                        ex.response.body_length += piece.len();
                        if let Some(bytes) = piece.bytes_in(chunk, chunk_start) {
                            let room = RESPONSE_TEXT.saturating_sub(ex.response_text.len());
                            ex.response_text
                                .extend_from_slice(&bytes[..bytes.len().min(room)]);
                            if let Some(body) = &mut ex.response_body {
                                body.append(bytes);
                            }
                        }
                    }
                }
                FrameEvent::MessageEnd { end } => {
                    if let Some(i) = self.current_response.take() {
                        let ex = &mut self.exchanges[i];
                        ex.response.complete = true;
                        if let Some(range) = &mut ex.response_range {
                            range.1 = Some(end);
                        }
                    }
                }
                FrameEvent::Tunnel { start } => {
                    self.tracking = Tracking::Stopped;
                    self.tunnel[1] = Some(start);
                }
            }
        }
    }

    /// Ends the flow like [`Self::finish`], leaving out the fault comments inside the CONNECT
    /// tunnel: the connection read inside it ([`super::connect_tunnel`]) ties them to its own
    /// exchanges.
    pub fn finish_before_tunnel(mut self) -> FlowOutcome {
        if let TunnelState::Open(starts) = self.tunnel_state() {
            self.comments
                .retain(|(dir, offset, _)| *offset < starts[dir.index()]);
        }
        self.finish()
    }

    /// Ends the flow: unanswered requests get their outcome, fault comments are tied to exchanges.
    pub fn finish(mut self) -> FlowOutcome {
        let cut = if self.reset {
            "connection reset"
        } else if self.closed[0] {
            "connection closed"
        } else {
            "capture ended"
        };
        self.cut_current(cut);
        for ex in &mut self.exchanges {
            if ex.response.outcome != Outcome::Status && self.reset {
                ex.response.outcome = Outcome::ConnectionReset;
            }
        }
        let mut flow_faults = Vec::new();
        for (dir, offset, text) in std::mem::take(&mut self.comments) {
            let inside = |range: (u64, Option<u64>)| {
                range.0 <= offset && range.1.is_none_or(|e| offset <= e)
            };
            let target = match dir {
                Direction::ClientToUpstream => self
                    .exchanges
                    .iter()
                    .rposition(|ex| inside(ex.request_range)),
                // A note at the very end of a response (a RST sent right after it) is about the
                // exchange still waiting for its response, not the one that just ended.
                Direction::UpstreamToClient => self
                    .exchanges
                    .iter()
                    .rposition(|ex| {
                        ex.response_range.is_some_and(|(start, end)| {
                            start <= offset && end.is_none_or(|e| offset < e)
                        })
                    })
                    .or_else(|| {
                        self.exchanges
                            .iter()
                            .position(|ex| ex.response_range.is_none())
                    }),
            };
            // A mark that names its request ("… to GET /p/1 (attempt 1)") belongs to that
            // request, also when it sits on a later one's bytes: the FIN that ends a pipelined
            // connection after a cut response comes after every request the client sent.
            let names = |ex: &Exchange| {
                text.contains(&format!(" to {} {} (attempt ", ex.method, ex.target))
            };
            // The FIN a truncate sends right after a close-delimited body sits at its very end,
            // past every response's range: its mark still names the request it cut.
            let target = match target {
                Some(i) if !names(&self.exchanges[i]) => {
                    self.exchanges[..i].iter().rposition(names).or(Some(i))
                }
                None => self.exchanges.iter().rposition(names),
                other => other,
            };
            let note = FaultNote {
                text: text.clone(),
                direction: dir.to_string(),
                offset,
                scope: "message",
            };
            // A note of faultline's own (the FIN a stopping run sends) past every exchange is
            // about the connection's end, so the last exchange: flow-wide, a trial's report
            // tagged every exchange of a kept-alive connection "closed when the run stopped".
            let target = match target {
                None if !super::text::is_rule_fault(&text) && !self.exchanges.is_empty() => {
                    Some(self.exchanges.len() - 1)
                }
                other => other,
            };
            // One fault may mark several packets (both RSTs of a reset): note it once.
            match target {
                Some(i) if self.exchanges[i].faults.iter().any(|f| f.text == note.text) => {}
                Some(i) => self.exchanges[i].faults.push(note),
                None if flow_faults.iter().any(|f: &FaultNote| f.text == note.text) => {}
                None => flow_faults.push(note),
            }
        }
        let faults: Vec<String> = self
            .exchanges
            .iter()
            .flat_map(|ex| ex.faults.iter().map(|f| f.text.clone()))
            .chain(flow_faults.iter().map(|f| f.text.clone()))
            .collect();
        for ex in &mut self.exchanges {
            for note in &flow_faults {
                ex.faults.push(FaultNote {
                    scope: "flow",
                    ..note.clone()
                });
            }
        }
        let (reset, closed) = (self.reset, self.closed[0] || self.closed[1]);
        for ex in &mut self.exchanges {
            ex.response_cut_by = response_cut(ex, reset, closed);
            if let Some(cut) = &ex.response_cut_by {
                ex.response.complete = false;
                ex.response.cut_by = Some(cut.text().to_string());
            }
        }
        FlowOutcome {
            http: !self.exchanges.is_empty(),
            exchanges: self.exchanges,
            warnings: self.warnings,
            faults,
            capture_missed: self.capture_missed,
            open_at_end: !self.reset && !self.closed[0],
            undecrypted: false,
        }
    }
}

/// Whether a rule's fault note is one that ends connections (truncate, reset, terminate, a
/// timeout's close, drop_response's reset): what can cut a response short, unlike latency or a
/// throttle.
pub(crate) fn ends_connection(note: &str) -> bool {
    let Some(rule) = super::text::fault_rule(note) else {
        return false;
    };
    let text = note.trim_start_matches("faultline: ");
    let action = text
        .strip_prefix(&format!("rule \"{rule}\" "))
        .unwrap_or(text);
    [
        "truncate",
        "reset",
        "terminated",
        "timeout:",
        "RST_STREAM",
        "refused",
    ]
    .iter()
    .any(|verb| action.starts_with(verb))
        // drop_response: "forwarded PUT /x (attempt 1), then reset the client before its
        // response" (the upstream leg's answer is cut by that reset).
        || (action.starts_with("forwarded ") && action.contains(", then reset the client"))
}

/// What ended `ex`'s response before its framing did (`None`: it ended as framed, or never
/// started). A close-delimited body that ended at a FIN is whole by its framing, but not when
/// faultline's fault sent that FIN: a mark of a fault that ends connections on the packets
/// faultline sent the client (`upstream->client`, on this leg) cut it. The upstream leg's marks
/// sit on the packets faultline sent the upstream, so it keeps showing what the upstream sent.
fn response_cut(ex: &Exchange, reset: bool, closed: bool) -> Option<ResponseCut> {
    if ex.response.outcome != Outcome::Status {
        return None;
    }
    let ending = |toward_client: bool| {
        ex.faults
            .iter()
            .filter(|f| !toward_client || f.direction == Direction::UpstreamToClient.to_string())
            .find(|f| ends_connection(&f.text))
            .map(|f| ResponseCut::Fault(f.text.clone()))
    };
    if ex.response.complete {
        return ex.response_until_close.then(|| ending(true)).flatten();
    }
    ending(false).or(Some(match (reset, closed) {
        (true, _) => ResponseCut::Reset,
        (false, true) => ResponseCut::Closed,
        (false, false) => ResponseCut::CaptureEnded,
    }))
}

impl StreamConsumer for FlowHttp {
    fn data(&mut self, dir: Direction, offset: u64, bytes: &[u8], ts: u64) {
        if self.tracking == Tracking::Undecided {
            if dir == Direction::UpstreamToClient {
                // The server spoke first: not HTTP/1 (or the request was never captured).
                self.tracking = Tracking::NotHttp;
                return;
            }
            self.tracking = match looks_like_http1_request(bytes) {
                // The HTTP/2 preface's first segment cut short ("PRI " is no HTTP/1 method).
                Detection::NeedMore if bytes.starts_with(b"PRI ") => Tracking::NotHttp,
                Detection::Http1 | Detection::NeedMore => Tracking::Http,
                Detection::Http2 | Detection::NotHttp => Tracking::NotHttp,
            };
        }
        if self.tracking != Tracking::Http {
            return;
        }
        match dir {
            Direction::ClientToUpstream => {
                let start = self.conversation.request_offset();
                if start != offset {
                    return self.stop(
                        format!("request stream jumped to offset {offset}"),
                        "capture gap",
                    );
                }
                match self.conversation.feed_request(bytes) {
                    Ok(events) => self.on_request(events, bytes, start, ts),
                    Err(e) => self.stop(e.to_string(), "HTTP framing error"),
                }
            }
            Direction::UpstreamToClient => {
                let start = self.conversation.response_offset();
                match self.conversation.feed_response(bytes) {
                    Ok(events) => self.on_response(events, bytes, start),
                    Err(e) => return self.stop(e.to_string(), "HTTP framing error"),
                }
                // The answer that opened a tunnel also settles where the request side's starts.
                if self.conversation.is_tunnel() && self.tunnel[0].is_none() {
                    let at = self.conversation.request_offset();
                    if let Ok(events) = self.conversation.feed_request(&[]) {
                        self.on_request(events, &[], at, ts);
                    }
                }
            }
        }
    }

    fn fin(&mut self, dir: Direction, _offset: u64, ts: u64) {
        let index = usize::from(dir == Direction::UpstreamToClient);
        self.closed[index] = true;
        if self.tracking != Tracking::Http {
            return;
        }
        match dir {
            Direction::ClientToUpstream => match self.conversation.request_eof() {
                Ok(events) => self.on_request(events, &[], 0, ts),
                Err(_) => self.cut_current("connection closed"),
            },
            Direction::UpstreamToClient => {
                if let Ok(events) = self.conversation.response_eof() {
                    self.on_response(events, &[], 0);
                }
            }
        }
    }

    fn reset(&mut self, _dir: Direction, _offset: u64, _ts: u64) {
        self.reset = true;
        self.cut_current("connection reset");
    }

    fn gap(&mut self, dir: Direction, offset: u64, missing: u64) {
        if self.tracking == Tracking::Http {
            self.stop(
                format!(
                    "{} missing from the capture at {dir} offset {offset}; HTTP tracking stopped",
                    crate::plural::count(missing, "byte")
                ),
                "capture gap",
            );
        }
    }

    fn comment(&mut self, dir: Direction, offset: u64, text: &str, _ts: u64) {
        // Bounded: a damaged capture could comment every packet.
        if self.comments.len() < 10_000 {
            self.comments.push((dir, offset, text.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flow 1 between a client and faultline's port, captured on `interface`.
    fn flow_on(interface: &str) -> FlowInfo {
        FlowInfo {
            id: 1,
            interface: Some(interface.into()),
            client: "127.0.0.1:40000".parse().expect("addr"),
            server: "127.0.0.1:3030".parse().expect("addr"),
            opened_ns: 1,
            saw_syn: true,
            client_isn: None,
        }
    }

    /// The upstream leg of three pipelined GETs whose second response faultline cut: the FIN it
    /// sent the upstream, marked with the rule, comes after the third request's bytes, but its
    /// mark names GET /p/1, and that is the exchange it belongs to (a trial saw it on GET /p/2,
    /// which the upstream answered whole).
    #[test]
    fn a_mark_naming_its_request_belongs_to_that_request() {
        let mut flow = FlowHttp::new(&flow_on("upstream leg"), MemoryUse::default());
        let requests: Vec<u8> = (0..3)
            .flat_map(|i| format!("GET /p/{i} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes())
            .collect();
        flow.data(Direction::ClientToUpstream, 0, &requests, 10);
        let mut offset = 0;
        for body in ["a", "bb", "ccc"] {
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            flow.data(Direction::UpstreamToClient, offset, response.as_bytes(), 20);
            offset += response.len() as u64;
        }
        let mark = r#"faultline: rule "cut" truncated upstream->client after 1 bytes of the response body to GET /p/1 (attempt 1) (status 200)"#;
        flow.comment(Direction::ClientToUpstream, requests.len() as u64, mark, 30);
        flow.fin(Direction::ClientToUpstream, requests.len() as u64, 30);
        let outcome = flow.finish();
        let marked: Vec<(&str, usize)> = outcome
            .exchanges
            .iter()
            .map(|ex| (ex.target.as_str(), ex.faults.len()))
            .collect();
        assert_eq!(marked, [("/p/0", 0), ("/p/1", 1), ("/p/2", 0)]);
    }

    /// The FIN a stopping run sends after a kept-alive connection's last response is about
    /// that connection's end: the last exchange notes it, not every exchange of the flow.
    #[test]
    fn a_run_stopped_note_past_every_exchange_goes_on_the_last_one() {
        let mut flow = FlowHttp::new(&flow_on("client leg"), MemoryUse::default());
        let (mut up, mut down) = (0u64, 0u64);
        for i in 0..3 {
            let request = format!("GET /p/{i} HTTP/1.1\r\nHost: x\r\n\r\n");
            flow.data(Direction::ClientToUpstream, up, request.as_bytes(), 10);
            up += request.len() as u64;
            let response = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na";
            flow.data(Direction::UpstreamToClient, down, response.as_bytes(), 20);
            down += response.len() as u64;
        }
        flow.comment(
            Direction::UpstreamToClient,
            down,
            "faultline: run stopped",
            30,
        );
        flow.fin(Direction::UpstreamToClient, down, 30);
        let outcome = flow.finish();
        let marked: Vec<usize> = outcome.exchanges.iter().map(|ex| ex.faults.len()).collect();
        assert_eq!(marked, [0, 0, 1]);
    }

    /// One close-delimited GET /close (no Content-Length, not chunked) answered with 10 body
    /// bytes then a FIN, read on `interface`, with `mark` (direction, text) on that FIN.
    fn close_delimited(interface: &str, mark: Option<(Direction, &str)>) -> Exchange {
        let mut flow = FlowHttp::new(&flow_on(interface), MemoryUse::default());
        let request = b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n";
        flow.data(Direction::ClientToUpstream, 0, request, 10);
        let response = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n0123456789";
        flow.data(Direction::UpstreamToClient, 0, response, 20);
        let end = response.len() as u64;
        if let Some((dir, text)) = mark {
            let offset = match dir {
                Direction::UpstreamToClient => end,
                Direction::ClientToUpstream => request.len() as u64,
            };
            flow.comment(dir, offset, text, 30);
        }
        flow.fin(Direction::UpstreamToClient, end, 30);
        flow.fin(Direction::ClientToUpstream, request.len() as u64, 31);
        let mut outcome = flow.finish();
        assert_eq!(outcome.exchanges.len(), 1);
        outcome.exchanges.remove(0)
    }

    const CLOSE_CUT: &str = r#"faultline: rule "cut" truncated upstream->client after 10 bytes of the response body to GET /close (attempt 1) (status 200)"#;

    /// Trial: curl got 100000 of 300000 bytes of a close-delimited download a truncate cut,
    /// exited 0, and inspect called the body complete (the FIN ends such a body as framed) with
    /// the mark only flow-wide. The FIN faultline's fault sent the client cut it: incomplete, cut
    /// by that fault, on the client leg; the upstream leg shows what the upstream sent.
    #[test]
    fn a_close_delimited_body_a_fault_ended_is_cut_on_the_client_leg() {
        let client = close_delimited("client leg", Some((Direction::UpstreamToClient, CLOSE_CUT)));
        assert_eq!(client.response.body_length, 10);
        assert!(!client.response.complete);
        assert!(client.response_until_close);
        assert_eq!(
            client.response_cut_by,
            Some(ResponseCut::Fault(CLOSE_CUT.into()))
        );
        assert_eq!(client.faults.len(), 1);
        assert_eq!(client.faults[0].scope, "message");
        assert!(client.response.close_delimited);
        assert_eq!(client.response.cut_by.as_deref(), Some(CLOSE_CUT));
        // The upstream leg: the mark is on the FIN faultline sent the upstream.
        let upstream = close_delimited(
            "upstream leg",
            Some((Direction::ClientToUpstream, CLOSE_CUT)),
        );
        assert!(upstream.response.complete);
        assert_eq!(upstream.response_cut_by, None);
        assert_eq!(upstream.response.cut_by, None);
        // No mark, or a fault that ends nothing: the close ended the body as framed.
        for mark in [
            None,
            Some((
                Direction::UpstreamToClient,
                r#"faultline: rule "slow" latency 10ms on the response to GET /close (attempt 1) (status 200)"#,
            )),
            Some((Direction::UpstreamToClient, "faultline: run stopped")),
        ] {
            let whole = close_delimited("client leg", mark);
            assert!(whole.response.complete, "{mark:?}");
            assert_eq!(whole.response_cut_by, None, "{mark:?}");
        }
    }

    /// A body the upstream sent short (Content-Length: 100, 5 bytes, FIN) with no fault mark
    /// was cut by the connection's close, not by a fault.
    #[test]
    fn a_short_body_with_no_fault_mark_was_cut_by_the_close() {
        let mut flow = FlowHttp::new(&flow_on("client leg"), MemoryUse::default());
        let request = b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n";
        flow.data(Direction::ClientToUpstream, 0, request, 10);
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello";
        flow.data(Direction::UpstreamToClient, 0, response, 20);
        flow.comment(
            Direction::UpstreamToClient,
            0,
            r#"faultline: rule "lat" latency 10ms on the response to GET /short (attempt 1) (status 200)"#,
            20,
        );
        flow.fin(Direction::UpstreamToClient, response.len() as u64, 30);
        let outcome = flow.finish();
        let ex = &outcome.exchanges[0];
        assert!(!ex.response.complete);
        assert_eq!(ex.response_cut_by, Some(ResponseCut::Closed));
        assert_eq!(ex.response.cut_by.as_deref(), Some("connection closed"));
        assert!(!ex.response.close_delimited);
    }

    /// The faults that end connections, and so can cut a response: a trial's drop_response
    /// reset read as the upstream's own short answer until its note was known.
    #[test]
    fn faults_that_end_connections_are_told_from_timing_faults() {
        for ends in [
            r#"faultline: rule "a" truncated upstream->client after 1 bytes"#,
            r#"faultline: rule "a" reset client->upstream after 0 bytes of the body of PUT /e2 (attempt 1)"#,
            r#"faultline: rule "a" forwarded PUT /e3 (attempt 1), then reset the client before its response"#,
            r#"faultline: rule "a" terminated with FIN after 1s"#,
            r#"faultline: rule "a" timeout: closed with FIN 1s after it came in force"#,
        ] {
            assert!(ends_connection(ends), "{ends}");
        }
        for not in [
            r#"faultline: rule "a" latency 10ms on the response to GET /reset (attempt 1) (status 200)"#,
            r#"faultline: rule "truncated" bandwidth limited to 10 bytes/s on GET /x (attempt 1)"#,
            "faultline: run stopped",
        ] {
            assert!(!ends_connection(not), "{not}");
        }
    }
}
