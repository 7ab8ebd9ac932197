//! The HTTP/2 session over conversations recorded from real stacks (grpcio ByteStream, curl):
//! replayed through the session the way the two pumps drive it (held-back tails, outboxes
//! flushed when a direction is woken), the output of each direction re-read as HTTP/2.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::{RunCounters, RunView, Session, SessionPlan};
use crate::direction::Direction;
use crate::fault::plan::Step;
use crate::h2::build;
use crate::h2::frame::{FLAG_END_HEADERS, FLAG_END_STREAM, PREFACE};
use crate::h2::{Control, Conversation, ErrorCode, FrameType, PieceKind, StreamId};
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
    /// Bytes faultline wrote without a mark (nothing in the capture would say why).
    unmarked: Vec<Vec<u8>>,
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
                if mark.is_none() && !bytes.is_empty() {
                    out.unmarked.push(bytes.to_vec());
                }
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
    replay_records(recording, rules, piece, usize::MAX).0
}

/// Like [`replay`], for the first `limit` records only; also returns the session, the scenario
/// and the instant every chunk arrived at.
fn replay_records(
    recording: &[u8],
    rules: &str,
    piece: usize,
    limit: usize,
) -> (Output, Session, Arc<Scenario>, Instant) {
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
        unmarked: Vec::new(),
    };
    let mut carry: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for (direction, record) in records(recording).into_iter().take(limit) {
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
    (out, session, scenario, now)
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

#[test]
fn every_frame_faultline_writes_carries_a_mark_and_credit_is_merged() {
    for rules in [
        r#"
[[rule]]
match = { path = "/google.bytestream.ByteStream/Read", request = 1, direction = "upstream->client" }
fault.rst_stream = { after = "1KiB", code = "CANCEL" }
"#,
        r#"
[[rule]]
match = { path = "/google.bytestream.ByteStream/Read", request = 1, direction = "upstream->client" }
fault.truncate = { after = 1500 }
"#,
        r#"
[[rule]]
match = { path = "/google.bytestream.ByteStream/*", attempt = 1 }
fault.grpc_status = { code = 14 }
"#,
    ] {
        let out = replay(GRPCIO, rules, 1000);
        assert!(
            out.unmarked.is_empty(),
            "{} frame(s) without a mark under {rules}: {:?}",
            out.unmarked.len(),
            out.unmarked
        );
        let (frames, _) = reread(&out);
        let credits = frames
            .iter()
            .filter(|(d, stream, kind)| {
                *d == Direction::ClientToUpstream
                    && stream.is_connection()
                    && matches!(kind, PieceKind::Control(Control::WindowUpdate { .. }))
            })
            .count();
        let credit_notes = out
            .marks
            .iter()
            .filter(|m| m.starts_with("WINDOW_UPDATE"))
            .count();
        assert!(
            credit_notes <= credits,
            "each credit note is one WINDOW_UPDATE: {credit_notes} notes, {credits} frames"
        );
    }
}

#[test]
fn a_reset_at_a_time_arms_on_a_response_rule_and_never_fires_after_the_stream_ended() {
    let total = records(GRPCIO).len();
    for direction in ["client->upstream", "upstream->client", "both"] {
        let rules = format!(
            r#"
[[rule]]
match = {{ path = "/google.bytestream.ByteStream/Read", request = 1, direction = "{direction}" }}
fault.rst_stream = {{ at = "1s" }}
"#
        );
        // While the read is open, a timer is due one second after it opened.
        let armed = (1..total).any(|limit| {
            let (_, session, scenario, now) = replay_records(GRPCIO, &rules, usize::MAX, limit);
            session.next_deadline(&scenario) == Some(now + std::time::Duration::from_secs(1))
        });
        assert!(armed, "direction {direction}: the timer was never armed");
        // Once the read ended by itself, nothing is due and a late tick sends nothing.
        let (out, mut session, scenario, now) =
            replay_records(GRPCIO, &rules, usize::MAX, usize::MAX);
        assert!(out.marks.is_empty(), "{:?}", out.marks);
        assert_eq!(session.next_deadline(&scenario), None, "{direction}");
        session.tick(now + std::time::Duration::from_secs(2), &scenario);
        for d in Direction::ALL {
            assert!(
                !session.wants_flush(d),
                "{direction}: a reset after the end"
            );
        }
    }
}

#[test]
fn a_goaway_that_closes_counts_its_rule_once() {
    let out = replay(
        GRPCIO,
        "[[rule]]\nfault.goaway = { after_streams = 1, graceful = false }\n",
        usize::MAX,
    );
    let goaways = out.marks.iter().filter(|m| m.starts_with("GOAWAY")).count();
    assert_eq!(goaways, 2, "one GOAWAY to each peer: {:?}", out.marks);
    // The close rides the direction of the upstream's GOAWAY, after it.
    match &out.ended[Direction::ClientToUpstream.index()] {
        Some(Step::End { mark, .. }) => assert!(
            mark.rule.is_none() && mark.note.contains("closed after the GOAWAY"),
            "the close is a follow-up, not a second firing: {mark:?}"
        ),
        other => panic!("the connection closes after the GOAWAY: {other:?}"),
    }
}

/// Regression (user trial): the upstream's GOAWAY waited in the outbox of the idle
/// client->upstream direction while the close rode the other direction and won, so the
/// upstream sometimes got no GOAWAY. Now each peer's GOAWAY is written before the close, in
/// the plans themselves, whichever direction plans first.
#[test]
fn a_goaway_that_closes_reaches_both_peers_before_the_close() {
    for limit in 1..=records(GRPCIO).len() {
        let (out, _, _, _) = replay_records(
            GRPCIO,
            "[[rule]]\nfault.goaway = { after_streams = 1, graceful = false }\n",
            usize::MAX,
            limit,
        );
        if out.ended.iter().all(Option::is_none) {
            continue;
        }
        assert!(
            out.ended[Direction::UpstreamToClient.index()].is_none(),
            "the close comes after the upstream's GOAWAY, in its direction"
        );
        for d in Direction::ALL {
            let goaways = frames_of(
                &out.bytes[d.index()][if d == Direction::ClientToUpstream {
                    PREFACE.len()
                } else {
                    0
                }..],
            )
            .into_iter()
            .filter(|f| f.0 == FrameType::Goaway)
            .count();
            assert_eq!(
                goaways, 1,
                "{d} got its GOAWAY before the close ({limit} records)"
            );
        }
    }
}

/// What the client was sent per stream, in order: DATA bytes, RST_STREAM, and header blocks
/// with END_STREAM (the call's end, e.g. grpc-status trailers).
#[derive(Debug, Default)]
struct ToClient {
    data: BTreeMap<StreamId, usize>,
    /// (stream, what) in the order the client got them: "rst" or "end".
    events: Vec<(StreamId, &'static str)>,
}

/// What the client was sent, reading `events` (direction index, bytes) in the order they were
/// written: each direction's SETTINGS raise the limits of the other.
fn to_client(events: &[(usize, Vec<u8>)]) -> ToClient {
    let mut conversation = Conversation::new();
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut stream = [StreamId(0), StreamId(0)];
    let mut seen = ToClient::default();
    for (d, bytes) in events {
        let direction = Direction::ALL[*d];
        pending[*d].extend_from_slice(bytes);
        let fed = conversation
            .feed(direction, &pending[*d])
            .unwrap_or_else(|e| panic!("{direction} must be valid HTTP/2: {e}"));
        pending[*d].drain(..fed.consumed);
        if direction != Direction::UpstreamToClient {
            continue;
        }
        for (i, piece) in fed.pieces.iter().enumerate() {
            match &piece.kind {
                PieceKind::Header(header) => stream[*d] = header.stream,
                PieceKind::Data { .. } => *seen.data.entry(stream[*d]).or_default() += piece.len,
                PieceKind::Control(Control::RstStream { .. }) => {
                    seen.events.push((stream[*d], "rst"))
                }
                _ => {}
            }
            if let Some(block) = fed.blocks.iter().find(|b| b.piece == i) {
                if block.end_stream {
                    seen.events.push((block.stream, "end"));
                }
            }
        }
    }
    seen
}

#[test]
fn a_stream_stalled_for_good_never_ends_as_a_success_for_the_client() {
    let recorded: Vec<(usize, Vec<u8>)> = records(GRPCIO)
        .into_iter()
        .map(|(d, bytes)| (d.index(), bytes))
        .collect();
    let sent = to_client(&recorded);
    for request in [1, 2] {
        let out = replay(
            GRPCIO,
            &format!(
                r#"
[[rule]]
match = {{ path = "/google.bytestream.ByteStream/Read", request = {request}, direction = "upstream->client" }}
fault.stall = {{ after = "1KiB" }}
"#
            ),
            usize::MAX,
        );
        let got = to_client(&out.events);
        let cut: Vec<StreamId> = got
            .data
            .iter()
            .filter(|(id, n)| sent.data.get(id).is_some_and(|all| all > n))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(cut.len(), 1, "read {request}: one stream stalled: {got:?}");
        let events: Vec<&str> = got
            .events
            .iter()
            .filter(|(id, _)| *id == cut[0])
            .map(|(_, what)| *what)
            .collect();
        // Either nothing more (the stall holds) or a reset before the end it must still see.
        assert!(
            events.is_empty() || events.first() == Some(&"rst"),
            "read {request}: the stalled stream's end reached the client as a success: {events:?}"
        );
    }
}

/// Replays `(direction, bytes)` records through a fresh auto session under `rules`.
fn replay_list(records: Vec<(Direction, Vec<u8>)>, rules: &str) -> Output {
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
    let out = replay_list(
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

/// Regression: grpcio's server sends its SETTINGS (a 4 MiB maximum frame size) the moment it
/// accepts, before the client's preface. Those bytes are relayed while the protocol is being
/// detected; the session must read them before the client's next chunk, or a client DATA frame
/// above 16 KiB looks oversized and the connection falls back to raw bytes (and rules stop).
#[test]
fn server_settings_sent_before_the_client_spoke_govern_the_client_frames() {
    use crate::h2::build::{data_header, headers, settings_ack, BlockLimits};
    use crate::h2::frame::PREFACE;
    use crate::h2::HeaderList;
    // SETTINGS_MAX_FRAME_SIZE (0x5) = 4 MiB.
    let server_settings = [0u8, 0, 6, 4, 0, 0, 0, 0, 0, 0, 5, 0, 0x40, 0, 0];
    let mut client = PREFACE.to_vec();
    client.extend_from_slice(&[0u8, 0, 0, 4, 0, 0, 0, 0, 0]);
    client.extend_from_slice(&settings_ack());
    let request = HeaderList::from_pairs([
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "h"),
        (":path", "/up"),
    ]);
    client.extend(headers(
        StreamId(1),
        &request,
        false,
        BlockLimits::default(),
    ));
    let body = vec![7u8; 32 * 1024];
    client.extend_from_slice(&data_header(StreamId(1), body.len() as u32, true));
    client.extend_from_slice(&body);
    let out = replay_list(
        vec![
            (Direction::UpstreamToClient, server_settings.to_vec()),
            (Direction::ClientToUpstream, client.clone()),
        ],
        "[[rule]]\nmatch = { path = \"/up\" }\nfault.truncate = { after = \"1000\" }\n",
    );
    assert!(
        out.marks.iter().any(|m| m.contains("truncate")),
        "the rule still acted on the 32 KiB frame: {:?}",
        out.marks
    );
    assert!(
        out.bytes[0].len() < client.len(),
        "the DATA was cut, not relayed raw"
    );
    // The client got the server's SETTINGS once, then what faultline owed it (credit for the
    // dropped DATA, RST_STREAM); nothing of the early bytes twice.
    assert!(out.bytes[1].starts_with(&server_settings));
    assert!(!out.bytes[1][server_settings.len()..].starts_with(&server_settings[..9]));
}

/// The frames of `bytes` (one direction, whole frames), as (type, flags, stream).
fn frames_of(mut bytes: &[u8]) -> Vec<(FrameType, u8, u32)> {
    let mut frames = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
        frames.push((FrameType::from_u8(bytes[3]), bytes[4], stream));
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    frames
}

/// An empty SETTINGS frame.
const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

fn client_hello() -> Vec<u8> {
    [&PREFACE[..], &SETTINGS[..]].concat()
}

/// A server answers a complete request at once, racing the cancel; its answer would reach a
/// client whose stream faultline's own answer already ended (a connection error for strict
/// clients). So the upstream gets the call incomplete, then cancelled.
#[test]
fn an_answered_get_reaches_the_upstream_incomplete_then_cancelled() {
    let out = replay_list(
        vec![
            (
                Direction::ClientToUpstream,
                [client_hello(), build::indexed_get(StreamId(1), "/teapot")].concat(),
            ),
            (Direction::UpstreamToClient, SETTINGS.to_vec()),
        ],
        "[[rule]]\nmatch = { path = \"/teapot\" }\nfault.respond = { status = 418 }\n",
    );
    let upstream = frames_of(&out.bytes[Direction::ClientToUpstream.index()][PREFACE.len()..]);
    let on_stream: Vec<_> = upstream.iter().filter(|f| f.2 == 1).collect();
    assert_eq!(on_stream.len(), 2, "{upstream:?}");
    assert_eq!(on_stream[0].0, FrameType::Headers);
    assert_eq!(on_stream[0].1 & FLAG_END_STREAM, 0, "END_STREAM cleared");
    assert_eq!(on_stream[1].0, FrameType::RstStream);
    assert!(
        out.marks.iter().any(|m| m.contains("END_STREAM cleared")),
        "{:?}",
        out.marks
    );
    // The client gets faultline's whole answer.
    let client = frames_of(&out.bytes[Direction::UpstreamToClient.index()]);
    assert!(
        client
            .iter()
            .any(|f| f.2 == 1 && f.1 & FLAG_END_STREAM != 0),
        "{client:?}"
    );
}

/// The point of `drop_response` is that the client never learns the answer: its stream is
/// reset, and the response block never follows (a frame after the reset is an error at a strict
/// client), even though it changed the client's table.
#[test]
fn a_dropped_response_is_reset_before_its_header_block_reaches_the_client() {
    // `:status 200` (static index 8), then `server: test` added to the client's table.
    let mut response = vec![0, 0, 0, 1, FLAG_END_HEADERS, 0, 0, 0, 1, 0x88, 0x40, 6];
    response.extend_from_slice(b"server");
    response.extend_from_slice(&[4]);
    response.extend_from_slice(b"test");
    response[2] = (response.len() - 9) as u8;
    let out = replay_list(
        vec![
            (
                Direction::ClientToUpstream,
                [client_hello(), build::indexed_get(StreamId(1), "/put")].concat(),
            ),
            (
                Direction::UpstreamToClient,
                [SETTINGS.to_vec(), response].concat(),
            ),
        ],
        "[[rule]]\nmatch = { path = \"/put\" }\nfault.drop_response = {}\n",
    );
    let client = frames_of(&out.bytes[Direction::UpstreamToClient.index()]);
    let on_stream: Vec<_> = client.iter().filter(|f| f.2 == 1).map(|f| f.0).collect();
    assert_eq!(on_stream, [FrameType::RstStream], "{client:?}");
}

/// The blocks of the client's side of `out`, decoded as the client decodes them, and the
/// client's decoder after them.
fn client_blocks(out: &Output) -> (Vec<crate::h2::DecodedBlock>, Conversation) {
    let mut conversation = Conversation::new();
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut blocks = Vec::new();
    for (d, bytes) in &out.events {
        let direction = Direction::ALL[*d];
        pending[*d].extend_from_slice(bytes);
        let fed = conversation
            .feed(direction, &pending[*d])
            .unwrap_or_else(|e| panic!("{direction} output must be valid HTTP/2: {e}"));
        pending[*d].drain(..fed.consumed);
        if direction == Direction::UpstreamToClient {
            blocks.extend(fed.blocks);
        }
    }
    (blocks, conversation)
}

/// nginx answers a GET the moment its HEADERS arrive, so a call faultline answered gets a late
/// answer, whose block changed the client's table. The client saw the stream end (RFC 9113
/// §5.1: nothing of it may follow), so the block, its DATA and the upstream's RST_STREAM are
/// withheld, and the later blocks reach the client in a form that needs none of the entries it
/// lacks, the first one carrying the table size update the withheld block had.
#[test]
fn a_late_answer_to_an_answered_call_is_withheld_and_later_blocks_still_decode() {
    let upstream = Direction::UpstreamToClient;
    // Size update to 100, `:status 200` (static 8), `server: test` added to the table.
    let mut late = vec![0x3f, 0x45, 0x88, 0x40, 6];
    late.extend_from_slice(b"server");
    late.push(4);
    late.extend_from_slice(b"test");
    let late = [
        build::frame(FrameType::Headers, FLAG_END_HEADERS, StreamId(1), &late),
        build::frame(FrameType::Data, FLAG_END_STREAM, StreamId(1), b"late"),
        build::rst_stream(StreamId(1), ErrorCode::NO_ERROR),
    ]
    .concat();
    // Stream 3's answer: `:status 200` and the dynamic entry `server: test` (index 62).
    let next = build::frame(
        FrameType::Headers,
        FLAG_END_HEADERS | FLAG_END_STREAM,
        StreamId(3),
        &[0x88, 0xbe],
    );
    let out = replay_list(
        vec![
            (
                Direction::ClientToUpstream,
                [client_hello(), build::indexed_get(StreamId(1), "/teapot")].concat(),
            ),
            (upstream, [SETTINGS.to_vec(), late].concat()),
            (
                Direction::ClientToUpstream,
                build::indexed_get(StreamId(3), "/next"),
            ),
            (upstream, next),
        ],
        "[[rule]]\nmatch = { path = \"/teapot\" }\nfault.respond = { status = 418 }\n",
    );
    let client = frames_of(&out.bytes[upstream.index()]);
    let on_1: Vec<_> = client
        .iter()
        .filter(|f| f.2 == 1)
        .map(|f| (f.0, f.1))
        .collect();
    assert_eq!(
        on_1,
        [
            (FrameType::Headers, FLAG_END_HEADERS),
            (FrameType::Data, FLAG_END_STREAM)
        ],
        "only faultline's answer on stream 1: {client:?}"
    );
    let (blocks, conversation) = client_blocks(&out);
    let on_3 = blocks
        .iter()
        .find(|b| b.stream == StreamId(3))
        .expect("stream 3 answered");
    assert_eq!(on_3.headers.status(), Some(200));
    assert_eq!(on_3.headers.get_str("server").as_deref(), Some("test"));
    assert!(on_3.end_stream);
    assert_eq!(
        on_3.size_updates,
        [100],
        "the withheld size update is carried"
    );
    assert_eq!(conversation.decoder(upstream).table().max_size(), 100);
    assert!(
        out.marks.iter().any(|m| m.contains("withheld")),
        "{:?}",
        out.marks
    );
    assert!(
        out.marks.iter().any(|m| m.contains("re-encoded")),
        "{:?}",
        out.marks
    );
    assert!(out.unmarked.is_empty(), "{:?}", out.unmarked);
}

/// A gRPC call's request headers without END_STREAM, on `stream`, for `path`.
fn grpc_call(stream: u32, path: &str) -> Vec<u8> {
    let list = crate::h2::HeaderList::from_pairs([
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "example"),
        ("content-type", "application/grpc"),
    ]);
    build::headers(
        StreamId(stream),
        &list,
        false,
        build::BlockLimits::default(),
    )
}

/// One gRPC message (`body`) ending the request of `stream`.
fn grpc_message(stream: u32, body: &[u8]) -> Vec<u8> {
    let mut payload = vec![0];
    payload.extend_from_slice(&(body.len() as u32).to_be_bytes());
    payload.extend_from_slice(body);
    build::frame(FrameType::Data, FLAG_END_STREAM, StreamId(stream), &payload)
}

/// gRPC rules decide at the first request message. An upstream that answers before it comes
/// is answered over by faultline (the client gets one answer, faultline's); one that already
/// reset the stream toward the client keeps faultline from answering at all (a note says so).
#[test]
fn a_call_the_upstream_answered_first_gets_one_answer_only() {
    let rules = "[[rule]]\nname = \"down\"\nmatch = { path = \"/s/M\" }\nfault.grpc_status = { code = 14 }\n";
    let answered = replay_list(
        vec![
            (
                Direction::ClientToUpstream,
                [client_hello(), grpc_call(1, "/s/M")].concat(),
            ),
            (
                Direction::UpstreamToClient,
                [
                    SETTINGS.to_vec(),
                    build::frame(
                        FrameType::Headers,
                        FLAG_END_HEADERS | FLAG_END_STREAM,
                        StreamId(1),
                        &[0x88, 0x40, 1, b'k', 1, b'v'],
                    ),
                ]
                .concat(),
            ),
            (Direction::ClientToUpstream, grpc_message(1, b"hi")),
        ],
        rules,
    );
    let (blocks, _) = client_blocks(&answered);
    let on_1: Vec<_> = blocks.iter().filter(|b| b.stream == StreamId(1)).collect();
    assert_eq!(on_1.len(), 1, "{on_1:?}");
    assert_eq!(
        on_1[0].headers.get_str("grpc-status").as_deref(),
        Some("14")
    );

    // An upstream that reset the stream: nothing more reaches the client on it.
    let refused = replay_list(
        vec![
            (
                Direction::ClientToUpstream,
                [client_hello(), grpc_call(1, "/s/M")].concat(),
            ),
            (
                Direction::UpstreamToClient,
                [
                    SETTINGS.to_vec(),
                    build::rst_stream(StreamId(1), ErrorCode::REFUSED_STREAM),
                ]
                .concat(),
            ),
            (Direction::ClientToUpstream, grpc_message(1, b"hi")),
        ],
        rules,
    );
    let client = frames_of(&refused.bytes[Direction::UpstreamToClient.index()]);
    let on_1: Vec<_> = client.iter().filter(|f| f.2 == 1).map(|f| f.0).collect();
    assert_eq!(on_1, [FrameType::RstStream], "{client:?}");
    // An upstream that ended its side without a header block (the fuzzer's case): faultline
    // cannot answer after that END_STREAM, and says so.
    let ended = replay_list(
        vec![
            (
                Direction::ClientToUpstream,
                [client_hello(), grpc_call(1, "/s/M")].concat(),
            ),
            (
                Direction::UpstreamToClient,
                [
                    SETTINGS.to_vec(),
                    build::frame(FrameType::Data, FLAG_END_STREAM, StreamId(1), b""),
                ]
                .concat(),
            ),
            (Direction::ClientToUpstream, grpc_message(1, b"hi")),
        ],
        rules,
    );
    let client = frames_of(&ended.bytes[Direction::UpstreamToClient.index()]);
    let on_1: Vec<_> = client.iter().filter(|f| f.2 == 1).map(|f| f.0).collect();
    assert_eq!(on_1, [FrameType::Data], "{client:?}");
    assert!(
        ended
            .marks
            .iter()
            .any(|m| m.contains("not answered by faultline")),
        "{:?}",
        ended.marks
    );
}

/// A request block (literals without indexing: it changes no HPACK table) ending its stream.
fn request(stream: u32, method: &str, path: &str) -> Vec<u8> {
    let list = crate::h2::HeaderList::from_pairs([
        (":method", method),
        (":scheme", "http"),
        (":path", path),
        (":authority", "example"),
    ]);
    build::headers(StreamId(stream), &list, true, build::BlockLimits::default())
}

/// A `respond` rule on `path` answering `status` with a body of `len` bytes.
fn respond_rule(path: &str, status: u16, len: usize) -> String {
    format!(
        "[[rule]]\nmatch = {{ path = \"{path}\" }}\nfault.respond = {{ status = {status}, body = \"{}\" }}\n",
        "x".repeat(len)
    )
}

/// The frames of the client's side, re-read by a strict reader (a frame above the client's
/// maximum frame size is an error there): (type, flags, stream, payload length).
fn client_frames(out: &Output) -> Vec<(FrameType, u8, u32, usize)> {
    let _ = to_client(&out.events);
    let mut frames = Vec::new();
    let mut bytes = &out.bytes[Direction::UpstreamToClient.index()][..];
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
        frames.push((FrameType::from_u8(bytes[3]), bytes[4], stream, len));
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    frames
}

/// DATA payload bytes the client got on `stream`, and whether the last DATA ended it.
fn data_to_client(out: &Output, stream: u32) -> (usize, bool) {
    let data: Vec<_> = client_frames(out)
        .into_iter()
        .filter(|f| f.0 == FrameType::Data && f.2 == stream)
        .collect();
    let total = data.iter().map(|f| f.3).sum();
    let ended = data.last().is_some_and(|f| f.1 & FLAG_END_STREAM != 0);
    (total, ended)
}

/// Regression (user trial): a 40,000-byte `respond` body went out as one DATA frame, above the
/// 16,384 bytes every client accepts unless it says more (curl and python-h2 failed the whole
/// connection with FRAME_SIZE_ERROR).
#[test]
fn an_answer_body_is_cut_at_the_clients_maximum_frame_size() {
    let out = replay_list(
        vec![
            (
                Direction::ClientToUpstream,
                [client_hello(), request(1, "GET", "/big")].concat(),
            ),
            (Direction::UpstreamToClient, SETTINGS.to_vec()),
        ],
        &respond_rule("/big", 200, 40_000),
    );
    let data: Vec<usize> = client_frames(&out)
        .into_iter()
        .filter(|f| f.0 == FrameType::Data && f.2 == 1)
        .map(|f| f.3)
        .collect();
    assert_eq!(data, [16_384, 16_384, 7_232]);
    assert_eq!(data_to_client(&out, 1), (40_000, true));
    assert!(out.unmarked.is_empty(), "{:?}", out.unmarked.len());
}

/// A body larger than the client's windows goes out as far as they reach, and the rest after
/// the client's WINDOW_UPDATEs; the connection credit that acknowledges faultline's own DATA
/// never reaches the upstream (which never sent those bytes).
#[test]
fn an_answer_body_waits_for_the_clients_window_and_its_credit_stays_here() {
    let hello = [client_hello(), request(1, "GET", "/big")].concat();
    let rules = respond_rule("/big", 200, 100_000);
    let first = replay_list(
        vec![
            (Direction::ClientToUpstream, hello.clone()),
            (Direction::UpstreamToClient, SETTINGS.to_vec()),
        ],
        &rules,
    );
    assert_eq!(
        data_to_client(&first, 1),
        (65_535, false),
        "the default windows"
    );
    let credit = [
        build::window_updates(StreamId::CONNECTION, 65_535),
        build::window_updates(StreamId(1), 65_535),
    ]
    .concat();
    let out = replay_list(
        vec![
            (Direction::ClientToUpstream, hello),
            (Direction::UpstreamToClient, SETTINGS.to_vec()),
            (Direction::ClientToUpstream, credit),
        ],
        &rules,
    );
    assert_eq!(data_to_client(&out, 1), (100_000, true));
    let upstream = frames_of(&out.bytes[Direction::ClientToUpstream.index()][PREFACE.len()..]);
    assert!(
        !upstream.iter().any(|f| f.0 == FrameType::WindowUpdate),
        "credit for faultline's DATA reached the upstream: {upstream:?}"
    );
    assert!(
        out.marks
            .iter()
            .any(|m| m.contains("wait for the client's WINDOW_UPDATE")),
        "{:?}",
        out.marks
    );
}

/// Regression (user trial): after four 16 KiB answers from faultline, the client's
/// WINDOW_UPDATEs for them reached the upstream, which then believed it had 64 KiB more window
/// than the client granted and overran it (FLOW_CONTROL_ERROR at python-h2). Only the part of a
/// connection WINDOW_UPDATE beyond faultline's own DATA goes on, rewritten.
#[test]
fn connection_credit_for_faultlines_own_data_is_kept_from_the_upstream() {
    let mut records = vec![
        (Direction::ClientToUpstream, client_hello()),
        (Direction::UpstreamToClient, SETTINGS.to_vec()),
    ];
    for i in 0..4 {
        let id = 1 + 2 * i;
        records.push((
            Direction::ClientToUpstream,
            request(id, "GET", "/small.txt"),
        ));
        // What python-h2 sends once it read a body: connection and stream credit.
        // The last acknowledges only part of its body yet.
        let acknowledged = if i == 3 { 10_000 } else { 16_384 };
        records.push((
            Direction::ClientToUpstream,
            [
                build::window_updates(StreamId::CONNECTION, acknowledged),
                build::window_updates(StreamId(id), 16_384),
            ]
            .concat(),
        ));
    }
    // More credit than faultline's DATA: the rest is the upstream's.
    records.push((
        Direction::ClientToUpstream,
        build::window_updates(StreamId::CONNECTION, 70_000),
    ));
    let out = replay_list(records, &respond_rule("/small.txt", 200, 16_384));
    for i in 0..4 {
        assert_eq!(data_to_client(&out, 1 + 2 * i), (16_384, true));
    }
    let upstream = &out.bytes[Direction::ClientToUpstream.index()][PREFACE.len()..];
    let updates: Vec<_> = frames_of(upstream)
        .into_iter()
        .filter(|f| f.0 == FrameType::WindowUpdate)
        .collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].2, 0);
    let tail = &upstream[upstream.len() - 4..];
    assert_eq!(
        u32::from_be_bytes(tail.try_into().expect("4 bytes")),
        70_000 - (16_384 - 10_000),
        "+70,000 less the 6,384 bytes of faultline's DATA it acknowledges"
    );
}

