//! TLS interception through the real proxy: real curl trusting faultline's CA in front of real
//! TLS upstreams (HTTP/1.1 and h2, ALPN mirrored), HTTP rules acting on the plaintext, a
//! plaintext capture `inspect` and tshark read, an upstream faultline cannot trust answered with a 502,
//! and the `sni` key choosing connections without interception.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use faultline::inspect::{inspect_path, InspectOptions, LegFilter};
use faultline::proxy::{self, RunPlan, Running};
use faultline::scenario::schema::UpstreamSpec;
use faultline::scenario::Scenario;
use faultline::tls::ca_dir::CaDir;
use faultline::tls::CertificateAuthority;

use crate::support::running::wait_idle;
use crate::support::temp_dir::TempDir;
use crate::support::tshark;
use crate::support::{bounded, TEST_LIMIT};
use crate::tls::{curl, tls_upstream, UpstreamPki, NAME};

/// A faultline CA in `dir/ca`; returns the folder and the certificate clients trust.
pub(crate) fn faultline_ca(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let ca_dir = CaDir::new(dir.join("ca"));
    CertificateAuthority::init(&ca_dir, time::OffsetDateTime::now_utc()).expect("a CA");
    (ca_dir.dir().to_path_buf(), ca_dir.cert_path())
}

/// The proxy in front of `upstream` with `tls` as its `[proxy.tls]` keys and `rules`.
pub(crate) async fn start(
    tls: &str,
    rules: &str,
    upstream: SocketAddr,
    capture: Option<&Path>,
) -> Running {
    let text = format!("name = \"tls\"\nseed = 3\n[proxy.tls]\n{tls}\n{rules}");
    let scenario = Scenario::from_toml(&text, "tls.toml", "tls").expect("a valid scenario");
    proxy::start(RunPlan {
        scenario: Arc::new(scenario),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        upstream: UpstreamSpec::Address {
            host: upstream.ip().to_string(),
            port: upstream.port(),
        },
        seed: 3,
        capture: capture.map(Path::to_path_buf),
        command_line: String::new(),
        live_rules: false,
    })
    .await
    .expect("the proxy starts")
}

