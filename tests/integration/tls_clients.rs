//! TLS interception with real clients and real TLS servers, all through the real proxy: Python's
//! `requests` (`REQUESTS_CA_BUNDLE`) and `ssl` (`SSL_CERT_FILE`), curl over h2, grpcio with TLS
//! roots against a grpcio server that speaks TLS itself, dvc with an
//! `https://` remote through `HTTPS_PROXY`, and git's smart HTTP over HTTPS (`GIT_SSL_CAINFO`),
//! against nginx (`listen … ssl http2`, certificate made by the test) in front of the built-in
//! store and `git http-backend`. Then bad input through the real binary: a client that does not
//! trust the CA, a plain-HTTP client on an intercepting listener, an upstream that is not TLS.
//!
//! Every tool is required: a missing one fails its test (`make test` installs nginx and fcgiwrap
//! with `tests/install-deps.sh`, dvc and requests with `tests/install-dvc.sh`, grpcio with
//! `tests/install-grpc.sh`).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use faultline::proxy::{self, RunPlan, Running};
use faultline::scenario::schema::UpstreamSpec;
use faultline::scenario::Scenario;
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::daemon::{run_bounded, Daemon, FAULTLINE};
use crate::support::nginx::{Fcgiwrap, Nginx};
use crate::support::process::Finished;
use crate::support::random_bytes;
use crate::support::temp_dir::TempDir;
use crate::support::tshark;
use crate::tls::{curl, UpstreamPki};
use crate::tls_proxy::{faultline_ca, finish};

/// The name clients ask for: it resolves to loopback everywhere, so no client needs `--resolve`.
const HOST: &str = "localhost";
/// Far above what one client command takes here (dvc: 2–5 s): reaching it means a hang.
const TOOL_LIMIT: Duration = Duration::from_secs(90);
/// Whole tests that drive several slow tools (dvc, git).
const SLOW_TEST_LIMIT: Duration = Duration::from_secs(180);

/// Variables that would send a client elsewhere or make it trust something else than the test
/// says: the machine sets several of them to the system bundle.
const CLIENT_ENV: &[&str] = &[
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "AWS_CA_BUNDLE",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
];

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// Runs `command` (client variables removed first) on a blocking thread, output in
/// `logs/LABEL.*`, killed by PID after [`TOOL_LIMIT`]; prints what it did.
async fn tool(mut command: Command, logs: &Path, label: &str) -> Finished {
    let logs = logs.to_path_buf();
    let label = label.to_string();
    tokio::task::spawn_blocking(move || {
        let shown = format!("{command:?}");
        let done = run_bounded(&mut command, &logs, &label, TOOL_LIMIT);
        println!(
            "$ {shown}\n  -> exit {:?}\n{}{}",
            done.code(),
            done.stdout,
            done.stderr
        );
        done
    })
    .await
    .expect("the tool thread")
}

/// A command with the client variables of this machine removed.
fn client_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for var in CLIENT_ENV {
        command.env_remove(var);
    }
    command
}

/// One test's world: faultline's CA, the test's own PKI for upstreams, the built-in store, and
/// nginx serving TLS (HTTP/1.1 and h2) in front of it, plus `git http-backend` under `/git/`.
struct World {
    // Dropped first: servers never outlive their folder.
    nginx: Option<Nginx>,
    fcgiwrap: Option<Fcgiwrap>,
    store_stop: CancellationToken,
    tmp: TempDir,
    ca_dir: PathBuf,
    /// faultline's CA certificate: what clients are told to trust.
    ca_pem: PathBuf,
    /// The test's upstream CA: what faultline is told to trust (`upstream_ca`).
    upstream_ca: PathBuf,
    store_dir: PathBuf,
}

