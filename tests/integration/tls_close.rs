//! Intercepted TLS ends the way it came, with every byte: a TLS upstream that writes megabytes
//! and closes at once (with close_notify, or with only a TCP FIN as Python's `ssl` servers such
//! as moto do), read by a rate-limited curl through `faultline run` (reverse mode and CONNECT),
//! and a client that uploads megabytes to a slow upstream and half-closes the same two ways.
//! Each transfer must arrive byte for byte and end cleanly (close_notify + FIN, never a RST),
//! and the capture must say so: FINs on both legs, no RST, exactly the bytes that crossed.
//!
//! A black-box trial found faultline resetting both legs of such connections while megabytes
//! were still queued for the client (an 11 MB S3 object arrived as 9.8 MB), with a capture that
//! claimed every byte was delivered and the upstream had reset.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use faultline::fault::tls_alert::AlertName;
use faultline::proxy::leg_stream::LegStream;
use faultline::proxy::record_tap::RecordTap;
use faultline::proxy::socket::{abort, wait_delivered};
use faultline::proxy::tls_alert::fail_leg;
use faultline::tls::provider::{provider, VERSIONS};
use faultline::tls::Replay;

use crate::support::daemon::{Daemon, FAULTLINE};
use crate::support::temp_dir::TempDir;
use crate::support::{random_bytes, tshark};
use crate::tls::{curl, UpstreamPki, NAME};
use crate::tls_proxy::faultline_ca;

/// Each body: large enough that a slow reader still has megabytes in flight (socket buffers on
/// both sides of faultline) when its sender closes.
const BODY: usize = 4 * 1024 * 1024;
/// The whole test, servers and clients included.
const LIMIT: Duration = Duration::from_secs(90);

/// How the upstream (or the uploading client) ends its side after its last byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// close_notify, then FIN.
    Notify,
    /// A TCP FIN and no close_notify (Python's `ssl` sockets closed without `unwrap`).
    Fin,
    /// No close_notify, and the socket closed at once without reading on (moto).
    Drop,
    /// Half of the body, then the first bytes of a record and a FIN: the stream is cut inside
    /// a record (a peer that died mid-write, a middlebox that cut it).
    Torn,
    /// Every byte acknowledged by faultline's kernel, then a RST (SO_LINGER 0).
    Reset,
}

impl Close {
    const ALL: [Close; 3] = [Close::Notify, Close::Fin, Close::Drop];

    fn path(self) -> &'static str {
        match self {
            Close::Notify => "/notify",
            Close::Fin => "/fin",
            Close::Drop => "/drop",
            Close::Torn => "/torn",
            Close::Reset => "/reset",
        }
    }

    fn of_path(head: &str) -> Close {
        if head.contains("/notify") {
            Close::Notify
        } else if head.contains("/drop") {
            Close::Drop
        } else if head.contains("/torn") {
            Close::Torn
        } else if head.contains("/reset") {
            Close::Reset
        } else {
            Close::Fin
        }
    }
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

fn download_head() -> String {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\nConnection: close\r\n\r\n")
}

/// How an upload reached the upstream: the md5 of the body, and how the stream ended after it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Upload {
    md5: String,
    end: String,
}

