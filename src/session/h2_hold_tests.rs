//! Delaying one HTTP/2 stream by holding its frames: a latency rule on one stream while a
//! sibling's DATA passes at once, the barriers where holding stops (a header block that changes
//! the HPACK table, the cap), and the drain on a normal end. The session is driven as the pumps
//! drive it, with the clock moved by hand: plans at arrival, ticks at the release instants,
//! woken directions planning an empty chunk.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::h2::H2Session;
use super::h2_hold::MAX_HELD_BYTES;
use super::{RunCounters, RunView, SessionPlan};
use crate::direction::Direction;
use crate::fault::plan::Step;
use crate::h2::build::{self, BlockLimits};
use crate::h2::frame::{FLAG_ACK, FLAG_END_HEADERS, FLAG_END_STREAM, PREFACE};
use crate::h2::{Conversation, FrameHeader, FrameType, HeaderList, PieceKind, StreamId};
use crate::scenario::{ConnectionFacts, Scenario};

const UP: Direction = Direction::UpstreamToClient;
const DOWN: Direction = Direction::ClientToUpstream;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn settings() -> Vec<u8> {
    FrameHeader {
        length: 0,
        kind: FrameType::Settings,
        flags: 0,
        stream: StreamId(0),
    }
    .to_bytes()
    .to_vec()
}

fn request(id: u32, path: &str) -> Vec<u8> {
    let list = HeaderList::from_pairs([
        (":method", "GET"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "example"),
    ]);
    build::headers(StreamId(id), &list, true, BlockLimits::default())
}

fn response(id: u32) -> Vec<u8> {
    let list = HeaderList::from_pairs([(":status", "200")]);
    build::headers(StreamId(id), &list, false, BlockLimits::default())
}

/// Trailers encoded without indexing: they leave the receiver's HPACK table as it is.
fn trailers(id: u32) -> Vec<u8> {
    let list = HeaderList::from_pairs([("grpc-status", "0")]);
    build::headers(StreamId(id), &list, true, BlockLimits::default())
}

/// Trailers with incremental indexing: the receiver's table gains an entry.
fn indexed_trailers(id: u32) -> Vec<u8> {
    let mut block = vec![0x40, 11];
    block.extend_from_slice(b"grpc-status");
    block.extend_from_slice(&[1, b'0']);
    let mut frame = FrameHeader {
        length: block.len() as u32,
        kind: FrameType::Headers,
        flags: FLAG_END_HEADERS | FLAG_END_STREAM,
        stream: StreamId(id),
    }
    .to_bytes()
    .to_vec();
    frame.extend_from_slice(&block);
    frame
}

fn data(id: u32, byte: u8, len: usize, end: bool) -> Vec<u8> {
    let mut frame = build::data_header(StreamId(id), len as u32, end).to_vec();
    frame.extend(std::iter::repeat_n(byte, len));
    frame
}

/// What one planned chunk wrote: each write with its earliest instant and its comment.
#[derive(Debug, Clone)]
struct Write {
    bytes: Vec<u8>,
    at: Instant,
    note: Option<String>,
}

/// A session under `rules` and the instant it opened.
struct Bench {
    session: H2Session,
    scenario: Arc<Scenario>,
    counters: RunCounters,
    t0: Instant,
}

impl Bench {
    fn new(rules: &str) -> Bench {
        let t0 = Instant::now();
        Bench {
            session: H2Session::new(1, ConnectionFacts::ordinal(1), t0, Vec::new()),
            scenario: Arc::new(Scenario::from_toml(rules, "t.toml", "t").expect("valid")),
            counters: RunCounters::new(),
            t0,
        }
    }

    /// Plans `chunk` of `direction` arriving at `at`; every byte must be planned (no tail).
    fn plan(&mut self, direction: Direction, chunk: &[u8], at: Instant) -> Vec<Write> {
        let run = RunView {
            scenario: &self.scenario,
            counters: &self.counters,
        };
        let plan = self.session.plan(direction, chunk, at, run);
        writes(plan, chunk)
    }

    /// Fires the timers due at `at` and plans the woken `direction` with no new bytes.
    fn tick(&mut self, direction: Direction, at: Instant) -> Vec<Write> {
        self.session.tick(at, &self.scenario);
        assert!(
            self.session.wants_flush(direction),
            "released frames wake the direction"
        );
        self.plan(direction, &[], at)
    }