impl World {
    async fn new(label: &str) -> World {
        let tmp = TempDir::new(label);
        let (ca_dir, ca_pem) = faultline_ca(tmp.path());
        let pki = UpstreamPki::new(tmp.path());
        let (cert, key) = pki.server_pem_files(&[HOST, "127.0.0.1"], tmp.path(), "nginx");
        let store_dir = tmp.path().join("store");
        let store_stop = CancellationToken::new();
        let (store, _task) =
            faultline::store::spawn_ephemeral(store_dir.clone(), store_stop.clone())
                .await
                .expect("the built-in store starts");
        let git_root = tmp.path().join("git");
        fs::create_dir_all(&git_root).expect("create the git root");
        let fcgiwrap = Fcgiwrap::start(tmp.path());
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("git is required (tests/install-deps.sh installs it)");
        let backend = PathBuf::from(String::from_utf8_lossy(&exec_path.stdout).trim())
            .join("git-http-backend");
        assert!(backend.is_file(), "no {}", backend.display());
        // /up/ buffers request bodies (nginx's default): nginx reads an upload as it comes, so a
        // fault in it is what nginx meets. Unbuffered, nginx busy connecting to the store checks
        // only whether the client closed, and the FIN behind a TLS alert ends the request before
        // nginx ever reads the alert (tls_alert's uploads then found nothing in error.log).
        let locations = format!(
            "    location / {{\n      proxy_pass http://{store};\n      proxy_http_version 1.1;\n      \
             proxy_request_buffering off;\n      proxy_buffering off;\n    }}\n    \
             location /up/ {{\n      proxy_pass http://{store};\n      proxy_http_version 1.1;\n    }}\n    \
             location ~ ^/git(/.*)$ {{\n      fastcgi_pass unix:{socket};\n      \
             include /etc/nginx/fastcgi_params;\n      \
             fastcgi_param SCRIPT_FILENAME {backend};\n      \
             fastcgi_param GIT_PROJECT_ROOT {git_root};\n      \
             fastcgi_param GIT_HTTP_EXPORT_ALL \"\";\n      fastcgi_param PATH_INFO $1;\n    }}",
            socket = fcgiwrap.socket.display(),
            backend = backend.display(),
            git_root = git_root.display(),
        );
        let nginx = Nginx::start(tmp.path(), &cert, &key, &locations);
        World {
            nginx: Some(nginx),
            fcgiwrap: Some(fcgiwrap),
            store_stop,
            ca_dir,
            ca_pem,
            upstream_ca: pki.pem_path.clone(),
            store_dir,
            tmp,
        }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    fn logs(&self) -> PathBuf {
        let logs = self.path().join("logs");
        fs::create_dir_all(&logs).expect("create the logs folder");
        logs
    }

    fn nginx_addr(&self) -> SocketAddr {
        self.nginx.as_ref().expect("nginx runs").addr
    }

    /// `[proxy.tls]` keys intercepting with this world's CA folder, trusting its upstream CA.
    fn tls_keys(&self) -> String {
        format!(
            "intercept = true\nupstream_ca = {:?}\nca_dir = {:?}\n",
            self.upstream_ca.display().to_string(),
            self.ca_dir.display().to_string()
        )
    }

    /// faultline in front of nginx (reverse mode), or alone (forward mode), with `rules`.
    async fn proxy(&self, forward: bool, rules: &str, capture: Option<&Path>) -> Running {
        let mode = if forward { "mode = \"forward\"\n" } else { "" };
        let text = format!(
            "name = \"tls-clients\"\nseed = 5\n[proxy]\n{mode}[proxy.tls]\n{}\n{rules}",
            self.tls_keys()
        );
        let scenario = Scenario::from_toml(&text, "tls-clients.toml", "tls-clients")
            .expect("a valid scenario");
        let upstream = if forward {
            UpstreamSpec::PerRequest
        } else {
            UpstreamSpec::Address {
                host: "127.0.0.1".into(),
                port: self.nginx_addr().port(),
            }
        };
        proxy::start(RunPlan {
            scenario: Arc::new(scenario),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            seed: 5,
            capture: capture.map(Path::to_path_buf),
            command_line: String::new(),
            live_rules: false,
        })
        .await
        .expect("the proxy starts")
    }

    fn stop(mut self) {
        if let Some(nginx) = self.nginx.take() {
            nginx.stop();
        }
        if let Some(fcgiwrap) = self.fcgiwrap.take() {
            fcgiwrap.stop();
        }
        self.store_stop.cancel();
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.store_stop.cancel();
    }
}

/// `inspect --json` of a capture, parsed.
fn inspect_json(capture: &Path) -> serde_json::Value {
    inspect_json_with(capture, &[])
}

/// [`inspect_json`] with more arguments (`--keylog FILE`).
fn inspect_json_with(capture: &Path, more: &[&str]) -> serde_json::Value {
    let out = Command::new(FAULTLINE)
        .args(["inspect", "--json"])
        .args(more)
        .arg(capture)
        .output()
        .expect("run faultline inspect");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "inspect printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

// ----------------------------------------------------------------------------- Python

/// `requests` uploads a body, reads it back, and meets a rule's 503, through faultline; prints
/// one line per request.
const REQUESTS_CLIENT: &str = r#"
import hashlib, sys, requests
base, path = sys.argv[1], sys.argv[2]
body = open(path, "rb").read()
r = requests.put(base + "/py/object.bin", data=body, timeout=30)
print("PUT", r.status_code)
r = requests.get(base + "/py/object.bin", timeout=30)
print("GET", r.status_code, len(r.content), hashlib.md5(r.content).hexdigest())
r = requests.get(base + "/blocked", timeout=30)
print("BLOCKED", r.status_code, r.text.strip()[:40])
"#;

/// The standard library alone (`urllib`, `ssl.create_default_context()`), which trusts
/// `SSL_CERT_FILE`.
const URLLIB_CLIENT: &str = r#"
import hashlib, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/py/object.bin", timeout=30) as r:
    data = r.read()
    print("URLLIB", r.status, r.version, len(data), hashlib.md5(data).hexdigest())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_requests_and_ssl_reach_the_store_behind_nginx_through_interception() {
    tokio::time::timeout(SLOW_TEST_LIMIT, async {
        let world = World::new("tls-python").await;
        let capture = world.path().join("python.pcapng");
        let running = world
            .proxy(
                false,
                "[[rule]]\nmatch = { path = \"/blocked\" }\nfault.respond = { status = 503, body = \"blocked by faultline\" }\n",
                Some(&capture),
            )
            .await;
        let base = format!("https://{HOST}:{}", running.local_addr.port());
        let python = crate::dvc::venv().python.clone();
        let body = random_bytes(3 * 1024 * 1024 + 17, 41);
        let body_path = world.path().join("body.bin");
        fs::write(&body_path, &body).expect("write the body");
        let md5 = md5_hex(&body);

        let mut command = client_command(&python);
        command
            .args(["-c", REQUESTS_CLIENT, &base])
            .arg(&body_path)
            .env("REQUESTS_CA_BUNDLE", &world.ca_pem);
        let out = tool(command, &world.logs(), "requests").await;
        assert_eq!(out.code(), Some(0), "requests: {}", out.output());
        assert_eq!(
            out.stdout,
            format!(
                "PUT 201\nGET 200 {} {md5}\nBLOCKED 503 blocked by faultline\n",
                body.len()
            ),
            "requests: {}",
            out.stderr
        );
        let stored = fs::read(world.store_dir.join("py/object.bin")).expect("the store kept it");
        assert!(stored == body, "the store holds the bytes requests sent");

        let mut command = client_command(&python);
        command
            .args(["-c", URLLIB_CLIENT, &base])
            .env("SSL_CERT_FILE", &world.ca_pem);
        let out = tool(command, &world.logs(), "urllib").await;
        assert_eq!(out.code(), Some(0), "urllib: {}", out.output());
        assert_eq!(out.stdout, format!("URLLIB 200 11 {} {md5}\n", body.len()));

        // Without faultline's CA, Python refuses faultline's leaf (and says why).
        let mut command = client_command(&python);
        command.args(["-c", URLLIB_CLIENT, &base]);
        let out = tool(command, &world.logs(), "urllib-untrusting").await;
        assert_ne!(out.code(), Some(0), "{}", out.output());
        assert!(
            out.stderr.contains("CERTIFICATE_VERIFY_FAILED"),
            "{}",
            out.stderr
        );

        let summary = finish(running).await;
        assert_eq!(summary.rules[0].fired, 1, "{summary:?}");
        assert_eq!(summary.panics, 0);
        assert_eq!(summary.upstream_failures, 0);
        // The plaintext capture shows what requests did, to inspect.
        let report = inspect_json(&capture);
        let text = report.to_string();
        assert!(text.contains("/py/object.bin"), "{text}");
        world.stop();
    })
    .await
    .expect("bounded");
}

// ----------------------------------------------------------------------------- curl over h2 to nginx

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_h2_to_nginx_through_interception_and_http2_rules_see_it() {
    tokio::time::timeout(SLOW_TEST_LIMIT, async {
        let world = World::new("tls-nginx-h2").await;
        let payload = random_bytes(1024 * 1024, 7);
        fs::create_dir_all(world.store_dir.join("h2")).unwrap();
        fs::write(world.store_dir.join("h2/blob"), &payload).unwrap();
        let running = world
            .proxy(
                false,
                "[[rule]]\nmatch = { path = \"/h2/missing\" }\nfault.respond = { status = 418 }\n",
                None,
            )
            .await;
        let port = running.local_addr.port();
        for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
            let out = curl(
                vec![
                    "--cacert".into(),
                    world.ca_pem.display().to_string(),
                    flag.into(),
                    "--output".into(),
                    world.path().join("blob").display().to_string(),
                    "--write-out".into(),
                    "%{http_code} %{http_version} %{size_download}".into(),
                    format!("https://{HOST}:{port}/h2/blob"),
                ],
                None,
            )
            .await;
            assert_eq!(out.code(), Some(0), "curl {flag}: {}", out.output());
            assert_eq!(out.stdout, format!("200 {version} {}", payload.len()));
            assert!(fs::read(world.path().join("blob")).unwrap() == payload);
            let out = curl(
                vec![
                    "--cacert".into(),
                    world.ca_pem.display().to_string(),
                    flag.into(),
                    "--output".into(),
                    "/dev/null".into(),
                    "--write-out".into(),
                    "%{http_code} %{http_version}".into(),
                    format!("https://{HOST}:{port}/h2/missing"),
                ],
                None,
            )
            .await;
            assert_eq!(out.code(), Some(0), "curl {flag}: {}", out.output());
            assert_eq!(out.stdout, format!("418 {version}"));
        }
        let summary = finish(running).await;
        assert_eq!(summary.rules[0].fired, 2, "{summary:?}");
        // nginx itself saw HTTP/2 from faultline: ALPN was mirrored, not downgraded.
        let log = world.nginx.as_ref().unwrap().access_log(world.path());
        assert!(log.contains("\"GET /h2/blob HTTP/2.0\" 200"), "{log}");
        assert!(log.contains("\"GET /h2/blob HTTP/1.1\" 200"), "{log}");
        // The answered request never reached nginx over HTTP/1.1; over h2 its HEADERS may
        // have (they changed the HPACK table, so they must be forwarded), without END_STREAM,
        // and the stream was cancelled while nginx waited for the rest of the request: it
        // logs that as 400 (or 499, client closed) and sent nothing.
        assert!(
            !log.contains("/h2/missing HTTP/1.1"),
            "answered by faultline: {log}"
        );
        for line in log.lines().filter(|l| l.contains("/h2/missing")) {
            assert!(
                line.contains("HTTP/2.0\" 400 0 ") || line.contains("HTTP/2.0\" 499 0 "),
                "answered by faultline: {line}"
            );
        }
        world.stop();
    })
    .await
    .expect("bounded");
}

// ----------------------------------------------------------------------------- grpcio over TLS

/// A real grpcio ByteStream server that speaks TLS itself (its certificate from the test's
/// upstream CA), a real grpcio reader trusting only faultline's CA, faultline intercepting in
/// between with a raw capture: ALPN h2 is mirrored, an `rst_stream` rule acts on the decrypted
/// HTTP/2, the resuming reader verifies every blob, and tshark decrypts the capture with the keys
/// it carries and finds the RST_STREAM on both legs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_with_tls_roots_is_reset_on_decrypted_h2_and_resumes_to_verified_blobs() {
    use crate::h2::helpers::{fired, one_read_reset_and_resumed, read, GrpcServer, Proxy};
    tokio::time::timeout(SLOW_TEST_LIMIT, async {
        let tmp = TempDir::new("tls-grpcio");
        let (ca_dir, ca_pem) = faultline_ca(tmp.path());
        let pki = UpstreamPki::new(tmp.path());
        let (cert, key) = pki.server_pem_files(&[HOST, "127.0.0.1"], tmp.path(), "grpc");
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        let mut server = GrpcServer::start(
            tmp.path(),
            &["--barrier", "3", "--blobs", "3", "--tls-cert", &cert, "--tls-key", &key],
        );
        let capture = tmp.path().join("grpc-tls.pcapng");
        let tls = format!(
            "\n[proxy.tls]\nintercept = true\ncapture_tls = \"raw\"\nupstream_ca = {:?}\nca_dir = {:?}\n",
            pki.pem_path.display().to_string(),
            ca_dir.display().to_string()
        );
        let mut proxy = Proxy::start(
            server.spec(),
            &tls,
            r#"
[[rule]]
name = "second read is reset"
match = { path = "/google.bytestream.ByteStream/Read", request = 2, direction = "upstream->client" }
fault.rst_stream = { after = "256KiB", code = "CANCEL" }
"#,
            Some(capture.clone()),
        )
        .await;
        // The target is the proxy's address; the name checked (and sent as SNI) is HOST.
        let ca = ca_pem.display().to_string();
        let rounds = read(
            tmp.path(),
            proxy.addr,
            &["--blobs", "3", "--mode", "resume", "--root-cert", &ca, "--server-name", HOST],
        )
        .await;
        assert_eq!(proxy.connections(), 1, "one TLS connection carried every Read");
        let summary = proxy.finish().await;
        let served = server.stop();
        assert_eq!(summary.panics, 0);
        assert_eq!(summary.upstream_failures, 0, "{summary:?}");
        assert_eq!(fired(&summary, "second read is reset"), 1, "{summary:?}");

        one_read_reset_and_resumed(&rounds[0], &served);

        // The capture: TLS on the wire, ALPN h2 chosen by the server and mirrored to the client
        // (in the ServerHello for TLS 1.2, in EncryptedExtensions, decrypted, for TLS 1.3).
        let (from_client, _) = tshark::follow_raw(&capture, 0);
        assert_eq!(&from_client[..3], &[0x16, 3, 1], "a TLS record, not plaintext");
        let alpn = tshark::fields(
            &capture,
            Some("(tls.handshake.type == 2 || tls.handshake.type == 8) && tls.handshake.extensions_alpn_str"),
            &["frame.interface_name", "tls.handshake.extensions_alpn_str"],
        );
        println!("the server's ALPN choice per leg: {alpn:?}");
        for leg in ["client leg", "upstream leg"] {
            assert!(
                alpn.iter().any(|r| r[0] == leg && r.get(1).is_some_and(|p| p == "h2")),
                "no server choosing h2 on the {leg}: {alpn:?}"
            );
        }
        // tshark decrypts with the embedded keys alone: the Reads' HEADERS and one RST_STREAM on
        // each leg, for the same stream.
        let frames = tshark::fields(
            &capture,
            Some("http2"),
            &[
                "frame.interface_name",
                "http2.type",
                "http2.streamid",
                "http2.headers.path",
            ],
        );
        let resets = |leg: &str| -> Vec<String> {
            frames
                .iter()
                .filter(|r| r[0] == leg)
                .flat_map(|r| {
                    let types: Vec<&str> = r[1].split(',').collect();
                    let ids: Vec<&str> = r[2].split(',').collect();
                    types
                        .into_iter()
                        .zip(ids)
                        .filter(|(t, _)| *t == "3")
                        .map(|(_, id)| id.to_string())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let (client_resets, upstream_resets) = (resets("client leg"), resets("upstream leg"));
        assert_eq!(client_resets.len(), 1, "one RST_STREAM to the client: {frames:?}");
        assert_eq!(upstream_resets, client_resets, "the server is told about the same stream");
        for leg in ["client leg", "upstream leg"] {
            let reads: usize = frames
                .iter()
                .filter(|r| r[0] == leg)
                .filter_map(|r| r.get(3))
                .map(|paths| paths.matches("ByteStream/Read").count())
                .sum();
            assert_eq!(reads, 4, "three Reads and the resumed one, decrypted on the {leg}");
        }
        let undecrypted = tshark::fields(&capture, None, &["_ws.col.Info"])
            .into_iter()
            .filter(|r| r.join(" ").contains("Application Data"))
            .count();
        assert_eq!(undecrypted, 0, "records tshark could not decrypt");
        let comments = tshark::packet_comments(&capture);
        assert!(
            comments.iter().any(|c| c.contains("second read is reset")),
            "the fault is marked: {comments:?}"
        );
    })
    .await
    .expect("bounded");
}

/// A gRPC client offers only ALPN h2, so it cannot read the HTTP/1.1 502 that tells other
/// clients why the upstream failed: faultline answers its call in HTTP/2 instead, UNAVAILABLE with
/// the reason, rather than closing the connection with nothing said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_client_whose_upstream_fails_tls_gets_unavailable_naming_the_reason() {
    use crate::h2::helpers::{read, GrpcServer, Proxy};
    tokio::time::timeout(SLOW_TEST_LIMIT, async {
        let tmp = TempDir::new("tls-grpc-refused");
        let (ca_dir, ca_pem) = faultline_ca(tmp.path());
        let pki = UpstreamPki::new(tmp.path());
        let (cert, key) = pki.server_pem_files(&[HOST, "127.0.0.1"], tmp.path(), "grpc");
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        let mut server = GrpcServer::start(
            tmp.path(),
            &["--blobs", "1", "--tls-cert", &cert, "--tls-key", &key],
        );
        // No upstream_ca: the system roots do not know the test's upstream CA.
        let tls = format!(
            "\n[proxy.tls]\nintercept = true\nca_dir = {:?}\n",
            ca_dir.display().to_string()
        );
        let mut proxy = Proxy::start(server.spec(), &tls, "", None).await;
        let ca = ca_pem.display().to_string();
        let rounds = read(
            tmp.path(),
            proxy.addr,
            &[
                "--blobs",
                "1",
                "--attempts",
                "1",
                "--root-cert",
                &ca,
                "--server-name",
                HOST,
            ],
        )
        .await;
        let summary = proxy.finish().await;
        server.stop();
        assert_eq!(summary.panics, 0);
        assert_eq!(summary.upstream_failures, 1, "{summary:?}");
        let attempt = &rounds[0][0].attempts[0];
        assert_eq!(attempt.status, "UNAVAILABLE", "{attempt:?}");
        assert!(
            attempt.detail.contains("TLS to upstream") && attempt.detail.contains("unknown issuer"),
            "the reason reaches the gRPC client: {attempt:?}"
        );
    })
    .await
    .expect("bounded");
}

// ----------------------------------------------------------------------------- dvc

/// The dvc workspace's files: one small, one of two upload chunks and a bit.
fn dvc_payloads() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("small.txt", b"hello tls\n".to_vec()),
        ("big.bin", random_bytes(11 * 1024 * 1024 + 5, 11)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dvc_pushes_and_pulls_an_https_remote_through_https_proxy() {
    tokio::time::timeout(SLOW_TEST_LIMIT, async {
        let world = World::new("tls-dvc").await;
        let capture = world.path().join("dvc.pcapng");
        let running = world.proxy(true, "", Some(&capture)).await;
        let python = crate::dvc::venv().python.clone();
        let repo = world.path().join("repo");
        for dir in ["repo", "dvc-global", "dvc-system", "dvc-site-cache"] {
            fs::create_dir_all(world.path().join(dir)).unwrap();
        }
        let payloads = dvc_payloads();
        for (name, bytes) in &payloads {
            fs::write(repo.join(name), bytes).unwrap();
        }
        let proxy_url = format!("http://{}", running.local_addr);
        let remote = format!("https://{HOST}:{}/dvc", world.nginx_addr().port());
        let n = std::cell::Cell::new(0);
        let dvc = |args: &[&str]| {
            let mut command = client_command(&python);
            command
                .args(["-m", "dvc"])
                .args(args)
                .current_dir(&repo)
                .env("DVC_NO_ANALYTICS", "1")
                .env("DVC_GLOBAL_CONFIG_DIR", world.path().join("dvc-global"))
                .env("DVC_SYSTEM_CONFIG_DIR", world.path().join("dvc-system"))
                .env("DVC_SITE_CACHE_DIR", world.path().join("dvc-site-cache"))
                .env("PYTHONNOUSERSITE", "1")
                // What `eval "$(faultline ca init)"` and an HTTPS proxy give a user's shell.
                .env("HTTPS_PROXY", &proxy_url)
                .env("SSL_CERT_FILE", &world.ca_pem);
            n.set(n.get() + 1);
            let label = format!("{}-dvc-{}", n.get(), args[0]);
            let logs = world.logs();
            async move {
                let out = tool(command, &logs, &label).await;
                assert_eq!(out.code(), Some(0), "dvc: {}", out.output());
                out
            }
        };
        dvc(&["init", "--no-scm", "-q"]).await;
        dvc(&["add", "-q", "small.txt", "big.bin"]).await;
        dvc(&["remote", "add", "-d", "tls", &remote]).await;
        dvc(&["push"]).await;
        // Every object arrived whole, under its md5.
        for (name, bytes) in &payloads {
            let md5 = md5_hex(bytes);
            let stored = world
                .store_dir
                .join("dvc/files/md5")
                .join(&md5[..2])
                .join(&md5[2..]);
            let got = fs::read(&stored).unwrap_or_else(|e| panic!("{name} not stored: {e}"));
            assert!(got == *bytes, "{name} stored differently");
        }
        fs::remove_dir_all(repo.join(".dvc/cache")).unwrap();
        for (name, _) in &payloads {
            fs::remove_file(repo.join(name)).unwrap();
        }
        dvc(&["pull"]).await;
        for (name, bytes) in &payloads {
            assert!(
                fs::read(repo.join(name)).unwrap() == *bytes,
                "{name} pulled"
            );
        }
        let summary = finish(running).await;
        assert_eq!(summary.panics, 0);
        assert_eq!(summary.upstream_failures, 0);
        // The capture holds the decrypted HTTP inside each CONNECT: inspect checks every object
        // against its md5 path, uploads and downloads, on the client leg (read inside each
        // CONNECT tunnel) as on the upstream leg.
        let report = inspect_json(&capture);
        assert_eq!(report["verdict"], "clean", "{report:#}");
        let warnings = report["warnings"].as_array().unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let exchanges = report["exchanges"].as_array().unwrap();
        let checks = report["content_checks"].as_array().unwrap();
        for (name, bytes) in &payloads {
            let md5 = md5_hex(bytes);
            for leg in ["client", "upstream"] {
                let of_object = |e: &&serde_json::Value| {
                    e["leg"] == leg && e["target"].as_str().is_some_and(|t| t.ends_with(&md5[2..]))
                };
                let uploads: Vec<u64> = exchanges
                    .iter()
                    .filter(of_object)
                    .filter(|e| e["method"] == "PUT" || e["method"] == "POST")
                    .map(|e| e["id"].as_u64().unwrap())
                    .collect();
                assert!(
                    !uploads.is_empty(),
                    "no {leg} leg upload of {name}: {report:#}"
                );
                assert!(
                    uploads.iter().all(|id| checks
                        .iter()
                        .any(|c| c["exchange"] == *id && c["check"]["result"] == "matches")),
                    "{name}'s {leg} leg uploads {uploads:?} not checked: {report:#}"
                );
                assert!(
                    exchanges
                        .iter()
                        .filter(of_object)
                        .any(|e| e["method"] == "GET" && e["response"]["status"] == 200),
                    "no {leg} leg download of {name}: {report:#}"
                );
            }
        }
        world.stop();
    })
    .await
    .expect("bounded");
}

// ----------------------------------------------------------------------------- git

/// git as a user who ran `faultline ca init` has it: its own HOME and identity, no system
/// config, trusting faultline's CA through GIT_SSL_CAINFO.
struct Git {
    home: PathBuf,
    ca_pem: PathBuf,
    logs: PathBuf,
}

impl Git {
    fn new(world: &World) -> Git {
        let home = world.path().join("home");
        fs::create_dir_all(&home).unwrap();
        Git {
            home,
            ca_pem: world.ca_pem.clone(),
            logs: world.logs(),
        }
    }

    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut command = client_command("git");
        command
            .args(args)
            .current_dir(dir)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@faultline.test")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@faultline.test")
            .env("GIT_SSL_CAINFO", &self.ca_pem);
        command
    }

    /// Runs `command`, which must succeed.
    async fn ok(&self, command: Command, label: &str) -> Finished {
        let out = tool(command, &self.logs, label).await;
        assert_eq!(out.code(), Some(0), "{label}: {}", out.output());
        out
    }

    /// The repository nginx serves at `/git/repo.git`: one commit ("first"), pushes allowed.
    async fn served_repo(&self, world: &World) -> PathBuf {
        let bare = world.path().join("git/repo.git");
        let seed = world.path().join("seed");
        fs::create_dir_all(&seed).unwrap();
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["commit", "-q", "--allow-empty", "-m", "first"],
            &["clone", "-q", "--bare", ".", bare.to_str().unwrap()],
        ] {
            self.ok(self.command(&seed, args), "git-seed").await;
        }
        let config = self.command(&bare, &["config", "http.receivepack", "true"]);
        self.ok(config, "git-config").await;
        bare
    }

