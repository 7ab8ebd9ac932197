//! Integration tests: captures written by faultline's own capture writer, read back by `inspect`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use faultline::capture::{CaptureEvent, CaptureMeta, CaptureSink, Leg, LegKey, Side};
use faultline::inspect::{inspect_bytes, inspect_path, InspectOptions, LegFilter, Report, Verdict};
use md5::{Digest, Md5};

use crate::support::synthetic::{Clock, Noise};
use crate::support::tshark;

/// Builds capture events for proxied connections: every byte crosses both legs unless a fault cuts it.
struct Script {
    events: Vec<CaptureEvent>,
    clock: Clock,
    noise: Noise,
    next_conn: u64,
}

/// What an attempt's upstream does after the request.
enum Answer<'a> {
    Status(u16),
    /// The proxy resets both legs after this many request body bytes, with this fault comment.
    ResetAfter(usize, &'a str),
}

impl Script {
    fn new() -> Script {
        Script {
            events: Vec::new(),
            clock: Clock::new(),
            noise: Noise::new(),
            next_conn: 1,
        }
    }

    fn tick(&mut self) -> SystemTime {
        self.clock.tick()
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        self.noise.bytes(len)
    }

    fn data(&mut self, key: LegKey, from: Side, bytes: &[u8], comment: Option<&str>) {
        let at = self.tick();
        self.events.push(CaptureEvent::Data {
            key,
            from,
            bytes: Bytes::copy_from_slice(bytes),
            at,
            comment: comment.map(String::from),
        });
    }

    /// One connection carrying one request with `body` and a declared Content-Length of `declared`.
    fn attempt(&mut self, method: &str, target: &str, body: &[u8], answer: Answer<'_>) {
        let conn = self.next_conn;
        self.next_conn += 1;
        let port = 41_000 + conn as u16;
        let c = LegKey {
            conn,
            leg: Leg::Client,
        };
        let u = LegKey {
            conn,
            leg: Leg::Upstream,
        };
        let addr = |s: String| s.parse::<SocketAddr>().expect("addr");
        for (key, i, r) in [
            (c, format!("127.0.0.1:{port}"), "127.0.0.1:3030".to_string()),
            (
                u,
                format!("127.0.0.1:{}", port + 10_000),
                "127.0.0.1:8080".to_string(),
            ),
        ] {
            let at = self.tick();
            self.events.push(CaptureEvent::Opened {
                key,
                initiator: addr(i),
                responder: addr(r),
                at,
            });
        }
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: store\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        match answer {
            Answer::Status(status) => {
                for piece in request.chunks(70_000) {
                    self.data(c, Side::Initiator, piece, None);
                    self.data(u, Side::Initiator, piece, None);
                }
                let response = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok");
                self.data(u, Side::Responder, response.as_bytes(), None);
                self.data(c, Side::Responder, response.as_bytes(), None);
                for (key, side) in [
                    (c, Side::Initiator),
                    (u, Side::Initiator),
                    (u, Side::Responder),
                    (c, Side::Responder),
                ] {
                    let at = self.tick();
                    self.events.push(CaptureEvent::Fin {
                        key,
                        from: side,
                        at,
                        comment: None,
                    });
                }
            }
            Answer::ResetAfter(n, why) => {
                let cut = request.len() - body.len() + n;
                self.data(c, Side::Initiator, &request, None);
                self.data(u, Side::Initiator, &request[..cut], None);
                for (key, side) in [(u, Side::Initiator), (c, Side::Responder)] {
                    let at = self.tick();
                    self.events.push(CaptureEvent::Rst {
                        key,
                        from: side,
                        at,
                        comment: Some(why.to_string()),
                    });
                }
            }
        }
        self.events.push(CaptureEvent::Closed { key: c });
        self.events.push(CaptureEvent::Closed { key: u });
    }

    /// One connection carrying `GET target` answered `status` with `headers` and `body`, on both
    /// legs; with `cut`, both legs close (FIN) after that many body bytes.
    fn download(
        &mut self,
        target: &str,
        status: u16,
        headers: &str,
        body: &[u8],
        cut: Option<usize>,
    ) {
        let conn = self.next_conn;
        self.next_conn += 1;
        let port = 41_000 + conn as u16;
        let c = LegKey {
            conn,
            leg: Leg::Client,
        };
        let u = LegKey {
            conn,
            leg: Leg::Upstream,
        };
        let addr = |s: String| s.parse::<SocketAddr>().expect("addr");
        for (key, i, r) in [
            (c, format!("127.0.0.1:{port}"), "127.0.0.1:3030".to_string()),
            (
                u,
                format!("127.0.0.1:{}", port + 10_000),
                "127.0.0.1:8080".to_string(),
            ),
        ] {
            let at = self.tick();
            self.events.push(CaptureEvent::Opened {
                key,
                initiator: addr(i),
                responder: addr(r),
                at,
            });
        }
        let request = format!("GET {target} HTTP/1.1\r\nHost: store\r\n\r\n");
        self.data(c, Side::Initiator, request.as_bytes(), None);
        self.data(u, Side::Initiator, request.as_bytes(), None);
        let mut response = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{headers}\r\n",
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(&body[..cut.unwrap_or(body.len())]);
        for piece in response.chunks(70_000) {
            self.data(u, Side::Responder, piece, None);
            self.data(c, Side::Responder, piece, None);
        }
        for (key, side) in [
            (c, Side::Initiator),
            (u, Side::Initiator),
            (u, Side::Responder),
            (c, Side::Responder),
        ] {
            let at = self.tick();
            self.events.push(CaptureEvent::Fin {
                key,
                from: side,
                at,
                comment: None,
            });
        }
        self.events.push(CaptureEvent::Closed { key: c });
        self.events.push(CaptureEvent::Closed { key: u });
    }

    /// Writes the events through faultline's capture writer; the extension picks pcap or pcapng.
    fn write(self, name: &str) -> PathBuf {
        self.write_run(name, CaptureMeta::default())
    }

    /// [`Script::write`] as the run `meta` names (section comments).
    fn write_run(self, name: &str, meta: CaptureMeta) -> PathBuf {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("inspect")
            .join(name);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (sink, handle) = CaptureSink::start(&path, meta).expect("start capture");
            for event in self.events {
                sink.record(event).await;
            }
            drop(sink);
            let summary = handle.finish().await;
            assert!(summary.write_error.is_none(), "{:?}", summary.write_error);
        });
        path
    }
}

