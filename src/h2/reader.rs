//! Incremental reader of one direction's HTTP/2 bytes: says what every raw byte is, at its absolute offset.
//!
//! The reader never copies or rewrites what it reads; it labels it. Each call to
//! [`FrameReader::feed`] returns [`Piece`]s that cover the consumed bytes exactly once, in order,
//! plus how many bytes it consumed. Bytes it did not consume are a *deferred tail*: an incomplete
//! unit the caller must present again, at the start of the next call, once more bytes arrived.
//!
//! Units are what a fault needs to see whole before deciding anything:
//! - the 24-byte client preface;
//! - a frame header (9 bytes; with the Pad Length byte of a padded DATA frame);
//! - a whole control frame (SETTINGS, PING, GOAWAY, RST_STREAM, WINDOW_UPDATE, PRIORITY), at most
//!   the receiving peer's SETTINGS_MAX_FRAME_SIZE plus 9 bytes;
//! - a whole header block: HEADERS or PUSH_PROMISE with all its CONTINUATION frames, at most
//!   `max_header_block` bytes.
//!
//! DATA payload, padding and the payload of unknown frame types are handed out in pieces as they
//! arrive, with their offsets, so a long stream never needs buffering.

use std::collections::HashMap;

use super::control::{self, Control};
use super::error::{Direction, FrameError, H2Error};
use super::frame::{
    FrameHeader, FrameType, StreamId, DEFAULT_MAX_FRAME_SIZE, FLAG_END_HEADERS, FLAG_END_STREAM,
    FLAG_PADDED, FLAG_PRIORITY, HEADER_LEN, MAX_MAX_FRAME_SIZE, PREFACE,
};

/// Header blocks larger than this (all fragments of one block together) are refused by default:
/// far above what gRPC (8 KiB metadata) or browsers send, small enough for a pump to hold.
pub const DEFAULT_MAX_HEADER_BLOCK: usize = 1 << 20;

/// A run of consumed bytes and what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Absolute offset of the first byte in this direction.
    pub start: u64,
    /// Number of bytes (0 only for the fragment of an empty header block or an empty control payload).
    pub len: usize,
    /// What they are.
    pub kind: PieceKind,
}

/// What a [`Piece`] of raw bytes is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PieceKind {
    /// The client connection preface.
    Preface,
    /// A 9-byte frame header.
    Header(FrameHeader),
    /// Per-frame fields that are neither payload nor padding: Pad Length, the 5 priority bytes of
    /// HEADERS, the promised stream id of PUSH_PROMISE.
    Fields,
    /// DATA payload of `stream`; `offset` is where these bytes start in that stream's DATA payload
    /// in this direction (padding excluded): the offsets payload faults count in.
    Data {
        /// The stream.
        stream: StreamId,
        /// Offset in the stream's payload.
        offset: u64,
    },
    /// Padding of a padded DATA, HEADERS or PUSH_PROMISE frame.
    Padding,
    /// HPACK bytes of a header block fragment; `block` is set on the fragment that completes the
    /// block (END_HEADERS).
    Fragment {
        /// The stream of the block.
        stream: StreamId,
        /// The whole block, on its last fragment.
        block: Option<Box<HeaderBlock>>,
    },
    /// The payload of a control frame, parsed.
    Control(Control),
    /// Payload of a frame type RFC 9113 does not define: passed through, not interpreted.
    Opaque,
}

/// Which frame opened a header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// HEADERS: request or response headers, or trailers.
    Headers {
        /// END_STREAM on the HEADERS frame (trailers, a trailers-only response, a bodiless request).
        end_stream: bool,
        /// The priority fields, when the PRIORITY flag was set.
        priority: Option<(StreamId, bool, u8)>,
    },
    /// PUSH_PROMISE: request headers of a stream the server will push.
    PushPromise {
        /// The stream the server reserves.
        promised: StreamId,
    },
}

/// A complete header block: its HPACK bytes joined across CONTINUATION frames, and where it lay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderBlock {
    /// The stream it belongs to.
    pub stream: StreamId,
    /// HEADERS or PUSH_PROMISE.
    pub kind: BlockKind,
    /// The HPACK bytes (padding and priority fields removed).
    pub hpack: Vec<u8>,
    /// Offset of the first frame header of the block.
    pub start: u64,
    /// Offset just past the last byte of the block's last frame.
    pub end: u64,
}

