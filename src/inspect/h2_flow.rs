//! One TCP flow read as HTTP/2: the client preface detected, both directions fed to one `h2::Conversation` in capture order, streams and their gRPC messages kept.
//!
//! The reassembler hands over each direction's bytes in the order the packets were captured, so
//! feeding them straight to one [`Conversation`] keeps the two directions interleaved as they
//! crossed: a SETTINGS frame of one peer raises the frame size and HPACK table limits of the other
//! before the frames that use them. Before the client's first bytes decide the protocol, the
//! server's bytes (an eager server SETTINGS) wait in a bounded queue.
//!
//! Per stream the flow keeps what `inspect` reports (headers, status, trailers, resets, DATA
//! and gRPC message counts, fault comments) and, for `google.bytestream` calls, the evidence the
//! blob checks need ([`Call`]): the request, and the data bytes of every *complete* message
//! (a gRPC receiver delivers whole messages only, so the bytes of a message cut by RST_STREAM
//! never reached the application).

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::body_store::{MemoryUse, RetainedBody};
use super::leg;
use super::reassembly::{FlowInfo, StreamConsumer};
use crate::direction::{Direction, Leg};
use crate::h2::bytestream::{
    Method, QueryWriteStatusRequest, QueryWriteStatusResponse, ReadRequest, ReadResponse,
    WriteRequest, WriteResponse,
};
use crate::h2::control::Control;
use crate::h2::frame::{StreamId, PREFACE};
use crate::h2::grpc::{MessagePart, MessageReader};
use crate::h2::grpc_status::status_name;
use crate::h2::{BlockRole, Conversation, HeaderList, PieceKind};

/// Server bytes held while the client has not yet shown the preface.
const MAX_QUEUED: usize = 1 << 20;
/// Largest gRPC message body kept to parse a ByteStream message (gRPC's default limit is 4 MiB).
const MAX_MESSAGE: usize = 64 << 20;
/// Streams reported per connection; later ones are counted, not listed.
const MAX_STREAMS: usize = 10_000;
/// Header fields kept per header list, and characters per value.
const MAX_FIELDS: usize = 64;
const MAX_VALUE: usize = 1024;
/// Recent frame starts remembered per direction to tie a packet comment to its stream.
const RECENT_FRAMES: usize = 256;
/// GOAWAY frames reported per connection.
const MAX_GOAWAYS: usize = 16;

/// One header field as reported (values lossy UTF-8, long ones shortened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// Field value.
    pub value: String,
}

fn fields(list: Option<&HeaderList>) -> Vec<Field> {
    let Some(list) = list else {
        return Vec::new();
    };
    list.fields
        .iter()
        .take(MAX_FIELDS)
        .map(|f| {
            let mut value = String::from_utf8_lossy(&f.value).into_owned();
            if value.chars().count() > MAX_VALUE {
                value = value.chars().take(MAX_VALUE).collect::<String>() + "…";
            }
            Field {
                name: String::from_utf8_lossy(&f.name).into_owned(),
                value,
            }
        })
        .collect()
}

/// A RST_STREAM, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResetNote {
    /// The direction it travelled (`upstream->client`: the server, or faultline toward the
    /// client, reset the stream).
    pub by: String,
    /// RFC 9113 error code name (`CANCEL`), or `0x…` for an undefined code.
    pub code: String,
}

/// A GOAWAY, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoawayNote {
    /// The direction it travelled.
    pub by: String,
    /// Highest stream id its sender processed.
    pub last_stream: u32,
    /// RFC 9113 error code name.
    pub code: String,
    /// Debug data (lossy UTF-8).
    pub debug: String,
}