    /// Commits 2 MiB in the clone `work` and pushes it (to its origin, through whatever proxy
    /// its config names), then checks that `bare` holds both commits and the whole file.
    async fn push_and_check(&self, work: &Path, bare: &Path) {
        let big = random_bytes(2 * 1024 * 1024, 3);
        fs::write(work.join("data.bin"), &big).unwrap();
        for args in [
            &["add", "data.bin"][..],
            &["commit", "-q", "-m", "second"],
            &["push", "-q", "origin", "main"],
        ] {
            self.ok(self.command(work, args), "git-push").await;
        }
        let out = self
            .ok(
                self.command(bare, &["log", "--format=%s", "main"]),
                "git-log",
            )
            .await;
        assert_eq!(out.stdout, "second\nfirst\n");
        let size = self.command(bare, &["cat-file", "-s", "main:data.bin"]);
        let out = self.ok(size, "git-size").await;
        assert_eq!(out.stdout.trim(), big.len().to_string());
    }
}

/// faultline answers the first ref advertisement of a clone with 503, inside TLS (and inside h2
/// when git's curl negotiates it).
const GIT_FIRST_ADVERTISEMENT_503: &str = "[[rule]]\nmatch = { path = \"/git/repo.git/info/refs\", query = \"service=git-upload-pack\", attempt = 1 }\nfault.respond = { status = 503 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_clones_and_pushes_over_https_through_interception() {
    tokio::time::timeout(SLOW_TEST_LIMIT, async {
        let world = World::new("tls-git").await;
        let git = Git::new(&world);
        let bare = git.served_repo(&world).await;

        // The first clone fails on the 503, the second goes through.
        let running = world.proxy(false, GIT_FIRST_ADVERTISEMENT_503, None).await;
        let url = format!("https://{HOST}:{}/git/repo.git", running.local_addr.port());
        let out = tool(
            git.command(world.path(), &["clone", &url, "first"]),
            &git.logs,
            "git-clone-1",
        )
        .await;
        assert_ne!(out.code(), Some(0), "{}", out.output());
        assert!(out.stderr.contains("503"), "{}", out.stderr);
        let clone = git.command(world.path(), &["clone", &url, "work"]);
        git.ok(clone, "git-clone-2").await;
        let work = world.path().join("work");
        git.push_and_check(&work, &bare).await;
        let summary = finish(running).await;
        assert_eq!(summary.rules[0].fired, 1, "{summary:?}");
        assert_eq!(summary.panics, 0);
        world.stop();
    })
    .await
    .expect("bounded");
}