/// Regression (issue 10): python-h2 acknowledges only at half its window, so 30,000 bytes of
/// faultline's own answer stay unacknowledged and the upstream believes the client's connection
/// window 30,000 bytes larger than it is. The upstream's whole-window burst on the next stream
/// goes on only as far as the client's real window (35,535 bytes: two frames); the rest waits,
/// in order, for the client's WINDOW_UPDATE, and never overruns the client.
#[test]
fn upstream_data_never_passes_the_clients_real_window_after_faultlines_own() {
    let response = build::headers(
        StreamId(3),
        &crate::h2::HeaderList::from_pairs([(":status", "200")]),
        false,
        build::BlockLimits::default(),
    );
    let burst: Vec<u8> = [16_384usize, 16_384, 16_384, 16_383]
        .iter()
        .enumerate()
        .flat_map(|(i, &len)| {
            let mut frame = build::data_header(StreamId(3), len as u32, i == 3).to_vec();
            frame.extend(std::iter::repeat_n(b'u', len));
            frame
        })
        .collect();
    // A frame of no stream after the burst: it keeps its place behind the DATA that waits.
    let ping = build::frame(FrameType::Ping, 0, StreamId(0), b"pingpong");
    let mut records = vec![
        (
            Direction::ClientToUpstream,
            [
                client_hello(),
                request(1, "GET", "/small"),
                request(3, "GET", "/big"),
            ]
            .concat(),
        ),
        (
            Direction::UpstreamToClient,
            [SETTINGS.to_vec(), response, burst, ping.clone()].concat(),
        ),
    ];
    let rules = respond_rule("/small", 200, 30_000);
    let before = replay_list(records.clone(), &rules);
    assert_eq!(data_to_client(&before, 1), (30_000, true));
    assert_eq!(
        data_to_client(&before, 3),
        (32_768, false),
        "65,535 granted, 30,000 of it spent on faultline's DATA: two frames fit"
    );
    assert!(
        before
            .marks
            .iter()
            .any(|m| m.contains("held by faultline until the client's WINDOW_UPDATE")),
        "{:?}",
        before.marks
    );
    // What python-h2 sends once it read half its window: connection credit.
    records.push((
        Direction::ClientToUpstream,
        build::window_updates(StreamId::CONNECTION, 32_768),
    ));
    let pings = |out: &Output| {
        client_frames(out)
            .iter()
            .filter(|f| f.0 == FrameType::Ping)
            .count()
    };
    assert_eq!(pings(&before), 0, "the PING waits behind the DATA");
    let after = replay_list(records, &rules);
    assert_eq!(data_to_client(&after, 3), (65_535, true));
    let last = client_frames(&after).last().map(|f| f.0);
    assert_eq!(last, Some(FrameType::Ping), "the PING follows the DATA");
    let to_client: usize = client_frames(&after)
        .iter()
        .filter(|f| f.0 == FrameType::Data)
        .map(|f| f.3)
        .sum();
    assert!(
        to_client <= 65_535 + 32_768,
        "{to_client} bytes of DATA, past the client's window"
    );
    assert!(
        after.marks.iter().any(|m| m.contains("made room")),
        "{:?}",
        after.marks
    );
    assert!(after.unmarked.is_empty(), "{:?}", after.unmarked.len());
}

