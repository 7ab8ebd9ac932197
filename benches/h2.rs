//! HTTP/2 benchmark: what following HTTP/2 streams costs. A gRPC-style server stream of 64 KiB
//! messages and a small unary call, each way: direct; through faultline with no rule (a plain
//! relay, splice(2)); with a byte rule that never fires (the pump relays every chunk, no HTTP/2
//! session); and with an armed HTTP/2 rule that never fires (the session reads every frame,
//! decodes HPACK, matches the stream and counts its DATA through a fault chain).
//!
//! - **stream**: one call on one connection; the server answers `BENCH_H2_MIB` MiB (default 256)
//!   as gRPC messages of 64 KiB (5-byte prefix + ByteStream `ReadResponse`), in DATA frames of
//!   16 KiB (the default SETTINGS_MAX_FRAME_SIZE, as grpc-go and grpc-core send); the client's
//!   windows are 16 MiB (what BDP probing reaches on loopback). MB/s = payload / time to the
//!   trailers.
//! - **unary**: `BENCH_H2_CALLS` (default 5000) calls in a row on one connection, a 32-byte
//!   request message and a 32-byte response message with trailers; p50 and p99 per call.
//!
//! Client and server are hyperium's h2 on one tokio runtime (2 worker threads); faultline is the
//! release binary (`FAULTLINE_BIN`, set by benches/run.sh), a separate process as users run it.
//! haproxy in TCP mode (when on `PATH`; benches/run.sh installs it) is a fourth path: what any
//! relay hop costs this traffic, to tell the hop from faultline's HTTP/2 session.
//! The paths alternate within each of `BENCH_ROUNDS` rounds (default 5); medians are printed as
//! a table and as one `RESULT` line per path.
//!
//! Run: `make bench` (or `FAULTLINE_BIN=target/release/faultline cargo bench --bench h2`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::SendStream;
use http::{HeaderMap, HeaderValue, Request, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Payload bytes per gRPC message of the stream.
const MESSAGE: usize = 64 * 1024;
/// The client's stream and connection windows.
const WINDOW: u32 = 16 * 1024 * 1024;
/// Any single measurement taking longer than this fails the run instead of hanging it.
const LIMIT: Duration = Duration::from_secs(120);
const STREAM_PATH: &str = "/google.bytestream.ByteStream/Read";
const UNARY_PATH: &str = "/bench.Bench/Unary";
/// Armed on every Read stream, never reached: the session follows the stream, the fault waits.
const ARMED_RULE: &str = r#"
[[rule]]
name = "armed, never fires"
match = { path = "/google.bytestream.ByteStream/Read", direction = "upstream->client" }
fault.rst_stream = { after = "1000GiB" }

[[rule]]
name = "unary calls armed, never fire"
match = { path = "/bench.Bench/*", attempt = 1000000 }
fault.grpc_status = { code = 14 }
"#;
/// A byte rule that never fires, with the protocol read as bytes: the pump relays every chunk
/// (no splice) but no HTTP/2 session runs. Separates the pump's cost from the session's.
const PUMP_ONLY: &str = r#"
protocol = "tcp"

[[rule]]
name = "armed, never fires"
match = { direction = "upstream->client" }
fault.truncate = { after = "1000GiB" }
"#;

fn main() -> Result<(), Error> {
    let mib = env_number("BENCH_H2_MIB", 256);
    let calls = env_number("BENCH_H2_CALLS", 5000);
    let rounds = env_number("BENCH_ROUNDS", 5);
    let Some(bin) = std::env::var_os("FAULTLINE_BIN").map(PathBuf::from) else {
        println!("SKIP h2: FAULTLINE_BIN is not set (benches/run.sh builds faultline and sets it)");
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench(&bin, mib, calls, rounds))
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How a path reaches the server.
#[derive(Clone, Copy)]
enum Via {
    Direct,
    Faultline(&'static str),
    Haproxy,
}

/// One measured path.
struct Path3 {
    name: &'static str,
    via: Via,
    mbps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
}

async fn bench(bin: &Path, mib: usize, calls: usize, rounds: usize) -> Result<(), Error> {
    let server = start_server(mib).await?;
    let tmp = std::env::temp_dir().join(format!("faultline-bench-h2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let mut paths = vec![
        Path3::new("direct", Via::Direct),
        Path3::new("faultline, no rule", Via::Faultline("")),
        Path3::new("faultline, TCP rule (pump)", Via::Faultline(PUMP_ONLY)),
        Path3::new("faultline, armed h2 rule", Via::Faultline(ARMED_RULE)),
    ];
    if Command::new("haproxy").arg("-v").output().is_ok() {
        paths.push(Path3::new("haproxy (TCP mode)", Via::Haproxy));
    } else {
        println!("SKIP haproxy: not on PATH (benches/run.sh installs it)");
    }
    println!(
        "h2 bench: stream of {mib} MiB in {MESSAGE} B messages, {calls} unary calls, {rounds} rounds"
    );
    for round in 1..=rounds {
        for path in paths.iter_mut() {
            let relay = match path.via {
                Via::Faultline(rules) => Some(Relay::faultline(bin, &tmp, rules, server)?),
                Via::Haproxy => Some(Relay::haproxy(&tmp, server)?),
                Via::Direct => None,
            };
            let target = relay.as_ref().map_or(server, |r| r.addr);
            let mbps = timeout(LIMIT, stream(target, mib)).await??;
            let (p50, p99) = timeout(LIMIT, unary(target, calls)).await??;
            if let Some(relay) = relay {
                relay.stop();
            }
            println!(
                "  round {round} {:<26} {mbps:>8.1} MB/s  unary p50 {p50:>6.1} µs  p99 {p99:>6.1} µs",
                path.name
            );
            path.mbps.push(mbps);
            path.p50.push(p50);
            path.p99.push(p99);
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let direct_mbps = median(&paths[0].mbps);
    let direct_p50 = median(&paths[0].p50);
    println!();
    println!(
        "| path | MB/s (median) | ratio to direct | unary p50 µs | unary p99 µs | added p50 µs |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for path in &paths {
        let mbps = median(&path.mbps);
        let p50 = median(&path.p50);
        println!(
            "| {} | {mbps:.1} | {:.3} | {p50:.1} | {:.1} | {:.1} |",
            path.name,
            mbps / direct_mbps,
            median(&path.p99),
            p50 - direct_p50
        );
    }
    for path in &paths {
        println!(
            "RESULT h2 path=\"{}\" mbps={:.1} ratio={:.3} unary_p50_us={:.1} added_p50_us={:.1}",
            path.name,
            median(&path.mbps),
            median(&path.mbps) / direct_mbps,
            median(&path.p50),
            median(&path.p50) - direct_p50
        );
    }
    Ok(())
}

impl Path3 {
    fn new(name: &'static str, via: Via) -> Path3 {
        Path3 {
            name,
            via,
            mbps: Vec::new(),
            p50: Vec::new(),
            p99: Vec::new(),
        }
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

// ------------------------------------------------------------------------------- server

/// An h2c server on 127.0.0.1:0: a Read streams `mib` MiB of 64 KiB messages, anything else is a
/// small unary answer.
async fn start_server(mib: usize) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let message = Bytes::from(grpc_message(&read_response(MESSAGE)));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let message = message.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((request, respond))) = conn.accept().await {
                    let message = message.clone();
                    tokio::spawn(async move {
                        let _ = answer(request, respond, message, mib).await;
                    });
                }
            });
        }
    });
    Ok(addr)
}

async fn answer(
    request: Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    message: Bytes,
    mib: usize,
) -> Result<(), Error> {
    let is_stream = request.uri().path() == STREAM_PATH;
    let mut body = request.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let mut head = Response::new(());
    head.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    let mut send = respond.send_response(head, false)?;
    if is_stream {
        for _ in 0..(mib * 1024 * 1024 / MESSAGE) {
            send_all(&mut send, message.clone()).await?;
        }
    } else {
        send_all(&mut send, Bytes::from(grpc_message(&[7u8; 32]))).await?;
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    send.send_trailers(trailers)?;
    Ok(())
}

/// Sends `data` as the peer's windows allow (never buffering more than it granted).
async fn send_all(send: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), Error> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = std::future::poll_fn(|cx| send.poll_capacity(cx))
            .await
            .ok_or("the stream closed")??;
        let piece = data.split_to(granted.min(data.len()));
        send.send_data(piece, false)?;
    }
    Ok(())
}