/// The same through forward mode, git's URL untouched (nginx's own address): the clones find
/// faultline through HTTPS_PROXY, the push through `git config http.proxy`; each CONNECT is
/// intercepted and the rule acts on the plaintext inside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_clones_and_pushes_through_https_proxy_with_connect_intercepted() {
    tokio::time::timeout(SLOW_TEST_LIMIT, async {
        let world = World::new("tls-git-connect").await;
        let git = Git::new(&world);
        let bare = git.served_repo(&world).await;
        let capture = world.path().join("git.pcapng");
        let running = world
            .proxy(true, GIT_FIRST_ADVERTISEMENT_503, Some(&capture))
            .await;
        let proxy_url = format!("http://{}", running.local_addr);
        let url = format!("https://{HOST}:{}/git/repo.git", world.nginx_addr().port());
        let via_env = |dir: &Path, args: &[&str]| {
            let mut command = git.command(dir, args);
            command.env("HTTPS_PROXY", &proxy_url);
            command
        };
        let out = tool(
            via_env(world.path(), &["clone", &url, "first"]),
            &git.logs,
            "git-clone-1",
        )
        .await;
        assert_ne!(out.code(), Some(0), "{}", out.output());
        assert!(out.stderr.contains("503"), "{}", out.stderr);
        git.ok(
            via_env(world.path(), &["clone", &url, "work"]),
            "git-clone-2",
        )
        .await;
        let work = world.path().join("work");
        let config = git.command(&work, &["config", "http.proxy", &proxy_url]);
        git.ok(config, "git-config-proxy").await;
        git.push_and_check(&work, &bare).await;
        let summary = finish(running).await;
        assert_eq!(summary.rules[0].fired, 1, "{summary:?}");
        assert_eq!(summary.panics, 0);
        assert_eq!(summary.upstream_failures, 0);

        // The push went through faultline too: its receive-pack reached nginx on an upstream
        // leg, decrypted in the capture; the 503 is marked where faultline wrote it.
        let report = inspect_json(&capture);
        let text = report.to_string();
        for wanted in [
            "/git/repo.git/info/refs?service=git-upload-pack",
            "/git/repo.git/info/refs?service=git-receive-pack",
            "/git/repo.git/git-receive-pack",
        ] {
            assert!(
                text.contains(wanted),
                "{wanted} not in the capture: {report:#}"
            );
        }
        // The client leg is read inside each CONNECT (git speaks h2 there): its requests, and
        // the 503 faultline answered itself (on no upstream leg) with the fault that wrote it.
        let streams = report["h2_streams"].as_array().unwrap();
        let on_client = |path: &str| {
            streams
                .iter()
                .filter(|s| s["leg"] == "client" && s["path"] == path)
                .collect::<Vec<_>>()
        };
        for wanted in [
            "/git/repo.git/info/refs?service=git-upload-pack",
            "/git/repo.git/info/refs?service=git-receive-pack",
            "/git/repo.git/git-receive-pack",
        ] {
            assert!(
                !on_client(wanted).is_empty(),
                "{wanted} not on the client leg: {report:#}"
            );
        }
        let answered: Vec<_> = on_client("/git/repo.git/info/refs?service=git-upload-pack")
            .into_iter()
            .filter(|s| s["status"] == 503)
            .collect();
        assert_eq!(answered.len(), 1, "{report:#}");
        assert!(
            answered[0]["faults"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f.as_str().unwrap().contains("answered 503")),
            "the 503's fault on its stream: {:#}",
            answered[0]
        );
        let comments = tshark::packet_comments(&capture);
        assert!(
            comments.iter().any(|c| c.contains("answered 503")),
            "the 503 is marked: {comments:?}"
        );
        world.stop();
    })
    .await
    .expect("bounded");
}

