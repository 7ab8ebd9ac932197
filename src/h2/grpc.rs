//! gRPC message framing inside one stream's DATA (5-byte prefix: compressed flag, 32-bit length), read incrementally.
//!
//! A gRPC message may span many DATA frames and a DATA frame may hold many messages, so the reader
//! is fed the stream's payload pieces as they arrive (with their stream payload offsets, as the
//! frame reader gives them) and says where each message's prefix and body bytes are, without
//! buffering bodies. [`MessageAssembler`] keeps whole messages up to a size, for small requests
//! such as ByteStream `ReadRequest` that rules and `inspect` need to parse.

use std::ops::Range;

use thiserror::Error;

/// Length of the prefix in front of every message.
pub const PREFIX_LEN: usize = 5;

/// Why a stream's payload is not valid gRPC framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum GrpcError {
    /// The compressed-flag byte is neither 0 nor 1.
    #[error("message {index}: compressed flag {flag} is not 0 or 1")]
    BadFlag {
        /// Index of the message in the stream (0-based).
        index: u64,
        /// The byte found.
        flag: u8,
    },
    /// Payload bytes were fed out of order (a caller bug: offsets must be contiguous).
    #[error("payload fed at offset {got}, expected {expected}")]
    Gap {
        /// The next offset the reader expected.
        expected: u64,
        /// The offset it was given.
        got: u64,
    },
}

/// Where part of a message lies in the bytes just fed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessagePart {
    /// A complete prefix (it may have been split across feeds; `at` is where it began).
    Start {
        /// Message index in the stream (0-based).
        index: u64,
        /// The compressed flag.
        compressed: bool,
        /// Body length in bytes.
        length: u32,
        /// Stream payload offset of the prefix's first byte.
        at: u64,
    },
    /// Body bytes of message `index`: `range` indexes the slice given to this feed.
    Body {
        /// Message index.
        index: u64,
        /// Offset of these bytes inside the message body.
        offset: u32,
        /// Where they are in the fed slice.
        range: Range<usize>,
    },
    /// The message's body is complete (also emitted for empty bodies).
    End {
        /// Message index.
        index: u64,
    },
}

/// Reads the message framing of one stream in one direction.
#[derive(Debug, Clone, Default)]
pub struct MessageReader {
    /// Next stream payload offset expected.
    next: u64,
    prefix: [u8; PREFIX_LEN],
    have: usize,
    /// Body bytes left in the current message (`None` = reading a prefix).
    body_left: Option<u32>,
    length: u32,
    index: u64,
    failed: Option<GrpcError>,
}

impl MessageReader {
    /// A reader at the start of a stream.
    pub fn new() -> MessageReader {
        MessageReader::default()
    }

    /// Messages whose prefix has been read.
    pub fn started(&self) -> u64 {
        self.index + u64::from(self.body_left.is_some())
    }

    /// Payload bytes the current message still needs before it is whole: its body's rest once
    /// its prefix was read, the prefix's rest (at least) while it is being read.
    pub fn bytes_to_message_end(&self) -> u64 {
        match self.body_left {
            Some(left) => u64::from(left),
            None => (PREFIX_LEN - self.have) as u64,
        }
    }

    /// Whether the stream stands between messages (a stream ending elsewhere is truncated).
    pub fn at_boundary(&self) -> bool {
        self.body_left.is_none() && self.have == 0
    }

    /// Feeds payload `bytes` starting at stream payload offset `at`; appends what they are.
    pub fn feed(
        &mut self,
        at: u64,
        bytes: &[u8],
        out: &mut Vec<MessagePart>,
    ) -> Result<(), GrpcError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        if at != self.next {
            return Err(GrpcError::Gap {
                expected: self.next,
                got: at,
            });
        }
        self.next += bytes.len() as u64;
        let mut pos = 0;
        loop {
            match self.body_left {
                None => {
                    let take = (PREFIX_LEN - self.have).min(bytes.len() - pos);
                    self.prefix[self.have..self.have + take]
                        .copy_from_slice(&bytes[pos..pos + take]);
                    self.have += take;
                    pos += take;
                    if self.have < PREFIX_LEN {
                        return Ok(());
                    }
                    let flag = self.prefix[0];
                    if flag > 1 {
                        let error = GrpcError::BadFlag {
                            index: self.index,
                            flag,
                        };
                        self.failed = Some(error);
                        return Err(error);
                    }
                    self.length = u32::from_be_bytes([
                        self.prefix[1],
                        self.prefix[2],
                        self.prefix[3],
                        self.prefix[4],
                    ]);
                    self.have = 0;
                    out.push(MessagePart::Start {
                        index: self.index,
                        compressed: flag == 1,
                        length: self.length,
                        at: at + pos as u64 - PREFIX_LEN as u64,
                    });
                    self.body_left = Some(self.length);
                    if self.length == 0 {
                        self.finish(out);
                    }
                }
                Some(left) => {
                    let take = (left as usize).min(bytes.len() - pos);
                    if take == 0 {
                        return Ok(());
                    }
                    out.push(MessagePart::Body {
                        index: self.index,
                        offset: self.length - left,
                        range: pos..pos + take,
                    });
                    pos += take;
                    let left = left - take as u32;
                    self.body_left = Some(left);
                    if left == 0 {
                        self.finish(out);
                    }
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<MessagePart>) {
        out.push(MessagePart::End { index: self.index });
        self.body_left = None;
        self.index += 1;
    }
}

/// A whole message kept by [`MessageAssembler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Index in the stream.
    pub index: u64,
    /// The compressed flag (a compressed body cannot be parsed without the stream's codec).
    pub compressed: bool,
    /// Stream payload offset of the prefix.
    pub at: u64,
    /// Declared body length.
    pub length: u32,
    /// The body, or its first `limit` bytes when longer.
    pub body: Vec<u8>,
}

/// Collects whole messages (bodies kept up to `limit` bytes each) from one stream's payload.
#[derive(Debug, Clone)]
pub struct MessageAssembler {
    reader: MessageReader,
    limit: usize,
    current: Option<Message>,
}

impl MessageAssembler {
    /// Keeps at most `limit` body bytes per message.
    pub fn new(limit: usize) -> MessageAssembler {
        MessageAssembler {
            reader: MessageReader::new(),
            limit,
            current: None,
        }
    }

