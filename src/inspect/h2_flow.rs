//! One TCP flow read as HTTP/2: the client preface (or an h2c upgrade) detected, both directions fed to one `h2::Conversation` in capture order, streams and their gRPC messages kept.
//!
//! The reassembler hands over each direction's bytes in the order the packets were captured, so
//! feeding them straight to one [`Conversation`] keeps the two directions interleaved as they
//! crossed: a SETTINGS frame of one peer raises the frame size and HPACK table limits of the other
//! before the frames that use them. Before the client's first bytes decide the protocol, the
//! server's bytes (an eager server SETTINGS) wait in a bounded queue; an HTTP/1.1 request with
//! `Upgrade: h2c` is followed to the server's 101 ([`super::h2c_upgrade`]) and HTTP/2 starts
//! after it, the upgraded request being stream 1.
//!
//! Per stream the flow keeps what `inspect` reports (headers, status, trailers, resets, DATA
//! and gRPC message counts, fault comments) and, for `google.bytestream` calls, the evidence the
//! blob checks need ([`Call`]): the request, and the data bytes of every *complete* message
//! (a gRPC receiver delivers whole messages only, so the bytes of a message cut by RST_STREAM
//! never reached the application).

use std::collections::{BTreeMap, VecDeque};

use super::body_store::MemoryUse;
use super::bytestream_call::Call;
use super::grpc_encoding::decompress;
use super::h2_model::{fields, GoawayNote, H2Connection, H2Stream, ResetNote, MAX_VALUE};
use super::h2c_upgrade::{Step, Upgrade};
use super::leg;
use super::reassembly::{FlowInfo, StreamConsumer};
use crate::direction::{Direction, Leg};
use crate::h2::bytestream::Method;
use crate::h2::control::Control;
use crate::h2::frame::{FrameType, StreamId, PREFACE};
use crate::h2::grpc::{MessagePart, MessageReader};
use crate::h2::grpc_status::status_name;
use crate::h2::FrameError;
use crate::h2::{BlockRole, Conversation, HeaderList, PieceKind};
use crate::http::{looks_like_http1_request, Detection};

/// Server bytes held while the client has not yet shown the preface.
const MAX_QUEUED: usize = 1 << 20;
/// Largest gRPC message body kept to parse a ByteStream message (gRPC's default limit is 4 MiB).
const MAX_MESSAGE: usize = 64 << 20;
/// Streams reported per connection; later ones are counted, not listed.
const MAX_STREAMS: usize = 10_000;
/// Recent frames remembered per direction to tie a packet comment to its stream: a comment
/// is resolved when it arrives (its packet's bytes have just been fed), so only the frames of
/// the last few segments are needed.
const RECENT_FRAMES: usize = 256;
/// What the header lists of a flow's kept streams may hold (RFC 9113 §6.5.2 count) before
/// decoding the flow's HTTP/2 stops with a warning: `inspect` keeps the streams it lists (up to
/// [`MAX_STREAMS`]) to the end, and streams still open; a capture of peers that opened streams
/// with lists of 250 KB each would otherwise take gigabytes. 64 MiB holds 10,000 listed
/// streams of 6 KB of headers each (browsers with large cookies send 4-8 KB).
const HEADER_BUDGET: usize = 64 << 20;
/// What the header lists of all HTTP/2 flows of one capture may hold together
/// ([`Memory::header_lists`](super::body_store::Memory)): without it a capture of many flows
/// with such lists costs [`HEADER_BUDGET`] each (8 flows took 627 MB). Four flows at their own
/// budget, or a million calls of 250-byte header lists.
const CAPTURE_HEADER_BUDGET: u64 = 256 << 20;
/// Streams opened between two prunings of closed streams left out of the listing.
const PRUNE_EVERY: u64 = 1000;
/// Fault comments kept per connection (a damaged capture could comment every packet).
const MAX_COMMENTS: usize = 10_000;
/// Fault comments waiting for their frame to be parsed, per direction.
const MAX_WAITING: usize = 1024;
/// GOAWAY frames reported per connection.
const MAX_GOAWAYS: usize = 16;
/// Reads the gRPC messages of one stream in one direction, keeping bodies only when asked.
#[derive(Debug, Default)]
struct Messages {
    reader: MessageReader,
    keep: bool,
    body: Vec<u8>,
    compressed: bool,
    too_large: bool,
    complete: u64,
    /// The framing broke (not gRPC, or bytes missing): later bytes are not read.
    broken: Option<String>,
}

