//! HTTP/2 reached through `Upgrade: h2c` (RFC 7540 §3.2), with real peers on both legs: curl
//! `--http2` (no prior knowledge, so it asks to upgrade its first HTTP/1.1 request) through
//! faultline under `protocol = "auto"` to a real h2c server that accepts the upgrade
//! (tests/h2c/upgrade_server.py on python-hyper's h2, in the venv tests/install-grpc.sh makes;
//! nginx and nghttpd speak h2c with prior knowledge only). An HTTP/2 rule then fires on a later
//! stream of the upgraded connection, and tshark follows the 101 into http2 on both legs.
//!
//! The venv missing fails the test (`make test` installs it), as do curl and tshark.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use faultline::scenario::schema::UpstreamSpec;

use crate::h2::helpers::{fired, python, Proxy, TempDir};
use crate::support::bounded;
use crate::support::daemon::{run_bounded, Daemon};
use crate::support::tshark;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// One curl run of three small transfers on loopback.
const CURL_LIMIT: Duration = Duration::from_secs(30);

/// The h2c server that accepts `Upgrade: h2c`, started in `dir` (its log there), stopped by PID,
/// and its address.
fn upgrade_server(dir: &Path) -> (Daemon, SocketAddr) {
    let mut command = Command::new(python());
    command.arg(Path::new(REPO).join("tests/h2c/upgrade_server.py"));
    let mut daemon = Daemon::start(&mut command, dir, "h2c-upgrade-server");
    let addr = daemon.faultline_address();
    (daemon, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_upgrades_to_h2c_through_auto_and_a_rule_answers_a_later_stream() {
    bounded("h2c upgrade, auto", upgrade_and_answer_stream_3("auto")).await;
}

/// `protocol = "http"` reads HTTP/1 strictly, and follows an accepted upgrade all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_upgrades_to_h2c_through_strict_http_and_a_rule_answers_a_later_stream() {
    bounded("h2c upgrade, http", upgrade_and_answer_stream_3("http")).await;
}

/// curl asks for `/first` (with the upgrade), `/second` and `/third` on one connection through
/// faultline under `protocol`; a `respond` rule answers `/second` (stream 3) and the others reach
/// the server; then tshark reads both legs.
async fn upgrade_and_answer_stream_3(protocol: &str) {
    let dir = TempDir::new(&format!("h2c-upgrade-{protocol}"));
    let capture = dir.path().join("upgrade.pcapng");
    let (server, upstream) = upgrade_server(dir.path());
    let mut proxy = Proxy::start(
        UpstreamSpec::Address {
            host: upstream.ip().to_string(),
            port: upstream.port(),
        },
        &format!("protocol = \"{protocol}\""),
        r#"
[[rule]]
name = "second request"
match = { method = "GET", path = "/second" }
fault.respond = { status = 503, body = "injected 503\n" }
"#,
        Some(capture.clone()),
    )
    .await;
    let base = format!("http://{}", proxy.addr);
    // One curl, three URLs: the first request carries the Upgrade, the next two reuse the
    // upgraded connection as HTTP/2 streams 3 and 5.
    let mut command = Command::new("curl");
    command
        .args(["--verbose", "--silent", "--max-time", "20", "--http2"])
        .args(["-w", "%{http_version} %{http_code}\n"])
        .args(["first", "second", "third"].map(|p| format!("{base}/{p}")));
    let logs = dir.path().to_path_buf();
    let curl =
        tokio::task::spawn_blocking(move || run_bounded(&mut command, &logs, "curl", CURL_LIMIT))
            .await
            .expect("curl's task");
    assert_eq!(curl.code(), Some(0), "{}", curl.output());
    assert!(
        curl.stderr.contains("Upgrade: h2c")
            && curl.stderr.contains("Received 101, Switching to HTTP/2"),
        "curl asked to upgrade and the server agreed, through faultline:\n{}",
        curl.stderr
    );
    assert_eq!(
            curl.stdout,
            "GET /first stream 1 from the upgraded server\n2 200\n\
             injected 503\n2 503\n\
             GET /third stream 5 from the upgraded server\n2 200\n",
            "stream 1 (the upgraded request) and stream 5 reached the server, stream 3 was answered by faultline\n{}\nserver:\n{}",
            curl.stderr,
            server.output()
        );
    assert_eq!(
        proxy.connections(),
        1,
        "every stream on the upgraded connection"
    );
    let summary = proxy.finish().await;
    assert_eq!(fired(&summary, "second request"), 1);
    let log = server.stop().stderr;
    for line in ["request stream=1 GET /first", "request stream=5 GET /third"] {
        assert!(log.contains(line), "the server logged {line:?}:\n{log}");
    }

    // tshark, told only that both ports carry HTTP, follows the 101 into http2 on both legs.
    let ports = [proxy.addr.port(), upstream.port()];
    let decode: Vec<String> = ports
        .iter()
        .flat_map(|p| ["-d".to_string(), format!("tcp.port=={p},http")])
        .collect();
    let mut args: Vec<&str> = decode.iter().map(String::as_str).collect();
    assert_eq!(
        tshark::expert_problems_with(&capture, &args),
        Vec::<String>::new(),
        "tshark reads both legs without complaint"
    );
    args.extend(["-Y", "http || http2", "-T", "fields", "-E", "separator=/t"]);
    args.extend(["-E", "aggregator=,"]);
    for field in [
        "tcp.srcport",
        "http.response.code",
        "http2.streamid",
        "http2.headers.status",
        "frame.comment",
    ] {
        args.extend(["-e", field]);
    }
    let rows: Vec<Vec<String>> = tshark::run(&capture, &args)
        .stdout
        .lines()
        .map(|line| line.split('\t').map(String::from).collect())
        .collect();
    let from = |port: u16| {
        rows.iter()
            .filter(move |r| r[0] == port.to_string())
            .collect::<Vec<_>>()
    };
    for port in ports {
        let sent = from(port);
        assert!(
            sent.iter().any(|r| r[1] == "101"),
            "port {port} sent the 101 as HTTP: {rows:?}"
        );
    }
    let to_client = from(proxy.addr.port());
    let answered = to_client
        .iter()
        .find(|r| r[3].split(',').any(|s| s == "503"))
        .unwrap_or_else(|| panic!("a 503 decoded as http2 toward the client: {rows:?}"));
    assert!(
        answered[2].split(',').any(|id| id == "3")
            && answered[4].contains("rule \"second request\" answered 503 to GET /second"),
        "the 503 is on stream 3 and its frame names the rule: {answered:?}"
    );
    let statuses_on = |rows: &[&Vec<String>], id: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r[2].split(',').any(|s| s == id))
            .flat_map(|r| r[3].split(',').map(String::from).collect::<Vec<_>>())
            .filter(|s| !s.is_empty())
            .collect()
    };
    for id in ["1", "5"] {
        assert_eq!(
            statuses_on(&to_client, id),
            ["200"],
            "stream {id} answered by the server, decoded as http2 toward the client"
        );
    }
}
