//! HTTP/2 through the real proxy, against real HTTP/2 stacks: grpcio ByteStream servers,
//! readers and writers (tests/grpc/bytestream.py in the venv tests/install-grpc.sh makes), curl
//! with `--http2-prior-knowledge` and hyperium's h2 client against an h2 (hyperium) server, raw
//! peers that break HTTP/2, and the captures read back by tshark's own http2 dissector; then
//! `faultline check`'s warning for HTTP/2 rules that cannot fire and `faultline demo --grpc`.
//!
//! The proxy runs in-process (`proxy::start` on 127.0.0.1:0) so the tests read its counters
//! (connections accepted, rules fired); the bad-peer, check and demo tests run the real binary.
//! grpcio missing fails every gRPC test here: `make test` installs it, and a test that skips
//! proves nothing. Each test bounds every wait; the whole file runs in about 10 s.

pub(crate) mod helpers {
    //! The grpcio venv, the Python ByteStream server and readers, the in-process proxy, and tshark
    //! views of HTTP/2 captures.

    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;
    use std::time::Duration;

    use faultline::proxy::stats::RunSummary;
    use faultline::proxy::{self, RunPlan, Running};
    use faultline::scenario::schema::UpstreamSpec;
    use faultline::scenario::Scenario;
    use serde_json::Value;
    use tokio::time::timeout;

    use crate::support::daemon::{run_bounded, Daemon};
    use crate::support::running::{wait_idle, SETTLE_LIMIT};
    pub use crate::support::temp_dir::TempDir;
    use crate::support::tshark;

    const REPO: &str = env!("CARGO_MANIFEST_DIR");
    /// A first install downloads one 7 MB wheel; far above it means a hang.
    const INSTALL_LIMIT: Duration = Duration::from_secs(10 * 60);
    /// One reader run (a few MiB on loopback takes well under a second).
    const CLIENT_LIMIT: Duration = Duration::from_secs(60);

    // --------------------------------------------------------------------------- grpcio

    /// The venv's python, installing grpcio once per test process; a failed install fails the
    /// test that asked.
    pub fn python() -> PathBuf {
        static GRPC: crate::support::venv::Tool = crate::support::venv::Tool::new(
            "install-grpc.sh",
            "FAULTLINE_GRPC_VENV",
            "grpc-venv",
            "grpcio is",
            INSTALL_LIMIT,
        );
        GRPC.venv().join("bin/python")
    }

    fn program() -> PathBuf {
        Path::new(REPO).join("tests/grpc/bytestream.py")
    }

    /// A grpcio ByteStream server (`bytestream.py serve ARGS`), stopped by PID.
    pub struct GrpcServer {
        daemon: Option<Daemon>,
        pub addr: SocketAddr,
    }

    /// One Read the server logged.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ServedRead {
        pub resource: String,
        pub offset: u64,
    }

    impl GrpcServer {
        pub fn start(dir: &Path, args: &[&str]) -> GrpcServer {
            let mut command = Command::new(python());
            command.arg(program()).arg("serve").args(args);
            let mut daemon = Daemon::start(&mut command, dir, "grpc-server");
            let addr = daemon.faultline_address();
            GrpcServer {
                daemon: Some(daemon),
                addr,
            }
        }

        pub fn spec(&self) -> UpstreamSpec {
            UpstreamSpec::Address {
                host: self.addr.ip().to_string(),
                port: self.addr.port(),
            }
        }

        /// Stops the server (SIGTERM, bounded) and returns its log (one line per call).
        pub fn stop_log(&mut self) -> String {
            self.daemon.take().expect("stopped once").stop().stderr
        }

        /// Stops the server (SIGTERM, bounded) and returns the Reads it served, in order.
        pub fn stop(&mut self) -> Vec<ServedRead> {
            self.stop_log()
                .lines()
                .filter_map(|line| {
                    let rest = line.strip_prefix("read ")?;
                    let mut words = rest.split(' ');
                    let resource = words.next()?.to_string();
                    let offset = words.next()?.strip_prefix("offset=")?.parse().ok()?;
                    Some(ServedRead { resource, offset })
                })
                .collect()
        }
    }

    /// One attempt of one blob, as the reader reports it.
    #[derive(Debug, Clone)]
    pub struct Attempt {
        pub offset: u64,
        pub status: String,
        /// grpcio's `details()` of a failed attempt (empty when it succeeded).
        pub detail: String,
        pub bytes: u64,
        pub seconds: f64,
    }

    /// One blob a reader read.
    #[derive(Debug, Clone)]
    pub struct BlobRead {
        pub resource: String,
        pub attempts: Vec<Attempt>,
        pub verified: bool,
        pub size: u64,
    }

    /// Checks a round in which exactly one of `blobs` Reads was reset (CANCELLED after some
    /// bytes, less than its 256 KiB) and resumed at the offset its bytes reached, the server
    /// seeing that `read_offset` (`served`), and every blob verified.
    pub fn one_read_reset_and_resumed(blobs: &[BlobRead], served: &[ServedRead]) {
        assert_eq!(blobs.len(), 3);
        assert!(
            blobs.iter().all(|b| b.verified),
            "every blob verifies against its sha256: {blobs:?}"
        );
        let reset: Vec<_> = blobs.iter().filter(|b| b.attempts.len() > 1).collect();
        assert_eq!(reset.len(), 1, "exactly one read was reset: {blobs:?}");
        let (first, second) = (&reset[0].attempts[0], &reset[0].attempts[1]);
        assert_eq!(first.status, "CANCELLED", "{reset:?}");
        assert!(
            first.bytes > 0 && first.bytes < 256 * 1024,
            "the first stream got data, less than the 256 KiB of DATA payload (framing counts): {first:?}"
        );
        assert_eq!(
            (second.offset, second.status.as_str()),
            (first.bytes, "OK"),
            "the reader resumed where its bytes stopped"
        );
        assert!(
            served.contains(&ServedRead {
                resource: reset[0].resource.clone(),
                offset: first.bytes
            }),
            "the server saw the resumed Read at read_offset {}: {served:?}",
            first.bytes
        );
    }

    /// Runs `bytestream.py read --target ADDR ARGS` (in a blocking task: the proxy shares the
    /// runtime) and returns its rounds of blob reads; the reader's exit status is in `verified`.
    pub async fn read(dir: &Path, target: SocketAddr, args: &[&str]) -> Vec<Vec<BlobRead>> {
        let mut command = Command::new(python());
        command
            .arg(program())
            .arg("read")
            .arg("--target")
            .arg(target.to_string())
            .args(args);
        let dir = dir.to_path_buf();
        let finished = tokio::task::spawn_blocking(move || {
            run_bounded(&mut command, &dir, "grpc-reader", CLIENT_LIMIT)
        })
        .await
        .expect("the reader's task");
        let report: Value = serde_json::from_str(finished.stdout.trim()).unwrap_or_else(|e| {
            panic!("the reader printed no report ({e}):\n{}", finished.output())
        });
        let rounds = report["rounds"].as_array().expect("rounds");
        rounds
            .iter()
            .map(|round| {
                round
                    .as_array()
                    .expect("a round")
                    .iter()
                    .map(|blob| BlobRead {
                        resource: blob["resource"].as_str().expect("resource").to_string(),
                        verified: blob["verified"].as_bool().expect("verified"),
                        size: blob["size"].as_u64().expect("size"),
                        attempts: blob["attempts"]
                            .as_array()
                            .expect("attempts")
                            .iter()
                            .map(|a| Attempt {
                                offset: a["offset"].as_u64().expect("offset"),
                                status: a["status"].as_str().expect("status").to_string(),
                                detail: a["detail"].as_str().expect("detail").to_string(),
                                bytes: a["bytes"].as_u64().expect("bytes"),
                                seconds: a["seconds"].as_f64().expect("seconds"),
                            })
                            .collect(),
                    })
                    .collect()
            })
            .collect()
    }

    // --------------------------------------------------------------------------- the proxy

    /// faultline in-process on 127.0.0.1:0 in front of `upstream`.
    pub struct Proxy {
        pub addr: SocketAddr,
        running: Option<Running>,
    }

    impl Proxy {
        /// `rules` are `[[rule]]` tables (and top-level keys before them); `proxy_keys` extra
        /// `[proxy]` lines.
        pub async fn start(
            upstream: UpstreamSpec,
            proxy_keys: &str,
            rules: &str,
            capture: Option<PathBuf>,
        ) -> Proxy {
            let text = format!("name = \"h2-test\"\nseed = 7\n[proxy]\n{proxy_keys}\n{rules}");
            let scenario = Scenario::from_toml(&text, "h2-test.toml", "h2-test")
                .unwrap_or_else(|e| panic!("valid test scenario: {e}\n{text}"));
            Proxy::start_scenario(scenario, upstream, capture).await
        }

        /// A shipped scenario file (`scenarios/NAME`), its upstream replaced by `upstream`.
        pub async fn shipped(name: &str, upstream: UpstreamSpec) -> Proxy {
            let path = Path::new(REPO).join("scenarios").join(name);
            let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            Proxy::start_scenario(scenario, upstream, None).await
        }

        async fn start_scenario(
            scenario: Scenario,
            upstream: UpstreamSpec,
            capture: Option<PathBuf>,
        ) -> Proxy {
            let running = proxy::start(RunPlan {
                scenario: Arc::new(scenario),
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                upstream,
                seed: 7,
                capture,
                command_line: String::new(),
                live_rules: false,
            })
            .await
            .expect("the proxy starts");
            Proxy {
                addr: running.local_addr,
                running: Some(running),
            }
        }

        /// Connections accepted so far.
        pub fn connections(&self) -> u64 {
            let running = self.running.as_ref().expect("still running");
            running.shared.stats.connections.load(Relaxed)
        }

        /// Waits until every connection ended by itself, then stops the run and returns what it
        /// did (the capture is complete once this returns).
        pub async fn finish(&mut self) -> RunSummary {
            let running = self.running.take().expect("finish is called once");
            wait_idle(&running).await;
            running.shutdown();
            timeout(SETTLE_LIMIT, running.wait())
                .await
                .expect("the run stops after shutdown")
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            if let Some(running) = &self.running {
                running.shutdown();
            }
        }
    }

    /// How often the rule named `name` fired.
    pub fn fired(summary: &RunSummary, name: &str) -> u64 {
        summary
            .rules
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no rule {name:?} in {summary:?}"))
            .fired
    }

    // --------------------------------------------------------------------------- tshark

    /// One TCP segment with payload as tshark decodes it with http2 on both servers' ports.
    #[derive(Debug, Clone)]
    pub struct Segment {
        pub frame: u64,
        pub stream: u64,
        pub src: u16,
        pub dst: u16,
        pub payload: Vec<u8>,
        /// HTTP/2 frame types whose last byte is in this segment (tshark's reassembly).
        pub types: Vec<u8>,
        pub stream_ids: Vec<u32>,
        /// Flags of each frame (`http2.flags`, present on every frame, unlike the per-type
        /// flag fields, so the lists line up with `types`).
        pub flags: Vec<u8>,
        pub comment: String,
    }

    /// `-d tcp.port==P,http2` for each port.
    pub fn http2_decode(ports: &[u16]) -> Vec<String> {
        ports
            .iter()
            .flat_map(|p| ["-d".to_string(), format!("tcp.port=={p},http2")])
            .collect()
    }

    /// Every segment with payload, decoded as HTTP/2 on `ports`.
    pub fn segments(capture: &Path, ports: &[u16]) -> Vec<Segment> {
        let decode = http2_decode(ports);
        let mut args: Vec<&str> = decode.iter().map(String::as_str).collect();
        args.extend([
            "-Y",
            "tcp.len > 0",
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-E",
            "aggregator=,",
        ]);
        for field in [
            "frame.number",
            "tcp.stream",
            "tcp.srcport",
            "tcp.dstport",
            "tcp.payload",
            "http2.type",
            "http2.streamid",
            "http2.flags",
            "frame.comment",
        ] {
            args.extend(["-e", field]);
        }
        let out = tshark::run(capture, &args);
        out.stdout
            .lines()
            .map(|line| {
                let cols: Vec<&str> = line.split('\t').collect();
                let col = |i: usize| cols.get(i).copied().unwrap_or("");
                let list = |i: usize| -> Vec<&str> {
                    col(i).split(',').filter(|s| !s.is_empty()).collect()
                };
                Segment {
                    frame: col(0).parse().expect("frame number"),
                    stream: col(1).parse().expect("tcp stream"),
                    src: col(2).parse().expect("source port"),
                    dst: col(3).parse().expect("destination port"),
                    payload: hex::decode(col(4).replace(':', "")).expect("hex payload"),
                    types: list(5).iter().map(|t| t.parse().expect("type")).collect(),
                    stream_ids: list(6).iter().map(|t| t.parse().expect("id")).collect(),
                    flags: list(7)
                        .iter()
                        .map(|t| u8::from_str_radix(t.trim_start_matches("0x"), 16).expect("flags"))
                        .collect(),
                    comment: col(8).to_string(),
                }
            })
            .collect()
    }

    /// tshark's expert problems for the capture decoded as HTTP/2 (warnings and errors, resets
    /// excepted). The gRPC subdissector is off: a stream cut inside a gRPC message is incomplete
    /// on purpose, and it would report the message the fault cut short, not a capture defect.
    pub fn http2_problems(capture: &Path, ports: &[u16]) -> Vec<String> {
        let mut decode = http2_decode(ports);
        decode.extend(["--disable-protocol".to_string(), "grpc".to_string()]);
        let args: Vec<&str> = decode.iter().map(String::as_str).collect();
        tshark::expert_problems_with(capture, &args)
    }

    /// Checks that nothing was written to a peer silently: every payload byte in a segment
    /// without a comment, toward `to_port` on one leg, is a byte the other peer sent (on its own
    /// leg, `from` = segments from that peer), in order; bytes faultline made itself sit in
    /// commented segments. Returns how many commented segments went toward `to_port`.
    pub fn assert_injected_bytes_are_commented(
        segments: &[Segment],
        source: impl Fn(&Segment) -> bool,
        output: impl Fn(&Segment) -> bool,
        what: &str,
    ) -> usize {
        let sent: Vec<u8> = segments
            .iter()
            .filter(|s| source(s))
            .flat_map(|s| s.payload.iter().copied())
            .collect();
        let mut at = 0usize;
        let mut commented = 0;
        for segment in segments.iter().filter(|s| output(s)) {
            if !segment.comment.is_empty() {
                commented += 1;
                continue;
            }
            let found = find(&sent[at..], &segment.payload).unwrap_or_else(|| {
                panic!(
                    "{what}: frame {} ({} bytes, HTTP/2 types {:?}) carries bytes the peer never sent, and no comment",
                    segment.frame,
                    segment.payload.len(),
                    segment.types
                )
            });
            at += found + segment.payload.len();
        }
        commented
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        if needle.is_empty() {
            return Some(0);
        }
        haystack.windows(needle.len()).position(|w| w == needle)
    }
}

