//! The HTTP/2 session over conversations recorded from real stacks (grpcio ByteStream, curl):
//! replayed through the session the way the two pumps drive it (held-back tails, outboxes
//! flushed when a direction is woken), the output of each direction re-read as HTTP/2.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::{RunCounters, RunView, Session, SessionPlan};
use crate::direction::Direction;
use crate::fault::plan::Step;
use crate::h2::{Control, Conversation, ErrorCode, PieceKind, StreamId};
use crate::scenario::schema::Protocol;
use crate::scenario::Scenario;
use crate::session::detect::Setup;

const GRPCIO: &[u8] = include_bytes!("../../tests/fixtures/h2/grpcio-bytestream.h2rec");
const CURL: &[u8] = include_bytes!("../../tests/fixtures/h2/curl-grpc-query.h2rec");

fn records(mut raw: &[u8]) -> Vec<(Direction, Vec<u8>)> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let direction = if raw[0] == 0 {
            Direction::ClientToUpstream
        } else {
            Direction::UpstreamToClient
        };
        let len = u32::from_be_bytes(raw[1..5].try_into().expect("4 bytes")) as usize;
        out.push((direction, raw[5..5 + len].to_vec()));
        raw = &raw[5 + len..];
    }
    out
}

/// What came out of each direction, and how each direction ended (if a step ended it).
struct Output {
    bytes: [Vec<u8>; 2],
    /// What was written, in the order it was written (direction, bytes).
    events: Vec<(usize, Vec<u8>)>,
    input: [Vec<u8>; 2],
    ended: [Option<Step>; 2],
    marks: Vec<String>,
}

/// Applies a plan over `chunk` like the pump: returns the carried tail.
fn apply(plan: SessionPlan, chunk: &[u8], out: &mut Output, d: usize) -> Vec<u8> {
    let mut at = 0;
    let covered: usize = plan.steps.iter().map(Step::chunk_len).sum();
    for step in plan.steps {
        match step {
            Step::Send { len, mark, .. } => {
                out.bytes[d].extend_from_slice(&chunk[at..at + len]);
                out.events.push((d, chunk[at..at + len].to_vec()));
                at += len;
                out.marks.extend(mark.map(|m| m.note));
            }
            Step::Skip { len } => at += len,
            Step::Insert { bytes, mark, .. } => {
                out.bytes[d].extend_from_slice(&bytes);
                out.events.push((d, bytes.to_vec()));
                out.marks.extend(mark.map(|m| m.note));
            }
            terminal => {
                out.ended[d] = Some(terminal);
                return Vec::new();
            }
        }
    }
    assert_eq!(covered + plan.deferred, chunk.len(), "every byte accounted");
    chunk[covered..].to_vec()
}

/// Replays `recording` through a fresh auto-detecting session under `rules`, re-chunking each
/// record into pieces of `piece` bytes.
fn replay(recording: &[u8], rules: &str, piece: usize) -> Output {
    let scenario = Arc::new(Scenario::from_toml(rules, "t.toml", "t").expect("valid"));
    let counters = RunCounters::new();
    let run = RunView {
        scenario: &scenario,
        counters: &counters,
    };
    let now = Instant::now();
    let mut session = Session::new(Setup {
        protocol: Protocol::Auto,
        forward: false,
        seed: 1,
        facts: crate::scenario::ConnectionFacts::ordinal(1),
        opened: now,
    });
    let mut out = Output {
        bytes: [Vec::new(), Vec::new()],
        events: Vec::new(),
        input: [Vec::new(), Vec::new()],
        ended: [None, None],
        marks: Vec::new(),
    };
    let mut carry: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for (direction, record) in records(recording) {
        let d = direction.index();
        out.input[d].extend_from_slice(&record);
        for part in record.chunks(piece) {
            if out.ended[d].is_some() {
                break;
            }
            let mut chunk = std::mem::take(&mut carry[d]);
            chunk.extend_from_slice(part);
            let plan = session.plan(direction, &chunk, now, run);
            carry[d] = apply(plan, &chunk, &mut out, d);
            // A woken direction plans what it holds.
            for other in Direction::ALL {
                let o = other.index();
                if other != direction && session.wants_flush(other) && out.ended[o].is_none() {
                    let held = std::mem::take(&mut carry[o]);
                    let plan = session.plan(other, &held, now, run);
                    carry[o] = apply(plan, &held, &mut out, o);
                }
            }
        }
    }
    out
}