fn md5_target(body: &[u8]) -> String {
    let hex = hex::encode(Md5::digest(body));
    format!("/files/md5/{}/{}", &hex[..2], &hex[2..])
}

fn inspect(path: &Path) -> Report {
    inspect_path(path, &InspectOptions::default()).expect("readable capture")
}

#[test]
fn clean_upload_with_matching_md5_exits_zero() {
    let mut s = Script::new();
    let body = s.bytes(100_000);
    let target = md5_target(&body);
    s.attempt("PUT", &target, &body, Answer::Status(201));
    let report = inspect(&s.write("clean.pcapng"));
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    assert_eq!(report.verdict(), Verdict::Clean);
    assert!(text.contains("OK: 1 upload, none retried"), "{text}");
    assert!(text.contains("matches"), "{text}");
    assert_eq!(report.exchanges.len(), 2, "one exchange per leg");
    assert!(report
        .exchanges
        .iter()
        .all(|e| e.request.complete && e.request.length == 100_000));
    assert_eq!(report.leg_comparisons.len(), 1);
    assert!(
        report.leg_comparisons[0].differences.is_empty(),
        "{:?}",
        report.leg_comparisons
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
    assert_eq!(json["verdict"], "clean");
    assert_eq!(json["content_checks"][0]["check"]["result"], "matches");
    assert_eq!(json["exchanges"][0]["leg"], "client");
    assert_eq!(json["exchanges"][0]["response"]["status"], 201);
}

#[test]
fn retry_that_did_not_seek_back_is_corrupt() {
    let mut s = Script::new();
    let body = s.bytes(40_000);
    s.attempt("PUT", "/upload/data.bin", &body, Answer::Status(500));
    s.attempt(
        "PUT",
        "/upload/data.bin",
        &body[8192..],
        Answer::Status(201),
    );
    let report = inspect(&s.write("shifted.pcapng"));
    let text = report.render_text();
    assert_eq!(report.exit_code(), 1, "{text}");
    assert!(
        text.contains("attempt 2 equals attempt 1 from offset 8192: the retry did not seek back"),
        "{text}"
    );
    assert!(
        report
            .verdict_line
            .starts_with("CORRUPT: PUT /upload/data.bin"),
        "{}",
        report.verdict_line
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
    assert_eq!(
        json["attempt_groups"][0]["attempts"][1]["comparison"]["shifted_from"],
        8192
    );
    assert_eq!(
        json["attempt_groups"][0]["attempts"][1]["comparison"]["offset"],
        0
    );
}

#[test]
fn empty_retry_body_is_named_and_reset_fault_is_attributed() {
    let mut s = Script::new();
    let body = s.bytes(200_000);
    let why = r#"faultline: rule "die" reset client->upstream after 65536 bytes"#;
    s.attempt("POST", "/api/blob", &body, Answer::ResetAfter(65_536, why));
    s.attempt("POST", "/api/blob", b"", Answer::Status(201));
    let report = inspect_path(
        &s.write("empty.pcapng"),
        &InspectOptions {
            leg: LegFilter::Upstream,
            key_log: Vec::new(),
        },
    )
    .expect("read");
    let text = report.render_text();
    assert!(
        text.contains("attempt 2 has an empty body (attempt 1 had 65536 bytes)"),
        "{text}"
    );
    assert_eq!(
        report.exit_code(),
        1,
        "an accepted empty retry is corruption: {text}"
    );
    let first = &report.exchanges[0];
    assert_eq!(
        (first.request.length, first.request.complete),
        (65_536, false)
    );
    assert_eq!(first.request.cut_by.as_deref(), Some("connection reset"));
    assert_eq!(first.faults.len(), 1, "{:?}", first.faults);
    assert_eq!(
        (first.faults[0].scope, first.faults[0].text.as_str()),
        ("message", why)
    );
    assert!(report
        .exchanges
        .iter()
        .all(|e| e.leg == Some(faultline::direction::Leg::Upstream)));
}

#[test]
fn content_address_mismatch_exits_one() {
    let mut s = Script::new();
    let body = s.bytes(5_000);
    let other = s.bytes(5_000);
    s.attempt("PUT", &md5_target(&other), &body, Answer::Status(201));
    let report = inspect(&s.write("mismatch.pcap"));
    let text = report.render_text();
    assert_eq!(report.exit_code(), 1, "{text}");
    assert!(text.contains("MISMATCH"), "{text}");
    assert_eq!(report.capture.format, "pcap");
    // Classic pcap names no legs; the two flows show them (see the next test).
    assert_eq!(
        report.exchanges.iter().map(|e| e.leg).collect::<Vec<_>>(),
        [
            Some(faultline::direction::Leg::Client),
            Some(faultline::direction::Leg::Upstream)
        ]
    );
}

/// Classic pcap has no interfaces, so it names no legs: a reset upload and its retry showed as
/// four attempts of one request on leg "unknown" (each leg's copy an attempt), and `--leg
/// client` read nothing and said "OK: 0 uploads". The legs are inferred from the flows (a flow
/// to the listen address followed by one to another server carrying the same request), and
/// `--leg` on a capture that names no legs is refused (exit 2).
#[test]
fn classic_pcap_legs_are_inferred_and_a_leg_filter_is_refused() {
    let mut s = Script::new();
    let body = s.bytes(200_000);
    let why = r#"faultline: rule "die" reset client->upstream after 65536 bytes"#;
    s.attempt(
        "PUT",
        "/upload/data.bin",
        &body,
        Answer::ResetAfter(65_536, why),
    );
    s.attempt("PUT", "/upload/data.bin", &body, Answer::Status(201));
    let path = s.write("legs.pcap");
    let report = inspect(&path);
    let text = report.render_text();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("they were inferred from its flows")),
        "{text}"
    );
    assert_eq!(report.attempt_groups.len(), 2, "one per leg: {text}");
    let legs: Vec<_> = report.attempt_groups.iter().map(|g| g.leg).collect();
    assert!(
        legs.contains(&Some(faultline::direction::Leg::Client))
            && legs.contains(&Some(faultline::direction::Leg::Upstream)),
        "{text}"
    );
    assert!(
        report.attempt_groups.iter().all(|g| g.attempts.len() == 2),
        "{text}"
    );
    assert_eq!(report.leg_comparisons.len(), 2, "{text}");
    let refused = inspect_path(
        &path,
        &InspectOptions {
            leg: LegFilter::Client,
            key_log: Vec::new(),
        },
    )
    .expect_err("--leg client on a capture without legs");
    assert_eq!(refused.exit_code(), 2);
    assert!(
        refused
            .to_string()
            .contains("--leg client needs a capture that names its legs"),
        "{refused}"
    );
}