    fn deadline(&self) -> Option<Instant> {
        self.session.next_deadline(&self.scenario)
    }
}

fn writes(plan: SessionPlan, chunk: &[u8]) -> Vec<Write> {
    assert_eq!(plan.deferred, 0, "whole frames in, nothing deferred");
    let mut at = 0;
    let mut out = Vec::new();
    for step in plan.steps {
        match step {
            Step::Send {
                len,
                not_before,
                mark,
                ..
            } => {
                out.push(Write {
                    bytes: chunk[at..at + len].to_vec(),
                    at: not_before,
                    note: mark.map(|m| m.note),
                });
                at += len;
            }
            Step::Skip { len } => at += len,
            Step::Insert {
                bytes,
                not_before,
                mark,
                ..
            } => out.push(Write {
                bytes: bytes.to_vec(),
                at: not_before,
                note: mark.map(|m| m.note),
            }),
            other => panic!("no terminal step expected, got {other:?}"),
        }
    }
    assert_eq!(at, chunk.len(), "every byte planned");
    out
}

fn bytes_of(writes: &[Write]) -> Vec<u8> {
    writes.iter().flat_map(|w| w.bytes.clone()).collect()
}

/// The (stream, payload byte) of each DATA piece in `bytes`, re-read as the client would.
fn data_pieces(conversation: &mut Conversation, bytes: &[u8]) -> Vec<(StreamId, u8)> {
    let fed = conversation.feed(UP, bytes).expect("valid HTTP/2");
    assert_eq!(fed.consumed, bytes.len(), "output ends on a frame boundary");
    let mut at = 0usize;
    let mut out = Vec::new();
    for piece in fed.pieces {
        if let PieceKind::Data { stream, .. } = piece.kind {
            out.push((stream, bytes[at]));
        }
        at += piece.len;
    }
    out
}

/// Opens streams 1 (`/slow`) and 3 (`/fast`) from the client.
fn open_two(bench: &mut Bench) {
    let mut hello = PREFACE.to_vec();
    hello.extend(settings());
    hello.extend(request(1, "/slow"));
    hello.extend(request(3, "/fast"));
    let t0 = bench.t0;
    let out = bench.plan(DOWN, &hello, t0);
    assert_eq!(bytes_of(&out), hello);
}

const LATENCY_ON_SLOW: &str = r#"
[[rule]]
name = "slow read"
match = { path = "/slow", direction = "upstream->client" }
fault.latency = { delay = "200ms" }
"#;