/// One HTTP/2 stream of a connection.
#[derive(Debug, Clone, Serialize)]
pub struct H2Stream {
    /// The TCP flow.
    pub flow: u64,
    /// Capture leg.
    #[serde(serialize_with = "leg::serialize")]
    pub leg: Option<Leg>,
    /// The stream id.
    pub stream: u32,
    /// When its request headers crossed, ns since the epoch.
    pub opened_ns: u64,
    /// `:method`.
    pub method: Option<String>,
    /// `:path`.
    pub path: Option<String>,
    /// `:authority` (or `host`).
    pub authority: Option<String>,
    /// Response `:status`.
    pub status: Option<u16>,
    /// Request header fields.
    pub request_headers: Vec<Field>,
    /// Final response header fields.
    pub response_headers: Vec<Field>,
    /// Response trailers (where gRPC puts its status).
    pub trailers: Vec<Field>,
    /// `grpc-status` (trailers, or a trailers-only response).
    pub grpc_status: Option<u32>,
    /// Its name (`UNAVAILABLE`).
    pub grpc_status_name: Option<String>,
    /// `grpc-message`, percent-decoded.
    pub grpc_message: Option<String>,
    /// DATA payload bytes sent by the client.
    pub request_bytes: u64,
    /// DATA payload bytes sent by the server.
    pub response_bytes: u64,
    /// Complete gRPC messages the client sent (0 for a non-gRPC stream).
    pub request_messages: u64,
    /// Complete gRPC messages the server sent.
    pub response_messages: u64,
    /// The client ended its side (END_STREAM).
    pub request_ended: bool,
    /// The server ended its side.
    pub response_ended: bool,
    /// RST_STREAM, if the stream was reset.
    pub reset: Option<ResetNote>,
    /// Fault comments on its frames.
    pub faults: Vec<String>,
}

/// One HTTP/2 connection (a flow that started with the client preface).
#[derive(Debug, Clone, Serialize)]
pub struct H2Connection {
    /// The TCP flow.
    pub flow: u64,
    /// Capture leg.
    #[serde(serialize_with = "leg::serialize")]
    pub leg: Option<Leg>,
    /// Streams opened by requests.
    pub streams: u64,
    /// GOAWAY frames, in order.
    pub goaways: Vec<GoawayNote>,
    /// Why decoding stopped early (an HTTP/2 violation, a capture gap), if it did.
    pub error: Option<String>,
}

/// Where `len` bytes of a ByteStream call's kept data belong in the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Offset in the blob.
    pub at: u64,
    /// Offset in the call's kept data.
    pub from: u64,
    /// Length.
    pub len: u64,
}

/// What one `google.bytestream` call carried, for the blob checks.
#[derive(Debug)]
pub struct Call {
    /// The flow and stream it crossed on.
    pub flow: u64,
    /// Capture leg.
    pub leg: Option<Leg>,
    /// The stream id.
    pub stream: u32,
    /// When it opened.
    pub opened_ns: u64,
    /// Read, Write or QueryWriteStatus.
    pub method: Method,
    /// The resource name (Write: from its first request, the only one that must carry it).
    pub resource_name: Option<String>,
    /// `read_offset` (Read) or the first `write_offset` (Write).
    pub offset: i64,
    /// `read_limit` (Read; 0 = no limit).
    pub limit: i64,
    /// Data bytes of complete messages: ReadResponse.data (Read) or WriteRequest.data (Write).
    pub data: RetainedBody,
    /// Where the kept data lie in the blob.
    pub placements: Vec<Placement>,
    /// Data-carrying bytes of a message that never completed (not delivered).
    pub partial: u64,
    /// `committed_size` of a WriteResponse or QueryWriteStatusResponse.
    pub committed_size: Option<i64>,
    /// `complete` of a QueryWriteStatusResponse.
    pub write_complete: Option<bool>,
    /// A WriteRequest with `finish_write` was sent.
    pub finish_write: bool,
    /// `grpc-status`, when the call got one.
    pub grpc_status: Option<u32>,
    /// RST_STREAM code name, when reset.
    pub reset: Option<String>,
    /// The response ended normally (END_STREAM from the server).
    pub response_ended: bool,
    /// Messages that could not be read (compressed, not protobuf, too large): one sentence each.
    pub problems: Vec<String>,
}

impl Call {
    fn new(
        flow: u64,
        leg: Option<Leg>,
        stream: u32,
        opened_ns: u64,
        method: Method,
        memory: MemoryUse,
    ) -> Call {
        Call {
            flow,
            leg,
            stream,
            opened_ns,
            method,
            resource_name: None,
            offset: 0,
            limit: 0,
            data: RetainedBody::new(memory),
            placements: Vec::new(),
            partial: 0,
            committed_size: None,
            write_complete: None,
            finish_write: false,
            grpc_status: None,
            reset: None,
            response_ended: false,
            problems: Vec::new(),
        }
    }

    /// Bytes of kept data.
    pub fn kept(&self) -> u64 {
        self.placements.iter().map(|p| p.len).sum()
    }

    /// Whether the call ended with `grpc-status: 0` and no reset.
    pub fn ok(&self) -> bool {
        self.grpc_status == Some(0) && self.reset.is_none()
    }

    fn place(&mut self, at: u64, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let from = self.data_len();
        self.data.append(bytes);
        let len = bytes.len() as u64;
        match self.placements.last_mut() {
            Some(last) if last.at + last.len == at && last.from + last.len == from => {
                last.len += len
            }
            _ => self.placements.push(Placement { at, from, len }),
        }
    }