/// Regression (user trial): a `respond` with 204 or 304, or to a HEAD, sent a body (curl:
/// PROTOCOL_ERROR). As on HTTP/1: none for 204/205/304 (no length for a 204 or 304), the length only for
/// a HEAD, END_STREAM on the HEADERS.
#[test]
fn answers_without_a_body_end_on_their_headers() {
    for (method, status, length) in [
        ("HEAD", 200, Some("30")),
        ("GET", 204, None),
        ("GET", 205, Some("0")),
        ("GET", 304, None),
    ] {
        let out = replay_list(
            vec![
                (
                    Direction::ClientToUpstream,
                    [client_hello(), request(1, method, "/x")].concat(),
                ),
                (Direction::UpstreamToClient, SETTINGS.to_vec()),
            ],
            &if status == 200 {
                respond_rule("/x", status, 30)
            } else {
                format!("[[rule]]\nmatch = {{ path = \"/x\" }}\nfault.respond = {{ status = {status} }}\n")
            },
        );
        let on_stream: Vec<_> = client_frames(&out)
            .into_iter()
            .filter(|f| f.2 == 1)
            .collect();
        assert_eq!(on_stream.len(), 1, "{method} {status}: {on_stream:?}");
        assert_eq!(on_stream[0].0, FrameType::Headers);
        assert_ne!(on_stream[0].1 & FLAG_END_STREAM, 0, "{method} {status}");
        let (blocks, _) = client_blocks(&out);
        let headers = &blocks.last().expect("the answer").headers;
        assert_eq!(headers.status(), Some(status));
        assert_eq!(
            headers.get_str("content-length").as_deref(),
            length,
            "{method} {status}"
        );
    }
}