#[test]
fn latency_on_one_stream_holds_its_frames_while_a_sibling_passes_at_once() {
    let mut bench = Bench::new(LATENCY_ON_SLOW);
    open_two(&mut bench);
    let t0 = bench.t0;
    let (d1a, d1c, t1) = (
        data(1, b'a', 100, false),
        data(1, b'c', 50, false),
        trailers(1),
    );
    let (d3b, d3d) = (data(3, b'b', 100, false), data(3, b'd', 50, true));
    let parts = [
        settings(),
        response(1),
        d1a.clone(),
        response(3),
        d3b.clone(),
        d1c.clone(),
        d3d.clone(),
        t1.clone(),
    ];
    let now = bench.plan(UP, &parts.concat(), t0);
    // Stream 3 (and both response heads) leave at once; stream 1's DATA and trailers wait.
    assert!(now.iter().all(|w| w.at == t0), "nothing delayed in place");
    assert_eq!(
        bytes_of(&now),
        [settings(), response(1), response(3), d3b, d3d].concat()
    );
    assert!(now.iter().all(|w| w.note.is_none()), "{now:?}");
    assert_eq!(bench.deadline(), Some(t0 + ms(200)));
    assert!(!bench.session.wants_flush(UP));

    // Not yet due: nothing is released.
    bench.session.tick(t0 + ms(199), &bench.scenario);
    assert!(!bench.session.wants_flush(UP));

    let later = bench.tick(UP, t0 + ms(200));
    // The same bytes, frame for frame, in the order stream 1 sent them.
    assert_eq!(
        later.iter().map(|w| w.bytes.clone()).collect::<Vec<_>>(),
        vec![d1a, d1c, t1]
    );
    // One comment for the stretch of held frames, on its first: the rule's own mark.
    let notes: Vec<&str> = later
        .iter()
        .map(|w| w.note.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(notes[0].starts_with("latency 200ms"), "{notes:?}");
    assert_eq!(notes[1..], ["", ""], "{notes:?}");
    assert_eq!(bench.deadline(), None);

    // The client reads valid HTTP/2 with each stream's payload in order.
    let mut client = Conversation::new();
    let mut pieces = data_pieces(&mut client, &bytes_of(&now));
    pieces.extend(data_pieces(&mut client, &bytes_of(&later)));
    assert_eq!(
        pieces,
        vec![
            (StreamId(3), b'b'),
            (StreamId(3), b'd'),
            (StreamId(1), b'a'),
            (StreamId(1), b'c'),
        ]
    );
}

#[test]
fn a_timed_stall_holds_one_stream_until_it_ends() {
    let mut bench = Bench::new(
        r#"
[[rule]]
match = { path = "/slow", direction = "upstream->client" }
fault.stall = { after = "60B", duration = "1s" }
"#,
    );
    open_two(&mut bench);
    let t0 = bench.t0;
    let first = data(1, b'a', 100, false);
    let second = data(1, b'c', 10, true);
    let sibling = data(3, b'b', 100, true);
    let now = bench.plan(UP, &[response(1), first.clone(), response(3)].concat(), t0);
    assert_eq!(bytes_of(&now), [response(1), response(3)].concat());
    // Later frames of the stalled stream wait behind it; the sibling does not.
    let mid = bench.plan(
        UP,
        &[second.clone(), sibling.clone()].concat(),
        t0 + ms(500),
    );
    assert_eq!(bytes_of(&mid), sibling);
    assert_eq!(bench.deadline(), Some(t0 + ms(1000)));
    let later = bench.tick(UP, t0 + ms(1000));
    assert_eq!(bytes_of(&later), [first, second].concat());
    assert!(later[0]
        .note
        .as_deref()
        .is_some_and(|n| n.starts_with("stalled")));
}

#[test]
fn trailers_that_change_the_hpack_table_hold_back_every_later_header_block() {
    let mut bench = Bench::new(LATENCY_ON_SLOW);
    open_two(&mut bench);
    let t0 = bench.t0;
    let d1 = data(1, b'a', 100, false);
    let t1 = indexed_trailers(1);
    let d3 = data(3, b'b', 100, false);
    let t3 = trailers(3);
    let first = bench.plan(
        UP,
        &[response(1), response(3), d1.clone(), t1.clone(), d3.clone()].concat(),
        t0,
    );
    // The trailers wait behind their DATA; the sibling's DATA passes them (no HPACK state).
    assert_eq!(bytes_of(&first), [response(1), response(3), d3].concat());
    assert!(first.iter().all(|w| w.at == t0));
    // A later header block must not pass trailers that changed the table: the held frames
    // leave in place, not before their release, and the block waits behind them.
    let second = bench.plan(UP, &t3, t0 + ms(10));
    assert_eq!(
        second.iter().map(|w| w.bytes.clone()).collect::<Vec<_>>(),
        vec![d1, t1, t3]
    );
    assert_eq!(second[0].at, t0 + ms(200));
    assert_eq!(second[1].at, t0 + ms(200));
    assert_eq!(bench.deadline(), None, "nothing left held");
}

#[test]
fn a_table_changing_block_of_another_stream_releases_held_blocks_first() {
    let mut bench = Bench::new(LATENCY_ON_SLOW);
    open_two(&mut bench);
    let t0 = bench.t0;
    let d1 = data(1, b'a', 10, false);
    let t1 = trailers(1);
    let t3 = indexed_trailers(3);
    let out = bench.plan(
        UP,
        &[response(1), response(3), d1.clone(), t1.clone(), t3.clone()].concat(),
        t0,
    );
    assert_eq!(
        bytes_of(&out),
        [response(1), response(3), d1, t1, t3].concat()
    );
    let t3_at = out.last().map(|w| w.at);
    assert_eq!(t3_at, Some(t0), "its own time; the queue before it waits");
    // Stream 1's trailers were held behind its DATA, then released in place.
    let trailers_at = out.iter().find(|w| w.bytes == trailers(1)).map(|w| w.at);
    assert_eq!(trailers_at, Some(t0 + ms(200)));
}

#[test]
fn over_the_cap_the_direction_waits_instead() {
    let mut bench = Bench::new(LATENCY_ON_SLOW);
    open_two(&mut bench);
    let t0 = bench.t0;
    let frame = data(1, b'a', 16_384, false);
    let fit = MAX_HELD_BYTES / frame.len();
    let mut input = response(1);
    for _ in 0..=fit {
        input.extend_from_slice(&frame);
    }
    let sibling = data(3, b'b', 10, true);
    input.extend(response(3));
    input.extend_from_slice(&sibling);
    let out = bench.plan(UP, &input, t0);
    // Every byte in the plan, in the order it came: the held frames left in place at the cap.
    assert_eq!(bytes_of(&out), input);
    let sib = out.iter().rposition(|w| w.bytes == sibling).expect("sent");
    assert!(
        out[..sib].iter().any(|w| w.at == t0 + ms(200)),
        "the sibling waits behind the delayed frames"
    );
    // The frames under the cap were held (the first of them marked), the one over it was not.
    let marked = out.iter().filter(|w| w.note.is_some()).count();
    assert_eq!(marked, 1, "one comment for the stretch");
    let held = out
        .iter()
        .filter(|w| w.bytes == frame && w.at == t0 + ms(200))
        .count();
    assert!(
        held >= fit,
        "{fit} held frames, {held} released at their time"
    );
    assert_eq!(bench.deadline(), None);
}

#[test]
fn a_normal_end_drains_what_is_held() {
    let mut bench = Bench::new(LATENCY_ON_SLOW);
    open_two(&mut bench);
    let t0 = bench.t0;
    let d1 = data(1, b'a', 100, true);
    let out = bench.plan(UP, &[response(1), d1.clone()].concat(), t0);
    assert_eq!(bytes_of(&out), response(1));
    let drained = writes(bench.session.drain(UP, t0 + ms(10)), &[]);
    assert_eq!(bytes_of(&drained), d1);
    assert_eq!(drained[0].at, t0 + ms(200), "still not before its release");
    assert_eq!(bench.deadline(), None);
}

#[test]
fn a_stream_reset_while_held_drops_its_frames_and_returns_the_credit() {
    let mut bench = Bench::new(
        r#"
[[rule]]
match = { path = "/slow", direction = "upstream->client" }
fault.latency = { delay = "200ms" }

[[rule]]
match = { path = "/slow" }
fault.rst_stream = { at = "100ms" }
"#,
    );
    open_two(&mut bench);
    let t0 = bench.t0;
    let out = bench.plan(UP, &[response(1), data(1, b'a', 100, false)].concat(), t0);
    assert_eq!(bytes_of(&out), response(1));
    bench.session.tick(t0 + ms(100), &bench.scenario);
    let reset = bench.plan(UP, &[], t0 + ms(100));
    assert_eq!(
        bytes_of(&reset),
        build::rst_stream(StreamId(1), crate::h2::ErrorCode::CANCEL)
    );
    bench.session.tick(t0 + ms(200), &bench.scenario);
    assert!(!bench.session.wants_flush(UP), "the held DATA is dropped");
    // The upstream gets its RST_STREAM and the credit of the dropped DATA.
    let toward_upstream = bench.plan(DOWN, &[], t0 + ms(200));
    let bytes = bytes_of(&toward_upstream);
    let mut expected = build::rst_stream(StreamId(1), crate::h2::ErrorCode::CANCEL);
    expected.extend(build::window_updates(StreamId::CONNECTION, 100));
    assert_eq!(bytes, expected);
}

/// One thing a stream carried, as its receiver decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Block(HeaderList),
    Data(Vec<u8>),
}

