//! Decodes conversations recorded from real HTTP/2 stacks (grpcio, curl/nghttp2) end to end: frames, HPACK, streams, gRPC, ByteStream.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::bytestream::{
    QueryWriteStatusResponse, ReadRequest, ReadResponse, WriteRequest, WriteResponse,
};
use super::conversation::Conversation;
use super::error::Direction;
use super::frame::StreamId;
use super::grpc::{Message, MessageAssembler};
use super::reader::PieceKind;
use super::resource_name::{DigestFunction, DigestGuess, ResourceName};
use super::tracker::BlockRole;

const GRPCIO: &[u8] = include_bytes!("../../tests/fixtures/h2/grpcio-bytestream.h2rec");
const CURL: &[u8] = include_bytes!("../../tests/fixtures/h2/curl-grpc-query.h2rec");

/// Splits a `.h2rec` file into (direction, chunk) records.
fn records(mut raw: &[u8]) -> Vec<(Direction, &[u8])> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let direction = match raw[0] {
            0 => Direction::ClientToUpstream,
            1 => Direction::UpstreamToClient,
            other => panic!("bad direction byte {other}"),
        };
        let len = u32::from_be_bytes(raw[1..5].try_into().expect("4 bytes")) as usize;
        out.push((direction, &raw[5..5 + len]));
        raw = &raw[5 + len..];
    }
    out
}

/// Everything the tests look at, gathered by feeding a recording the way a pump would.
struct Replay {
    conversation: Conversation,
    /// Whole gRPC messages per (direction, stream), bodies kept up to 1 MiB.
    messages: BTreeMap<(usize, StreamId), Vec<Message>>,
    /// Total bytes per direction and bytes labelled by pieces.
    total: [u64; 2],
    labelled: [u64; 2],
    /// Header blocks per direction that changed the dynamic table (real encoders index).
    table_blocks: [usize; 2],
    /// (stream, role, end_stream) of every block, in order.
    roles: Vec<(StreamId, BlockRole, bool)>,
}

