//! A late upstream answer on a stream faultline already answered, with nginx (h2c) as the
//! upstream and python-hyper's h2 as the client: nginx answers a GET as soon as its HEADERS
//! arrive, whatever faultline does after, and its answer changes the client's HPACK table. The
//! strict client's connection must live on (RFC 9113 §5.1 makes a frame on a stream it saw end a
//! connection error), and every later response must still decode to what nginx sent.
//!
//! nginx and the grpcio venv (python-hyper's h2) are required: a missing one fails the test
//! (`make test` installs both).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use faultline::scenario::schema::UpstreamSpec;

use crate::h2::helpers::{fired, python, segments, Proxy, TempDir};
use crate::support::daemon::run_bounded;
use crate::support::nginx::Nginx;
use crate::support::tshark;

/// The body nginx serves at `/hi.txt`.
const HI: &[u8] = b"hello from nginx\n";

/// Runs of the strict client, each through a fresh proxy: nginx's answer races faultline's, so
/// one run could pass by luck.
const RUNS: usize = 20;

/// The whole test, nginx start and 20 client runs included (well under 10 s unloaded).
const LIMIT: Duration = Duration::from_secs(150);

/// nginx speaking h2c with prior knowledge on a free loopback port, serving `root`.
struct NginxH2c(Nginx);

impl NginxH2c {
    fn start(dir: &Path, root: &Path) -> NginxH2c {
        NginxH2c(Nginx::start_h2c(
            dir,
            &format!("    root {};", root.display()),
        ))
    }

    fn spec(&self) -> UpstreamSpec {
        UpstreamSpec::Address {
            host: self.0.addr.ip().to_string(),
            port: self.0.addr.port(),
        }
    }
}

/// `strict_client.py` through `proxy` for `paths`: its lines, or a failure with its stderr.
async fn strict_client(proxy: SocketAddr, paths: &[&str], logs: &Path) -> Vec<String> {
    let (success, lines, stderr) = strict_client_run(proxy, paths, logs).await;
    assert!(
        success,
        "the strict client failed: {lines:?}\nstderr: {stderr}"
    );
    lines
}

/// `strict_client.py` through `proxy` for `paths`: whether it succeeded, its lines, its stderr.
async fn strict_client_run(
    proxy: SocketAddr,
    paths: &[&str],
    logs: &Path,
) -> (bool, Vec<String>, String) {
    let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    let mut command = Command::new(python());
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/h2c/strict_client.py"))
        .arg(proxy.ip().to_string())
        .arg(proxy.port().to_string())
        .args(&paths);
    let logs = logs.to_path_buf();
    let finished = tokio::task::spawn_blocking(move || {
        run_bounded(
            &mut command,
            &logs,
            "strict-client",
            Duration::from_secs(30),
        )
    })
    .await
    .expect("the client's task");
    let lines: Vec<String> = finished.stdout.lines().map(String::from).collect();
    (finished.status.success(), lines, finished.stderr)
}