// ----------------------------------------------------------------------------- bad input (real binary)

/// `faultline run` of a scenario file written to `dir`, in front of `upstream`.
fn run_binary(
    dir: &Path,
    label: &str,
    scenario: &str,
    upstream: SocketAddr,
) -> (Daemon, SocketAddr) {
    let file = dir.join(format!("{label}.toml"));
    fs::write(&file, scenario).unwrap();
    let mut daemon = Daemon::start(
        Command::new(FAULTLINE)
            .arg("run")
            .arg(&file)
            .args(["--listen", "127.0.0.1:0", "--upstream"])
            .arg(upstream.to_string())
            .env("RUST_LOG", "info"),
        dir,
        label,
    );
    let addr = daemon.faultline_address();
    (daemon, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusting_and_plain_http_clients_get_clear_outcomes_and_the_proxy_carries_on() {
    tokio::time::timeout(SLOW_TEST_LIMIT, async {
        let world = World::new("tls-bad-clients").await;
        let scenario = format!("name = \"bad-clients\"\n[proxy.tls]\n{}", world.tls_keys());
        let (daemon, addr) = run_binary(
            world.path(),
            "faultline-bad-clients",
            &scenario,
            world.nginx_addr(),
        );
        let port = addr.port();
        let ok = |out: &Finished| out.code() == Some(0);

        // A client that trusts only the system roots: curl's handshake fails (exit 60), at once.
        let out = curl(vec![format!("https://{HOST}:{port}/")], None).await;
        assert_eq!(out.code(), Some(60), "{}", out.output());
        assert!(out.stderr.contains("certificate"), "{}", out.stderr);
        // The next connection, from a client that trusts faultline, works.
        let out = curl(
            vec![
                "--cacert".into(),
                world.ca_pem.display().to_string(),
                "--write-out".into(),
                "%{http_code}".into(),
                "--output".into(),
                "/dev/null".into(),
                format!("https://{HOST}:{port}/nothing-here"),
            ],
            None,
        )
        .await;
        assert!(ok(&out), "{}", out.output());
        assert_eq!(out.stdout, "404", "the store's own 404, through nginx");

        // A plain-HTTP client on the intercepting listener is relayed as TCP, unchanged: the
        // upstream answers what it would answer it directly (nginx: a 400 naming the mistake).
        let out = curl(
            vec![
                "--write-out".into(),
                " %{http_code}".into(),
                format!("http://{HOST}:{port}/"),
            ],
            None,
        )
        .await;
        assert!(ok(&out), "{}", out.output());
        assert!(out.stdout.ends_with(" 400"), "{}", out.stdout);
        assert!(
            out.stdout
                .contains("The plain HTTP request was sent to HTTPS port"),
            "{}",
            out.stdout
        );

        let done = daemon.stop();
        assert_eq!(done.code(), Some(0), "{}", done.output());
        let rejected: Vec<&str> = done
            .stderr
            .lines()
            .filter(|l| l.contains("rejected faultline's certificate"))
            .collect();
        assert_eq!(
            rejected.len(),
            1,
            "one line for the untrusting client:\n{}",
            done.stderr
        );
        assert!(rejected[0].contains("faultline ca init"), "{}", rejected[0]);
        assert!(!done.output().contains("panic"), "{}", done.output());
        assert!(
            done.stdout.contains("connections: 3 (0 upstream failures)"),
            "{}",
            done.stdout
        );
        world.stop();
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_not_tls_gets_the_client_a_502_saying_so() {
    tokio::time::timeout(SLOW_TEST_LIMIT, async {
        let tmp = TempDir::new("tls-not-tls");
        let (ca_dir, ca_pem) = faultline_ca(tmp.path());
        // A plain HTTP server where faultline expects TLS.
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_addr = plain.local_addr().unwrap();
        let _plain = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = plain.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = tcp.read(&mut buf).await;
                    let _ = tcp
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nplain\n")
                        .await;
                });
            }
        });
        let scenario = format!(
            "name = \"not-tls\"\n[proxy.tls]\nintercept = true\nca_dir = {:?}\n",
            ca_dir.display().to_string()
        );
        let (daemon, addr) = run_binary(tmp.path(), "faultline-not-tls", &scenario, plain_addr);
        for flag in ["--http1.1", "--http2"] {
            let out = curl(
                vec![
                    "--cacert".into(),
                    ca_pem.display().to_string(),
                    flag.into(),
                    "--write-out".into(),
                    " %{http_code}".into(),
                    format!("https://{HOST}:{}/", addr.port()),
                ],
                None,
            )
            .await;
            assert_eq!(out.code(), Some(0), "curl {flag}: {}", out.output());
            assert!(out.stdout.ends_with(" 502"), "curl {flag}: {}", out.stdout);
            assert!(out.stdout.contains("not TLS"), "curl {flag}: {}", out.stdout);
            assert!(out.stdout.contains(&plain_addr.to_string()), "{}", out.stdout);
        }
        let done = daemon.stop();
        assert_eq!(done.code(), Some(0), "{}", done.output());
        assert!(done.stdout.contains("connections: 2 (2 upstream failures)"), "{}", done.stdout);
    })
    .await
    .expect("bounded");
}

