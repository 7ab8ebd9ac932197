//! The one error type of HTTP/2 reading: what broke the frame layer or HPACK, in which direction, at which byte.

use thiserror::Error;

use super::frame::{FrameType, StreamId};
use super::hpack::HpackError;
pub use crate::direction::Direction;

/// Reading one direction of an HTTP/2 connection went wrong. The reader stops and returns this
/// error again on every later call: the proxy then relays the rest of the connection as plain TCP
/// (with one warning), and `inspect` reports the connection as undecodable from `offset` on.
///
/// `offset` is absolute in the direction's byte stream (0 = first byte ever read in that direction)
/// and points at the start of the frame (or preface) that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("HTTP/2 {direction} at stream offset {offset}: {kind}")]
pub struct H2Error {
    /// The direction the problem was found in.
    pub direction: Direction,
    /// Absolute offset of the frame or preface at fault.
    pub offset: u64,
    /// What exactly was wrong.
    pub kind: FrameError,
}

/// The malformed cases, one variant each, so callers and tests can match on the reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The client did not start with `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
    #[error("bad client preface (byte {at} differs)")]
    BadPreface {
        /// Index in the preface of the first byte that differs.
        at: usize,
    },
    /// A frame is larger than the receiving peer's SETTINGS_MAX_FRAME_SIZE.
    #[error("{kind} frame of {length} bytes exceeds the peer's maximum frame size {max}")]
    FrameTooLarge {
        /// The frame's type.
        kind: FrameType,
        /// Its payload length.
        length: u32,
        /// The largest payload the receiving peer allowed.
        max: u32,
    },
    /// A header block was not continued by CONTINUATION frames of the same stream (RFC 9113 §6.10).
    #[error("expected CONTINUATION of stream {stream}, got {got} on stream {got_stream}")]
    ContinuationExpected {
        /// The stream whose header block is unfinished.
        stream: StreamId,
        /// The frame type found instead.
        got: FrameType,
        /// The stream of the frame found instead.
        got_stream: StreamId,
    },
    /// A CONTINUATION frame arrived with no unfinished header block before it.
    #[error("CONTINUATION on stream {stream} without a header block to continue")]
    UnexpectedContinuation {
        /// The stream named by the stray frame.
        stream: StreamId,
    },
    /// A header block (HEADERS or PUSH_PROMISE plus CONTINUATIONs) grew past the configured limit.
    #[error("header block on stream {stream} exceeds {limit} bytes")]
    HeaderBlockTooLarge {
        /// The stream of the block.
        stream: StreamId,
        /// The configured maximum in bytes.
        limit: usize,
    },
    /// Padding (plus the fields before it) does not fit in the frame.
    #[error("{kind} frame of {length} bytes cannot hold {pad} bytes of padding")]
    BadPadding {
        /// The frame's type.
        kind: FrameType,
        /// Its payload length.
        length: u32,
        /// The Pad Length it announced.
        pad: u8,
    },
    /// A frame whose size RFC 9113 fixes has another size (FRAME_SIZE_ERROR).
    #[error("{kind} frame with invalid length {length}")]
    BadLength {
        /// The frame's type.
        kind: FrameType,
        /// Its payload length.
        length: u32,
    },
    /// A stream frame on stream 0, or a connection frame on a stream (PROTOCOL_ERROR).
    #[error("{kind} frame on stream {stream} is not allowed")]
    WrongStream {
        /// The frame's type.
        kind: FrameType,
        /// The stream it named.
        stream: StreamId,
    },
    /// The header lists the connection's tracked streams hold would pass the conversation's
    /// budget with this block (found before it was copied): a peer that opens streams with
    /// large lists and never ends them would otherwise grow memory without bound.
    #[error("header block on stream {stream} would take the header lists kept for the connection's streams past {budget} bytes (RFC 9113 §6.5.2 size; {kept} kept)")]
    HeaderBudget {
        /// The stream of the block.
        stream: StreamId,
        /// What the tracked streams held before the block.
        kept: usize,
        /// The conversation's budget.
        budget: usize,
    },
    /// A header block could not be decompressed: both peers' HPACK state is now unknown.
    #[error("HPACK: {0}")]
    Hpack(#[from] HpackError),
}

impl FrameError {
    /// Attaches where the problem was found.
    pub(crate) fn at(self, direction: Direction, offset: u64) -> H2Error {
        H2Error {
            direction,
            offset,
            kind: self,
        }
    }
}
