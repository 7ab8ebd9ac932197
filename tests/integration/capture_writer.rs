//! Scratch integration test: drives the capture writer with synthetic legs and checks the files with tshark.

use crate::support;
use crate::support::synthetic::{Clock, Noise};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use faultline::capture::{CaptureEvent, CaptureMeta, CaptureSink, Leg, LegKey, Side};

/// What one leg should look like in the capture, in the order legs were opened (= tcp.stream index).
struct ExpectedLeg {
    key: LegKey,
    initiator: Vec<u8>,
    responder: Vec<u8>,
}

/// Builds a deterministic event sequence and remembers what each leg carried.
struct Script {
    events: Vec<CaptureEvent>,
    clock: Clock,
    legs: Vec<ExpectedLeg>,
    rsts: usize,
    comments: Vec<String>,
    noise: Noise,
}

impl Script {
    fn new() -> Script {
        Script {
            events: Vec::new(),
            clock: Clock::new(),
            legs: Vec::new(),
            rsts: 0,
            comments: Vec::new(),
            noise: Noise::new(),
        }
    }

    fn tick(&mut self) -> SystemTime {
        self.clock.tick()
    }

    fn bytes(&mut self, len: usize) -> Bytes {
        self.noise.bytes(len).into()
    }

    fn open(&mut self, conn: u64, leg: Leg, initiator: &str, responder: &str) -> LegKey {
        let key = LegKey { conn, leg };
        let parse = |a: &str| a.parse::<SocketAddr>().expect("test address");
        let at = self.tick();
        self.events.push(CaptureEvent::Opened {
            key,
            initiator: parse(initiator),
            responder: parse(responder),
            at,
        });
        self.legs.push(ExpectedLeg {
            key,
            initiator: Vec::new(),
            responder: Vec::new(),
        });
        key
    }

    fn data(&mut self, key: LegKey, from: Side, bytes: Bytes, comment: Option<&str>) {
        let leg = self
            .legs
            .iter_mut()
            .rev()
            .find(|l| l.key == key)
            .expect("leg opened");
        match from {
            Side::Initiator => leg.initiator.extend_from_slice(&bytes),
            Side::Responder => leg.responder.extend_from_slice(&bytes),
        }
        self.comments.extend(comment.map(String::from));
        let at = self.tick();
        self.events.push(CaptureEvent::Data {
            key,
            from,
            bytes,
            at,
            comment: comment.map(String::from),
        });
    }

    /// Sends `total` bytes from `from` across both legs the way a pump relays them: read chunks of
    /// varying size, each written to the other leg right after.
    fn relay(&mut self, client: LegKey, upstream: LegKey, to_upstream: bool, total: usize) {
        let mut sent = 0;
        let mut n = 0usize;
        while sent < total {
            let len = (1 + (n * 7919) % 70_000).min(total - sent);
            let chunk = self.bytes(len);
            if to_upstream {
                self.data(client, Side::Initiator, chunk.clone(), None);
                self.data(upstream, Side::Initiator, chunk, None);
            } else {
                self.data(upstream, Side::Responder, chunk.clone(), None);
                self.data(client, Side::Responder, chunk, None);
            }
            sent += len;
            n += 1;
        }
    }

    fn fin(&mut self, key: LegKey, from: Side, comment: Option<&str>) {
        self.comments.extend(comment.map(String::from));
        let at = self.tick();
        self.events.push(CaptureEvent::Fin {
            key,
            from,
            at,
            comment: comment.map(String::from),
        });
    }

    fn rst(&mut self, key: LegKey, from: Side, comment: Option<&str>) {
        self.comments.extend(comment.map(String::from));
        self.rsts += 1;
        let at = self.tick();
        self.events.push(CaptureEvent::Rst {
            key,
            from,
            at,
            comment: comment.map(String::from),
        });
    }

    fn close(&mut self, key: LegKey) {
        self.events.push(CaptureEvent::Closed { key });
    }

    /// A clean close in both directions on both legs, as copy_bidirectional would do it.
    fn close_both_ways(&mut self, client: LegKey, upstream: LegKey) {
        self.fin(client, Side::Initiator, None);
        self.fin(upstream, Side::Initiator, None);
        self.fin(upstream, Side::Responder, None);
        self.fin(client, Side::Responder, None);
        self.close(client);
        self.close(upstream);
    }