#[test]
fn identical_retries_are_ok() {
    let mut s = Script::new();
    let body = s.bytes(30_000);
    let target = md5_target(&body);
    s.attempt(
        "PUT",
        &target,
        &body,
        Answer::ResetAfter(10_000, "faultline: rule \"r\" reset"),
    );
    s.attempt("PUT", &target, &body, Answer::Status(503));
    s.attempt("PUT", &target, &body, Answer::Status(201));
    let report = inspect_path(
        &s.write("ok.pcapng"),
        &InspectOptions {
            leg: LegFilter::Client,
            key_log: Vec::new(),
        },
    )
    .expect("read");
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    assert!(
        text.contains("OK: 1 upload, 1 retried, all retries identical"),
        "{text}"
    );
}

// ---- hand-built classic pcap (microsecond magic, big-endian, Ethernet) ----

fn frame(src_port: u16, dst_port: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = 40 + payload.len();
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    if src_port != 80 {
        // client -> server: addresses in that order
    } else {
        let n = f.len();
        f[n - 8..n - 4].copy_from_slice(&[10, 0, 0, 2]);
        f[n - 4..].copy_from_slice(&[10, 0, 0, 1]);
    }
    f.extend_from_slice(&src_port.to_be_bytes());
    f.extend_from_slice(&dst_port.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&0u32.to_be_bytes());
    f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

fn classic_pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = 0xa1b2_c3d4u32.to_be_bytes().to_vec();
    out.extend_from_slice(&2u16.to_be_bytes());
    out.extend_from_slice(&4u16.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(1_780_000_000u32 + i as u32).to_be_bytes());
        out.extend_from_slice(&(i as u32 * 10).to_be_bytes());
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// A PUT split into segments delivered out of order, with retransmissions and an overlap.
fn reordered_capture() -> (Vec<u8>, Vec<u8>) {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const FIN: u8 = 0x01;
    let body: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut req = format!(
        "PUT {} HTTP/1.1\r\nContent-Length: 3000\r\n\r\n",
        md5_target(&body)
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let isn = 0xffff_fa00u32; // sequence numbers wrap inside the request
    let at = |off: usize| isn.wrapping_add(1).wrapping_add(off as u32);
    let seg = |from: usize, to: usize| frame(5555, 80, at(from), ACK, &req[from..to]);
    let mut corrupted_retx = req[1000..1500].to_vec();
    corrupted_retx.iter_mut().for_each(|b| *b = b'!');
    let frames = vec![
        frame(5555, 80, isn, SYN, b""),
        frame(80, 5555, 77, SYN | ACK, b""),
        seg(0, 1000),
        seg(2000, req.len()), // out of order
        seg(0, 1000),         // retransmission
        frame(5555, 80, at(1000), ACK, &req[1000..1500]),
        frame(5555, 80, at(1000), ACK, &corrupted_retx), // a later copy never wins over the first
        seg(1200, 2100),                                 // overlap fills the hole
        frame(5555, 80, at(req.len()), FIN | ACK, b""),
        frame(
            80,
            5555,
            78,
            ACK,
            b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        ),
    ];
    (classic_pcap(&frames), body)
}

#[test]
fn hand_built_pcap_with_retransmissions_and_reordering_reassembles() {
    let (file, body) = reordered_capture();
    let report = inspect_bytes(&file, &InspectOptions::default()).expect("readable");
    let text = report.render_text();
    assert_eq!(report.exchanges.len(), 1, "{text}");
    let ex = &report.exchanges[0];
    assert_eq!(
        (ex.request.length, ex.request.complete),
        (3000, true),
        "{text}"
    );
    assert_eq!(ex.request.md5, hex::encode(Md5::digest(&body)));
    assert_eq!(ex.response.status, Some(201));
    assert_eq!(report.exit_code(), 0, "{text}");
    assert_eq!(report.content_checks.len(), 1);
}

#[test]
fn truncations_and_garbage_never_panic() {
    let (file, _) = reordered_capture();
    let mut s = Script::new();
    let body = s.bytes(3_000);
    s.attempt("PUT", "/a", &body, Answer::Status(201));
    let ng = std::fs::read(s.write("small.pcapng")).expect("read back");
    for capture in [&file, &ng] {
        for cut in 0..capture.len() {
            match inspect_bytes(&capture[..cut], &InspectOptions::default()) {
                Ok(report) => {
                    let _ = report.render_text();
                    let _ = report.to_json();
                }
                Err(e) => assert_eq!(e.exit_code(), 2),
            }
        }
        let mut x = 0x1234_5678_9abc_def0u64;
        for i in 0..2_000 {
            let mut damaged = capture.clone();
            for _ in 0..(1 + i % 4) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x as usize) % damaged.len();
                damaged[at] = (x >> 32) as u8;
            }
            if let Ok(r) = inspect_bytes(&damaged, &InspectOptions::default()) {
                let _ = r.render_text();
            }
        }
    }
    let mut x = 99u64;
    let garbage: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let err = inspect_bytes(&garbage, &InspectOptions::default()).expect_err("garbage header");
    assert_eq!(err.exit_code(), 2);
    assert!(inspect_path(
        Path::new("/nonexistent/capture.pcapng"),
        &InspectOptions::default()
    )
    .is_err_and(|e| e.to_string().contains("/nonexistent/capture.pcapng")));
    let cut = &file[..file.len() - 3];
    let r = inspect_bytes(cut, &InspectOptions::default()).expect("valid header");
    assert!(r.capture.damage.is_some());
}

#[test]
#[ignore = "throughput measurement: cargo test --release -- --ignored --nocapture"]
fn throughput_on_a_200_mb_capture() {
    let mut s = Script::new();
    let body = s.bytes(10 * 1024 * 1024);
    for i in 0..10 {
        s.attempt(
            "PUT",
            &md5_target(&body),
            &body,
            Answer::Status(if i % 3 == 0 { 500 } else { 201 }),
        );
    }
    let path = s.write("throughput.pcapng");
    let size = std::fs::metadata(&path).expect("size").len();
    let start = Instant::now();
    let report = inspect(&path);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "inspect: {:.1} MB in {secs:.2} s = {:.1} MB/s ({} exchanges, verdict {:?})",
        size as f64 / 1e6,
        size as f64 / 1e6 / secs,
        report.exchanges.len(),
        report.verdict()
    );
    assert_eq!(report.exit_code(), 0, "{}", report.verdict_line);
}