/// The issue's scenario: the first GET of /hi.txt is answered 503 by faultline, nginx answers
/// it anyway (its late HEADERS change the client's HPACK table), and the next two GETs on the
/// same connection get nginx's 200 with the right body, in every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_client_survives_nginx_answering_a_request_faultline_answered() {
    tokio::time::timeout(LIMIT, async {
        let dir = TempDir::new("h2-late-nginx");
        let root = dir.path().join("www");
        std::fs::create_dir_all(&root).expect("create the web root");
        std::fs::write(root.join("hi.txt"), HI).expect("write hi.txt");
        let nginx = NginxH2c::start(dir.path(), &root);
        let rules = r#"
[[rule]]
name = "first hi answered"
match = { path = "/hi.txt", request = 1 }
fault.respond = { status = 503 }
"#;
        let expected = [
            "/hi.txt status=503 bytes=48".to_string(),
            format!("/hi.txt status=200 bytes={}", HI.len()),
            format!("/hi.txt status=200 bytes={}", HI.len()),
        ];
        let capture = dir.path().join("late.pcapng");
        let mut listen = 0;
        for run in 0..RUNS {
            let mut proxy =
                Proxy::start(nginx.spec(), "", rules, (run == 0).then(|| capture.clone())).await;
            if run == 0 {
                listen = proxy.addr.port();
            }
            let lines = strict_client(proxy.addr, &["/hi.txt"; 3], dir.path()).await;
            assert_eq!(lines, expected, "run {run}");
            let summary = proxy.finish().await;
            assert_eq!(fired(&summary, "first hi answered"), 1, "run {run}");
        }

        // The first run's capture: on the client leg, stream 1 carries faultline's answer and
        // nothing else; nginx's late block is withheld (a comment says so) and the later
        // responses reach the client re-encoded, each commented, and tshark decodes them.
        let port = nginx.0.addr.port();
        let all = segments(&capture, &[port, listen]);
        let frames_on_1 = |from: u16| -> Vec<(u8, u8)> {
            all.iter()
                .filter(|s| s.src == from)
                .flat_map(|s| {
                    (0..s.types.len())
                        .filter(|&i| s.stream_ids[i] == 1)
                        .map(|i| (s.types[i], s.flags[i]))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        assert_eq!(
            frames_on_1(listen),
            [(1, 0x04), (0, 0x01)],
            "stream 1 toward the client: faultline's HEADERS and DATA(END_STREAM) only"
        );
        assert!(
            frames_on_1(port).iter().any(|(kind, _)| *kind == 1),
            "nginx answered the request faultline answered (the case under test): {:?}",
            frames_on_1(port)
        );
        let comments = tshark::packet_comments(&capture).join("\n");
        assert!(comments.contains("withheld"), "{comments}");
        assert_eq!(
            comments.matches("re-encoded by faultline").count(),
            2,
            "one note per re-encoded response block: {comments}"
        );
        let decode = crate::h2::helpers::http2_decode(&[port, listen]);
        let mut args: Vec<&str> = decode.iter().map(String::as_str).collect();
        let filter = format!("http2.header.name == \":status\" && tcp.srcport == {listen}");
        args.extend(["-Y", &filter, "-T", "fields", "-e", "http2.header.value"]);
        let statuses: Vec<String> = tshark::run(&capture, &args)
            .stdout
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(statuses.len(), 3, "{statuses:?}");
        assert!(statuses[0].starts_with("503,"), "{statuses:?}");
        assert!(
            statuses[1..]
                .iter()
                .all(|s| s.starts_with("200,nginx/") && s.contains(&format!(",{},", HI.len()))),
            "the re-encoded responses decode to nginx's own headers: {statuses:?}"
        );
        let problems = crate::h2::helpers::http2_problems(&capture, &[port, listen]);
        assert!(problems.is_empty(), "{problems:?}");
        nginx.0.stop();
    })
    .await
    .unwrap_or_else(|_| panic!("did not finish within {LIMIT:?}"));
}

/// A web root under `dir` holding `files`.
fn web_root(dir: &Path, files: &[(&str, &[u8])]) -> std::path::PathBuf {
    let root = dir.join("www");
    std::fs::create_dir_all(&root).expect("create the web root");
    for (name, bytes) in files {
        std::fs::write(root.join(name), bytes).expect("write a file of the web root");
    }
    root
}

/// The size of the large answer body: above the 16,384-byte frame size every client accepts
/// and the 65,535-byte windows python-h2 starts with.
const BIG_ANSWER: usize = 100_000;

/// Regression (user trial, issue 10): faultline's own `respond` answers on HTTP/2 broke strict
/// clients' connections: a large body went out as one DATA frame past the client's maximum frame
/// size and windows (python-h2: FrameTooLargeError; curl: FRAME_SIZE_ERROR), and 204, 304 and
/// HEAD answers carried DATA (curl: PROTOCOL_ERROR). One strict connection now carries them all
/// and nginx's own answer after them, and curl gets each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_clients_and_curl_accept_every_answer_faultline_writes() {
    tokio::time::timeout(LIMIT, async {
        let dir = TempDir::new("h2-own-answers");
        let root = web_root(dir.path(), &[("hi.txt", HI)]);
        let nginx = NginxH2c::start(dir.path(), &root);
        let rules = format!(
            r#"
[[rule]]
name = "big"
match = {{ path = "/big-answer" }}
fault.respond = {{ status = 200, body = "{}" }}
[[rule]]
name = "no content"
match = {{ path = "/none" }}
fault.respond = {{ status = 204 }}
[[rule]]
name = "not modified"
match = {{ path = "/same" }}
fault.respond = {{ status = 304 }}
[[rule]]
name = "head"
match = {{ path = "/head", method = "HEAD" }}
fault.respond = {{ status = 200, body = "{}" }}
"#,
            "b".repeat(BIG_ANSWER),
            "h".repeat(30)
        );
        let capture = dir.path().join("answers.pcapng");
        let mut proxy = Proxy::start(nginx.spec(), "", &rules, Some(capture.clone())).await;
        let listen = proxy.addr.port();
        let lines = strict_client(
            proxy.addr,
            &["/big-answer", "/none", "/same", "HEAD:/head", "/hi.txt"],
            dir.path(),
        )
        .await;
        assert_eq!(
            lines,
            [
                format!("/big-answer status=200 bytes={BIG_ANSWER}"),
                "/none status=204 bytes=0".to_string(),
                "/same status=304 bytes=0".to_string(),
                "HEAD:/head status=200 bytes=0".to_string(),
                format!("/hi.txt status=200 bytes={}", HI.len()),
            ]
        );
        let base = format!("http://{}", proxy.addr);
        let write_out = ["-o", "/dev/null", "-w", "%{http_code} %{size_download}"];
        for (path, expected) in [
            ("/big-answer", format!("200 {BIG_ANSWER}")),
            ("/none", "204 0".to_string()),
            ("/same", "304 0".to_string()),
        ] {
            let mut args: Vec<String> = write_out.iter().map(|a| a.to_string()).collect();
            args.push(format!("{base}{path}"));
            let (code, out) = crate::h2::curl(args).await;
            assert_eq!((code, out.as_str()), (Some(0), expected.as_str()), "{path}");
        }
        let (code, out) = crate::h2::curl(vec!["--head".into(), format!("{base}/head")]).await;
        assert_eq!(code, Some(0), "{out}");
        assert!(out.starts_with("HTTP/2 200"), "{out}");
        assert!(out.contains("content-length: 30"), "{out}");
        proxy.finish().await;
        nginx.0.stop();

        // The strict client's connection: the body in frames of at most 16,384 bytes, its later
        // part after the client's WINDOW_UPDATEs, each commented; tshark finds nothing wrong.
        let comments = tshark::packet_comments(&capture).join("\n");
        assert!(
            comments.contains("wait for the client's WINDOW_UPDATE"),
            "{comments}"
        );
        let port = nginx_port(&capture, listen);
        let problems = crate::h2::helpers::http2_problems(&capture, &[port, listen]);
        assert!(problems.is_empty(), "{problems:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("did not finish within {LIMIT:?}"));
}

/// The port of the upstream in `capture`: the other end of the legs that do not use `listen`.
fn nginx_port(capture: &Path, listen: u16) -> u16 {
    let out = tshark::run(
        capture,
        &[
            "-Y",
            "tcp.flags.syn == 1 && tcp.flags.ack == 0",
            "-T",
            "fields",
            "-e",
            "tcp.dstport",
        ],
    );
    out.stdout
        .lines()
        .filter_map(|l| l.trim().parse::<u16>().ok())
        .find(|&p| p != listen)
        .expect("the upstream leg's SYN")
}

/// Regression (user trial, issue 10): the client's WINDOW_UPDATEs for faultline's own answer
/// bodies reached nginx, which then believed it had 64 KiB more window than python-h2 granted
/// and overran it (FlowControlError) on the next download of the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_for_faultlines_own_answers_never_lets_nginx_overrun_the_client() {
    tokio::time::timeout(LIMIT, async {
        let dir = TempDir::new("h2-own-credit");
        let big: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
        let root = web_root(dir.path(), &[("small.txt", HI), ("big.bin", &big)]);
        let nginx = NginxH2c::start(dir.path(), &root);
        let rules = format!(
            "[[rule]]\nname = \"small answered\"\nmatch = {{ path = \"/small.txt\" }}\nfault.respond = {{ status = 200, body = \"{}\" }}\n",
            "s".repeat(16_384)
        );
        let capture = dir.path().join("credit.pcapng");
        let mut proxy = Proxy::start(nginx.spec(), "", &rules, Some(capture.clone())).await;
        let mut paths = vec!["/small.txt"; 4];
        paths.extend(["/big.bin", "/big.bin"]);
        let lines = strict_client(proxy.addr, &paths, dir.path()).await;
        let mut expected = vec!["/small.txt status=200 bytes=16384".to_string(); 4];
        expected.extend(vec![format!("/big.bin status=200 bytes={}", big.len()); 2]);
        assert_eq!(lines, expected);
        let summary = proxy.finish().await;
        assert_eq!(fired(&summary, "small answered"), 4);
        nginx.0.stop();
        let comments = tshark::packet_comments(&capture).join("\n");
        assert!(
            comments.contains("acknowledge DATA faultline sent itself")
                || comments.contains("acknowledges DATA faultline sent itself"),
            "{comments}"
        );
    })
    .await
    .unwrap_or_else(|_| panic!("did not finish within {LIMIT:?}"));
}

/// The `respond` body of [`own_data_left_unacknowledged_never_lets_nginx_overrun_the_client`]:
/// below half of python-h2's 65,535-byte connection window, so the client does not acknowledge
/// it, and large enough that nginx's next whole window overruns the client by that much.
const UNACKNOWLEDGED: usize = 30_000;

/// Connections of that test: each is one chance for nginx's burst to reach the client in one
/// read (python-h2 acknowledges between reads, which can hide an overrun).
const OVERRUN_RUNS: usize = 8;

/// Regression (issue 10): a `respond` body smaller than half of python-h2's window is never
/// acknowledged by it, so nginx believed the client's connection window larger than it was by
/// that much and sent a whole window on the next download: python-h2 raised FlowControlError
/// and the connection died. faultline now holds nginx's DATA past the client's real window until
/// the client's WINDOW_UPDATE returns the credit (the capture says so), and every download
/// completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_data_left_unacknowledged_never_lets_nginx_overrun_the_client() {
    tokio::time::timeout(LIMIT, async {
        let dir = TempDir::new("h2-own-residue");
        let big: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
        let root = web_root(dir.path(), &[("small.txt", HI), ("big.bin", &big)]);
        let nginx = NginxH2c::start(dir.path(), &root);
        let rules = format!(
            "[[rule]]\nname = \"small answered\"\nmatch = {{ path = \"/small.txt\" }}\nfault.respond = {{ status = 200, body = \"{}\" }}\n",
            "s".repeat(UNACKNOWLEDGED)
        );
        let capture = dir.path().join("residue.pcapng");
        let mut proxy = Proxy::start(nginx.spec(), "", &rules, Some(capture.clone())).await;
        let expected = [
            format!("/small.txt status=200 bytes={UNACKNOWLEDGED}"),
            format!("/big.bin status=200 bytes={}", big.len()),
        ];
        for run in 0..OVERRUN_RUNS {
            let (success, lines, stderr) =
                strict_client_run(proxy.addr, &["/small.txt", "/big.bin"], dir.path()).await;
            assert!(success && lines == expected, "run {run}: {lines:?}\nstderr: {stderr}");
        }
        let summary = proxy.finish().await;
        assert_eq!(fired(&summary, "small answered"), OVERRUN_RUNS as u64);
        nginx.0.stop();
        let comments = tshark::packet_comments(&capture).join("\n");
        assert!(
            comments.contains("held by faultline until the client's WINDOW_UPDATE"),
            "nginx's burst met the client's real window at least once: {comments}"
        );
    })
    .await
    .unwrap_or_else(|_| panic!("did not finish within {LIMIT:?}"));
}

/// A HEADERS frame of `GET path` on `stream` (authority `x`), its `:path` a literal with
/// incremental indexing when `indexed` (it changes the receiver's HPACK table, as most real
/// clients' blocks do), without indexing otherwise.
fn raw_get(stream: u32, path: &str, indexed: bool) -> Vec<u8> {
    let mut block = vec![
        0x82,
        0x86,
        if indexed { 0x44 } else { 0x04 },
        path.len() as u8,
    ];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, 0x01, b'x']);
    crate::h2::bad_peers::frame(1, 0x5, stream, &block)
}