// ----------------------------------------------------------------------------- tls_alert

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alert_fails_real_tls_stacks_mid_transfer_in_both_directions() {
    tokio::time::timeout(SLOW_TEST_LIMIT, async {
        let world = World::new("tls-alert").await;
        let payload = random_bytes(1024 * 1024, 9);
        fs::create_dir_all(world.store_dir.join("dl")).unwrap();
        fs::write(world.store_dir.join("dl/blob"), &payload).unwrap();
        let upload = world.path().join("upload.bin");
        fs::write(&upload, &payload).unwrap();
        let nginx_errors = || fs::read_to_string(world.path().join("nginx/error.log")).unwrap();

        // Downloads: curl (OpenSSL) is the peer that meets the failure, in TLS 1.3 and 1.2.
        let downloads = [
            ("bad_record_mac", "1.3", "bad record mac"),
            // OpenSSL 3 names a failed GCM tag in TLS 1.2 by its provider's error (and sends
            // bad_record_mac to the peer all the same).
            ("bad_record_mac", "1.2", "cipher operation failed"),
            ("internal_error", "1.3", "alert internal error"),
            ("decode_error", "1.2", "alert decode error"),
        ];
        for (alert, tls_max, says) in downloads {
            let running = world
                .proxy(
                    false,
                    &format!("[[rule]]\nmatch = {{ direction = \"upstream->client\" }}\nfault.tls_alert = {{ after = \"64KiB\", alert = \"{alert}\" }}\n"),
                    None,
                )
                .await;
            let out = curl(
                vec![
                    "--cacert".into(),
                    world.ca_pem.display().to_string(),
                    "--http1.1".into(),
                    "--tls-max".into(),
                    tls_max.into(),
                    "--output".into(),
                    "/dev/null".into(),
                    "--write-out".into(),
                    "%{size_download}".into(),
                    format!("https://{HOST}:{}/dl/blob", running.local_addr.port()),
                ],
                None,
            )
            .await;
            let what = format!("{alert} to curl over TLS {tls_max}");
            println!("{what}: curl said {:?}", out.stderr.trim());
            assert_eq!(out.code(), Some(56), "{what}: {}", out.output());
            assert!(out.stderr.contains(says), "{what}: {}", out.stderr);
            let got: usize = out.stdout.trim().parse().unwrap();
            assert!(got < 64 * 1024, "{what}: the body stopped within the first 64 KiB ({got})");
            let summary = finish(running).await;
            assert_eq!(summary.rules[0].fired, 1, "{what}: {summary:?}");
            assert_eq!(summary.panics, 0);
        }

        // Uploads: nginx (OpenSSL) is the peer that meets the failure, and logs it.
        let uploads = [
            ("bad_record_mac", "decryption failed or bad record mac"),
            ("decode_error", "alert decode error"),
        ];
        for (alert, says) in uploads {
            let running = world
                .proxy(
                    false,
                    &format!("[[rule]]\nmatch = {{ direction = \"client->upstream\" }}\nfault.tls_alert = {{ after = \"64KiB\", alert = \"{alert}\" }}\n"),
                    None,
                )
                .await;
            let out = curl(
                vec![
                    "--cacert".into(),
                    world.ca_pem.display().to_string(),
                    "--http1.1".into(),
                    "--upload-file".into(),
                    upload.display().to_string(),
                    format!("https://{HOST}:{}/up/{alert}", running.local_addr.port()),
                ],
                None,
            )
            .await;
            assert_ne!(out.code(), Some(0), "{alert} upload: {}", out.output());
            let summary = finish(running).await;
            assert_eq!(summary.rules[0].fired, 1, "{alert} upload: {summary:?}");
            // nginx logs when it reads the record, which may come after the proxy let go of
            // the leg (its linger is bounded): poll, bounded.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let mut log = nginx_errors();
            while !log.contains(says) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
                log = nginx_errors();
            }
            assert!(log.contains(says), "nginx did not report {says:?}:\n{log}");
            for line in log.lines().filter(|l| l.contains(says)) {
                println!("{alert} to nginx: nginx logged {line:?}");
            }
            assert!(!world.store_dir.join(format!("up/{alert}")).exists(), "nothing stored");
        }
        world.stop();
    })
    .await
    .expect("bounded");
}

