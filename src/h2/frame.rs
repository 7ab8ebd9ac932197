//! The HTTP/2 frame header (RFC 9113 §4.1): length, type, flags and stream, read from and written as 9 raw bytes.

use std::fmt;

/// The client connection preface (RFC 9113 §3.4), the first 24 bytes a prior-knowledge client sends.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Size of every frame header.
pub const HEADER_LEN: usize = 9;

/// SETTINGS_MAX_FRAME_SIZE before a peer says otherwise (RFC 9113 §6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;

/// The largest SETTINGS_MAX_FRAME_SIZE a peer may advertise (2^24 - 1).
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

/// The largest flow-control window and WINDOW_UPDATE increment (2^31 - 1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// END_STREAM on DATA and HEADERS.
pub const FLAG_END_STREAM: u8 = 0x1;
/// ACK on SETTINGS and PING.
pub const FLAG_ACK: u8 = 0x1;
/// END_HEADERS on HEADERS, PUSH_PROMISE and CONTINUATION.
pub const FLAG_END_HEADERS: u8 = 0x4;
/// PADDED on DATA, HEADERS and PUSH_PROMISE.
pub const FLAG_PADDED: u8 = 0x8;
/// PRIORITY on HEADERS.
pub const FLAG_PRIORITY: u8 = 0x20;

/// A stream identifier (31 bits); 0 is the connection itself.
///
/// A newtype so a stream id is never confused with a length or an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId(pub u32);

impl StreamId {
    /// Stream 0: frames about the whole connection (SETTINGS, PING, GOAWAY, connection WINDOW_UPDATE).
    pub const CONNECTION: StreamId = StreamId(0);

    /// Reads the 31-bit id from 4 bytes, ignoring the reserved high bit as RFC 9113 §4.1 requires.
    pub fn from_be_bytes(bytes: [u8; 4]) -> StreamId {
        StreamId(u32::from_be_bytes(bytes) & 0x7fff_ffff)
    }

    /// Whether this is stream 0 (the connection).
    pub fn is_connection(self) -> bool {
        self.0 == 0
    }

    /// Clients open odd-numbered streams, servers (with PUSH_PROMISE) even-numbered ones.
    pub fn is_client_initiated(self) -> bool {
        self.0 % 2 == 1
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Frame types of RFC 9113 §6; any other type is kept as `Unknown` and passed through uninterpreted
/// (RFC 9113 §5.5 says receivers ignore unknown types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// 0x0: stream payload, flow controlled.
    Data,
    /// 0x1: opens a stream and carries a header block fragment.
    Headers,
    /// 0x2: deprecated stream prioritization.
    Priority,
    /// 0x3: ends one stream with an error code.
    RstStream,
    /// 0x4: connection parameters (or their acknowledgement).
    Settings,
    /// 0x5: a server announces a stream it will push.
    PushPromise,
    /// 0x6: liveness and round-trip measurement.
    Ping,
    /// 0x7: the sender will open no stream above `last_stream_id` / is closing.
    Goaway,
    /// 0x8: flow-control credit.
    WindowUpdate,
    /// 0x9: the rest of a header block.
    Continuation,
    /// Any other type byte.
    Unknown(u8),
}

impl FrameType {
    /// The type for a type byte.
    pub fn from_u8(byte: u8) -> FrameType {
        match byte {
            0x0 => FrameType::Data,
            0x1 => FrameType::Headers,
            0x2 => FrameType::Priority,
            0x3 => FrameType::RstStream,
            0x4 => FrameType::Settings,
            0x5 => FrameType::PushPromise,
            0x6 => FrameType::Ping,
            0x7 => FrameType::Goaway,
            0x8 => FrameType::WindowUpdate,
            0x9 => FrameType::Continuation,
            other => FrameType::Unknown(other),
        }
    }

    /// The type byte on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            FrameType::Data => 0x0,
            FrameType::Headers => 0x1,
            FrameType::Priority => 0x2,
            FrameType::RstStream => 0x3,
            FrameType::Settings => 0x4,
            FrameType::PushPromise => 0x5,
            FrameType::Ping => 0x6,
            FrameType::Goaway => 0x7,
            FrameType::WindowUpdate => 0x8,
            FrameType::Continuation => 0x9,
            FrameType::Unknown(other) => other,
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameType::Data => f.write_str("DATA"),
            FrameType::Headers => f.write_str("HEADERS"),
            FrameType::Priority => f.write_str("PRIORITY"),
            FrameType::RstStream => f.write_str("RST_STREAM"),
            FrameType::Settings => f.write_str("SETTINGS"),
            FrameType::PushPromise => f.write_str("PUSH_PROMISE"),
            FrameType::Ping => f.write_str("PING"),
            FrameType::Goaway => f.write_str("GOAWAY"),
            FrameType::WindowUpdate => f.write_str("WINDOW_UPDATE"),
            FrameType::Continuation => f.write_str("CONTINUATION"),
            FrameType::Unknown(t) => write!(f, "UNKNOWN(0x{t:02x})"),
        }
    }
}

/// The 9-byte header in front of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length in bytes (24 bits), not counting these 9 bytes.
    pub length: u32,
    /// What the frame is.
    pub kind: FrameType,
    /// Type-specific flags (`FLAG_*`).
    pub flags: u8,
    /// The stream it belongs to (0 for the connection).
    pub stream: StreamId,
}

impl FrameHeader {
    /// Reads a header from its 9 raw bytes.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> FrameHeader {
        FrameHeader {
            length: u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]),
            kind: FrameType::from_u8(bytes[3]),
            flags: bytes[4],
            stream: StreamId::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]),
        }
    }

    /// The 9 raw bytes of this header. `length` above 24 bits is truncated to its low 24 bits, so
    /// builders check lengths before calling this.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let len = self.length.to_be_bytes();
        let stream = (self.stream.0 & 0x7fff_ffff).to_be_bytes();
        [
            len[1],
            len[2],
            len[3],
            self.kind.as_u8(),
            self.flags,
            stream[0],
            stream[1],
            stream[2],
            stream[3],
        ]
    }

    /// Whether a flag bit is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Whether this frame ends its stream in its direction (END_STREAM on DATA or HEADERS).
    pub fn ends_stream(&self) -> bool {
        matches!(self.kind, FrameType::Data | FrameType::Headers) && self.has(FLAG_END_STREAM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_and_writes_the_same_bytes() {
        let raw = [0x00, 0x40, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03];
        let header = FrameHeader::parse(&raw);
        assert_eq!(header.length, 16_384);
        assert_eq!(header.kind, FrameType::Data);
        assert!(header.ends_stream());
        assert_eq!(header.stream, StreamId(3));
        assert_eq!(header.to_bytes(), raw);
    }

    #[test]
    fn the_reserved_stream_bit_is_ignored() {
        let raw = [0, 0, 0, 0x8, 0, 0x80, 0, 0, 0x05];
        assert_eq!(FrameHeader::parse(&raw).stream, StreamId(5));
    }

    #[test]
    fn unknown_types_keep_their_byte() {
        assert_eq!(FrameType::from_u8(0xfa), FrameType::Unknown(0xfa));
        assert_eq!(FrameType::Unknown(0xfa).as_u8(), 0xfa);
        for byte in 0..=9u8 {
            assert_eq!(FrameType::from_u8(byte).as_u8(), byte);
        }
    }
}
