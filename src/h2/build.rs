//! Raw bytes of the frames faultline injects: RST_STREAM, GOAWAY, WINDOW_UPDATE, a rewritten DATA header, HEADERS.
//!
//! Everything here is new bytes faultline writes itself (`Insert` steps); frames that pass through
//! are never rebuilt. Header blocks are split into HEADERS + CONTINUATION when they exceed the
//! receiving peer's maximum frame size, so an injected frame is never the one that breaks a peer.

use super::error_code::ErrorCode;
use super::frame::{
    FrameHeader, FrameType, StreamId, DEFAULT_MAX_FRAME_SIZE, FLAG_ACK, FLAG_END_HEADERS,
    FLAG_END_STREAM, FLAG_PRIORITY, HEADER_LEN, MAX_WINDOW,
};
use super::grpc_status::encode_message;
use super::headers::HeaderList;
use super::hpack_encode::encode_block_with;
use super::reader::BlockKind;

fn header(kind: FrameType, flags: u8, stream: StreamId, length: usize) -> [u8; HEADER_LEN] {
    FrameHeader {
        length: length as u32,
        kind,
        flags,
        stream,
    }
    .to_bytes()
}

/// A whole frame: its 9-byte header, then `payload` as given (the caller keeps it within the
/// receiver's maximum frame size).
pub fn frame(kind: FrameType, flags: u8, stream: StreamId, payload: &[u8]) -> Vec<u8> {
    let mut out = header(kind, flags, stream, payload.len()).to_vec();
    out.extend_from_slice(payload);
    out
}

/// RST_STREAM ending `stream` with `code`.
pub fn rst_stream(stream: StreamId, code: ErrorCode) -> Vec<u8> {
    let mut out = header(FrameType::RstStream, 0, stream, 4).to_vec();
    out.extend_from_slice(&code.0.to_be_bytes());
    out
}