/// The events of each stream in `bytes` (the upstream's side of a connection), decoded by a
/// fresh receiver: header blocks through its own HPACK table, so a block moved across one that
/// changed the table decodes differently.
fn stream_events(bytes: &[u8]) -> std::collections::BTreeMap<u32, Vec<Event>> {
    let mut conversation = Conversation::new();
    let fed = conversation
        .feed(UP, bytes)
        .unwrap_or_else(|e| panic!("valid HTTP/2 toward the client: {e}"));
    assert_eq!(fed.consumed, bytes.len(), "output ends on a frame boundary");
    let mut blocks: std::collections::HashMap<usize, HeaderList> = fed
        .blocks
        .into_iter()
        .map(|b| (b.piece, b.headers))
        .collect();
    let mut events: std::collections::BTreeMap<u32, Vec<Event>> = Default::default();
    let mut frame_stream = 0;
    let mut at = 0usize;
    for (i, piece) in fed.pieces.iter().enumerate() {
        match &piece.kind {
            PieceKind::Header(header) => frame_stream = header.stream.0,
            PieceKind::Data { stream, .. } => {
                let payload = bytes[at..at + piece.len].to_vec();
                let list = events.entry(stream.0).or_default();
                match list.last_mut() {
                    Some(Event::Data(previous)) => previous.extend(payload),
                    _ => list.push(Event::Data(payload)),
                }
            }
            _ => {}
        }
        if let Some(headers) = blocks.remove(&i) {
            events
                .entry(frame_stream)
                .or_default()
                .push(Event::Block(headers));
        }
        at += piece.len;
    }
    events
}