/// Regression (user trial): after faultline's graceful GOAWAY (last stream 1), a stream the
/// client opened anyway reached the upstream, which ran it: a call the client retried elsewhere
/// ran twice. RFC 9113 §6.8: it is refused, and never forwarded.
#[test]
fn a_stream_opened_after_a_graceful_goaway_is_refused_and_never_forwarded() {
    let out = replay_list(
        vec![
            (
                Direction::ClientToUpstream,
                [client_hello(), request(1, "GET", "/a")].concat(),
            ),
            (Direction::UpstreamToClient, SETTINGS.to_vec()),
            (
                Direction::ClientToUpstream,
                [
                    build::indexed_get(StreamId(3), "/b"),
                    build::window_updates(StreamId(3), 100),
                    build::rst_stream(StreamId(3), ErrorCode::CANCEL),
                ]
                .concat(),
            ),
        ],
        "[[rule]]\nfault.goaway = { after_streams = 1 }\n",
    );
    let upstream = frames_of(&out.bytes[Direction::ClientToUpstream.index()][PREFACE.len()..]);
    assert!(
        upstream.iter().all(|f| f.2 != 3),
        "nothing of stream 3 reaches the upstream: {upstream:?}"
    );
    assert!(
        upstream.iter().any(|f| f.2 == 1),
        "stream 1 does: {upstream:?}"
    );
    let client = client_frames(&out);
    assert!(client.iter().any(|f| f.0 == FrameType::Goaway));
    let refused: Vec<_> = client
        .iter()
        .filter(|f| f.2 == 3 && f.0 == FrameType::RstStream)
        .collect();
    assert_eq!(refused.len(), 1, "{client:?}");
    let bytes = &out.bytes[Direction::UpstreamToClient.index()];
    let at = bytes
        .windows(9)
        .position(|w| w[3] == FrameType::RstStream.as_u8() && w[5..9] == [0, 0, 0, 3])
        .expect("the RST_STREAM");
    assert_eq!(
        bytes[at + 9..at + 13],
        ErrorCode::REFUSED_STREAM.0.to_be_bytes()
    );
    assert!(
        out.marks.iter().any(|m| m.contains("REFUSED_STREAM")
            && m.contains("never forwarded")
            && m.contains("HPACK")),
        "{:?}",
        out.marks
    );
}

