//! What one `google.bytestream` call carried on its HTTP/2 stream: the resource, offsets, committed sizes and the data bytes of its complete messages, kept for the blob checks.

use super::body_store::{MemoryUse, RetainedBody};
use crate::direction::{Direction, Leg};
use crate::h2::bytestream::{
    Method, QueryWriteStatusRequest, QueryWriteStatusResponse, ReadRequest, ReadResponse,
    WriteRequest, WriteResponse,
};

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
    /// When the first RST_STREAM of the call crossed.
    pub reset_ns: Option<u64>,
    /// The response ended normally (END_STREAM from the server).
    pub response_ended: bool,
    /// When its `grpc-status` crossed (trailers, or a trailers-only response), ns since the epoch.
    pub answered_ns: Option<u64>,
    /// Messages that could not be read (not protobuf, bad offsets): one sentence each.
    pub problems: Vec<String>,
    /// Why the call's bytes are not checked: the first message that could not be read at all
    /// (gRPC-compressed with an encoding not read here or that did not decompress, too large).
    /// Its later data are not placed: where they belong depends on the bytes missing.
    pub unchecked: Option<String>,
}

impl Call {
    /// A call of `method` that opened at `opened_ns`; its data are retained against `memory`.
    pub fn new(
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
            reset_ns: None,
            response_ended: false,
            answered_ns: None,
            problems: Vec::new(),
            unchecked: None,
        }
    }

    /// Bytes of kept data.
    pub fn kept(&self) -> u64 {
        self.placements.iter().map(|p| p.len).sum()
    }

    /// Whether the call ended with `grpc-status: 0` and no reset (but NO_ERROR).
    pub fn ok(&self) -> bool {
        // A server may end a finished call with RST_STREAM(NO_ERROR) (RFC 9113 §8.1).
        self.grpc_status == Some(0) && self.reset.as_deref().is_none_or(|c| c == "NO_ERROR")
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

    /// Message `index` of `direction` could not be read (`why`, a clause): the call is not
    /// checked from here on.
    pub fn unreadable(&mut self, direction: Direction, index: u64, why: &str) {
        if self.unchecked.is_none() {
            self.unchecked = Some(format!(
                "message {index} ({direction}) cannot be read: {why}"
            ));
        }
    }

    /// One complete message of `direction`, its body as the application got it (decompressed).
    pub fn message(&mut self, direction: Direction, index: u64, body: &[u8]) {
        if self.unchecked.is_some() {
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