impl Messages {
    /// Feeds payload bytes at stream offset `at`; returns the messages they completed (index,
    /// compressed, body — empty when bodies are not kept or the message was too large).
    fn feed(&mut self, at: u64, bytes: &[u8]) -> Vec<(u64, bool, Vec<u8>, bool)> {
        let mut done = Vec::new();
        if self.broken.is_some() {
            return done;
        }
        let mut parts = Vec::new();
        if let Err(e) = self.reader.feed(at, bytes, &mut parts) {
            self.broken = Some(e.to_string());
            return done;
        }
        for part in parts {
            match part {
                MessagePart::Start {
                    compressed, length, ..
                } => {
                    self.body.clear();
                    self.compressed = compressed;
                    self.too_large = length as usize > MAX_MESSAGE;
                }
                MessagePart::Body { range, .. } => {
                    if self.keep && !self.too_large {
                        self.body.extend_from_slice(&bytes[range]);
                    }
                }
                MessagePart::End { index } => {
                    self.complete += 1;
                    done.push((
                        index,
                        self.compressed,
                        std::mem::take(&mut self.body),
                        self.too_large,
                    ));
                }
            }
        }
        done
    }

    /// Body bytes of a message begun and not finished.
    fn pending(&self) -> u64 {
        if self.reader.at_boundary() {
            0
        } else {
            self.body.len() as u64
        }
    }
}

/// What this flow knows of one stream beyond the tracker's record.
#[derive(Debug)]
struct StreamNotes {
    opened_ns: u64,
    grpc: bool,
    messages: [Messages; 2],
    call: Option<Call>,
    faults: Vec<String>,
    /// A RST_STREAM crossed: later DATA (in flight) never reaches an application.
    reset: bool,
    /// When the first RST_STREAM crossed.
    reset_ns: Option<u64>,
    /// When the server's last header block (final response or trailers) crossed before the
    /// reset.
    answer_ns: Option<u64>,
    /// When the final response headers crossed (before any reset).
    response_ns: Option<u64>,
    /// When the server's last DATA or header block crossed before any reset.
    response_last_ns: Option<u64>,
    /// Header blocks that crossed after a RST_STREAM (the proxy forwarding the server's
    /// trailers after resetting the stream toward the client): the receiver ignores them
    /// (RFC 9113 §5.1), so they are no part of the call's status or end.
    late: Vec<(BlockRole, HeaderList)>,
    /// END_STREAM crossed after a RST_STREAM, per direction: the stream did not end that way.
    ended_late: [bool; 2],
    /// `grpc-encoding` per direction: of the request headers (client messages) and of the
    /// response headers (server messages); how a message with the compressed flag is read.
    encoding: [Option<String>; 2],
}

/// Late header blocks kept per stream.
const MAX_LATE: usize = 4;

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// The client has not shown enough bytes yet.
    Undecided,
    /// An HTTP/1.1 request asked for `Upgrade: h2c`; waiting for the server's 101.
    Upgrading,
    /// Preface seen: HTTP/2.
    H2,
    /// Not HTTP/2 (or decoding stopped).
    Off,
}