/// curl through `proxy` to `https://NAME:port/path` trusting `ca`, with extra `flags`; returns
/// (exit code, stdout).
async fn fetch(proxy: SocketAddr, ca: &Path, path: &str, flags: &[&str]) -> (Option<i32>, String) {
    let port = proxy.port();
    let mut args = vec![
        "--cacert".to_string(),
        ca.display().to_string(),
        "--resolve".into(),
        format!("{NAME}:{port}:127.0.0.1"),
        "--write-out".into(),
        " %{http_code} %{http_version}".into(),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    args.push(format!("https://{NAME}:{port}{path}"));
    let out = curl(args, None).await;
    (out.code(), out.stdout)
}

pub(crate) async fn finish(running: Running) -> faultline::proxy::stats::RunSummary {
    wait_idle(&running).await;
    running.shutdown();
    tokio::time::timeout(TEST_LIMIT, running.wait())
        .await
        .expect("the run stops")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intercepted_https_reaches_the_upstream_and_http_rules_act_on_plaintext() {
    bounded("interception through the proxy", async {
        let tmp = TempDir::new("tls-proxy");
        let (ca_dir, ca_pem) = faultline_ca(tmp.path());
        let pki = UpstreamPki::new(tmp.path());
        let (upstream, _task) = tls_upstream(
            pki.server(&[NAME, "127.0.0.1"], None),
            &[b"h2", b"http/1.1"],
        )
        .await;
        let capture = tmp.path().join("tls.pcapng");
        let running = start(
            &format!(
                "intercept = true\nupstream_ca = {:?}\nca_dir = {:?}\n",
                pki.pem_path.display().to_string(),
                ca_dir.display().to_string()
            ),
            "[[rule]]\nmatch = { path = \"/blocked\" }\nfault.respond = { status = 503 }\n",
            upstream,
            Some(&capture),
        )
        .await;
        let proxy = running.local_addr;

        let (code, out) = fetch(proxy, &ca_pem, "/", &["--http1.1"]).await;
        assert_eq!(code, Some(0), "{out}");
        assert_eq!(out, "upstream spoke http/1.1\n 200 1.1");
        let (code, out) = fetch(proxy, &ca_pem, "/", &["--http2"]).await;
        assert_eq!(code, Some(0), "{out}");
        assert_eq!(
            out, "upstream spoke h2\n 200 2",
            "h2 stays h2 through faultline"
        );

        // HTTP rules see the plaintext, in HTTP/1.1 and in HTTP/2.
        let (code, out) = fetch(proxy, &ca_pem, "/blocked", &["--http1.1"]).await;
        assert_eq!(code, Some(0), "{out}");
        assert!(out.ends_with(" 503 1.1"), "{out}");
        let (code, out) = fetch(proxy, &ca_pem, "/blocked", &["--http2"]).await;
        assert_eq!(code, Some(0), "{out}");
        assert!(out.ends_with(" 503 2"), "{out}");

        let summary = finish(running).await;
        assert_eq!(summary.rules[0].fired, 2, "{summary:?}");
        assert_eq!(summary.panics, 0);

        // The capture holds the plaintext: inspect reads the HTTP/1.1 requests directly.
        let report = inspect_path(
            &capture,
            &InspectOptions {
                leg: LegFilter::Both,
                key_log: Vec::new(),
            },
        )
        .expect("the capture reads");
        let json = report.to_json();
        assert!(json.contains("/blocked"), "{json}");

        // tshark reads the same plaintext capture as HTTP on both ports (no keys needed: there
        // is no TLS in it), HTTP/2 found by its connection preface.
        let ports = [proxy.port(), upstream.port()];
        let requests = plaintext_requests(&capture, &ports);
        println!("tshark on the plaintext capture: {requests:#?}");
        let has = |leg: &str, method: &str, path: &str| {
            requests
                .iter()
                .any(|r| r.0 == leg && r.1 == method && r.2 == path)
        };
        for leg in ["client leg", "upstream leg"] {
            assert!(has(leg, "GET", "/"), "no HTTP/1.1 GET / on the {leg}");
            assert!(has(leg, "GET h2", "/"), "no HTTP/2 GET / on the {leg}");
        }
        assert!(
            has("client leg", "GET", "/blocked"),
            "the client's HTTP/1.1 /blocked"
        );
        assert!(
            has("client leg", "GET h2", "/blocked"),
            "the client's HTTP/2 /blocked"
        );
        assert!(
            !has("upstream leg", "GET", "/blocked"),
            "an HTTP/1.1 request faultline answered never reaches the upstream"
        );
        let undecoded = tshark::fields(&capture, Some("tls"), &["frame.number"]);
        assert!(
            undecoded.is_empty(),
            "TLS records in a plaintext capture: {undecoded:?}"
        );
    })
    .await;
}

/// Every HTTP request tshark decodes in a plaintext capture, as (leg, method, path): HTTP/1.x
/// requests as `GET`, HTTP/2 ones as `GET h2`. `ports` are decoded as HTTP, whose dissector
/// hands a connection starting with the HTTP/2 preface to the http2 dissector.
pub(crate) fn plaintext_requests(capture: &Path, ports: &[u16]) -> Vec<(String, String, String)> {
    let decode: Vec<String> = ports
        .iter()
        .flat_map(|p| ["-d".to_string(), format!("tcp.port=={p},http")])
        .collect();
    let mut args: Vec<&str> = decode.iter().map(String::as_str).collect();
    args.extend([
        "-Y",
        "http.request || http2.headers.method",
        "-T",
        "fields",
        "-E",
        "separator=/t",
    ]);
    for field in [
        "frame.interface_name",
        "http.request.method",
        "http.request.uri",
        "http2.headers.method",
        "http2.headers.path",
    ] {
        args.extend(["-e", field]);
    }
    let out = tshark::run(capture, &args);
    let mut requests = Vec::new();
    for line in out.stdout.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let col = |i: usize| cols.get(i).copied().unwrap_or("");
        let leg = col(0).to_string();
        for (method, path) in col(1).split(',').zip(col(2).split(',')) {
            if !method.is_empty() {
                requests.push((leg.clone(), method.to_string(), path.to_string()));
            }
        }
        for (method, path) in col(3).split(',').zip(col(4).split(',')) {
            if !method.is_empty() {
                requests.push((leg.clone(), format!("{method} h2"), path.to_string()));
            }
        }
    }
    requests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_faultline_cannot_trust_gets_the_client_a_502_naming_why() {
    bounded("untrusted upstream", async {
        let tmp = TempDir::new("tls-proxy-502");
        let (ca_dir, ca_pem) = faultline_ca(tmp.path());
        let pki = UpstreamPki::new(tmp.path());
        let (upstream, _task) =
            tls_upstream(pki.server(&[NAME, "127.0.0.1"], None), &[b"http/1.1"]).await;
        // No upstream_ca: the system roots do not know the test's CA.
        let running = start(
            &format!(
                "intercept = true\nca_dir = {:?}\n",
                ca_dir.display().to_string()
            ),
            "",
            upstream,
            None,
        )
        .await;
        let (code, out) = fetch(running.local_addr, &ca_pem, "/", &["--http1.1"]).await;
        assert_eq!(code, Some(0), "{out}");
        assert!(out.ends_with(" 502 1.1"), "{out}");
        assert!(
            out.to_lowercase().contains("issuer"),
            "the reason is named: {out}"
        );
        let summary = finish(running).await;
        assert_eq!(summary.upstream_failures, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_selects_connections_without_interception() {
    bounded("sni without interception", async {
        let tmp = TempDir::new("tls-proxy-sni");
        let pki = UpstreamPki::new(tmp.path());
        let (upstream, _task) =
            tls_upstream(pki.server(&[NAME, "127.0.0.1"], None), &[b"http/1.1"]).await;
        let running = start(
            "",
            "[[rule]]\nmatch = { sni = \"*.FAULTLINE.test\" }\nfault.refuse = {}\n",
            upstream,
            None,
        )
        .await;
        let port = running.local_addr.port();
        // By name: the SNI matches, the connection is refused.
        let (code, out) = fetch(running.local_addr, &pki.pem_path, "/", &["--http1.1"]).await;
        assert_ne!(code, Some(0), "refused by SNI: {out}");
        // By address: no SNI, the TLS passes through untouched to the upstream.
        let out = curl(
            vec![
                "--cacert".into(),
                pki.pem_path.display().to_string(),
                "--http1.1".into(),
                format!("https://127.0.0.1:{port}/"),
            ],
            None,
        )
        .await;
        assert_eq!(out.code(), Some(0), "{}", out.output());
        assert_eq!(out.stdout, "upstream spoke http/1.1\n");
        let summary = finish(running).await;
        assert_eq!((summary.rules[0].matched, summary.rules[0].fired), (1, 1));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_proxy_clients_are_intercepted_inside_connect() {
    bounded("CONNECT interception", async {
        let tmp = TempDir::new("tls-proxy-connect");
        let (ca_dir, ca_pem) = faultline_ca(tmp.path());
        let pki = UpstreamPki::new(tmp.path());
        let (upstream, _task) = tls_upstream(
            pki.server(&["localhost", "127.0.0.1"], None),
            &[b"h2", b"http/1.1"],
        )
        .await;
        let text = format!(
            "name = \"connect\"\nseed = 3\n[proxy]\nmode = \"forward\"\n[proxy.tls]\nintercept = true\nupstream_ca = {:?}\nca_dir = {:?}\n[[rule]]\nmatch = {{ path = \"/blocked\" }}\nfault.respond = {{ status = 503 }}\n",
            pki.pem_path.display().to_string(),
            ca_dir.display().to_string()
        );
        let scenario = Scenario::from_toml(&text, "c.toml", "c").expect("valid");
        let running = proxy::start(RunPlan {
            scenario: Arc::new(scenario),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream: UpstreamSpec::PerRequest,
            seed: 3,
            capture: None,
            command_line: String::new(),
            live_rules: false,
        })
        .await
        .expect("the proxy starts");
        let via = format!("http://127.0.0.1:{}", running.local_addr.port());
        for (path, flag, wanted) in [
            ("/", "--http1.1", " 200 1.1"),
            ("/blocked", "--http1.1", " 503 1.1"),
            ("/", "--http2", " 200 2"),
            ("/blocked", "--http2", " 503 2"),
        ] {
            let out = curl(
                vec![
                    "--proxy".into(),
                    via.clone(),
                    "--cacert".into(),
                    ca_pem.display().to_string(),
                    flag.into(),
                    "--write-out".into(),
                    " %{http_code} %{http_version}".into(),
                    format!("https://localhost:{}{path}", upstream.port()),
                ],
                None,
            )
            .await;
            assert_eq!(out.code(), Some(0), "{path} {flag}: {}", out.output());
            assert!(out.stdout.ends_with(wanted), "{path} {flag}: {}", out.stdout);
        }
        let summary = finish(running).await;
        assert_eq!(summary.rules[0].fired, 2, "{summary:?}");
    })
    .await;
}

/// A TLS 1.3-shaped ClientHello record naming `sni` (no key share: it only has to be read).
fn client_hello_with_sni(sni: &[u8]) -> Vec<u8> {
    let u16be = |n: usize| (n as u16).to_be_bytes();
    let mut server_name = vec![0];
    server_name.extend_from_slice(&u16be(sni.len()));
    server_name.extend_from_slice(sni);
    let mut list = u16be(server_name.len()).to_vec();
    list.extend_from_slice(&server_name);
    let mut extensions = vec![0, 0];
    extensions.extend_from_slice(&u16be(list.len()));
    extensions.extend_from_slice(&list);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&u16be(extensions.len()));
    body.extend_from_slice(&extensions);
    let mut handshake = vec![1, 0];
    handshake.extend_from_slice(&u16be(body.len()));
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1];
    record.extend_from_slice(&u16be(handshake.len()));
    record.extend_from_slice(&handshake);
    record
}

/// A ClientHello faultline cannot read (an SNI with a space) escaped interception with a
/// debug line only: the user saw no rule act and no reason why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hello_faultline_cannot_read_is_relayed_unchanged_with_a_warning() {
    bounded("unreadable ClientHello", async {
        let tmp = TempDir::new("tls-proxy-bad-hello");
        let (ca_dir, _) = faultline_ca(tmp.path());
        let scenario = format!(
            "name = \"bad-hello\"\nseed = 1\n[proxy.tls]\nintercept = true\nca_dir = {:?}\n",
            ca_dir.display().to_string()
        );
        let hello = client_hello_with_sni(b"a b");
        let exchange = crate::h2::bad_peers::exchange(
            tmp.path(),
            &scenario,
            hello.clone(),
            b"the upstream's bytes".to_vec(),
        )
        .await;
        crate::support::assert_same(&hello, &exchange.upstream_got, "the ClientHello upstream");
        assert_eq!(exchange.client_got, b"the upstream's bytes");
        let warnings: Vec<&str> = exchange
            .stderr
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("ClientHello faultline cannot read"))
            .collect();
        assert_eq!(warnings.len(), 1, "{}", exchange.stderr);
        assert!(warnings[0].contains("SNI host name"), "{}", warnings[0]);
    })
    .await;
}

/// A ClientHello whose SNI rustls refuses (`a..b`, `-`, `*`) first had faultline dial the
/// upstream and finish TLS with it, then fail the client with "peer misbehaved:
/// ServerNameMustContainOneHostName". Now the client gets rustls' `illegal_parameter` alert,
/// one warning names the SNI, and the upstream never sees a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sni_rustls_refuses_is_answered_without_dialing_the_upstream() {
    use std::process::Command;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use crate::support::daemon::{Daemon, FAULTLINE};
    use crate::support::upstream::{echo_connection, serve};

    bounded("refused SNI", async {
        let tmp = TempDir::new("tls-proxy-refused-sni");
        let (ca_dir, _) = faultline_ca(tmp.path());
        let upstream = serve(echo_connection).await;
        let path = tmp.path().join("refused.toml");
        let scenario = format!(
            "name = \"refused-sni\"\nseed = 1\n[proxy.tls]\nintercept = true\nca_dir = {:?}\n",
            ca_dir.display().to_string()
        );
        std::fs::write(&path, scenario).expect("write the scenario");
        let mut daemon = Daemon::start(
            Command::new(FAULTLINE)
                .arg("run")
                .arg(&path)
                .args(["--listen", "127.0.0.1:0", "--upstream"])
                .arg(upstream.addr.to_string()),
            tmp.path(),
            "faultline",
        );
        let addr = daemon.faultline_address();
        let refused = ["a..b", "-", "*"];
        for sni in refused {
            let mut client = TcpStream::connect(addr).await.expect("connect");
            client
                .write_all(&client_hello_with_sni(sni.as_bytes()))
                .await
                .expect("send the ClientHello");
            let mut got = Vec::new();
            let _ = client.read_to_end(&mut got).await;
            // A plaintext fatal alert record: illegal_parameter (47).
            assert_eq!(got.first(), Some(&0x15), "{sni}: an alert record: {got:?}");
            assert_eq!(got.get(5..7), Some(&[2, 47][..]), "{sni}: {got:?}");
        }
        // A connection of our own, accepted after any faultline opened before it (one listen
        // queue, first in first out): once it is counted, the count says faultline's share.
        let _own = TcpStream::connect(upstream.addr).await.expect("connect");
        // Bounded by `bounded`; there is no event to await for another task's counter.
        while upstream.accepted() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let finished = daemon.stop();
        assert_eq!(
            upstream.accepted(),
            1,
            "faultline dialed the upstream for a refused SNI:\n{}",
            finished.stderr
        );
        let warnings: Vec<&str> = finished
            .stderr
            .lines()
            .filter(|l| l.contains("WARN"))
            .collect();
        assert_eq!(warnings.len(), refused.len(), "{}", finished.stderr);
        for (line, sni) in warnings.iter().zip(refused) {
            assert!(
                line.contains("neither a DNS name nor an IP address") && line.contains(sni),
                "{line}"
            );
        }
        assert!(
            !finished.stderr.contains("ServerNameMustContainOneHostName"),
            "{}",
            finished.stderr
        );
    })
    .await;
}

/// Inside a `CONNECT` tunnel the TCP leg is open before the ClientHello arrives; a refused SNI
/// still gets its alert, and no TLS is started toward the upstream (it receives no byte).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sni_rustls_refuses_inside_connect_starts_no_upstream_tls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use crate::support::upstream::serve;

    bounded("refused SNI inside CONNECT", async {
        let tmp = TempDir::new("tls-proxy-connect-refused-sni");
        let (ca_dir, _) = faultline_ca(tmp.path());
        // What the upstream read on each connection, once that connection ended.
        let (tx, mut got) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let upstream = serve(move |mut stream: TcpStream| {
            let tx = tx.clone();
            async move {
                let mut buf = Vec::new();
                let _ = stream.read_to_end(&mut buf).await;
                let _ = tx.send(buf);
            }
        })
        .await;
        let text = format!(
            "name = \"connect\"\nseed = 3\n[proxy]\nmode = \"forward\"\n[proxy.tls]\nintercept = true\nca_dir = {:?}\n",
            ca_dir.display().to_string()
        );
        let scenario = Scenario::from_toml(&text, "c.toml", "c").expect("valid");
        let running = proxy::start(RunPlan {
            scenario: Arc::new(scenario),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream: UpstreamSpec::PerRequest,
            seed: 3,
            capture: None,
            command_line: String::new(),
            live_rules: false,
        })
        .await
        .expect("the proxy starts");
        let mut client = TcpStream::connect(running.local_addr)
            .await
            .expect("connect");
        let target = upstream.addr;
        client
            .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
            .await
            .expect("CONNECT");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            client.read_exact(&mut byte).await.expect("the CONNECT answer");
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
        client
            .write_all(&client_hello_with_sni(b"a..b"))
            .await
            .expect("send the ClientHello");
        let mut got_back = Vec::new();
        let _ = client.read_to_end(&mut got_back).await;
        assert_eq!(got_back.first(), Some(&0x15), "an alert record: {got_back:?}");
        assert_eq!(got_back.get(5..7), Some(&[2, 47][..]), "{got_back:?}");
        let summary = finish(running).await;
        assert_eq!(summary.panics, 0);
        assert_eq!(upstream.accepted(), 1, "the tunnel's TCP leg only");
        // The tunnel's leg ended without a byte on it: no ClientHello of faultline's own.
        let upstream_read = got.recv().await.expect("the upstream's connection ended");
        assert!(upstream_read.is_empty(), "upstream TLS was started: {upstream_read:?}");
    })
    .await;
}