/// The TLS upstream: a GET is answered with [`BODY`] bytes and the close its path names; a PUT's
/// body is read slowly (so faultline has bytes queued for it when the client half-closes), then
/// read on to its end, and answered with the body's md5. What each upload looked like is sent
/// on `uploads`.
async fn upstream(
    identity: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    body: Arc<Vec<u8>>,
    uploads: tokio::sync::mpsc::UnboundedSender<Upload>,
) -> (SocketAddr, JoinHandle<()>) {
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.0, identity.1)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, body, uploads) = (acceptor.clone(), body.clone(), uploads.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                let mut received = head.split_off(end);
                let head = String::from_utf8_lossy(&head).into_owned();
                if head.starts_with("PUT") {
                    // Slowly: ~16 MB/s, so the upload's tail waits in faultline's buffers.
                    while received.len() < BODY {
                        tokio::time::sleep(Duration::from_millis(4)).await;
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => received.extend_from_slice(&buf[..n]),
                        }
                    }
                    let end = match tls.read(&mut buf).await {
                        Ok(0) => "close_notify".to_string(),
                        Ok(n) => format!("{n} more bytes"),
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            "FIN without close_notify".to_string()
                        }
                        Err(e) => format!("error: {e}"),
                    };
                    let md5 = md5_hex(&received);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{md5}",
                        md5.len()
                    );
                    let _ = uploads.send(Upload { md5, end });
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                    return;
                }
                let close = Close::of_path(&head);
                let sent = if close == Close::Torn { BODY / 2 } else { BODY };
                let _ = tls.write_all(download_head().as_bytes()).await;
                let _ = tls.write_all(&body[..sent]).await;
                let _ = tls.flush().await;
                match close {
                    Close::Notify => {
                        let _ = tls.shutdown().await;
                        let _ = tls.read(&mut buf).await;
                    }
                    Close::Fin => {
                        let (mut tcp, _) = tls.into_inner();
                        let _ = tcp.shutdown().await;
                        while let Ok(1..) = tcp.read(&mut buf).await {}
                    }
                    Close::Drop => drop(tls.into_inner()),
                    Close::Torn => {
                        let (mut tcp, _) = tls.into_inner();
                        // An application-data record of 16 KiB, cut after 5 + 100 bytes.
                        let mut torn = vec![0x17, 0x03, 0x03, 0x40, 0x00];
                        torn.extend_from_slice(&[0x5a; 100]);
                        let _ = tcp.write_all(&torn).await;
                        let _ = tcp.shutdown().await;
                        while let Ok(1..) = tcp.read(&mut buf).await {}
                    }
                    Close::Reset => {
                        let (tcp, _) = tls.into_inner();
                        wait_delivered(&tcp, Duration::from_secs(20)).await;
                        abort(tcp);
                    }
                }
            });
        }
    });
    (addr, task)
}

/// `faultline run` of `scenario` (written to `dir`), capturing to `capture`.
fn run_faultline(dir: &Path, label: &str, scenario: &str, capture: &Path) -> (Daemon, SocketAddr) {
    let file = dir.join(format!("{label}.toml"));
    std::fs::write(&file, scenario).unwrap();
    let mut daemon = Daemon::start(
        Command::new(FAULTLINE)
            .arg("run")
            .arg(&file)
            .args(["--listen", "127.0.0.1:0", "--capture"])
            .arg(capture)
            .env("RUST_LOG", "info"),
        dir,
        label,
    );
    let addr = daemon.faultline_address();
    (daemon, addr)
}

/// One TCP flow of a capture: bytes and FIN/RST flags by sending port.
#[derive(Debug, Default)]
struct Flow {
    bytes: BTreeMap<u16, u64>,
    fins: BTreeMap<u16, u32>,
    rsts: u32,
}

/// Every TCP flow of `capture`, by tshark's stream number.
fn flows(capture: &Path) -> BTreeMap<String, Flow> {
    let mut flows: BTreeMap<String, Flow> = BTreeMap::new();
    for row in tshark::fields(
        capture,
        None,
        &[
            "tcp.stream",
            "tcp.srcport",
            "tcp.len",
            "tcp.flags.fin",
            "tcp.flags.reset",
        ],
    ) {
        let [stream, port, len, fin, rst] = &row[..] else {
            panic!("tshark row {row:?}");
        };
        let flow = flows.entry(stream.clone()).or_default();
        let port: u16 = port.parse().unwrap();
        *flow.bytes.entry(port).or_default() += len.parse::<u64>().unwrap_or(0);
        let set = |flag: &str| flag == "1" || flag == "True";
        if set(fin) {
            *flow.fins.entry(port).or_default() += 1;
        }
        if set(rst) {
            flow.rsts += 1;
        }
    }
    flows
}