/// The HTTP/2 view of one flow, fed by the reassembler; [`FlowH2::finish`] yields what it found.
pub struct FlowH2 {
    flow: u64,
    leg: Option<Leg>,
    state: State,
    queued: Vec<(Direction, Vec<u8>, u64)>,
    queued_bytes: usize,
    conversation: Conversation,
    pending: [Vec<u8>; 2],
    notes: BTreeMap<StreamId, StreamNotes>,
    extra_streams: u64,
    goaways: Vec<GoawayNote>,
    /// (start, end, stream) of recent frames per direction, in TCP stream offsets.
    recent: [VecDeque<(u64, u64, StreamId)>; 2],
    /// Comments (TCP stream offset, text) whose frame has not been parsed yet: its bytes wait
    /// for a missing earlier segment, for the protocol to be decided, or for the rest of the
    /// frame.
    waiting: [VecDeque<(u64, String)>; 2],
    /// Fault comments tied to their stream, resolved as they arrived (however many frames
    /// follow them).
    faults: BTreeMap<StreamId, Vec<String>>,
    /// Fault comments counted against [`MAX_COMMENTS`].
    comments: usize,
    /// TCP stream offset of the conversation's first byte per direction (after an h2c
    /// upgrade's HTTP/1 exchange; 0 otherwise).
    origin: [u64; 2],
    error: Option<String>,
    memory: MemoryUse,
    /// The HTTP/1 exchange before an h2c upgrade (only while `Upgrading`).
    upgrade: Option<Box<Upgrade>>,
    /// Decoding stopped at bytes the capture missed (see [`H2Outcome::capture_missed`]).
    capture_missed: bool,
    /// Closed streams that are not listed are dropped once this many streams were opened.
    next_prune: u64,
    /// This flow's share of `memory.header_lists`, as last reported.
    header_lists_reported: u64,
}

/// What a finished HTTP/2 flow contributes to the report.
#[derive(Debug)]
pub struct H2Outcome {
    /// The connection.
    pub connection: H2Connection,
    /// Its streams, by id.
    pub streams: Vec<H2Stream>,
    /// Its ByteStream calls.
    pub calls: Vec<Call>,
    /// Problems worth a line in the report.
    pub warnings: Vec<String>,
    /// True when decoding stopped at bytes the capture missed: what the capture holds of the
    /// connection cannot show its transfers whole.
    pub capture_missed: bool,
}

impl FlowH2 {
    /// A reader for a new flow; ByteStream data is retained against `memory`.
    pub fn new(info: &FlowInfo, memory: MemoryUse) -> FlowH2 {
        FlowH2 {
            flow: info.id,
            leg: leg::of_interface(info.interface.as_deref()),
            state: State::Undecided,
            queued: Vec::new(),
            queued_bytes: 0,
            conversation: Conversation::new().with_header_budget(HEADER_BUDGET),
            pending: [Vec::new(), Vec::new()],
            notes: BTreeMap::new(),
            extra_streams: 0,
            goaways: Vec::new(),
            recent: [VecDeque::new(), VecDeque::new()],
            waiting: [VecDeque::new(), VecDeque::new()],
            faults: BTreeMap::new(),
            comments: 0,
            origin: [0, 0],
            error: None,
            memory,
            upgrade: None,
            capture_missed: false,
            next_prune: PRUNE_EVERY,
            header_lists_reported: 0,
        }
    }

    /// Reports this flow's kept header lists to the capture-wide count and returns the budget
    /// left for this flow: its own, or what the other flows left of the capture's, if less.
    fn share_header_lists(&mut self) -> usize {
        let kept = self.conversation.tracker().headers_kept() as u64;
        let shared = &self.memory.header_lists;
        let others = shared.get().saturating_sub(self.header_lists_reported);
        shared.set(others + kept);
        self.header_lists_reported = kept;
        let left = CAPTURE_HEADER_BUDGET.saturating_sub(others);
        usize::try_from(left).map_or(HEADER_BUDGET, |left| left.min(HEADER_BUDGET))
    }