/// Where the reader is inside the byte stream.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Expecting the client preface.
    Preface,
    /// Expecting a frame header.
    FrameStart,
    /// Inside a DATA frame: payload bytes left, then padding bytes left.
    Data {
        stream: StreamId,
        data_left: u32,
        pad_left: u32,
        end_stream: bool,
    },
    /// Inside the payload of an unknown frame type.
    Opaque { left: u32 },
}

/// Reads one direction of an HTTP/2 connection. See the module docs for units and deferral.
#[derive(Debug)]
pub struct FrameReader {
    direction: Direction,
    state: State,
    /// Absolute offset of the next byte to consume.
    offset: u64,
    max_frame_size: u32,
    max_header_block: usize,
    /// DATA payload bytes seen so far per open stream in this direction.
    data_offsets: HashMap<StreamId, u64>,
    failed: Option<H2Error>,
}

impl FrameReader {
    /// A reader for `direction`: `client->upstream` starts with the client preface (prior
    /// knowledge); `upstream->client` starts with the server's SETTINGS frame.
    pub fn new(direction: Direction) -> FrameReader {
        FrameReader {
            direction,
            state: match direction {
                Direction::ClientToUpstream => State::Preface,
                Direction::UpstreamToClient => State::FrameStart,
            },
            offset: 0,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_header_block: DEFAULT_MAX_HEADER_BLOCK,
            data_offsets: HashMap::new(),
            failed: None,
        }
    }

    /// A reader that expects no client preface: for a direction whose preface was consumed
    /// elsewhere (a capture picked up mid-connection, a test starting at a frame boundary).
    pub fn without_preface(direction: Direction) -> FrameReader {
        let mut reader = FrameReader::new(direction);
        reader.state = State::FrameStart;
        reader
    }

    /// Sets the limit on header block size (default [`DEFAULT_MAX_HEADER_BLOCK`]).
    pub fn with_max_header_block(mut self, limit: usize) -> FrameReader {
        self.max_header_block = limit;
        self
    }

    /// The receiving peer advertised SETTINGS_MAX_FRAME_SIZE = `size`. The limit only grows: a
    /// sender may still be using the old, larger value until it sees the new SETTINGS, and an
    /// observer must never refuse what a peer may legally send. Values outside the RFC range are
    /// ignored (the peer that receives them closes the connection anyway).
    pub fn allow_frame_size(&mut self, size: u32) {
        if (DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&size) {
            self.max_frame_size = self.max_frame_size.max(size);
        }
    }

    /// The largest frame payload currently accepted.
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Absolute offset of the next byte the reader expects (= bytes consumed so far).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// DATA payload bytes seen so far on `stream` in this direction (0 for an unknown stream).
    pub fn data_offset(&self, stream: StreamId) -> u64 {
        self.data_offsets.get(&stream).copied().unwrap_or(0)
    }

    /// Forgets the DATA offset of a stream that ended for another reason than END_STREAM in this
    /// direction (RST_STREAM either way), so a long connection does not accumulate state.
    pub fn forget(&mut self, stream: StreamId) {
        self.data_offsets.remove(&stream);
    }

    /// Whether the reader stands between frames (not inside a DATA or unknown frame's payload).
    pub fn at_frame_boundary(&self) -> bool {
        matches!(self.state, State::FrameStart | State::Preface)
    }