// ----------------------------------------------------------------------------- capture_tls = "raw"

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_captures_hold_the_tls_records_and_decrypt_themselves() {
    use crate::support::tshark;
    tokio::time::timeout(SLOW_TEST_LIMIT, async {
        let world = World::new("tls-raw").await;
        let object = random_bytes(300 * 1024 + 7, 13);
        let md5 = md5_hex(&object);
        let path = format!("/raw/files/md5/{}/{}", &md5[..2], &md5[2..]);
        let upload = world.path().join("object.bin");
        fs::write(&upload, &object).unwrap();
        let capture = world.path().join("raw.pcapng");
        let key_log = world.path().join("keys.log");
        // faultline answers one request itself: its close_notify must precede its FIN in the
        // capture, or the last record of each leg cannot be decrypted.
        let running = world
            .proxy(
                false,
                &format!("capture_tls = \"raw\"\nkeylog = {:?}\n[[rule]]\nmatch = {{ path = \"/blocked\" }}\nfault.respond = {{ status = 503 }}\n", key_log.display().to_string()),
                Some(&capture),
            )
            .await;
        let url = format!("https://{HOST}:{}{path}", running.local_addr.port());
        let ca = world.ca_pem.display().to_string();
        // An upload over HTTP/1.1 and TLS 1.3, a download over TLS 1.2, one over h2.
        for (what, flags) in [
            (
                "PUT",
                vec!["--http1.1", "--upload-file", upload.to_str().unwrap()],
            ),
            ("GET 1.2", vec!["--http1.1", "--tls-max", "1.2"]),
            ("GET h2", vec!["--http2"]),
        ] {
            let mut args: Vec<String> = vec!["--cacert".into(), ca.clone(), "--fail".into()];
            args.extend(flags.iter().map(|f| f.to_string()));
            args.extend(["--output".into(), "/dev/null".into(), url.clone()]);
            let out = curl(args, None).await;
            assert_eq!(out.code(), Some(0), "{what}: {}", out.output());
        }
        let blocked = format!("https://{HOST}:{}/blocked", running.local_addr.port());
        let out = curl(
            vec![
                "--cacert".into(),
                ca.clone(),
                "--http1.1".into(),
                "--write-out".into(),
                "%{http_code}".into(),
                "--output".into(),
                "/dev/null".into(),
                blocked,
            ],
            None,
        )
        .await;
        assert_eq!(out.stdout, "503", "answered: {}", out.output());
        let summary = finish(running).await;
        assert_eq!(summary.panics, 0);

        // What crossed the sockets is TLS: the client leg starts with the ClientHello record.
        let (from_client, _) = tshark::follow_raw(&capture, 0);
        assert_eq!(
            &from_client[..3],
            &[0x16, 3, 1],
            "a TLS record, not plaintext"
        );

        // tshark decrypts in one pass with no key file: every request on both legs.
        let requests = tshark::fields(
            &capture,
            Some("http.request || http2.headers.method"),
            &[
                "frame.interface_name",
                "http.request.method",
                "http2.headers.method",
            ],
        );
        let seen: Vec<String> = requests
            .iter()
            .map(|r| r.join(" ").trim().to_string())
            .collect();
        println!("tshark -Y 'http.request || http2.headers.method' (no key file): {seen:#?}");
        for leg in ["client leg", "upstream leg"] {
            for method in ["PUT", "GET"] {
                assert!(
                    seen.iter()
                        .any(|s| s.starts_with(leg) && s.contains(method)),
                    "tshark did not decrypt a {method} on the {leg}: {seen:?}"
                );
            }
            assert!(
                requests
                    .iter()
                    .any(|r| r[0] == leg && r.get(2).is_some_and(|m| m == "GET")),
                "no h2 GET decrypted on the {leg}: {seen:?}"
            );
        }
        let undecrypted = tshark::fields(&capture, None, &["_ws.col.Info"])
            .into_iter()
            .filter(|r| r.join(" ").contains("Application Data"))
            .count();
        assert_eq!(undecrypted, 0, "records tshark could not decrypt");

        // inspect decrypts the same records with the same embedded keys: the upload and the
        // HTTP/1.1 download are checked against their md5 path on both legs.
        let report = inspect_json(&capture);
        assert_eq!(report["verdict"], "clean", "{report:#}");
        let exchanges = report["exchanges"].as_array().unwrap();
        for leg in ["client", "upstream"] {
            for method in ["PUT", "GET"] {
                assert!(
                    exchanges.iter().any(|e| e["leg"] == leg
                        && e["method"] == method
                        && e["target"] == path.as_str()),
                    "inspect did not decrypt the {method} on the {leg} leg: {report:#}"
                );
            }
        }
        let checks = report["content_checks"].as_array().unwrap();
        assert!(checks.len() >= 2, "{report:#}");
        assert!(checks.iter().all(|c| c["corrupt"] == false), "{report:#}");
        let warnings = report["warnings"].as_array().unwrap();
        assert!(
            warnings.is_empty(),
            "a clean raw capture decrypts without warnings: {warnings:?}"
        );

        // The same capture without its embedded secrets (as tcpdump or Wireshark would have
        // taken it): inspect decrypts it with the run's key log (`--keylog`), and without it
        // says what to pass (a trial found no way to give inspect a key log).
        let stripped = world.path().join("stripped.pcapng");
        let out = Command::new("editcap")
            .arg("--discard-all-secrets")
            .arg(&capture)
            .arg(&stripped)
            .output()
            .expect("run editcap (tests/install-tshark.sh installs it)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let blind = inspect_json(&stripped);
        let said = blind["warnings"].to_string();
        assert!(said.contains("--keylog FILE"), "{blind:#}");
        // Nothing in it could be checked: never clean (a trial's stripped capture said OK).
        assert_eq!(blind["verdict"], "inconclusive", "{blind:#}");
        assert!(
            blind["verdict_line"]
                .as_str()
                .is_some_and(|l| l.contains("TLS not decrypted on")),
            "{blind:#}"
        );
        let keyed = inspect_json_with(&stripped, &["--keylog", key_log.to_str().unwrap()]);
        assert_eq!(keyed["verdict"], "clean", "{keyed:#}");
        assert_eq!(keyed["exchanges"], report["exchanges"], "{keyed:#}");
        assert_eq!(keyed["warnings"].as_array().map(Vec::len), Some(0), "{keyed:#}");
        world.stop();
    })
    .await
    .expect("bounded");
}

/// Forward mode with `capture_tls = "raw"`: the client leg holds the plaintext CONNECT, its 200
/// and then the TLS records of the tunnel, the keys embedded. inspect reads on after the 200,
/// decrypts the tunnel with those keys and checks the upload on the client leg as on the
/// upstream leg; an h2 download inside another tunnel is an HTTP/2 stream of the client leg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_forward_mode_captures_are_decrypted_inside_each_connect() {
    tokio::time::timeout(SLOW_TEST_LIMIT, async {
        let world = World::new("tls-raw-connect").await;
        let object = random_bytes(200 * 1024 + 3, 19);
        let md5 = md5_hex(&object);
        let path = format!("/raw/files/md5/{}/{}", &md5[..2], &md5[2..]);
        let upload = world.path().join("object.bin");
        fs::write(&upload, &object).unwrap();
        let capture = world.path().join("raw-connect.pcapng");
        let running = world
            .proxy(true, "capture_tls = \"raw\"\n", Some(&capture))
            .await;
        let via = format!("http://{}", running.local_addr);
        let url = format!("https://{HOST}:{}{path}", world.nginx_addr().port());
        let ca = world.ca_pem.display().to_string();
        for (what, flags) in [
            (
                "PUT",
                vec!["--http1.1", "--upload-file", upload.to_str().unwrap()],
            ),
            ("GET h2", vec!["--http2"]),
        ] {
            let mut args: Vec<String> = vec![
                "--proxy".into(),
                via.clone(),
                "--cacert".into(),
                ca.clone(),
                "--fail".into(),
            ];
            args.extend(flags.iter().map(|f| f.to_string()));
            args.extend(["--output".into(), "/dev/null".into(), url.clone()]);
            let out = curl(args, None).await;
            assert_eq!(out.code(), Some(0), "{what}: {}", out.output());
        }
        let summary = finish(running).await;
        assert_eq!(summary.panics, 0);
        assert!(
            fs::read(world.store_dir.join(&path[1..])).unwrap() == object,
            "stored whole"
        );

        // The client leg: the CONNECT in plaintext, then the tunnel's TLS records.
        let (from_client, _) = crate::support::tshark::follow_raw(&capture, 0);
        assert!(from_client.starts_with(b"CONNECT "), "a CONNECT first");
        let tunnel = from_client
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("the CONNECT head ends")
            + 4;
        assert_eq!(&from_client[tunnel..tunnel + 3], &[0x16, 3, 1], "then TLS");

        let report = inspect_json(&capture);
        assert_eq!(report["verdict"], "clean", "{report:#}");
        let warnings = report["warnings"].as_array().unwrap();
        assert!(
            warnings.is_empty(),
            "the tunnels decrypt without warnings: {warnings:?}"
        );
        let exchanges = report["exchanges"].as_array().unwrap();
        let on_client: Vec<String> = exchanges
            .iter()
            .filter(|e| e["leg"] == "client")
            .map(|e| {
                format!(
                    "{} {}",
                    e["method"].as_str().unwrap(),
                    e["target"].as_str().unwrap()
                )
            })
            .collect();
        let connect = format!("CONNECT {HOST}:{}", world.nginx_addr().port());
        assert_eq!(
            on_client,
            vec![connect.clone(), format!("PUT {path}"), connect],
            "{report:#}"
        );
        let checks = report["content_checks"].as_array().unwrap();
        for leg in ["client", "upstream"] {
            let put = exchanges
                .iter()
                .find(|e| e["leg"] == leg && e["method"] == "PUT")
                .unwrap_or_else(|| panic!("no {leg} leg PUT: {report:#}"));
            assert_eq!(put["response"]["status"], 201, "{put:#}");
            assert_eq!(put["request"]["md5"], md5.as_str(), "{put:#}");
            assert!(
                checks
                    .iter()
                    .any(|c| c["exchange"] == put["id"] && c["check"]["result"] == "matches"),
                "the {leg} leg PUT is checked against its md5 path: {report:#}"
            );
        }
        let streams = report["h2_streams"].as_array().unwrap();
        for leg in ["client", "upstream"] {
            assert!(
                streams.iter().any(|s| s["leg"] == leg
                    && s["method"] == "GET"
                    && s["path"] == path.as_str()
                    && s["status"] == 200),
                "the h2 GET on the {leg} leg: {report:#}"
            );
        }
        // The HTML report draws the client leg's PUT on its connection's timeline.
        let html = world.path().join("raw-connect.html");
        let out = Command::new(FAULTLINE)
            .args(["inspect", "--html"])
            .arg(&html)
            .arg(&capture)
            .output()
            .expect("run faultline inspect --html");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let page = fs::read_to_string(&html).expect("the page");
        let client_put = exchanges
            .iter()
            .find(|e| e["leg"] == "client" && e["method"] == "PUT")
            .expect("the client leg PUT");
        let drawn = format!(
            "<g class=\"request\" data-exchange=\"{}\"",
            client_put["id"]
        );
        assert!(page.contains(&drawn), "{drawn} not in the HTML report");
        // The tunnels' exchanges keep their numbers whichever legs are inspected.
        for leg in ["client", "upstream"] {
            let out = Command::new(FAULTLINE)
                .args(["inspect", "--json", "--leg", leg])
                .arg(&capture)
                .output()
                .expect("run faultline inspect");
            let one: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
            let ids = |r: &serde_json::Value| -> Vec<(u64, String)> {
                r["exchanges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| e["leg"] == leg)
                    .map(|e| (e["id"].as_u64().unwrap(), e["method"].to_string()))
                    .collect()
            };
            assert_eq!(ids(&one), ids(&report), "--leg {leg}");
        }
        world.stop();
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_in_a_raw_capture_is_its_own_warning_never_corruption() {
    tokio::time::timeout(SLOW_TEST_LIMIT, async {
        let world = World::new("tls-raw-alert").await;
        let object = random_bytes(200 * 1024, 17);
        let md5 = md5_hex(&object);
        let path = format!("/raw/files/md5/{}/{}", &md5[..2], &md5[2..]);
        fs::create_dir_all(world.store_dir.join(format!("raw/files/md5/{}", &md5[..2]))).unwrap();
        fs::write(world.store_dir.join(&path[1..]), &object).unwrap();
        let capture = world.path().join("alert.pcapng");
        let running = world
            .proxy(
                false,
                "capture_tls = \"raw\"\n[[rule]]\nmatch = { direction = \"upstream->client\" }\nfault.tls_alert = { after = \"64KiB\" }\n",
                Some(&capture),
            )
            .await;
        let out = curl(
            vec![
                "--cacert".into(),
                world.ca_pem.display().to_string(),
                "--http1.1".into(),
                "--output".into(),
                "/dev/null".into(),
                format!("https://{HOST}:{}{path}", running.local_addr.port()),
            ],
            None,
        )
        .await;
        assert_eq!(out.code(), Some(56), "{}", out.output());
        finish(running).await;
        let report = inspect_json(&capture);
        let warnings: Vec<&str> = report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|w| w.as_str())
            .collect();
        println!("inspect: {}\nwarnings: {warnings:#?}", report["verdict_line"]);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("client leg") && w.contains("undecryptable record")),
            "{warnings:?}"
        );
        // The client's own answer to the corrupt record is in the capture too.
        assert!(
            warnings.iter().any(|w| w.contains("bad_record_mac")),
            "{warnings:?}"
        );
        assert_ne!(report["verdict"], "corrupt", "{report:#}");
        world.stop();
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn a_raw_tls_capture_refuses_classic_pcap_at_start() {
    let tmp = TempDir::new("tls-raw-pcap");
    let (ca_dir, _) = faultline_ca(tmp.path());
    let text = format!(
        "name = \"raw-pcap\"\n[proxy.tls]\nintercept = true\ncapture_tls = \"raw\"\nca_dir = {:?}\n",
        ca_dir.display().to_string()
    );
    let scenario = Scenario::from_toml(&text, "r.toml", "r").expect("valid");
    let started = proxy::start(RunPlan {
        scenario: Arc::new(scenario),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        upstream: UpstreamSpec::Address {
            host: "127.0.0.1".into(),
            port: 9,
        },
        seed: 1,
        capture: Some(tmp.path().join("x.pcap")),
        command_line: String::new(),
        live_rules: false,
    })
    .await;
    let err = started.expect_err("refused").to_string();
    assert!(err.contains("needs a pcapng capture"), "{err}");
    assert!(!tmp.path().join("x.pcap").exists(), "no file was started");
}