fn grpc_message(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(0);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// `ReadResponse { data = 10 }` with `len` bytes of data.
fn read_response(len: usize) -> Vec<u8> {
    let mut out = vec![0x52]; // field 10, wire type 2
    let mut n = len;
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend(std::iter::repeat_n(0xa5u8, len));
    out
}

// ------------------------------------------------------------------------------- client

async fn connect(target: SocketAddr) -> Result<h2::client::SendRequest<Bytes>, Error> {
    let tcp = TcpStream::connect(target).await?;
    tcp.set_nodelay(true)?;
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .handshake(tcp)
        .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Sends one call to `path` with a small request message; returns the response body stream.
async fn call(
    client: &h2::client::SendRequest<Bytes>,
    path: &str,
) -> Result<h2::RecvStream, Error> {
    let request = Request::post(format!("http://bench.faultline{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
    let mut ready = client.clone().ready().await?;
    let (response, mut send) = ready.send_request(request, false)?;
    send.send_data(Bytes::from(grpc_message(&[1u8; 32])), true)?;
    Ok(response.await?.into_body())
}

/// Reads a body to its trailers; returns the DATA bytes.
async fn drain(mut body: h2::RecvStream) -> Result<usize, Error> {
    let mut total = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        total += chunk.len();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await?.ok_or("no trailers")?;
    if trailers.get("grpc-status").map(HeaderValue::as_bytes) != Some(b"0") {
        return Err("the call did not end with grpc-status 0".into());
    }
    Ok(total)
}

/// MB/s of one Read of `mib` MiB.
async fn stream(target: SocketAddr, mib: usize) -> Result<f64, Error> {
    let client = connect(target).await?;
    let started = Instant::now();
    let body = call(&client, STREAM_PATH).await?;
    let total = drain(body).await?;
    let took = started.elapsed().as_secs_f64();
    let expected = (mib * 1024 * 1024 / MESSAGE) * (MESSAGE + 5 + 4);
    if total != expected {
        return Err(format!("stream: got {total} bytes, expected {expected}").into());
    }
    Ok(total as f64 / took / 1e6)
}

/// p50 and p99 (µs) of `calls` unary calls in a row on one connection.
async fn unary(target: SocketAddr, calls: usize) -> Result<(f64, f64), Error> {
    let client = connect(target).await?;
    // Warm the connection (and HPACK tables) up first.
    for _ in 0..50 {
        drain(call(&client, UNARY_PATH).await?).await?;
    }
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        drain(call(&client, UNARY_PATH).await?).await?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    Ok((at(0.5), at(0.99)))
}

// ------------------------------------------------------------------------------- faultline

/// `faultline run` (or haproxy) in front of the bench server, stopped by PID.
struct Relay {
    child: Child,
    addr: SocketAddr,
}

impl Relay {
    /// haproxy in TCP mode in the foreground, on a free port (bound and released: another
    /// process may take it in between, so a few attempts), once it accepts.
    fn haproxy(tmp: &Path, upstream: SocketAddr) -> Result<Relay, Error> {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let config = tmp.join("haproxy.cfg");
            std::fs::write(
                &config,
                format!(
                    "global\n    maxconn 256\n\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\nfrontend h2_in\n    bind 127.0.0.1:{port}\n    default_backend h2_upstream\n\nbackend h2_upstream\n    server upstream {upstream}\n"
                ),
            )?;
            let child = Command::new("haproxy")
                .arg("-f")
                .arg(&config)
                .arg("-db")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let relay = Relay {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut relay = relay;
            loop {
                if std::net::TcpStream::connect(relay.addr).is_ok() {
                    return Ok(relay);
                }
                if matches!(relay.child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                    relay.stop();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err("haproxy did not start on a free port in 5 attempts".into())
    }

    fn faultline(
        bin: &Path,
        tmp: &Path,
        rules: &str,
        upstream: SocketAddr,
    ) -> Result<Relay, Error> {
        let scenario = tmp.join("bench.toml");
        std::fs::write(
            &scenario,
            format!("name = \"bench-h2\"\nseed = 1\n[proxy]\n{rules}"),
        )?;
        let mut child = Command::new(bin)
            .arg("run")
            .arg(&scenario)
            .args(["--listen", "127.0.0.1:0", "--upstream"])
            .arg(upstream.to_string())
            .args(["--no-capture", "-q"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, rest)) = line.split_once("listening on ") {
                    let addr = rest
                        .split([',', ' '])
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(addr) => addr.parse()?,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("faultline printed no `listening on` line within 10 s".into());
            }
        };
        Ok(Relay { child, addr })
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
