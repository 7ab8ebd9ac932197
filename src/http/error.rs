//! The one error type of HTTP/1 framing: what was malformed, in which direction, at which stream offset.

use thiserror::Error;

pub use crate::direction::Direction;

/// Framing of one direction went wrong; the conversation stops tracking and returns this error again
/// on every later call, so the proxy can fall back to relaying raw bytes without HTTP awareness.
///
/// `offset` is absolute in the direction's byte stream (0 = first byte ever fed in that direction).
/// For head-level problems (bad head, bad Content-Length) it is the offset where that head starts.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed HTTP/1 in {direction} at stream offset {offset}: {kind}")]
pub struct HttpError {
    /// The stream the problem was found in.
    pub direction: Direction,
    /// Absolute stream offset of the problem (see the type's docs).
    pub offset: u64,
    /// What exactly was wrong.
    pub kind: HttpErrorKind,
}

/// The malformed cases, one variant each, so callers and tests can match on the reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HttpErrorKind {
    /// A head grew past the configured limit before its blank line arrived.
    #[error("head exceeds {limit} bytes")]
    HeadTooLarge {
        /// The configured maximum head size in bytes.
        limit: usize,
    },
    /// A head carries more header fields than the configured limit.
    #[error("head has more than {limit} header fields")]
    TooManyHeaders {
        /// The configured maximum number of header fields.
        limit: usize,
    },
    /// httparse rejected the head (bad request line, status line, header name or value).
    #[error("invalid head: {reason}")]
    InvalidHead {
        /// httparse's description of the problem.
        reason: String,
    },
    /// A Content-Length value is not a plain decimal number that fits in 64 bits.
    #[error("invalid Content-Length")]
    InvalidContentLength,
    /// Several Content-Length values disagree (a request-smuggling shape).
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    /// A request carries both Transfer-Encoding and Content-Length (a request-smuggling shape,
    /// RFC 9112 §6.3 rule 3).
    #[error("both Transfer-Encoding and Content-Length")]
    ContentLengthWithTransferEncoding,
    /// Transfer-Encoding is empty, applies chunked twice, or (in a request) does not end with chunked.
    #[error("unsupported Transfer-Encoding: {value}")]
    InvalidTransferEncoding {
        /// The combined Transfer-Encoding value as received (lossy UTF-8).
        value: String,
    },
    /// A chunk-size line does not start with a hex digit or has garbage after the size.
    #[error("invalid chunk-size line")]
    InvalidChunkSize,
    /// A chunk size does not fit in 64 bits.
    #[error("chunk size overflows 64 bits")]
    ChunkSizeOverflow,
    /// A chunk-size line (with its extensions) is longer than the configured limit.
    #[error("chunk-size line exceeds {limit} bytes")]
    ChunkLineTooLong {
        /// The configured maximum chunk-size line length.
        limit: usize,
    },
    /// Chunk data is not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    MissingChunkTerminator,
    /// The trailer section of a chunked body is longer than the configured limit.
    #[error("chunked trailer section exceeds {limit} bytes")]
    TrailersTooLarge {
        /// The configured maximum trailer section size.
        limit: usize,
    },
    /// The empty line that ends a chunked trailer section has a CR not followed by LF.
    #[error("chunked trailer section not ended by CRLF")]
    InvalidTrailerSection,
    /// A 101 Switching Protocols answered a request that asked for no upgrade.
    #[error("101 Switching Protocols without an Upgrade request")]
    UnexpectedSwitch,
    /// The client kept sending after a CONNECT or Upgrade request, before the answer came, past the limit.
    #[error("more than {limit} bytes sent while waiting for the answer to an upgrade or CONNECT")]
    TooMuchDataBeforeSwitch {
        /// The configured limit (the maximum head size).
        limit: usize,
    },
    /// The stream ended inside a head.
    #[error("stream ended inside a head after {buffered} bytes")]
    TruncatedHead {
        /// How many bytes of the head had arrived.
        buffered: usize,
    },
    /// The stream ended before a Content-Length body was complete.
    #[error("stream ended with {missing} body bytes missing")]
    TruncatedBody {
        /// How many bytes of the declared length never arrived.
        missing: u64,
    },
    /// The stream ended inside a chunked body.
    #[error("stream ended inside a chunked body ({missing_in_chunk} data bytes of the current chunk missing)")]
    TruncatedChunkedBody {
        /// Data bytes missing from the chunk in progress (0 when it ended in chunk framing or trailers).
        missing_in_chunk: u64,
    },
    /// Bytes were fed after end of stream was signalled: a caller bug, reported rather than ignored.
    #[error("bytes fed after end of stream")]
    FedAfterEof,
}

impl HttpErrorKind {
    /// Attaches where the problem was found.
    pub(crate) fn at(self, direction: Direction, offset: u64) -> HttpError {
        HttpError {
            direction,
            offset,
            kind: self,
        }
    }
}
