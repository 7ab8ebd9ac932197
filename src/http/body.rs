//! How a message body is delimited, and where each piece of body payload lies in the raw stream.

use std::ops::Range;

/// How the body of a message is delimited, decided from its head (and, for responses, the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// The message has no body by the framing rules: a request without Content-Length or
    /// Transfer-Encoding, a response to HEAD, a 1xx/204/304 response, or a head that switches protocols.
    None,
    /// Exactly this many body bytes follow the head (`Length(0)` is an explicit `Content-Length: 0`).
    Length(u64),
    /// Chunked transfer coding: chunk-size lines, data, and a trailer section end the message.
    Chunked,
    /// A response without a length: its body runs until the upstream closes the connection.
    UntilClose,
}

/// One contiguous run of body payload bytes as it crossed the stream.
///
/// For Content-Length and close-delimited bodies payload and raw bytes are the same; for chunked
/// bodies `raw` covers data bytes only, never chunk-size lines, CRLFs or trailers. So `raw` lets the
/// proxy cut the stream at a raw offset, and `payload_offset` places the bytes in the message payload
/// (for hashing or comparing retries byte for byte) without the tracker ever copying them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BodyPiece {
    /// Absolute stream offsets of these payload bytes.
    pub raw: Range<u64>,
    /// Offset of the first of these bytes within the message's payload (0 for the first body byte).
    pub payload_offset: u64,
}

impl BodyPiece {
    /// Number of payload bytes in this piece.
    pub fn len(&self) -> u64 {
        self.raw.end - self.raw.start
    }

    /// True when the piece carries no bytes (the tracker never emits such pieces).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The payload bytes of this piece, taken from the chunk that was fed, which started at stream
    /// offset `chunk_start`. Returns `None` when the piece does not lie inside that chunk (a caller
    /// passing the wrong chunk, or bytes replayed from an earlier feed after a declined upgrade).
    pub fn bytes_in<'a>(&self, chunk: &'a [u8], chunk_start: u64) -> Option<&'a [u8]> {
        let from = usize::try_from(self.raw.start.checked_sub(chunk_start)?).ok()?;
        let to = usize::try_from(self.raw.end.checked_sub(chunk_start)?).ok()?;
        chunk.get(from..to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_in_slices_relative_to_chunk_start() {
        let piece = BodyPiece {
            raw: 12..15,
            payload_offset: 0,
        };
        assert_eq!(piece.bytes_in(b"0123456789", 10), Some(&b"234"[..]));
        assert_eq!(piece.bytes_in(b"0123", 10), None);
        assert_eq!(piece.bytes_in(b"0123456789", 13), None);
        assert_eq!(piece.len(), 3);
        assert!(!piece.is_empty());
    }
}