/// A tiny deterministic generator (the test must replay the same cases every run).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

/// A block that reads the newest entry of the receiver's dynamic table (indexed field 62).
fn newest_entry_trailers(id: u32) -> Vec<u8> {
    let mut frame = FrameHeader {
        length: 1,
        kind: FrameType::Headers,
        flags: FLAG_END_HEADERS | FLAG_END_STREAM,
        stream: StreamId(id),
    }
    .to_bytes()
    .to_vec();
    frame.push(0x80 | 62);
    frame
}

/// Trailers that add `grpc-status: N` to the receiver's table.
fn status_trailers(id: u32, n: u8) -> Vec<u8> {
    let mut frame = indexed_trailers(id);
    let last = frame.len() - 1;
    frame[last] = b'0' + n;
    frame
}

#[test]
fn random_chunkings_and_clocks_keep_every_stream_whole_in_order_and_hpack_in_sync() {
    let rules = r#"
[[rule]]
name = "slow"
match = { path = "/slow*", direction = "upstream->client" }
fault.latency = { delay = "50ms", jitter = "30ms" }

[[rule]]
name = "paused"
match = { path = "/paused", direction = "upstream->client" }
fault.stall = { after = "150B", duration = "70ms" }
"#;
    let paths = ["/slow1", "/fast", "/slow2", "/paused", "/fast2"];
    let mut reordered = 0;
    for seed in 0..200u64 {
        let mut rng = Lcg(seed);
        let mut bench = Bench::new(rules);
        let mut hello = PREFACE.to_vec();
        hello.extend(settings());
        for (n, path) in paths.iter().enumerate() {
            hello.extend(request(2 * n as u32 + 1, path));
        }
        let t0 = bench.t0;
        bench.plan(DOWN, &hello, t0);

        // The server's side: heads, DATA in random sizes, trailers that change the table or
        // read it, all interleaved at random.
        let mut queues: Vec<Vec<Vec<u8>>> = Vec::new();
        for n in 0..paths.len() {
            let id = 2 * n as u32 + 1;
            let mut frames = vec![response(id)];
            for k in 0..rng.below(5) {
                let len = rng.below(120) as usize + 1;
                frames.push(data(id, b'a' + (n as u8) * 5 + k as u8, len, false));
            }
            frames.push(Vec::new()); // trailers, chosen when they are sent
            queues.push(frames);
        }
        let mut input = settings();
        let mut touched = false;
        while queues.iter().any(|q| !q.is_empty()) {
            let n = rng.below(queues.len() as u64) as usize;
            if queues[n].is_empty() {
                continue;
            }
            let mut frame = queues[n].remove(0);
            if frame.is_empty() {
                let id = 2 * n as u32 + 1;
                frame = match rng.below(3) {
                    0 => trailers(id),
                    1 if touched => newest_entry_trailers(id),
                    _ => {
                        touched = true;
                        status_trailers(id, rng.below(10) as u8)
                    }
                };
            }
            input.extend(frame);
        }

        let mut output = Vec::new();
        let mut now = t0;
        let mut rest = input.as_slice();
        let mut carry = Vec::new();
        while !rest.is_empty() {
            now += ms(rng.below(25));
            if bench.deadline().is_some_and(|d| d <= now) {
                bench.session.tick(now, &bench.scenario);
                if bench.session.wants_flush(UP) {
                    let run = RunView {
                        scenario: &bench.scenario,
                        counters: &bench.counters,
                    };
                    let plan = bench.session.plan(UP, &carry, now, run);
                    carry = apply_up(plan, &carry, &mut output);
                }
            }
            let n = (rng.below(200) as usize + 1).min(rest.len());
            let mut chunk = std::mem::take(&mut carry);
            chunk.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            let run = RunView {
                scenario: &bench.scenario,
                counters: &bench.counters,
            };
            let plan = bench.session.plan(UP, &chunk, now, run);
            carry = apply_up(plan, &chunk, &mut output);
        }
        assert!(
            carry.is_empty(),
            "seed {seed}: whole frames in, nothing left over"
        );
        // The upstream closes: what is still held leaves before the FIN.
        let drained = bench.session.drain(UP, now);
        carry = apply_up(drained, &[], &mut output);
        assert!(carry.is_empty());
        assert_eq!(bench.deadline(), None, "seed {seed}: nothing left held");

        assert_eq!(output.len(), input.len(), "seed {seed}: every byte, once");
        reordered += usize::from(output != input);
        assert_eq!(
            stream_events(&output),
            stream_events(&input),
            "seed {seed}: each stream's frames, in order, decoded alike"
        );
    }
    assert!(
        reordered > 150,
        "frames were held and passed: {reordered} of 200"
    );
}