fn replay(recording: &[u8]) -> Replay {
    let mut conversation = Conversation::new();
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut assemblers: BTreeMap<(usize, StreamId), MessageAssembler> = BTreeMap::new();
    let mut messages: BTreeMap<(usize, StreamId), Vec<Message>> = BTreeMap::new();
    let mut total = [0u64; 2];
    let mut labelled = [0u64; 2];
    let mut table_blocks = [0usize; 2];
    let mut roles = Vec::new();
    for (direction, chunk) in records(recording) {
        let d = direction.index();
        total[d] += chunk.len() as u64;
        pending[d].extend_from_slice(chunk);
        let fed = conversation
            .feed(direction, &pending[d])
            .unwrap_or_else(|e| panic!("real traffic must decode: {e}"));
        let base = conversation.reader(direction).offset() - fed.consumed as u64;
        for piece in &fed.pieces {
            assert_eq!(piece.start, labelled[d], "pieces are contiguous");
            labelled[d] += piece.len as u64;
            if let PieceKind::Data { stream, offset } = piece.kind {
                let at = (piece.start - base) as usize;
                let bytes = &pending[d][at..at + piece.len];
                let assembler = assemblers
                    .entry((d, stream))
                    .or_insert_with(|| MessageAssembler::new(1 << 20));
                let done = assembler.feed(offset, bytes).expect("valid gRPC framing");
                messages.entry((d, stream)).or_default().extend(done);
            }
        }
        for block in &fed.blocks {
            table_blocks[d] += usize::from(block.touches_table);
            roles.push((block.stream, block.role, block.end_stream));
        }
        pending[d].drain(..fed.consumed);
    }
    assert!(
        pending.iter().all(Vec::is_empty),
        "nothing left deferred at the end"
    );
    Replay {
        conversation,
        messages,
        total,
        labelled,
        table_blocks,
        roles,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn grpcio_bytestream_conversation_decodes_fully() {
    let replay = replay(GRPCIO);
    assert_eq!(replay.labelled, replay.total, "every byte labelled once");
    let tracker = replay.conversation.tracker();
    let streams: Vec<_> = tracker.streams().collect();
    assert_eq!(streams.len(), 5, "2 reads, write, query, failed read");
    assert!(streams.iter().all(|s| s.is_closed()));

    let up = Direction::ClientToUpstream.index();
    let down = Direction::UpstreamToClient.index();
    let mut reads = Vec::new();
    for stream in &streams {
        let request = stream.request.as_ref().expect("request headers");
        assert_eq!(request.method().as_deref(), Some("POST"));
        assert!(request.is_grpc());
        assert_eq!(request.scheme().as_deref(), Some("http"));
        assert!(request.authority().is_some());
        assert_eq!(stream.status(), Some(200));
        let path = request.path().expect(":path");
        let sent = replay
            .messages
            .get(&(up, stream.id))
            .cloned()
            .unwrap_or_default();
        let received = replay
            .messages
            .get(&(down, stream.id))
            .cloned()
            .unwrap_or_default();
        match path.as_str() {
            "/google.bytestream.ByteStream/Read" => {
                let read = ReadRequest::parse(&sent[0].body).expect("ReadRequest");
                let mut data = Vec::new();
                for message in &received {
                    let response = ReadResponse::parse(&message.body).expect("ReadResponse");
                    data.extend_from_slice(&message.body[response.data]);
                }
                reads.push((read, data, stream.grpc_status(), stream.grpc_message()));
            }
            "/google.bytestream.ByteStream/Write" => {
                assert_eq!(sent.len(), 3);
                let mut uploaded = Vec::new();
                let mut name = None;
                for message in &sent {
                    let write = WriteRequest::parse(&message.body).expect("WriteRequest");
                    assert_eq!(write.write_offset as usize, uploaded.len());
                    name = name.or(Some(write.resource_name.clone()).filter(|n| !n.is_empty()));
                    uploaded.extend_from_slice(&message.body[write.data]);
                }
                let name =
                    ResourceName::parse(&name.expect("first request names it")).expect("valid");
                assert_eq!(name.instance_name, "main");
                assert!(name.upload_id.is_some());
                assert_eq!(name.size as usize, uploaded.len());
                assert_eq!(sha256_hex(&uploaded), name.hash);
                let response = WriteResponse::parse(&received[0].body).expect("WriteResponse");
                assert_eq!(response.committed_size, 100_000);
                assert_eq!(stream.grpc_status(), Some(0));
            }
            "/google.bytestream.ByteStream/QueryWriteStatus" => {
                let status = QueryWriteStatusResponse::parse(&received[0].body).expect("response");
                assert_eq!(status.committed_size, 100_000);
                assert!(status.complete);
            }
            other => panic!("unexpected call {other}"),
        }
    }

    assert_eq!(reads.len(), 3);
    let mut found = 0;
    for (request, data, status, message) in reads {
        let name = ResourceName::parse(&request.resource_name).expect("valid name");
        if request.resource_name.contains(&"0".repeat(64)) {
            // The missing blob: trailers-only NOT_FOUND, no DATA.
            assert_eq!(status, Some(5));
            assert!(message.expect("grpc-message").contains("no blob"));
            assert!(data.is_empty());
            continue;
        }
        found += 1;
        assert_eq!(status, Some(0));
        assert_eq!(
            name.digest(),
            DigestGuess::Ambiguous(vec![DigestFunction::Sha256, DigestFunction::Blake3])
        );
        if request.read_offset == 0 {
            assert_eq!(data.len() as u64, name.size);
            assert_eq!(sha256_hex(&data), name.hash, "the whole blob verifies");
        } else {
            assert_eq!((request.read_offset, request.read_limit), (1000, 5000));
            assert_eq!(data.len(), 5000);
        }
    }
    assert_eq!(found, 2);
    // Exactly one trailers-only answer (the missing blob); four responses followed by trailers.
    let trailers_only = replay
        .roles
        .iter()
        .filter(|(_, role, end)| *role == BlockRole::Response && *end)
        .count();
    let trailers = replay
        .roles
        .iter()
        .filter(|(_, role, _)| *role == BlockRole::Trailers)
        .count();
    assert_eq!((trailers_only, trailers), (1, 4));
    assert!(
        replay.table_blocks.iter().all(|&n| n > 0),
        "grpcio indexes headers"
    );
    assert!(tracker.settings(Direction::UpstreamToClient).unacknowledged == 0);
}

#[test]
fn curl_nghttp2_request_decodes_fully() {
    let replay = replay(CURL);
    assert_eq!(replay.labelled, replay.total);
    let tracker = replay.conversation.tracker();
    let stream = tracker.stream(StreamId(1)).expect("curl uses stream 1");
    let request = stream.request.as_ref().expect("request");
    assert_eq!(
        request.path().as_deref(),
        Some("/google.bytestream.ByteStream/QueryWriteStatus")
    );
    assert!(request
        .get_str("user-agent")
        .is_some_and(|ua| ua.starts_with("curl/")));
    assert_eq!(request.get_str("te").as_deref(), Some("trailers"));
    assert_eq!(stream.grpc_status(), Some(0));
    assert!(stream.is_closed());
    let up = Direction::ClientToUpstream.index();
    let sent = &replay.messages[&(up, StreamId(1))];
    assert_eq!(sent.len(), 1);
    let query = super::bytestream::QueryWriteStatusRequest::parse(&sent[0].body).expect("valid");
    assert!(ResourceName::parse(&query.resource_name).is_ok());
    let down = Direction::UpstreamToClient.index();
    let answer = &replay.messages[&(down, StreamId(1))][0];
    // Not an upload: nothing committed, all fields at their defaults (an empty message).
    assert_eq!(
        QueryWriteStatusResponse::parse(&answer.body),
        Ok(QueryWriteStatusResponse::default())
    );
    assert!(replay.table_blocks[down] > 0 && replay.table_blocks[up] > 0);
}

/// Real traffic with seeded random corruption: every variant either decodes or stops with an
/// error, never panics, and the pieces always account for the bytes consumed.
#[test]
fn corrupted_real_traffic_fails_cleanly() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10);
    let original = records(GRPCIO);
    for _ in 0..200 {
        let mut conversation = Conversation::new();
        let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let mut labelled = [0u64; 2];
        for (direction, chunk) in &original {
            let d = direction.index();
            let mut chunk = chunk.to_vec();
            if rng.gen_bool(0.05) {
                let at = rng.gen_range(0..chunk.len());
                chunk[at] ^= 1 << rng.gen_range(0..8);
            }
            pending[d].extend_from_slice(&chunk);
            let Ok(fed) = conversation.feed(*direction, &pending[d]) else {
                break;
            };
            let sum: usize = fed.pieces.iter().map(|p| p.len).sum();
            assert_eq!(sum, fed.consumed);
            labelled[d] += sum as u64;
            assert_eq!(conversation.reader(*direction).offset(), labelled[d]);
            pending[d].drain(..fed.consumed);
        }
    }
}