/// A refused request whose block changed the HPACK table never reaches the upstream, so the
/// upstream's table stops mirroring the client's encoder: the client's later blocks (here
/// trailers of the stream in flight, naming the refused block's new entry by its index) reach
/// the upstream re-encoded without the dynamic table, and decode to what the client meant.
#[test]
fn client_blocks_after_a_refused_one_that_changed_the_table_still_decode_upstream() {
    let post = crate::h2::HeaderList::from_pairs([
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/upload"),
        (":authority", "example"),
    ]);
    let open = build::headers(StreamId(1), &post, false, build::BlockLimits::default());
    // Trailers of stream 1: dynamic index 62, the `x-trace: 1` stream 3's block inserted.
    let trailers = [
        vec![0, 0, 1, 1, FLAG_END_STREAM | FLAG_END_HEADERS, 0, 0, 0, 1],
        vec![0xbe],
    ]
    .concat();
    let out = replay_list(
        vec![
            (Direction::ClientToUpstream, [client_hello(), open].concat()),
            (Direction::UpstreamToClient, SETTINGS.to_vec()),
            (
                Direction::ClientToUpstream,
                build::indexed_get(StreamId(3), "/late"),
            ),
            (Direction::ClientToUpstream, trailers),
        ],
        "[[rule]]\nfault.goaway = { after_streams = 1 }\n",
    );
    let mut upstream = Conversation::new();
    let fed = upstream
        .feed(
            Direction::ClientToUpstream,
            &out.bytes[Direction::ClientToUpstream.index()],
        )
        .expect("the upstream reads what faultline sent it");
    assert!(fed.blocks.iter().all(|b| b.stream != StreamId(3)));
    let trailers = fed
        .blocks
        .iter()
        .find(|b| b.stream == StreamId(1) && b.end_stream)
        .expect("stream 1's trailers");
    assert_eq!(
        trailers.headers.get_str("x-trace").as_deref(),
        Some("1"),
        "{:?}",
        trailers.headers
    );
    assert!(
        out.marks.iter().any(|m| m.contains("re-encoded")),
        "{:?}",
        out.marks
    );
}

/// A POST of `/upload` on stream 1 that does not end with its headers (literals without
/// indexing: it changes no HPACK table).
fn open_post() -> Vec<u8> {
    let post = crate::h2::HeaderList::from_pairs([
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/upload"),
        (":authority", "example"),
    ]);
    build::headers(StreamId(1), &post, false, build::BlockLimits::default())
}

/// A DATA frame of `len` bytes on stream 1.
fn upload_data(len: usize, end: bool) -> Vec<u8> {
    let flags = if end { FLAG_END_STREAM } else { 0 };
    build::frame(FrameType::Data, flags, StreamId(1), &vec![b'u'; len])
}

/// The WINDOW_UPDATE increments sent toward the receiver of `direction`, per stream.
fn credit_to(out: &Output, direction: Direction) -> BTreeMap<u32, u64> {
    let (seen, _) = reread(out);
    let mut credit = BTreeMap::new();
    for (d, stream, kind) in seen {
        if let (true, PieceKind::Control(Control::WindowUpdate { increment })) =
            (d == direction, kind)
        {
            *credit.entry(stream.0).or_insert(0) += u64::from(increment);
        }
    }
    credit
}