    /// The client's first bytes decide: the preface (HTTP/2 with prior knowledge), an HTTP/1
    /// request (maybe an h2c upgrade), or anything else (not HTTP/2).
    fn decide(&mut self) {
        let client: Vec<u8> = self
            .queued
            .iter()
            .filter(|(d, _, _)| *d == Direction::ClientToUpstream)
            .flat_map(|(_, b, _)| b.iter().copied())
            .take(PREFACE.len())
            .collect();
        let n = client.len();
        if n == 0 {
            return;
        }
        if client[..] == PREFACE[..n] {
            if n == PREFACE.len() {
                self.state = State::H2;
                for (d, b, t) in std::mem::take(&mut self.queued) {
                    if self.state == State::H2 {
                        self.feed(d, &b, t);
                    }
                }
            }
            return;
        }
        if looks_like_http1_request(&client) == Detection::NotHttp {
            self.give_up();
            return;
        }
        self.state = State::Upgrading;
        self.upgrade = Some(Box::new(Upgrade::new()));
        for (d, b, t) in self.queued.clone() {
            if self.state == State::Upgrading {
                self.follow_upgrade(d, &b, t);
            }
        }
    }

    fn give_up(&mut self) {
        self.state = State::Off;
        self.queued = Vec::new();
        self.upgrade = None;
        self.waiting = [VecDeque::new(), VecDeque::new()];
    }

    /// Feeds the HTTP/1 exchange that may upgrade; switches to HTTP/2 once the 101 says where
    /// it starts in each direction, replaying the held bytes from there.
    fn follow_upgrade(&mut self, direction: Direction, bytes: &[u8], ts: u64) {
        let Some(up) = self.upgrade.as_mut() else {
            return self.give_up();
        };
        let (starts, request, switched_ns) = match up.feed(direction, bytes, ts) {
            Step::Wait => return,
            Step::NotH2c => return self.give_up(),
            Step::Switched {
                starts,
                request,
                switched_ns,
            } => (starts, request, switched_ns),
        };
        self.upgrade = None;
        self.state = State::H2;
        self.conversation =
            Conversation::upgraded(request.clone()).with_header_budget(HEADER_BUDGET);
        self.open(StreamId(1), &request, switched_ns);
        self.origin = starts;
        let mut seen = [0u64; 2];
        for (d, b, t) in std::mem::take(&mut self.queued) {
            let i = d.index();
            let skip = starts[i].saturating_sub(seen[i]).min(b.len() as u64) as usize;
            seen[i] += b.len() as u64;
            if skip < b.len() && self.state == State::H2 {
                self.feed(d, &b[skip..], t);
            }
        }
    }

