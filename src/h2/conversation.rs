//! One HTTP/2 connection observed from the middle: both directions' readers and HPACK decoders and the stream tracker, fed chunk by chunk.

use super::control::Control;
use super::error::{Direction, FrameError, H2Error};
use super::frame::{FrameType, StreamId};
use super::headers::HeaderList;
use super::hpack::{Decoder, HpackError};
use super::reader::{FrameReader, Piece, PieceKind};
use super::tracker::{BlockRole, Tracker};

/// A header block decoded during one [`Conversation::feed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBlock {
    /// Index in [`Fed::pieces`] of the fragment piece that completed the block.
    pub piece: usize,
    /// The stream of the block (for PUSH_PROMISE, the associated stream).
    pub stream: StreamId,
    /// What the block was for its stream.
    pub role: BlockRole,
    /// The decoded fields.
    pub headers: HeaderList,
    /// END_STREAM on the HEADERS frame.
    pub end_stream: bool,
    /// Whether the block changed the receiver's dynamic table: such a block must reach the
    /// receiver even when its stream is being discarded, or the receiver's HPACK state breaks.
    pub touches_table: bool,
    /// The block in representations that neither read nor change the receiver's dynamic table
    /// (upstream->client only, `None` when the block is already so): what the session sends
    /// once it had to withhold a block that changed the client's table.
    pub detached: Option<Vec<u8>>,
    /// The dynamic table size updates the block starts with.
    pub size_updates: Vec<usize>,
}

/// What one chunk turned out to be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fed {
    /// Bytes of the chunk consumed; the rest is a deferred tail to present again.
    pub consumed: usize,
    /// The consumed bytes, labelled, in order, exactly once each.
    pub pieces: Vec<Piece>,
    /// Header blocks completed in this chunk, decoded, in order.
    pub blocks: Vec<DecodedBlock>,
}

/// Both directions of one connection: feed each direction's bytes as they cross, in the order
/// they crossed (a SETTINGS frame in one direction raises the limits of the other).
///
/// After an error the conversation stays failed: every later call returns the same error, and
/// the caller relays the rest of the connection as plain bytes.
#[derive(Debug)]
pub struct Conversation {
    readers: [FrameReader; 2],
    decoders: [Decoder; 2],
    tracker: Tracker,
    /// The most the tracked streams' header lists may hold (see [`Conversation::with_header_budget`]).
    header_budget: usize,
    failed: Option<H2Error>,
}

/// What the header lists of a connection's tracked streams may hold together (RFC 9113 §6.5.2
/// count) before the conversation stops: a stream's lists are kept until it closes, so a peer
/// that opened streams with lists just under the per-block limit (a 70-byte block of
/// references to a 4 KB entry decodes to 250 KB) and never ended them took a proxy to 950 MB
/// with 80 KB sent. 4 MiB holds 128 concurrent streams of 32 KiB of headers each (nginx's
/// defaults), far more than gRPC or browsers keep open.
pub const DEFAULT_HEADER_BUDGET: usize = 4 << 20;

impl Default for Conversation {
    fn default() -> Conversation {
        Conversation::new()
    }
}

impl Conversation {
    /// A connection whose client starts with the preface (prior knowledge, or after an h2c
    /// Upgrade's 101, or after TLS ALPN `h2`: all three begin with the client preface).
    pub fn new() -> Conversation {
        let mut conversation = Conversation::with_readers(
            FrameReader::new(Direction::ClientToUpstream),
            FrameReader::new(Direction::UpstreamToClient),
        );
        let upstream = Direction::UpstreamToClient.index();
        conversation.decoders[upstream] = Decoder::new().with_detached_forms();
        conversation
    }

    /// A conversation over readers configured by the caller (header block limit, no preface).
    pub fn with_readers(client: FrameReader, upstream: FrameReader) -> Conversation {
        Conversation {
            readers: [client, upstream],
            decoders: [Decoder::new(), Decoder::new()],
            tracker: Tracker::new(),
            header_budget: DEFAULT_HEADER_BUDGET,
            failed: None,
        }
    }

    /// A connection that switched from HTTP/1.1 with `Upgrade: h2c`: the client starts with the
    /// preface, the server with SETTINGS, and stream 1 is the upgraded request (`request`).
    pub fn upgraded(request: HeaderList) -> Conversation {
        let mut conversation = Conversation::new();
        conversation.tracker.open_upgraded(request);
        conversation
    }