/// The client's upload on stream 1 (five DATA frames of 16 KiB, 80 KiB in all: more than the
/// default stream window, so the client needs faultline's stream credit to finish it), with a
/// WINDOW_UPDATE on the stream between (the client's credit for the answer to come), after the
/// headers and the server's SETTINGS; `frames` of the DATA frames only.
fn upload_records(frames: usize) -> Vec<(Direction, Vec<u8>)> {
    let mut records = vec![
        (
            Direction::ClientToUpstream,
            [client_hello(), open_post()].concat(),
        ),
        (Direction::UpstreamToClient, SETTINGS.to_vec()),
    ];
    for n in 0..frames {
        records.push((Direction::ClientToUpstream, upload_data(16_384, n == 4)));
        if n == 1 {
            records.push((
                Direction::ClientToUpstream,
                build::window_updates(StreamId(1), 1_000),
            ));
        }
    }
    records
}

fn respond_after(after: &str) -> String {
    format!(
        "[[rule]]\nmatch = {{ path = \"/upload\" }}\nfault.respond = {{ status = 507, after = \"{after}\" }}\n"
    )
}

/// `respond` with `after = "request-body"` (the default) on HTTP/2 answers a request at its
/// END_STREAM, not at its headers: until then the client's DATA is dropped and both its
/// connection and its stream credit come back from faultline (80 KiB is more than the client's
/// stream window: without the stream credit it would stall), and the answer ends the stream
/// with no RST_STREAM after it (curl reported that as exit 92 mid-upload).
#[test]
fn respond_after_the_request_body_answers_at_its_end_and_returns_its_stream_credit() {
    let rules = respond_after("request-body");
    let before = replay_list(upload_records(4), &rules);
    let to_client = frames_of(&before.bytes[Direction::UpstreamToClient.index()]);
    assert!(
        !to_client
            .iter()
            .any(|f| f.2 == 1 && f.0 != FrameType::WindowUpdate),
        "nothing but credit on stream 1 before the request ended: {to_client:?}"
    );
    let credit = credit_to(&before, Direction::UpstreamToClient);
    assert_eq!(credit.get(&0), Some(&(4 * 16_384)), "{credit:?}");
    assert_eq!(credit.get(&1), Some(&(4 * 16_384)), "{credit:?}");

    let out = replay_list(upload_records(5), &rules);
    let to_client = frames_of(&out.bytes[Direction::UpstreamToClient.index()]);
    let on_stream: Vec<_> = to_client
        .iter()
        .filter(|f| f.2 == 1 && f.0 != FrameType::WindowUpdate)
        .collect();
    assert_eq!(on_stream.len(), 2, "HEADERS, then DATA: {to_client:?}");
    assert_eq!(on_stream[0].0, FrameType::Headers);
    assert_eq!(on_stream[1].0, FrameType::Data);
    assert_ne!(
        on_stream[1].1 & FLAG_END_STREAM,
        0,
        "the answer ends the stream"
    );
    let credit = credit_to(&out, Direction::UpstreamToClient);
    assert_eq!(credit.get(&0), Some(&(5 * 16_384)), "{credit:?}");
    // No stream credit for the frame that ended the stream.
    assert_eq!(credit.get(&1), Some(&(4 * 16_384)), "{credit:?}");
    let (blocks, _) = client_blocks(&out);
    let statuses: Vec<_> = blocks
        .iter()
        .filter(|b| b.stream == StreamId(1))
        .map(|b| b.headers.status())
        .collect();
    assert_eq!(statuses, [Some(507)]);
    // The upstream got nothing of the upload, nor the client's credit for the answer.
    let upstream = frames_of(&out.bytes[Direction::ClientToUpstream.index()][PREFACE.len()..]);
    assert!(
        !upstream.iter().any(|f| f.2 == 1),
        "stream 1 reached the upstream: {upstream:?}"
    );
    assert!(
        out.marks.iter().any(|m| m.contains("answered 507")
            && m.contains("at the request's end")
            && m.contains(&format!("{} bytes", 5 * 16_384))),
        "{:?}",
        out.marks
    );
    assert!(out.unmarked.is_empty(), "{:?}", out.unmarked);
}

/// Trailers end a request as END_STREAM on DATA does: the deferred answer follows them.
#[test]
fn respond_after_the_request_body_answers_after_its_trailers() {
    let trailers = build::headers(
        StreamId(1),
        &crate::h2::HeaderList::from_pairs([("x-sum", "1")]),
        true,
        build::BlockLimits::default(),
    );
    let mut records = upload_records(2);
    let before = replay_list(records.clone(), &respond_after("request-body"));
    let to_client = frames_of(&before.bytes[Direction::UpstreamToClient.index()]);
    assert!(!to_client.iter().any(|f| f.0 == FrameType::Headers));
    records.push((Direction::ClientToUpstream, trailers));
    let out = replay_list(records, &respond_after("request-body"));
    let to_client = frames_of(&out.bytes[Direction::UpstreamToClient.index()]);
    assert!(
        to_client
            .iter()
            .any(|f| f.0 == FrameType::Headers && f.2 == 1),
        "{to_client:?}"
    );
    assert!(
        !to_client.iter().any(|f| f.0 == FrameType::RstStream),
        "{to_client:?}"
    );
    let upstream = frames_of(&out.bytes[Direction::ClientToUpstream.index()][PREFACE.len()..]);
    assert!(!upstream.iter().any(|f| f.2 == 1), "{upstream:?}");
}

/// A client that resets its stream before its request ended is owed no answer: nothing more
/// reaches it on the stream, and the capture says why under the rule's mark.
#[test]
fn respond_after_the_request_body_owes_nothing_to_a_client_that_reset_first() {
    let mut records = upload_records(2);
    records.push((
        Direction::ClientToUpstream,
        build::rst_stream(StreamId(1), ErrorCode::CANCEL),
    ));
    records.push((Direction::UpstreamToClient, SETTINGS.to_vec()));
    let out = replay_list(records, &respond_after("request-body"));
    let to_client = frames_of(&out.bytes[Direction::UpstreamToClient.index()]);
    assert!(
        !to_client
            .iter()
            .any(|f| f.2 == 1 && f.0 != FrameType::WindowUpdate),
        "{to_client:?}"
    );
    assert!(
        out.marks
            .iter()
            .any(|m| m.contains("not answered by faultline") && m.contains("reset stream 1")),
        "{:?}",
        out.marks
    );
    let upstream = frames_of(&out.bytes[Direction::ClientToUpstream.index()][PREFACE.len()..]);
    assert!(!upstream.iter().any(|f| f.2 == 1), "{upstream:?}");
}

/// `after = "request-head"` keeps answering at the headers: the answer, then RST_STREAM
/// (NO_ERROR) because the request had not ended, and no stream credit for the DATA after.
#[test]
fn respond_after_the_request_head_answers_at_once_then_resets() {
    let out = replay_list(upload_records(3), &respond_after("request-head"));
    let to_client = frames_of(&out.bytes[Direction::UpstreamToClient.index()]);
    let on_stream: Vec<_> = to_client.iter().filter(|f| f.2 == 1).collect();
    assert_eq!(on_stream[0].0, FrameType::Headers, "{to_client:?}");
    assert!(
        on_stream.iter().any(|f| f.0 == FrameType::RstStream),
        "{to_client:?}"
    );
    assert!(
        !on_stream.iter().any(|f| f.0 == FrameType::WindowUpdate),
        "{to_client:?}"
    );
    let credit = credit_to(&out, Direction::UpstreamToClient);
    assert_eq!(credit.get(&0), Some(&(3 * 16_384)), "{credit:?}");
}

/// A request that ends with its headers (a GET) is answered at once under the default too.
#[test]
fn respond_after_the_request_body_answers_a_get_at_once() {
    let out = replay_list(
        vec![
            (
                Direction::ClientToUpstream,
                [client_hello(), request(1, "GET", "/upload")].concat(),
            ),
            (Direction::UpstreamToClient, SETTINGS.to_vec()),
        ],
        &respond_after("request-body"),
    );
    assert!(data_to_client(&out, 1).1);
    let to_client = frames_of(&out.bytes[Direction::UpstreamToClient.index()]);
    assert!(
        !to_client.iter().any(|f| f.0 == FrameType::RstStream),
        "{to_client:?}"
    );
}