/// Applies a plan of the upstream's direction to `chunk`, appending what it wrote; returns the
/// held-back tail.
fn apply_up(plan: SessionPlan, chunk: &[u8], output: &mut Vec<u8>) -> Vec<u8> {
    let deferred = plan.deferred;
    let mut at = 0;
    for step in plan.steps {
        match step {
            Step::Send { len, .. } => {
                output.extend_from_slice(&chunk[at..at + len]);
                at += len;
            }
            Step::Skip { len } => at += len,
            Step::Insert { bytes, .. } => output.extend_from_slice(&bytes),
            other => panic!("no terminal step expected, got {other:?}"),
        }
    }
    assert_eq!(
        at + deferred,
        chunk.len(),
        "every byte planned or held back"
    );
    chunk[at..].to_vec()
}

#[test]
fn an_upload_delayed_on_one_stream_leaves_the_other_uploads_flowing() {
    let mut bench = Bench::new(
        r#"
[[rule]]
name = "slow upload"
match = { method = "POST", path = "/slow", direction = "client->upstream" }
fault.latency = { delay = "300ms" }
"#,
    );
    let t0 = bench.t0;
    let post = |id: u32, path: &str| {
        let list = HeaderList::from_pairs([
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "example"),
        ]);
        build::headers(StreamId(id), &list, false, BlockLimits::default())
    };
    let mut hello = PREFACE.to_vec();
    hello.extend(settings());
    hello.extend(post(1, "/slow"));
    hello.extend(post(3, "/fast"));
    let slow = data(1, b's', 500, true);
    let fast = data(3, b'f', 500, true);
    let input = [hello.clone(), slow.clone(), fast.clone()].concat();
    let now = bench.plan(DOWN, &input, t0);
    assert_eq!(bytes_of(&now), [hello, fast].concat());
    assert!(now.iter().all(|w| w.at == t0));
    let later = bench.tick(DOWN, t0 + ms(300));
    assert_eq!(bytes_of(&later), slow);
    assert!(later[0]
        .note
        .as_deref()
        .is_some_and(|n| n.starts_with("latency 300ms")));
}

/// A SETTINGS frame setting the header table size (the receiver's encoder must then start its
/// next block with a size update once it acknowledges), or an empty one.
fn settings_with_table_size(size: Option<u32>) -> Vec<u8> {
    let payload: Vec<u8> = size
        .map(|v| [&[0u8, 1][..], &v.to_be_bytes()].concat())
        .unwrap_or_default();
    let mut frame = FrameHeader {
        length: payload.len() as u32,
        kind: FrameType::Settings,
        flags: 0,
        stream: StreamId(0),
    }
    .to_bytes()
    .to_vec();
    frame.extend(payload);
    frame
}