    /// The underlying framing reader.
    pub fn reader(&self) -> &MessageReader {
        &self.reader
    }

    /// The kept body bytes of the message still being assembled (a long first message is
    /// often enough to identify a call: protobuf writes its leading fields first).
    pub fn partial(&self) -> Option<&[u8]> {
        self.current.as_ref().map(|m| m.body.as_slice())
    }

    /// Feeds payload bytes at stream payload offset `at`; returns the messages they completed.
    pub fn feed(&mut self, at: u64, bytes: &[u8]) -> Result<Vec<Message>, GrpcError> {
        let mut parts = Vec::new();
        self.reader.feed(at, bytes, &mut parts)?;
        let mut done = Vec::new();
        for part in parts {
            match part {
                MessagePart::Start {
                    index,
                    compressed,
                    length,
                    at,
                } => {
                    self.current = Some(Message {
                        index,
                        compressed,
                        at,
                        length,
                        body: Vec::with_capacity((length as usize).min(self.limit)),
                    });
                }
                MessagePart::Body { range, .. } => {
                    if let Some(message) = &mut self.current {
                        let room = self.limit.saturating_sub(message.body.len());
                        let slice = &bytes[range];
                        message
                            .body
                            .extend_from_slice(&slice[..slice.len().min(room)]);
                    }
                }
                MessagePart::End { .. } => done.extend(self.current.take()),
            }
        }
        Ok(done)
    }
}

/// Frames `body` as one gRPC message (uncompressed), for tests and built-in clients.
pub fn frame_message(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX_LEN + body.len());
    out.push(0);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_anywhere_are_found_with_their_offsets() {
        let mut payload = frame_message(b"hello");
        payload.extend(frame_message(b""));
        payload.extend(frame_message(b"world!"));
        for step in 1..payload.len() {
            let mut assembler = MessageAssembler::new(1024);
            let mut messages = Vec::new();
            for (i, chunk) in payload.chunks(step).enumerate() {
                messages.extend(assembler.feed((i * step) as u64, chunk).expect("valid"));
            }
            let bodies: Vec<_> = messages.iter().map(|m| m.body.clone()).collect();
            assert_eq!(
                bodies,
                vec![b"hello".to_vec(), vec![], b"world!".to_vec()],
                "step {step}"
            );
            let starts: Vec<_> = messages.iter().map(|m| m.at).collect();
            assert_eq!(starts, vec![0, 10, 15]);
            assert!(assembler.reader().at_boundary());
        }
    }

    #[test]
    fn bytes_to_message_end_counts_the_prefix_then_the_body() {
        let payload = frame_message(&[7; 100]);
        let mut reader = MessageReader::new();
        let mut parts = Vec::new();
        assert_eq!(reader.bytes_to_message_end(), 5);
        reader.feed(0, &payload[..3], &mut parts).expect("valid");
        assert_eq!(reader.bytes_to_message_end(), 2);
        reader.feed(3, &payload[3..40], &mut parts).expect("valid");
        assert_eq!(reader.bytes_to_message_end(), 65);
        reader.feed(40, &payload[40..], &mut parts).expect("valid");
        assert_eq!(
            reader.bytes_to_message_end(),
            5,
            "the next message's prefix"
        );
    }

    #[test]
    fn body_parts_point_into_the_fed_slice() {
        let payload = frame_message(b"abcdef");
        let mut reader = MessageReader::new();
        let mut parts = Vec::new();
        reader.feed(0, &payload[..8], &mut parts).expect("valid");
        assert_eq!(
            parts[1],
            MessagePart::Body {
                index: 0,
                offset: 0,
                range: 5..8
            }
        );
        parts.clear();
        reader.feed(8, &payload[8..], &mut parts).expect("valid");
        assert_eq!(
            parts,
            vec![
                MessagePart::Body {
                    index: 0,
                    offset: 3,
                    range: 0..3
                },
                MessagePart::End { index: 0 }
            ]
        );
    }

    #[test]
    fn bad_flags_and_gaps_are_errors() {
        let mut reader = MessageReader::new();
        assert_eq!(
            reader.feed(0, &[2, 0, 0, 0, 0], &mut Vec::new()),
            Err(GrpcError::BadFlag { index: 0, flag: 2 })
        );
        let mut reader = MessageReader::new();
        assert_eq!(
            reader.feed(3, &[0], &mut Vec::new()),
            Err(GrpcError::Gap {
                expected: 0,
                got: 3
            })
        );
    }

    #[test]
    fn long_bodies_are_kept_up_to_the_limit() {
        let mut assembler = MessageAssembler::new(4);
        let messages = assembler
            .feed(0, &frame_message(b"0123456789"))
            .expect("valid");
        assert_eq!(messages[0].body, b"0123");
        assert_eq!(messages[0].length, 10);
    }
}
