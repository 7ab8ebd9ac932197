//! Fuzzes the HTTP/2 frame reader, HPACK decoder, stream tracker, refusing server and gRPC/ByteStream readers on arbitrary bytes.
//!
//! Beyond "no panic", it checks the property the proxy relies on: the frame reader labels every
//! byte it consumes exactly once, in order, and what it does not consume is a deferred tail that
//! the next call starts with.
#![no_main]

use faultline::direction::Direction;
use faultline::h2::bytestream::{ReadRequest, ReadResponse, WriteRequest};
use faultline::h2::frame::PREFACE;
use faultline::h2::grpc::MessageAssembler;
use faultline::h2::hpack::Decoder;
use faultline::h2::refusing_server::RefusingServer;
use faultline::h2::resource_name::ResourceName;
use faultline::h2::{Conversation, PieceKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    // The same bytes as standalone HPACK blocks: reaches the decoder without valid framing.
    // Every other block under a small list limit, so the limit's early stop runs mid-block
    // (the decoder's table must stay consistent after it).
    let mut decoder = Decoder::new();
    for (n, block) in rest.split(|&b| b == 0xff).take(8).enumerate() {
        let _ = match n % 2 {
            0 => decoder.decode(block),
            _ => decoder.decode_within(block, usize::from(control) * 16),
        };
    }
    for text in rest.split(|&b| b == 0).take(4) {
        let _ = ResourceName::parse(&String::from_utf8_lossy(text));
        let _ = ReadRequest::parse(text);
        let _ = WriteRequest::parse(text);
        let _ = ReadResponse::parse(text);
    }

    // Split into the two directions; prepend the preface most of the time so frames are reached.
    let cut = (usize::from(control) * rest.len()) / 255;
    let (client, server) = rest.split_at(cut.min(rest.len()));
    let mut client_bytes = Vec::new();
    if control & 1 == 0 {
        client_bytes.extend_from_slice(PREFACE);
    }
    client_bytes.extend_from_slice(client);
    let step = usize::from(control % 13) + 1;

    // The server faultline speaks to an h2 client whose upstream failed answers any bytes.
    let mut refusing = RefusingServer::new("fuzz");
    for chunk in client_bytes.chunks(step) {
        if refusing.feed(chunk).is_err() {
            break;
        }
    }

    // A small header budget half the time, so the budget's stop is reached too.
    let mut conversation = match control & 2 {
        0 => Conversation::new(),
        _ => Conversation::new().with_header_budget(usize::from(control) * 64),
    };
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut labelled = [0u64; 2];
    let mut assembler = MessageAssembler::new(4096);
    let sources = [client_bytes.as_slice(), server];
    let mut positions = [0usize; 2];
    let mut failed = false;
    while !failed && (positions[0] < sources[0].len() || positions[1] < sources[1].len()) {
        for direction in Direction::ALL {
            let d = direction.index();
            let end = (positions[d] + step * (d + 1)).min(sources[d].len());
            pending[d].extend_from_slice(&sources[d][positions[d]..end]);
            positions[d] = end;
            let Ok(fed) = conversation.feed(direction, &pending[d]) else {
                failed = true;
                break;
            };
            assert!(fed.consumed <= pending[d].len());
            let base = labelled[d];
            for piece in &fed.pieces {
                assert_eq!(piece.start, labelled[d], "contiguous");
                labelled[d] += piece.len as u64;
                if let PieceKind::Data { stream, offset } = piece.kind {
                    if stream.0 == 1 && direction == Direction::ClientToUpstream {
                        let at = (piece.start - base) as usize;
                        let _ = assembler.feed(offset, &pending[d][at..at + piece.len]);
                    }
                }
            }
            assert_eq!(
                labelled[d] - base,
                fed.consumed as u64,
                "each consumed byte labelled once"
            );
            assert_eq!(conversation.reader(direction).offset(), labelled[d]);
            pending[d].drain(..fed.consumed);
        }
    }
    if !failed {
        for direction in Direction::ALL {
            let d = direction.index();
            assert_eq!(
                labelled[d] + pending[d].len() as u64,
                sources[d].len() as u64,
                "labelled plus deferred is everything fed"
            );
        }
    }
    for stream in conversation.tracker().streams() {
        let _ = stream.state();
        let _ = stream.grpc_status();
    }
    conversation.tracker_mut().prune_closed();
});