    /// Whether the flow turned out to be HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.state == State::H2 || self.error.is_some()
    }

    fn stop(&mut self, why: String) {
        if self.error.is_none() {
            self.error = Some(why);
        }
        self.state = State::Off;
        self.pending = [Vec::new(), Vec::new()];
    }

    fn feed(&mut self, direction: Direction, bytes: &[u8], ts: u64) {
        let d = direction.index();
        if self.conversation.tracker().opened() >= self.next_prune {
            // Past MAX_STREAMS the streams opened are counted, not listed: once closed, their
            // records (and header lists) are not needed. Notes exist for the streams opened by
            // earlier feeds, so this runs before the next one.
            let notes = &self.notes;
            self.conversation
                .tracker_mut()
                .prune_closed_except(|id| notes.contains_key(&id));
            self.next_prune = self.conversation.tracker().opened() + PRUNE_EVERY;
        }
        let budget = self.share_header_lists();
        self.conversation.set_header_budget(budget);
        let mut buf = std::mem::take(&mut self.pending[d]);
        buf.extend_from_slice(bytes);
        let fed = self.conversation.feed(direction, &buf);
        self.share_header_lists();
        let fed = match fed {
            Ok(fed) => fed,
            Err(e)
                if budget < HEADER_BUDGET && matches!(e.kind, FrameError::HeaderBudget { .. }) =>
            {
                return self.stop(format!(
                    "HTTP/2 decoding stopped: {e}; the capture's HTTP/2 connections together \
                     keep at most {CAPTURE_HEADER_BUDGET} bytes of header lists, and the others \
                     hold {}",
                    self.memory.header_lists.get() - self.header_lists_reported
                ))
            }
            Err(e) => return self.stop(format!("HTTP/2 decoding stopped: {e}")),
        };
        let base = self.conversation.reader(direction).offset() - fed.consumed as u64;
        let origin = self.origin[d];
        let mut blocks = fed.blocks.iter().peekable();
        for (index, piece) in fed.pieces.iter().enumerate() {
            let at = (piece.start - base) as usize;
            match &piece.kind {
                PieceKind::Header(header) => {
                    let start = origin + piece.start;
                    let end = start + piece.len as u64 + u64::from(header.length);
                    self.frame(d, start, end, header.stream);
                    if header.kind == FrameType::Data && header.ends_stream() {
                        if let Some(notes) = self.notes.get_mut(&header.stream) {
                            notes.ended_late[d] |= notes.reset;
                        }
                    }
                }
                PieceKind::Data { stream, offset } => {
                    if direction == Direction::UpstreamToClient {
                        if let Some(notes) = self.notes.get_mut(stream).filter(|n| !n.reset) {
                            notes.response_last_ns = Some(ts);
                        }
                    }
                    self.data(direction, *stream, *offset, &buf[at..at + piece.len]);
                }
                PieceKind::Control(control) => {
                    self.control(direction, index, &fed.pieces, control, ts)
                }
                _ => {}
            }
            while let Some(block) = blocks.next_if(|b| b.piece == index) {
                if block.role == BlockRole::Request {
                    self.open(block.stream, &block.headers, ts);
                    continue;
                }
                let Some(notes) = self.notes.get_mut(&block.stream) else {
                    continue;
                };
                if notes.reset {
                    notes.ended_late[d] |= block.end_stream;
                    if notes.late.len() < MAX_LATE {
                        notes.late.push((block.role, block.headers.clone()));
                    }
                } else if direction == Direction::UpstreamToClient {
                    if block.role == BlockRole::Response {
                        notes.response_ns.get_or_insert(ts);
                        notes.encoding[d] = block.headers.get_str("grpc-encoding");
                    }
                    if matches!(block.role, BlockRole::Response | BlockRole::Trailers) {
                        notes.answer_ns = Some(ts);
                    }
                    notes.response_last_ns = Some(ts);
                }
            }
        }
        buf.drain(..fed.consumed);
        self.pending[d] = buf;
    }

    /// A frame of direction `d` spans TCP stream offsets `start..end`: remembered for comments
    /// still to come, and the waiting comments that fall inside it are tied to `stream`.
    fn frame(&mut self, d: usize, start: u64, end: u64, stream: StreamId) {
        let recent = &mut self.recent[d];
        if recent.len() == RECENT_FRAMES {
            recent.pop_front();
        }
        recent.push_back((start, end, stream));
        if self.waiting[d].is_empty() {
            return;
        }
        let mut inside = Vec::new();
        // Frames come in stream order: a comment before this frame lies in no frame (the
        // preface), so it is about the connection.
        self.waiting[d].retain_mut(|(offset, text)| {
            if *offset < start {
                false
            } else if *offset < end {
                inside.push(std::mem::take(text));
                false
            } else {
                true
            }
        });
        for text in inside {
            self.attach(stream, text);
        }
    }

    /// Records a fault comment on `stream` (none on the connection's stream 0), or on the stream
    /// it names: a note faultline wrote with the next frame it sent is about the stream it says
    /// (a trial read "header block of stream 1 … withheld" in stream 3's row).
    fn attach(&mut self, stream: StreamId, text: String) {
        let stream = named_stream(&text).map_or(stream, StreamId);
        if stream.is_connection() {
            return;
        }
        let faults = self.faults.entry(stream).or_default();
        if !faults.contains(&text) {
            faults.push(text);
        }
    }

    fn open(&mut self, stream: StreamId, headers: &HeaderList, ts: u64) {
        if self.notes.len() >= MAX_STREAMS {
            self.extra_streams += 1;
            return;
        }
        let method = headers.path().as_deref().and_then(Method::from_path);
        let grpc = headers.is_grpc();
        let call = method
            .filter(|_| grpc)
            .map(|m| Call::new(self.flow, self.leg, stream.0, ts, m, self.memory.clone()));
        let keep = call.is_some();
        let mut messages: [Messages; 2] = Default::default();
        for m in &mut messages {
            m.keep = keep;
        }
        let mut encoding: [Option<String>; 2] = Default::default();
        encoding[Direction::ClientToUpstream.index()] = headers.get_str("grpc-encoding");
        self.notes.insert(
            stream,
            StreamNotes {
                opened_ns: ts,
                grpc,
                messages,
                call,
                faults: Vec::new(),
                reset: false,
                reset_ns: None,
                answer_ns: None,
                response_ns: None,
                response_last_ns: None,
                late: Vec::new(),
                ended_late: [false; 2],
                encoding,
            },
        );
    }

    fn data(&mut self, direction: Direction, stream: StreamId, offset: u64, bytes: &[u8]) {
        let Some(notes) = self.notes.get_mut(&stream) else {
            return;
        };
        if !notes.grpc || notes.reset {
            return;
        }
        let done = notes.messages[direction.index()].feed(offset, bytes);
        let Some(call) = &mut notes.call else {
            return;
        };
        let encoding = notes.encoding[direction.index()].as_deref();
        for (index, compressed, body, too_large) in done {
            if too_large {
                call.unreadable(
                    direction,
                    index,
                    &format!("it is larger than {MAX_MESSAGE} bytes"),
                );
            } else if compressed {
                match decompress(encoding, &body, MAX_MESSAGE) {
                    Ok(plain) => call.message(direction, index, &plain),
                    Err(why) => call.unreadable(direction, index, &why),
                }
            } else {
                call.message(direction, index, &body);
            }
        }
    }

    fn control(
        &mut self,
        direction: Direction,
        index: usize,
        pieces: &[crate::h2::Piece],
        control: &Control,
        ts: u64,
    ) {
        let stream = pieces[..index].iter().rev().find_map(|p| match p.kind {
            PieceKind::Header(h) => Some(h.stream),
            _ => None,
        });
        match control {
            Control::RstStream { .. } => {
                if let Some(notes) = stream.and_then(|s| self.notes.get_mut(&s)) {
                    notes.reset = true;
                    notes.reset_ns.get_or_insert(ts);
                }
            }
            Control::Goaway {
                last_stream,
                code,
                debug,
            } if self.goaways.len() < MAX_GOAWAYS => {
                self.goaways.push(GoawayNote {
                    by: direction.to_string(),
                    last_stream: last_stream.0,
                    code: code.to_string(),
                    debug: String::from_utf8_lossy(&debug[..debug.len().min(MAX_VALUE)])
                        .into_owned(),
                    at_ns: ts,
                });
            }
            _ => {}
        }
    }

    /// Ends the flow: streams from the tracker joined with what this flow kept.
    pub fn finish(mut self, info: &FlowInfo) -> Option<H2Outcome> {
        if !self.is_h2() {
            return None;
        }
        let mut warnings = Vec::new();
        if let Some(e) = &self.error {
            warnings.push(format!("flow {}: {e}", self.flow));
        }
        if self.extra_streams > 0 {
            warnings.push(format!(
                "flow {}: {} more HTTP/2 streams not listed (limit {MAX_STREAMS})",
                self.flow, self.extra_streams
            ));
        }
        // Comments still waiting lie past the last frame (the end of the run, a TCP reset):
        // they are about the connection, not a stream.
        for (id, faults) in std::mem::take(&mut self.faults) {
            if let Some(notes) = self.notes.get_mut(&id) {
                notes.faults = faults;
            }
        }
        let tracker = self.conversation.tracker();
        let mut streams = Vec::new();
        let mut calls = Vec::new();
        for (id, mut notes) in std::mem::take(&mut self.notes) {
            let Some(record) = tracker.stream(id) else {
                continue;
            };
            let up = Direction::ClientToUpstream.index();
            let down = Direction::UpstreamToClient.index();
            let request = record.request.as_ref();
            let reset = record.reset.map(|r| ResetNote {
                by: r.by.to_string(),
                code: r.code.to_string(),
                at_ns: notes.reset_ns,
            });
            // What the receiver took: the blocks that crossed after the reset are left out.
            let late = |role: BlockRole| notes.late.iter().any(|(r, _)| *r == role);
            let response = record
                .response
                .as_ref()
                .filter(|_| !late(BlockRole::Response));
            let trailers = record
                .response_trailers
                .as_ref()
                .filter(|_| !late(BlockRole::Trailers));
            let grpc_status = trailers
                .and_then(HeaderList::grpc_status)
                .or_else(|| response.and_then(HeaderList::grpc_status));
            let grpc_message = trailers
                .and_then(HeaderList::grpc_message)
                .or_else(|| response.and_then(HeaderList::grpc_message));
            let ended = [
                record.ended[up] && !notes.ended_late[up],
                record.ended[down] && !notes.ended_late[down],
            ];
            let status = response.and_then(HeaderList::status);
            let content_length = response
                .and_then(|r| r.get_str("content-length"))
                .and_then(|v| v.trim().parse::<u64>().ok());
            // A gRPC answer ends with its grpc-status (trailers, or a trailers-only response):
            // one that ended without it was cut (faultline's truncate ends it with END_STREAM).
            let grpc_unfinished = grpc_status.is_none()
                && response
                    .and_then(|r| r.get_str("content-type"))
                    .is_some_and(|t| t.trim().starts_with("application/grpc"));
            let response_cut = response_cut(
                request.and_then(HeaderList::method).as_deref(),
                status,
                content_length,
                record.data_bytes[down],
                ended[down] && !grpc_unfinished,
            );
            let ignored_after_reset = notes
                .late
                .iter()
                .flat_map(|(_, list)| fields(Some(list)))
                .take(super::h2_model::MAX_FIELDS)
                .collect();
            if let Some(mut call) = notes.call.take() {
                call.grpc_status = grpc_status;
                call.reset = reset.as_ref().map(|r| r.code.clone());
                call.reset_ns = notes.reset_ns;
                call.answered_ns = grpc_status.and(notes.answer_ns);
                call.response_ended = ended[down];
                call.partial = notes.messages[down].pending() + notes.messages[up].pending();
                for (d, m) in notes.messages.iter().enumerate() {
                    if let Some(why) = &m.broken {
                        call.problems.push(format!(
                            "{} gRPC framing unreadable: {why}",
                            Direction::ALL[d]
                        ));
                    }
                }
                if let (None, Some(why)) = (&call.resource_name, &call.unchecked) {
                    // Its request could not be read: no blob names it, so say it here.
                    warnings.push(format!(
                        "flow {} stream {}: a ByteStream {:?} is not checked: {why}",
                        self.flow, id.0, call.method
                    ));
                }
                calls.push(call);
            }
            streams.push(H2Stream {
                flow: self.flow,
                leg: self.leg,
                stream: id.0,
                opened_ns: notes.opened_ns,
                method: request.and_then(HeaderList::method),
                path: request.and_then(HeaderList::path),
                authority: request.and_then(HeaderList::authority),
                status,
                request_headers: fields(request),
                response_headers: fields(response),
                trailers: fields(trailers),
                ignored_after_reset,
                grpc_status,
                grpc_status_name: grpc_status.and_then(status_name).map(str::to_owned),
                grpc_message,
                grpc_status_ns: grpc_status.and(notes.answer_ns),
                response_ns: notes.response_ns,
                response_last_ns: notes.response_last_ns,
                request_bytes: record.data_bytes[up],
                response_bytes: record.data_bytes[down],
                request_messages: notes.messages[up].complete,
                response_messages: notes.messages[down].complete,
                request_ended: ended[up],
                response_ended: ended[down],
                response_content_length: content_length,
                response_cut,
                reset,
                faults: notes.faults,
            });
        }
        let connection = H2Connection {
            flow: info.id,
            leg: self.leg,
            streams: streams.len() as u64 + self.extra_streams,
            goaways: self.goaways,
            error: self.error,
        };
        Some(H2Outcome {
            connection,
            streams,
            calls,
            warnings,
            capture_missed: self.capture_missed,
        })
    }
}