fn settings_ack() -> Vec<u8> {
    FrameHeader {
        length: 0,
        kind: FrameType::Settings,
        flags: FLAG_ACK,
        stream: StreamId(0),
    }
    .to_bytes()
    .to_vec()
}

/// A client acknowledging the server's SETTINGS while its GET is held: the acknowledgment of
/// ordinary settings passes at once (a flaky test showed an upload on the same connection
/// waiting the whole latency behind it); one of a header table size change waits behind the
/// held block, whose encoding predates it.
#[test]
fn only_the_ack_of_a_table_size_change_waits_for_a_held_block() {
    for (size, waits) in [(None, false), (Some(8192), true)] {
        let mut bench = slow_get_bench();
        let t0 = bench.t0;
        let server = settings_with_table_size(size);
        assert_eq!(bytes_of(&bench.plan(UP, &server, t0)), server);
        let get = build::indexed_get(StreamId(1), "/slow");
        assert!(bytes_of(&bench.plan(DOWN, &get, t0)).is_empty(), "held");
        let ack = settings_ack();
        let out = bench.plan(DOWN, &ack, t0 + ms(10));
        if waits {
            assert_eq!(bytes_of(&out), [get, ack].concat(), "{size:?}");
            assert!(out[0].at >= t0 + ms(200), "{out:?}");
        } else {
            assert_eq!(bytes_of(&out), ack, "{size:?}");
            assert!(out.iter().all(|w| w.at <= t0 + ms(10)), "{out:?}");
        }
    }
}

/// A bench with a 200 ms latency on requests for `/slow`, the client's preface and SETTINGS
/// already through.
fn slow_get_bench() -> Bench {
    let mut bench = Bench::new(
        r#"
[[rule]]
name = "slow get"
match = { path = "/slow", direction = "client->upstream" }
fault.latency = { delay = "200ms" }
"#,
    );
    let mut hello = PREFACE.to_vec();
    hello.extend(settings());
    let t0 = bench.t0;
    let out = bench.plan(DOWN, &hello, t0);
    assert_eq!(bytes_of(&out), hello);
    bench
}

/// A request that is only a header block (a GET) has no DATA to hold: the latency holds the
/// block itself, and a sibling request read after it passes at once.
#[test]
fn latency_on_a_bodiless_request_holds_its_headers_while_siblings_pass() {
    let mut bench = slow_get_bench();
    let t0 = bench.t0;
    let get = request(1, "/slow");
    let out = bench.plan(DOWN, &get, t0);
    assert!(bytes_of(&out).is_empty(), "the GET is held: {out:?}");
    let other = request(3, "/fast");
    let out = bench.plan(DOWN, &other, t0 + ms(10));
    assert_eq!(bytes_of(&out), other, "a sibling passes the held GET");
    assert!(out.iter().all(|w| w.at <= t0 + ms(10)), "{out:?}");
    assert_eq!(bench.deadline(), Some(t0 + ms(200)), "due at its time");
    let later = bench.tick(DOWN, t0 + ms(200));
    assert_eq!(bytes_of(&later), get, "the GET leaves unchanged");
    assert_eq!(
        later[0].note.as_deref(),
        Some("latency 200ms on GET /slow (attempt 1)"),
        "marked as the fault"
    );
}

/// A bodiless request whose block changes the upstream's HPACK table still holds, but a later
/// block may not pass it: the sibling waits behind it (HPACK order), as without holding.
#[test]
fn a_held_bodiless_request_that_indexes_headers_is_a_barrier_for_later_blocks() {
    let mut bench = slow_get_bench();
    let t0 = bench.t0;
    let get = build::indexed_get(StreamId(1), "/slow");
    let out = bench.plan(DOWN, &get, t0);
    assert!(bytes_of(&out).is_empty(), "the GET is held: {out:?}");
    let other = request(3, "/fast");
    let out = bench.plan(DOWN, &other, t0 + ms(10));
    assert_eq!(bytes_of(&out), [get, other].concat(), "in HPACK order");
    assert!(
        out[0].at >= t0 + ms(200),
        "the sibling waits behind it: {out:?}"
    );
}