    /// The five situations the proxy must capture faithfully.
    fn all_situations() -> Script {
        let mut s = Script::new();
        // 1. Pass-through, several MB each way, with an IPv6 client leg (4.) opened in the middle.
        let c1 = s.open(1, Leg::Client, "127.0.0.1:41001", "127.0.0.1:3030");
        let u1 = s.open(1, Leg::Upstream, "127.0.0.1:51001", "127.0.0.1:8080");
        s.relay(c1, u1, true, 3_000_000);
        let c4 = s.open(4, Leg::Client, "[::1]:41004", "[::1]:3030");
        let u4 = s.open(4, Leg::Upstream, "127.0.0.1:51004", "127.0.0.1:8080");
        s.relay(c4, u4, true, 300);
        s.relay(c1, u1, false, 4_000_000);
        s.relay(c4, u4, false, 90_000);
        s.close_both_ways(c1, u1);
        s.close_both_ways(c4, u4);
        // 2. Reset mid-upload after 64 KiB reached the upstream: RST on both legs, each annotated.
        let c2 = s.open(2, Leg::Client, "127.0.0.1:41002", "127.0.0.1:3030");
        let u2 = s.open(2, Leg::Upstream, "127.0.0.1:51002", "127.0.0.1:8080");
        let upload = s.bytes(100_000);
        s.data(c2, Side::Initiator, upload.clone(), None);
        s.data(u2, Side::Initiator, upload.slice(..65_536), None);
        let why =
            r#"faultline: rule "second connection dies" reset client->upstream after 65536 bytes"#;
        s.rst(u2, Side::Initiator, Some(why));
        s.rst(c2, Side::Responder, Some(why));
        s.close(c2);
        s.close(u2);
        // 3. Truncated download: the client gets 50 000 of 200 000 bytes, then a FIN.
        let c3 = s.open(3, Leg::Client, "127.0.0.1:41003", "127.0.0.1:3030");
        let u3 = s.open(3, Leg::Upstream, "127.0.0.1:51003", "127.0.0.1:8080");
        s.relay(c3, u3, true, 200);
        let body = s.bytes(200_000);
        s.data(u3, Side::Responder, body.clone(), None);
        s.data(c3, Side::Responder, body.slice(..50_000), None);
        s.fin(
            c3,
            Side::Responder,
            Some(r#"faultline: rule "cut" truncated upstream->client after 50000 bytes"#),
        );
        s.fin(c3, Side::Initiator, None);
        s.fin(u3, Side::Initiator, None);
        s.fin(u3, Side::Responder, None);
        s.close(c3);
        s.close(u3);
        // 5. Two connections reusing the same 4-tuples on both legs.
        for conn in [5, 6] {
            let c = s.open(conn, Leg::Client, "127.0.0.1:41005", "127.0.0.1:3030");
            let u = s.open(conn, Leg::Upstream, "127.0.0.1:51005", "127.0.0.1:8080");
            s.relay(c, u, true, 5_000);
            s.relay(c, u, false, 70_000);
            s.close_both_ways(c, u);
        }
        s
    }
}

fn scratch_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("captures")
        .join(name)
}

fn meta() -> CaptureMeta {
    CaptureMeta {
        scenario: "capture-selftest".into(),
        seed: 7,
        command_line: "faultline run selftest.toml".into(),
        // The scenario's text rides in a second section comment: tshark must still read it all.
        scenario_text: Some("name = \"capture-selftest\"\n\n[[rule]]\nfault.refuse = {}\n".into()),
        scenario_origin: "selftest.toml".into(),
        live_rules: false,
    }
}

async fn write_capture(path: &Path, script: &Script) -> faultline::capture::CaptureSummary {
    let (sink, handle) = CaptureSink::start(path, meta()).expect("start capture");
    for event in &script.events {
        sink.record(event.clone()).await;
    }
    drop(sink);
    handle.finish().await
}

/// Start of 2026 and 2027 in Unix seconds: every timestamp must fall between (no year 55840).
const YEAR_2026: std::ops::Range<f64> = 1_767_225_600.0..1_798_761_600.0;