    /// Also makes the detached form of every client block (the upstream's always have one): a
    /// proxy that kept from the upstream a client block that changed its table sends the
    /// client's later blocks in that form. Called before the first client byte is fed.
    pub fn with_client_detached_forms(mut self) -> Conversation {
        let client = Direction::ClientToUpstream.index();
        self.decoders[client] = Decoder::new().with_detached_forms();
        self
    }

    /// Sets the budget of the tracked streams' header lists ([`DEFAULT_HEADER_BUDGET`]): a
    /// block that would pass it stops the conversation with [`FrameError::HeaderBudget`].
    pub fn with_header_budget(mut self, bytes: usize) -> Conversation {
        self.header_budget = bytes;
        self
    }

    /// Changes that budget between feeds: a reader of many conversations shares one budget
    /// among them and gives each what the others left.
    pub fn set_header_budget(&mut self, bytes: usize) {
        self.header_budget = bytes;
    }

    /// The stream tracker.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The stream tracker, to prune closed streams.
    pub fn tracker_mut(&mut self) -> &mut Tracker {
        &mut self.tracker
    }

    /// The reader of one direction (offsets, frame size limit).
    pub fn reader(&self, direction: Direction) -> &FrameReader {
        &self.readers[direction.index()]
    }

    /// The HPACK decoder of one direction.
    pub fn decoder(&self, direction: Direction) -> &Decoder {
        &self.decoders[direction.index()]
    }

    /// The error that stopped the conversation, if any.
    pub fn error(&self) -> Option<&H2Error> {
        self.failed.as_ref()
    }

    /// Reads one chunk of `direction`. `buf` starts with the tail deferred by the previous call
    /// in the same direction, if any. Nothing is re-serialized: the pieces label `buf`'s bytes.
    pub fn feed(&mut self, direction: Direction, buf: &[u8]) -> Result<Fed, H2Error> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let d = direction.index();
        let mut fed = Fed::default();
        let consumed = self.readers[d].feed(buf, &mut fed.pieces);
        fed.consumed = match consumed {
            Ok(n) => n,
            Err(error) => return Err(self.fail(error)),
        };
        for (index, piece) in fed.pieces.iter().enumerate() {
            match &piece.kind {
                PieceKind::Header(header) if header.kind == FrameType::Data => {
                    self.tracker.on_data_frame(direction, header);
                }
                PieceKind::Data { stream, .. } => {
                    self.tracker.on_data_bytes(direction, *stream, piece.len);
                }
                PieceKind::Fragment {
                    block: Some(block), ..
                } => {
                    let kept = self.tracker.headers_kept();
                    let room = self.header_budget.saturating_sub(kept);
                    let decoder = &mut self.decoders[d];
                    let by_budget = room < decoder.max_list_size();
                    let decoded = match decoder.decode_within(&block.hpack, room) {
                        Ok(decoded) => decoded,
                        Err(error) => {
                            let error = match error {
                                HpackError::ListTooLarge { .. } if by_budget => {
                                    FrameError::HeaderBudget {
                                        stream: block.stream,
                                        kept,
                                        budget: self.header_budget,
                                    }
                                }
                                error => FrameError::from(error),
                            };
                            return Err(self.fail(error.at(direction, block.start)));
                        }
                    };
                    let role = self.tracker.on_block(direction, block, &decoded.headers);
                    let end_stream = matches!(
                        block.kind,
                        super::reader::BlockKind::Headers {
                            end_stream: true,
                            ..
                        }
                    );
                    fed.blocks.push(DecodedBlock {
                        piece: index,
                        stream: block.stream,
                        role,
                        headers: decoded.headers,
                        end_stream,
                        touches_table: decoded.touches_table,
                        detached: decoded.detached,
                        size_updates: decoded.size_updates,
                    });
                }
                PieceKind::Control(control) => {
                    let header = header_before(&fed.pieces, index);
                    if let Some(header) = header {
                        self.tracker.on_control(direction, &header, control);
                    }
                    if let Control::Settings { ack: false, values } = control {
                        self.apply_limits(direction, values);
                    }
                    if let (Control::RstStream { .. }, Some(header)) = (control, header) {
                        // The stream's DATA offset in the other direction is over too.
                        let other = 1 - d;
                        self.readers[other].forget(header.stream);
                    }
                }
                _ => {}
            }
        }
        Ok(fed)
    }

    /// The peer sending in `direction` advertised settings: they limit what the other peer sends.
    fn apply_limits(&mut self, direction: Direction, values: &[(u16, u32)]) {
        let receiver_of_limited = 1 - direction.index();
        for &(id, value) in values {
            match id {
                super::settings::MAX_FRAME_SIZE => {
                    self.readers[receiver_of_limited].allow_frame_size(value)
                }
                super::settings::HEADER_TABLE_SIZE => {
                    self.decoders[receiver_of_limited].allow_table_size(value)
                }
                _ => {}
            }
        }
    }

    fn fail(&mut self, error: H2Error) -> H2Error {
        self.failed = Some(error.clone());
        error
    }
}