/// The frames in `bytes` (whole ones): (type, flags, stream, payload).
fn raw_frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        if bytes.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
        frames.push((bytes[3], bytes[4], stream, bytes[9..9 + len].to_vec()));
        bytes = &bytes[9 + len..];
    }
    frames
}

/// Regression (user trial, issue 10): after faultline's graceful GOAWAY (last stream 1), streams
/// the client had already opened reached nginx, which ran them, while the GOAWAY told the client
/// they were not processed (a retried call ran twice). They are refused now (RST_STREAM with
/// REFUSED_STREAM), nginx never hears of them, and stream 1 completes. A raw client sends all
/// three requests at once, as a client does that has not read the GOAWAY yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_opened_after_a_graceful_goaway_are_refused_and_never_reach_nginx() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::time::timeout(LIMIT, async {
        let dir = TempDir::new("h2-goaway-refused");
        let root = web_root(dir.path(), &[("index.html", HI)]);
        let nginx = NginxH2c::start(dir.path(), &root);
        let capture = dir.path().join("refused.pcapng");
        let rules = "[[rule]]\nname = \"go away\"\nfault.goaway = { after_streams = 1 }\n";
        let mut proxy = Proxy::start(nginx.spec(), "", rules, Some(capture.clone())).await;
        let mut stream = tokio::net::TcpStream::connect(proxy.addr)
            .await
            .expect("connect to faultline");
        let hello = preface_and_one_get();
        stream
            .write_all(&hello)
            .await
            .expect("send the first request");
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65_536];
        // Reads until `done` holds for the frames received so far.
        async fn read_until(
            stream: &mut tokio::net::TcpStream,
            got: &mut Vec<u8>,
            buf: &mut [u8],
            done: impl Fn(&[(u8, u8, u32, Vec<u8>)]) -> bool,
        ) {
            while !done(&raw_frames(got)) {
                let n = stream.read(buf).await.expect("read from faultline");
                assert!(n > 0, "faultline closed early: {:?}", raw_frames(got));
                got.extend_from_slice(&buf[..n]);
            }
        }
        read_until(&mut stream, &mut got, &mut buf, |frames| {
            frames.iter().any(|f| f.0 == 7)
        })
        .await;
        let frames = raw_frames(&got);
        let goaway = frames.iter().find(|f| f.0 == 7).expect("the GOAWAY");
        assert_eq!(goaway.3[..4], [0, 0, 0, 1], "last stream 1: {goaway:?}");
        // On the wire, a client that sent these before the GOAWAY reached it looks the same.
        let late = [
            raw_get(3, "/refused-indexed", true),
            raw_get(5, "/refused-plain", false),
        ]
        .concat();
        stream
            .write_all(&late)
            .await
            .expect("send the late requests");
        read_until(&mut stream, &mut got, &mut buf, |frames| {
            let refused = |id: u32| {
                frames
                    .iter()
                    .any(|f| f.0 == 3 && f.2 == id && f.3 == [0, 0, 0, 7])
            };
            let answered = frames.iter().any(|f| f.2 == 1 && f.1 & 0x1 != 0);
            refused(3) && refused(5) && answered
        })
        .await;
        drop(stream);
        let summary = proxy.finish().await;
        assert_eq!(fired(&summary, "go away"), 1);
        let log = nginx.0.access_log(dir.path());
        nginx.0.stop();
        assert_eq!(log.lines().count(), 1, "only stream 1 reached nginx: {log}");
        assert!(!log.contains("refused"), "{log}");
        let comments = tshark::packet_comments(&capture).join("\n");
        assert_eq!(
            comments.matches("REFUSED_STREAM").count(),
            2,
            "each refusal is commented: {comments}"
        );
        assert!(comments.contains("never forwarded"), "{comments}");
    })
    .await
    .unwrap_or_else(|_| panic!("did not finish within {LIMIT:?}"));
}

