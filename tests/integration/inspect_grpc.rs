//! `faultline inspect` on captures of real gRPC: the built faultline (`protocol = "auto"`, an
//! `rst_stream` rule) in front of a real grpcio ByteStream server (tests/grpc/inspect_server.py)
//! with real grpcio clients (inspect_client.py) that resume what a reset stream cut. Inspect must verify
//! the stitched blob (exit 0), catch a server that ignored `read_offset` (exit 1, resource and
//! offset named), verify a resumed Write, verify a Read that both ends gzip-compress
//! (`grpc-encoding: gzip`), and agree with tshark's http2 dissector on the streams.
//!
//! grpcio comes from `tests/install-grpc.sh` (the h2 tests' venv, installed on first use and by
//! `make test`); a failed install fails the tests.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use faultline::inspect::schema;
use serde_json::Value;

use crate::support::daemon::{run_bounded, Daemon, FAULTLINE};
use crate::support::temp_dir::TempDir;
use crate::support::tshark;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const LIMIT: Duration = Duration::from_secs(90);
/// The blob the reads fetch: seed 1, 300 000 bytes (the server sends 16 KiB messages).
const READ_BLOB: &str = "1:300000";

/// The grpcio venv's python (tests/install-grpc.sh, shared with the h2 tests).
fn python() -> PathBuf {
    crate::h2::helpers::python().to_path_buf()
}

fn script(name: &str) -> PathBuf {
    Path::new(REPO).join("tests/grpc").join(name)
}

struct World {
    tmp: TempDir,
    python: PathBuf,
    n: std::cell::Cell<u32>,
}

/// One proxied run: the server, faultline in front of it, and where the capture goes.
struct Run {
    server: Daemon,
    server_addr: SocketAddr,
    proxy: Daemon,
    proxy_addr: SocketAddr,
    capture: PathBuf,
}

impl World {
    fn new(label: &str) -> World {
        let tmp = TempDir::new(label);
        std::fs::create_dir_all(tmp.path().join("logs")).expect("logs dir");
        World {
            tmp,
            python: python(),
            n: std::cell::Cell::new(0),
        }
    }

    fn logs(&self) -> PathBuf {
        self.tmp.path().join("logs")
    }

    fn label(&self, what: &str) -> String {
        self.n.set(self.n.get() + 1);
        format!("{}-{what}", self.n.get())
    }

    /// The ByteStream server with `args`, and faultline in front of it running `rules`.
    fn start(&self, server_args: &[&str], rules: &str) -> Run {
        let mut server = Daemon::start(
            Command::new(&self.python)
                .arg(script("inspect_server.py"))
                .args(server_args),
            &self.logs(),
            &self.label("server"),
        );
        let server_addr = server.faultline_address();
        let scenario = self.tmp.write(
            &format!("{}.toml", self.label("scenario")),
            &format!(
                "name = \"grpc-inspect\"\nseed = 3\n\n[proxy]\nprotocol = \"auto\"\n\n{rules}"
            ),
        );
        let capture = self
            .tmp
            .path()
            .join(format!("{}.pcapng", self.label("capture")));
        let mut proxy = Daemon::start(
            Command::new(FAULTLINE)
                .arg("run")
                .arg(&scenario)
                .args(["--listen", "127.0.0.1:0", "--upstream"])
                .arg(server_addr.to_string())
                .arg("--capture")
                .arg(&capture),
            &self.logs(),
            &self.label("faultline"),
        );
        let proxy_addr = proxy.faultline_address();
        Run {
            server,
            server_addr,
            proxy,
            proxy_addr,
            capture,
        }
    }

    /// inspect_client.py with `args`; its JSON line.
    fn client(&self, args: &[&str]) -> Value {
        let done = run_bounded(
            Command::new(&self.python)
                .arg(script("inspect_client.py"))
                .args(args),
            &self.logs(),
            &self.label("client"),
            LIMIT,
        );
        assert!(
            done.status.success(),
            "inspect_client.py {args:?}: {}",
            done.output()
        );
        serde_json::from_str(done.stdout.trim()).unwrap_or_else(|e| {
            panic!("inspect_client.py printed no JSON ({e}): {}", done.output())
        })
    }