/// The capture of a run that only relayed: every flow ended with one FIN from each side and no
/// RST, and the side `sender` of each flow (faultline's listening port on client legs, the
/// upstream's port on upstream legs) sent `sent(client_leg)` bytes, when given.
fn assert_clean_capture(
    capture: &Path,
    proxy_port: u16,
    upstream_port: u16,
    sent: impl Fn(bool) -> Option<u64>,
) {
    let flows = flows(capture);
    assert!(!flows.is_empty(), "no flows in {}", capture.display());
    for (stream, flow) in &flows {
        assert_eq!(flow.rsts, 0, "flow {stream} has a RST: {flow:?}");
        assert_eq!(
            flow.fins.len(),
            2,
            "flow {stream}: a FIN from each side: {flow:?}"
        );
        assert!(
            flow.fins.values().all(|&n| n == 1),
            "flow {stream}: {flow:?}"
        );
        let client_leg = flow.bytes.contains_key(&proxy_port);
        let sender = if client_leg {
            proxy_port
        } else {
            upstream_port
        };
        if let Some(wanted) = sent(client_leg) {
            assert_eq!(
                flow.bytes.get(&sender).copied().unwrap_or(0),
                wanted,
                "flow {stream} ({} leg): bytes sent by port {sender}: {flow:?}",
                if client_leg { "client" } else { "upstream" }
            );
        }
    }
}