/// Regression (user trial, issue 10): with `graceful = false`, the upstream's GOAWAY sometimes
/// never left: it waited in the idle client->upstream direction while the close rode the other
/// direction and won. Each of many runs must show, in the capture, a GOAWAY to nginx and one to
/// the client before the close, whether the GOAWAY fires on a request (python-h2's GET) or on a
/// timer while the connection is idle (a raw client that waits for the close; the timer fills
/// both directions' outboxes at once, the race the trial met).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goaway_that_closes_always_reaches_nginx_and_the_client() {
    tokio::time::timeout(LIMIT, async {
        let dir = TempDir::new("h2-goaway-close");
        let root = web_root(dir.path(), &[("hi.txt", HI), ("index.html", HI)]);
        let nginx = NginxH2c::start(dir.path(), &root);
        let port = nginx.0.addr.port();
        for run in 0..2 * RUNS {
            let on_timer = run % 2 == 1;
            let trigger = if on_timer {
                "at = \"100ms\""
            } else {
                "after_streams = 1"
            };
            let rules = format!(
                "[[rule]]\nname = \"closes\"\nfault.goaway = {{ {trigger}, graceful = false }}\n"
            );
            let capture = dir.path().join(format!("close-{run}.pcapng"));
            let mut proxy = Proxy::start(nginx.spec(), "", &rules, Some(capture.clone())).await;
            let listen = proxy.addr.port();
            let lines = if on_timer {
                let got = one_raw_get_until_closed(proxy.addr).await;
                vec![format!(
                    "{:?}",
                    raw_frames(&got).iter().map(|f| f.0).collect::<Vec<_>>()
                )]
            } else {
                strict_client_run(proxy.addr, &["/hi.txt"], dir.path())
                    .await
                    .1
            };
            let summary = proxy.finish().await;
            assert_eq!(fired(&summary, "closes"), 1, "run {run}");
            let all = segments(&capture, &[port, listen]);
            let goaways_to = |dst: u16| -> usize {
                all.iter()
                    .filter(|s| s.dst == dst)
                    .map(|s| s.types.iter().filter(|&&t| t == 7).count())
                    .sum()
            };
            assert_eq!(
                goaways_to(port),
                1,
                "run {run}: nginx got its GOAWAY ({lines:?})"
            );
            let client_port = all
                .iter()
                .find(|s| s.dst == listen)
                .map(|s| s.src)
                .expect("the client's leg");
            assert_eq!(
                goaways_to(client_port),
                1,
                "run {run}: the client got its GOAWAY ({lines:?})"
            );
        }
        nginx.0.stop();
    })
    .await
    .unwrap_or_else(|_| panic!("did not finish within {LIMIT:?}"));
}