/// The frame header a payload piece belongs to: the nearest header piece before it.
fn header_before(pieces: &[Piece], index: usize) -> Option<super::frame::FrameHeader> {
    pieces[..index].iter().rev().find_map(|p| match p.kind {
        PieceKind::Header(header) => Some(header),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::build;
    use crate::h2::frame::PREFACE;

    const UP: Direction = Direction::ClientToUpstream;
    const DOWN: Direction = Direction::UpstreamToClient;

    fn settings(values: &[(u16, u32)]) -> Vec<u8> {
        let mut payload = Vec::new();
        for (id, value) in values {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&value.to_be_bytes());
        }
        let mut out = crate::h2::frame::FrameHeader {
            length: payload.len() as u32,
            kind: FrameType::Settings,
            flags: 0,
            stream: StreamId(0),
        }
        .to_bytes()
        .to_vec();
        out.extend(payload);
        out
    }

    #[test]
    fn a_call_is_decoded_across_both_directions() {
        let mut conversation = Conversation::new();
        let mut client = PREFACE.to_vec();
        client.extend(settings(&[]));
        let request = HeaderList::from_pairs([
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/google.bytestream.ByteStream/Read"),
            (":authority", "cas"),
            ("content-type", "application/grpc"),
        ]);
        client.extend(build::headers(
            StreamId(1),
            &request,
            false,
            build::BlockLimits::default(),
        ));
        client.extend(build::data_header(StreamId(1), 3, true));
        client.extend(b"abc");
        let fed = conversation.feed(UP, &client).expect("valid");
        assert_eq!(fed.consumed, client.len());
        assert_eq!(fed.blocks.len(), 1);
        assert_eq!(fed.blocks[0].role, BlockRole::Request);
        assert_eq!(
            fed.blocks[0].headers.path().as_deref(),
            Some("/google.bytestream.ByteStream/Read")
        );

        // The server raises the client's frame size limit, then answers trailers-only.
        let mut server = settings(&[(crate::h2::settings::MAX_FRAME_SIZE, 1 << 20)]);
        server.extend(build::grpc_trailers_only(
            StreamId(1),
            5,
            "not found",
            build::BlockLimits::default(),
        ));
        let fed = conversation.feed(DOWN, &server).expect("valid");
        assert_eq!(fed.blocks[0].role, BlockRole::Response);
        assert!(fed.blocks[0].end_stream);
        assert_eq!(conversation.reader(UP).max_frame_size(), 1 << 20);
        let stream = conversation.tracker().stream(StreamId(1)).expect("kept");
        assert!(stream.is_closed());
        assert_eq!(stream.grpc_status(), Some(5));
        assert_eq!(stream.data_bytes, [3, 0]);
    }

    #[test]
    fn an_hpack_error_stops_the_conversation_at_the_block() {
        let mut conversation = Conversation::new();
        let mut client = PREFACE.to_vec();
        let block_at = client.len() as u64;
        let mut bad = crate::h2::frame::FrameHeader {
            length: 1,
            kind: FrameType::Headers,
            flags: crate::h2::frame::FLAG_END_HEADERS,
            stream: StreamId(1),
        }
        .to_bytes()
        .to_vec();
        bad.push(0xbe); // index 62: empty dynamic table
        client.extend(bad);
        let error = conversation.feed(UP, &client).unwrap_err();
        assert_eq!(error.offset, block_at);
        assert!(matches!(error.kind, FrameError::Hpack(_)));
        assert_eq!(conversation.feed(DOWN, &[]).unwrap_err(), error);
    }

    #[test]
    fn table_size_settings_reach_the_other_directions_decoder() {
        let mut conversation = Conversation::new();
        // The client allows the server's encoder 8 KiB of table.
        let mut client = PREFACE.to_vec();
        client.extend(settings(&[(crate::h2::settings::HEADER_TABLE_SIZE, 8192)]));
        conversation.feed(UP, &client).expect("valid");
        conversation.feed(UP, &[]).expect("still fine");
        // The server uses it: size update to 8192 then :status 200.
        let mut server = Vec::new();
        let block = [0x3f, 0xe1, 0x3f, 0x88];
        server.extend(
            crate::h2::frame::FrameHeader {
                length: block.len() as u32,
                kind: FrameType::Headers,
                flags: crate::h2::frame::FLAG_END_HEADERS,
                stream: StreamId(1),
            }
            .to_bytes(),
        );
        server.extend(block);
        let fed = conversation.feed(DOWN, &server).expect("allowed");
        assert_eq!(fed.blocks[0].role, BlockRole::Orphan);
        assert!(fed.blocks[0].touches_table);
        assert_eq!(conversation.decoder(DOWN).table().max_size(), 8192);
    }

    use crate::h2::hpack_bomb::{headers_frame, references_block};

    /// The client's side of an "HPACK bomb" under the per-block limit: stream 1 inserts a
    /// 4,000-byte entry, then each of `streams` requests is three static fields and 62
    /// references to it (a 65-byte block decoding to 250 KB, under the 256 KiB list limit).
    fn sub_limit_bomb(streams: u32) -> Vec<u8> {
        crate::h2::hpack_bomb::client(streams, 62)
    }

    /// Requests that stay open keep their lists: past the budget the conversation stops at the
    /// block (not copied), having held no more than the budget; 1,000 such streams held 500 MB.
    #[test]
    fn header_lists_of_open_streams_stop_at_the_budget() {
        let mut conversation = Conversation::new();
        let client = sub_limit_bomb(1000);
        let error = conversation.feed(UP, &client).unwrap_err();
        let FrameError::HeaderBudget {
            stream,
            kept,
            budget,
        } = error.kind
        else {
            panic!("{error}");
        };
        assert_eq!(budget, DEFAULT_HEADER_BUDGET);
        assert!(kept <= budget && kept > budget - 256 * 1024, "{kept}");
        // Stream 1 and 16 bombs of 250,207 bytes fit in 4 MiB; the 17th does not.
        assert_eq!(stream, StreamId(3 + 2 * 16));
        assert!(error.to_string().contains("past 4194304 bytes"), "{error}");
    }

    /// Streams that close release their lists: the same bombs answered one by one never
    /// reach the budget, and the tracker holds only what open streams keep.
    #[test]
    fn closed_streams_release_their_lists_when_pruned() {
        let mut conversation = Conversation::new().with_header_budget(1 << 20);
        let client = sub_limit_bomb(100);
        let fed = conversation
            .feed(UP, &client[..PREFACE.len()])
            .expect("preface");
        assert_eq!(fed.consumed, PREFACE.len());
        let mut rest = &client[PREFACE.len()..];
        let mut stream = 1;
        while !rest.is_empty() {
            let len = 9 + u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
            conversation
                .feed(UP, &rest[..len])
                .expect("within the budget");
            rest = &rest[len..];
            let answer = headers_frame(stream, &[0x88]);
            conversation.feed(DOWN, &answer).expect("a 200");
            conversation.tracker_mut().prune_closed();
            assert_eq!(conversation.tracker().headers_kept(), 0);
            stream += 2;
        }
        // Unanswered, four of them pass 1 MiB.
        let again = conversation.feed(UP, &sub_limit_bomb(0)[PREFACE.len()..]);
        assert!(again.is_ok(), "a new insert is 4 KB");
        let mut more = Vec::new();
        let bomb = references_block(62);
        for i in 0..5 {
            more.extend(headers_frame(1001 + 2 * i, &bomb));
        }
        let error = conversation.feed(UP, &more).unwrap_err();
        assert!(
            matches!(error.kind, FrameError::HeaderBudget { .. }),
            "{error}"
        );
    }
}