    /// Reads as much of `buf` as forms whole units, appending the pieces to `out`, and returns how
    /// many bytes of `buf` were consumed. `buf[consumed..]` must be presented again at the start
    /// of the next call. After an error, every call returns the same error and consumes nothing.
    pub fn feed(&mut self, buf: &[u8], out: &mut Vec<Piece>) -> Result<usize, H2Error> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let mut pos = 0;
        loop {
            match self.step(&buf[pos..], out) {
                // No progress: either more bytes are needed, or a zero-length payload just ended
                // (the state moved on, so the next step makes progress or needs input).
                Ok(0) if self.needs_input() => break,
                Ok(n) => pos += n,
                Err(kind) => {
                    let error = kind.at(self.direction, self.offset);
                    self.failed = Some(error.clone());
                    return Err(error);
                }
            }
        }
        Ok(pos)
    }

    /// Whether the current state can make no progress without more bytes. Zero-length DATA or
    /// unknown payloads finish without input, so they never report this.
    fn needs_input(&self) -> bool {
        match self.state {
            State::Preface | State::FrameStart => true,
            State::Data {
                data_left,
                pad_left,
                ..
            } => data_left > 0 || pad_left > 0,
            State::Opaque { left } => left > 0,
        }
    }

    /// Emits a piece at the current offset and advances.
    fn emit(&mut self, out: &mut Vec<Piece>, len: usize, kind: PieceKind) {
        out.push(Piece {
            start: self.offset,
            len,
            kind,
        });
        self.offset += len as u64;
    }

    /// Consumes one unit (or one run of payload) from the front of `buf`; 0 = needs more bytes.
    fn step(&mut self, buf: &[u8], out: &mut Vec<Piece>) -> Result<usize, FrameError> {
        match self.state {
            State::Preface => {
                let n = buf.len().min(PREFACE.len());
                if let Some(at) = (0..n).find(|&i| buf[i] != PREFACE[i]) {
                    return Err(FrameError::BadPreface { at });
                }
                if n < PREFACE.len() {
                    return Ok(0);
                }
                self.emit(out, PREFACE.len(), PieceKind::Preface);
                self.state = State::FrameStart;
                Ok(PREFACE.len())
            }
            State::FrameStart => self.frame_start(buf, out),
            State::Data {
                stream,
                data_left,
                pad_left,
                end_stream,
            } => {
                if data_left > 0 {
                    let n = (data_left as usize).min(buf.len());
                    if n == 0 {
                        return Ok(0);
                    }
                    let offset = self.data_offsets.entry(stream).or_insert(0);
                    let at = *offset;
                    *offset += n as u64;
                    self.emit(out, n, PieceKind::Data { stream, offset: at });
                    self.state = State::Data {
                        stream,
                        data_left: data_left - n as u32,
                        pad_left,
                        end_stream,
                    };
                    self.finish_data_if_done();
                    return Ok(n);
                }
                if pad_left > 0 {
                    let n = (pad_left as usize).min(buf.len());
                    if n == 0 {
                        return Ok(0);
                    }
                    self.emit(out, n, PieceKind::Padding);
                    self.state = State::Data {
                        stream,
                        data_left,
                        pad_left: pad_left - n as u32,
                        end_stream,
                    };
                    self.finish_data_if_done();
                    return Ok(n);
                }
                self.finish_data_if_done();
                Ok(0)
            }
            State::Opaque { left } => {
                let n = (left as usize).min(buf.len());
                if left > 0 && n == 0 {
                    return Ok(0);
                }
                if n > 0 {
                    self.emit(out, n, PieceKind::Opaque);
                }
                let left = left - n as u32;
                self.state = if left == 0 {
                    State::FrameStart
                } else {
                    State::Opaque { left }
                };
                Ok(n)
            }
        }
    }

    /// Leaves a DATA frame whose payload and padding are all consumed.
    fn finish_data_if_done(&mut self) {
        if let State::Data {
            stream,
            data_left: 0,
            pad_left: 0,
            end_stream,
        } = self.state
        {
            if end_stream {
                self.data_offsets.remove(&stream);
            }
            self.state = State::FrameStart;
        }
    }

    fn frame_start(&mut self, buf: &[u8], out: &mut Vec<Piece>) -> Result<usize, FrameError> {
        let Some(raw) = buf.first_chunk::<HEADER_LEN>() else {
            return Ok(0);
        };
        let header = FrameHeader::parse(raw);
        self.check_size(&header)?;
        match header.kind {
            FrameType::Data => self.data_start(header, buf, out),
            FrameType::Headers | FrameType::PushPromise => self.header_block(header, buf, out),
            FrameType::Continuation => Err(FrameError::UnexpectedContinuation {
                stream: header.stream,
            }),
            FrameType::Unknown(_) => {
                self.emit(out, HEADER_LEN, PieceKind::Header(header));
                self.state = State::Opaque {
                    left: header.length,
                };
                Ok(HEADER_LEN)
            }
            kind => {
                debug_assert!(control::is_control(kind));
                let total = HEADER_LEN + header.length as usize;
                let Some(frame) = buf.get(..total) else {
                    return Ok(0);
                };
                let parsed = control::parse(&header, &frame[HEADER_LEN..])?;
                if let Control::RstStream { .. } = parsed {
                    self.data_offsets.remove(&header.stream);
                }
                self.emit(out, HEADER_LEN, PieceKind::Header(header));
                self.emit(out, header.length as usize, PieceKind::Control(parsed));
                Ok(total)
            }
        }
    }

    fn check_size(&self, header: &FrameHeader) -> Result<(), FrameError> {
        if header.length > self.max_frame_size {
            return Err(FrameError::FrameTooLarge {
                kind: header.kind,
                length: header.length,
                max: self.max_frame_size,
            });
        }
        Ok(())
    }

    fn data_start(
        &mut self,
        header: FrameHeader,
        buf: &[u8],
        out: &mut Vec<Piece>,
    ) -> Result<usize, FrameError> {
        if header.stream.is_connection() {
            return Err(FrameError::WrongStream {
                kind: header.kind,
                stream: header.stream,
            });
        }
        let end_stream = header.has(FLAG_END_STREAM);
        let (fields, pad) = if header.has(FLAG_PADDED) {
            let Some(&pad) = buf.get(HEADER_LEN) else {
                return Ok(0);
            };
            if u32::from(pad) + 1 > header.length {
                return Err(FrameError::BadPadding {
                    kind: header.kind,
                    length: header.length,
                    pad,
                });
            }
            (1, u32::from(pad))
        } else {
            (0, 0)
        };
        self.emit(out, HEADER_LEN, PieceKind::Header(header));
        if fields > 0 {
            self.emit(out, fields, PieceKind::Fields);
        }
        self.data_offsets.entry(header.stream).or_insert(0);
        self.state = State::Data {
            stream: header.stream,
            data_left: header.length - fields as u32 - pad,
            pad_left: pad,
            end_stream,
        };
        self.finish_data_if_done();
        Ok(HEADER_LEN + fields)
    }

    /// Takes a whole header block (HEADERS/PUSH_PROMISE + CONTINUATIONs) or nothing.
    fn header_block(
        &mut self,
        first: FrameHeader,
        buf: &[u8],
        out: &mut Vec<Piece>,
    ) -> Result<usize, FrameError> {
        if first.stream.is_connection() {
            return Err(FrameError::WrongStream {
                kind: first.kind,
                stream: first.stream,
            });
        }
        // Find every frame of the block before consuming any of it.
        let mut frames = vec![(0usize, first)];
        let mut total = HEADER_LEN + first.length as usize;
        let mut last = first;
        let mut fragment_bytes = first.length as usize;
        while !last.has(FLAG_END_HEADERS) {
            if fragment_bytes > self.max_header_block {
                return Err(FrameError::HeaderBlockTooLarge {
                    stream: first.stream,
                    limit: self.max_header_block,
                });
            }
            let Some(raw) = buf
                .get(total..)
                .and_then(|rest| rest.first_chunk::<HEADER_LEN>())
            else {
                return Ok(0);
            };
            let next = FrameHeader::parse(raw);
            if next.kind != FrameType::Continuation || next.stream != first.stream {
                // Report the offending frame's own offset.
                self.offset += total as u64;
                return Err(FrameError::ContinuationExpected {
                    stream: first.stream,
                    got: next.kind,
                    got_stream: next.stream,
                });
            }
            if let Err(error) = self.check_size(&next) {
                self.offset += total as u64;
                return Err(error);
            }
            frames.push((total, next));
            total += HEADER_LEN + next.length as usize;
            fragment_bytes += next.length as usize;
            last = next;
        }
        if fragment_bytes > self.max_header_block {
            return Err(FrameError::HeaderBlockTooLarge {
                stream: first.stream,
                limit: self.max_header_block,
            });
        }
        if buf.len() < total {
            return Ok(0);
        }

        // The first frame's own fields: Pad Length, priority or promised stream id.
        let payload = &buf[HEADER_LEN..HEADER_LEN + first.length as usize];
        let padded = first.has(FLAG_PADDED);
        let pad = if padded {
            usize::from(*payload.first().ok_or(FrameError::BadLength {
                kind: first.kind,
                length: first.length,
            })?)
        } else {
            0
        };
        let extra = match first.kind {
            FrameType::PushPromise => 4,
            _ if first.has(FLAG_PRIORITY) => 5,
            _ => 0,
        };
        let fields = usize::from(padded) + extra;
        if fields + pad > payload.len() {
            if padded {
                return Err(FrameError::BadPadding {
                    kind: first.kind,
                    length: first.length,
                    pad: pad as u8,
                });
            }
            return Err(FrameError::BadLength {
                kind: first.kind,
                length: first.length,
            });
        }
        let field_bytes = &payload[usize::from(padded)..fields];
        let word = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let kind = match first.kind {
            FrameType::PushPromise => BlockKind::PushPromise {
                promised: StreamId(word(field_bytes) & 0x7fff_ffff),
            },
            _ => BlockKind::Headers {
                end_stream: first.has(FLAG_END_STREAM),
                priority: (extra == 5).then(|| {
                    (
                        StreamId(word(field_bytes) & 0x7fff_ffff),
                        field_bytes[0] & 0x80 != 0,
                        field_bytes[4],
                    )
                }),
            },
        };

        let start = self.offset;
        let mut hpack = Vec::with_capacity(fragment_bytes);
        hpack.extend_from_slice(&payload[fields..payload.len() - pad]);
        for &(at, frame) in &frames[1..] {
            hpack.extend_from_slice(&buf[at + HEADER_LEN..at + HEADER_LEN + frame.length as usize]);
        }
        let mut block = Some(Box::new(HeaderBlock {
            stream: first.stream,
            kind,
            hpack,
            start,
            end: start + total as u64,
        }));

        let count = frames.len();
        for (index, (_, frame)) in frames.into_iter().enumerate() {
            let is_last = index + 1 == count;
            self.emit(out, HEADER_LEN, PieceKind::Header(frame));
            let (own_fields, own_pad) = if index == 0 { (fields, pad) } else { (0, 0) };
            if own_fields > 0 {
                self.emit(out, own_fields, PieceKind::Fields);
            }
            let fragment_len = frame.length as usize - own_fields - own_pad;
            self.emit(
                out,
                fragment_len,
                PieceKind::Fragment {
                    stream: first.stream,
                    block: if is_last { block.take() } else { None },
                },
            );
            if own_pad > 0 {
                self.emit(out, own_pad, PieceKind::Padding);
            }
        }
        if first.has(FLAG_END_STREAM) && first.kind == FrameType::Headers {
            self.data_offsets.remove(&first.stream);
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::frame::FLAG_ACK;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        crate::h2::build::frame(FrameType::from_u8(kind), flags, StreamId(stream), payload)
    }

    /// Feeds `bytes` in pieces of `step` bytes the way a pump would: the deferred tail is kept and
    /// presented again with the next read. Returns all pieces and the tail left at the end.
    fn read_in_steps(reader: &mut FrameReader, bytes: &[u8], step: usize) -> (Vec<Piece>, Vec<u8>) {
        let mut pending = Vec::new();
        let mut pieces = Vec::new();
        for chunk in bytes.chunks(step) {
            pending.extend_from_slice(chunk);
            let used = reader.feed(&pending, &mut pieces).expect("valid input");
            pending.drain(..used);
        }
        (pieces, pending)
    }

    /// Joins adjacent streamed pieces of the same kind (payload cut by small reads).
    fn merged(pieces: Vec<Piece>) -> Vec<Piece> {
        let mut out: Vec<Piece> = Vec::new();
        for piece in pieces {
            if let Some(last) = out.last_mut() {
                let joins = match (&last.kind, &piece.kind) {
                    (
                        PieceKind::Data { stream: a, offset },
                        PieceKind::Data {
                            stream: b,
                            offset: next,
                        },
                    ) => a == b && offset + last.len as u64 == *next,
                    (PieceKind::Padding, PieceKind::Padding) => true,
                    (PieceKind::Opaque, PieceKind::Opaque) => true,
                    _ => false,
                };
                if joins && last.start + last.len as u64 == piece.start {
                    last.len += piece.len;
                    continue;
                }
            }
            out.push(piece);
        }
        out
    }

    fn assert_contiguous(pieces: &[Piece], total: u64) {
        let mut at = 0;
        for piece in pieces {
            assert_eq!(piece.start, at, "gap or overlap at {piece:?}");
            at += piece.len as u64;
        }
        assert_eq!(at, total);
    }

    fn conversation() -> Vec<u8> {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(0x4, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]));
        // HEADERS without END_HEADERS, padded, with priority; then a CONTINUATION.
        let mut headers = vec![2]; // pad length
        headers.extend_from_slice(&[0x80, 0, 0, 0, 15]); // exclusive dep on 0, weight 15
        headers.extend_from_slice(&[0x82, 0x86]);
        headers.extend_from_slice(&[0, 0]); // padding
        bytes.extend(frame(0x1, FLAG_PADDED | FLAG_PRIORITY, 1, &headers));
        bytes.extend(frame(0x9, FLAG_END_HEADERS, 1, &[0x84]));
        // Padded DATA with END_STREAM.
        bytes.extend(frame(
            0x0,
            FLAG_PADDED | FLAG_END_STREAM,
            1,
            &[3, b'a', b'b', 0, 0, 0],
        ));
        bytes.extend(frame(0xfa, 0, 0, b"opaque"));
        bytes.extend(frame(0x6, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]));
        bytes.extend(frame(0x4, FLAG_ACK, 0, &[]));
        bytes
    }

    #[test]
    fn every_byte_is_labelled_once_whatever_the_split() {
        let bytes = conversation();
        let mut reference = None;
        for step in [1, 2, 3, 7, 9, 10, 64, bytes.len()] {
            let mut reader = FrameReader::new(Direction::ClientToUpstream);
            let (pieces, tail) = read_in_steps(&mut reader, &bytes, step);
            assert!(tail.is_empty(), "step {step}");
            assert_contiguous(&pieces, bytes.len() as u64);
            // Payload comes in more pieces with small reads; compare the merged runs.
            let summary = merged(pieces);
            match &reference {
                None => reference = Some(summary),
                Some(expected) => assert_eq!(&summary, expected, "step {step}"),
            }
        }
    }

    #[test]
    fn header_blocks_are_joined_and_fields_located() {
        let bytes = conversation();
        let mut reader = FrameReader::new(Direction::ClientToUpstream);
        let mut pieces = Vec::new();
        assert_eq!(reader.feed(&bytes, &mut pieces), Ok(bytes.len()));
        let block = pieces
            .iter()
            .find_map(|p| match &p.kind {
                PieceKind::Fragment { block: Some(b), .. } => Some(b.clone()),
                _ => None,
            })
            .expect("a complete block");
        assert_eq!(block.hpack, vec![0x82, 0x86, 0x84]);
        assert_eq!(
            block.kind,
            BlockKind::Headers {
                end_stream: false,
                priority: Some((StreamId(0), true, 15))
            }
        );
        let data: Vec<_> = pieces
            .iter()
            .filter(|p| matches!(p.kind, PieceKind::Data { .. }))
            .collect();
        assert_eq!(data.len(), 1);
        assert_eq!(data[0].len, 2);
        assert_eq!(
            &bytes[data[0].start as usize..data[0].start as usize + 2],
            b"ab"
        );
        let padding: usize = pieces
            .iter()
            .filter(|p| p.kind == PieceKind::Padding)
            .map(|p| p.len)
            .sum();
        assert_eq!(padding, 2 + 3);
        assert!(pieces
            .iter()
            .any(|p| p.kind == PieceKind::Opaque && p.len == 6));
    }

    #[test]
    fn data_offsets_count_payload_per_stream() {
        let mut bytes = frame(0x0, 0, 1, b"hello");
        bytes.extend(frame(0x0, 0, 3, b"xy"));
        bytes.extend(frame(0x0, FLAG_END_STREAM, 1, b"world"));
        let mut reader = FrameReader::new(Direction::UpstreamToClient);
        let (pieces, _) = read_in_steps(&mut reader, &bytes, 4);
        let offsets: Vec<_> = merged(pieces)
            .iter()
            .filter_map(|p| match p.kind {
                PieceKind::Data { stream, offset } => Some((stream.0, offset, p.len)),
                _ => None,
            })
            .collect();
        assert_eq!(offsets, vec![(1, 0, 5), (3, 0, 2), (1, 5, 5)]);
        assert_eq!(
            reader.data_offset(StreamId(1)),
            0,
            "ended streams are forgotten"
        );
        assert_eq!(reader.data_offset(StreamId(3)), 2);
    }

    #[test]
    fn an_incomplete_unit_is_deferred() {
        let bytes = frame(0x6, 0, 0, &[0; 8]);
        let mut reader = FrameReader::new(Direction::UpstreamToClient);
        let mut pieces = Vec::new();
        assert_eq!(reader.feed(&bytes[..12], &mut pieces), Ok(0));
        assert!(pieces.is_empty());
        assert_eq!(reader.feed(&bytes, &mut pieces), Ok(bytes.len()));
        assert_eq!(pieces.len(), 2);
    }

    #[test]
    fn a_bad_preface_is_an_error_as_soon_as_it_differs() {
        let mut reader = FrameReader::new(Direction::ClientToUpstream);
        let error = reader.feed(b"PRI * HTTP/1.1", &mut Vec::new()).unwrap_err();
        assert_eq!(error.kind, FrameError::BadPreface { at: 11 });
        assert_eq!(error.offset, 0);
        // Sticky.
        assert_eq!(reader.feed(PREFACE, &mut Vec::new()).unwrap_err(), error);
    }

    #[test]
    fn oversized_frames_are_refused_until_the_peer_allows_them() {
        let bytes = frame(0x0, 0, 1, &vec![0; 20_000]);
        let mut reader = FrameReader::new(Direction::UpstreamToClient);
        let error = reader.feed(&bytes, &mut Vec::new()).unwrap_err();
        assert!(matches!(
            error.kind,
            FrameError::FrameTooLarge {
                length: 20_000,
                max: 16_384,
                ..
            }
        ));

        let mut reader = FrameReader::new(Direction::UpstreamToClient);
        reader.allow_frame_size(1 << 20);
        reader.allow_frame_size(16_384); // never shrinks
        assert_eq!(reader.feed(&bytes, &mut Vec::new()), Ok(bytes.len()));
    }

    #[test]
    fn continuation_violations_are_errors_at_the_offending_frame() {
        let mut bytes = frame(0x1, 0, 1, &[0x82]);
        let ping_at = bytes.len() as u64;
        bytes.extend(frame(0x6, 0, 0, &[0; 8]));
        let mut reader = FrameReader::new(Direction::UpstreamToClient);
        let error = reader.feed(&bytes, &mut Vec::new()).unwrap_err();
        assert_eq!(error.offset, ping_at);
        assert!(matches!(
            error.kind,
            FrameError::ContinuationExpected {
                got: FrameType::Ping,
                ..
            }
        ));

        let stray = frame(0x9, FLAG_END_HEADERS, 1, &[0x82]);
        let mut reader = FrameReader::new(Direction::UpstreamToClient);
        let error = reader.feed(&stray, &mut Vec::new()).unwrap_err();
        assert!(matches!(
            error.kind,
            FrameError::UnexpectedContinuation { .. }
        ));
    }

    #[test]
    fn an_endless_header_block_is_refused_before_it_is_buffered() {
        let mut bytes = frame(0x1, 0, 1, &[0x82; 100]);
        for _ in 0..20 {
            bytes.extend(frame(0x9, 0, 1, &[0x82; 100]));
        }
        let mut reader = FrameReader::new(Direction::UpstreamToClient).with_max_header_block(1000);
        let error = reader.feed(&bytes, &mut Vec::new()).unwrap_err();
        assert!(matches!(
            error.kind,
            FrameError::HeaderBlockTooLarge { limit: 1000, .. }
        ));
    }

    #[test]
    fn padding_larger_than_the_frame_is_an_error() {
        let bytes = frame(0x0, FLAG_PADDED, 1, &[5, 1, 2]);
        let mut reader = FrameReader::new(Direction::UpstreamToClient);
        let error = reader.feed(&bytes, &mut Vec::new()).unwrap_err();
        assert!(matches!(error.kind, FrameError::BadPadding { pad: 5, .. }));
    }

    #[test]
    fn empty_data_frames_and_empty_blocks_are_labelled() {
        let mut bytes = frame(0x1, FLAG_END_HEADERS, 1, &[]);
        bytes.extend(frame(0x0, FLAG_END_STREAM, 1, &[]));
        let mut reader = FrameReader::new(Direction::UpstreamToClient);
        let mut pieces = Vec::new();
        assert_eq!(reader.feed(&bytes, &mut pieces), Ok(bytes.len()));
        assert_contiguous(&pieces, bytes.len() as u64);
        assert!(reader.at_frame_boundary());
        assert_eq!(pieces.len(), 3);
    }
}
