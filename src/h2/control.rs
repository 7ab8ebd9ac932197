//! The payloads of the small frames the reader takes whole: PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE.

use super::error::FrameError;
use super::error_code::ErrorCode;
use super::frame::{FrameHeader, FrameType, StreamId, FLAG_ACK};

/// One parsed control frame. Values are read as sent; whether a peer would accept them (a zero
/// WINDOW_UPDATE, an out-of-range setting) is for the tracker to judge, because such frames end a
/// stream or the connection at the peer but never break the framing faultline relies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// PRIORITY (deprecated in RFC 9113 but still sent by some stacks).
    Priority {
        /// The stream depended on.
        dependency: StreamId,
        /// The exclusive bit.
        exclusive: bool,
        /// Weight minus one, as on the wire.
        weight: u8,
    },
    /// RST_STREAM: the stream ends now with `code`.
    RstStream {
        /// Why.
        code: ErrorCode,
    },
    /// SETTINGS, or its acknowledgement (`ack`, no values).
    Settings {
        /// The ACK flag.
        ack: bool,
        /// (identifier, value) pairs in wire order; later pairs override earlier ones.
        values: Vec<(u16, u32)>,
    },
    /// PING or its answer.
    Ping {
        /// The ACK flag.
        ack: bool,
        /// Opaque data, echoed by the answer.
        data: [u8; 8],
    },
    /// GOAWAY: no stream above `last_stream` was or will be processed.
    Goaway {
        /// Highest stream id the sender processed or may still process.
        last_stream: StreamId,
        /// Why.
        code: ErrorCode,
        /// Optional diagnostic bytes (often text).
        debug: Vec<u8>,
    },
    /// WINDOW_UPDATE: flow-control credit for the stream (or the connection on stream 0).
    WindowUpdate {
        /// Credit in bytes (31 bits; 0 is a peer error the tracker records).
        increment: u32,
    },
}

/// Whether the reader takes frames of this type whole and parses them with [`parse`].
pub fn is_control(kind: FrameType) -> bool {
    matches!(
        kind,
        FrameType::Priority
            | FrameType::RstStream
            | FrameType::Settings
            | FrameType::Ping
            | FrameType::Goaway
            | FrameType::WindowUpdate
    )
}

/// Parses the payload of a control frame; `payload.len()` equals `header.length`.
///
/// Errors are the framing violations RFC 9113 makes connection errors: a wrong fixed size, a
/// connection frame on a stream or a stream frame on stream 0.
pub fn parse(header: &FrameHeader, payload: &[u8]) -> Result<Control, FrameError> {
    let bad_length = || FrameError::BadLength {
        kind: header.kind,
        length: header.length,
    };
    let wrong_stream = || FrameError::WrongStream {
        kind: header.kind,
        stream: header.stream,
    };
    let connection_only = matches!(
        header.kind,
        FrameType::Settings | FrameType::Ping | FrameType::Goaway
    );
    let stream_only = matches!(header.kind, FrameType::Priority | FrameType::RstStream);
    if (connection_only && !header.stream.is_connection())
        || (stream_only && header.stream.is_connection())
    {
        return Err(wrong_stream());
    }
    let word = |at: usize| {
        u32::from_be_bytes([
            payload[at],
            payload[at + 1],
            payload[at + 2],
            payload[at + 3],
        ])
    };
    match header.kind {
        FrameType::Priority => {
            if payload.len() != 5 {
                return Err(bad_length());
            }
            Ok(Control::Priority {
                dependency: StreamId(word(0) & 0x7fff_ffff),
                exclusive: payload[0] & 0x80 != 0,
                weight: payload[4],
            })
        }
        FrameType::RstStream => {
            if payload.len() != 4 {
                return Err(bad_length());
            }
            Ok(Control::RstStream {
                code: ErrorCode(word(0)),
            })
        }
        FrameType::Settings => {
            let ack = header.has(FLAG_ACK);
            if payload.len() % 6 != 0 || (ack && !payload.is_empty()) {
                return Err(bad_length());
            }
            let values = payload
                .chunks_exact(6)
                .map(|pair| {
                    (
                        u16::from_be_bytes([pair[0], pair[1]]),
                        u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]),
                    )
                })
                .collect();
            Ok(Control::Settings { ack, values })
        }
        FrameType::Ping => {
            let data: [u8; 8] = payload.try_into().map_err(|_| bad_length())?;
            Ok(Control::Ping {
                ack: header.has(FLAG_ACK),
                data,
            })
        }
        FrameType::Goaway => {
            if payload.len() < 8 {
                return Err(bad_length());
            }
            Ok(Control::Goaway {
                last_stream: StreamId(word(0) & 0x7fff_ffff),
                code: ErrorCode(word(4)),
                debug: payload[8..].to_vec(),
            })
        }
        FrameType::WindowUpdate => {
            if payload.len() != 4 {
                return Err(bad_length());
            }
            Ok(Control::WindowUpdate {
                increment: word(0) & 0x7fff_ffff,
            })
        }
        // The reader only calls this for control types; anything else is a caller bug reported as
        // a framing error rather than a panic.
        _ => Err(bad_length()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: FrameType, flags: u8, stream: u32, length: usize) -> FrameHeader {
        FrameHeader {
            length: length as u32,
            kind,
            flags,
            stream: StreamId(stream),
        }
    }

    #[test]
    fn settings_are_read_in_wire_order() {
        let payload = [0, 4, 0, 0, 0xff, 0xff, 0, 5, 0, 0, 0x40, 0];
        let parsed = parse(&header(FrameType::Settings, 0, 0, 12), &payload).expect("valid");
        assert_eq!(
            parsed,
            Control::Settings {
                ack: false,
                values: vec![(4, 65_535), (5, 16_384)]
            }
        );
    }

    #[test]
    fn goaway_keeps_its_debug_data() {
        let mut payload = vec![0x80, 0, 0, 7, 0, 0, 0, 0];
        payload.extend_from_slice(b"bye");
        let parsed = parse(&header(FrameType::Goaway, 0, 0, payload.len()), &payload);
        assert_eq!(
            parsed,
            Ok(Control::Goaway {
                last_stream: StreamId(7),
                code: ErrorCode::NO_ERROR,
                debug: b"bye".to_vec()
            })
        );
    }

    #[test]
    fn fixed_sizes_and_streams_are_enforced() {
        assert!(matches!(
            parse(&header(FrameType::RstStream, 0, 1, 3), &[0, 0, 8]),
            Err(FrameError::BadLength { .. })
        ));
        assert!(matches!(
            parse(&header(FrameType::RstStream, 0, 0, 4), &[0, 0, 0, 8]),
            Err(FrameError::WrongStream { .. })
        ));
        assert!(matches!(
            parse(&header(FrameType::Ping, 0, 1, 8), &[0; 8]),
            Err(FrameError::WrongStream { .. })
        ));
        assert!(matches!(
            parse(&header(FrameType::Settings, FLAG_ACK, 0, 6), &[0; 6]),
            Err(FrameError::BadLength { .. })
        ));
        assert!(matches!(
            parse(&header(FrameType::Ping, 0, 0, 7), &[0; 7]),
            Err(FrameError::BadLength { .. })
        ));
    }

    #[test]
    fn a_zero_window_update_is_read_not_rejected() {
        assert_eq!(
            parse(&header(FrameType::WindowUpdate, 0, 3, 4), &[0, 0, 0, 0]),
            Ok(Control::WindowUpdate { increment: 0 })
        );
    }
}
