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
    let mut command = Command::new(python());
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/h2c/strict_client.py"))
        .arg(proxy.ip().to_string())
        .arg(proxy.port().to_string())
        .args(paths);
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
    assert!(
        finished.status.success(),
        "the strict client failed: {lines:?}\nstderr: {}",
        finished.stderr
    );
    lines
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