/// Regression (issue 8): a pcapng file holding several sections, here two faultline captures
/// concatenated as `cat a.pcapng b.pcapng` does, is read to its end: inspect sees the flows and
/// exchanges of both, and tshark counts the same packets and TCP connections.
#[test]
fn concatenated_captures_are_read_completely_and_tshark_agrees() {
    let mut a = Script::new();
    let body = a.bytes(20_000);
    a.attempt("PUT", &md5_target(&body), &body, Answer::Status(201));
    let a = a.write("cat-a.pcapng");
    let mut b = Script::new();
    b.next_conn = 7; // other ports: the same 4-tuples would be told apart by section anyway
    let body = b.bytes(30_000);
    b.attempt("PUT", "/upload/b.bin", &body, Answer::Status(500));
    b.attempt("PUT", "/upload/b.bin", &body, Answer::Status(201));
    let b = b.write("cat-b.pcapng");
    let mut joined = std::fs::read(&a).expect("read a");
    joined.extend(std::fs::read(&b).expect("read b"));
    let path = a.with_file_name("cat-a-b.pcapng");
    std::fs::write(&path, &joined).expect("write the concatenation");

    let (alone_a, alone_b, report) = (inspect(&a), inspect(&b), inspect(&path));
    let text = report.render_text();
    assert!(report.capture.damage.is_none(), "{text}");
    assert_eq!(report.capture.sections, 2, "{text}");
    assert_eq!(
        report.capture.packets,
        alone_a.capture.packets + alone_b.capture.packets
    );
    assert_eq!(
        report.flows.len(),
        6,
        "two legs of three connections: {text}"
    );
    assert_eq!(report.exchanges.len(), 6, "{text}");
    assert_eq!(
        report.attempt_groups.len(),
        2,
        "b's retry on each leg: {text}"
    );
    assert_eq!(
        report.content_checks.len(),
        2,
        "a's upload on each leg: {text}"
    );
    assert!(report.exchanges.iter().any(|e| e.target == "/upload/b.bin"));
    assert_eq!(report.exit_code(), 0, "{text}");

    let (frames, status) = tshark::packet_count(&path);
    assert!(
        status.success(),
        "tshark read the concatenation with errors"
    );
    assert_eq!(
        frames as u64, report.capture.packets,
        "tshark's frame count"
    );
    let streams: std::collections::BTreeSet<String> =
        tshark::fields(&path, Some("tcp"), &["tcp.stream"])
            .into_iter()
            .flatten()
            .collect();
    assert_eq!(streams.len(), report.flows.len(), "tshark's TCP streams");
    let requests = tshark::fields(
        &path,
        Some("http.request"),
        &["http.request.method", "http.request.uri"],
    );
    let mut seen: Vec<String> = report
        .exchanges
        .iter()
        .map(|e| format!("{} {}", e.method, e.target))
        .collect();
    let mut theirs: Vec<String> = requests.iter().map(|r| r.join(" ")).collect();
    seen.sort();
    theirs.sort();
    assert_eq!(
        theirs, seen,
        "tshark's HTTP requests (decoded on both ports)"
    );
}

/// A download whose bytes do not match the md5 in its path is corrupt on both legs, named by its
/// target; the same download compressed (Content-Encoding) is not the addressed content and is not
/// checked.
#[test]
fn downloads_are_checked_against_their_address_unless_compressed() {
    let mut s = Script::new();
    let body = s.bytes(50_000);
    let mut served = body.clone();
    served[12_345] ^= 1;
    let target = md5_target(&body);
    s.download(&target, 200, "", &served, None);
    let report = inspect(&s.write("download-corrupt.pcapng"));
    let text = report.render_text();
    assert_eq!(report.exit_code(), 1, "{text}");
    let md5 = hex::encode(Md5::digest(&body));
    assert_eq!(report.findings.len(), 2, "one per leg: {text}");
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.contains(&format!("download of md5 {md5}")) && f.contains("MISMATCH")),
        "{text}"
    );
    // One object (counted once whichever legs show it), wrong on each leg.
    assert_eq!(report.summary.downloads, 1);

    let mut s = Script::new();
    s.download(&target, 200, "Content-Encoding: gzip\r\n", &served, None);
    let report = inspect(&s.write("download-gzip.pcapng"));
    assert_eq!(report.exit_code(), 0, "{}", report.render_text());
    assert!(report.objects.is_empty());
}

/// A download cut after 20,000 bytes and resumed with `Range: bytes=20000-` on a new connection is
/// one object: its check matches when the 206 continues the bytes, and when the 206 carries other
/// bytes the finding names the object.
#[test]
fn a_download_resumed_with_range_is_checked_as_one_object() {
    for corrupt in [false, true] {
        let mut s = Script::new();
        let body = s.bytes(50_000);
        let target = md5_target(&body);
        s.download(&target, 200, "", &body, Some(20_000));
        let mut rest = body[20_000..].to_vec();
        if corrupt {
            rest[5] ^= 1;
        }
        s.download(
            &target,
            206,
            "Content-Range: bytes 20000-49999/50000\r\n",
            &rest,
            None,
        );
        let report = inspect(&s.write(&format!("range-{corrupt}.pcapng")));
        let text = report.render_text();
        assert_eq!(report.objects.len(), 2, "one per leg: {text}");
        for o in &report.objects {
            assert_eq!(o.pieces.len(), 2, "{text}");
            assert_eq!((o.pieces[1].offset, o.length), (20_000, 50_000), "{text}");
        }
        if corrupt {
            assert_eq!(report.exit_code(), 1, "{text}");
            assert!(text.contains("content MISMATCH"), "{text}");
        } else {
            assert_eq!(report.exit_code(), 0, "{text}");
            // One object, seen on both legs: counted once, as uploads are.
            assert!(text.contains("1 download checked"), "{text}");
        }
    }
}