/// Trailers that change the HPACK table, ending a request the upstream never heard of (faultline
/// answers it at its end): they must not reach the upstream (they would open a stream there),
/// and the client's later blocks, which may read the entry they added, still decode upstream.
#[test]
fn trailers_of_a_request_the_upstream_never_heard_of_stay_here_and_later_blocks_decode() {
    let mut trailers_block = vec![0x40, 5];
    trailers_block.extend_from_slice(b"x-sum");
    trailers_block.extend_from_slice(&[1, b'7']);
    let trailers = build::frame(
        FrameType::Headers,
        FLAG_END_STREAM | FLAG_END_HEADERS,
        StreamId(1),
        &trailers_block,
    );
    let get = crate::h2::HeaderList::from_pairs([
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/later"),
        (":authority", "example"),
    ]);
    let mut block = crate::h2::hpack_encode::encode_block(&get);
    block.push(0x80 | 62);
    let later = build::frame(
        FrameType::Headers,
        FLAG_END_STREAM | FLAG_END_HEADERS,
        StreamId(3),
        &block,
    );
    let mut records = upload_records(2);
    records.push((Direction::ClientToUpstream, trailers));
    records.push((Direction::ClientToUpstream, later));
    let out = replay_list(records, &respond_after("request-body"));
    let to_client = frames_of(&out.bytes[Direction::UpstreamToClient.index()]);
    assert!(
        to_client
            .iter()
            .any(|f| f.0 == FrameType::Headers && f.2 == 1),
        "answered at the trailers: {to_client:?}"
    );
    let mut upstream = Conversation::new();
    let fed = upstream
        .feed(
            Direction::ClientToUpstream,
            &out.bytes[Direction::ClientToUpstream.index()],
        )
        .expect("the upstream reads what faultline sent it");
    let frames = frames_of(&out.bytes[Direction::ClientToUpstream.index()][PREFACE.len()..]);
    assert!(!frames.iter().any(|f| f.2 == 1), "{frames:?}");
    let later = fed
        .blocks
        .iter()
        .find(|b| b.stream == StreamId(3))
        .expect("stream 3's request");
    assert_eq!(
        later.headers.get_str("x-sum").as_deref(),
        Some("7"),
        "{:?}",
        later.headers
    );
}

/// A client waiting for `100 Continue` before its body (`expect: 100-continue`) gets one from
/// faultline when it answers at the request's end, as on HTTP/1: the interim block, then, after
/// the body, the answer.
#[test]
fn respond_after_the_request_body_sends_100_continue_to_a_client_that_expects_it() {
    let post = crate::h2::HeaderList::from_pairs([
        (":method", "PUT"),
        (":scheme", "http"),
        (":path", "/upload"),
        (":authority", "example"),
        ("expect", "100-continue"),
    ]);
    let open = build::headers(StreamId(1), &post, false, build::BlockLimits::default());
    let records = vec![
        (Direction::ClientToUpstream, [client_hello(), open].concat()),
        (Direction::UpstreamToClient, SETTINGS.to_vec()),
        (Direction::ClientToUpstream, upload_data(100, true)),
    ];
    let first = replay_list(records[..2].to_vec(), &respond_after("request-body"));
    let (blocks, _) = client_blocks(&first);
    let statuses: Vec<_> = blocks.iter().map(|b| b.headers.status()).collect();
    assert_eq!(statuses, [Some(100)]);
    assert!(!blocks[0].end_stream);
    let out = replay_list(records, &respond_after("request-body"));
    let (blocks, _) = client_blocks(&out);
    let statuses: Vec<_> = blocks.iter().map(|b| b.headers.status()).collect();
    assert_eq!(statuses, [Some(100), Some(507)]);
    assert!(
        out.marks.iter().any(|m| m.contains("100 Continue")),
        "{:?}",
        out.marks
    );
}

/// Rules no request of the tests below matches: armed on the connection, never firing.
const NEVER_MATCHES: &str = "[[rule]]\nmatch = { method = \"GET\", direction = \"upstream->client\" }\nfault.rst_stream = { after = \"1MiB\" }\n";

/// The payload of one gRPC message of `len` body bytes, its bytes telling `stream` apart.
fn grpc_payload(stream: u32, len: usize) -> Vec<u8> {
    let mut payload = vec![0];
    payload.extend_from_slice(&(len as u32).to_be_bytes());
    payload.extend((0..len).map(|n| (n as u8).wrapping_mul(31) ^ stream as u8));
    payload
}

/// A DATA frame of `stream` without END_STREAM.
fn data_frame(stream: u32, payload: &[u8]) -> Vec<u8> {
    build::frame(FrameType::Data, 0, StreamId(stream), payload)
}

/// Found by a user trial (four concurrent grpcio client-streaming uploads of 64 KiB messages
/// hung until their deadline): gRPC rules decide at a call's first request message, and the
/// client direction waits at the first DATA frame of a call until that message is whole. A
/// client splits a message across DATA frames, other streams' frames between them; the wait
/// looked only at the frame it held, never at the later frames behind it that complete the
/// message, so nothing of the client reached the upstream again.
#[test]
fn a_first_message_split_across_frames_never_holds_the_client_direction() {
    let (m1, m3) = (grpc_payload(1, 20_000), grpc_payload(3, 40_000));
    let records = vec![
        (
            Direction::ClientToUpstream,
            [
                client_hello(),
                grpc_call(1, "/t.Svc/Upload"),
                grpc_call(3, "/t.Svc/Upload"),
            ]
            .concat(),
        ),
        (Direction::UpstreamToClient, SETTINGS.to_vec()),
        (
            Direction::ClientToUpstream,
            [
                data_frame(3, &m3[..16_384]),
                data_frame(1, &m1[..16_384]),
                data_frame(3, &m3[16_384..32_768]),
                data_frame(1, &m1[16_384..]),
                data_frame(3, &m3[32_768..]),
            ]
            .concat(),
        ),
    ];
    let mut raw = Vec::new();
    for (direction, bytes) in &records {
        raw.push(u8::from(*direction == Direction::UpstreamToClient));
        raw.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        raw.extend_from_slice(bytes);
    }
    for piece in [usize::MAX, 16_393, 1000, 7] {
        let out = replay(&raw, NEVER_MATCHES, piece);
        let c2u = Direction::ClientToUpstream.index();
        assert_eq!(
            out.bytes[c2u].len(),
            out.input[c2u].len(),
            "piece size {piece}: every client byte reaches the upstream"
        );
        assert_eq!(out.bytes, out.input, "piece size {piece}");
    }
}

/// A first message longer than the client's stream window (64 KiB by default; a 64 KiB gRPC
/// message is 65,541 bytes with its prefix) cannot come whole before the upstream reads some
/// of it and returns credit: rules decide on what came, at once.
#[test]
fn a_first_message_the_clients_window_cannot_take_is_decided_on_what_came() {
    let message = grpc_payload(1, 100_000);
    let window = 65_535;
    let first: Vec<u8> = message[..window]
        .chunks(16_384)
        .flat_map(|part| data_frame(1, part))
        .collect();
    let rest: Vec<u8> = message[window..]
        .chunks(16_384)
        .flat_map(|part| data_frame(1, part))
        .chain(build::frame(
            FrameType::Data,
            FLAG_END_STREAM,
            StreamId(1),
            &[],
        ))
        .collect();
    let hello = [client_hello(), grpc_call(1, "/t.Svc/Upload")].concat();
    let upstream = Direction::UpstreamToClient;
    let credit = [
        build::window_updates(StreamId::CONNECTION, 65_535),
        build::window_updates(StreamId(1), 65_535),
    ]
    .concat();
    let stopped = replay_list(
        vec![
            (Direction::ClientToUpstream, hello.clone()),
            (upstream, SETTINGS.to_vec()),
            (Direction::ClientToUpstream, first.clone()),
        ],
        NEVER_MATCHES,
    );
    assert_eq!(
        stopped.bytes, stopped.input,
        "all the client could send reached the upstream"
    );
    let whole = replay_list(
        vec![
            (Direction::ClientToUpstream, hello),
            (upstream, SETTINGS.to_vec()),
            (Direction::ClientToUpstream, first),
            (upstream, credit),
            (Direction::ClientToUpstream, rest),
        ],
        NEVER_MATCHES,
    );
    assert_eq!(whole.bytes, whole.input);
}