    fn data_len(&self) -> u64 {
        self.placements.last().map_or(0, |p| p.from + p.len)
    }

    /// One complete message of `direction`.
    fn message(&mut self, direction: Direction, index: u64, compressed: bool, body: &[u8]) {
        if compressed {
            if self.problems.len() < 8 {
                self.problems.push(format!(
                    "message {index} ({direction}) is gRPC-compressed: its bytes are not checked"
                ));
            }
            return;
        }
        let up = direction == Direction::ClientToUpstream;
        let parsed = match (self.method, up) {
            (Method::Read, true) => ReadRequest::parse(body).map(|r| {
                if index == 0 {
                    self.resource_name = Some(r.resource_name);
                    self.offset = r.read_offset;
                    self.limit = r.read_limit;
                }
            }),
            (Method::Read, false) => ReadResponse::parse(body).map(|r| {
                let at = u64::try_from(self.offset).unwrap_or(0) + self.data_len();
                self.place(at, &body[r.data]);
            }),
            (Method::Write, true) => WriteRequest::parse(body).map(|w| {
                if index == 0 {
                    self.resource_name = Some(w.resource_name.clone());
                    self.offset = w.write_offset;
                }
                self.finish_write |= w.finish_write;
                match u64::try_from(w.write_offset) {
                    Ok(at) => self.place(at, &body[w.data]),
                    Err(_) => self.problems.push(format!(
                        "message {index} has a negative write_offset {}",
                        w.write_offset
                    )),
                }
            }),
            (Method::Write, false) => WriteResponse::parse(body).map(|w| {
                self.committed_size = Some(w.committed_size);
            }),
            (Method::QueryWriteStatus, true) => QueryWriteStatusRequest::parse(body)
                .map(|q| self.resource_name = Some(q.resource_name)),
            (Method::QueryWriteStatus, false) => QueryWriteStatusResponse::parse(body).map(|q| {
                self.committed_size = Some(q.committed_size);
                self.write_complete = Some(q.complete);
            }),
        };
        if let Err(e) = parsed {
            if self.problems.len() < 8 {
                self.problems.push(format!(
                    "message {index} ({direction}) is not a ByteStream message: {e}"
                ));
            }
        }
    }
}

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
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// The client has not shown enough bytes yet.
    Undecided,
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
    /// (start, end, stream) of recent frames per direction.
    recent: [VecDeque<(u64, u64, StreamId)>; 2],
    comments: Vec<(Direction, u64, String)>,
    error: Option<String>,
    memory: MemoryUse,
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
            conversation: Conversation::new(),
            pending: [Vec::new(), Vec::new()],
            notes: BTreeMap::new(),
            extra_streams: 0,
            goaways: Vec::new(),
            recent: [VecDeque::new(), VecDeque::new()],
            comments: Vec::new(),
            error: None,
            memory,
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
        let mut buf = std::mem::take(&mut self.pending[d]);
        buf.extend_from_slice(bytes);
        let fed = match self.conversation.feed(direction, &buf) {
            Ok(fed) => fed,
            Err(e) => return self.stop(format!("HTTP/2 decoding stopped: {e}")),
        };
        let base = self.conversation.reader(direction).offset() - fed.consumed as u64;
        let mut blocks = fed.blocks.iter().peekable();
        for (index, piece) in fed.pieces.iter().enumerate() {
            let at = (piece.start - base) as usize;
            match &piece.kind {
                PieceKind::Header(header) => {
                    let recent = &mut self.recent[d];
                    if recent.len() == RECENT_FRAMES {
                        recent.pop_front();
                    }
                    let end = piece.start + piece.len as u64 + u64::from(header.length);
                    recent.push_back((piece.start, end, header.stream));
                }
                PieceKind::Data { stream, offset } => {
                    self.data(direction, *stream, *offset, &buf[at..at + piece.len]);
                }
                PieceKind::Control(control) => self.control(direction, index, &fed.pieces, control),
                _ => {}
            }
            while let Some(block) = blocks.next_if(|b| b.piece == index) {
                if block.role == BlockRole::Request {
                    self.open(block.stream, &block.headers, ts);
                }
            }
        }
        buf.drain(..fed.consumed);
        self.pending[d] = buf;
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
        self.notes.insert(
            stream,
            StreamNotes {
                opened_ns: ts,
                grpc,
                messages,
                call,
                faults: Vec::new(),
                reset: false,
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
        for (index, compressed, body, too_large) in done {
            if too_large {
                if call.problems.len() < 8 {
                    call.problems.push(format!(
                        "message {index} ({direction}) is larger than {MAX_MESSAGE} bytes: not read"
                    ));
                }
                continue;
            }
            call.message(direction, index, compressed, &body);
        }
    }

    fn control(
        &mut self,
        direction: Direction,
        index: usize,
        pieces: &[crate::h2::Piece],
        control: &Control,
    ) {
        let stream = pieces[..index].iter().rev().find_map(|p| match p.kind {
            PieceKind::Header(h) => Some(h.stream),
            _ => None,
        });
        match control {
            Control::RstStream { .. } => {
                if let Some(notes) = stream.and_then(|s| self.notes.get_mut(&s)) {
                    notes.reset = true;
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
        // Fault comments: the frame the commented packet starts in (a comment past the last
        // frame, such as the end of the run, is about the connection, not a stream).
        for (direction, offset, text) in std::mem::take(&mut self.comments) {
            let stream = self.recent[direction.index()]
                .iter()
                .rev()
                .find(|(start, end, _)| *start <= offset && offset < *end)
                .map(|(_, _, s)| *s)
                .filter(|s| !s.is_connection());
            if let Some(notes) = stream.and_then(|s| self.notes.get_mut(&s)) {
                if !notes.faults.contains(&text) {
                    notes.faults.push(text);
                }
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
            });
            let grpc_status = record.grpc_status();
            if let Some(mut call) = notes.call.take() {
                call.grpc_status = grpc_status;
                call.reset = reset.as_ref().map(|r| r.code.clone());
                call.response_ended = record.ended[down];
                call.partial = notes.messages[down].pending() + notes.messages[up].pending();
                for (d, m) in notes.messages.iter().enumerate() {
                    if let Some(why) = &m.broken {
                        call.problems.push(format!(
                            "{} gRPC framing unreadable: {why}",
                            Direction::ALL[d]
                        ));
                    }
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
                status: record.status(),
                request_headers: fields(request),
                response_headers: fields(record.response.as_ref()),
                trailers: fields(record.response_trailers.as_ref()),
                grpc_status,
                grpc_status_name: grpc_status.and_then(status_name).map(str::to_owned),
                grpc_message: record.grpc_message(),
                request_bytes: record.data_bytes[up],
                response_bytes: record.data_bytes[down],
                request_messages: notes.messages[up].complete,
                response_messages: notes.messages[down].complete,
                request_ended: record.ended[up],
                response_ended: record.ended[down],
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
        })
    }
}

impl StreamConsumer for FlowH2 {
    fn data(&mut self, dir: Direction, _offset: u64, bytes: &[u8], ts: u64) {
        match self.state {
            State::Off => {}
            State::H2 => self.feed(dir, bytes, ts),
            State::Undecided => {
                self.queued_bytes += bytes.len();
                self.queued.push((dir, bytes.to_vec(), ts));
                let client: Vec<u8> = self
                    .queued
                    .iter()
                    .filter(|(d, _, _)| *d == Direction::ClientToUpstream)
                    .flat_map(|(_, b, _)| b.iter().copied())
                    .take(PREFACE.len())
                    .collect();
                let n = client.len();
                if client[..] != PREFACE[..n] {
                    self.state = State::Off;
                    self.queued = Vec::new();
                } else if n == PREFACE.len() {
                    self.state = State::H2;
                    for (d, b, t) in std::mem::take(&mut self.queued) {
                        if self.state == State::H2 {
                            self.feed(d, &b, t);
                        }
                    }
                } else if self.queued_bytes > MAX_QUEUED {
                    self.state = State::Off;
                    self.queued = Vec::new();
                }
            }
        }
    }

    fn fin(&mut self, _dir: Direction, _offset: u64, _ts: u64) {}

    fn reset(&mut self, _dir: Direction, _offset: u64, _ts: u64) {}

    fn gap(&mut self, dir: Direction, offset: u64, missing: u64) {
        if self.state == State::H2 {
            self.stop(format!(
                "{missing} bytes missing from the capture at {dir} offset {offset}; HTTP/2 decoding stopped"
            ));
        } else if self.state == State::Undecided {
            self.state = State::Off;
            self.queued = Vec::new();
        }
    }

    fn comment(&mut self, dir: Direction, offset: u64, text: &str, _ts: u64) {
        if self.state != State::Off && self.comments.len() < 10_000 {
            self.comments.push((dir, offset, text.to_string()));
        }
    }
}