/// `cat a.pcapng b.pcapng` (or mergecap) of two runs showed only the first run's scenario, seed
/// and replay, with no warning. The concatenation lists both runs and warns; mergecap's file,
/// which keeps only the first file's comments, warns which files it merged.
#[test]
fn a_capture_of_two_runs_names_both_or_says_it_cannot() {
    let meta = |name: &str, seed: u64| CaptureMeta {
        scenario: name.into(),
        seed,
        command_line: format!("faultline run {name}.toml --capture {name}.pcapng"),
        scenario_text: Some(format!("name = {name:?}\n")),
        scenario_origin: format!("{name}.toml"),
        ..CaptureMeta::default()
    };
    let mut paths = Vec::new();
    for (name, seed, conn) in [("runs-a", 5u64, 1u64), ("runs-b", 6, 7)] {
        let mut s = Script::new();
        s.next_conn = conn;
        let body = s.bytes(5_000);
        s.attempt("PUT", &md5_target(&body), &body, Answer::Status(201));
        paths.push(s.write_run(&format!("{name}.pcapng"), meta(name, seed)));
    }
    let mut joined = std::fs::read(&paths[0]).expect("read a");
    joined.extend(std::fs::read(&paths[1]).expect("read b"));
    let cat = paths[0].with_file_name("runs-cat.pcapng");
    std::fs::write(&cat, &joined).expect("write the concatenation");
    let report = inspect(&cat);
    let text = report.render_text();
    assert_eq!(report.run.as_ref().map(|r| r.seed), Some(5), "{text}");
    let others: Vec<(String, u64)> = report
        .other_runs
        .iter()
        .map(|r| (r.scenario.clone(), r.seed))
        .collect();
    assert_eq!(others, [("runs-b".to_string(), 6)], "{text}");
    assert!(
        text.contains(r#"warning: the capture holds 2 faultline runs (scenario "runs-a" seed 5; scenario "runs-b" seed 6)"#),
        "{text}"
    );
    let md = report.render_markdown();
    assert!(md.contains("| run 2 | faultline "), "{md}");
    assert!(md.contains("scenario runs-b, seed 6"), "{md}");
    assert!(report.render_html().contains("scenario runs-b, seed 6"));

    let merged = paths[0].with_file_name("runs-merged.pcapng");
    let status = std::process::Command::new("mergecap")
        .arg("-w")
        .arg(&merged)
        .args(&paths)
        .status()
        .expect("mergecap (installed with tshark by tests/install-deps.sh)");
    assert!(status.success(), "mergecap failed");
    let report = inspect(&merged);
    let text = report.render_text();
    let run = report.run.as_ref().expect("the first file's run");
    assert_eq!(
        run.command,
        "faultline run runs-a.toml --capture runs-a.pcapng"
    );
    assert!(
        text.contains("warning: the capture was merged from 2 files by mergecap"),
        "{text}"
    );
    assert_eq!(report.exchanges.len(), 4, "{text}");
}

/// Runs `editcap ARGS` (installed with tshark by tests/install-deps.sh); panics when it fails.
fn editcap(args: &[&std::ffi::OsStr]) {
    let out = std::process::Command::new("editcap")
        .args(args)
        .output()
        .expect("editcap (installed with tshark by tests/install-deps.sh)");
    assert!(
        out.status.success(),
        "editcap {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The black-box repro: two identical 400000-byte uploads to one md5 path, then one data packet
/// of the second upload's client leg deleted with editcap. inspect said "CORRUPT: ... attempt 2
/// is attempt 1's first N of 400000 bytes (... body ends early)" of an exchange it called "cut
/// by capture gap". Now that attempt is not compared, and the verdict is INCONCLUSIVE (exit 3),
/// not OK. The same capture cut by `editcap -s 200` is INCONCLUSIVE too, never "OK: 0 uploads".
#[test]
fn bytes_the_capture_missed_are_never_corruption_nor_clean() {
    let mut s = Script::new();
    let body = s.bytes(400_000);
    let target = md5_target(&body);
    // Refused, so the second is its retry (a write after an accepted one is a new write).
    s.attempt("PUT", &target, &body, Answer::Status(503));
    s.attempt("PUT", &target, &body, Answer::Status(200));
    let whole = s.write("gap.pcapng");
    assert_eq!(inspect(&whole).exit_code(), 0, "the whole capture is clean");
    let frames = tshark::fields(
        &whole,
        Some("tcp.stream==2 and tcp.len>1000"),
        &["frame.number"],
    );
    let second = frames.get(1).and_then(|f| f.first()).expect("data packets");
    let gap = whole.with_file_name("gap-1.pcapng");
    editcap(&[
        whole.as_os_str(),
        gap.as_os_str(),
        std::ffi::OsStr::new(second),
    ]);
    let report = inspect(&gap);
    let text = report.render_text();
    assert!(report.findings.is_empty(), "{text}");
    assert_eq!(report.verdict(), Verdict::Inconclusive, "{text}");
    assert_eq!(report.exit_code(), 3);
    let client = report
        .attempt_groups
        .iter()
        .find(|g| g.leg == Some(faultline::direction::Leg::Client))
        .expect("the client leg's retries");
    let why = client.attempts[1].not_compared.as_deref().unwrap_or("");
    assert!(why.starts_with("capture gap"), "{text}");
    assert!(
        report
            .verdict_line
            .starts_with("INCONCLUSIVE: the capture is missing payload (bytes missing on flow 2)"),
        "{text}"
    );

    let snapped = whole.with_file_name("gap-snap.pcapng");
    editcap(&[
        std::ffi::OsStr::new("-s"),
        std::ffi::OsStr::new("200"),
        whole.as_os_str(),
        snapped.as_os_str(),
    ]);
    let report = inspect(&snapped);
    let text = report.render_text();
    assert!(report.capture.truncated_packets > 0, "{text}");
    assert_eq!(report.verdict(), Verdict::Inconclusive, "{text}");
    assert!(!report.verdict_line.starts_with("OK"), "{text}");
    assert!(
        text.contains("packets captured shorter than they crossed the wire"),
        "{text}"
    );
}

/// The black-box repro: `gzip -c x.pcapng > x.pcapng.gz` (as captures are attached to GitHub
/// issues) was refused ("gzip-compressed … gunzip it first"). `faultline inspect x.pcapng.gz`
/// now reads it and says what the uncompressed capture says, with the same exit status.
#[test]
fn a_capture_gzipped_by_the_gzip_binary_is_inspected_as_it_is() {
    let mut s = Script::new();
    let body = s.bytes(200_000);
    let target = md5_target(&body);
    s.attempt("PUT", &target, &body, Answer::Status(201));
    let plain = s.write("gzipped.pcapng");
    let zipped = plain.with_extension("pcapng.gz");
    let out = std::process::Command::new("gzip")
        .arg("-c")
        .arg(&plain)
        .output()
        .expect("gzip (a Debian essential package)");
    assert!(out.status.success(), "gzip: {out:?}");
    std::fs::write(&zipped, &out.stdout).expect("write the .gz");
    let run = |path: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("inspect")
            .arg(path)
            .output()
            .expect("faultline inspect")
    };
    let want = run(&plain);
    let got = run(&zipped);
    let text = String::from_utf8_lossy(&got.stdout);
    assert_eq!(
        got.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert!(text.contains("OK: 1 upload, none retried"), "{text}");
    assert!(text.contains("matches"), "{text}");
    // The same report, but for the file name the header gives.
    let name = |t: &str, p: &Path| t.replace(&p.display().to_string(), "CAPTURE");
    assert_eq!(
        name(&text, &zipped),
        name(&String::from_utf8_lossy(&want.stdout), &plain)
    );
}

/// The black-box repro, end to end: `fault.truncate={after="100KiB"}` on a 3,000,000-byte h2c
/// download by `curl --http2-prior-knowledge` through the real proxy. faultline ends the stream
/// with END_STREAM at the cut, so the client leg's stream looked whole (`102400`,
/// `response_ended: true`). It is now marked `102400/3000000 CUT`, as HTTP/1 is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_h2c_download_is_marked_cut_like_http1() {
    use std::sync::Arc;

    use faultline::proxy::{self, RunPlan};
    use faultline::scenario::Scenario;

    const SIZE: usize = 3_000_000;
    crate::support::bounded("h2c truncate marked CUT", async {
        let server = crate::support::upstream::serve(|stream| async move {
            let Ok(mut conn) = h2::server::handshake(stream).await else {
                return;
            };
            while let Some(Ok((_, mut respond))) = conn.accept().await {
                tokio::spawn(async move {
                    let response = http::Response::builder()
                        .status(200)
                        .header("content-length", SIZE.to_string())
                        .body(())
                        .expect("a response head");
                    if let Ok(mut send) = respond.send_response(response, false) {
                        let _ = send.send_data(Bytes::from(vec![0x5a; SIZE]), true);
                    }
                });
            }
        })
        .await;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("inspect");
        std::fs::create_dir_all(&dir).expect("dir");
        let capture = dir.join("h2c-truncate.pcapng");
        let text = "name = \"h2c-truncate\"\nseed = 3\n[[rule]]\nname = \"cut\"\nmatch = { path = \"/big\", direction = \"upstream->client\" }\nfault.truncate = { after = \"100KiB\" }\n";
        let scenario = Scenario::from_toml(text, "t.toml", "t").expect("a valid scenario");
        let running = proxy::start(RunPlan {
            scenario: Arc::new(scenario),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream: server.spec(),
            seed: 3,
            capture: Some(capture.clone()),
            command_line: String::new(),
            live_rules: false,
        })
        .await
        .expect("the proxy starts");
        let url = format!("http://{}/big", running.local_addr);
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["--silent", "--max-time", "20", "--http2-prior-knowledge", "-o", "/dev/null"])
                .args(["--write-out", "%{size_download}"])
                .arg(url)
                .output()
                .expect("curl is installed (tests/install-deps.sh)")
        })
        .await
        .expect("curl's task");
        // curl notices the body ended short of its content-length (exit 92, "HTTP/2 stream
        // was not closed cleanly"): the client was not fooled, and neither may the report be.
        assert_ne!(out.status.code(), Some(0), "{out:?}");
        crate::support::running::wait_idle(&running).await;
        running.shutdown();
        tokio::time::timeout(crate::support::TEST_LIMIT, running.wait())
            .await
            .expect("the run stops");
        let report = inspect(&capture);
        let text = report.render_text();
        let streams: Vec<(Option<Leg>, bool, bool, String)> = report
            .h2_streams
            .iter()
            .map(|s| {
                (
                    s.leg,
                    s.response_ended,
                    s.response_cut,
                    s.response_bytes_text(),
                )
            })
            .collect();
        assert!(
            streams.contains(&(Some(Leg::Client), true, true, "102400/3000000 CUT".into())),
            "{streams:?}\n{text}"
        );
        // faultline cancels the stream toward the upstream (RST_STREAM CANCEL): whether the
        // server had sent every byte by then is a race. That leg is cut exactly when its
        // response is short or never ended.
        let upstream = report
            .h2_streams
            .iter()
            .find(|s| s.leg == Some(Leg::Upstream))
            .expect("the upstream leg's stream");
        let whole = upstream.response_ended && upstream.response_bytes == SIZE as u64;
        assert_eq!(upstream.response_cut, !whole, "{streams:?}\n{text}");
        assert!(text.contains("102400/3000000 CUT"), "{text}");
    })
    .await;
}