    /// `faultline inspect --json`, then the text report: the JSON, the exit code, the text.
    fn inspect(&self, capture: &Path) -> (Value, Option<i32>, String) {
        let json = run_bounded(
            Command::new(FAULTLINE)
                .args(["inspect", "--json"])
                .arg(capture),
            &self.logs(),
            &self.label("inspect-json"),
            LIMIT,
        );
        let text = run_bounded(
            Command::new(FAULTLINE).arg("inspect").arg(capture),
            &self.logs(),
            &self.label("inspect"),
            LIMIT,
        );
        assert_eq!(
            json.code(),
            text.code(),
            "--json and text agree on the exit code"
        );
        let value = serde_json::from_str(&json.stdout)
            .unwrap_or_else(|e| panic!("no JSON from inspect ({e}):\n{}", json.output()));
        (value, json.code(), text.stdout)
    }
}

impl Run {
    /// Stops faultline (the capture is complete after a clean stop) and the server.
    fn stop(self) -> (PathBuf, SocketAddr, SocketAddr) {
        let done = self.proxy.stop();
        assert!(done.status.success(), "faultline run: {}", done.output());
        self.server.stop();
        (self.capture, self.proxy_addr, self.server_addr)
    }
}

/// Cuts the first Read after 40 KiB of its response, toward both peers.
const RESET_FIRST_READ: &str = r#"
[[rule]]
name = "cut the first read"
match = { path = "/google.bytestream.ByteStream/Read", request = 1, direction = "upstream->client" }
fault.rst_stream = { after = "40KiB", code = "CANCEL" }
"#;

/// The reads of one client run: exactly one was reset and resumed; returns where it resumed.
/// The server waits this long after a Read's first message: the client has taken it before the
/// reset, so it resumes past 0 (1 run in ~40 resumed at 0 without it, grpcio dropping messages
/// it had received but not handed over).
const PAUSE: [&str; 2] = ["--pause-after-first-ms", "200"];

/// Where the client resumed its one Read that was reset (CANCELLED) and read again, past 0
/// and before the 40 KiB the rule let through.
fn resumed_offset(client: &Value) -> u64 {
    let offset = resume_of_the_reset_read(client);
    assert!(offset > 0 && offset < 40 * 1024, "{client}");
    offset
}

/// The offset the client's one reset (CANCELLED) Read resumed at.
fn resume_of_the_reset_read(client: &Value) -> u64 {
    let reads = client["reads"].as_array().expect("reads");
    let resumed: Vec<&Value> = reads
        .iter()
        .filter(|r| r["offsets"].as_array().is_some_and(|o| o.len() > 1))
        .collect();
    assert_eq!(resumed.len(), 1, "one read was reset and resumed: {client}");
    assert_eq!(
        resumed[0]["failures"],
        serde_json::json!(["CANCELLED"]),
        "{client}"
    );
    resumed[0]["offsets"][1].as_u64().expect("offset")
}

/// (tcp stream, HTTP/2 stream id) of every HEADERS frame tshark's http2 dissector finds.
fn tshark_streams(capture: &Path, ports: &[u16]) -> BTreeSet<(String, u64)> {
    tshark::tshark(); // fails the test, naming the install script, when tshark is missing
    let mut args: Vec<String> = Vec::new();
    for port in ports {
        args.extend(["-d".into(), format!("tcp.port=={port},http2")]);
    }
    args.extend(
        ["-Y", "http2", "-T", "fields", "-E", "separator=/t"]
            .into_iter()
            .map(String::from),
    );
    args.extend(
        [
            "-e",
            "tcp.stream",
            "-e",
            "http2.type",
            "-e",
            "http2.streamid",
        ]
        .into_iter()
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tshark::run(capture, &args);
    let mut streams = BTreeSet::new();
    for line in out.stdout.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let [tcp, types, ids] = cols[..] else {
            continue;
        };
        for (kind, id) in types.split(',').zip(ids.split(',')) {
            if kind == "1" {
                streams.insert((tcp.to_string(), id.parse().expect("stream id")));
            }
        }
    }
    streams
}

fn schema_clean(json: &Value, seen: &mut BTreeSet<String>) {
    let problems = schema::violations(json, seen);
    assert!(
        problems.is_empty(),
        "--json departs from the documented schema:\n{}",
        problems.join("\n")
    );
}