/// GOAWAY: the sender processed (or will process) no stream above `last_stream`. Debug data is
/// cut to fit the default maximum frame size every peer accepts.
pub fn goaway(last_stream: StreamId, code: ErrorCode, debug: &[u8]) -> Vec<u8> {
    let debug = &debug[..debug.len().min(DEFAULT_MAX_FRAME_SIZE as usize - 8)];
    let mut out = header(FrameType::Goaway, 0, StreamId::CONNECTION, 8 + debug.len()).to_vec();
    out.extend_from_slice(&(last_stream.0 & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(debug);
    out
}

/// WINDOW_UPDATE frames returning `credit` bytes of flow-control window on `stream` (0 = the
/// connection): none for zero credit, several when the credit exceeds one increment's maximum.
pub fn window_updates(stream: StreamId, credit: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut left = credit;
    while left > 0 {
        let increment = left.min(u64::from(MAX_WINDOW)) as u32;
        out.extend_from_slice(&header(FrameType::WindowUpdate, 0, stream, 4));
        out.extend_from_slice(&increment.to_be_bytes());
        left -= u64::from(increment);
    }
    out
}

/// The 9-byte header of a DATA frame of `length` payload bytes, without padding: what replaces
/// the original header when a stream is cut inside a frame (the kept payload bytes follow as sent).
pub fn data_header(stream: StreamId, length: u32, end_stream: bool) -> [u8; HEADER_LEN] {
    let flags = if end_stream { FLAG_END_STREAM } else { 0 };
    header(FrameType::Data, flags, stream, length as usize)
}

/// SETTINGS acknowledgement.
pub fn settings_ack() -> [u8; HEADER_LEN] {
    header(FrameType::Settings, FLAG_ACK, StreamId::CONNECTION, 0)
}

/// How an injected header block must be framed for its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    /// The receiver's SETTINGS_MAX_FRAME_SIZE.
    pub max_frame_size: u32,
    /// A dynamic table size update the block must start with (see
    /// [`super::hpack_encode::encode_size_update`]), or `None`.
    pub size_update: Option<usize>,
}

impl Default for BlockLimits {
    fn default() -> BlockLimits {
        BlockLimits {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            size_update: None,
        }
    }
}

/// A HEADERS frame (plus CONTINUATIONs if needed) carrying `headers` encoded with literals
/// without indexing, each frame at most `limits.max_frame_size` bytes of payload.
pub fn headers(
    stream: StreamId,
    headers: &HeaderList,
    end_stream: bool,
    limits: BlockLimits,
) -> Vec<u8> {
    let block = encode_block_with(headers, limits.size_update);
    let max_frame_size = limits.max_frame_size;
    let max = (max_frame_size.max(DEFAULT_MAX_FRAME_SIZE)) as usize;
    let mut chunks = block.chunks(max).peekable();
    let mut out = Vec::with_capacity(block.len() + HEADER_LEN);
    let mut first = true;
    if block.is_empty() {
        let flags = FLAG_END_HEADERS | if end_stream { FLAG_END_STREAM } else { 0 };
        out.extend_from_slice(&header(FrameType::Headers, flags, stream, 0));
        return out;
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let mut flags = if last { FLAG_END_HEADERS } else { 0 };
        let kind = if first {
            if end_stream {
                flags |= FLAG_END_STREAM;
            }
            FrameType::Headers
        } else {
            FrameType::Continuation
        };
        out.extend_from_slice(&header(kind, flags, stream, chunk.len()));
        out.extend_from_slice(chunk);
        first = false;
    }
    out
}

/// A header block that passed through faultline, framed again around `hpack`, a new encoding
/// of it (see [`super::hpack::Decoder::with_detached_forms`]): the first frame is of the
/// original's `kind` (HEADERS keeps END_STREAM and its priority fields; PUSH_PROMISE its
/// promised stream), without padding, then CONTINUATIONs, each at most `max_frame_size` bytes
/// of payload (the receiver's limit).
pub fn reframed_block(
    stream: StreamId,
    kind: &BlockKind,
    hpack: &[u8],
    max_frame_size: u32,
) -> Vec<u8> {
    let max = max_frame_size.max(DEFAULT_MAX_FRAME_SIZE) as usize;
    let (first_kind, mut flags, mut lead) = match kind {
        BlockKind::Headers {
            end_stream,
            priority,
        } => {
            let mut flags = if *end_stream { FLAG_END_STREAM } else { 0 };
            let mut lead = Vec::new();
            if let Some((dependency, exclusive, weight)) = priority {
                flags |= FLAG_PRIORITY;
                let bit = if *exclusive { 0x8000_0000 } else { 0 };
                lead.extend_from_slice(&((dependency.0 & 0x7fff_ffff) | bit).to_be_bytes());
                lead.push(*weight);
            }
            (FrameType::Headers, flags, lead)
        }
        BlockKind::PushPromise { promised } => (
            FrameType::PushPromise,
            0,
            (promised.0 & 0x7fff_ffff).to_be_bytes().to_vec(),
        ),
    };
    let mut out = Vec::with_capacity(hpack.len() + lead.len() + 2 * HEADER_LEN);
    let mut rest = hpack;
    let mut kind = first_kind;
    loop {
        let room = max.saturating_sub(lead.len()).max(1);
        let (part, after) = rest.split_at(rest.len().min(room));
        if after.is_empty() {
            flags |= FLAG_END_HEADERS;
        }
        out.extend_from_slice(&header(kind, flags, stream, lead.len() + part.len()));
        out.append(&mut lead);
        out.extend_from_slice(part);
        if after.is_empty() {
            return out;
        }
        rest = after;
        kind = FrameType::Continuation;
        flags = 0;
    }
}

/// A gRPC trailers-only response (`:status 200`, `content-type: application/grpc`,
/// `grpc-status`, `grpc-message`) ending `stream`: how a server answers a call it fails at once,
/// and what faultline sends for a `grpc_status` fault.
pub fn grpc_trailers_only(
    stream: StreamId,
    status: u32,
    message: &str,
    limits: BlockLimits,
) -> Vec<u8> {
    let status = status.to_string();
    let message = encode_message(message);
    let mut list = HeaderList::from_pairs([
        (":status", "200"),
        ("content-type", "application/grpc"),
        ("grpc-status", status.as_str()),
    ]);
    if !message.is_empty() {
        list.fields
            .extend(HeaderList::from_pairs([("grpc-message", message.as_str())]).fields);
    }
    headers(stream, &list, true, limits)
}

/// A GET of `path` whose block also adds `x-trace: 1` to the receiver's HPACK table (literal
/// with incremental indexing), as most real clients' blocks do: tests of what faultline may
/// leave out, reorder or hold need a block that changes the table.
#[cfg(test)]
pub fn indexed_get(stream: StreamId, path: &str) -> Vec<u8> {
    let list = HeaderList::from_pairs([
        (":method", "GET"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "example"),
    ]);
    let mut frame = headers(stream, &list, true, BlockLimits::default());
    frame.extend_from_slice(&[0x40, 7]);
    frame.extend_from_slice(b"x-trace");
    frame.extend_from_slice(&[1, b'1']);
    let length = (frame.len() - HEADER_LEN) as u32;
    frame[..3].copy_from_slice(&length.to_be_bytes()[1..]);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::h2::control::Control;
    use crate::h2::hpack::Decoder;
    use crate::h2::reader::{FrameReader, PieceKind};

    fn read_all(bytes: &[u8]) -> Vec<PieceKind> {
        let mut reader = FrameReader::new(Direction::UpstreamToClient);
        let mut pieces = Vec::new();
        assert_eq!(reader.feed(bytes, &mut pieces), Ok(bytes.len()));
        pieces.into_iter().map(|p| p.kind).collect()
    }

    #[test]
    fn control_frames_read_back_as_written() {
        let mut bytes = rst_stream(StreamId(5), ErrorCode::CANCEL);
        bytes.extend(goaway(StreamId(7), ErrorCode::NO_ERROR, b"faultline"));
        bytes.extend(window_updates(StreamId(0), 70_000));
        bytes.extend(settings_ack());
        let controls: Vec<_> = read_all(&bytes)
            .into_iter()
            .filter_map(|k| match k {
                PieceKind::Control(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(
            controls,
            vec![
                Control::RstStream {
                    code: ErrorCode::CANCEL
                },
                Control::Goaway {
                    last_stream: StreamId(7),
                    code: ErrorCode::NO_ERROR,
                    debug: b"faultline".to_vec()
                },
                Control::WindowUpdate { increment: 70_000 },
                Control::Settings {
                    ack: true,
                    values: vec![]
                },
            ]
        );
    }

    #[test]
    fn large_credit_is_split_and_zero_credit_sends_nothing() {
        assert!(window_updates(StreamId(0), 0).is_empty());
        let bytes = window_updates(StreamId(0), u64::from(MAX_WINDOW) + 5);
        assert_eq!(bytes.len(), 26);
    }

    #[test]
    fn trailers_only_answer_decodes_and_ends_the_stream() {
        let bytes = grpc_trailers_only(
            StreamId(3),
            14,
            "injected by faultline",
            BlockLimits::default(),
        );
        let kinds = read_all(&bytes);
        let PieceKind::Header(head) = kinds[0] else {
            panic!("header first")
        };
        assert!(head.ends_stream());
        let block = kinds
            .iter()
            .find_map(|k| match k {
                PieceKind::Fragment { block: Some(b), .. } => Some(b.clone()),
                _ => None,
            })
            .expect("block");
        let decoded = Decoder::new().decode(&block.hpack).expect("valid");
        assert_eq!(decoded.headers.status(), Some(200));
        assert!(decoded.headers.is_grpc());
        assert_eq!(decoded.headers.grpc_status(), Some(14));
        assert_eq!(
            decoded.headers.grpc_message().as_deref(),
            Some("injected by faultline")
        );
        assert!(!decoded.touches_table);
    }

    #[test]
    fn big_blocks_are_split_into_continuations() {
        let value = "v".repeat(40_000);
        let list = HeaderList::from_pairs([("x-big", value.as_str())]);
        let bytes = headers(StreamId(1), &list, false, BlockLimits::default());
        let kinds = read_all(&bytes);
        let frame_kinds: Vec<_> = kinds
            .iter()
            .filter_map(|k| match k {
                PieceKind::Header(h) => Some(h.kind),
                _ => None,
            })
            .collect();
        assert_eq!(
            frame_kinds,
            vec![
                FrameType::Headers,
                FrameType::Continuation,
                FrameType::Continuation
            ]
        );
    }

    #[test]
    fn a_rewritten_data_header_is_a_plain_data_header() {
        let raw = data_header(StreamId(9), 100, true);
        let parsed = FrameHeader::parse(&raw);
        assert_eq!(parsed.length, 100);
        assert!(parsed.ends_stream());
        assert_eq!(parsed.stream, StreamId(9));
    }

    /// A re-encoded block is framed like the original (END_STREAM, priority, promised stream)
    /// and split into CONTINUATIONs at the receiver's frame size.
    #[test]
    fn a_reframed_block_keeps_its_kind_and_splits_at_the_frame_size() {
        let hpack = vec![0x88; 40_000];
        let kind = BlockKind::Headers {
            end_stream: true,
            priority: Some((StreamId(3), true, 7)),
        };
        let bytes = reframed_block(StreamId(5), &kind, &hpack, 16_384);
        let pieces = read_all(&bytes);
        let headers: Vec<FrameHeader> = pieces
            .iter()
            .filter_map(|p| match p {
                PieceKind::Header(h) => Some(*h),
                _ => None,
            })
            .collect();
        let kinds: Vec<FrameType> = headers.iter().map(|h| h.kind).collect();
        assert_eq!(
            kinds,
            [
                FrameType::Headers,
                FrameType::Continuation,
                FrameType::Continuation
            ]
        );
        assert_eq!(headers[0].flags, FLAG_END_STREAM | FLAG_PRIORITY);
        assert_eq!(headers[2].flags, FLAG_END_HEADERS);
        assert!(headers
            .iter()
            .all(|h| h.length <= 16_384 && h.stream == StreamId(5)));
        let block = pieces.iter().find_map(|p| match p {
            PieceKind::Fragment {
                block: Some(block), ..
            } => Some(block.clone()),
            _ => None,
        });
        let block = block.expect("one whole block");
        assert_eq!(block.hpack, hpack);
        assert_eq!(block.kind, kind);

        let promise = BlockKind::PushPromise {
            promised: StreamId(2),
        };
        let bytes = reframed_block(StreamId(1), &promise, &[0x82], 16_384);
        assert_eq!(
            &bytes[3..5],
            &[FrameType::PushPromise.as_u8(), FLAG_END_HEADERS]
        );
        assert_eq!(&bytes[9..], &[0, 0, 0, 2, 0x82]);
    }
}
