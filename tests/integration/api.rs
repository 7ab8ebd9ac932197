//! `faultline serve` driven like a user would: the real binary on 127.0.0.1:0, Toxiproxy's real
//! clients (Node and Python, installed by tests/install-toxiproxy-clients.sh: a missing one fails
//! the test), raw HTTP for bad input and for faultline's own routes, real traffic through the
//! proxies it creates.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::daemon::{run_bounded, Daemon, FAULTLINE};
use crate::support::temp_dir::TempDir;
use crate::support::tshark;
use crate::support::upstream::{echo, Server};

/// How long one client script may run.
const CLIENT_LIMIT: Duration = Duration::from_secs(90);

/// An echo upstream on its own runtime (these tests block: they drive a separate process).
struct Echo {
    server: Server,
    _runtime: tokio::runtime::Runtime,
}

fn echo_upstream() -> Echo {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the echo upstream");
    let server = runtime.block_on(echo());
    Echo {
        server,
        _runtime: runtime,
    }
}

/// `faultline serve --api 127.0.0.1:0 ARGS…` and the API's address.
fn serve(dir: &TempDir, label: &str, args: &[&str]) -> (Daemon, SocketAddr) {
    let mut command = Command::new(FAULTLINE);
    command.args(["serve", "--api", "127.0.0.1:0"]).args(args);
    let mut daemon = Daemon::start(&mut command, dir.path(), label);
    let api = daemon.faultline_address();
    (daemon, api)
}

/// One HTTP/1.1 request (Connection: close) with the `extra` header lines; the status, the head
/// and the body.
fn request(
    api: SocketAddr,
    method: &str,
    path: &str,
    extra: &str,
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(api).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send a request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_string(), body.to_string())
}