/// Both directions' output re-read, in the order it was written, by a fresh conversation:
/// (direction, stream, piece) for every control frame and DATA piece; the conversation after.
fn reread(out: &Output) -> (Vec<(Direction, StreamId, PieceKind)>, Conversation) {
    let mut conversation = Conversation::new();
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut frame_stream = [StreamId(0), StreamId(0)];
    let mut seen = Vec::new();
    for (d, bytes) in &out.events {
        let direction = Direction::ALL[*d];
        pending[*d].extend_from_slice(bytes);
        let fed = conversation
            .feed(direction, &pending[*d])
            .unwrap_or_else(|e| panic!("{direction} output must be valid HTTP/2: {e}"));
        pending[*d].drain(..fed.consumed);
        for piece in fed.pieces {
            match &piece.kind {
                PieceKind::Header(header) => frame_stream[*d] = header.stream,
                PieceKind::Control(_) | PieceKind::Data { .. } => {
                    seen.push((direction, frame_stream[*d], piece.kind))
                }
                _ => {}
            }
        }
    }
    assert!(
        pending.iter().all(Vec::is_empty),
        "output ends on frame boundaries"
    );
    (seen, conversation)
}

#[test]
fn without_rules_both_directions_pass_byte_for_byte_however_chunked() {
    for (piece, recording) in [
        (1, CURL),
        (13, GRPCIO),
        (4096, GRPCIO),
        (usize::MAX, GRPCIO),
        (usize::MAX, CURL),
    ] {
        {
            let out = replay(
                recording,
                "[[rule]]\nmatch = { path = \"/nothing\" }\nfault.truncate = { after = 1 }\n",
                piece,
            );
            assert_eq!(out.bytes, out.input, "piece size {piece}");
            assert!(out.ended.iter().all(Option::is_none));
        }
    }
}

#[test]
fn rst_stream_cuts_one_read_and_the_others_complete() {
    let out = replay(
        GRPCIO,
        r#"
[[rule]]
match = { path = "/google.bytestream.ByteStream/Read", request = 1, direction = "upstream->client" }
fault.rst_stream = { after = "1KiB", code = "CANCEL" }
"#,
        1000,
    );
    assert!(
        out.ended.iter().all(Option::is_none),
        "the connection lives on"
    );
    let (frames, _) = reread(&out);
    let to_client: Vec<(StreamId, PieceKind)> = frames
        .iter()
        .filter(|(d, _, _)| *d == Direction::UpstreamToClient)
        .map(|(_, s, k)| (*s, k.clone()))
        .collect();
    let resets: Vec<StreamId> = to_client
        .iter()
        .filter_map(|(stream, kind)| match kind {
            PieceKind::Control(Control::RstStream { code }) => {
                assert_eq!(*code, ErrorCode::CANCEL);
                Some(*stream)
            }
            _ => None,
        })
        .collect();
    assert_eq!(resets.len(), 1, "one stream reset toward the client");
    let cut = resets[0];
    let mut data: BTreeMap<StreamId, usize> = BTreeMap::new();
    for (stream, kind) in &to_client {
        if let PieceKind::Data { .. } = kind {
            *data.entry(*stream).or_default() += 1;
        }
    }
    let to_upstream: Vec<(StreamId, PieceKind)> = frames
        .iter()
        .filter(|(d, _, _)| *d == Direction::ClientToUpstream)
        .map(|(_, s, k)| (*s, k.clone()))
        .collect();
    let upstream_resets = to_upstream
        .iter()
        .filter(|(stream, kind)| {
            *stream == cut && matches!(kind, PieceKind::Control(Control::RstStream { .. }))
        })
        .count();
    assert_eq!(upstream_resets, 1, "the upstream is told too");
    let credit = to_upstream.iter().any(|(stream, kind)| {
        stream.is_connection() && matches!(kind, PieceKind::Control(Control::WindowUpdate { .. }))
    });
    assert!(credit, "discarded DATA is credited back to the upstream");
    assert!(
        out.marks
            .iter()
            .any(|m| m.contains("reset the stream (CANCEL)")),
        "{:?}",
        out.marks
    );
}

