//! The events the tracker reports as bytes cross: heads, body pieces, message ends and tunnels.

use crate::http::body::{BodyKind, BodyPiece};

/// Something the tracker learned about the stream, with absolute stream offsets.
///
/// Per message the order is always `Head`, zero or more `Body`, `MessageEnd`; a `Tunnel` ends
/// HTTP tracking of the stream for good. Every byte of a stream lies in exactly one of: a head range,
/// a message's `[head end, MessageEnd)` range (body plus chunk framing), or the tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameEvent<H> {
    /// A complete head; `[start, end)` covers it including leading empty lines and the blank line.
    Head {
        /// The parsed head.
        head: H,
        /// Offset of the head's first byte.
        start: u64,
        /// Offset just past the blank line that ends the head.
        end: u64,
        /// How the body that follows is delimited.
        body: BodyKind,
    },
    /// Body payload bytes that crossed in the chunk just fed.
    Body(BodyPiece),
    /// The message ended; `end` is just past its last byte (after trailers for chunked bodies).
    MessageEnd {
        /// Offset just past the message's last byte.
        end: u64,
    },
    /// From `start` on the stream carries raw bytes of another protocol (101 upgrade or CONNECT 2xx).
    Tunnel {
        /// Offset of the first tunnelled byte.
        start: u64,
    },
}