/// Everything a user of the capture relies on, checked with tshark.
fn check_capture(path: &Path, script: &Script, pcapng: bool) {
    let (packets, status) = support::tshark::packet_count(path);
    assert!(status.success(), "tshark must read the whole file cleanly");
    assert!(packets > 1000);

    let conversations = support::tshark::conversations(path);
    assert_eq!(
        conversations.len(),
        12,
        "two conversations per proxied connection: {conversations:?}"
    );
    assert!(
        conversations
            .iter()
            .any(|c| c.a == "::1:41004" && c.b == "::1:3030"),
        "IPv6 leg written as IPv6"
    );
    let reused = conversations
        .iter()
        .filter(|c| c.a == "127.0.0.1:41005")
        .count();
    assert_eq!(reused, 2, "a reused 4-tuple is a new conversation");

    for (stream, leg) in script.legs.iter().enumerate() {
        let (initiator, responder) = support::tshark::follow_raw(path, stream);
        assert!(
            initiator == leg.initiator,
            "stream {stream} ({}): initiator bytes differ",
            leg.key
        );
        assert!(
            responder == leg.responder,
            "stream {stream} ({}): responder bytes differ",
            leg.key
        );
    }

    // Port 8080 is decoded as HTTP, and our payloads are random bytes.
    let problems = support::tshark::expert_problems_with(path, &["--disable-protocol", "http"]);
    assert!(problems.is_empty(), "tshark expert problems: {problems:?}");
    assert_eq!(support::tshark::rst_count(path), script.rsts);

    let rows = support::tshark::fields(
        path,
        None,
        &[
            "frame.time_epoch",
            "frame.interface_name",
            "frame.packet_flags_direction",
            "tcp.srcport",
        ],
    );
    assert_eq!(rows.len(), packets);
    for row in &rows {
        let epoch: f64 = row[0].parse().expect("frame.time_epoch");
        assert!(
            YEAR_2026.contains(&epoch),
            "timestamp {epoch} is not in 2026"
        );
        if !pcapng {
            assert_eq!(row[1], "", "classic pcap has no interface names");
            continue;
        }
        let port: u16 = row[3].parse().expect("tcp.srcport");
        let inbound = match row[1].as_str() {
            "client leg" => (41001..=41005).contains(&port),
            "upstream leg" => port == 8080,
            other => panic!("unexpected interface name {other:?}"),
        };
        assert_eq!(
            row[2],
            if inbound { "0x00000001" } else { "0x00000002" },
            "direction of {row:?}"
        );
    }

    let comments = support::tshark::packet_comments(path);
    if pcapng {
        assert_eq!(comments, script.comments);
        let section = support::tshark::section_comment(path).expect("section comment");
        assert!(
            section.contains(
                "scenario capture-selftest; seed 7; command: faultline run selftest.toml"
            ),
            "{section}"
        );
    } else {
        assert!(comments.is_empty());
    }
}