/// The same race without a capture (whose writes let the other direction catch up): a raw
/// upstream records every byte faultline sent it, and each run must hold a GOAWAY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goaway_that_closes_always_reaches_a_raw_upstream_without_a_capture() {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::time::timeout(LIMIT, async {
        let received: Arc<Mutex<Vec<Vec<u8>>>> = Arc::new(Mutex::new(Vec::new()));
        let recorded = received.clone();
        let upstream = crate::support::upstream::serve(move |mut stream| {
            let recorded = recorded.clone();
            async move {
                let _ = stream.write_all(&crate::h2::bad_peers::settings()).await;
                let mut got = Vec::new();
                let _ = stream.read_to_end(&mut got).await;
                recorded.lock().expect("lock").push(got);
            }
        })
        .await;
        for run in 0..2 * RUNS {
            let trigger = if run % 2 == 1 {
                "at = \"50ms\""
            } else {
                "after_streams = 1"
            };
            let rules = format!(
                "[[rule]]\nname = \"closes\"\nfault.goaway = {{ {trigger}, graceful = false }}\n"
            );
            let mut proxy = Proxy::start(upstream.spec(), "", &rules, None).await;
            let got = one_raw_get_until_closed(proxy.addr).await;
            let summary = proxy.finish().await;
            assert_eq!(fired(&summary, "closes"), 1, "run {run}");
            let to_client: Vec<u8> = raw_frames(&got).iter().map(|f| f.0).collect();
            assert!(to_client.contains(&7), "run {run}: {to_client:?}");
            let upstream_got = received
                .lock()
                .expect("lock")
                .pop()
                .expect("the upstream recorded its connection");
            let frames = raw_frames(&upstream_got[crate::h2::bad_peers::PREFACE.len()..]);
            assert!(
                frames.iter().any(|f| f.0 == 7),
                "run {run} ({trigger}): the upstream got no GOAWAY: {:?}",
                frames.iter().map(|f| f.0).collect::<Vec<_>>()
            );
        }
    })
    .await
    .unwrap_or_else(|_| panic!("did not finish within {LIMIT:?}"));
}

/// A raw HTTP/2 client: the preface, SETTINGS and one GET on stream 1, then everything
/// faultline sends until it closes (bounded by the calling test's limit).
async fn one_raw_get_until_closed(proxy: SocketAddr) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(proxy)
        .await
        .expect("connect to faultline");
    let hello = preface_and_one_get();
    stream.write_all(&hello).await.expect("send a request");
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got).await;
    got
}

/// A raw client's first bytes: the preface, its SETTINGS and a GET on stream 1.
fn preface_and_one_get() -> Vec<u8> {
    [
        crate::h2::bad_peers::PREFACE.to_vec(),
        crate::h2::bad_peers::settings(),
        crate::h2::bad_peers::get_request(1),
    ]
    .concat()
}