use helpers::{
    assert_injected_bytes_are_commented, fired, http2_problems, read, segments, GrpcServer, Proxy,
    TempDir,
};

use crate::support::bounded;

const READ: &str = "/google.bytestream.ByteStream/Read";
/// RST_STREAM, GOAWAY, HEADERS, WINDOW_UPDATE frame types.
const RST_STREAM: u8 = 3;
const GOAWAY: u8 = 7;
const HEADERS: u8 = 1;
const WINDOW_UPDATE: u8 = 8;

// ------------------------------------------------------------------------------ grpcio: reset

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rst_stream_resets_one_of_three_concurrent_reads_and_the_resumed_read_verifies() {
    bounded("rst_stream on one of three reads", async {
        let dir = TempDir::new("h2-rst-one");
        // The server holds the first three Reads until all three are open on the connection.
        let mut server = GrpcServer::start(dir.path(), &["--barrier", "3", "--blobs", "3"]);
        let capture = dir.path().join("rst.pcapng");
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            &format!(
                r#"
[[rule]]
name = "second read is reset"
match = {{ path = "{READ}", request = 2, direction = "upstream->client" }}
fault.rst_stream = {{ after = "256KiB", code = "CANCEL" }}
"#
            ),
            Some(capture.clone()),
        )
        .await;
        let rounds = read(dir.path(), proxy.addr, &["--blobs", "3", "--mode", "resume"]).await;
        assert_eq!(
            proxy.connections(),
            1,
            "every read and the resumed one used the one TCP connection"
        );
        let summary = proxy.finish().await;
        let served = server.stop();

        helpers::one_read_reset_and_resumed(&rounds[0], &served);
        assert_eq!(fired(&summary, "second read is reset"), 1);

        // The capture: tshark decodes both legs as HTTP/2 without complaint, the client got one
        // RST_STREAM(CANCEL) and so did the server, and every byte faultline made is commented.
        let up = server.addr.port();
        let ports = [proxy.addr.port(), up];
        assert_eq!(http2_problems(&capture, &ports), Vec::<String>::new());
        let segs = segments(&capture, &ports);
        let to_client: Vec<_> = segs.iter().filter(|s| s.src == proxy.addr.port()).collect();
        let to_server: Vec<_> = segs.iter().filter(|s| s.dst == up).collect();
        let resets = |segs: &[&helpers::Segment]| -> Vec<u32> {
            segs.iter()
                .flat_map(|s| s.types.iter().zip(&s.stream_ids))
                .filter(|(t, _)| **t == RST_STREAM)
                .map(|(_, id)| *id)
                .collect()
        };
        let client_resets = resets(&to_client);
        assert_eq!(client_resets.len(), 1, "one RST_STREAM to the client");
        assert_eq!(
            resets(&to_server),
            client_resets,
            "the server is told about the same stream"
        );
        assert!(
            segs.iter().any(|s| s.comment.contains("second read is reset")),
            "the fault is marked"
        );
        let proxy_port = proxy.addr.port();
        let marked_to_server = assert_injected_bytes_are_commented(
            &segs,
            |s| s.dst == proxy_port,
            |s| s.dst == up,
            "client->upstream",
        );
        let marked_to_client = assert_injected_bytes_are_commented(
            &segs,
            |s| s.src == up,
            |s| s.src == proxy_port,
            "upstream->client",
        );
        assert!(
            marked_to_server >= 2,
            "RST_STREAM and WINDOW_UPDATE credit toward the server are commented ({marked_to_server})"
        );
        assert!(marked_to_client >= 1, "RST_STREAM toward the client");
        let credit = to_server
            .iter()
            .any(|s| !s.comment.is_empty() && s.types.contains(&WINDOW_UPDATE));
        assert!(credit, "discarded DATA is credited back to the server");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_data_is_credited_back_so_siblings_never_starve_on_small_windows() {
    bounded("credit for dropped DATA", async {
        let dir = TempDir::new("h2-credit");
        let size = (4 * 1024 * 1024).to_string();
        let mut server = GrpcServer::start(
            dir.path(),
            &["--barrier", "4", "--blobs", "4", "--size", size.as_str()],
        );
        // Two of four 4 MiB reads reset early. Without BDP probing grpcio's windows stay at
        // 64 KiB: the DATA faultline drops after the resets would use up the server's
        // connection window for good unless faultline returns it (WINDOW_UPDATE), and the other
        // reads would stall until their deadline.
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            &format!(
                r#"
[[rule]]
name = "two reads reset"
match = {{ path = "{READ}", request = [1, 3], direction = "upstream->client" }}
fault.rst_stream = {{ after = "16KiB" }}
"#
            ),
            None,
        )
        .await;
        let rounds = read(
            dir.path(),
            proxy.addr,
            &[
                "--blobs",
                "4",
                "--size",
                size.as_str(),
                "--no-bdp",
                "--deadline",
                "5",
            ],
        )
        .await;
        let summary = proxy.finish().await;
        server.stop();
        assert_eq!(fired(&summary, "two reads reset"), 2);
        assert_eq!(summary.connections, 1);
        for blob in &rounds[0] {
            assert!(blob.verified, "{blob:?}");
            assert!(
                blob.attempts
                    .iter()
                    .all(|a| a.status != "DEADLINE_EXCEEDED"),
                "nothing starved: {blob:?}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_restarts_at_zero_after_a_reset_assembles_a_corrupt_blob() {
    bounded("restart-at-0 reader", async {
        let dir = TempDir::new("h2-restart");
        let mut server = GrpcServer::start(dir.path(), &["--barrier", "2", "--blobs", "2"]);
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            &format!(
                r#"
[[rule]]
name = "first read is reset"
match = {{ path = "{READ}", request = 1, direction = "upstream->client" }}
fault.rst_stream = {{ after = "100KiB" }}
"#
            ),
            None,
        )
        .await;
        let rounds = read(
            dir.path(),
            proxy.addr,
            &["--blobs", "2", "--mode", "restart"],
        )
        .await;
        let summary = proxy.finish().await;
        let served = server.stop();
        assert_eq!(fired(&summary, "first read is reset"), 1);
        let bad: Vec<_> = rounds[0].iter().filter(|b| !b.verified).collect();
        assert_eq!(bad.len(), 1, "the reset blob is corrupt: {rounds:?}");
        let blob = bad[0];
        assert_eq!(blob.attempts.len(), 2);
        assert_eq!(
            blob.attempts[1].offset, 0,
            "it asked for the whole blob again"
        );
        assert_eq!(
            blob.size,
            blob.attempts[0].bytes + 1024 * 1024,
            "and appended it to the bytes it had"
        );
        let again = served
            .iter()
            .filter(|r| r.resource == blob.resource && r.offset == 0)
            .count();
        assert_eq!(again, 2, "the server served it from 0 twice: {served:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_read_offset_corrupts_the_resumed_read() {
    bounded("server ignoring read_offset", async {
        let dir = TempDir::new("h2-ignore-offset");
        let mut server = GrpcServer::start(dir.path(), &["--blobs", "1", "--ignore-offset"]);
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            &format!(
                r#"
[[rule]]
name = "first read is reset"
match = {{ path = "{READ}", attempt = 1, direction = "upstream->client" }}
fault.rst_stream = {{ after = "300KiB" }}
"#
            ),
            None,
        )
        .await;
        let rounds = read(
            dir.path(),
            proxy.addr,
            &["--blobs", "1", "--mode", "resume"],
        )
        .await;
        let summary = proxy.finish().await;
        let served = server.stop();
        assert_eq!(fired(&summary, "first read is reset"), 1);
        let blob = &rounds[0][0];
        assert!(
            !blob.verified,
            "the resumed bytes start at 0 again: {blob:?}"
        );
        assert_eq!(blob.attempts.len(), 2);
        let resumed_at = blob.attempts[0].bytes;
        assert_eq!(blob.attempts[1].offset, resumed_at);
        assert_eq!(
            blob.attempts[1].bytes,
            1024 * 1024,
            "the server sent the whole blob for a resume at {resumed_at}"
        );
        assert_eq!(served.len(), 2, "{served:?}");
        assert_eq!(
            served[1].offset, resumed_at,
            "the request did ask for the offset"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rst_stream_at_a_time_resets_slow_reads_whichever_direction_the_rule_names() {
    bounded("rst_stream at a time", async {
        let dir = TempDir::new("h2-rst-at");
        // 16 messages of 64 KiB, 40 ms apart: each read takes about 640 ms.
        let mut server = GrpcServer::start(
            dir.path(),
            &["--blobs", "2", "--barrier", "2", "--pace-ms", "40"],
        );
        // A time has no direction: the rule that names the download's direction (as a user
        // cutting downloads would write it) fires as well as the one that does not.
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            &format!(
                r#"
[[rule]]
name = "first read cut at 200ms"
match = {{ path = "{READ}", request = 1 }}
fault.rst_stream = {{ at = "200ms", code = "INTERNAL_ERROR" }}

[[rule]]
name = "second read cut at 300ms"
match = {{ path = "{READ}", request = 2, direction = "upstream->client" }}
fault.rst_stream = {{ at = "300ms", code = "INTERNAL_ERROR" }}
"#
            ),
            None,
        )
        .await;
        let rounds = read(
            dir.path(),
            proxy.addr,
            &["--blobs", "2", "--mode", "resume"],
        )
        .await;
        assert_eq!(
            proxy.connections(),
            1,
            "the resumes used the same connection"
        );
        let summary = proxy.finish().await;
        server.stop();
        assert_eq!(fired(&summary, "first read cut at 200ms"), 1);
        assert_eq!(fired(&summary, "second read cut at 300ms"), 1);
        for blob in &rounds[0] {
            assert!(blob.verified, "{blob:?}");
            assert_eq!(blob.attempts.len(), 2, "{blob:?}");
            assert_eq!(blob.attempts[0].status, "INTERNAL");
            assert!(
                blob.attempts[0].bytes > 0 && blob.attempts[0].bytes < 1024 * 1024,
                "{blob:?}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_grpc_scenarios_do_what_they_say_to_grpcio() {
    bounded("shipped gRPC scenarios", async {
        let dir = TempDir::new("h2-shipped");
        // grpc-reset-one-stream: three 2 MiB blobs read at once, the second Read cut at 1 MiB.
        let size = (2 * 1024 * 1024).to_string();
        let blobs = ["--blobs", "3", "--size", size.as_str()];
        let mut args = blobs.to_vec();
        args.extend(["--barrier", "3"]);
        let mut server = GrpcServer::start(dir.path(), &args);
        let mut proxy = Proxy::shipped("grpc-reset-one-stream.toml", server.spec()).await;
        let rounds = read(dir.path(), proxy.addr, &blobs).await;
        let summary = proxy.finish().await;
        server.stop();
        assert_eq!(summary.connections, 1);
        assert_eq!(summary.rules[0].fired, 1);
        assert!(rounds[0].iter().all(|b| b.verified), "{rounds:?}");
        let resumed: Vec<_> = rounds[0].iter().filter(|b| b.attempts.len() == 2).collect();
        assert_eq!(resumed.len(), 1, "{rounds:?}");
        assert_eq!(resumed[0].attempts[1].offset, resumed[0].attempts[0].bytes);

        // grpc-unavailable-first-attempt: grpcio's retry policy gets every blob on attempt 2.
        let mut server = GrpcServer::start(dir.path(), &["--blobs", "2"]);
        let mut proxy = Proxy::shipped("grpc-unavailable-first-attempt.toml", server.spec()).await;
        let rounds = read(dir.path(), proxy.addr, &["--blobs", "2", "--retry-policy"]).await;
        let summary = proxy.finish().await;
        server.stop();
        assert_eq!(summary.rules[0].fired, 2);
        assert!(rounds[0].iter().all(|b| b.verified), "{rounds:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_stalled_for_good_fails_and_never_ends_as_a_success_while_its_sibling_completes() {
    bounded("stall without end on one stream", async {
        let dir = TempDir::new("h2-stall-forever");
        let mut server = GrpcServer::start(dir.path(), &["--barrier", "2", "--blobs", "2"]);
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            &format!(
                r#"
[[rule]]
name = "one read frozen"
match = {{ path = "{READ}", request = 1, direction = "upstream->client" }}
fault.stall = {{ after = "100KiB" }}
"#
            ),
            None,
        )
        .await;
        // Its server's trailers may have to reach the client (they change its HPACK table): then
        // faultline resets the stream first, else the read waits for its 2 s deadline.
        let rounds = read(dir.path(), proxy.addr, &["--blobs", "2", "--deadline", "2"]).await;
        let summary = proxy.finish().await;
        server.stop();
        assert_eq!(summary.connections, 1);
        assert_eq!(fired(&summary, "one read frozen"), 1);
        let frozen: Vec<_> = rounds[0].iter().filter(|b| b.attempts.len() > 1).collect();
        assert_eq!(frozen.len(), 1, "{rounds:?}");
        let first = &frozen[0].attempts[0];
        assert!(
            ["CANCELLED", "DEADLINE_EXCEEDED"].contains(&first.status.as_str()),
            "the frozen read failed, it did not end as a success: {first:?}"
        );
        assert!(first.bytes < 100 * 1024, "{first:?}");
        assert!(rounds[0].iter().all(|b| b.verified), "{rounds:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_stall_on_one_stream_leaves_its_sibling_flowing() {
    bounded("timed stall on one stream", async {
        let dir = TempDir::new("h2-stall-timed");
        // Paced (16 chunks, 20 ms apart: ~0.3 s a read) so the sibling is still streaming when
        // the stall begins: it would wait behind the paused read if faultline delayed the
        // connection in place (head-of-line blocking) instead of holding that one stream. The
        // first round warms the channel up, as a long-lived channel is: the first call's
        // trailers add `grpc-status` to the client's HPACK table, and a sibling's header block
        // may not pass such a block while it is held (see H2-DESIGN.md).
        let mut server = GrpcServer::start(
            dir.path(),
            &["--barrier", "2", "--blobs", "2", "--pace-ms", "20"],
        );
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            &format!(
                r#"
[[rule]]
name = "one read paused"
match = {{ path = "{READ}", request = 3, direction = "upstream->client" }}
fault.stall = {{ after = "100KiB", duration = "1500ms" }}
"#
            ),
            None,
        )
        .await;
        let rounds = read(dir.path(), proxy.addr, &["--blobs", "2", "--rounds", "2"]).await;
        let summary = proxy.finish().await;
        server.stop();
        assert_eq!(fired(&summary, "one read paused"), 1);
        assert_eq!(summary.connections, 1);
        let (paused, sibling) = slow_and_fast(&rounds[1]);
        assert!(paused.seconds >= 1.5, "the paused read lasts the stall: {paused:?}");
        assert!(
            sibling.seconds < 1.0,
            "its sibling on the same connection does not wait for it: {sibling:?} (paused: {paused:?})"
        );
    })
    .await;
}

/// The slower and the faster read of a round of two, each read once and verified.
fn slow_and_fast(round: &[helpers::BlobRead]) -> (helpers::Attempt, helpers::Attempt) {
    assert_eq!(round.len(), 2, "{round:?}");
    for blob in round {
        assert!(blob.verified, "{blob:?}");
        assert_eq!(blob.attempts.len(), 1, "{blob:?}");
        assert_eq!(blob.attempts[0].status, "OK", "{blob:?}");
    }
    let mut attempts: Vec<_> = round.iter().map(|b| b.attempts[0].clone()).collect();
    attempts.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    (attempts[1].clone(), attempts[0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_on_one_read_leaves_its_sibling_on_the_same_connection_unhindered() {
    bounded("latency on one stream", async {
        let dir = TempDir::new("h2-latency-one");
        let capture = dir.path().join("latency.pcapng");
        let mut server = GrpcServer::start(dir.path(), &["--barrier", "2", "--blobs", "2"]);
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            &format!(
                r#"
[[rule]]
name = "one slow read"
match = {{ path = "{READ}", request = 3, direction = "upstream->client" }}
fault.latency = {{ delay = "1500ms" }}
"#
            ),
            Some(capture.clone()),
        )
        .await;
        // Round 1 warms the channel up (see the timed stall above); round 2 is measured.
        let rounds = read(dir.path(), proxy.addr, &["--blobs", "2", "--rounds", "2"]).await;
        let summary = proxy.finish().await;
        let server_port = server.addr.port();
        server.stop();
        assert_eq!(fired(&summary, "one slow read"), 1);
        assert_eq!(summary.connections, 1);
        for blob in &rounds[0] {
            assert!(blob.verified, "{blob:?}");
        }
        let (slow, fast) = slow_and_fast(&rounds[1]);
        assert!(slow.seconds >= 1.5, "the delayed read waits: {slow:?}");
        assert!(
            fast.seconds < 1.0,
            "its sibling on the same connection does not wait for it: {fast:?} (slow: {slow:?})"
        );

        // The capture: valid HTTP/2 to tshark, and the stretch of frames faultline held back is
        // marked once, where its first frame left (not once per frame: a long download would
        // carry thousands of comments).
        let ports = [proxy.addr.port(), server_port];
        assert_eq!(http2_problems(&capture, &ports), Vec::<String>::new());
        let toward_client: Vec<_> = segments(&capture, &ports)
            .into_iter()
            .filter(|s| s.src == proxy.addr.port())
            .collect();
        let marks: Vec<&str> = toward_client
            .iter()
            .map(|s| s.comment.as_str())
            .filter(|c| !c.is_empty())
            .collect();
        assert!(
            marks.iter().any(|c| c.contains("latency 1.5s")),
            "the rule's own mark: {marks:?}"
        );
        assert_eq!(
            marks.len(),
            1,
            "one comment for the held stretch: {marks:?}"
        );

        // inspect reads the reordered client leg like any other: every Read stitched and
        // verified against its digest.
        let inspected = crate::support::daemon::run_bounded(
            std::process::Command::new(crate::support::daemon::FAULTLINE)
                .args(["inspect", "--json"])
                .arg(&capture),
            dir.path(),
            "inspect",
            std::time::Duration::from_secs(60),
        );
        assert_eq!(inspected.code(), Some(0), "{}", inspected.output());
        let report: serde_json::Value = serde_json::from_str(&inspected.stdout)
            .unwrap_or_else(|e| panic!("inspect JSON ({e}): {}", inspected.output()));
        let blobs = report["bytestream"].as_array().expect("bytestream");
        assert_eq!(blobs.len(), 4, "two blobs on each leg: {report}");
        for blob in blobs {
            assert_eq!(blob["check"]["result"], "matches", "{blob}");
            assert_eq!(blob["corrupt"], false, "{blob}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_held_when_the_server_closes_reach_the_client_before_the_fin() {
    bounded("held frames drained at the upstream's close", async {
        let dir = TempDir::new("h2-hold-drain");
        // The server answers and closes at once: the DATA faultline holds for the latency is
        // still held when the upstream's FIN arrives, and must go out before it.
        let mut client = bad_peers::PREFACE.to_vec();
        client.extend(bad_peers::settings());
        client.extend(bad_peers::get_request(1));
        let mut server = bad_peers::settings();
        server.extend(bad_peers::frame(1, 0x4, 1, &[0x88])); // :status 200
        server.extend(bad_peers::frame(0, 0x1, 1, &[b'z'; 300]));
        let scenario = "name = \"drain\"\nseed = 1\n[proxy]\nprotocol = \"h2\"\n[[rule]]\nmatch = { path = \"/\", direction = \"upstream->client\" }\nfault.latency = { delay = \"400ms\" }\n";
        let started = std::time::Instant::now();
        let exchange = bad_peers::exchange(dir.path(), scenario, client.clone(), server.clone()).await;
        let took = started.elapsed();
        crate::support::assert_same(&client, &exchange.upstream_got, "client bytes");
        crate::support::assert_same(&server, &exchange.client_got, "every server byte, the held DATA too");
        assert!(took >= std::time::Duration::from_millis(400), "the DATA waited: {took:?}");
        assert!(
            !exchange.stderr.contains("WARN") && !exchange.stderr.contains("panicked"),
            "{}",
            exchange.stderr
        );
    })
    .await;
}

/// One Write the server completed: its upload name, and whether the bytes match the digest and
/// size in the name (`None`: it refused the upload, which had no finish_write).
fn served_writes(log: &str) -> Vec<(String, Option<bool>)> {
    log.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("write ")?;
            let name = rest.split(' ').next()?.to_string();
            let intact = if rest.ends_with(" unfinished") {
                None
            } else {
                Some(rest.ends_with("intact=True"))
            };
            Some((name, intact))
        })
        .collect()
}

/// Runs `bytestream.py write` through `proxy` for `blobs` blobs; the statuses of each blob's
/// attempts.
async fn grpc_write(
    dir: &std::path::Path,
    target: std::net::SocketAddr,
    blobs: &str,
) -> Vec<Vec<String>> {
    let mut command = std::process::Command::new(helpers::python());
    command
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc/bytestream.py"))
        .args(["write", "--target", &target.to_string(), "--blobs", blobs]);
    let dir = dir.to_path_buf();
    let done = tokio::task::spawn_blocking(move || {
        crate::support::daemon::run_bounded(
            &mut command,
            &dir,
            "grpc-writer",
            std::time::Duration::from_secs(60),
        )
    })
    .await
    .expect("the writer's task");
    let report: serde_json::Value = serde_json::from_str(done.stdout.trim())
        .unwrap_or_else(|e| panic!("no report from the writer ({e}):\n{}", done.output()));
    report["writes"]
        .as_array()
        .expect("writes")
        .iter()
        .map(|w| {
            w["attempts"]
                .as_array()
                .expect("attempts")
                .iter()
                .map(|a| a["status"].as_str().expect("status").to_string())
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_reset_mid_write_is_attempt_1_only_and_its_retry_is_stored_whole() {
    bounded("rst_stream on a Write", async {
        let dir = TempDir::new("h2-write-reset");
        let rules = r#"
[[rule]]
name = "first upload of each blob reset"
match = { path = "/google.bytestream.ByteStream/Write", attempt = 1, direction = "client->upstream" }
fault.rst_stream = { after = "300KiB" }
"#;
        // A careful server: a Write counts only with finish_write.
        let mut server = GrpcServer::start(dir.path(), &["--blobs", "2"]);
        let capture = dir.path().join("write.pcapng");
        let mut proxy = Proxy::start(server.spec(), "", rules, Some(capture.clone())).await;
        let statuses = grpc_write(dir.path(), proxy.addr, "2").await;
        let summary = proxy.finish().await;
        let log = server.stop_log();
        // A resumed Write has a new upload id and is still attempt 2 of the same blob.
        assert_eq!(fired(&summary, "first upload of each blob reset"), 2);
        assert_eq!(statuses, [["CANCELLED", "OK"], ["CANCELLED", "OK"]]);
        let writes = served_writes(&log);
        let stored: Vec<_> = writes.iter().filter(|(_, w)| w.is_some()).collect();
        assert_eq!(stored.len(), 2, "{writes:?}");
        assert!(stored.iter().all(|(_, w)| *w == Some(true)), "{writes:?}");

        // The cut DATA frame went to the server under a rewritten, commented header, and every
        // other byte faultline made (RST_STREAM both ways, credit to the client) is commented.
        let up = server.addr.port();
        let proxy_port = proxy.addr.port();
        let ports = [proxy_port, up];
        assert_eq!(http2_problems(&capture, &ports), Vec::<String>::new());
        let segs = segments(&capture, &ports);
        assert!(
            segs.iter()
                .any(|s| s.dst == up && s.comment.contains("DATA frame of stream")),
            "the rewritten DATA header is commented"
        );
        assert_injected_bytes_are_commented(
            &segs,
            |s| s.dst == proxy_port,
            |s| s.dst == up,
            "client->upstream",
        );
        assert_injected_bytes_are_commented(
            &segs,
            |s| s.src == up,
            |s| s.src == proxy_port,
            "upstream->client",
        );
    })
    .await;
}

/// Runs `uploads.py upload` through `target`: `calls` concurrent client-streaming calls on one
/// fresh channel, each `messages` messages of `size` bytes; per call, its status and what it
/// sent ("BYTES:SHA256") if the server answered exactly that, else what it answered.
async fn grpc_uploads(
    dir: &std::path::Path,
    target: std::net::SocketAddr,
    calls: usize,
    size: usize,
) -> Vec<(String, String, String)> {
    let mut command = std::process::Command::new(helpers::python());
    command
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc/uploads.py"))
        .args(["upload", "--target", &target.to_string()])
        .args(["--calls", &calls.to_string(), "--size", &size.to_string()])
        .args(["--messages", "16", "--deadline", "10"]);
    let dir = dir.to_path_buf();
    let label = format!("uploads-{size}");
    let done = tokio::task::spawn_blocking(move || {
        crate::support::daemon::run_bounded(
            &mut command,
            &dir,
            &label,
            std::time::Duration::from_secs(60),
        )
    })
    .await
    .expect("the uploader's task");
    let report: serde_json::Value = serde_json::from_str(done.stdout.trim())
        .unwrap_or_else(|e| panic!("no report from the uploader ({e}):\n{}", done.output()));
    report["uploads"]
        .as_array()
        .expect("uploads")
        .iter()
        .map(|u| {
            let text = |key: &str| u[key].as_str().expect(key).to_string();
            (text("status"), text("sent"), text("answer"))
        })
        .collect()
}

/// Found by a user trial: with any HTTP rule armed (one that never matches will do), the
/// session waits for each gRPC call's first request message before rules decide, and grpcio
/// splits a 48 or 64 KiB message across DATA frames once three or more uploads share a
/// connection. The wait never looked past the frame it held, so every upload hung until its
/// deadline with the client's whole connection window stuck in faultline. Each upload must
/// reach the server whole: its byte count and sha256, as the server computed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_client_streaming_uploads_pass_whole_an_armed_rule_that_never_matches() {
    bounded("concurrent grpcio uploads", async {
        let dir = TempDir::new("h2-uploads");
        let mut command = std::process::Command::new(helpers::python());
        command
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc/uploads.py"))
            .arg("serve");
        let mut server =
            crate::support::daemon::Daemon::start(&mut command, dir.path(), "uploads-server");
        let addr = server.faultline_address();
        let upstream = faultline::scenario::schema::UpstreamSpec::Address {
            host: addr.ip().to_string(),
            port: addr.port(),
        };
        let rules = r#"
[[rule]]
name = "GET only"
match = { method = "GET", direction = "upstream->client" }
fault.rst_stream = { after = "1MiB" }
"#;
        let mut proxy = Proxy::start(upstream, "protocol = \"h2\"", rules, None).await;
        let mut sent = Vec::new();
        for (calls, size) in [(4, 65_536), (3, 49_152), (6, 65_536)] {
            let uploads = grpc_uploads(dir.path(), proxy.addr, calls, size).await;
            assert_eq!(uploads.len(), calls);
            for (status, mine, answer) in uploads {
                assert_eq!(
                    (status.as_str(), answer.as_str()),
                    ("OK", mine.as_str()),
                    "{calls} uploads of {size}-byte messages"
                );
                assert!(mine.starts_with(&format!("{}:", 16 * size)), "{mine}");
                sent.push(mine);
            }
        }
        let summary = proxy.finish().await;
        assert_eq!(fired(&summary, "GET only"), 0);
        assert_eq!(summary.connections, 3, "one connection per round");
        assert_eq!(summary.unsent_at_stop, [0, 0]);
        let log = server.stop().stderr;
        let mut served: Vec<String> = log
            .lines()
            .filter_map(|line| line.strip_prefix("upload "))
            .map(|rest| rest.replacen(' ', ":", 1))
            .collect();
        served.sort();
        sent.sort();
        assert_eq!(served, sent, "the server read every upload whole");
    })
    .await;
}

// ------------------------------------------------------------------------- grpcio: goaway

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_goaway_lets_in_flight_reads_finish_and_the_client_reconnects() {
    bounded("graceful GOAWAY", async {
        let dir = TempDir::new("h2-goaway");
        let mut server = GrpcServer::start(dir.path(), &["--barrier", "2", "--blobs", "2"]);
        let capture = dir.path().join("goaway.pcapng");
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            r#"
[[rule]]
name = "first connection goes away"
match = { connection = 1 }
fault.goaway = { after_streams = 2 }
"#,
            Some(capture.clone()),
        )
        .await;
        // Two rounds of two concurrent reads: the second round needs a new connection.
        let rounds = read(dir.path(), proxy.addr, &["--blobs", "2", "--rounds", "2"]).await;
        assert_eq!(proxy.connections(), 2, "the client opened a new connection");
        let summary = proxy.finish().await;
        server.stop();
        for blob in rounds.iter().flatten() {
            assert!(blob.verified, "{blob:?}");
            assert_eq!(blob.attempts.len(), 1, "nothing was retried: {blob:?}");
        }
        assert_eq!(fired(&summary, "first connection goes away"), 1);

        // On the first connection, GOAWAY reached the client before either read ended.
        let ports = [proxy.addr.port(), server.addr.port()];
        assert_eq!(http2_problems(&capture, &ports), Vec::<String>::new());
        let segs = segments(&capture, &ports);
        let first_client_leg = segs.iter().map(|s| s.stream).min().expect("segments");
        let to_client: Vec<_> = segs
            .iter()
            .filter(|s| s.stream == first_client_leg && s.src == proxy.addr.port())
            .collect();
        let goaway = to_client
            .iter()
            .find(|s| s.types.contains(&GOAWAY))
            .expect("a GOAWAY to the client");
        assert!(
            goaway.comment.contains("first connection goes away"),
            "{goaway:?}"
        );
        // (frame number, stream) of every HEADERS frame with END_STREAM: the reads' trailers.
        let trailers: Vec<(u64, u32)> = to_client
            .iter()
            .flat_map(|s| {
                s.types
                    .iter()
                    .zip(&s.flags)
                    .zip(&s.stream_ids)
                    .filter(|((t, flags), _)| **t == HEADERS && **flags & 0x1 != 0)
                    .map(|(_, id)| (s.frame, *id))
            })
            .collect();
        assert_eq!(trailers.len(), 2, "both reads ended with trailers");
        assert!(
            trailers.iter().all(|&(f, _)| f > goaway.frame),
            "GOAWAY (frame {}) came while both reads were in flight (trailers {trailers:?})",
            goaway.frame
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_that_closes_fails_the_reads_in_flight_and_they_succeed_on_a_new_connection() {
    bounded("GOAWAY, then close", async {
        let dir = TempDir::new("h2-goaway-hard");
        let mut server = GrpcServer::start(dir.path(), &["--barrier", "2", "--blobs", "2"]);
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            r#"
[[rule]]
name = "first connection dies"
match = { connection = 1 }
fault.goaway = { after_streams = 2, graceful = false, code = "INTERNAL_ERROR" }
"#,
            None,
        )
        .await;
        let rounds = read(dir.path(), proxy.addr, &["--blobs", "2"]).await;
        let summary = proxy.finish().await;
        server.stop();
        assert_eq!(summary.connections, 2, "the reads went to a new connection");
        assert_eq!(
            fired(&summary, "first connection dies"),
            1,
            "one GOAWAY, counted once"
        );
        for blob in &rounds[0] {
            assert!(blob.verified, "{blob:?}");
            let statuses: Vec<&str> = blob.attempts.iter().map(|a| a.status.as_str()).collect();
            // The read in flight fails with UNAVAILABLE, then succeeds on the new connection. A
            // retry made while grpcio's channel is still reconnecting may fail fast with
            // UNAVAILABLE once more: that extra attempt is the client's timing, not faultline's.
            // (This assertion, exact before, failed once on a loaded machine; its output was not
            // kept and 60 runs under load and two full suites did not repeat it.)
            let (last, failed) = statuses.split_last().expect("at least one attempt");
            assert_eq!(*last, "OK", "{blob:?}");
            assert!(
                matches!(failed.len(), 1 | 2) && failed.iter().all(|s| *s == "UNAVAILABLE"),
                "the read in flight fails with UNAVAILABLE, then succeeds: {blob:?}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_at_a_time_reaches_an_idle_client_and_its_next_reads_use_a_new_connection() {
    bounded("GOAWAY on a timer", async {
        let dir = TempDir::new("h2-goaway-at");
        let mut server = GrpcServer::start(dir.path(), &["--blobs", "1"]);
        let capture = dir.path().join("goaway-at.pcapng");
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            r#"
[[rule]]
name = "first connection ages out"
match = { connection = 1 }
fault.goaway = { at = "400ms" }
"#,
            Some(capture.clone()),
        )
        .await;
        // One read, the channel idle for 3 s (nothing flows when the timer fires: the session
        // must wake the pump toward the client itself), then another read. The pause is long so
        // that "at 400 ms, not with the next read" leaves a loaded machine's timer seconds of
        // room (with 1 s, a GOAWAY 500 ms late would fail the check below).
        let rounds = read(
            dir.path(),
            proxy.addr,
            &["--blobs", "1", "--rounds", "2", "--pause-ms", "3000"],
        )
        .await;
        assert_eq!(
            proxy.connections(),
            2,
            "the second read used a new connection"
        );
        let summary = proxy.finish().await;
        server.stop();
        assert_eq!(fired(&summary, "first connection ages out"), 1);
        for blob in rounds.iter().flatten() {
            assert!(blob.verified, "{blob:?}");
            assert_eq!(blob.attempts.len(), 1, "{blob:?}");
        }
        // The GOAWAY left at 400 ms, before the client's second read, not with it.
        let rows = crate::support::tshark::fields(
            &capture,
            Some(&format!(
                "tcp.srcport == {} && tcp.len > 0",
                proxy.addr.port()
            )),
            &["tcp.stream", "frame.time_relative", "frame.comment"],
        );
        let goaway: Vec<f64> = rows
            .iter()
            .filter(|r| r.get(2).is_some_and(|c| c.contains("GOAWAY")))
            .map(|r| r[1].parse().expect("a time"))
            .collect();
        assert_eq!(goaway.len(), 1, "{rows:?}");
        assert!(
            (0.35..2.5).contains(&goaway[0]),
            "GOAWAY at {} s after the capture began, not when the next read came",
            goaway[0]
        );
    })
    .await;
}

// ---------------------------------------------------------------------- grpcio: grpc_status

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_on_the_first_attempt_is_retried_by_grpcio_and_the_second_succeeds() {
    bounded("grpc_status UNAVAILABLE on attempt 1", async {
        let dir = TempDir::new("h2-unavailable");
        let mut server = GrpcServer::start(dir.path(), &["--blobs", "2"]);
        let capture = dir.path().join("unavailable.pcapng");
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            &format!(
                r#"
[[rule]]
name = "first attempt unavailable"
match = {{ path = "{READ}", attempt = 1 }}
fault.grpc_status = {{ code = "UNAVAILABLE" }}
"#
            ),
            Some(capture.clone()),
        )
        .await;
        // grpcio's own retry policy (retryableStatusCodes UNAVAILABLE): one call per blob.
        let rounds = read(dir.path(), proxy.addr, &["--blobs", "2", "--retry-policy"]).await;
        let summary = proxy.finish().await;
        let served = server.stop();
        for blob in &rounds[0] {
            assert!(blob.verified, "{blob:?}");
            assert_eq!(blob.attempts.len(), 1, "grpcio retried by itself: {blob:?}");
        }
        assert_eq!(
            fired(&summary, "first attempt unavailable"),
            2,
            "once per blob"
        );
        assert_eq!(summary.connections, 1);
        assert_eq!(
            served.len(),
            2,
            "the server only served the second attempts: {served:?}"
        );

        let up = server.addr.port();
        let proxy_port = proxy.addr.port();
        let ports = [proxy_port, up];
        assert_eq!(http2_problems(&capture, &ports), Vec::<String>::new());
        let segs = segments(&capture, &ports);
        let answers = segs
            .iter()
            .filter(|s| s.src == proxy_port && s.types.contains(&HEADERS))
            .filter(|s| s.comment.contains("grpc-status 14"))
            .count();
        assert_eq!(answers, 2, "two trailers-only answers, each commented");
        assert_injected_bytes_are_commented(
            &segs,
            |s| s.dst == proxy_port,
            |s| s.dst == up,
            "client->upstream",
        );
        assert_injected_bytes_are_commented(
            &segs,
            |s| s.src == up,
            |s| s.src == proxy_port,
            "upstream->client",
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_on_the_first_attempt_is_retried_by_the_readers_own_loop() {
    bounded("grpc_status, the reader's loop", async {
        let dir = TempDir::new("h2-unavailable-loop");
        let mut server = GrpcServer::start(dir.path(), &["--blobs", "1"]);
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            &format!(
                r#"
[[rule]]
match = {{ path = "{READ}", attempt = 1 }}
fault.grpc_status = {{ code = 14, message = "try again" }}
"#
            ),
            None,
        )
        .await;
        let rounds = read(dir.path(), proxy.addr, &["--blobs", "1"]).await;
        proxy.finish().await;
        server.stop();
        let blob = &rounds[0][0];
        assert!(blob.verified, "{blob:?}");
        let statuses: Vec<&str> = blob.attempts.iter().map(|a| a.status.as_str()).collect();
        assert_eq!(statuses, ["UNAVAILABLE", "OK"]);
    })
    .await;
}

// ------------------------------------------------------------------------------ curl + h2

mod h2_server {
    //! A plain HTTP/2 (h2c) server written with the h2 crate: every request gets `200` and a
    //! body naming its method, path and authority.

    use bytes::Bytes;
    use tokio::net::TcpStream;

    use crate::support::upstream::{serve, Server};

    pub async fn start() -> Server {
        serve(connection).await
    }

    async fn connection(stream: TcpStream) {
        let Ok(mut conn) = h2::server::handshake(stream).await else {
            return;
        };
        while let Some(Ok((request, mut respond))) = conn.accept().await {
            tokio::spawn(async move {
                let (parts, mut body) = request.into_parts();
                let mut received = 0usize;
                while let Some(Ok(chunk)) = body.data().await {
                    received += chunk.len();
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
                let text = format!(
                    "{} {} {} from the server ({received} bytes in)\n",
                    parts.method,
                    parts.uri.path(),
                    parts.uri.authority().map(|a| a.as_str()).unwrap_or("-")
                );
                let response = http::Response::builder()
                    .status(200)
                    .header("content-type", "text/plain")
                    .body(())
                    .expect("a response head");
                if let Ok(mut send) = respond.send_response(response, false) {
                    let _ = send.send_data(Bytes::from(text), true);
                }
            });
        }
    }
}

/// Runs one curl transfer with `args` (bounded, HTTP/2 with prior knowledge) in a blocking task:
/// its exit code and stdout. One transfer per curl: Debian's curl 7.88.1 cannot reuse an h2c
/// connection (curl issue 10634, fixed in 8.0), so streams sharing a connection come from the h2
/// crate's client below.
pub(crate) async fn curl(args: Vec<String>) -> (Option<i32>, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("curl")
            .args(["--silent", "--max-time", "20", "--http2-prior-knowledge"])
            .args(&args)
            .output()
            .expect("curl is installed (tests/install-deps.sh)");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    })
    .await
    .expect("curl's task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_h2c_requests_are_matched_by_method_path_host_and_header() {
    bounded("curl h2c matching", async {
        let dir = TempDir::new("h2-curl-match");
        let capture = dir.path().join("curl.pcapng");
        let server = h2_server::start().await;
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            r#"
[[rule]]
name = "token posts to the api"
match = { method = "POST", path = "/api/*", header = { "x-token" = "s*" } }
fault.respond = { status = 503, body = "injected 503\n" }

[[rule]]
name = "the other host"
match = { host = "other.test*" }
fault.respond = { status = 404 }
"#,
            Some(capture.clone()),
        )
        .await;
        let base = format!("http://{}", proxy.addr);
        let transfers: [(&[&str], &str, &str); 6] = [
            (&[], "/api/x", "200 GET /api/x"),
            (
                &["-X", "POST", "-H", "x-token: secret"],
                "/api/x",
                "503 injected 503",
            ),
            (
                &["-X", "POST", "-H", "x-token: nope"],
                "/api/x",
                "200 POST /api/x",
            ),
            (
                &["-X", "POST", "-H", "x-token: secret"],
                "/other/x",
                "200 POST /other/x",
            ),
            (
                &["-H", "Host: other.test"],
                "/x",
                "404 404 Not Found (injected by faultline)",
            ),
            (&[], "/last", "200 GET /last"),
        ];
        for (options, path, expected) in transfers {
            let mut args: Vec<String> = options.iter().map(|s| s.to_string()).collect();
            args.extend([
                "-w".to_string(),
                "\n%{http_version} %{http_code}".to_string(),
            ]);
            args.push(format!("{base}{path}"));
            let (code, out) = curl(args).await;
            assert_eq!(code, Some(0), "{path}: {out}");
            let (body, status) = out.rsplit_once('\n').expect("curl's -w line");
            let got = format!("{} {body}", status.strip_prefix("2 ").unwrap_or(status));
            assert!(
                status.starts_with("2 ") && got.starts_with(expected),
                "{options:?} {path}: expected HTTP/2 and {expected:?}, got {status:?} {got:?}"
            );
        }
        let summary = proxy.finish().await;
        assert_eq!(fired(&summary, "token posts to the api"), 1);
        assert_eq!(fired(&summary, "the other host"), 1);
        let ports = [proxy.addr.port(), server.addr.port()];
        assert_eq!(
            http2_problems(&capture, &ports),
            Vec::<String>::new(),
            "tshark reads every leg as HTTP/2"
        );
        let segs = segments(&capture, &ports);
        let answers: Vec<_> = segs
            .iter()
            .filter(|s| s.src == proxy.addr.port() && !s.comment.is_empty())
            .collect();
        assert!(
            answers.iter().any(|s| s.comment.contains("answered 503")),
            "{answers:?}"
        );
    })
    .await;
}

/// Regression (issue 10): `respond` with `after = "request-body"` (the default) answered an
/// HTTP/2 upload at its HEADERS, then RST_STREAM(NO_ERROR): curl 7.88 exited 92 mid-upload.
/// Now faultline reads the whole upload (returning the stream credit the upstream never could,
/// past curl's 64 KiB stream window) and answers at its end: curl sends all 1.5 MiB and gets
/// the 507, exit 0, also after faultline's `100 Continue` when it expects one; the capture reads
/// as HTTP/2 and says when the answer went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_uploads_its_whole_body_before_faultlines_answer() {
    bounded("curl h2c upload answered at its end", async {
        let dir = TempDir::new("h2-curl-upload");
        let capture = dir.path().join("upload.pcapng");
        let file = dir.path().join("big.bin");
        let size = 1_536 * 1024;
        std::fs::write(&file, vec![b'z'; size]).expect("the upload file");
        let server = h2_server::start().await;
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            r#"
[[rule]]
name = "uploads refused"
match = { method = "PUT", path = "/upload/*" }
fault.respond = { status = 507, body = "insufficient storage\n" }
"#,
            Some(capture.clone()),
        )
        .await;
        // The second expects `100 Continue`, which faultline sends before the body as on
        // HTTP/1 (curl 7.88 sends its body at once over HTTP/2 anyway; it must take the
        // interim block, then the answer).
        for expect in ["Expect:", "Expect: 100-continue"] {
            let (code, out) = curl(vec![
                "-T".to_string(),
                file.display().to_string(),
                "-H".to_string(),
                expect.to_string(),
                "-w".to_string(),
                "\n%{http_version} %{http_code} %{size_upload}".to_string(),
                format!("http://{}/upload/big.bin", proxy.addr),
            ])
            .await;
            assert_eq!(code, Some(0), "{expect} curl: {out:?}");
            assert_eq!(
                out,
                format!("insufficient storage\n\n2 507 {size}"),
                "{expect}: the answer after the whole upload"
            );
        }
        let summary = proxy.finish().await;
        assert_eq!(fired(&summary, "uploads refused"), 2);
        let ports = [proxy.addr.port(), server.addr.port()];
        assert_eq!(
            http2_problems(&capture, &ports),
            Vec::<String>::new(),
            "tshark reads every leg as HTTP/2"
        );
        let comments: Vec<String> = segments(&capture, &ports)
            .into_iter()
            .filter(|s| s.src == proxy.addr.port() && !s.comment.is_empty())
            .map(|s| s.comment)
            .collect();
        assert!(
            comments
                .iter()
                .any(|c| c.contains("answered 507") && c.contains(&format!("{size} bytes"))),
            "{comments:?}"
        );
        assert_eq!(
            comments
                .iter()
                .filter(|c| c.contains("100 Continue on stream 1"))
                .count(),
            1,
            "{comments:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_sees_a_download_reset_after_ten_bytes_of_its_stream() {
    bounded("curl h2c rst_stream", async {
        let server = h2_server::start().await;
        let mut proxy = Proxy::start(
            server.spec(),
            "protocol = \"h2\"",
            r#"
[[rule]]
name = "response cut"
match = { path = "/cut", direction = "upstream->client" }
fault.rst_stream = { after = 10 }
"#,
            None,
        )
        .await;
        let (code, out) = curl(vec![format!("http://{}/cut", proxy.addr)]).await;
        // curl: (92) HTTP/2 stream 1 was not closed cleanly: CANCEL.
        assert_eq!(code, Some(92), "{out:?}");
        // Whether curl writes the ten bytes that came before the reset depends on whether it
        // read the RST_STREAM in the same read (it then drops them); never more than ten.
        assert!(
            out.is_empty() || out == "GET /cut 1",
            "at most ten bytes, then the reset: {out:?}"
        );
        let (code, out) = curl(vec![format!("http://{}/whole", proxy.addr)]).await;
        assert_eq!(code, Some(0));
        assert!(out.starts_with("GET /whole 127.0.0.1"), "{out:?}");
        let summary = proxy.finish().await;
        assert_eq!(fired(&summary, "response cut"), 1);
    })
    .await;
}

/// Sends `GET path` (or a POST with `body`) on an h2 client connection; the status and body,
/// or the stream's error.
async fn h2_request(
    client: &mut h2::client::SendRequest<bytes::Bytes>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://faultline.test{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(()).expect("a request");
    let mut ready = client.clone().ready().await.map_err(|e| e.to_string())?;
    let (response, mut send) = ready
        .send_request(request, body.is_empty())
        .map_err(|e| e.to_string())?;
    if !body.is_empty() {
        send.send_data(bytes::Bytes::copy_from_slice(body), true)
            .map_err(|e| e.to_string())?;
    }
    let response = response.await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let mut stream = response.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = stream.data().await {
        let chunk = chunk.map_err(|e| format!("after {} bytes: {e}", got.len()))?;
        let _ = stream.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    Ok((status, got))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_h2_connection_carries_answered_reset_and_whole_streams_side_by_side() {
    bounded("streams side by side", async {
        let server = h2_server::start().await;
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            r#"
[[rule]]
name = "posts answered"
match = { method = "POST", header = { "x-token" = "s*" } }
fault.respond = { status = 503 }

[[rule]]
name = "cut downloads reset"
match = { path = "/cut/*", direction = "upstream->client" }
fault.rst_stream = { after = 12, code = "REFUSED_STREAM" }
"#,
            None,
        )
        .await;
        let tcp = tokio::net::TcpStream::connect(proxy.addr)
            .await
            .expect("connect");
        let (mut client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
        let driver = tokio::spawn(connection);
        // Ten streams at once on the one connection.
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..10u32 {
            let mut client = client.clone();
            calls.spawn(async move {
                let (method, path, headers): (&str, String, &[(&str, &str)]) = match i % 3 {
                    0 => ("POST", format!("/post/{i}"), &[("x-token", "secret")]),
                    1 => ("GET", format!("/cut/{i}"), &[]),
                    _ => ("GET", format!("/whole/{i}"), &[]),
                };
                let got = h2_request(&mut client, method, &path, headers, b"body").await;
                (i, got)
            });
        }
        let mut results = std::collections::BTreeMap::new();
        while let Some(done) = calls.join_next().await {
            let (i, got) = done.expect("a call task");
            results.insert(i, got);
        }
        // The connection is still good for one more.
        let last = h2_request(&mut client, "GET", "/last", &[], b"").await;
        assert_eq!(
            last.as_ref()
                .map(|(s, b)| (*s, b.starts_with(b"GET /last"))),
            Ok((200, true)),
            "{last:?}"
        );
        for (i, got) in &results {
            match i % 3 {
                0 => assert_eq!(
                    got.as_ref().map(|(s, _)| *s),
                    Ok(503),
                    "stream {i}: {got:?}"
                ),
                1 => {
                    let error = got.as_ref().expect_err("reset");
                    assert!(
                        error.contains("after 12 bytes") && error.contains("refused"),
                        "stream {i}: {error}"
                    );
                }
                _ => {
                    let (status, body) = got.as_ref().expect("whole");
                    assert_eq!(*status, 200);
                    assert!(body.starts_with(format!("GET /whole/{i}").as_bytes()));
                }
            }
        }
        assert_eq!(proxy.connections(), 1);
        drop(client);
        driver.abort();
        let summary = proxy.finish().await;
        assert_eq!(fired(&summary, "posts answered"), 4);
        assert_eq!(fired(&summary, "cut downloads reset"), 3);
        assert_eq!(server.accepted(), 1);
    })
    .await;
}

/// python-hyper's h2 treats a frame on a stream after its END_STREAM as a connection error, as
/// RFC 9113 §5.1 says. The upstream must not answer a GET faultline answered (its answer would
/// follow faultline's), and a dropped response must reach the client after the stream's reset:
/// the strict client's connection survives both, and its next request succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_client_keeps_its_connection_through_answered_and_dropped_responses() {
    bounded("strict h2 client", async {
        let dir = TempDir::new("h2-strict-client");
        let server = h2_server::start().await;
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            r#"
[[rule]]
name = "teapot"
match = { path = "/teapot" }
fault.respond = { status = 418, body = "no tea" }

[[rule]]
name = "lost answer"
match = { path = "/lost" }
fault.drop_response = {}
"#,
            None,
        )
        .await;
        let addr = proxy.addr;
        let paths = ["/teapot", "/after-teapot", "/lost", "/after-lost"];
        let mut command = std::process::Command::new(helpers::python());
        command
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/h2c/strict_client.py"),
            )
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .args(paths);
        let finished = tokio::task::spawn_blocking({
            let logs = dir.path().to_path_buf();
            move || {
                crate::support::daemon::run_bounded(
                    &mut command,
                    &logs,
                    "strict-client",
                    std::time::Duration::from_secs(60),
                )
            }
        })
        .await
        .expect("the client's task");
        // The server's bodies name the port, so their lengths vary: the statuses say enough.
        let outcomes: Vec<&str> = finished
            .stdout
            .lines()
            .map(|line| match line.split_once(" bytes=") {
                Some((head, n)) if !line.starts_with("/teapot") && n != "0" => head,
                _ => line,
            })
            .collect();
        assert_eq!(
            outcomes,
            [
                "/teapot status=418 bytes=6",
                "/after-teapot status=200",
                "/lost reset=8",
                "/after-lost status=200",
            ],
            "stderr: {}",
            finished.stderr
        );
        assert!(finished.status.success());
        assert_eq!(proxy.connections(), 1);
        let summary = proxy.finish().await;
        assert_eq!(fired(&summary, "teapot"), 1);
        assert_eq!(fired(&summary, "lost answer"), 1);
    })
    .await;
}

/// A GET is only a header block, so a latency on it has no DATA to hold: faultline holds the
/// block itself, and an upload already under way on the same connection keeps flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_get_leaves_an_upload_on_its_connection_flowing() {
    bounded("delayed GET", async {
        let server = h2_server::start().await;
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            r#"
[[rule]]
name = "slow get"
match = { path = "/slow", direction = "client->upstream" }
fault.latency = { delay = "4s" }
"#,
            None,
        )
        .await;
        let tcp = tokio::net::TcpStream::connect(proxy.addr)
            .await
            .expect("connect");
        let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
        let driver = tokio::spawn(connection);
        let upload = http::Request::builder()
            .method("POST")
            .uri("http://faultline.test/upload")
            .body(())
            .expect("a request");
        let mut ready = client.clone().ready().await.expect("ready");
        let (uploaded, mut body) = ready.send_request(upload, false).expect("POST sent");
        let started = std::time::Instant::now();
        let mut slow_client = client.clone();
        let slow = tokio::spawn(async move {
            let got = h2_request(&mut slow_client, "GET", "/slow", &[], b"").await;
            (got, started.elapsed())
        });
        // The GET's block reaches faultline before the upload's DATA.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        body.send_data(bytes::Bytes::from_static(b"payload"), true)
            .expect("POST body sent");
        let response = uploaded.await.expect("POST answered");
        let mut answer = response.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = answer.data().await {
            text.extend_from_slice(&chunk.expect("POST body"));
        }
        let upload_took = started.elapsed();
        let text = String::from_utf8_lossy(&text);
        assert!(text.starts_with("POST /upload"), "{text}");
        assert!(text.contains("(7 bytes in)"), "{text}");
        // Far below the 4 s latency even on a loaded machine (the upload alone takes
        // milliseconds); it waited the whole 4 s before the GET could be held.
        assert!(
            upload_took < std::time::Duration::from_secs(3),
            "the upload waited for the GET's latency: {upload_took:?}"
        );
        let (got, slow_took) = slow.await.expect("GET task");
        let (status, body) = got.expect("the GET is answered");
        assert_eq!(status, 200);
        assert!(body.starts_with(b"GET /slow"));
        assert!(
            slow_took >= std::time::Duration::from_secs(4),
            "{slow_took:?}"
        );
        driver.abort();
        let summary = proxy.finish().await;
        assert_eq!(fired(&summary, "slow get"), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followed_streams_leave_in_the_segments_they_came_in() {
    bounded("no split writes", async {
        let dir = TempDir::new("h2-segments");
        let capture = dir.path().join("segments.pcapng");
        let server = h2_server::start().await;
        // Armed on every stream, never firing: the session splits each chunk at frame and
        // message boundaries, and the pump must still write what it read in one piece.
        let mut proxy = Proxy::start(
            server.spec(),
            "",
            r#"
[[rule]]
name = "armed"
match = { path = "/**", direction = "both" }
fault.rst_stream = { after = "1GiB" }
"#,
            Some(capture.clone()),
        )
        .await;
        let tcp = tokio::net::TcpStream::connect(proxy.addr)
            .await
            .expect("connect");
        let (mut client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
        let driver = tokio::spawn(connection);
        for i in 0..30 {
            let got = h2_request(&mut client, "POST", &format!("/call/{i}"), &[], b"ping").await;
            assert_eq!(got.as_ref().map(|(s, _)| *s), Ok(200), "{got:?}");
        }
        drop(client);
        driver.abort();
        let summary = proxy.finish().await;
        assert_eq!(fired(&summary, "armed"), 0);
        let ports = [proxy.addr.port(), server.addr.port()];
        let segs = segments(&capture, &ports);
        let count = |f: &dyn Fn(&helpers::Segment) -> bool| segs.iter().filter(|s| f(s)).count();
        let up = server.addr.port();
        let from_server = count(&|s| s.src == up);
        let to_client = count(&|s| s.src == proxy.addr.port());
        let from_client = count(&|s| s.dst == proxy.addr.port());
        let to_server = count(&|s| s.dst == up);
        assert!(
            to_client <= from_server && to_server <= from_client,
            "faultline split what it read: {from_server} segments from the server became {to_client} to the client, {from_client} from the client became {to_server} to the server"
        );
    })
    .await;
}

// ----------------------------------------------------------------------------- bad peers

pub(crate) mod bad_peers {
    //! Raw peers that break HTTP/2 somewhere, through the real binary: the rest of the
    //! connection is relayed as bytes, byte for byte, with one warning.

    use std::path::Path;
    use std::process::Command;
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use crate::support::daemon::{Daemon, FAULTLINE};
    use crate::support::upstream::serve;

    /// The client preface.
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    /// An empty SETTINGS frame.
    pub fn settings() -> Vec<u8> {
        frame(4, 0, 0, &[])
    }

    /// A frame of `kind` with `flags` on `stream`.
    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// A request HEADERS block for `GET /` that any decoder reads (static-table indexes only).
    pub fn get_request(stream: u32) -> Vec<u8> {
        // :method GET (2), :scheme http (6), :path / (4), :authority literal "x" (1).
        frame(1, 0x5, stream, &[0x82, 0x86, 0x84, 0x41, 0x01, b'x'])
    }

    /// What each side received when `client` bytes met `server` bytes through faultline.
    pub struct Exchange {
        pub upstream_got: Vec<u8>,
        pub client_got: Vec<u8>,
        pub stderr: String,
    }

    /// Runs the binary with `scenario` in front of a raw server that answers `server` bytes,
    /// sends `client` bytes, half-closes, and reads to the end on both sides.
    pub async fn exchange(
        dir: &Path,
        scenario: &str,
        client: Vec<u8>,
        server: Vec<u8>,
    ) -> Exchange {
        let got = Arc::new(Mutex::new(Vec::new()));
        let recorded = got.clone();
        let server = Arc::new(server);
        let upstream = serve(move |mut stream: TcpStream| {
            let got = recorded.clone();
            let server = server.clone();
            async move {
                // Answers once the client is done, so every client byte is planned first.
                let mut buf = Vec::new();
                let _ = stream.read_to_end(&mut buf).await;
                got.lock().expect("lock").extend_from_slice(&buf);
                let _ = stream.write_all(&server).await;
                let _ = stream.shutdown().await;
            }
        })
        .await;
        let path = dir.join("bad.toml");
        std::fs::write(&path, scenario).expect("write the scenario");
        let mut daemon = Daemon::start(
            Command::new(FAULTLINE)
                .arg("run")
                .arg(&path)
                .args(["--listen", "127.0.0.1:0", "--upstream"])
                .arg(upstream.addr.to_string()),
            dir,
            "faultline",
        );
        let addr = daemon.faultline_address();
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("connect to faultline");
        stream.write_all(&client).await.expect("send");
        stream.shutdown().await.expect("half-close");
        let mut client_got = Vec::new();
        stream
            .read_to_end(&mut client_got)
            .await
            .expect("read to the end");
        // The upstream recorded its bytes before it closed, which the client just saw.
        let upstream_got = got.lock().expect("lock").clone();
        let finished = daemon.stop();
        assert!(finished.status.success(), "{}", finished.output());
        Exchange {
            upstream_got,
            client_got,
            stderr: finished.stderr,
        }
    }
}

/// The scenario for the bad-peer tests: an HTTP/2 rule, so the session follows the connection.
fn bad_peer_scenario(protocol: &str) -> String {
    format!(
        "name = \"bad-peer\"\nseed = 1\n[proxy]\nprotocol = \"{protocol}\"\n[[rule]]\nmatch = {{ path = \"/never\" }}\nfault.rst_stream = {{ after = 1 }}\n"
    )
}

fn assert_relayed_raw_with_one_warning(
    exchange: &bad_peers::Exchange,
    client: &[u8],
    server: &[u8],
    direction: &str,
) {
    crate::support::assert_same(
        client,
        &exchange.upstream_got,
        "client bytes at the upstream",
    );
    crate::support::assert_same(server, &exchange.client_got, "upstream bytes at the client");
    let warnings: Vec<&str> = exchange
        .stderr
        .lines()
        .filter(|l| l.contains("WARN"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning: {}", exchange.stderr);
    assert!(
        warnings[0].contains("not HTTP/2 after all") && warnings[0].contains(direction),
        "it names the direction: {}",
        warnings[0]
    );
    assert!(
        !exchange.stderr.contains("BUG") && !exchange.stderr.contains("panicked"),
        "{}",
        exchange.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_preface_after_a_valid_start_is_relayed_as_tcp_with_one_warning() {
    bounded("bad preface", async {
        let dir = TempDir::new("h2-bad-preface");
        let mut client = b"PRI * HTTP/2.0\r\n\r\nXY\r\n\r\n".to_vec();
        client.extend_from_slice(&[0xff; 300]);
        let server = bad_peers::settings();
        let exchange = bad_peers::exchange(
            dir.path(),
            &bad_peer_scenario("h2"),
            client.clone(),
            server.clone(),
        )
        .await;
        assert_relayed_raw_with_one_warning(&exchange, &client, &server, "client->upstream");
        // Auto-detected, the same bytes are not HTTP/2 (nor HTTP/1) from the start: relayed
        // untouched, with nothing to warn about.
        let exchange = bad_peers::exchange(
            dir.path(),
            &bad_peer_scenario("auto"),
            client.clone(),
            server.clone(),
        )
        .await;
        crate::support::assert_same(&client, &exchange.upstream_got, "auto: client bytes");
        crate::support::assert_same(&server, &exchange.client_got, "auto: upstream bytes");
        assert!(
            !exchange.stderr.contains("WARN")
                && !exchange.stderr.contains("BUG")
                && !exchange.stderr.contains("panicked"),
            "{}",
            exchange.stderr
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_is_relayed_as_tcp_with_one_warning() {
    bounded("oversized frame", async {
        let dir = TempDir::new("h2-oversized");
        let mut client = bad_peers::PREFACE.to_vec();
        client.extend(bad_peers::settings());
        client.extend(bad_peers::get_request(1));
        // 20 000 bytes of DATA: above the 16 384 every peer accepts before SETTINGS raise it.
        client.extend(bad_peers::frame(0, 0, 1, &vec![7u8; 20_000]));
        client.extend_from_slice(b"and whatever follows");
        let server = bad_peers::settings();
        let exchange = bad_peers::exchange(
            dir.path(),
            &bad_peer_scenario("auto"),
            client.clone(),
            server.clone(),
        )
        .await;
        assert_relayed_raw_with_one_warning(&exchange, &client, &server, "client->upstream");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpack_error_from_the_server_is_relayed_as_tcp_with_one_warning() {
    bounded("HPACK error", async {
        let dir = TempDir::new("h2-hpack");
        let mut client = bad_peers::PREFACE.to_vec();
        client.extend(bad_peers::settings());
        client.extend(bad_peers::get_request(1));
        let mut server = bad_peers::settings();
        // A response block naming dynamic-table entry 70, which the empty table does not have.
        server.extend(bad_peers::frame(1, 0x4, 1, &[0x88, 0xbf, 0x07]));
        server.extend_from_slice(&[0u8; 100]);
        let exchange = bad_peers::exchange(
            dir.path(),
            &bad_peer_scenario("auto"),
            client.clone(),
            server.clone(),
        )
        .await;
        assert_relayed_raw_with_one_warning(&exchange, &client, &server, "upstream->client");
    })
    .await;
}

// ------------------------------------------------------------------------------ check

#[test]
fn check_warns_in_one_line_about_an_http2_rule_that_can_never_fire() {
    let dir = TempDir::new("h2-check");
    let file = dir.write(
        "http1-only.toml",
        "[proxy]\nupstream = \"127.0.0.1:9\"\nprotocol = \"http\"\n[[rule]]\nname = \"cut reads\"\nmatch = { path = \"/google.bytestream.ByteStream/Read\" }\nfault.rst_stream = { after = \"1MiB\" }\n",
    );
    let out = std::process::Command::new(crate::support::daemon::FAULTLINE)
        .arg("check")
        .arg(&file)
        .output()
        .expect("run faultline check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].starts_with(&format!(
            "{}: warning: rule \"cut reads\": rst_stream",
            file.display()
        )) && warnings[0].contains("never fire"),
        "{stderr}"
    );
}

// ------------------------------------------------------------------------------ demo

/// `faultline demo --grpc`: the resuming reader's blobs all verify, the restarting reader's reset
/// blob is corrupt, each on one connection where the rule fired once; both captures land in
/// ./captures and tshark reads the reset in them.
#[test]
fn grpc_demo_tells_a_resumed_read_from_a_restarted_one() {
    let dir = TempDir::new("demo-grpc");
    let started = std::time::Instant::now();
    let out = crate::support::daemon::run_bounded(
        std::process::Command::new(crate::support::daemon::FAULTLINE)
            .args(["demo", "--grpc"])
            .current_dir(dir.path()),
        dir.path(),
        "demo",
        std::time::Duration::from_secs(60),
    );
    let took = started.elapsed();
    assert_eq!(out.code(), Some(0), "{}", out.output());
    assert!(
        took < std::time::Duration::from_secs(20),
        "the demo took {took:?}"
    );
    let (resumer, restarter) = out
        .stdout
        .split_once("reader 2 restarts")
        .unwrap_or_else(|| panic!("no second reader:\n{}", out.stdout));
    assert_eq!(resumer.matches(": intact").count(), 3, "{resumer}");
    assert!(resumer.contains("Read 2 from "), "{resumer}");
    assert!(!resumer.contains("CORRUPT"), "{resumer}");
    assert_eq!(restarter.matches(": intact").count(), 2, "{restarter}");
    assert!(
        restarter.contains("does NOT match the resource name: CORRUPT"),
        "{restarter}"
    );
    // inspect reads both captures: the wire carried every blob whole, and the restarting
    // reader's retry from 0 is named with the size an appending client ends up holding.
    assert_eq!(resumer.matches("inspect: OK").count(), 1, "{resumer}");
    assert!(!resumer.contains("starts over"), "{resumer}");
    assert_eq!(restarter.matches("inspect: OK").count(), 1, "{restarter}");
    let appended = restarter
        .lines()
        .find(|l| l.contains("starts over after"))
        .unwrap_or_else(|| panic!("no restart note:\n{restarter}"));
    let held: String = appended
        .rsplit("would hold ")
        .next()
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(
        restarter.contains(&format!("assembled {held} B, sha256 does NOT match")),
        "inspect's size for an appending client is what reader 2 assembled: {restarter}"
    );
    let mut captures: Vec<_> = std::fs::read_dir(dir.path().join("captures"))
        .expect("captures folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcapng"))
        .collect();
    captures.sort();
    assert_eq!(captures.len(), 2, "one capture per reader");
    // The closing hint is a tshark command that shows the reset stream with its comment.
    let hint = out
        .stdout
        .lines()
        .last()
        .expect("a hint")
        .trim()
        .to_string();
    let args: Vec<String> = hint
        .split(' ')
        .skip(3) // tshark -r FILE
        .map(|a| a.trim_matches('\'').to_string())
        .collect();
    // Re-join the quoted display filter, which holds spaces.
    let filter_at = args.iter().position(|a| a == "-Y").expect("-Y") + 1;
    let filter_end = args.iter().position(|a| a == "-T").expect("-T");
    let mut tshark_args: Vec<String> = args[..filter_at].to_vec();
    tshark_args.push(args[filter_at..filter_end].join(" "));
    tshark_args.extend(args[filter_end..].iter().cloned());
    let capture = dir
        .path()
        .join(hint.split(' ').nth(2).expect("the capture"));
    let rows = crate::support::tshark::run(
        &capture,
        &tshark_args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .stdout;
    assert!(
        rows.lines()
            .any(|l| l.contains("\t8\t") && l.contains("reset the stream (CANCEL)")),
        "RST_STREAM(CANCEL) with the rule's comment:\n{rows}"
    );
}

/// The frames of `bytes` (a whole number of them): type, stream, payload.
fn raw_frames(mut bytes: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
        let end = (9 + len).min(bytes.len());
        frames.push((bytes[3], stream, bytes[9..end].to_vec()));
        bytes = &bytes[end..];
    }
    frames
}

/// Found by a user trial: `goaway = { after_streams = 2 }` with 8 requests sent in one burst
/// forwarded all 8 and named stream 15 as the last. Sent in one write (read by faultline in
/// one chunk), the upstream gets streams 1 and 3 only, the client a GOAWAY naming 3 and
/// REFUSED_STREAM for 5..15, and the log line of the fault names the last stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_after_two_streams_of_a_burst_refuses_the_rest_and_names_the_second() {
    bounded("goaway after a burst", async {
        let dir = TempDir::new("h2-goaway-burst");
        let mut client = bad_peers::PREFACE.to_vec();
        client.extend(bad_peers::settings());
        for n in 0..8 {
            client.extend(bad_peers::get_request(1 + 2 * n));
        }
        let scenario = "name = \"burst\"\nseed = 1\n[proxy]\nprotocol = \"h2\"\n[[rule]]\nname = \"two\"\nfault.goaway = { after_streams = 2 }\n";
        let exchange =
            bad_peers::exchange(dir.path(), scenario, client, bad_peers::settings()).await;
        let upstream = raw_frames(&exchange.upstream_got[bad_peers::PREFACE.len()..]);
        let forwarded: Vec<u32> = upstream
            .iter()
            .filter(|f| f.0 == HEADERS)
            .map(|f| f.1)
            .collect();
        assert_eq!(forwarded, [1, 3], "{upstream:?}");
        let to_client = raw_frames(&exchange.client_got);
        let goaways: Vec<&Vec<u8>> = to_client
            .iter()
            .filter(|f| f.0 == GOAWAY)
            .map(|f| &f.2)
            .collect();
        assert_eq!(goaways.len(), 1, "{to_client:?}");
        assert_eq!(goaways[0][..4], [0, 0, 0, 3], "GOAWAY names stream 3");
        let refused: Vec<u32> = to_client
            .iter()
            .filter(|f| f.0 == RST_STREAM && f.2 == [0, 0, 0, 7])
            .map(|f| f.1)
            .collect();
        assert_eq!(refused, [5, 7, 9, 11, 13, 15], "{to_client:?}");
        assert!(
            exchange
                .stderr
                .contains("GOAWAY (NO_ERROR, graceful, last stream 3) sent to the client"),
            "{}",
            exchange.stderr
        );
    })
    .await;
}

/// A gRPC call's first request message that stops coming (the client pauses inside it, its
/// windows would take the rest) holds the client's frames at most a second: then the rules
/// decide on what came, the held DATA reaches the upstream, and faultline says so once at warn
/// level. Nothing waits for ever, nothing waits in silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_grpc_message_that_stops_coming_is_relayed_after_a_second_with_a_warning() {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    bounded("a paused first message", async {
        let dir = TempDir::new("h2-first-message-wait");
        let got = Arc::new(Mutex::new(Vec::new()));
        let recorded = got.clone();
        let upstream = crate::support::upstream::serve(move |mut stream| {
            let got = recorded.clone();
            async move {
                let _ = stream.write_all(&bad_peers::settings()).await;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    got.lock().expect("lock").extend_from_slice(&buf[..n]);
                }
            }
        })
        .await;
        let path = dir.path().join("wait.toml");
        std::fs::write(
            &path,
            "name = \"wait\"\nseed = 1\n[proxy]\nprotocol = \"h2\"\n[[rule]]\nname = \"GET only\"\nmatch = { method = \"GET\", direction = \"upstream->client\" }\nfault.rst_stream = { after = \"1MiB\" }\n",
        )
        .expect("write the scenario");
        let mut daemon = crate::support::daemon::Daemon::start(
            std::process::Command::new(crate::support::daemon::FAULTLINE)
                .env("RUST_LOG", "faultline=info")
                .arg("run")
                .arg(&path)
                .args(["--listen", "127.0.0.1:0", "--upstream"])
                .arg(upstream.addr.to_string()),
            dir.path(),
            "faultline",
        );
        let addr = daemon.faultline_address();
        // POST /t.Svc/Upload, content-type application/grpc: static-table names, literal
        // values without indexing.
        let mut block = vec![0x83, 0x86, 0x04, 13];
        block.extend_from_slice(b"/t.Svc/Upload");
        block.extend_from_slice(&[0x41, 1, b'x', 0x0f, 0x10, 16]);
        block.extend_from_slice(b"application/grpc");
        // The first 100 bytes of a 1000-byte message.
        let mut part = vec![0, 0, 0, 0x03, 0xe8];
        part.extend_from_slice(&[7; 95]);
        let data = bad_peers::frame(0, 0, 1, &part);
        let mut client = bad_peers::PREFACE.to_vec();
        client.extend(bad_peers::settings());
        client.extend(bad_peers::frame(1, 0x4, 1, &block));
        client.extend_from_slice(&data);
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to faultline");
        let sent = Instant::now();
        stream.write_all(&client).await.expect("send");
        let relayed = loop {
            let bytes = got.lock().expect("lock").clone();
            if bytes.windows(data.len()).any(|w| w == data.as_slice()) {
                break sent.elapsed();
            }
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "the paused message's DATA never reached the upstream ({} bytes did)",
                bytes.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            relayed >= Duration::from_millis(900),
            "relayed after {relayed:?}: before the wait ran out, yet the message is not whole"
        );
        drop(stream);
        let finished = daemon.stop();
        let warnings: Vec<&str> = finished
            .stderr
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("first request message"))
            .collect();
        assert_eq!(warnings.len(), 1, "{}", finished.stderr);
        assert!(warnings[0].contains("stream=1"), "{}", warnings[0]);
    })
    .await;
}

/// The client's side of an "HPACK bomb" (the hostile-input trial's): a GET on stream 1 that
/// inserts one 4,000-byte entry, then `frames` GETs of three static fields and `refs`
/// one-byte references to it (16,000 refs: a 16 KB frame decoding to 64 MB; 62 refs: a 65-byte
/// frame decoding to 250 KB, under the per-block list limit, kept while its stream is open).
fn hpack_bomb(frames: u32, refs: usize) -> Vec<u8> {
    let mut insert = vec![0x82, 0x86, 0x84, 0x40, 0x01, b'x', 0x7f];
    // 4,000 = 127 + 3,873: the 7-bit prefix full, then 3,873 in 7-bit groups.
    insert.extend([0x80 | (3873 & 0x7f) as u8, (3873 >> 7) as u8]);
    insert.extend(std::iter::repeat_n(b'v', 4000));
    let mut bomb = vec![0x82, 0x86, 0x84];
    bomb.extend(std::iter::repeat_n(0xbe, refs));
    let mut client = bad_peers::PREFACE.to_vec();
    client.extend(bad_peers::settings());
    client.extend(bad_peers::frame(1, 0x5, 1, &insert));
    for i in 0..frames {
        client.extend(bad_peers::frame(1, 0x5, 3 + 2 * i, &bomb));
    }
    client
}

/// Resident memory of process `pid` in KiB (0 once it is gone).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The hostile-input trial: with `protocol = "h2"`, one connection of 200 bomb frames (3.2 MB)
/// took `faultline run` from 29 MB to 750 MB, 24 connections to 3.2 GB, and nothing was
/// logged. Now 12 connections of each bomb shape (16 KB frames over the list limit; 65-byte
/// frames under it, streams never answered) go through the real binary with its resident
/// size sampled all along: it stays under 200 MB, every upstream gets the client's bytes
/// unchanged, and each connection is one warning (relayed raw from the block at fault).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpack_bomb_through_the_binary_stays_small_and_reaches_the_upstream_unchanged() {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const CONNECTIONS: usize = 12;
    bounded("hpack bomb", async {
        let dir = TempDir::new("h2-hpack-bomb");
        let got: Arc<Mutex<Vec<Vec<u8>>>> = Arc::new(Mutex::new(Vec::new()));
        let recorded = got.clone();
        // An upstream that never answers a request: the bomb's streams stay open.
        let upstream = crate::support::upstream::serve(move |mut stream: TcpStream| {
            let got = recorded.clone();
            async move {
                let _ = stream.write_all(&bad_peers::settings()).await;
                let mut buf = Vec::new();
                let _ = stream.read_to_end(&mut buf).await;
                got.lock().expect("lock").push(buf);
            }
        })
        .await;
        let path = dir.path().join("bomb.toml");
        std::fs::write(&path, bad_peer_scenario("h2")).expect("write the scenario");
        let mut daemon = crate::support::daemon::Daemon::start(
            std::process::Command::new(crate::support::daemon::FAULTLINE)
                .arg("run")
                .arg(&path)
                .args(["--listen", "127.0.0.1:0", "--upstream"])
                .arg(upstream.addr.to_string()),
            dir.path(),
            "faultline",
        );
        let addr = daemon.faultline_address();
        let pid = daemon.pid();
        let before = rss_kib(pid);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let done = done.clone();
            tokio::spawn(async move {
                let mut peak = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    peak = peak.max(rss_kib(pid));
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                peak.max(rss_kib(pid))
            })
        };
        let mut sent = Vec::new();
        let mut clients = Vec::new();
        for i in 0..CONNECTIONS {
            let client = if i % 2 == 0 {
                hpack_bomb(200, 16_000)
            } else {
                hpack_bomb(1000, 62)
            };
            sent.push(client.clone());
            clients.push(tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.expect("connect");
                stream.write_all(&client).await.expect("send the bomb");
                stream.shutdown().await.expect("half-close");
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer).await;
                answer
            }));
        }
        for client in clients {
            let answer = client.await.expect("client task");
            crate::support::assert_same(&bad_peers::settings(), &answer, "upstream bytes");
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak = sampler.await.expect("sampler");
        // Every connection closed: what the sessions held is freed and handed back (glibc
        // kept 1.3 GB of freed chunks after the trial's connections closed). The last
        // session ends just after its client saw the close: wait for it, bounded.
        let mut after = rss_kib(pid);
        for _ in 0..100 {
            if after < 100 * 1024 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            after = rss_kib(pid);
        }
        eprintln!("faultline RSS: {before} KiB before, peak {peak} KiB, {after} KiB after");
        let finished = daemon.stop();
        assert!(finished.status.success(), "{}", finished.output());
        let mut upstream_got = got.lock().expect("lock").clone();
        assert_eq!(upstream_got.len(), CONNECTIONS);
        upstream_got.sort();
        sent.sort();
        for (i, (want, got)) in sent.iter().zip(&upstream_got).enumerate() {
            crate::support::assert_same(want, got, &format!("connection {i} at the upstream"));
        }
        let warnings: Vec<&str> = finished
            .stderr
            .lines()
            .filter(|l| l.contains("WARN"))
            .collect();
        assert_eq!(warnings.len(), CONNECTIONS, "{}", finished.stderr);
        assert!(
            warnings.iter().all(|w| w.contains("not HTTP/2 after all")
                && (w.contains("header list exceeds") || w.contains("header lists kept"))),
            "{warnings:#?}"
        );
        assert!(!finished.stderr.contains("panicked"), "{}", finished.stderr);
        assert!(
            peak < 200 * 1024,
            "faultline's resident size reached {peak} KiB (before: {before} KiB)"
        );
        assert!(
            after < 100 * 1024,
            "faultline kept {after} KiB resident after every connection closed"
        );
    })
    .await;
}