async fn check_format(name: &str, pcapng: bool) {
    support::tshark::tshark();
    let script = Script::all_situations();
    let path = scratch_path(name);
    let summary = write_capture(&path, &script).await;
    assert_eq!(summary.write_error, None);
    assert_eq!(summary.backpressure_waits, 0);
    let expected_payload: usize = script
        .legs
        .iter()
        .map(|l| l.initiator.len() + l.responder.len())
        .sum();
    assert_eq!(summary.payload_bytes, expected_payload as u64);
    assert_eq!(
        summary.file_bytes,
        std::fs::metadata(&path).expect("capture file").len()
    );
    check_capture(&path, &script, pcapng);
    assert_eq!(
        support::tshark::packet_count(&path).0 as u64,
        summary.packets_written
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pcapng_capture_reads_back_exactly() {
    check_format("all.pcapng", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn classic_pcap_capture_reads_back_exactly() {
    check_format("all.pcap", false).await;
}

/// A SIGKILL can leave half a record at the end: every complete packet must still be readable.
#[tokio::test(flavor = "multi_thread")]
async fn a_capture_cut_mid_record_keeps_every_complete_packet() {
    support::tshark::tshark();
    let script = Script::all_situations();
    for name in ["cut.pcapng", "cut.pcap"] {
        let path = scratch_path(name);
        let summary = write_capture(&path, &script).await;
        let bytes = std::fs::read(&path).expect("read capture");
        let cut = path.with_extension(format!(
            "cut.{}",
            name.rsplit('.').next().unwrap_or("pcapng")
        ));
        std::fs::write(&cut, &bytes[..bytes.len() - 7]).expect("write cut capture");
        let (packets, status) = support::tshark::packet_count(&cut);
        assert_eq!(status.code(), Some(2), "tshark reports the cut");
        assert_eq!(packets as u64, summary.packets_written - 1, "{name}");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write cut capture");
        let (packets, status) = support::tshark::packet_count(&cut);
        assert_eq!(status.code(), Some(2));
        assert!(
            packets > 100,
            "{name}: only {packets} packets before the cut"
        );
    }
}

/// Durability while running: the file on disk is readable without `finish`, after an idle second and
/// right after a commented (fault) event.
///
/// Tokio's clock is paused: the writer's tick follows it, and its writes on the blocking pool hold
/// it still, so "within a second" and "at once" are measured on that clock, not on the machine's
/// (a loaded machine made a 500 ms wall-clock deadline, tshark runs included, fail spuriously).
#[tokio::test(start_paused = true)]
async fn records_reach_the_disk_within_a_second_and_at_every_fault() {
    support::tshark::tshark();
    let path = scratch_path("live.pcapng");
    let (sink, handle) = CaptureSink::start(&path, meta()).expect("start capture");
    let header = file_len(&path);
    let mut s = Script::new();
    let key = s.open(1, Leg::Client, "127.0.0.1:41001", "127.0.0.1:3030");
    for event in s.events.drain(..) {
        sink.record(event).await;
    }
    // The handshake carries no comment: the idle tick writes it, within FLUSH_EVERY (1 s).
    let took = grown_after(&path, header).await;
    assert!(
        took <= Duration::from_millis(1010),
        "the handshake was written {took:?} after it was recorded, not by the idle tick"
    );
    assert_eq!(support::tshark::packet_count(&path).0, 3);
    assert!(support::tshark::packet_comments(&path).is_empty());

    let before = file_len(&path);
    let body = s.bytes(10);
    s.data(
        key,
        Side::Responder,
        body,
        Some("faultline: rule \"x\" delayed upstream->client by 5s"),
    );
    for event in s.events.drain(..) {
        sink.record(event).await;
    }
    // The next idle tick is about a second away: a commented record is written before it.
    let took = grown_after(&path, before).await;
    assert!(
        took <= Duration::from_millis(10),
        "the commented record was written {took:?} after it was recorded, not at once"
    );
    assert_eq!(support::tshark::packet_comments(&path).len(), 1);
    drop(sink);
    let summary = handle.finish().await;
    assert_eq!(summary.packets_written, 5);
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// How long (on tokio's clock) until `path` grows past `len`, polled every millisecond; fails
/// after 10 s on that clock.
async fn grown_after(path: &Path, len: u64) -> Duration {
    let started = tokio::time::Instant::now();
    while file_len(path) <= len {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} stayed at {len} bytes",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

/// Writer throughput for a bulk transfer; run with
/// `cargo test --release --test capture -- --ignored --nocapture bulk`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark"]
async fn bulk_throughput() {
    // FAULTLINE_BULK_PATH=/dev/null measures encoding alone.
    let path = std::env::var_os("FAULTLINE_BULK_PATH")
        .map_or_else(|| scratch_path("bulk.pcapng"), PathBuf::from);
    let mut s = Script::new();
    let client = s.open(1, Leg::Client, "127.0.0.1:41001", "127.0.0.1:3030");
    let upstream = s.open(1, Leg::Upstream, "127.0.0.1:51001", "127.0.0.1:8080");
    let chunk = s.bytes(64 * 1024);
    let (sink, handle) = CaptureSink::start(&path, meta()).expect("start capture");
    let started = std::time::Instant::now();
    for event in s.events.drain(..) {
        sink.record(event).await;
    }
    let chunks = 8 * 1024; // 512 MiB per leg
    for _ in 0..chunks {
        for key in [upstream, client] {
            let at = SystemTime::now();
            let bytes = chunk.clone();
            sink.record(CaptureEvent::Data {
                key,
                from: Side::Responder,
                bytes,
                at,
                comment: None,
            })
            .await;
        }
    }
    drop(sink);
    let summary = handle.finish().await;
    let secs = started.elapsed().as_secs_f64();
    let mb = summary.payload_bytes as f64 / 1e6;
    eprintln!(
        "bulk: {mb:.0} MB payload, {} packets, {:.0} MB file in {secs:.2}s = {:.0} MB/s payload, {} backpressure waits",
        summary.packets_written,
        summary.file_bytes as f64 / 1e6,
        mb / secs,
        summary.backpressure_waits
    );
    if path.starts_with(env!("CARGO_TARGET_TMPDIR")) {
        let _ = std::fs::remove_file(&path);
    }
}