/// Whether a response was cut short: it began (a final `status`) with a body to come, and
/// either fewer DATA bytes than its `content-length` crossed (faultline's truncate ends the
/// stream with END_STREAM at the cut, which alone looks whole), or the stream never `ended`
/// (RST_STREAM, a TLS alert or a closed connection ended it instead; a gRPC answer without its
/// grpc-status counts as never ended). A HEAD request, 1xx, 204
/// and 304 answers carry no body (RFC 9110 §6.4.1), so they are never cut.
fn response_cut(
    method: Option<&str>,
    status: Option<u16>,
    content_length: Option<u64>,
    received: u64,
    ended: bool,
) -> bool {
    let Some(status) = status else {
        return false;
    };
    if method == Some("HEAD") || status < 200 || status == 204 || status == 304 {
        return false;
    }
    !ended || content_length.is_some_and(|n| received < n)
}

impl StreamConsumer for FlowH2 {
    fn data(&mut self, dir: Direction, _offset: u64, bytes: &[u8], ts: u64) {
        match self.state {
            State::Off => {}
            State::H2 => self.feed(dir, bytes, ts),
            State::Undecided | State::Upgrading => {
                self.queued_bytes += bytes.len();
                self.queued.push((dir, bytes.to_vec(), ts));
                if self.queued_bytes > MAX_QUEUED {
                    return self.give_up();
                }
                if self.state == State::Undecided {
                    self.decide();
                } else {
                    self.follow_upgrade(dir, bytes, ts);
                }
            }
        }
    }