/// The black-box repro: a capture cut inside a pcapng block (`head -c N`, as after `kill -9`)
/// was reported `OK` (exit 0) with `damage` set, the in-flight upload counted "not accepted" and
/// its legs "(no fault, ends differ)". Now the verdict is INCONCLUSIVE (exit 3) and the upload and
/// the legs say the capture ended there.
#[test]
fn a_capture_cut_inside_a_block_is_inconclusive_not_clean() {
    let mut s = Script::new();
    let first = s.bytes(20_000);
    let second = s.bytes(300_000);
    s.attempt("PUT", &md5_target(&first), &first, Answer::Status(201));
    s.attempt("PUT", &md5_target(&second), &second, Answer::Status(201));
    let whole = s.write("cut-block.pcapng");
    assert_eq!(inspect(&whole).exit_code(), 0, "the whole capture is clean");
    let bytes = std::fs::read(&whole).expect("read capture");
    let cut = whole.with_file_name("cut-block-cut.pcapng");
    // Inside the second upload (the file is ~650000 bytes), where the client leg has carried
    // one 70000-byte piece more than the upstream leg.
    std::fs::write(&cut, &bytes[..bytes.len() / 2 + 73_001]).expect("write cut capture");
    let report = inspect(&cut);
    let text = report.render_text();
    assert!(report.capture.damage.is_some(), "{text}");
    assert!(report.findings.is_empty(), "{text}");
    assert_eq!(report.verdict(), Verdict::Inconclusive, "{text}");
    assert_eq!(report.exit_code(), 3, "{text}");
    assert!(
        report
            .verdict_line
            .starts_with("INCONCLUSIVE: the capture is missing payload (reading stopped: capture cut inside a pcapng block"),
        "{text}"
    );
    assert!(
        report
            .verdict_line
            .contains("2 uploads (1 cut by the end of the capture)"),
        "{text}"
    );
    assert!(!text.contains("not accepted"), "{text}");
    let legs = report
        .leg_comparisons
        .iter()
        .find(|l| !l.differences.is_empty())
        .expect("the legs of the cut upload differ at the cut");
    assert!(legs.capture_ended, "{text}");
    assert!(!legs.faultline_bug, "{text}");
    assert!(!text.contains("ends differ"), "{text}");
    assert!(
        text.contains("(no fault, the capture ended while they were open)"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
    assert_eq!(json["verdict"], "inconclusive", "{json}");
    let problems =
        faultline::inspect::schema::violations(&json, &mut std::collections::BTreeSet::new());
    assert!(problems.is_empty(), "{problems:?}");
}

/// The black-box repros of inspect's command line: `--html -` wrote a file literally named `-`
/// (now the page goes to stdout, and with `--json` both cannot), and a glob matching two
/// captures (`captures/NAME-*.pcapng` after a second run) got clap's bare "unexpected argument"
/// (now both are named and the newest suggested).
#[test]
fn html_dash_is_stdout_and_two_captures_are_named() {
    use std::process::Command;
    let mut s = Script::new();
    let body = s.bytes(1_000);
    s.attempt("PUT", &md5_target(&body), &body, Answer::Status(201));
    let older = s.write("cli-older.pcapng");
    let mut s = Script::new();
    let body = s.bytes(1_000);
    s.attempt("PUT", &md5_target(&body), &body, Answer::Status(201));
    let newer = s.write("cli-newer.pcapng");
    let now = SystemTime::now();
    for (path, age) in [(&older, 60), (&newer, 0)] {
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(now - std::time::Duration::from_secs(age)))
            .expect("set mtime");
    }
    let cwd = newer.with_file_name(format!("cli-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&cwd).expect("cwd");
    let faultline = |args: &[&std::ffi::OsStr]| {
        Command::new(crate::support::daemon::FAULTLINE)
            .current_dir(&cwd)
            .args(args)
            .output()
            .expect("run faultline")
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);

    let out = faultline(&[os("inspect"), newer.as_os_str(), os("--html"), os("-")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("<!DOCTYPE html>"), "{stdout:.200}");
    assert!(!cwd.join("-").exists(), "no file named -");

    let out = faultline(&[
        os("inspect"),
        newer.as_os_str(),
        os("--html"),
        os("-"),
        os("--json"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--html - writes the page to stdout, where --json writes too"),
        "{stderr}"
    );
    assert!(!cwd.join("-").exists(), "no file named -");

    let out = faultline(&[os("inspect"), older.as_os_str(), newer.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "inspect reads one capture at a time, and was given 2: {}, {}",
            older.display(),
            newer.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("the newest is {}", newer.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
}

/// The black-box repro, with real curl and nginx: a download cut by faultline, the file changed on
/// the server, then `curl -C -` (which sends no If-Range): nginx answers 206 with the new
/// version's bytes, and the file curl assembles matches neither version. inspect said OK with
/// no note; now the two ETags and both exchanges are named (exit 1).
#[test]
fn a_curl_resume_across_two_versions_of_a_file_is_named() {
    use crate::support::daemon::{run_bounded, Daemon, FAULTLINE};
    use crate::support::nginx::Nginx;
    use std::process::Command;
    let dir = crate::support::temp_dir::TempDir::new("inspect-range-versions");
    let (www, logs) = (dir.path().join("www"), dir.path().join("logs"));
    for d in [&www, &logs] {
        std::fs::create_dir_all(d).expect("dir");
    }
    let v1 = crate::support::random_bytes(400_000, 11);
    let v2 = crate::support::random_bytes(400_000, 12);
    std::fs::write(www.join("file.bin"), &v1).expect("v1");
    let nginx = Nginx::start_plain(
        dir.path(),
        &format!("    location / {{ root {}; }}", www.display()),
    );
    let scenario = dir.path().join("range.toml");
    std::fs::write(
        &scenario,
        "name = \"range-resume\"\nseed = 1\n\n[proxy]\nlisten = \"127.0.0.1:0\"\n\n\
         [[rule]]\nname = \"first download cut\"\n\
         match = { method = \"GET\", attempt = 1, status = 200 }\nfault.truncate = { after = \"100KiB\" }\n",
    )
    .expect("scenario");
    let capture = dir.path().join("range.pcapng");
    let mut proxy = Daemon::start(
        Command::new(FAULTLINE)
            .arg("run")
            .arg(&scenario)
            .arg("--upstream")
            .arg(nginx.addr.to_string())
            .arg("--capture")
            .arg(&capture),
        &logs,
        "faultline",
    );
    let url = format!("http://{}/file.bin", proxy.faultline_address());
    let out = dir.path().join("out.bin");
    let curl = |args: &[&str], label: &str| {
        run_bounded(
            Command::new("curl")
                .args(["-sS", "-o"])
                .arg(&out)
                .args(["-w", "%{http_code}"])
                .args(args)
                .arg(&url)
                .env_remove("http_proxy"),
            &logs,
            label,
            std::time::Duration::from_secs(60),
        )
    };
    let first = curl(&[], "curl-cut");
    assert_eq!(first.stdout.trim(), "200", "{}", first.stderr);
    assert_eq!(first.status.code(), Some(18), "cut short: {}", first.stderr);
    // The new version: other bytes, another mtime, so another ETag (nginx: mtime-size).
    std::fs::write(www.join("file.bin"), &v2).expect("v2");
    std::fs::File::options()
        .write(true)
        .open(www.join("file.bin"))
        .and_then(|f| f.set_modified(SystemTime::now() + std::time::Duration::from_secs(100)))
        .expect("mtime");
    let resumed = curl(&["-C", "-"], "curl-resume");
    assert_eq!(resumed.stdout.trim(), "206", "{}", resumed.stderr);
    let got = std::fs::read(&out).expect("out");
    assert!(got != v1 && got != v2, "the file matches neither version");
    let done = proxy.stop();
    assert!(done.status.success(), "{}", done.stderr);
    nginx.stop();

    let report = inspect(&capture);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 1, "{text}");
    let named: Vec<&String> = report
        .findings
        .iter()
        .filter(|f| f.contains("/file.bin") && f.contains("stitched from two versions"))
        .collect();
    // The client leg only: upstream, nginx's first answer crossed whole (faultline cut it on
    // the client leg), so nothing was stitched there.
    assert_eq!(named.len(), 1, "{text}");
    assert!(
        named
            .iter()
            .all(|f| f.contains("(client leg, exchanges 0, 2)")
                && f.contains("no If-Range")
                && f.contains("answered ETag \"")
                && f.contains("(Range from byte ")),
        "{text}"
    );
}

/// A maintainer's trial flipped one bit of a clean capture (a bug-report attachment damaged on
/// the way) and read CORRUPT: "attempt 2 ... differs from attempt 1", while tshark flagged the
/// packet's TCP checksum. faultline writes every checksum right, so in its capture a wrong one
/// is damage to the file: that packet's bytes are read as missing, the verdict is INCONCLUSIVE,
/// and a warning says what happened. tshark, checking checksums, names the same packet.
#[test]
fn a_capture_damaged_after_it_was_written_is_inconclusive_not_corrupt() {
    let mut s = Script::new();
    let body = s.bytes(200_000);
    let target = md5_target(&body);
    s.attempt("PUT", &target, &body, Answer::Status(503));
    s.attempt("PUT", &target, &body, Answer::Status(201));
    let whole = s.write("damaged-whole.pcapng");
    assert_eq!(inspect(&whole).exit_code(), 0, "the whole capture is clean");
    // One bit of the retry's body, in the file as written.
    let mut bytes = std::fs::read(&whole).expect("read the capture");
    let needle = &body[150_000..150_032];
    let at = bytes
        .windows(needle.len())
        .rposition(|w| w == needle)
        .expect("the retry's bytes are in the file");
    bytes[at + 5] ^= 0x01;
    let damaged = whole.with_file_name("damaged.pcapng");
    std::fs::write(&damaged, &bytes).expect("write the damaged capture");

    let report = inspect(&damaged);
    let text = report.render_text();
    assert!(report.findings.is_empty(), "{text}");
    assert_eq!(report.verdict(), Verdict::Inconclusive, "{text}");
    let warning = report
        .warnings
        .iter()
        .find(|w| w.starts_with("the capture file was damaged after faultline wrote it: 1 packet fails its TCP checksum (the first is packet "))
        .unwrap_or_else(|| panic!("no damage warning: {text}"));
    let bad = tshark::run(
        &damaged,
        &[
            "-o",
            "tcp.check_checksum:TRUE",
            "-Y",
            "tcp.checksum.status == 0",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
    );
    let frames: Vec<&str> = bad.stdout.lines().collect();
    assert_eq!(frames.len(), 1, "tshark: {frames:?}");
    assert!(
        warning.contains(&format!("(the first is packet {})", frames[0])),
        "{warning} / tshark frame {}",
        frames[0]
    );
}

/// Trial (HTTP/1 black box): a truncate cut a close-delimited download (no Content-Length, not
/// chunked, `Connection: close`); curl exited 0 with a third of the file and inspect said the
/// body was complete, leaving it out of the verdict's cut count. And an upstream that sent 5 of
/// its stated 100 bytes with no rule acting on it had no word in the verdict. Both read back
/// from a capture faultline's writer wrote: the fault's FIN to the client carries its mark.
#[test]
fn a_close_delimited_download_a_truncate_cut_is_cut_and_a_short_upstream_body_is_its_own() {
    let mut s = Script::new();
    let mark = r#"faultline: rule "cut" truncated upstream->client after 1000 bytes of the response body to GET /close (attempt 1) (status 200)"#;
    let body = s.bytes(3000);
    let addr = |s: &str| s.parse::<SocketAddr>().expect("addr");
    let (c, u) = (
        LegKey {
            conn: 1,
            leg: Leg::Client,
        },
        LegKey {
            conn: 1,
            leg: Leg::Upstream,
        },
    );
    for (key, i, r) in [
        (c, "127.0.0.1:41001", "127.0.0.1:3030"),
        (u, "127.0.0.1:51001", "127.0.0.1:8080"),
    ] {
        let at = s.tick();
        s.events.push(CaptureEvent::Opened {
            key,
            initiator: addr(i),
            responder: addr(r),
            at,
        });
    }
    let request = b"GET /close HTTP/1.1\r\nHost: store\r\n\r\n";
    s.data(c, Side::Initiator, request, None);
    s.data(u, Side::Initiator, request, None);
    let mut response = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
    let head = response.len();
    response.extend_from_slice(&body);
    s.data(u, Side::Responder, &response, None);
    s.data(c, Side::Responder, &response[..head + 1000], None);
    // The truncate's FINs: to the client (the end of its close-delimited body) and to the
    // upstream, both marked; then the peers' own FINs.
    for (key, side, comment) in [
        (c, Side::Responder, Some(mark)),
        (u, Side::Initiator, Some(mark)),
        (u, Side::Responder, None),
        (c, Side::Initiator, None),
    ] {
        let at = s.tick();
        s.events.push(CaptureEvent::Fin {
            key,
            from: side,
            at,
            comment: comment.map(String::from),
        });
    }
    s.events.push(CaptureEvent::Closed { key: c });
    s.events.push(CaptureEvent::Closed { key: u });
    s.next_conn = 2;
    // The upstream's own short body: Content-Length 100, 5 bytes, then its FIN.
    s.download("/short", 200, "", &[b'h'; 100], Some(5));
    let report = inspect(&s.write("close-delimited-cut.pcapng"));
    let text = report.render_text();
    let close: Vec<(Option<faultline::direction::Leg>, u64, bool)> = report
        .exchanges
        .iter()
        .filter(|e| e.target == "/close")
        .map(|e| (e.leg, e.response.body_length, e.response.complete))
        .collect();
    assert_eq!(
        close,
        [
            (Some(faultline::direction::Leg::Client), 1000, false),
            (Some(faultline::direction::Leg::Upstream), 3000, true),
        ],
        "{text}"
    );
    assert!(text.contains("1000/? CUT"), "{text}");
    let cut = report
        .exchanges
        .iter()
        .find(|e| e.target == "/close" && e.leg == Some(faultline::direction::Leg::Client))
        .expect("the client's GET /close");
    assert!(cut.response.close_delimited, "{text}");
    assert_eq!(cut.response.cut_by.as_deref(), Some(mark), "{text}");
    assert_eq!(report.verdict, Verdict::Clean, "{text}");
    assert_eq!(report.exit_code(), 0, "{text}");
    assert_eq!(
        report.verdict_line,
        "OK: 4 HTTP exchanges, no uploads, 1 download cut by a fault (the client got 1000 bytes ended by a close it cannot tell from a whole body: no length to compare), 1 download cut short by the upstream (its Content-Length said 100, 5 arrived)",
        "{text}"
    );
}