/// A client that pauses inside a first message (its windows would take the rest) holds the
/// client direction at most `FIRST_MESSAGE_WAIT`: a timer of the session decides on what came,
/// and the woken direction relays what it held.
#[test]
fn a_first_message_that_stops_coming_is_decided_on_when_its_wait_is_over() {
    let scenario = Arc::new(Scenario::from_toml(NEVER_MATCHES, "t.toml", "t").expect("valid"));
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
        unmarked: Vec::new(),
    };
    let c2u = Direction::ClientToUpstream;
    let message = grpc_payload(1, 1000);
    let hello = [client_hello(), grpc_call(1, "/t.Svc/Upload")].concat();
    let part = data_frame(1, &message[..100]);
    let plan = session.plan(c2u, &hello, now, run);
    assert!(apply(plan, &hello, &mut out, c2u.index()).is_empty());
    let settings = SETTINGS.to_vec();
    let plan = session.plan(Direction::UpstreamToClient, &settings, now, run);
    apply(
        plan,
        &settings,
        &mut out,
        Direction::UpstreamToClient.index(),
    );
    let plan = session.plan(c2u, &part, now, run);
    let carry = apply(plan, &part, &mut out, c2u.index());
    assert_eq!(carry, part, "the frame waits for the rest of its message");
    assert_eq!(out.bytes[c2u.index()], hello);
    let due = session
        .next_deadline(&scenario)
        .expect("a timer for the wait");
    assert_eq!(due, now + super::h2::FIRST_MESSAGE_WAIT);
    assert!(!session.wants_flush(c2u));
    session.tick(due, &scenario);
    assert!(session.wants_flush(c2u), "the client direction is woken");
    let plan = session.plan(c2u, &carry, due, run);
    let carry = apply(plan, &carry, &mut out, c2u.index());
    assert!(carry.is_empty());
    assert_eq!(out.bytes[c2u.index()], [hello, part].concat());
    assert!(!session.wants_flush(c2u));
    assert_eq!(session.next_deadline(&scenario), None);
}

/// Found by a user trial: `goaway = { after_streams = 2 }` with 8 calls sent in one burst
/// forwarded all 8 to the upstream and named stream 15 as the last: the count and the last
/// stream came from the tracker, which had read the whole burst before the first request was
/// planned. Counted as planned, the GOAWAY names the 2nd stream, the 6 after it are refused
/// (REFUSED_STREAM) and never reach the upstream, and the fault's note names the last stream.
#[test]
fn goaway_after_streams_names_the_nth_stream_of_a_burst_and_refuses_the_rest() {
    let burst: Vec<u8> = (0..8)
        .flat_map(|n| {
            let id = 1 + 2 * n;
            [grpc_call(id, "/t.Svc/Unary"), grpc_message(id, b"hello")].concat()
        })
        .collect();
    let out = replay_list(
        vec![
            (Direction::UpstreamToClient, SETTINGS.to_vec()),
            (
                Direction::ClientToUpstream,
                [client_hello(), burst].concat(),
            ),
        ],
        "[[rule]]\nname = \"two\"\nfault.goaway = { after_streams = 2 }\n",
    );
    let upstream = frames_of(&out.bytes[Direction::ClientToUpstream.index()][PREFACE.len()..]);
    let forwarded: std::collections::BTreeSet<u32> =
        upstream.iter().map(|f| f.2).filter(|&s| s != 0).collect();
    assert_eq!(
        forwarded,
        [1, 3].into(),
        "only the first two calls reach the upstream: {upstream:?}"
    );
    let client = client_frames(&out);
    let refused: Vec<u32> = client
        .iter()
        .filter(|f| f.0 == FrameType::RstStream)
        .map(|f| f.2)
        .collect();
    assert_eq!(refused, [5, 7, 9, 11, 13, 15], "{client:?}");
    let bytes = &out.bytes[Direction::UpstreamToClient.index()];
    let at = bytes
        .windows(9)
        .position(|w| w[3] == FrameType::Goaway.as_u8())
        .expect("the GOAWAY");
    assert_eq!(bytes[at + 9..at + 13], [0, 0, 0, 3], "last stream 3");
    for id in refused {
        let at = bytes
            .windows(9)
            .position(|w| w[3] == FrameType::RstStream.as_u8() && w[5..9] == id.to_be_bytes())
            .expect("the RST_STREAM");
        assert_eq!(
            bytes[at + 9..at + 13],
            ErrorCode::REFUSED_STREAM.0.to_be_bytes()
        );
    }
    assert!(
        out.marks
            .iter()
            .any(|m| m.starts_with("GOAWAY (NO_ERROR, graceful, last stream 3)")),
        "{:?}",
        out.marks
    );
}

/// The "HPACK bomb" of the hostile-input trial, client side: the preface, SETTINGS, a GET on
/// stream 1 that inserts one 4,000-byte entry, then `frames` HEADERS frames, each a GET of
/// three static fields and `refs` one-byte references to that entry (16,000: a 16 KB frame
/// decoding to 64 MB; 62: a 65-byte frame decoding to 250 KB, under the list limit).
fn hpack_bomb(frames: u32, refs: usize) -> Vec<u8> {
    let mut out = crate::h2::hpack_bomb::client(frames, refs);
    let settings = [0, 0, 0, 4, 0, 0, 0, 0, 0];
    out.splice(PREFACE.len()..PREFACE.len(), settings);
    out
}

/// A client block that decodes past the list limit (RFC 9113 §6.5.2 size, 256 KiB), or that
/// would take the lists kept for open streams past the connection's budget (4 MiB), is not
/// decoded further: the session stops following the connection there and relays every byte,
/// before and after, unchanged; rules stop (a later stream's rule never fires). Before, each
/// 16 KB bomb frame made a 64 MB detached form and kept 1 MiB of fields per open stream twice
/// (tracker and rules): 200 frames took the proxy to 750 MB; 1,000 frames of 65 bytes each
/// (under the list limit) took it to 950 MB.
#[test]
fn an_hpack_bomb_is_relayed_raw_from_the_block_that_crosses_the_list_limit() {
    for (frames, refs) in [(200, 16_000), (1000, 62)] {
        a_bomb_is_relayed_raw(frames, refs);
    }
}

fn a_bomb_is_relayed_raw(frames: u32, refs: usize) {
    let client = hpack_bomb(frames, refs);
    let mut tail = client.clone();
    // A request after the bombs, for a path a rule answers: it must not be answered.
    tail.extend(request(1001, "GET", "/answered"));
    let rules = respond_rule("/answered", 503, 4);
    let server = [0u8, 0, 0, 4, 0, 0, 0, 0, 0].to_vec();
    let started = std::time::Instant::now();
    for piece in [usize::MAX, 16_393, 1000] {
        let mut raw = Vec::new();
        for (direction, bytes) in [
            (Direction::UpstreamToClient, &server),
            (Direction::ClientToUpstream, &tail),
        ] {
            raw.push(u8::from(direction == Direction::UpstreamToClient));
            raw.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            raw.extend_from_slice(bytes);
        }
        let (out, session, _, _) = replay_records(&raw, &rules, piece, usize::MAX);
        assert!(
            out.bytes[0] == tail,
            "{refs} refs, piece {piece}: the client's bytes changed"
        );
        assert_eq!(out.bytes[1], server, "piece {piece}: nothing answered");
        assert!(out.marks.is_empty(), "piece {piece}: {:?}", out.marks);
        assert!(!session.is_active(Direction::ClientToUpstream), "raw");
    }
    // Each of the 200 blocks decoded to 64 MB before: 600 of them took minutes in a debug build.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