    fn fin(&mut self, _dir: Direction, _offset: u64, _ts: u64) {}

    fn reset(&mut self, _dir: Direction, _offset: u64, _ts: u64) {}

    fn gap(&mut self, dir: Direction, offset: u64, missing: u64) {
        if self.state == State::H2 {
            self.capture_missed = true;
            self.stop(format!(
                "{} missing from the capture at {dir} offset {offset}; HTTP/2 decoding stopped",
                crate::plural::count(missing, "byte")
            ));
        } else if self.state != State::Off {
            self.give_up();
        }
    }

    /// Ties the comment to the frame its packet starts in: one parsed already (the packet's
    /// bytes were fed just before its comment), or, when the frame is still to be parsed, the
    /// first frame that covers the offset.
    fn comment(&mut self, dir: Direction, offset: u64, text: &str, _ts: u64) {
        if self.state == State::Off || self.comments >= MAX_COMMENTS {
            return;
        }
        self.comments += 1;
        let d = dir.index();
        let found = self.recent[d]
            .iter()
            .rev()
            .find(|(start, end, _)| *start <= offset && offset < *end)
            .map(|(_, _, s)| *s);
        match found {
            Some(stream) => self.attach(stream, text.to_string()),
            None if self.waiting[d].len() < MAX_WAITING => {
                self.waiting[d].push_back((offset, text.to_string()))
            }
            None => {}
        }
    }
}

/// The stream a fault note is about, when it says one: the first "of stream N" or "on stream N"
/// (`header block of stream 1 …`, `RST_STREAM(CANCEL) on stream 3 …`); not a GOAWAY's "last
/// stream N", which names a bound, not a stream acted on.
fn named_stream(text: &str) -> Option<u32> {
    let at = ["of stream ", "on stream "]
        .iter()
        .filter_map(|p| text.find(p).map(|i| i + p.len()))
        .min()?;
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::named_stream;

    /// A note is filed under the stream it is about, whichever frame's packet carried it.
    #[test]
    fn a_note_names_the_stream_it_is_about() {
        assert_eq!(
            named_stream("header block of stream 1 from the upstream withheld: the client saw"),
            Some(1)
        );
        assert_eq!(
            named_stream("RST_STREAM(CANCEL) on stream 13 to the upstream (rule \"r\")"),
            Some(13)
        );
        assert_eq!(
            named_stream("GOAWAY (NO_ERROR, last stream 15) sent to the upstream too"),
            None
        );
        assert_eq!(named_stream("rule \"x\" stalled the stream"), None);
    }
}