/// Downloads [`BODY`] through faultline with a curl reading at 4 MB/s, once for each way the
/// upstream may close; `curl_args` gives curl's flags and URL for a path.
async fn download_each_close(
    dir: &Path,
    label: &str,
    body: &[u8],
    curl_args: impl Fn(&str) -> Vec<String>,
) {
    for close in Close::ALL {
        let file = dir.join(format!("{label}{}.bin", close.path().replace('/', "-")));
        let mut args = curl_args(close.path());
        args.extend([
            "--http1.1".into(),
            "--limit-rate".into(),
            "4M".into(),
            "--output".into(),
            file.display().to_string(),
        ]);
        let out = curl(args, None).await;
        let got = std::fs::read(&file).unwrap_or_default();
        assert_eq!(
            (out.code(), got.len(), md5_hex(&got)),
            (Some(0), body.len(), md5_hex(body)),
            "{label}, upstream close {close:?}: {}",
            out.output()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_downloads_whose_upstream_closes_at_once_arrive_whole_and_end_with_fins() {
    tokio::time::timeout(LIMIT, async {
        let tmp = TempDir::new("tls-close-download");
        let (ca_dir, ca_pem) = faultline_ca(tmp.path());
        let pki = UpstreamPki::new(tmp.path());
        let body = Arc::new(random_bytes(BODY, 11));
        let (uploads, _) = tokio::sync::mpsc::unbounded_channel();
        let (up, _task) = upstream(
            pki.server(&[NAME, "localhost", "127.0.0.1"], None),
            body.clone(),
            uploads,
        )
        .await;
        let tls = format!(
            "[proxy.tls]\nintercept = true\nupstream_ca = {:?}\nca_dir = {:?}\n",
            pki.pem_path.display().to_string(),
            ca_dir.display().to_string()
        );
        let ca = ca_pem.display().to_string();

        // Reverse mode.
        let capture = tmp.path().join("reverse.pcapng");
        let scenario = format!(
            "name = \"close\"\n[proxy]\nupstream = \"127.0.0.1:{}\"\n{tls}",
            up.port()
        );
        let (daemon, proxy) = run_faultline(tmp.path(), "reverse", &scenario, &capture);
        download_each_close(tmp.path(), "reverse", &body, |path| {
            vec![
                "--cacert".into(),
                ca.clone(),
                "--resolve".into(),
                format!("{NAME}:{}:127.0.0.1", proxy.port()),
                format!("https://{NAME}:{}{path}", proxy.port()),
            ]
        })
        .await;
        // A client that reads exactly the response and closes (Python's) leaves nothing unread,
        // so it closes with a FIN: faultline carries a bare FIN across as a bare FIN.
        for close in [Close::Fin, Close::Drop] {
            let got = read_exactly_then_close(proxy, &ca_pem, close.path()).await;
            assert_eq!(md5_hex(&got), md5_hex(&body), "{close:?}");
        }
        let done = daemon.stop();
        assert_eq!(done.code(), Some(0), "{}", done.output());
        let response = (download_head().len() + BODY) as u64;
        assert_clean_capture(&capture, proxy.port(), up.port(), |_| Some(response));
        assert_eq!(flows(&capture).len(), 2 * (Close::ALL.len() + 2));

        // Forward mode: curl's CONNECT, intercepted.
        let capture = tmp.path().join("forward.pcapng");
        let scenario = format!("name = \"close\"\n[proxy]\nmode = \"forward\"\n{tls}");
        let (daemon, proxy) = run_faultline(tmp.path(), "forward", &scenario, &capture);
        download_each_close(tmp.path(), "forward", &body, |path| {
            vec![
                "--cacert".into(),
                ca.clone(),
                "--proxy".into(),
                format!("http://127.0.0.1:{}", proxy.port()),
                format!("https://localhost:{}{path}", up.port()),
            ]
        })
        .await;
        let done = daemon.stop();
        assert_eq!(done.code(), Some(0), "{}", done.output());
        let established = "HTTP/1.1 200 Connection Established\r\n\r\n".len() as u64;
        assert_clean_capture(&capture, proxy.port(), up.port(), |client_leg| {
            Some(response + if client_leg { established } else { 0 })
        });
        assert_eq!(flows(&capture).len(), 2 * Close::ALL.len());
    })
    .await
    .expect("bounded");
}

/// A TLS client of `proxy` (for `NAME`) trusting `ca_pem`.
async fn connect(proxy: SocketAddr, ca_pem: &Path) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(proxy).await.unwrap();
    connector
        .connect(ServerName::try_from(NAME).unwrap(), tcp)
        .await
        .expect("the client's handshake with faultline")
}

/// Downloads `path` through `proxy` the way Python's `http.client` does: reads exactly the
/// response's bytes, then closes the socket. Anything left unread (a close_notify the upstream
/// never sent) would make the client's kernel answer the close with a RST.
async fn read_exactly_then_close(proxy: SocketAddr, ca_pem: &Path, path: &str) -> Vec<u8> {
    let mut tls = connect(proxy, ca_pem).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {NAME}\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = vec![0u8; download_head().len() + BODY];
    tls.read_exact(&mut response).await.unwrap();
    // Closed once the proxy's end arrived (its FIN, or a close_notify before it), unread.
    tls.get_ref().0.readable().await.unwrap();
    drop(tls);
    response.split_off(download_head().len())
}

/// A client trusting `ca_pem` that uploads `body` with a PUT to `proxy` (TLS for `NAME`), ends
/// its side as `close` says, and returns the response.
async fn upload(proxy: SocketAddr, ca_pem: &Path, body: &[u8], close: Close) -> String {
    let mut tls = connect(proxy, ca_pem).await;
    let head = format!("PUT /up HTTP/1.1\r\nHost: {NAME}\r\nContent-Length: {BODY}\r\n\r\n");
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    tls.flush().await.unwrap();
    match close {
        Close::Notify => tls.shutdown().await.unwrap(),
        // The client reads the answer after its FIN: the socket is only half-closed.
        Close::Fin | Close::Drop | Close::Torn | Close::Reset => {
            tls.get_mut().0.shutdown().await.unwrap()
        }
    }
    let mut answer = Vec::new();
    let ended = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        ended.is_ok(),
        "{close:?}: the answer ended with {ended:?}: {answer}"
    );
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_uploads_whose_client_half_closes_reach_a_slow_upstream_whole_and_end_with_fins() {
    tokio::time::timeout(LIMIT, async {
        let tmp = TempDir::new("tls-close-upload");
        let (ca_dir, ca_pem) = faultline_ca(tmp.path());
        let pki = UpstreamPki::new(tmp.path());
        let body = random_bytes(BODY, 12);
        let (uploads, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let (up, _task) = upstream(
            pki.server(&[NAME, "127.0.0.1"], None),
            Arc::new(Vec::new()),
            uploads,
        )
        .await;
        let capture = tmp.path().join("upload.pcapng");
        let scenario = format!(
            "name = \"close\"\n[proxy]\nupstream = \"127.0.0.1:{}\"\n[proxy.tls]\nintercept = true\nupstream_ca = {:?}\nca_dir = {:?}\n",
            up.port(),
            pki.pem_path.display().to_string(),
            ca_dir.display().to_string()
        );
        let (daemon, proxy) = run_faultline(tmp.path(), "upload", &scenario, &capture);
        let md5 = md5_hex(&body);
        for close in [Close::Notify, Close::Fin] {
            let answer = upload(proxy, &ca_pem, &body, close).await;
            assert!(answer.ends_with(&md5), "{close:?}: {answer}");
            let reached = seen.recv().await.expect("the upstream saw the upload");
            let end = match close {
                Close::Notify => "close_notify",
                _ => "FIN without close_notify",
            };
            assert_eq!(
                reached,
                Upload {
                    md5: md5.clone(),
                    end: end.into()
                },
                "{close:?}: the upstream got every byte, then the client's end as the client sent it"
            );
        }
        let done = daemon.stop();
        assert_eq!(done.code(), Some(0), "{}", done.output());
        let head = format!("PUT /up HTTP/1.1\r\nHost: {NAME}\r\nContent-Length: {BODY}\r\n\r\n");
        let request = (head.len() + BODY) as u64;
        let flows = flows(&capture);
        assert_eq!(flows.len(), 4, "{flows:?}");
        for (stream, flow) in &flows {
            assert_eq!(flow.rsts, 0, "flow {stream} has a RST: {flow:?}");
            assert_eq!(flow.fins.len(), 2, "flow {stream}: {flow:?}");
            // The request's sender: the client's port on client legs, faultline's on upstream legs.
            let sent_by_requester = flow
                .bytes
                .iter()
                .filter(|(&port, _)| port != proxy.port() && port != up.port())
                .map(|(_, &n)| n)
                .sum::<u64>();
            assert_eq!(sent_by_requester, request, "flow {stream}: {flow:?}");
        }
    })
    .await
    .expect("bounded");
}

/// curl at 4 MB/s through `faultline run` (reverse mode) for `close`'s path; returns curl's
/// outcome, what it saved, the body, the capture, and faultline's and the upstream's ports.
async fn download_once(
    tmp: &TempDir,
    close: Close,
    seed: u64,
) -> (
    crate::support::process::Finished,
    Vec<u8>,
    Arc<Vec<u8>>,
    std::path::PathBuf,
    u16,
    u16,
) {
    let (ca_dir, ca_pem) = faultline_ca(tmp.path());
    let pki = UpstreamPki::new(tmp.path());
    let body = Arc::new(random_bytes(BODY, seed));
    let (uploads, _) = tokio::sync::mpsc::unbounded_channel();
    let (up, _task) = upstream(
        pki.server(&[NAME, "127.0.0.1"], None),
        body.clone(),
        uploads,
    )
    .await;
    let capture = tmp.path().join("once.pcapng");
    let scenario = format!(
        "name = \"once\"\n[proxy]\nupstream = \"127.0.0.1:{}\"\n[proxy.tls]\nintercept = true\nupstream_ca = {:?}\nca_dir = {:?}\n",
        up.port(),
        pki.pem_path.display().to_string(),
        ca_dir.display().to_string()
    );
    let (daemon, proxy) = run_faultline(tmp.path(), "once", &scenario, &capture);
    let file = tmp.path().join("once.bin");
    let out = curl(
        vec![
            "--cacert".into(),
            ca_pem.display().to_string(),
            "--resolve".into(),
            format!("{NAME}:{}:127.0.0.1", proxy.port()),
            "--http1.1".into(),
            "--limit-rate".into(),
            "4M".into(),
            "--output".into(),
            file.display().to_string(),
            format!("https://{NAME}:{}{}", proxy.port(), close.path()),
        ],
        None,
    )
    .await;
    let got = std::fs::read(&file).unwrap_or_default();
    let done = daemon.stop();
    assert_eq!(done.code(), Some(0), "{}", done.output());
    (out, got, body, capture, proxy.port(), up.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_a_stream_cut_inside_a_record_reaches_the_client_as_a_cut_after_every_byte() {
    tokio::time::timeout(LIMIT, async {
        let tmp = TempDir::new("tls-close-torn");
        let (out, got, body, capture, proxy, up) = download_once(&tmp, Close::Torn, 13).await;
        // Every byte the upstream sent in whole records, then the cut (no reset: curl's
        // "connection reset" is exit 56 with "Connection reset by peer").
        assert_ne!(out.code(), Some(0), "{}", out.output());
        assert!(!out.stderr.contains("reset"), "{}", out.output());
        assert_eq!(
            (got.len(), md5_hex(&got)),
            (BODY / 2, md5_hex(&body[..BODY / 2])),
            "{}",
            out.output()
        );
        let response = (download_head().len() + BODY / 2) as u64;
        // The upstream leg carried the torn record too (the capture holds plaintext: not it).
        assert_clean_capture(&capture, proxy, up, |_| Some(response));
        let comments = tshark::packet_comments(&capture);
        assert!(
            comments.iter().any(|c| c.contains("ended inside a record")),
            "the client leg's FIN says why: {comments:?}"
        );
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_an_upstream_reset_after_its_last_byte_reaches_a_slow_client_after_every_byte() {
    tokio::time::timeout(LIMIT, async {
        let tmp = TempDir::new("tls-close-reset");
        let (out, got, body, capture, _, _) = download_once(&tmp, Close::Reset, 14).await;
        // The reset is mirrored, after what the upstream sent before it reached the client
        // (a reset of faultline's socket discards what its send queue still holds).
        assert_eq!(
            (got.len(), md5_hex(&got)),
            (BODY, md5_hex(&body)),
            "{}",
            out.output()
        );
        let flows = flows(&capture);
        assert_eq!(flows.len(), 2, "{flows:?}");
        assert!(flows.values().all(|f| f.rsts == 1), "{flows:?}");
        let comments = tshark::packet_comments(&capture);
        assert!(
            !comments.iter().any(|c| c.contains("never reached")),
            "nothing was discarded: {comments:?}"
        );
    })
    .await
    .expect("bounded");
}

/// A TLS upstream that answers one request (keep-alive), and answers the client's FIN without
/// close_notify with a fatal `decode_error` alert, as moto does after an upload.
async fn alerting_upstream(
    identity: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
) -> (SocketAddr, JoinHandle<()>) {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.0, identity.1)
        .unwrap();
    config.enable_secret_extraction = true;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let stream = Replay::new(bytes::Bytes::new(), RecordTap::new(tcp, None));
        let Ok(mut tls) = acceptor.accept(stream).await else {
            return;
        };
        let mut head = Vec::new();
        let mut buf = vec![0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tls.write_all(ALERT_ANSWER).await;
        let _ = tls.flush().await;
        match tls.read(&mut buf).await {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            other => panic!("the client's bare FIN, carried across: {other:?}"),
        }
        let (mut tcp, sent) =
            fail_leg(LegStream::ClientTls(Box::new(tls)), AlertName::DecodeError).await;
        sent.expect("the alert is sent");
        let _ = tcp.shutdown().await;
        while let Ok(1..) = tcp.read(&mut buf).await {}
    });
    (addr, task)
}

const ALERT_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_an_upstream_alert_is_named_in_the_capture_not_recorded_as_its_reset() {
    tokio::time::timeout(LIMIT, async {
        let tmp = TempDir::new("tls-close-alert");
        let (ca_dir, ca_pem) = faultline_ca(tmp.path());
        let pki = UpstreamPki::new(tmp.path());
        let (up, task) = alerting_upstream(pki.server(&[NAME, "127.0.0.1"], None)).await;
        let capture = tmp.path().join("alert.pcapng");
        let scenario = format!(
            "name = \"alert\"\n[proxy]\nupstream = \"127.0.0.1:{}\"\n[proxy.tls]\nintercept = true\nupstream_ca = {:?}\nca_dir = {:?}\n",
            up.port(),
            pki.pem_path.display().to_string(),
            ca_dir.display().to_string()
        );
        let (daemon, proxy) = run_faultline(tmp.path(), "alert", &scenario, &capture);
        let mut tls = connect(proxy, &ca_pem).await;
        let request = format!("GET / HTTP/1.1\r\nHost: {NAME}\r\n\r\n");
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; ALERT_ANSWER.len()];
        tls.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, ALERT_ANSWER);
        tls.get_mut().0.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let ended = tls.read_to_end(&mut rest).await;
        assert!(ended.is_err(), "the upstream's alert fails the client too: {ended:?}");
        task.await.expect("the upstream saw the bare FIN and sent its alert");
        let done = daemon.stop();
        assert_eq!(done.code(), Some(0), "{}", done.output());
        let resets = tshark::fields(&capture, Some("tcp.flags.reset == 1"), &["tcp.srcport"]);
        assert!(
            !resets.iter().flatten().any(|port| *port == up.port().to_string()),
            "the upstream sent an alert, not a RST: {resets:?}"
        );
        let comments = tshark::packet_comments(&capture);
        assert!(
            comments
                .iter()
                .any(|c| c.contains("the upstream peer sent a fatal TLS alert (DecodeError)")),
            "{comments:?}"
        );
    })
    .await
    .expect("bounded");
}