/// One JSON request as the clients send it; the status and the body.
fn http(api: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let extra = "User-Agent: faultline-test\r\nContent-Type: application/json\r\n";
    let (status, _, body) = request(api, method, path, extra, body);
    (status, body)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// Creates a proxy to `upstream` on a free port; returns where it listens.
fn create_proxy(api: SocketAddr, name: &str, upstream: SocketAddr) -> SocketAddr {
    let (status, body) = http(
        api,
        "POST",
        "/proxies",
        &format!(r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#),
    );
    assert_eq!(status, 201, "{body}");
    json(&body)["listen"]
        .as_str()
        .expect("listen")
        .parse()
        .expect("an address")
}

/// A connection through `proxy` whose reads give up after 10 s (every wait bounded).
fn connect(proxy: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(proxy).expect("connect to the proxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// Writes `payload` through `proxy` and reads until the echo (or the proxy) ends the stream.
fn echo_through(proxy: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut stream = connect(proxy);
    stream.write_all(payload).expect("write");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let mut back = Vec::new();
    let _ = stream.read_to_end(&mut back);
    back
}

/// One exchange on an open connection: writes `n` bytes, waits for them back; how long it took.
fn exchange(stream: &mut TcpStream, n: usize) -> Duration {
    let started = Instant::now();
    stream.write_all(&vec![b'x'; n]).expect("write");
    let mut back = vec![0u8; n];
    stream.read_exact(&mut back).expect("read the echo");
    started.elapsed()
}

fn clients_dir() -> PathBuf {
    let root = std::env::var_os("FAULTLINE_TOXIPROXY_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/toxiproxy-clients")
        });
    assert!(
        root.join("node/node_modules/toxiproxy-node-client").is_dir()
            && root.join("venv/bin/python").is_file(),
        "the Toxiproxy clients are not installed in {}: run `bash tests/install-toxiproxy-clients.sh` (make test does)",
        root.display()
    );
    root
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/integration/clients")
        .join(name)
}

#[test]
fn the_node_client_drives_serve_and_its_toxics_act_on_traffic() {
    let clients = clients_dir();
    let dir = TempDir::new("api-node");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let finished = run_bounded(
        Command::new("node")
            .arg(script("toxiproxy_node.js"))
            .env("NODE_PATH", clients.join("node/node_modules"))
            .env("API", format!("http://{api}"))
            .env("UPSTREAM", upstream.server.addr.to_string()),
        dir.path(),
        "node",
        CLIENT_LIMIT,
    );
    assert!(
        finished.status.success() && finished.stdout.contains("ok"),
        "the Node client failed:\n{}\nserve:\n{}",
        finished.output(),
        daemon.output()
    );
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
}

#[test]
fn the_python_client_drives_serve_and_its_toxics_act_on_traffic() {
    let clients = clients_dir();
    let dir = TempDir::new("api-python");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let finished = run_bounded(
        Command::new(clients.join("venv/bin/python"))
            .arg(script("toxiproxy_python.py"))
            .env("API_HOST", api.ip().to_string())
            .env("API_PORT", api.port().to_string())
            .env("UPSTREAM", upstream.server.addr.to_string()),
        dir.path(),
        "python",
        CLIENT_LIMIT,
    );
    assert!(
        finished.status.success() && finished.stdout.contains("ok"),
        "the Python client failed:\n{}\nserve:\n{}",
        finished.output(),
        daemon.output()
    );
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
}

#[test]
fn bad_input_gets_a_4xx_with_a_message_and_changes_nothing() {
    let dir = TempDir::new("api-bad");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let proxy = create_proxy(api, "p", upstream.server.addr);
    let (_, toxic) = http(
        api,
        "POST",
        "/proxies/p/toxics",
        r#"{"type":"latency","attributes":{"latency":1}}"#,
    );
    let before = http(api, "GET", "/proxies", "");
    let long = "n".repeat(10 * 1024);
    let cases: Vec<(&str, String, String, u16)> = vec![
        ("POST", "/proxies".into(), "{not json".into(), 400),
        ("POST", "/proxies".into(), r#"["an array"]"#.into(), 400),
        (
            "POST",
            "/proxies".into(),
            r#"{"listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}"#.into(),
            400,
        ),
        (
            "POST",
            "/proxies".into(),
            r#"{"name":"q","listen":"127.0.0.1:0"}"#.into(),
            400,
        ),
        (
            "POST",
            "/proxies".into(),
            r#"{"name":"a/b","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}"#.into(),
            400,
        ),
        (
            "POST",
            "/proxies".into(),
            format!(r#"{{"name":"{long}","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}}"#),
            400,
        ),
        (
            "POST",
            "/proxies".into(),
            format!(r#"{{"name":"q","listen":"{proxy}","upstream":"127.0.0.1:1"}}"#),
            409,
        ),
        (
            "POST",
            "/proxies".into(),
            r#"{"name":"q","listen":"nowhere","upstream":"127.0.0.1:1"}"#.into(),
            400,
        ),
        (
            "POST",
            "/proxies".into(),
            r#"{"name":"q","listen":"127.0.0.1:0","upstream":"no port"}"#.into(),
            400,
        ),
        (
            "POST",
            "/proxies".into(),
            r#"{"name":"p","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}"#.into(),
            409,
        ),
        (
            "POST",
            "/proxies/p".into(),
            r#"{"enabled":"yes"}"#.into(),
            400,
        ),
        (
            "POST",
            "/proxies/p".into(),
            format!(r#"{{"listen":"{api}"}}"#),
            409,
        ),
        ("POST", "/proxies/p/toxics".into(), "{".into(), 400),
        (
            "POST",
            "/proxies/p/toxics".into(),
            r#"{"type":"teleport"}"#.into(),
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics".into(),
            r#"{"type":"latency","stream":"sideways"}"#.into(),
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics".into(),
            r#"{"name":"neg","type":"latency","attributes":{"latency":-1}}"#.into(),
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics".into(),
            r#"{"name":"huge","type":"latency","attributes":{"latency":1e30}}"#.into(),
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics".into(),
            r#"{"type":"bandwidth","attributes":{"rate":99999999999999999}}"#.into(),
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics".into(),
            r#"{"name":"seven","type":"latency","toxicity":7}"#.into(),
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics".into(),
            r#"{"type":"slicer","attributes":{"average_size":0}}"#.into(),
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics".into(),
            r#"{"type":"latency"}"#.into(),
            409,
        ),
        (
            "POST",
            "/proxies/p/toxics/latency_downstream".into(),
            r#"{"attributes":{"jitter":-3}}"#.into(),
            400,
        ),
        ("POST", "/proxies/p/toxics/nope".into(), "{}".into(), 404),
        (
            "DELETE",
            "/proxies/p/toxics/nope".into(),
            String::new(),
            404,
        ),
        ("GET", "/proxies/nope".into(), String::new(), 404),
        ("DELETE", "/proxies/nope".into(), String::new(), 404),
        ("GET", "/proxies/nope/toxics".into(), String::new(), 404),
        (
            "POST",
            "/populate".into(),
            r#"[{"name":"x","upstream":"127.0.0.1:1"},{"name":"y"}]"#.into(),
            400,
        ),
        ("POST", "/populate".into(), r#"{"name":"x"}"#.into(), 400),
        // Replacing p with a proxy whose address is taken: 409, and p comes back as it was.
        (
            "POST",
            "/populate".into(),
            format!(
                r#"[{{"name":"p","listen":"{api}","upstream":"{}"}}]"#,
                upstream.server.addr
            ),
            409,
        ),
        (
            "PUT",
            "/faultline/proxies/p/scenario".into(),
            "[[rule]]\nfault.reset = { after = \"64 parsecs\" }\n".into(),
            400,
        ),
        (
            "PUT",
            "/faultline/proxies/p/scenario".into(),
            "[proxy]\nupstream = \"127.0.0.1:9\"\n".into(),
            400,
        ),
        (
            "PUT",
            "/faultline/proxies/nope/scenario".into(),
            String::new(),
            404,
        ),
        (
            "GET",
            "/faultline/proxies/p/capture".into(),
            String::new(),
            404,
        ),
        ("GET", "/no/such/route".into(), String::new(), 404),
    ];
    for (method, path, body, want) in &cases {
        let (status, answer) = http(api, method, path, body);
        assert_eq!(status, *want, "{method} {path} {body:.80}: {answer}");
        if *want != 404 || path.starts_with("/proxies") {
            let error = json(&answer);
            assert_eq!(error["status"], *want, "{answer}");
            assert!(
                error["error"].as_str().is_some_and(|m| !m.is_empty()),
                "{answer}"
            );
        }
    }
    let (status, answer) = http(
        api,
        "PUT",
        "/faultline/proxies/p/scenario",
        "[[rule]]\nfault.reset = { after = \"64 parsecs\" }\n",
    );
    assert_eq!(status, 400);
    assert!(
        json(&answer)["error"]
            .as_str()
            .is_some_and(|m| m.starts_with("scenario:2:25: rule[1].fault.reset.after:")),
        "errors say line, column and key as `check` does: {answer}"
    );
    assert_eq!(http(api, "GET", "/proxies", ""), before, "nothing changed");
    assert_eq!(
        http(api, "GET", "/proxies/p/toxics/latency_downstream", "").1,
        toxic
    );
    assert_eq!(echo_through(proxy, b"still works"), b"still works");
    // A browser cannot drive the API (Toxiproxy refuses them too: no cross-site requests).
    let mut stream = TcpStream::connect(api).expect("connect");
    stream
        .write_all(b"POST /reset HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    daemon.stop();
}

#[test]
fn toxics_act_on_open_connections_at_once_and_disabling_closes_them() {
    let dir = TempDir::new("api-live");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let proxy = create_proxy(api, "live", upstream.server.addr);
    let mut open = connect(proxy);
    // 2 s of latency: an exchange under it proves the toxic gone even on a busy machine
    // (latency numbers themselves are the benches' job).
    let latency = Duration::from_secs(2);
    let before = exchange(&mut open, 10);
    let (status, _) = http(
        api,
        "POST",
        "/proxies/live/toxics",
        &format!(
            r#"{{"type":"latency","stream":"upstream","attributes":{{"latency":{}}}}}"#,
            latency.as_millis()
        ),
    );
    assert_eq!(status, 200);
    let slowed = exchange(&mut open, 10);
    assert!(
        slowed >= latency,
        "the toxic acts on the connection opened before it: {before:?} then {slowed:?}"
    );
    let (status, _) = http(api, "DELETE", "/proxies/live/toxics/latency_upstream", "");
    assert_eq!(status, 204);
    let lifted = exchange(&mut open, 10);
    assert!(
        lifted < latency,
        "removing the toxic lifts it on the open connection: {before:?}, {slowed:?}, then {lifted:?}"
    );
    // limit_data added on an open connection counts from when it came in force.
    let (status, _) = http(
        api,
        "POST",
        "/proxies/live/toxics",
        r#"{"type":"limit_data","stream":"downstream","attributes":{"bytes":15}}"#,
    );
    assert_eq!(status, 200);
    open.write_all(&[b'y'; 40]).expect("write");
    let mut back = Vec::new();
    let _ = open.read_to_end(&mut back);
    assert_eq!(back.len(), 15, "cut at exactly 15 bytes");
    http(api, "POST", "/reset", "");
    // Disabling the proxy ends its open connections and closes its listener.
    let mut open = connect(proxy);
    exchange(&mut open, 5);
    let (status, body) = http(api, "POST", "/proxies/live", r#"{"enabled":false}"#);
    assert_eq!(
        (status, json(&body)["enabled"].clone()),
        (200, false.into())
    );
    let mut rest = Vec::new();
    let ended = open.read_to_end(&mut rest);
    assert!(
        ended.is_err() || rest.is_empty(),
        "the connection was ended"
    );
    assert!(TcpStream::connect(proxy).is_err(), "the listener is closed");
    let (_, body) = http(api, "POST", "/proxies/live", r#"{"enabled":true}"#);
    assert_eq!(json(&body)["listen"], proxy.to_string(), "back on its port");
    assert_eq!(echo_through(proxy, b"again"), b"again");
    daemon.stop();
}

#[test]
fn faultline_routes_scenario_summary_events_and_a_readable_capture() {
    let dir = TempDir::new("api-faultline");
    let upstream = echo_upstream();
    let template = dir.path().join("{name}.pcapng").display().to_string();
    let (daemon, api) = serve(&dir, "serve", &["--capture", &template, "--seed", "7"]);
    let proxy = create_proxy(api, "cap", upstream.server.addr);
    // The event stream, read raw as any SSE client would.
    let mut events = TcpStream::connect(api).expect("connect");
    events
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    events
        .write_all(b"GET /faultline/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("subscribe");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains(": faultline events") {
        let n = events.read(&mut buf).expect("the stream starts");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // A scenario in JSON: what the client receives ends after 4 bytes.
    let (status, body) = http(
        api,
        "PUT",
        "/faultline/proxies/cap/scenario",
        r#"{"rule":[{"name":"cut","match":{"direction":"upstream->client"},"fault":{"truncate":{"after":4}}}]}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["restarted"], false);
    assert_eq!(echo_through(proxy, b"abcdefgh"), b"abcd");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(seen.contains("connection_opened")
        && seen.contains("rule_fired")
        && seen.contains("connection_closed"))
    {
        assert!(Instant::now() < deadline, "events missing: {seen}");
        let n = events.read(&mut buf).expect("events");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let fired = seen
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(json)
        .find(|e| e["type"] == "rule_fired")
        .expect("a rule_fired event");
    assert_eq!(
        (fired["proxy"].as_str(), fired["rule"].as_str()),
        (Some("cap"), Some("cut"))
    );
    let (_, summary) = http(api, "GET", "/faultline/proxies/cap/summary", "");
    let summary = json(&summary);
    assert_eq!(summary["connections"], 1);
    assert_eq!(summary["rules"][0]["fired"], 1);
    let (_, again) = http(api, "GET", "/faultline/proxies/cap/summary", "");
    assert_eq!(json(&again)["seed"], summary["seed"], "one seed per proxy");
    // The capture so far, while the proxy still runs: whole blocks, readable.
    let (status, _) = http(api, "GET", "/faultline/proxies/cap/capture", "");
    assert_eq!(status, 200);
    let mut stream = TcpStream::connect(api).expect("connect");
    stream
        .write_all(
            b"GET /faultline/proxies/cap/capture HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .expect("request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let copy = dir.path().join("copy.pcapng");
    std::fs::write(&copy, &raw[at..]).expect("save");
    let inspected = run_bounded(
        Command::new(FAULTLINE).arg("inspect").arg(&copy),
        dir.path(),
        "inspect",
        Duration::from_secs(30),
    );
    assert_eq!(inspected.code(), Some(0), "{}", inspected.output());
    let (packets, status) = tshark::packet_count(&copy);
    assert!(
        status.success() && packets > 0,
        "tshark reads {packets} packets"
    );
    let metrics = http(api, "GET", "/metrics", "").1;
    assert!(
        metrics.contains("toxiproxy_proxy_sent_bytes_total{direction=\"upstream\"")
            && metrics.contains("faultline_rule_fired_total{proxy=\"cap\",rule=\"cut\"} 1")
            && metrics.contains("faultline_proxy_upstream_failures_total{proxy=\"cap\"} 0"),
        "{metrics}"
    );
    daemon.stop();
}

/// One bare request; the status, the head (lower-cased) and the body, to compare byte for byte
/// with what toxiproxy-server writes (api.go, proxy.go, toxic_collection.go of Toxiproxy 2.12.0).
fn http_exact(api: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let (status, head, body) = request(api, method, path, "", body);
    (status, head.to_ascii_lowercase(), body)
}

/// What toxiproxy-server answers, byte for byte where faultline keeps its behaviour: bodies,
/// content types, error wording, escaping, the `noop` toxic, 409 before attributes, listen in use,
/// and populate's keep / replace / restore.
#[test]
fn answers_match_toxiproxy_server_byte_for_byte() {
    let dir = TempDir::new("api-exact");
    let upstream = echo_upstream();
    let up = upstream.server.addr;
    let (daemon, api) = serve(&dir, "serve", &[]);
    let (status, head, body) = http_exact(api, "GET", "/version", "");
    assert_eq!(
        (status, body.as_str()),
        (200, "{\"version\": \"2.12.0\"}\n")
    );
    assert!(
        head.contains("content-type: application/json;charset=utf-8"),
        "{head}"
    );
    // Go's decoder: nothing is EOF; what follows the first value is ignored.
    let (status, head, body) = http_exact(api, "POST", "/proxies", "");
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            "{\"error\":\"bad request body: EOF\",\"status\":400}\n"
        )
    );
    assert!(
        head.contains("content-type: text/plain; charset=utf-8")
            && head.contains("x-content-type-options: nosniff"),
        "http.Error's headers: {head}"
    );
    // Strings are escaped as Go escapes them; the proxy carries "Logger" and its toxics.
    let (status, _, body) = http_exact(
        api,
        "POST",
        "/proxies",
        &format!(
            r#"{{"name":"a<b>&c","listen":"127.0.0.1:0","upstream":"{up}","enabled":false}} trailing"#
        ),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        format!(
            r#"{{"name":"a\u003cb\u003e\u0026c","listen":"127.0.0.1:0","upstream":"{up}","enabled":false,"Logger":{{}},"toxics":[]}}"#
        )
    );
    let proxy = create_proxy(api, "p", up);
    // A listen address in use: Go's words; 409 (Toxiproxy's 500 reads as success to its
    // Python client).
    let (status, _, body) = http_exact(
        api,
        "POST",
        "/proxies",
        &format!(r#"{{"name":"q","listen":"{proxy}","upstream":"{up}"}}"#),
    );
    assert_eq!(
        (status, body),
        (
            409,
            format!(
                "{{\"error\":\"listen tcp {proxy}: bind: address already in use\",\"status\":409}}\n"
            )
        )
    );
    // A taken name is 409 whatever else the body says (Toxiproxy looks for it first).
    let (status, _, _) = http_exact(
        api,
        "POST",
        "/proxies",
        r#"{"name":"p","listen":"nowhere","upstream":"no port"}"#,
    );
    assert_eq!(status, 409);
    // Toxiproxy's noop toxic; the toxic create answers 200, not 201.
    let (status, head, body) = http_exact(api, "POST", "/proxies/p/toxics", r#"{"type":"noop"}"#);
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            r#"{"attributes":{},"name":"noop_downstream","type":"noop","stream":"downstream","toxicity":1}"#
        )
    );
    assert!(
        head.contains("content-type: application/json\r\n"),
        "{head}"
    );
    assert_eq!(echo_through(proxy, b"through noop"), b"through noop");
    let (status, _, _) = http_exact(
        api,
        "POST",
        "/proxies/p/toxics",
        r#"{"type":"limit_data","stream":"upstream","attributes":{"bytes":"many"}}"#,
    );
    assert_eq!(status, 400);
    http_exact(
        api,
        "POST",
        "/proxies/p/toxics",
        r#"{"type":"limit_data","stream":"upstream","attributes":{"bytes":5}}"#,
    );
    let (status, _, body) = http_exact(
        api,
        "POST",
        "/proxies/p/toxics",
        r#"{"type":"limit_data","stream":"upstream","attributes":{"bytes":"many"}}"#,
    );
    assert_eq!(
        (status, body.as_str()),
        (409, "{\"error\":\"toxic already exists\",\"status\":409}\n"),
        "the name before the attributes"
    );
    // An update changes attributes and toxicity only; upstream toxics are listed first.
    let (status, _, body) = http_exact(
        api,
        "PATCH",
        "/proxies/p/toxics/limit_data_upstream",
        r#"{"name":"renamed","type":"latency","stream":"downstream","toxicity":0.5,"attributes":{"bytes":7}}"#,
    );
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            r#"{"attributes":{"bytes":7},"name":"limit_data_upstream","type":"limit_data","stream":"upstream","toxicity":0.5}"#
        )
    );
    let (_, _, list) = http_exact(api, "GET", "/proxies/p/toxics", "");
    let names: Vec<String> = json(&list)
        .as_array()
        .expect("an array")
        .iter()
        .map(|t| t["name"].as_str().expect("a name").to_string())
        .collect();
    assert_eq!(names, ["limit_data_upstream", "noop_downstream"]);
    // Routes match the decoded path, one or more characters per variable.
    for path in ["/proxies/", "/proxies/a%2Fb/toxics/x/y", "/"] {
        let (status, head, body) = http_exact(api, "GET", path, "");
        assert_eq!(
            (status, body.as_str()),
            (404, "404 page not found\n"),
            "{path}"
        );
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    }
    let (status, _, body) = http_exact(api, "PUT", "/proxies", "{}");
    assert_eq!((status, body.as_str()), (405, ""));
    // Browsers are refused on the routes (Toxiproxy's middleware runs on matched routes only).
    for (method, path, want) in [
        ("GET", "/proxies", "403"),
        ("POST", "/reset", "403"),
        ("GET", "/faultline/events", "403"),
        ("GET", "/nope", "404"),
        ("PUT", "/proxies", "405"),
    ] {
        let mut stream = TcpStream::connect(api).expect("connect");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {want}")),
            "{method} {path}: {answer}"
        );
        if want == "403" {
            assert!(
                answer.ends_with("\r\n\r\nUser agent not allowed\n"),
                "{answer}"
            );
        }
    }
    // Populate: the same address keeps the proxy as it is (toxics and all), another replaces it.
    let same = format!(r#"[{{"name":"p","listen":"{proxy}","upstream":"{up}"}}]"#);
    let (status, _, body) = http_exact(api, "POST", "/populate", &same);
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        json(&body)["proxies"][0]["toxics"].as_array().map(Vec::len),
        Some(2)
    );
    let other = format!(r#"[{{"name":"p","listen":"{proxy}","upstream":"127.0.0.1:9"}}]"#);
    let (status, _, body) = http_exact(api, "POST", "/populate", &other);
    assert_eq!(status, 201, "{body}");
    let replaced = &json(&body)["proxies"][0];
    assert_eq!(
        replaced["toxics"],
        serde_json::json!([]),
        "a new proxy: {body}"
    );
    assert_eq!(replaced["upstream"], "127.0.0.1:9");
    // An empty populate lists no proxies as Go does: null.
    let (status, _, body) = http_exact(api, "POST", "/populate", "[]");
    assert_eq!((status, body.as_str()), (201, "{\"proxies\":null}"));
    daemon.stop();
}

/// Updating a `limit_data` toxic keeps what it counted on open connections, as Toxiproxy's does
/// (its state lives as long as the toxic): 6 of 10 bytes through, updated to 8, then 2 more pass
/// and the connection ends.
#[test]
fn an_updated_limit_data_keeps_its_count_on_open_connections() {
    let dir = TempDir::new("api-limit-update");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let proxy = create_proxy(api, "p", upstream.server.addr);
    let (status, body) = http(
        api,
        "POST",
        "/proxies/p/toxics",
        r#"{"name":"cap","type":"limit_data","stream":"downstream","attributes":{"bytes":10}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let mut stream = connect(proxy);
    exchange(&mut stream, 6);
    let (status, body) = http(
        api,
        "POST",
        "/proxies/p/toxics/cap",
        r#"{"attributes":{"bytes":8}}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["attributes"]["bytes"], 8);
    stream.write_all(b"abcdef").expect("write");
    let mut back = Vec::new();
    stream
        .read_to_end(&mut back)
        .expect("the proxy ends the stream");
    assert_eq!(back, b"ab", "6 counted before the update, 8 allowed");
    // Removed and added again, the very same toxic, while a connection is idle: a new toxic,
    // counting from zero on that connection, as in Toxiproxy.
    let mut stream = connect(proxy);
    exchange(&mut stream, 6);
    let toxic =
        r#"{"name":"cap","type":"limit_data","stream":"downstream","attributes":{"bytes":8}}"#;
    assert_eq!(http(api, "DELETE", "/proxies/p/toxics/cap", "").0, 204);
    assert_eq!(http(api, "POST", "/proxies/p/toxics", toxic).0, 200);
    exchange(&mut stream, 6);
    stream.write_all(b"abcdef").expect("write");
    let mut back = Vec::new();
    stream
        .read_to_end(&mut back)
        .expect("the proxy ends the stream");
    assert_eq!(back, b"ab", "6 + 2 of the new toxic's 8");
    daemon.stop();
}

/// `GET PATH` on the API (Connection: close); the raw body bytes.
fn get_raw(api: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(api).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n"
    )
    .expect("send a request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = String::from_utf8_lossy(&raw[..at]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, raw[at..].to_vec())
}

/// The capture fetched right after bytes crossed the proxy holds them: the API asks the writer
/// to write what it holds first. No fault fired (faults flush on their own) and the writer's own
/// flush comes once a second, so without that request the bytes would not be in the file yet.
#[test]
fn the_capture_so_far_holds_the_bytes_relayed_just_before_the_request() {
    let dir = TempDir::new("api-capture-now");
    let upstream = echo_upstream();
    let template = dir.path().join("{name}.pcapng").display().to_string();
    let (daemon, api) = serve(&dir, "serve", &["--capture", &template]);
    let proxy = create_proxy(api, "now", upstream.server.addr);
    let mut open = Vec::new();
    for round in 0..4 {
        // One request per connection, each left open: an HTTP request line, so faultline's own
        // reader names it (as an exchange's target).
        let request = format!("GET /marker-{round} HTTP/1.1\r\nHost: capture.test\r\n\r\n");
        let mut stream = connect(proxy);
        stream.write_all(request.as_bytes()).expect("write");
        let mut back = vec![0u8; request.len()];
        stream.read_exact(&mut back).expect("read the echo");
        assert_eq!(back, request.as_bytes());
        open.push(stream);
        let (status, capture) = get_raw(api, "/faultline/proxies/now/capture");
        assert_eq!(status, 200);
        let copy = dir.path().join(format!("round-{round}.pcapng"));
        std::fs::write(&copy, &capture).expect("save");
        // faultline's reader: no damage, the request on both legs.
        let report = faultline::inspect::inspect_bytes(
            &capture,
            &faultline::inspect::InspectOptions::default(),
        )
        .expect("a readable capture");
        assert_eq!(report.capture.damage, None, "round {round}");
        let target = format!("/marker-{round}");
        let legs = report
            .exchanges
            .iter()
            .filter(|e| e.target == target)
            .count();
        assert_eq!(legs, 2, "round {round}: {target} on both legs");
        // tshark: both legs of the latest connection carry its bytes, both ways.
        let streams = 2 * (round + 1);
        let carrying = (0..streams)
            .map(|n| tshark::follow_raw(&copy, n))
            .filter(|(to_server, to_client)| {
                to_server == request.as_bytes() && to_client == request.as_bytes()
            })
            .count();
        assert_eq!(carrying, 2, "round {round}: tshark sees both legs");
    }
    drop(open);
    daemon.stop();
}

#[test]
fn scenario_files_and_a_populate_config_become_proxies() {
    let dir = TempDir::new("api-files");
    let upstream = echo_upstream();
    let scenario = dir.write(
        "cut.toml",
        &format!(
            "name = \"from-file\"\n[proxy]\nupstream = \"{}\"\n[[rule]]\nmatch = {{ direction = \"upstream->client\" }}\nfault.truncate = {{ after = 3 }}\n",
            upstream.server.addr
        ),
    );
    let config = dir.write(
        "proxies.json",
        &format!(
            r#"[{{"name":"from-config","listen":"127.0.0.1:0","upstream":"{}"}}]"#,
            upstream.server.addr
        ),
    );
    let (daemon, api) = serve(
        &dir,
        "serve",
        &[
            scenario.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
        ],
    );
    let proxies = json(&http(api, "GET", "/proxies", "").1);
    let names: Vec<&String> = proxies.as_object().expect("an object").keys().collect();
    assert_eq!(names, ["from-config", "from-file"]);
    let listen: SocketAddr = proxies["from-file"]["listen"]
        .as_str()
        .and_then(|l| l.parse().ok())
        .expect("an address");
    assert_eq!(
        echo_through(listen, b"abcdef"),
        b"abc",
        "the file's rule acts"
    );
    http(api, "POST", "/reset", "");
    assert_eq!(
        echo_through(listen, b"abcdef"),
        b"abcdef",
        "reset removed the rules"
    );
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
    let bad = dir.write("bad.toml", "[[rule]]\nfault.nope = {}\n");
    let finished = run_bounded(
        Command::new(FAULTLINE)
            .args(["serve", "--api", "127.0.0.1:0"])
            .arg(&bad),
        dir.path(),
        "bad",
        Duration::from_secs(30),
    );
    assert_eq!(finished.code(), Some(2), "{}", finished.output());
    assert!(
        finished.stderr.contains("bad.toml:2:"),
        "{}",
        finished.stderr
    );
}

#[test]
fn slicer_slow_close_and_timeout_act_on_real_traffic() {
    let dir = TempDir::new("api-faults");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let proxy = create_proxy(api, "f", upstream.server.addr);
    let add = |body: &str| {
        let (status, answer) = http(api, "POST", "/proxies/f/toxics", body);
        assert_eq!(status, 200, "{answer}");
    };
    // slicer: 40 bytes leave in 10-byte pieces 30 ms apart, every byte intact.
    add(r#"{"type":"slicer","attributes":{"average_size":10,"size_variation":0,"delay":30000}}"#);
    let mut stream = connect(proxy);
    let payload: Vec<u8> = (0..40u8).collect();
    let started = Instant::now();
    stream.write_all(&payload).expect("write");
    let mut back = Vec::new();
    let mut buf = [0u8; 64];
    while back.len() < payload.len() {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed early after {} bytes", back.len());
        back.extend_from_slice(&buf[..n]);
    }
    assert_eq!(back, payload);
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "four pieces, three gaps of 30 ms: {:?}",
        started.elapsed()
    );
    drop(stream);
    http(api, "POST", "/reset", "");
    // slow_close: the echo's FIN reaches the client 300 ms after the echo sent it.
    add(r#"{"type":"slow_close","attributes":{"delay":300}}"#);
    let mut stream = connect(proxy);
    stream.write_all(b"abc").expect("write");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let closed_at = Instant::now();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).expect("read to the end");
    assert_eq!(back, b"abc");
    assert!(
        closed_at.elapsed() >= Duration::from_millis(300),
        "the close came after {:?}",
        closed_at.elapsed()
    );
    http(api, "POST", "/reset", "");
    // timeout: what the client sends is swallowed, and 300 ms after the toxic came in force
    // the connection closes.
    let mut stream = connect(proxy);
    // Timed from before the request: the toxic comes in force while it is answered, and the
    // answer can reach a loaded test well after that (timed from the answer, the close came
    // early by however long that took).
    let adding = Instant::now();
    add(r#"{"type":"timeout","stream":"upstream","attributes":{"timeout":300}}"#);
    stream.write_all(b"never echoed").expect("write");
    let mut back = Vec::new();
    let _ = stream.read_to_end(&mut back);
    assert_eq!(back, b"", "nothing reached the echo");
    let after = adding.elapsed();
    assert!(
        after >= Duration::from_millis(300) && after < Duration::from_secs(5),
        "closed after {after:?}"
    );
    daemon.stop();
}

/// A trial found a `timeout: 0` toxic holding a connection open for good after the client and
/// the upstream were done (its FIN swallowed, the connection counted active, a CLOSE-WAIT socket
/// left), and deleting the toxic relaying on with a silent gap (`AAAA`, then `CCCC`: `BBBB`
/// lost). As Toxiproxy's timeout: the end of its input closes the connection at once, and so
/// does removing the toxic.
#[test]
fn a_timeout_toxic_closes_the_connection_on_its_inputs_end_and_when_removed() {
    let dir = TempDir::new("api-timeout-end");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let proxy = create_proxy(api, "t0", upstream.server.addr);
    let toxic = r#"{"name":"t","type":"timeout","stream":"upstream","attributes":{"timeout":0}}"#;
    // The client's FIN ends it at once (an endless timeout would never close it).
    let mut stream = connect(proxy);
    let (status, body) = http(api, "POST", "/proxies/t0/toxics", toxic);
    assert_eq!(status, 200, "{body}");
    stream.write_all(b"dropped").expect("write");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let mut back = Vec::new();
    let _ = stream.read_to_end(&mut back);
    assert_eq!(back, b"", "nothing reached the echo");
    // Removing the toxic closes a connection it dropped bytes of instead of relaying on.
    let (status, body) = http(api, "DELETE", "/proxies/t0/toxics/t", "");
    assert_eq!(status, 204, "{body}");
    let mut stream = connect(proxy);
    stream.write_all(b"AAAA").expect("write");
    let mut echoed = [0u8; 4];
    stream.read_exact(&mut echoed).expect("the echo");
    assert_eq!(&echoed, b"AAAA");
    let (status, body) = http(api, "POST", "/proxies/t0/toxics", toxic);
    assert_eq!(status, 200, "{body}");
    stream.write_all(b"BBBB").expect("write");
    // Removed only once faultline read BBBB under it ("dropped", AAAA and BBBB: 15 bytes): a
    // toxic added and removed before a byte met it dropped nothing, and there is no gap.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(api, "received", "t0", "upstream") < 15 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, body) = http(api, "DELETE", "/proxies/t0/toxics/t", "");
    assert_eq!(status, 204, "{body}");
    let _ = stream.write_all(b"CCCC");
    let mut back = Vec::new();
    let _ = stream.read_to_end(&mut back);
    assert_eq!(back, b"", "no byte after the gap");
    // Neither connection is left open (the trial's stayed active until the proxy stopped).
    let deadline = Instant::now() + Duration::from_secs(10);
    while summary(api, "t0")["active"] != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(summary(api, "t0")["active"], 0);
    daemon.stop();
}

#[test]
fn the_bandwidth_toxic_paces_a_real_transfer_to_its_rate() {
    let dir = TempDir::new("api-bandwidth");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let proxy = create_proxy(api, "bw", upstream.server.addr);
    // 200 KB echoed back through a 100 KB/s downstream: about 2 s. The bounds leave room for a
    // busy machine and for KB meaning 1000 or 1024 bytes, not for a toxic that does nothing (a
    // loopback echo of 200 KB takes milliseconds: the control shows it) or one stalled.
    const SIZE: usize = 200 * 1000;
    const RATE_KB: usize = 100;
    let control = timed_echo(proxy, SIZE);
    let (status, body) = http(
        api,
        "POST",
        "/proxies/bw/toxics",
        &format!(
            r#"{{"type":"bandwidth","stream":"downstream","attributes":{{"rate":{RATE_KB}}}}}"#
        ),
    );
    assert_eq!(status, 200, "{body}");
    let paced = timed_echo(proxy, SIZE);
    let expected = Duration::from_secs_f64(SIZE as f64 / (RATE_KB * 1000) as f64);
    println!("200 KB echoed: {control:?} without the toxic, {paced:?} at {RATE_KB} KB/s (expected about {expected:?})");
    assert!(
        paced >= expected.mul_f64(0.7) && paced <= expected * 3,
        "{SIZE} bytes at {RATE_KB} KB/s took {paced:?}, expected about {expected:?}"
    );
    assert!(
        control * 4 < paced,
        "the control ({control:?}) is far faster than the paced transfer ({paced:?})"
    );
    daemon.stop();
}

/// Echoes `size` bytes through `proxy` on a fresh connection (a writer thread, so neither side
/// waits on the other's buffers); checks every byte came back and returns how long it took.
fn timed_echo(proxy: SocketAddr, size: usize) -> Duration {
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut stream = TcpStream::connect(proxy).expect("connect to the proxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("a second handle");
    let started = Instant::now();
    let sent = payload.clone();
    let writing = std::thread::spawn(move || {
        writer.write_all(&sent).expect("write");
        writer.shutdown(Shutdown::Write).expect("half-close");
    });
    let mut back = Vec::with_capacity(size);
    stream.read_to_end(&mut back).expect("read the echo");
    let took = started.elapsed();
    writing.join().expect("the writer thread");
    assert!(
        back == payload,
        "{} of {size} bytes came back intact",
        back.len()
    );
    took
}

/// A serve proxy whose upstream is down closes its client with FIN, as Toxiproxy does (a
/// Toxiproxy suite expecting a clean EOF from a dead backend met ECONNRESET), and counts it.
#[test]
fn a_dead_upstream_closes_the_client_cleanly_as_toxiproxy_does() {
    let dir = TempDir::new("api-dead-upstream");
    let (daemon, api) = serve(&dir, "dead-upstream", &[]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let proxy = create_proxy(api, "down", dead_addr);
    let mut stream = connect(proxy);
    let mut back = Vec::new();
    let ended = stream.read_to_end(&mut back);
    assert!(matches!(ended, Ok(0)), "a clean EOF, not {ended:?}");
    let metrics = http(api, "GET", "/metrics", "").1;
    assert!(
        metrics.contains("faultline_proxy_upstream_failures_total{proxy=\"down\"} 1"),
        "{metrics}"
    );
    daemon.stop();
}

/// Which of `count` sequential connections through `proxy` a toxic reset: each sends 4 bytes
/// and reads until the end; an echo of them means untouched.
fn reset_connections(proxy: SocketAddr, count: u64) -> Vec<u64> {
    (1..=count)
        .filter(|_| {
            let mut stream = connect(proxy);
            let _ = stream.write_all(b"ping");
            let _ = stream.shutdown(Shutdown::Write);
            let mut back = Vec::new();
            let ended = stream.read_to_end(&mut back);
            match ended {
                Ok(_) if back == b"ping" => false,
                Ok(_) => {
                    assert!(back.is_empty(), "a partial echo: {back:?}");
                    true
                }
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
                    true
                }
            }
        })
        .collect()
}

#[test]
fn toxicity_half_resets_some_connections_and_the_seed_says_which() {
    let upstream = echo_upstream();
    const CONNECTIONS: u64 = 40;
    // Each serve starts afresh: proxy "half", one reset_peer toxic with toxicity 0.5, then 40
    // connections one after the other. Returns the ordinals reset and the rule's fired count.
    let run = |seed: &str| -> (Vec<u64>, u64) {
        let dir = TempDir::new("api-toxicity");
        let (daemon, api) = serve(&dir, "serve", &["--seed", seed]);
        let proxy = create_proxy(api, "half", upstream.server.addr);
        let (status, body) = http(
            api,
            "POST",
            "/proxies/half/toxics",
            r#"{"name":"half","type":"reset_peer","stream":"upstream","toxicity":0.5,"attributes":{"timeout":0}}"#,
        );
        assert_eq!(status, 200, "{body}");
        let reset = reset_connections(proxy, CONNECTIONS);
        let (_, summary) = http(api, "GET", "/faultline/proxies/half/summary", "");
        let summary = json(&summary);
        assert_eq!(summary["connections"], CONNECTIONS, "{summary}");
        let fired = summary["rules"][0]["fired"].as_u64().expect("fired");
        daemon.stop();
        (reset, fired)
    };
    let (first, fired) = run("11");
    println!("seed 11: connections reset {first:?}");
    assert!(
        (8..=32).contains(&first.len()),
        "about half of {CONNECTIONS} reset, not none or all: {first:?}"
    );
    assert_eq!(fired, first.len() as u64, "the rule fired once per reset");
    let (again, _) = run("11");
    assert_eq!(again, first, "the same seed resets the same connections");
    let (other, _) = run("12");
    println!("seed 12: connections reset {other:?}");
    assert_ne!(other, first, "another seed draws another set");
}

/// docs/api.md: on SIGTERM "each proxy's summary is printed as one JSON line on stdout". It was
/// `proxy "NAME": {…}`, which no JSON reader takes; each line is now the summary object alone
/// (it names its proxy).
#[test]
fn serve_prints_one_json_summary_line_per_proxy_when_it_stops() {
    let dir = TempDir::new("api-stop-summaries");
    let upstream = echo_upstream();
    let template = dir.path().join("{name}.pcapng").display().to_string();
    let (daemon, api) = serve(&dir, "serve", &["--capture", &template, "--seed", "11"]);
    let first = create_proxy(api, "first", upstream.server.addr);
    create_proxy(api, "second", upstream.server.addr);
    create_proxy(api, "third", upstream.server.addr);
    assert_eq!(echo_through(first, b"hello"), b"hello");
    let (status, body) = http(api, "POST", "/proxies/third", r#"{"enabled":false}"#);
    assert_eq!(status, 200, "{body}");
    let seeds: Vec<serde_json::Value> = ["first", "second", "third"]
        .iter()
        .map(|name| {
            let (status, body) = http(
                api,
                "GET",
                &format!("/faultline/proxies/{name}/summary"),
                "",
            );
            assert_eq!(status, 200, "{body}");
            json(&body)["seed"].clone()
        })
        .collect();
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
    let mut summaries: Vec<serde_json::Value> = stopped.stdout.lines().map(json).collect();
    summaries.sort_by_key(|s| s["proxy"].as_str().map(str::to_owned));
    let names: Vec<_> = summaries.iter().map(|s| s["proxy"].clone()).collect();
    assert_eq!(names, ["first", "second", "third"], "{}", stopped.stdout);
    assert_eq!(summaries[0]["connections"], 1, "{}", stopped.stdout);
    assert_eq!(summaries[1]["connections"], 0, "{}", stopped.stdout);
    // Stopping serve is not disabling: the proxies the user left enabled say so, with the
    // seed and capture of the run that just ended (the capture is on disk, whole).
    for ((summary, enabled), seed) in summaries.iter().zip([true, true, false]).zip(&seeds) {
        assert_eq!(summary["enabled"], enabled, "{summary}");
        assert!(seed.is_u64(), "{seed}");
        assert_eq!(&summary["seed"], seed, "{summary}");
        let capture = summary["capture"].as_str().expect("a capture path");
        let report = faultline::inspect::inspect_path(
            std::path::Path::new(capture),
            &faultline::inspect::InspectOptions::default(),
        )
        .expect("a readable capture");
        assert_eq!(report.capture.damage, None, "{capture}");
    }
}

/// A proxy name is the `{name}` of `serve --capture`: `../x` is refused (400, Toxiproxy's error
/// shape) and `..` (a name the API accepts) writes its capture inside the template's folder;
/// it used to be substituted unchanged, so `DIR/caps/{name}/c.pcapng` wrote `DIR/c.pcapng`.
#[test]
fn a_proxy_name_cannot_move_its_capture_out_of_the_folder() {
    let dir = TempDir::new("api-capture-name");
    let upstream = echo_upstream();
    let caps = dir.path().join("caps");
    let template = caps.join("{name}").join("c.pcapng").display().to_string();
    let (daemon, api) = serve(&dir, "serve", &["--capture", &template]);
    let (status, body) = http(
        api,
        "POST",
        "/proxies",
        &format!(
            r#"{{"name":"../x","listen":"127.0.0.1:0","upstream":"{}"}}"#,
            upstream.server.addr
        ),
    );
    assert_eq!(status, 400, "{body}");
    let answer = json(&body);
    assert_eq!(answer["status"], 400, "{body}");
    assert!(answer["error"].is_string(), "{body}");
    // `.` and `..` are refused (clients resolve them away in a URL path); `...` is a name.
    for dots in [".", ".."] {
        let (status, body) = http(
            api,
            "POST",
            "/proxies",
            &format!(
                r#"{{"name":"{dots}","listen":"127.0.0.1:0","upstream":"{}"}}"#,
                upstream.server.addr
            ),
        );
        assert_eq!(status, 400, "{dots}: {body}");
    }
    let (_, body) = http(api, "GET", "/proxies", "");
    assert_eq!(json(&body), serde_json::json!({}), "nothing was created");
    let proxy = create_proxy(api, "...", upstream.server.addr);
    assert_eq!(echo_through(proxy, b"hello"), b"hello");
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
    let summary = json(stopped.stdout.lines().next().expect("a summary line"));
    let capture = std::path::PathBuf::from(summary["capture"].as_str().expect("a capture path"));
    assert!(
        capture.starts_with(&caps) && !capture.components().any(|c| c.as_os_str() == ".."),
        "{}",
        capture.display()
    );
    assert!(capture.is_file(), "{}", capture.display());
    assert!(!dir.path().join("c.pcapng").exists(), "the capture escaped");
}

/// A client that opens `/faultline/events` and then stops reading (its socket full: 650 KB
/// queued when probed) neither slows the proxies nor holds up the stop, and serve still prints
/// its summaries: events reach it through bounded queues that drop (`lagged`) rather than wait.
#[test]
fn an_events_client_that_stopped_reading_does_not_hold_up_the_stop() {
    let dir = TempDir::new("api-stuck-events");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let proxy = create_proxy(api, "p", upstream.server.addr);
    // A small receive buffer, never read: the API's socket fills after a few events.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket.set_recv_buffer_size(2048).expect("a small buffer");
    socket.connect(&api.into()).expect("connect to the API");
    let mut stuck: TcpStream = socket.into();
    stuck
        .write_all(b"GET /faultline/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("ask for events");
    // Each connection is two events (~120 bytes): enough to fill both socket buffers and the
    // stream's queue.
    for _ in 0..3000 {
        assert_eq!(echo_through(proxy, b"x"), b"x");
    }
    let started = Instant::now();
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the stop took {:?}",
        started.elapsed()
    );
    assert!(
        stopped.stdout.contains("\"proxy\":\"p\""),
        "{}",
        stopped.stdout
    );
    drop(stuck);
}

/// Resident memory of process `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// Each proxy's run preallocated a 4,096-event backlog (330 KB) whether or not anyone read its
/// events: one `/populate` of 18,000 proxies, under the body limit, took 6 GB. 1,000 proxies
/// took 330 MB; now well under 100 MB.
#[test]
fn a_thousand_proxies_cost_little_memory() {
    let dir = TempDir::new("api-many-proxies");
    let (daemon, api) = serve(&dir, "serve", &[]);
    let before = rss_kib(daemon.pid());
    let body: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"name":"p{i}","listen":"127.0.0.1:0","upstream":"127.0.0.1:9"}}"#))
        .collect();
    let (status, answer) = http(api, "POST", "/populate", &format!("[{}]", body.join(",")));
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        json(&answer)["proxies"].as_array().map(Vec::len),
        Some(1000)
    );
    let grown = rss_kib(daemon.pid()).saturating_sub(before);
    assert!(grown < 100 * 1024, "1,000 proxies took {grown} KiB");
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
}

/// Issue 14: a JSON scenario's validation error named a place in the TOML faultline made of it
/// (`scenario:5:9:` for a 4-line body). Through the real server and an HTTP client, the error
/// names the line and column in the JSON the client sent, and the proxy keeps its scenario.
#[test]
fn json_scenario_errors_name_the_place_in_the_json_body() {
    let dir = TempDir::new("api-json-errors");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    create_proxy(api, "j", upstream.server.addr);
    let before = http(api, "GET", "/faultline/proxies/j/scenario", "");
    let body = "{\"rule\": [\n  {\"name\": \"slow\",\n   \"fault\": {\"latency\": {\"delay\": \"fast\"}}}\n]}";
    let (status, answer) = http(api, "PUT", "/faultline/proxies/j/scenario", body);
    assert_eq!(status, 400, "{answer}");
    let error = json(&answer)["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.starts_with("scenario (JSON):3:35: rule[1].fault.latency.delay: "),
        "the delay's place in the body: {error}"
    );
    // Line 3, column 35 of what was sent is the bad value.
    let line = body.lines().nth(2).expect("line 3");
    assert!(line[34..].starts_with("\"fast\""), "{line}");
    assert_eq!(
        http(api, "GET", "/faultline/proxies/j/scenario", ""),
        before,
        "nothing changed"
    );
    let good = "{\"rule\": [{\"name\": \"slow\", \"fault\": {\"latency\": {\"delay\": \"5ms\"}}}]}";
    let (status, answer) = http(api, "PUT", "/faultline/proxies/j/scenario", good);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(json(&answer)["rules"], 1, "{answer}");
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
}

/// Issue 15: a `serve` capture's replay was `faultline serve … (proxy up)`, a shell syntax error
/// that reproduced none of the API's rules. Now the capture carries the proxy's rule set as a
/// whole scenario (address, upstream, seed), the replay is `faultline run` of it, the report says
/// what API changes it cannot reproduce, and tshark still reads the capture.
#[test]
fn a_serve_capture_replays_its_recorded_scenario() {
    let dir = TempDir::new("api-serve-replay");
    let upstream = echo_upstream();
    let template = dir.path().join("{name}.pcapng").display().to_string();
    let (daemon, api) = serve(&dir, "serve", &["--capture", &template, "--seed", "7"]);
    let proxy = create_proxy(api, "up", upstream.server.addr);
    assert_eq!(echo_through(proxy, b"hello"), b"hello");
    let seed = json(&http(api, "GET", "/faultline/proxies/up/summary", "").1)["seed"].clone();
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
    let capture = dir.path().join("up.pcapng");
    let (packets, status) = tshark::packet_count(&capture);
    assert!(status.success() && packets > 0, "tshark reads {packets}");
    let section = tshark::section_comment(&capture).expect("a section comment");
    assert!(section.contains("scenario up; seed"), "{section}");

    let md = run_bounded(
        Command::new(FAULTLINE)
            .arg("inspect")
            .arg(&capture)
            .arg("--markdown"),
        dir.path(),
        "inspect-md",
        Duration::from_secs(30),
    );
    assert_eq!(md.code(), Some(0), "{}", md.output());
    let md = md.stdout;
    for expected in [
        "Save the scenario below as **up.toml**, then run:".to_string(),
        format!("```sh\nfaultline run up.toml --seed {seed}\n```"),
        "> **Note:** This run was a faultline serve proxy".to_string(),
        "```toml\n".to_string(),
        format!("listen = \"{proxy}\""),
        format!("upstream = \"{}\"", upstream.server.addr),
    ] {
        assert!(md.contains(&expected), "no {expected:?} in:\n{md}");
    }
    // The saved scenario is one `faultline run` accepts, from a directory of its own.
    let toml = md
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the scenario block");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    std::fs::write(elsewhere.join("up.toml"), format!("{toml}\n")).expect("save");
    let checked = run_bounded(
        Command::new(FAULTLINE)
            .args(["check", "up.toml"])
            .current_dir(&elsewhere),
        dir.path(),
        "check",
        Duration::from_secs(30),
    );
    assert_eq!(checked.code(), Some(0), "{}", checked.output());
    // The recorded command is the one typed, which a shell can read.
    let report = run_bounded(
        Command::new(FAULTLINE)
            .arg("inspect")
            .arg(&capture)
            .arg("--json"),
        dir.path(),
        "inspect-json",
        Duration::from_secs(30),
    );
    let run = json(&report.stdout)["run"].clone();
    let command = run["command"].as_str().expect("a command");
    assert!(
        command.ends_with(&format!(
            "serve --api 127.0.0.1:0 --capture {template} --seed 7"
        )) || shlex::split(command).is_some_and(|w| w.ends_with(&[
            "--capture".to_string(),
            template.clone(),
            "--seed".to_string(),
            "7".to_string()
        ])),
        "{command}"
    );
    assert!(shlex::split(command).is_some(), "{command}");
    assert_eq!(run["scenario_file"], "up.toml");
    assert!(run["replay_note"]
        .as_str()
        .is_some_and(|n| n.contains("control API")));
}

/// The `toxiproxy_proxy_{received,sent}_bytes_total` counter of `proxy`'s `direction`
/// (`upstream`/`downstream`) from `GET /metrics`.
fn metric(api: SocketAddr, which: &str, proxy: &str, direction: &str) -> u64 {
    let (status, body) = http(api, "GET", "/metrics", "");
    assert_eq!(status, 200, "{body}");
    let name = format!("toxiproxy_proxy_{which}_bytes_total{{direction=\"{direction}\"");
    body.lines()
        .find(|line| line.starts_with(&name) && line.contains(&format!("proxy=\"{proxy}\"")))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {which} counter for {proxy} {direction} in {body}"))
}

/// Reads from `stream` into `into` until it holds `until` bytes; how long that took.
fn read_until(stream: &mut TcpStream, into: &mut Vec<u8>, until: usize) -> Duration {
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    while into.len() < until {
        let n = stream.read(&mut buf).expect("read the transfer");
        assert!(n > 0, "the transfer ended after {} bytes", into.len());
        into.extend_from_slice(&buf[..n]);
    }
    started.elapsed()
}

/// Starts a 2 MB echo through `proxy`, whose downstream a 100 KB/s bandwidth toxic paces,
/// reads 50 KB, checks the proxy read little ahead of them, runs `change` (a change of the
/// toxic) and returns how long the next 500 KB took; then checks every byte came back.
fn paced_transfer_after(api: SocketAddr, proxy: SocketAddr, change: impl FnOnce()) -> Duration {
    const SIZE: usize = 2_000_000;
    let payload: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let mut stream = connect(proxy);
    let mut writer = stream.try_clone().expect("a second handle");
    let sent = payload.clone();
    let writing = std::thread::spawn(move || {
        writer.write_all(&sent).expect("write");
        writer.shutdown(Shutdown::Write).expect("half-close");
    });
    let mut back = Vec::with_capacity(SIZE);
    // 50 KB at 100 KB/s: half a second, by which time the echo has long offered the proxy all.
    let received_before = metric(api, "received", "bw", "downstream");
    let sent_before = metric(api, "sent", "bw", "downstream");
    let paced = read_until(&mut stream, &mut back, 50_000);
    let received = metric(api, "received", "bw", "downstream") - received_before;
    let relayed = metric(api, "sent", "bw", "downstream") - sent_before;
    println!("50 KB paced in {paced:?}; the proxy read {received} and sent {relayed} bytes");
    assert!(
        paced >= Duration::from_millis(250),
        "50 KB at 100 KB/s took only {paced:?}"
    );
    assert!(
        received - relayed < 100_000,
        "the proxy reads only a little ahead of a paced link: read {received}, sent {relayed}"
    );
    change();
    // 500 KB more would take 5 s at the old rate; on loopback, unpaced, it takes milliseconds.
    let freed = read_until(&mut stream, &mut back, 550_000);
    let _ = read_until(&mut stream, &mut back, SIZE);
    writing.join().expect("the writer thread");
    assert!(back == payload, "every byte came back, in order");
    freed
}

/// Regression: the bandwidth toxic planned each chunk's send time when it was read, and the
/// pump read up to 4 MiB ahead of a 100 KB/s link, so a removed (or raised) limit left
/// megabytes trickling out at the old rate for many seconds. Now the pump reads only 20 ms
/// ahead of the link and takes up a rule change while it waits.
#[test]
fn removing_a_bandwidth_toxic_frees_an_open_transfer_at_once() {
    let dir = TempDir::new("api-bandwidth-removed");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let proxy = create_proxy(api, "bw", upstream.server.addr);
    let add = || {
        let (status, body) = http(
            api,
            "POST",
            "/proxies/bw/toxics",
            r#"{"type":"bandwidth","stream":"downstream","attributes":{"rate":100}}"#,
        );
        assert_eq!(status, 200, "{body}");
    };
    add();
    let freed = paced_transfer_after(api, proxy, || {
        let (status, body) = http(api, "DELETE", "/proxies/bw/toxics/bandwidth_downstream", "");
        assert_eq!(status, 204, "{body}");
    });
    println!("after the DELETE, the next 500 KB took {freed:?}");
    assert!(
        freed < Duration::from_millis(1500),
        "the removed toxic still paced the transfer: 500 KB took {freed:?}"
    );
    // The same for a limit raised (the toxic updated) rather than removed.
    add();
    let raised = paced_transfer_after(api, proxy, || {
        let (status, body) = http(
            api,
            "POST",
            "/proxies/bw/toxics/bandwidth_downstream",
            r#"{"attributes":{"rate":100000}}"#,
        );
        assert_eq!(status, 200, "{body}");
    });
    println!("after raising the rate to 100 MB/s, the next 500 KB took {raised:?}");
    assert!(
        raised < Duration::from_millis(1500),
        "the raised limit did not reach the transfer: 500 KB took {raised:?}"
    );
    daemon.stop();
}

/// A trial held 5 bytes behind a toxic and removed it: a `latency` of 5 s still delivered them
/// 4.7 s later, and a `bandwidth` of rate 0 (a stall) never did, leaving the connection open for
/// good. Toxiproxy's toxics hand their data on when interrupted; faultline's now release what a
/// lifted or replaced rule still holds, at once, in order.
#[test]
fn data_a_removed_toxic_holds_is_delivered_at_once() {
    let dir = TempDir::new("api-held-released");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let proxy = create_proxy(api, "held", upstream.server.addr);
    for (toxic, name) in [
        (
            r#"{"type":"latency","stream":"downstream","attributes":{"latency":5000}}"#,
            "latency_downstream",
        ),
        (
            r#"{"type":"bandwidth","stream":"upstream","attributes":{"rate":0}}"#,
            "bandwidth_upstream",
        ),
        (
            r#"{"type":"slicer","stream":"downstream","attributes":{"average_size":1,"delay":2000000}}"#,
            "slicer_downstream",
        ),
    ] {
        println!("{name}");
        let mut stream = connect(proxy);
        let (status, body) = http(api, "POST", "/proxies/held/toxics", toxic);
        assert_eq!(status, 200, "{body}");
        stream.write_all(b"hello").expect("write");
        std::thread::sleep(Duration::from_millis(300));
        let removed = Instant::now();
        let (status, body) = http(api, "DELETE", &format!("/proxies/held/toxics/{name}"), "");
        assert_eq!(status, 204, "{body}");
        let mut back = Vec::new();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let waited = read_until(&mut stream, &mut back, 5);
        assert_eq!(back, b"hello", "{name}");
        let after = removed.elapsed();
        assert!(
            after < Duration::from_millis(1000),
            "{name}: the held bytes came {after:?} after the toxic was removed ({waited:?} read)"
        );
        // The connection goes on unhindered.
        let took = exchange(&mut stream, 1000);
        assert!(
            took < Duration::from_secs(1),
            "{name}: then an echo took {took:?}"
        );
    }
    // A slow_close holding the FIN: removing it lets the close through.
    let mut stream = connect(proxy);
    let (status, body) = http(
        api,
        "POST",
        "/proxies/held/toxics",
        r#"{"type":"slow_close","stream":"upstream","attributes":{"delay":20000}}"#,
    );
    assert_eq!(status, 200, "{body}");
    stream.shutdown(Shutdown::Write).expect("half-close");
    std::thread::sleep(Duration::from_millis(300));
    let removed = Instant::now();
    let (status, body) = http(
        api,
        "DELETE",
        "/proxies/held/toxics/slow_close_upstream",
        "",
    );
    assert_eq!(status, 204, "{body}");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(
        removed.elapsed() < Duration::from_millis(1000),
        "the FIN a removed slow_close held came {:?} after the removal",
        removed.elapsed()
    );
    daemon.stop();
}

/// The files in `dir`, sorted by name, with their sizes.
fn files_in(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.expect("a directory entry");
            let len = entry.metadata().expect("metadata").len();
            (entry.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    files.sort();
    files
}

/// Regression: a proxy restarted within the second of its `{time}` (or with a template without
/// one) opened the same capture file again and truncated the earlier run's capture; two names
/// made alike in a file name (`.hidden`, `_hidden`) shared one file. Now every run claims a
/// file of its own, numbered when the name is taken.
#[test]
fn a_restarted_proxy_never_overwrites_an_earlier_capture() {
    let dir = TempDir::new("api-capture-runs");
    let upstream = echo_upstream();
    let caps = dir.path().join("caps");
    let template = caps.join("sv-{name}.pcapng").display().to_string();
    let (daemon, api) = serve(&dir, "serve", &["--capture", &template]);
    let proxy = create_proxy(api, "cap", upstream.server.addr);
    let payload = vec![b'z'; 300_000];
    assert_eq!(echo_through(proxy, &payload).len(), payload.len());
    for enabled in [false, true, false, true] {
        let (status, body) = http(
            api,
            "POST",
            "/proxies/cap",
            &format!(r#"{{"enabled":{enabled}}}"#),
        );
        assert_eq!(status, 200, "{body}");
    }
    // A scenario change that restarts the proxy (a new seed) is a new run too.
    let (status, body) = http(api, "PUT", "/faultline/proxies/cap/scenario", "seed = 99\n");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["restarted"], true, "{body}");
    // A proxy whose upstream is its own address never starts (it would loop).
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let (status, body) = http(
        api,
        "POST",
        "/proxies",
        &format!(r#"{{"name":"loop","listen":"{free}","upstream":"{free}"}}"#),
    );
    assert_eq!(status, 400, "{body}");
    create_proxy(api, ".hidden", upstream.server.addr);
    create_proxy(api, "_hidden", upstream.server.addr);
    // JSON `a\\b`: the name a\b, a file name piece a_b.
    create_proxy(api, r"a\\b", upstream.server.addr);
    create_proxy(api, "a_b", upstream.server.addr);
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
    let files = files_in(&caps);
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "sv-_hidden-2.pcapng",
            "sv-_hidden.pcapng",
            "sv-a_b-2.pcapng",
            "sv-a_b.pcapng",
            "sv-cap-2.pcapng",
            "sv-cap-3.pcapng",
            "sv-cap-4.pcapng",
            "sv-cap.pcapng",
        ],
        "one file per run"
    );
    let first = files.iter().find(|(name, _)| name == "sv-cap.pcapng");
    assert!(
        !names.iter().any(|name| name.starts_with("sv-loop")),
        "a run that never started left no capture"
    );
    assert!(
        first.is_some_and(|(_, len)| *len > 2 * payload.len() as u64),
        "the first run's capture holds its transfer: {files:?}"
    );
}

/// `GET /faultline/proxies/{name}/summary` as JSON.
fn summary(api: SocketAddr, name: &str) -> serde_json::Value {
    let (status, body) = http(
        api,
        "GET",
        &format!("/faultline/proxies/{name}/summary"),
        "",
    );
    assert_eq!(status, 200, "{body}");
    json(&body)
}

/// Regression: a move to a taken address answered 409 but had stopped the proxy first (its
/// connections closed, its counters back to zero, a new capture started) and then started it
/// again on the old address. Now the new address is bound first and a failure changes nothing.
#[test]
fn a_move_to_a_taken_address_changes_nothing() {
    let dir = TempDir::new("api-listen-taken");
    let upstream = echo_upstream();
    let caps = dir.path().join("caps");
    let template = caps.join("{name}.pcapng").display().to_string();
    let (daemon, api) = serve(&dir, "serve", &["--capture", &template]);
    let proxy = create_proxy(api, "stay", upstream.server.addr);
    let mut open = connect(proxy);
    exchange(&mut open, 1000);
    let before = summary(api, "stay");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a taken port");
    let taken_addr = taken.local_addr().expect("its address");
    let (status, body) = http(
        api,
        "POST",
        "/proxies/stay",
        &format!(r#"{{"listen":"{taken_addr}"}}"#),
    );
    assert_eq!(status, 409, "{body}");
    exchange(&mut open, 1000);
    // So does a populate that would move it there.
    let (status, body) = http(
        api,
        "POST",
        "/populate",
        &format!(
            r#"[{{"name":"stay","listen":"{taken_addr}","upstream":"{}"}}]"#,
            upstream.server.addr
        ),
    );
    assert_eq!(status, 409, "{body}");
    exchange(&mut open, 1000);
    let after = summary(api, "stay");
    assert_eq!(after["connections"], 1, "the same run: {after}");
    assert_eq!(after["active"], 1, "the connection is still open: {after}");
    assert_eq!(after["capture"], before["capture"], "{after}");
    let (_, body) = http(api, "GET", "/proxies/stay", "");
    assert_eq!(json(&body)["listen"], proxy.to_string(), "{body}");
    assert_eq!(
        files_in(&caps).len(),
        1,
        "no new capture: {:?}",
        files_in(&caps)
    );
    // Once free, the address takes it.
    drop(taken);
    let (status, body) = http(
        api,
        "POST",
        "/proxies/stay",
        &format!(r#"{{"listen":"{taken_addr}"}}"#),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["listen"], taken_addr.to_string(), "{body}");
    assert_eq!(echo_through(taken_addr, b"moved"), b"moved");
    daemon.stop();
}

/// Regression: a scenario whose `[proxy] listen`/`upstream` restate the proxy's own address
/// differed, as text, from the proxy's base (none), so the `PUT` restarted the proxy and closed
/// its connections; the same body again did not. Settings are now compared as they take effect.
#[test]
fn a_scenario_restating_the_proxys_own_address_does_not_restart_it() {
    let dir = TempDir::new("api-scenario-restates");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let proxy = create_proxy(api, "same", upstream.server.addr);
    let mut open = connect(proxy);
    exchange(&mut open, 100);
    let body = format!(
        "[proxy]\nlisten = \"{proxy}\"\nupstream = \"{}\"\nmode = \"reverse\"\n\n[[rule]]\nname = \"slow\"\nfault.latency = {{ delay = \"1ms\" }}\n",
        upstream.server.addr
    );
    for attempt in 1..=2 {
        let (status, answer) = http(api, "PUT", "/faultline/proxies/same/scenario", &body);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(json(&answer)["restarted"], false, "PUT {attempt}: {answer}");
        exchange(&mut open, 100);
    }
    let after = summary(api, "same");
    assert_eq!(after["connections"], 1, "the same run: {after}");
    assert_eq!(after["active"], 1, "the connection stayed open: {after}");
    // A real change of settings still restarts it.
    let (status, answer) = http(api, "PUT", "/faultline/proxies/same/scenario", "seed = 5\n");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(json(&answer)["restarted"], true, "{answer}");
    daemon.stop();
}

/// A hostile trial's scenario PUT that could not start (a capture path faultline cannot open, an
/// interception CA that is not there) answered 400 and left the running proxy disabled, and a
/// later reset failed on the stored text. Bad input changes nothing: the proxy keeps relaying
/// on the same run, its scenario unchanged, and a reset still works.
#[test]
fn a_scenario_that_cannot_start_is_refused_and_the_proxy_keeps_running() {
    let dir = TempDir::new("api-scenario-refused");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let proxy = create_proxy(api, "kept", upstream.server.addr);
    let mut open = connect(proxy);
    exchange(&mut open, 100);
    let no_ca = dir.path().join("no-such-ca");
    for body in [
        "[proxy]\ncapture = \"/proc/self/mem\"\n".to_string(),
        format!(
            "[proxy.tls]\nintercept = true\nca_dir = \"{}\"\n",
            no_ca.display()
        ),
    ] {
        let (status, answer) = http(api, "PUT", "/faultline/proxies/kept/scenario", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        exchange(&mut open, 100);
        let after = summary(api, "kept");
        assert_eq!(
            after["active"], 1,
            "{body}: the connection stayed open: {after}"
        );
        let (status, proxies) = http(api, "GET", "/proxies/kept", "");
        assert_eq!(status, 200, "{proxies}");
        assert_eq!(json(&proxies)["enabled"], true, "{body}: {proxies}");
    }
    let (status, answer) = http(api, "POST", "/reset", "");
    assert_eq!(status, 204, "{answer}");
    daemon.stop();
}

/// An HTTP upstream answering every request `200 ok` and closing (its own runtime).
fn ok_upstream() -> Echo {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the HTTP upstream");
    let server = runtime.block_on(crate::support::upstream::serve(|mut stream| async move {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await;
        let _ = stream.shutdown().await;
    }));
    Echo {
        server,
        _runtime: runtime,
    }
}

/// `serve FILE` reads the file's relative `[proxy.tls]` paths (here its CA folder) from the
/// file's folder, as `run` and `check` do, whatever the working directory.
#[test]
fn serve_reads_a_scenario_files_tls_paths_from_its_folder() {
    let dir = TempDir::new("api-tls-file");
    let upstream = ok_upstream();
    let ca = Command::new(FAULTLINE)
        .args(["ca", "init", "--dir"])
        .arg(dir.path().join("ca"))
        .output()
        .expect("faultline ca init");
    assert!(ca.status.success(), "{ca:?}");
    let file = dir.path().join("tls.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"tls\"\n[proxy]\nupstream = \"{}\"\n[proxy.tls]\nintercept = true\nca_dir = \"ca\"\n",
            upstream.server.addr
        ),
    )
    .expect("write");
    let (daemon, api) = serve(&dir, "serve", &[file.to_str().expect("a UTF-8 path")]);
    let (status, body) = http(api, "GET", "/proxies/tls", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["enabled"], true, "{body}");
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
}

/// Regression: `serve FILE` refused a forward-mode scenario ("no upstream: set [proxy]
/// upstream") although a forward proxy has none and `PUT …/scenario` takes the same text.
#[test]
fn serve_takes_a_forward_mode_scenario_file() {
    let dir = TempDir::new("api-forward-file");
    let upstream = ok_upstream();
    let file = dir.path().join("fwd.toml");
    std::fs::write(&file, "name = \"fwd\"\n[proxy]\nmode = \"forward\"\n").expect("write");
    let (daemon, api) = serve(&dir, "serve", &[file.to_str().expect("a UTF-8 path")]);
    let (status, body) = http(api, "GET", "/proxies/fwd", "");
    assert_eq!(status, 200, "{body}");
    let proxy: SocketAddr = json(&body)["listen"]
        .as_str()
        .expect("listen")
        .parse()
        .expect("an address");
    let target = upstream.server.addr;
    let mut stream = connect(proxy);
    write!(
        stream,
        "GET http://{target}/x HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    )
    .expect("send a request");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"),
        "{answer}"
    );
    // It stays a forward proxy through an update that keeps its (per-request) upstream.
    let (status, body) = http(api, "POST", "/proxies/fwd", r#"{"enabled":false}"#);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(api, "POST", "/proxies/fwd", r#"{"enabled":true}"#);
    assert_eq!(status, 200, "{body}");
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
}

/// Regression: `POST /reset` stopped at the first proxy that could not be enabled again
/// (another proxy took its port while it was disabled) and answered 409, so the proxies after
/// it in name order kept their toxics, and the Python client raised `ProxyExists`. Now every
/// proxy is reset, those that can be are enabled, and the failure is a 500, as Toxiproxy's.
#[test]
fn a_reset_that_cannot_enable_one_proxy_still_resets_every_other() {
    let dir = TempDir::new("api-reset-partial");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let a = create_proxy(api, "a", upstream.server.addr);
    let z = create_proxy(api, "z", upstream.server.addr);
    for name in ["a", "z"] {
        let (status, body) = http(
            api,
            "POST",
            &format!("/proxies/{name}/toxics"),
            r#"{"type":"latency","attributes":{"latency":10}}"#,
        );
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = http(api, "POST", "/proxies/a", r#"{"enabled":false}"#);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        api,
        "POST",
        "/proxies",
        &format!(
            r#"{{"name":"m","listen":"{a}","upstream":"{}"}}"#,
            upstream.server.addr
        ),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(api, "POST", "/reset", "");
    assert_eq!(status, 500, "{body}");
    let error = json(&body);
    assert_eq!(error["status"], 500, "{body}");
    let message = error["error"].as_str().expect("a message");
    assert!(
        message.starts_with(&format!("listen tcp {a}: bind: address already in use"))
            && message.ends_with("but proxy a could not be enabled again"),
        "{message}"
    );
    let (_, body) = http(api, "GET", "/proxies", "");
    let proxies = json(&body);
    for name in ["a", "m", "z"] {
        assert_eq!(proxies[name]["toxics"], serde_json::json!([]), "{body}");
    }
    assert_eq!(proxies["a"]["enabled"], false, "{body}");
    assert_eq!(proxies["m"]["enabled"], true, "{body}");
    assert_eq!(proxies["z"]["enabled"], true, "{body}");
    assert_eq!(echo_through(z, b"after the reset"), b"after the reset");
    assert_eq!(echo_through(a, b"m holds the port"), b"m holds the port");
    // Once the port is free again, a reset enables `a` and answers 204.
    let (status, body) = http(api, "DELETE", "/proxies/m", "");
    assert_eq!(status, 204, "{body}");
    let (status, body) = http(api, "POST", "/reset", "");
    assert_eq!(status, 204, "{body}");
    let (_, body) = http(api, "GET", "/proxies/a", "");
    assert_eq!(json(&body)["enabled"], true, "{body}");
    daemon.stop();
}

/// A rule's counter in `/metrics` (`faultline_rule_WHICH{proxy=…,rule=…}`).
fn rule_metric(api: SocketAddr, which: &str, proxy: &str, rule: &str) -> u64 {
    let (status, body) = http(api, "GET", "/metrics", "");
    assert_eq!(status, 200, "{body}");
    let name = format!("faultline_rule_{which}{{proxy=\"{proxy}\",rule=\"{rule}\"}} ");
    body.lines()
        .find_map(|line| line.strip_prefix(&name))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {which} counter for {proxy}/{rule} in {body}"))
}

/// Regression: updating a toxic gave its rule a new key, and the counters were kept by key,
/// so `faultline_rule_fired_total` went from 3 to 0 (a counter reset to Prometheus) and the
/// summary's matched and fired too. They carry over now, and a connection that both the old
/// and the updated toxic selected counts once.
#[test]
fn an_updated_toxic_keeps_counting() {
    let dir = TempDir::new("api-update-counters");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let proxy = create_proxy(api, "c", upstream.server.addr);
    let (status, body) = http(
        api,
        "POST",
        "/proxies/c/toxics",
        r#"{"type":"latency","attributes":{"latency":1}}"#,
    );
    assert_eq!(status, 200, "{body}");
    for _ in 0..2 {
        exchange(&mut connect(proxy), 10);
    }
    let mut open = connect(proxy);
    exchange(&mut open, 10);
    let fired = rule_metric(api, "fired_total", "c", "latency_downstream");
    assert!(fired >= 3, "it delayed each connection: {fired}");
    for update in [r#"{"attributes":{"latency":2}}"#, "{}"] {
        let (status, body) = http(api, "POST", "/proxies/c/toxics/latency_downstream", update);
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            rule_metric(api, "fired_total", "c", "latency_downstream"),
            fired,
            "after {update}"
        );
        let rule = &summary(api, "c")["rules"][0];
        assert_eq!(rule["fired"], fired, "{rule}");
        assert_eq!(rule["matched"], 3, "{rule}");
    }
    // The open connection goes on under the updated toxic, still one matched connection; a
    // new one fires on top of the carried count.
    exchange(&mut open, 10);
    let mut second = connect(proxy);
    exchange(&mut second, 10);
    let after = rule_metric(api, "fired_total", "c", "latency_downstream");
    assert!(after > fired, "{after} after {fired}");
    assert_eq!(
        rule_metric(api, "matched_connections_total", "c", "latency_downstream"),
        4
    );
    // Removed and added again, it is a new toxic: from zero.
    drop((open, second));
    let (status, body) = http(api, "DELETE", "/proxies/c/toxics/latency_downstream", "");
    assert_eq!(status, 204, "{body}");
    let (status, body) = http(
        api,
        "POST",
        "/proxies/c/toxics",
        r#"{"type":"latency","attributes":{"latency":1}}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        rule_metric(api, "fired_total", "c", "latency_downstream"),
        0
    );
    daemon.stop();
}

/// Regression: an update that changed no value (the same `timeout`, `{}`, `toxicity: 1`) kept
/// the toxic's rule as it was, so a `timeout` toxic's timer went on from when it was added;
/// the docs (and Toxiproxy) restart a toxic on every update.
#[test]
fn every_update_of_a_timeout_toxic_starts_its_timer_again() {
    let dir = TempDir::new("api-timeout-restart");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    let proxy = create_proxy(api, "t", upstream.server.addr);
    let mut stream = connect(proxy);
    exchange(&mut stream, 10);
    let (status, body) = http(
        api,
        "POST",
        "/proxies/t/toxics",
        r#"{"type":"timeout","stream":"upstream","attributes":{"timeout":800}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let mut last = Instant::now();
    for update in [
        r#"{"attributes":{"timeout":800}}"#,
        "{}",
        r#"{"toxicity":1}"#,
    ] {
        // Each update comes well within the timer it restarts.
        std::thread::sleep(Duration::from_millis(400));
        // Timed from before the request: the update is in force once it is answered.
        last = Instant::now();
        let (status, body) = http(api, "POST", "/proxies/t/toxics/timeout_upstream", update);
        assert_eq!(status, 200, "{body}");
    }
    let mut back = Vec::new();
    let _ = stream.read_to_end(&mut back);
    let after = last.elapsed();
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_secs(5),
        "closed {after:?} after the last update"
    );
    daemon.stop();
}

/// Regression: the capture of a disabled proxy answered 404 "is not capturing: … start serve
/// with --capture" although serve was started so and the summary named the capture. A disabled
/// proxy hands out its last run's capture (the file the summary names, complete); one that has
/// no capture says why in words that fit.
#[test]
fn a_disabled_proxy_hands_out_its_last_runs_capture() {
    let dir = TempDir::new("api-capture-disabled");
    let upstream = echo_upstream();
    let caps = dir.path().join("caps");
    let template = caps.join("{name}-{time}.pcapng").display().to_string();
    let (daemon, api) = serve(&dir, "serve", &["--capture", &template]);
    let proxy = create_proxy(api, "p3", upstream.server.addr);
    assert_eq!(echo_through(proxy, b"before the stop"), b"before the stop");
    let (status, body) = http(api, "POST", "/proxies/p3", r#"{"enabled":false}"#);
    assert_eq!(status, 200, "{body}");
    let named = summary(api, "p3")["capture"]
        .as_str()
        .expect("the summary names the capture")
        .to_string();
    let (status, capture) = get_raw(api, "/faultline/proxies/p3/capture");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&capture));
    assert_eq!(
        capture,
        std::fs::read(&named).expect("the capture file"),
        "the file the summary names, whole"
    );
    let copy = dir.path().join("p3.pcapng");
    std::fs::write(&copy, &capture).expect("save");
    let legs = (0..2)
        .map(|n| tshark::follow_raw(&copy, n))
        .filter(|(to_server, to_client)| {
            to_server == b"before the stop" && to_client == b"before the stop"
        })
        .count();
    assert_eq!(legs, 2, "tshark reads both legs");
    // A proxy created disabled never ran: no capture, and the answer says so.
    let (status, body) = http(
        api,
        "POST",
        "/proxies",
        &format!(
            r#"{{"name":"off","listen":"127.0.0.1:0","upstream":"{}","enabled":false}}"#,
            upstream.server.addr
        ),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(api, "GET", "/faultline/proxies/off/capture", "");
    assert_eq!(status, 404, "{body}");
    let message = json(&body)["error"]
        .as_str()
        .expect("a message")
        .to_string();
    assert!(
        message.starts_with("proxy off is disabled and has not run yet")
            && !message.contains("--capture"),
        "{message}"
    );
    daemon.stop();
}

/// `faultline serve ARGS…` expected to stop at start; its output.
fn serve_fails(dir: &TempDir, label: &str, args: &[&str]) -> crate::support::process::Finished {
    run_bounded(
        Command::new(FAULTLINE).args(["serve", "--api"]).args(args),
        dir.path(),
        label,
        Duration::from_secs(30),
    )
}

/// Regression: a missing scenario file, a missing `--config` file and an `--api` that is no
/// address exited 1, although a bad file exits 2 (as `check` and `run` say); a scenario file
/// whose listen address was taken said `listen tcp …: bind: address already in use` without
/// naming the file or the proxy. Bad input exits 2 now, an address in use 1 (as in `run`),
/// and every message names the file and the proxy.
#[test]
fn serve_exits_2_for_bad_input_and_names_what_it_cannot_start() {
    let dir = TempDir::new("api-serve-exit");
    let code = |out: &crate::support::process::Finished| out.code();
    let missing = serve_fails(&dir, "missing-file", &["127.0.0.1:0", "nonexist.toml"]);
    assert_eq!(code(&missing), Some(2), "{}", missing.output());
    assert!(
        missing
            .stderr
            .contains("faultline: nonexist.toml: cannot read scenario: "),
        "{}",
        missing.stderr
    );
    let missing = serve_fails(
        &dir,
        "missing-config",
        &["127.0.0.1:0", "--config", "nonexist.json"],
    );
    assert_eq!(code(&missing), Some(2), "{}", missing.output());
    assert!(
        missing
            .stderr
            .contains("faultline: nonexist.json: cannot read config: "),
        "{}",
        missing.stderr
    );
    // A capture template no capture could be written under (a trial's: its folder a file)
    // stops serve at start, not every POST /proxies later.
    let file = dir.path().join("afile");
    std::fs::write(&file, b"").expect("a file");
    let template = format!("{}/{{name}}.pcapng", file.display());
    let folder = serve_fails(
        &dir,
        "capture-folder",
        &["127.0.0.1:0", "--capture", &template],
    );
    assert_eq!(code(&folder), Some(2), "{}", folder.output());
    let said = format!(
        "faultline: --capture {template}: cannot create directory {}: ",
        file.display()
    );
    assert!(folder.stderr.contains(&said), "{}", folder.stderr);
    let nonsense = serve_fails(&dir, "api-nonsense", &["nonsense"]);
    assert_eq!(code(&nonsense), Some(2), "{}", nonsense.output());
    assert!(
        nonsense.stderr.contains("--api \"nonsense\""),
        "{}",
        nonsense.stderr
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a taken port");
    let addr = taken.local_addr().expect("its address");
    let file = dir.write(
        "taken.toml",
        &format!("name = \"busy\"\n[proxy]\nlisten = \"{addr}\"\nupstream = \"127.0.0.1:9\"\n"),
    );
    let busy = serve_fails(
        &dir,
        "taken-file",
        &["127.0.0.1:0", file.to_str().expect("utf-8")],
    );
    assert_eq!(code(&busy), Some(1), "{}", busy.output());
    assert!(
        busy.stderr.contains(&format!(
            "faultline: {}: proxy \"busy\": listen tcp {addr}: bind: address already in use",
            file.display()
        )),
        "{}",
        busy.stderr
    );
    let config = dir.write(
        "taken.json",
        &format!(r#"[{{"name":"c1","listen":"{addr}","upstream":"127.0.0.1:9"}}]"#),
    );
    let busy = serve_fails(
        &dir,
        "taken-config",
        &["127.0.0.1:0", "--config", config.to_str().expect("utf-8")],
    );
    assert_eq!(code(&busy), Some(1), "{}", busy.output());
    assert!(
        busy.stderr.contains(&format!(
            "faultline: {}: proxy \"c1\": listen tcp {addr}: bind: address already in use",
            config.display()
        )),
        "{}",
        busy.stderr
    );
    drop(taken);
}

/// Regression: a `--config` entry named like a scenario file's proxy replaced that proxy (and
/// its rules) with only an INFO line, while two scenario files with one name exit 2. Both are
/// refused now, naming both sources.
#[test]
fn a_config_entry_cannot_take_a_scenario_files_proxy_name() {
    let dir = TempDir::new("api-serve-dup");
    let file = dir.write(
        "dup.toml",
        "name = \"dup\"\n[proxy]\nupstream = \"127.0.0.1:9\"\n",
    );
    let config = dir.write(
        "dup.json",
        r#"[{"name":"other","listen":"127.0.0.1:0","upstream":"127.0.0.1:9"},{"name":"dup","listen":"127.0.0.1:0","upstream":"127.0.0.1:9"}]"#,
    );
    let (file, config) = (
        file.to_str().expect("utf-8"),
        config.to_str().expect("utf-8"),
    );
    let out = serve_fails(&dir, "dup", &["127.0.0.1:0", "--config", config, file]);
    assert_eq!(out.code(), Some(2), "{}", out.output());
    assert!(
        out.stderr.contains(&format!(
            "faultline: {config}: a proxy named \"dup\" (at proxy 2) already exists, from scenario {file}"
        )),
        "{}",
        out.stderr
    );
    let out = serve_fails(&dir, "dup-files", &["127.0.0.1:0", file, file]);
    assert_eq!(out.code(), Some(2), "{}", out.output());
    assert!(
        out.stderr.contains(&format!(
            "faultline: {file}: a proxy named \"dup\" already exists, from scenario {file}"
        )),
        "{}",
        out.stderr
    );
}

/// docs/api.md's curl examples, run in order against a real `serve` (started with `--capture`,
/// as the capture example says): every request is answered 2xx but the one the docs show
/// failing (a 400 placed in the JSON body). Regression: the first block ended by deleting the
/// proxy the second block drives, so all of the second block's requests were 404.
#[test]
fn the_docs_curl_examples_run_in_order() {
    let dir = TempDir::new("api-docs-curl");
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("docs/api.md");
    let blocks: Vec<&str> = docs
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .filter(|block| block.contains("curl -s"))
        .collect();
    assert_eq!(blocks.len(), 2, "two blocks of curl examples");
    let template = dir
        .path()
        .join("{name}-{time}.pcapng")
        .display()
        .to_string();
    let (daemon, api) = serve(&dir, "serve", &["--capture", &template]);
    let examples: String = blocks
        .join("\n")
        .lines()
        .filter(|line| !line.starts_with("api="))
        .map(|line| format!("{line}\n"))
        .collect();
    let script = format!(
        "api=http://{api}\ncurl() {{ command curl --max-time 2 -w '\\nSTATUS %{{http_code}} %{{url_effective}}\\n' \"$@\"; }}\n{examples}"
    );
    let bin = std::path::Path::new(FAULTLINE)
        .parent()
        .expect("the binary's folder");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run_bounded(
        Command::new("bash")
            .args(["-c", &script])
            .current_dir(dir.path())
            .env("PATH", path),
        dir.path(),
        "examples",
        Duration::from_secs(60),
    );
    let statuses: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix("STATUS "))
        .collect();
    let requests = examples.matches("curl -s").count();
    assert_eq!(statuses.len(), requests, "{}", out.output());
    let failed: Vec<&&str> = statuses.iter().filter(|s| !s.starts_with('2')).collect();
    assert_eq!(
        failed.len(),
        1,
        "only the documented mistake fails: {failed:?}\n{}",
        out.output()
    );
    assert!(failed[0].starts_with("400 "), "{failed:?}");
    assert!(
        out.stdout
            .contains("scenario (JSON):2:39: rule[1].fault.latency.delay"),
        "{}",
        out.output()
    );
    assert!(!out.stderr.contains("faultline: error"), "{}", out.output());
    daemon.stop();
}

/// docs/api.md says what serve prints and answers; these are the places a trial found it did
/// not: where an unknown JSON field's error points (its value, not the object holding it),
/// the startup lines (`proxy "NAME" on ADDR -> UPSTREAM`, ` (disabled)`), and the `seed` of the
/// scenario a capture records (left out for the half of random seeds beyond TOML's integers).
#[test]
fn the_docs_say_what_serve_prints_and_records() {
    let dir = TempDir::new("api-docs-agree");
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("docs/api.md");
    let upstream = echo_upstream();
    let config = dir.write(
        "proxies.json",
        &format!(
            r#"[{{"name":"cfgp","listen":"127.0.0.1:0","upstream":"{0}","enabled":false}},{{"name":"on","listen":"127.0.0.1:0","upstream":"{0}"}}]"#,
            upstream.server.addr
        ),
    );
    let template = dir.path().join("{name}.pcapng").display().to_string();
    let (daemon, api) = serve(
        &dir,
        "serve",
        &[
            "--capture",
            &template,
            "--config",
            config.to_str().expect("utf-8"),
        ],
    );
    // An unknown field: at its value, as the docs' own example says.
    let (status, body) = http(
        api,
        "PUT",
        "/faultline/proxies/on/scenario",
        r#"{"seed":1,"bogus":1}"#,
    );
    assert_eq!(status, 400, "{body}");
    let message = json(&body)["error"]
        .as_str()
        .expect("a message")
        .to_string();
    let documented = "`scenario (JSON):1:19: bogus: unknown field …`";
    assert!(docs.contains(documented), "the docs changed");
    assert!(
        message.starts_with("scenario (JSON):1:19: bogus: unknown field"),
        "{message}"
    );
    // Random seeds all fit a TOML integer, so the recorded scenario always has one.
    for n in 0..16 {
        create_proxy(api, &format!("s{n}"), upstream.server.addr);
        let seed = summary(api, &format!("s{n}"))["seed"].clone();
        assert!(
            seed.as_i64().is_some(),
            "s{n}: seed {seed} beyond TOML's integers"
        );
    }
    let on: SocketAddr = json(&http(api, "GET", "/proxies/on", "").1)["listen"]
        .as_str()
        .and_then(|l| l.parse().ok())
        .expect("an address");
    assert_eq!(echo_through(on, b"seeded"), b"seeded");
    let seed = summary(api, "on")["seed"].clone();
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
    assert!(
        docs.contains("`faultline serve: proxy \"NAME\" on ADDR -> UPSTREAM`")
            && docs.contains("` (disabled)`"),
        "the docs changed"
    );
    for (name, tail) in [("cfgp", " (disabled)"), ("on", "")] {
        let line = stopped
            .stderr
            .lines()
            .find(|l| l.starts_with(&format!("faultline serve: proxy \"{name}\" on ")))
            .unwrap_or_else(|| panic!("no line for {name}: {}", stopped.stderr));
        assert!(
            line.ends_with(&format!(" -> {}{tail}", upstream.server.addr)),
            "{line}"
        );
    }
    let md = run_bounded(
        Command::new(FAULTLINE)
            .arg("inspect")
            .arg(dir.path().join("on.pcapng"))
            .arg("--markdown"),
        dir.path(),
        "inspect-md",
        Duration::from_secs(30),
    );
    assert_eq!(md.code(), Some(0), "{}", md.output());
    assert!(
        md.stdout.contains(&format!("\nseed = {seed}\n")),
        "no seed = {seed} in:\n{}",
        md.stdout
    );
}

/// A trial PUT back what `GET …/scenario` showed (the base scenario and one rule per toxic): it
/// was accepted, the toxic's rule was now there twice, deleting the toxic left its copy acting
/// (the API listed no toxic, yet 50 ms of latency stayed), and /metrics had one series twice.
/// Rules are told apart by name, so a rule named like a toxic, two rules alike, or a toxic
/// named like a base rule are refused, and nothing changes.
#[test]
fn a_rule_named_like_a_toxic_or_another_rule_is_refused() {
    let dir = TempDir::new("api-names-alike");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    create_proxy(api, "n", upstream.server.addr);
    let (status, body) = http(
        api,
        "POST",
        "/proxies/n/toxics",
        r#"{"type":"latency","attributes":{"latency":50}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (status, shown) = http(api, "GET", "/faultline/proxies/n/scenario", "");
    assert_eq!(status, 200, "{shown}");
    let (status, body) = http(api, "PUT", "/faultline/proxies/n/scenario", &shown);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(r#"rule 1 is named \"latency_downstream\", as a toxic of proxy n"#),
        "{body}"
    );
    let twice = "[[rule]]\nname = \"a\"\nfault.latency = { delay = \"1ms\" }\n[[rule]]\nname = \"a\"\nfault.latency = { delay = \"2ms\" }\n";
    let (status, body) = http(api, "PUT", "/faultline/proxies/n/scenario", twice);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(r#"rules 1 and 2 are both named \"a\""#),
        "{body}"
    );
    let (status, after) = http(api, "GET", "/faultline/proxies/n/scenario", "");
    assert_eq!(
        (status, after.as_str()),
        (200, shown.as_str()),
        "nothing changed"
    );
    let base = "[[rule]]\nname = \"slow\"\nfault.latency = { delay = \"1ms\" }\n";
    let (status, body) = http(api, "PUT", "/faultline/proxies/n/scenario", base);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        api,
        "POST",
        "/proxies/n/toxics",
        r#"{"name":"slow","type":"latency","attributes":{"latency":5}}"#,
    );
    assert_eq!(status, 409, "{body}");
    daemon.stop();
}

/// A trial's `POST /proxies/fwd {"upstream":…}` on a forward proxy answered 200 with the new
/// upstream while the proxy stayed a forward proxy (plain requests still got 400), and a proxy a
/// scenario PUT made a forward proxy kept showing its old upstream. The API shows a forward
/// proxy's upstream as per request, takes that back unchanged, and refuses another.
#[test]
fn a_forward_proxy_shows_no_upstream_of_its_own_and_refuses_one() {
    let dir = TempDir::new("api-forward-upstream");
    let upstream = echo_upstream();
    let (daemon, api) = serve(&dir, "serve", &[]);
    create_proxy(api, "fwd", upstream.server.addr);
    let (status, body) = http(
        api,
        "PUT",
        "/faultline/proxies/fwd/scenario",
        "[proxy]\nmode = \"forward\"\n",
    );
    assert_eq!(status, 200, "{body}");
    let (status, shown) = http(api, "GET", "/proxies/fwd", "");
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        json(&shown)["upstream"],
        "per request (forward proxy)",
        "{shown}"
    );
    let (status, body) = http(api, "POST", "/proxies/fwd", &shown);
    assert_eq!(status, 200, "what GET showed goes back unchanged: {body}");
    let (status, body) = http(api, "POST", "/proxies/fwd", r#"{"upstream":"127.0.0.1:9"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("is a forward proxy"), "{body}");
    daemon.stop();
}