#[test]
fn concurrent_reads_one_reset_and_resumed_verify_and_tshark_agrees() {
    let w = World::new("grpc-read-resume");
    let run = w.start(&["--blob", READ_BLOB, PAUSE[0], PAUSE[1]], RESET_FIRST_READ);
    let addr = run.proxy_addr.to_string();
    let client = w.client(&["read", &addr, READ_BLOB, "--parallel", "3"]);
    let offset = resumed_offset(&client);
    assert!(
        client["reads"]
            .as_array()
            .expect("reads")
            .iter()
            .all(|r| r["verified"] == true),
        "every read verified at the client: {client}"
    );
    let (capture, proxy, server) = run.stop();
    let (json, code, text) = w.inspect(&capture);
    assert_eq!(code, Some(0), "{text}");
    let mut seen = BTreeSet::new();
    schema_clean(&json, &mut seen);

    // One TCP connection per leg carried all four reads: the reset killed one stream only.
    let connections = json["h2_connections"].as_array().expect("connections");
    assert_eq!(connections.len(), 2, "{text}");
    let streams = json["h2_streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 8, "{text}");
    let reset: Vec<&Value> = streams.iter().filter(|s| !s["reset"].is_null()).collect();
    assert_eq!(reset.len(), 2, "the cut stream, on each leg: {text}");
    for s in &reset {
        assert_eq!(s["reset"]["code"], "CANCEL");
    }
    let client_reset = reset
        .iter()
        .find(|s| s["leg"] == "client")
        .expect("client leg");
    assert_eq!(client_reset["reset"]["by"], "upstream->client");
    assert_eq!(client_reset["response_bytes"], 40 * 1024, "{text}");
    assert!(
        client_reset["faults"][0]
            .as_str()
            .is_some_and(|f| f.contains("cut the first read")),
        "{text}"
    );
    assert!(streams
        .iter()
        .filter(|s| s["reset"].is_null())
        .all(|s| s["grpc_status"] == 0 && s["grpc_status_name"] == "OK"));

    // The blob, on each leg: the cut read, two whole reads and the resume, verified whole.
    let blobs = json["bytestream"].as_array().expect("blobs");
    assert_eq!(blobs.len(), 2, "{text}");
    for b in blobs {
        assert_eq!(b["check"]["result"], "matches", "{text}");
        assert_eq!(b["matched"], "sha256");
        assert_eq!(b["corrupt"], false);
        let calls = b["calls"].as_array().expect("calls");
        assert_eq!(calls.len(), 4, "{text}");
        assert!(calls
            .iter()
            .any(|c| c["offset"] == offset && c["complete"] == true));
        assert!(calls.iter().any(|c| c["reset"] == "CANCEL"));
    }
    assert_eq!(json["summary"]["h2_streams"], 8);
    assert!(text.contains("2 verified whole"), "{text}");

    // tshark decodes both legs as HTTP/2 and finds the same streams.
    let ours: usize = streams.len();
    let theirs = tshark_streams(&capture, &[proxy.port(), server.port()]);
    assert_eq!(theirs.len(), ours, "tshark streams {theirs:?}\n{text}");
    for must in [
        "h2_streams[].reset.code",
        "h2_streams[].faults",
        "bytestream[].check<matches>",
        "bytestream[].calls[].reset",
    ] {
        assert!(seen.contains(must), "{must} never appeared");
    }
}

#[test]
fn a_server_that_ignores_read_offset_is_corrupt_naming_the_resource_and_offset() {
    let w = World::new("grpc-ignored-offset");
    let run = w.start(
        &[
            "--blob",
            READ_BLOB,
            "--ignore-read-offset",
            PAUSE[0],
            PAUSE[1],
        ],
        RESET_FIRST_READ,
    );
    let addr = run.proxy_addr.to_string();
    let client = w.client(&["read", &addr, READ_BLOB, "--parallel", "2"]);
    let offset = resumed_offset(&client);
    let (capture, _, _) = run.stop();
    let (json, code, text) = w.inspect(&capture);
    assert_eq!(code, Some(1), "{text}");
    schema_clean(&json, &mut BTreeSet::new());
    let name = client["name"].as_str().expect("name");
    let findings: Vec<&str> = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(findings.len(), 2, "one per leg: {text}");
    for f in &findings {
        assert!(
            f.starts_with(&format!("CORRUPT: ByteStream Read of {name}"))
                && f.contains(&format!("the Read at offset {offset} "))
                && f.contains("ignored read_offset"),
            "{f}\n{text}"
        );
    }
    assert!(text.contains("ignored read_offset"), "{text}");
}

#[test]
fn a_write_cut_and_resumed_after_query_write_status_verifies() {
    let w = World::new("grpc-write-resume");
    let run = w.start(
        &[],
        r#"
[[rule]]
name = "cut the first write"
match = { path = "/google.bytestream.ByteStream/Write", request = 1, direction = "client->upstream" }
fault.rst_stream = { after = "100KiB", code = "CANCEL" }
"#,
    );
    let addr = run.proxy_addr.to_string();
    // 8 KiB messages: each DATA frame stays within the RFC's initial 16 KiB. grpcio's server
    // advertises 4 MiB frames right at accept; when that SETTINGS reaches faultline before the
    // client's preface it is relayed before the HTTP/2 session exists, the session never learns
    // the larger limit and falls back to raw TCP at the first larger frame (the rule then never
    // fires). One message every 10 ms: a slow uploader, so the server has committed part of the
    // upload when the stream is cut and the resume starts past 0.
    let client = w.client(&[
        "write", &addr, "2:300000", "--chunk", "8192", "--pace", "10",
    ]);
    assert_eq!(client["committed"], 300_000, "{client}");
    assert_eq!(
        client["failures"],
        serde_json::json!(["CANCELLED"]),
        "{client}"
    );
    let resumed = client["offsets"][1].as_u64().expect("resumed");
    // Usually past 0; on a loaded machine grpcio's handler may not have taken a message before
    // the reset cancelled the call (committed 0, resume at 0), which must verify just the same.
    assert!(resumed <= 100 * 1024, "{client}");
    let (capture, _, _) = run.stop();
    let (json, code, text) = w.inspect(&capture);
    assert_eq!(code, Some(0), "{text}");
    schema_clean(&json, &mut BTreeSet::new());
    let blobs = json["bytestream"].as_array().expect("blobs");
    assert_eq!(blobs.len(), 2, "one per leg: {text}");
    for b in blobs {
        assert_eq!(b["transfer"], "upload");
        assert_eq!(b["check"]["result"], "matches", "{text}");
        assert_eq!(b["committed_size"], 300_000);
        let methods: Vec<&str> = b["calls"]
            .as_array()
            .expect("calls")
            .iter()
            .filter_map(|c| c["method"].as_str())
            .collect();
        assert_eq!(methods, ["Write", "QueryWriteStatus", "Write"], "{text}");
        assert_eq!(b["calls"][2]["offset"], resumed);
    }
}

/// A Read stalled for good toward the client: when the server's trailers come, faultline resets
/// the stream toward the client and withholds the trailers (nothing may follow a reset the client
/// received; their HPACK effect is handled by re-encoding later blocks). The client sees
/// CANCELLED, so inspect must not report the client leg's call as `grpc-status 0 OK` ended (the
/// trial's finding); the upstream leg's is.
#[test]
fn a_stalled_read_reset_before_its_trailers_is_not_ok_on_the_client_leg() {
    let w = World::new("grpc-stall-trailers");
    let run = w.start(
        &["--blob", READ_BLOB],
        r#"
[[rule]]
name = "stall the first read"
match = { path = "/google.bytestream.ByteStream/Read", request = 1, direction = "upstream->client" }
fault.stall = { after = "40KiB" }
"#,
    );
    let addr = run.proxy_addr.to_string();
    let client = w.client(&["read", &addr, READ_BLOB]);
    let read = &client["reads"][0];
    assert_eq!(
        read["failures"],
        serde_json::json!(["CANCELLED"]),
        "{client}"
    );
    assert_eq!(read["verified"], true, "the resume completed it: {client}");
    let (capture, _, _) = run.stop();
    let (json, code, text) = w.inspect(&capture);
    assert_eq!(code, Some(0), "{text}");
    schema_clean(&json, &mut BTreeSet::new());
    let streams = json["h2_streams"].as_array().expect("streams");
    let stream = |leg: &str| {
        streams
            .iter()
            .find(|s| s["leg"] == leg && s["stream"] == 1)
            .unwrap_or_else(|| panic!("no {leg} stream 1: {text}"))
    };
    let cancelled = stream("client");
    assert_eq!(cancelled["reset"]["code"], "CANCEL", "{cancelled}");
    assert_eq!(cancelled["reset"]["by"], "upstream->client", "{cancelled}");
    assert!(cancelled["grpc_status"].is_null(), "{cancelled}");
    assert_eq!(cancelled["response_ended"], false, "{cancelled}");
    assert!(
        !cancelled["ignored_after_reset"]
            .as_array()
            .expect("ignored_after_reset")
            .iter()
            .any(|f| f["name"] == "grpc-status"),
        "the late trailers never reach the client: {cancelled}"
    );
    assert!(
        cancelled["faults"]
            .as_array()
            .expect("faults")
            .iter()
            .any(|f| f
                .as_str()
                .is_some_and(|f| f.contains("stall the first read"))),
        "{cancelled}"
    );
    let served = stream("upstream");
    assert_eq!(
        served["grpc_status"], 0,
        "the server did answer OK: {served}"
    );
    assert_eq!(served["response_ended"], true, "{served}");
    let call = json["bytestream"]
        .as_array()
        .expect("blobs")
        .iter()
        .filter(|b| b["leg"] == "client")
        .flat_map(|b| b["calls"].as_array().expect("calls"))
        .find(|c| c["stream"] == 1)
        .unwrap_or_else(|| panic!("no client call on stream 1: {text}"));
    assert!(call["grpc_status"].is_null(), "{call}");
    assert_eq!(call["complete"], false, "{call}");
}

/// A compressible blob (numbered lines of words, tests/grpc/blobs.py `text_blob`): 3,000,000
/// bytes, 184 messages of 16 KiB. grpcio sends a message that gzip does not shrink
/// uncompressed, so random bytes would never show a compressed message.
const TEXT_BLOB: &str = "5:3000000:text";
const TEXT_BLOB_SIZE: u64 = 3_000_000;

/// gRPC messages tshark's grpc dissector finds in the responses of each leg, by its server port:
/// (messages with the compressed flag, their total length on the wire, messages without it).
fn tshark_response_messages(capture: &Path, servers: &[u16]) -> Vec<(u64, u64, u64)> {
    tshark::tshark(); // fails the test, naming the install script, when tshark is missing
    let mut args: Vec<String> = Vec::new();
    for port in servers {
        args.extend(["-d".into(), format!("tcp.port=={port},http2")]);
    }
    for a in [
        "-Y",
        "grpc",
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-e",
        "tcp.srcport",
        "-e",
        "grpc.compressed_flag",
        "-e",
        "grpc.message_length",
    ] {
        args.push(a.into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tshark::run(capture, &args);
    let mut found = vec![(0, 0, 0); servers.len()];
    for line in out.stdout.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let [port, flags, lengths] = cols[..] else {
            continue;
        };
        let Some(leg) = servers.iter().position(|p| p.to_string() == port) else {
            continue; // a request
        };
        for (flag, length) in flags.split(',').zip(lengths.split(',')) {
            let length: u64 = length.parse().expect("grpc.message_length");
            match flag {
                "1" => {
                    found[leg].0 += 1;
                    found[leg].1 += length;
                }
                _ => found[leg].2 += 1,
            }
        }
    }
    found
}

/// User trial: a server answering `grpc-encoding: gzip` made a correct Read "CORRUPT …
/// incomplete (0 of N bytes)": inspect read the gzip members as the protobuf. Real grpcio, both
/// ends compressing, one Read cut mid-body by the rule and resumed: inspect decompresses every
/// message and verifies the blob whole on both legs, and the capture proves the bytes crossed
/// compressed (tshark's grpc dissector sees the compressed flag, and fewer bytes than one blob).
#[test]
fn a_gzip_compressed_read_reset_and_resumed_verifies_whole() {
    let w = World::new("grpc-gzip-read");
    let run = w.start(&["--blob", TEXT_BLOB, "--gzip"], RESET_FIRST_READ);
    let addr = run.proxy_addr.to_string();
    let client = w.client(&["read", &addr, TEXT_BLOB, "--parallel", "2", "--gzip"]);
    let reads = client["reads"].as_array().expect("reads");
    assert!(
        reads
            .iter()
            .all(|r| r["verified"] == true && r["length"] == TEXT_BLOB_SIZE),
        "every read verified at the client: {client}"
    );
    // Where it resumed depends on how many of the messages that crossed before the cut grpcio
    // handed over (it drops those still buffered at the reset): whole 16 KiB messages, any number.
    let offset = resume_of_the_reset_read(&client);
    assert!(
        offset < TEXT_BLOB_SIZE && offset % (16 * 1024) == 0,
        "{client}"
    );
    let (capture, proxy, server) = run.stop();
    let (json, code, text) = w.inspect(&capture);
    assert_eq!(code, Some(0), "{text}");
    schema_clean(&json, &mut BTreeSet::new());
    assert_eq!(json["verdict"], "clean", "{text}");
    assert_eq!(json["findings"], serde_json::json!([]), "{text}");
    assert_eq!(json["warnings"], serde_json::json!([]), "{text}");
    assert!(!text.contains("not checked"), "{text}");
    assert!(text.contains("2 verified whole"), "{text}");

    // Every Read said gzip both ways (the small requests crossed uncompressed: grpcio keeps a
    // message gzip would grow), and each leg's complete Reads took fewer DATA bytes than the
    // blob they carried.
    let streams = json["h2_streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 6, "three Reads on each leg: {text}");
    let gzip = |headers: &Value| {
        headers
            .as_array()
            .expect("headers")
            .iter()
            .any(|h| h["name"] == "grpc-encoding" && h["value"] == "gzip")
    };
    for s in streams {
        assert!(gzip(&s["response_headers"]), "{s}");
        assert!(gzip(&s["request_headers"]), "{s}");
        if s["leg"] == "client" && !s["reset"].is_null() {
            assert_eq!(s["response_bytes"], 40 * 1024, "{s}");
        }
        if s["reset"].is_null() {
            assert_eq!(s["grpc_status"], 0, "{s}");
            let bytes = s["response_bytes"].as_u64().expect("response_bytes");
            assert!(bytes > 0 && bytes < TEXT_BLOB_SIZE / 2, "{s}");
        }
    }

    // The blob, on each leg: the cut Read, the whole Read and the resume, verified whole.
    let blobs = json["bytestream"].as_array().expect("blobs");
    assert_eq!(blobs.len(), 2, "one per leg: {text}");
    for b in blobs {
        assert_eq!(b["check"]["result"], "matches", "{text}");
        assert_eq!(b["matched"], "sha256", "{text}");
        assert_eq!(b["complete"], true, "{text}");
        assert_eq!(b["length"], TEXT_BLOB_SIZE, "{text}");
        assert_eq!(b["corrupt"], false, "{text}");
        // grpcio resumes where the messages it handed over end, which may be before what
        // crossed on the client leg: that is a note there, nothing else is.
        let problems = b["problems"].as_array().expect("problems");
        assert!(
            problems.iter().all(|p| b["leg"] == "client"
                && p.as_str()
                    .is_some_and(|p| p.contains("goes back before where stream"))),
            "{text}"
        );
        let calls = b["calls"].as_array().expect("calls");
        assert_eq!(calls.len(), 3, "{text}");
        // The cut Read: inspect read more of the blob from it than the DATA bytes that crossed
        // (40 KiB toward the client), because it decompressed them.
        let cut = calls
            .iter()
            .find(|c| c["reset"] == "CANCEL")
            .unwrap_or_else(|| panic!("no cut Read: {text}"));
        assert_eq!(cut["offset"], 0, "{text}");
        assert!(
            cut["length"].as_u64().expect("length") > 2 * 40 * 1024,
            "the cut Read's 40 KiB of compressed DATA: {text}"
        );
        assert!(
            calls.iter().any(|c| c["offset"] == offset
                && c["complete"] == true
                && c["length"] == TEXT_BLOB_SIZE - offset),
            "the resume, whole: {text}"
        );
        assert!(
            calls
                .iter()
                .any(|c| c["offset"] == 0 && c["length"] == TEXT_BLOB_SIZE),
            "the whole Read: {text}"
        );
    }

    // tshark, on its own: every response message on both legs has the compressed flag, at
    // least a whole blob's worth of them (184 messages), and all of them together are fewer
    // bytes than the one blob the whole Read alone carried.
    let ports = [proxy.port(), server.port()];
    for (port, (compressed, wire, plain)) in
        ports.iter().zip(tshark_response_messages(&capture, &ports))
    {
        assert_eq!(plain, 0, "uncompressed response messages from port {port}");
        assert!(
            compressed >= TEXT_BLOB_SIZE.div_ceil(16 * 1024),
            "{compressed} compressed response messages from port {port}"
        );
        assert!(
            wire < TEXT_BLOB_SIZE,
            "{wire} bytes of compressed messages from port {port}"
        );
    }
}