#[test]
fn grpc_status_answers_the_first_attempt_from_faultline() {
    let out = replay(
        GRPCIO,
        r#"
[[rule]]
match = { path = "/google.bytestream.ByteStream/QueryWriteStatus", attempt = 1 }
fault.grpc_status = { code = 14, message = "try again" }
"#,
        usize::MAX,
    );
    assert!(
        out.marks.iter().any(|m| m.contains("grpc-status 14")),
        "{:?}",
        out.marks
    );
    // Both outputs stay valid HTTP/2 and the client gets the trailers-only answer.
    let (_, conversation) = reread(&out);
    let answered = conversation
        .tracker()
        .streams()
        .filter(|s| s.grpc_status() == Some(14))
        .count();
    assert_eq!(answered, 1, "one call answered UNAVAILABLE");
}

/// Replays `(direction, bytes)` records through a fresh auto session under `rules`.
fn replay_records(records: Vec<(Direction, Vec<u8>)>, rules: &str) -> Output {
    let mut raw = Vec::new();
    for (direction, bytes) in records {
        raw.push(if direction == Direction::ClientToUpstream {
            0
        } else {
            1
        });
        raw.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        raw.extend_from_slice(&bytes);
    }
    replay(&raw, rules, usize::MAX)
}

#[test]
fn an_accepted_h2c_upgrade_hands_the_connection_to_the_http2_session() {
    use crate::h2::build::{headers, settings_ack, BlockLimits};
    use crate::h2::frame::PREFACE;
    use crate::h2::HeaderList;
    let settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
    let upgrade = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n".to_vec();
    let mut switched =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    switched.extend_from_slice(&settings);
    let status = HeaderList::from_pairs([(":status", "200")]);
    switched.extend(headers(StreamId(1), &status, true, BlockLimits::default()));
    let mut client = PREFACE.to_vec();
    client.extend_from_slice(&settings);
    client.extend_from_slice(&settings_ack());
    let request = HeaderList::from_pairs([
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "h"),
        (":path", "/x"),
    ]);
    client.extend(headers(StreamId(3), &request, true, BlockLimits::default()));
    let out = replay_records(
        vec![
            (Direction::ClientToUpstream, upgrade.clone()),
            (Direction::UpstreamToClient, switched.clone()),
            (Direction::ClientToUpstream, client.clone()),
            (Direction::UpstreamToClient, settings_ack().to_vec()),
        ],
        "[[rule]]\nmatch = { path = \"/x\" }\nfault.respond = { status = 503 }\n",
    );
    assert!(
        out.marks.iter().any(|m| m.contains("answered 503")),
        "the rule acted on HTTP/2 stream 3 after the upgrade: {:?}",
        out.marks
    );
    // The upstream never heard of stream 3 (its request block touched no HPACK table).
    let client_h2_without_stream_3 = PREFACE.len() + 2 * settings.len();
    assert_eq!(
        out.bytes[0].len(),
        upgrade.len() + client_h2_without_stream_3
    );
    // What the client received parses as the 101 then HTTP/2 with a 503 on stream 3.
    let to_client = &out.bytes[1];
    assert!(to_client.starts_with(b"HTTP/1.1 101"));
    let h2_start = switched.len()
        - settings.len()
        - headers(StreamId(1), &status, true, BlockLimits::default()).len();
    assert!(
        client.starts_with(&out.bytes[0][upgrade.len()..]),
        "the client's HTTP/2 reached the upstream as sent, up to the answered request"
    );
    // Read as the client sees its own connection: its request, then what came back.
    let mut conversation = crate::h2::Conversation::upgraded(HeaderList::default());
    conversation
        .feed(Direction::ClientToUpstream, &client)
        .expect("the client's HTTP/2");
    conversation
        .feed(Direction::UpstreamToClient, &to_client[h2_start..])
        .expect("valid HTTP/2 toward the client");
    let answered = conversation
        .tracker()
        .streams()
        .find(|s| s.id == StreamId(3))
        .and_then(|s| s.status());
    assert_eq!(answered, Some(503));
}
