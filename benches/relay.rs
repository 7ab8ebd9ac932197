//! Relay benchmark: bulk throughput and small round-trip latency through each relay, against a direct connection.
//!
//! Four paths run on loopback, one after the other within a round (direct, faultline, socat, haproxy, then
//! again), so slow drifts of the machine (thermal, other load) spread over all paths instead of biasing one.
//! Each path gets the same two measurements:
//! - **bulk**, four rows: `BENCH_BULK_MIB` MiB (default 512) in 256 KiB writes over 1 and over 4
//!   parallel connections, in each direction. Upload (client->upstream): the upstream discards the bytes
//!   and answers one byte once it has them all. Download (upstream->client): the upstream sends the bytes
//!   and the client reads them all. MB/s (10^6 bytes) = payload / time until the last byte arrived, so the
//!   number covers delivery, not just filling socket buffers.
//! - **round trip**: one connection, TCP_NODELAY on both ends, `BENCH_RTT_ITERS` (default 20000) 64-byte
//!   requests each echoed as a 64-byte response; p50 and p99 of the per-iteration latency.
//!
//! Medians over `BENCH_ROUNDS` rounds (default 5) are printed as a table and as one `RESULT` line per path.
//!
//! Why std only (threads and blocking sockets, no tokio, no crates): the benchmark must measure the
//! relays, so its own side is the simplest and most predictable code possible, identical for every path.
//!
//! Other environment: `FAULTLINE_BIN` (the faultline path is skipped without it), `BENCH_CAPTURE=1` (adds a
//! `faultline+capture` row run with `--capture`, written under `BENCH_CAPTURE_DIR`, default `/dev/shm`), `FAULTLINE_EXTRA_ARGS` (whitespace-separated flags; adds a
//! `faultline+extra` row). socat and haproxy are skipped when not on `PATH`; `benches/run.sh` installs them.

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Size of each bulk write and of the upstream's read buffer.
const CHUNK: usize = 256 * 1024;
/// Size of each round-trip request and response.
const MSG: usize = 64;
/// Header the client sends first: one mode byte and a big-endian u64 count (bytes or exchanges).
const HEADER: usize = 9;
const MODE_BULK: u8 = b'B';
const MODE_RTT: u8 = b'R';
const MODE_DOWNLOAD: u8 = b'D';
/// The byte the upstream answers once the whole bulk payload has arrived.
const BULK_DONE: u8 = 0x06;
/// Every blocking socket operation gives up after this, so a stalled relay fails the run instead of hanging.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a relay has to start accepting connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a relay has to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts to start socat or haproxy on a free port (another process may take the port between our
/// probe and their bind).
const START_ATTEMPTS: usize = 5;
/// The upstream stops accepting after this many connections: a bound on its accept loop.
const MAX_UPSTREAM_CONNECTIONS: usize = 100_000;
/// Output lines of a relay kept to explain why it failed.
const TAIL_LINES: usize = 30;

fn main() -> ExitCode {
    // `cargo test --all-targets` runs bench binaries without `--bench`: a measurement is not a test.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "{} is a benchmark: run it with `make bench`, `make soak` or cargo bench",
            env!("CARGO_CRATE_NAME")
        );
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("relay bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every available path for every round and prints the summary; `Ok(false)` when a path failed.
fn run() -> Result<bool> {
    let config = Config::from_env()?;
    let paths = available_paths(&config);
    let tmp = TempDir::create()?;
    let upstream = Upstream::start()?;
    println!(
        "relay bench: bulk {} MiB in {} KiB writes, round trip {} x {} B, {} rounds; MB = 10^6 bytes",
        config.bulk_mib,
        CHUNK / 1024,
        config.rtt_iters,
        MSG,
        config.rounds
    );

    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); paths.len()];
    let mut failed = vec![false; paths.len()];
    for round in 1..=config.rounds {
        for (i, path) in paths.iter().enumerate() {
            if failed[i] {
                continue;
            }
            match measure_path(*path, &config, &tmp, upstream.addr) {
                Ok(sample) => {
                    let rows: Vec<String> =
                        sample.mbps.iter().map(|m| format!("{m:>8.1}")).collect();
                    println!(
                        "round {round}/{} {:<18} MB/s {}  p50 {:>7.1} µs  p99 {:>7.1} µs",
                        config.rounds,
                        path.name(),
                        rows.join(" "),
                        sample.p50_us,
                        sample.p99_us
                    );
                    samples[i].push(sample);
                }
                Err(e) => {
                    println!(
                        "FAIL {}: {e} (dropped from the remaining rounds)",
                        path.name()
                    );
                    failed[i] = true;
                }
            }
        }
    }
    print_summary(&paths, &samples, &config);
    Ok(!failed.contains(&true))
}

// ---------------------------------------------------------------------------------------------------------
// Errors

/// The benchmark's only error: a sentence saying what failed, followed by its cause.
#[derive(Debug)]
struct BenchError(String);

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T> = std::result::Result<T, BenchError>;

/// Attaches what was being done to any displayable error, so every failure names its step and peer.
trait Context<T> {
    fn context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| BenchError(format!("{}: {e}", what().into())))
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(BenchError(message.into()))
}

// ---------------------------------------------------------------------------------------------------------
// Configuration

/// What to run, read once from the environment; every number must be a positive integer.
struct Config {
    bulk_mib: u64,
    rtt_iters: u64,
    rounds: u64,
    faultline_bin: Option<PathBuf>,
    extra_args: Vec<String>,
    capture: bool,
    /// Where `faultline+capture` writes its capture: a RAM file system when there is one, so the
    /// row measures faultline rather than the disk (see benches/RESULTS.md).
    capture_dir: PathBuf,
}

impl Config {
    fn from_env() -> Result<Self> {
        let faultline_bin = match std::env::var_os("FAULTLINE_BIN") {
            Some(bin) if !bin.is_empty() => {
                let bin = PathBuf::from(bin);
                // Set but wrong is a mistake to report, not a path to skip silently.
                if !bin.is_file() {
                    return fail(format!("FAULTLINE_BIN={} is not a file", bin.display()));
                }
                Some(bin)
            }
            _ => None,
        };
        Ok(Self {
            bulk_mib: env_number("BENCH_BULK_MIB", 512)?,
            rtt_iters: env_number("BENCH_RTT_ITERS", 20_000)?,
            rounds: env_number("BENCH_ROUNDS", 5)?,
            faultline_bin,
            extra_args: std::env::var("FAULTLINE_EXTRA_ARGS")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            capture: std::env::var("BENCH_CAPTURE").is_ok_and(|v| v == "1"),
            capture_dir: match std::env::var_os("BENCH_CAPTURE_DIR") {
                Some(dir) => PathBuf::from(dir),
                None if std::path::Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
                None => std::env::temp_dir(),
            },
        })
    }

    fn bulk_bytes(&self) -> u64 {
        self.bulk_mib * 1024 * 1024
    }
}

fn env_number(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => fail(format!("{name}={text:?} must be a positive integer")),
        },
    }
}

/// One way from the client to the upstream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PathKind {
    Direct,
    Faultline,
    FaultlineCapture,
    FaultlineExtra,
    Socat,
    Haproxy,
}

impl PathKind {
    fn name(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Faultline => "faultline",
            PathKind::FaultlineCapture => "faultline+capture",
            PathKind::FaultlineExtra => "faultline+extra",
            PathKind::Socat => "socat",
            PathKind::Haproxy => "haproxy",
        }
    }
}

/// The paths this run can measure, in round order; prints one `SKIP` line per path it cannot.
fn available_paths(config: &Config) -> Vec<PathKind> {
    let mut paths = vec![PathKind::Direct];
    if config.faultline_bin.is_some() {
        paths.push(PathKind::Faultline);
        if config.capture {
            paths.push(PathKind::FaultlineCapture);
        }
        if !config.extra_args.is_empty() {
            paths.push(PathKind::FaultlineExtra);
        }
    } else {
        println!("SKIP faultline: FAULTLINE_BIN is not set (benches/run.sh builds faultline and sets it)");
    }
    for (kind, tool) in [(PathKind::Socat, "socat"), (PathKind::Haproxy, "haproxy")] {
        if find_on_path(tool).is_some() {
            paths.push(kind);
        } else {
            println!("SKIP {tool}: not found on PATH (benches/run.sh installs it)");
        }
    }
    paths
}

fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

// ---------------------------------------------------------------------------------------------------------
// One measurement

/// One round's numbers for one path.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// MB/s of each bulk row, in [`BULK_ROWS`] order.
    mbps: [f64; BULK_ROWS.len()],
    p50_us: f64,
    p99_us: f64,
}

/// Which way bulk bytes flow.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flow {
    /// client->upstream.
    Upload,
    /// upstream->client.
    Download,
}

/// The bulk rows: direction and number of parallel connections.
const BULK_ROWS: [(Flow, u64); 4] = [
    (Flow::Upload, 1),
    (Flow::Upload, 4),
    (Flow::Download, 1),
    (Flow::Download, 4),
];

fn row_name(row: (Flow, u64)) -> String {
    let way = match row.0 {
        Flow::Upload => "client->upstream",
        Flow::Download => "upstream->client",
    };
    format!("{way} x{}", row.1)
}

/// Starts the path's relay, runs bulk then round trip through it, and stops it.
///
/// A fresh relay per round keeps rounds independent: nothing a relay accumulated (buffers, logs, a
/// growing capture) carries over into the next sample.
fn measure_path(
    path: PathKind,
    config: &Config,
    tmp: &TempDir,
    upstream: SocketAddr,
) -> Result<Sample> {
    let capture_file = config
        .capture_dir
        .join(format!("bench-{}.pcapng", std::process::id()));
    let mut relay = match path {
        PathKind::Direct => None,
        PathKind::Faultline => Some(start_faultline(config, tmp, upstream, &[])?),
        PathKind::FaultlineCapture => {
            let args = ["--capture".to_owned(), capture_file.display().to_string()];
            Some(start_faultline(config, tmp, upstream, &args)?)
        }
        PathKind::FaultlineExtra => {
            Some(start_faultline(config, tmp, upstream, &config.extra_args)?)
        }
        PathKind::Socat => Some(start_socat(upstream)?),
        PathKind::Haproxy => Some(start_haproxy(tmp, upstream)?),
    };
    let target = relay.as_ref().map_or(upstream, |r| r.addr);

    let measured = (|| -> Result<_> {
        let mut mbps = [0.0; BULK_ROWS.len()];
        for (slot, (flow, streams)) in mbps.iter_mut().zip(BULK_ROWS) {
            *slot = measure_bulk(target, config.bulk_bytes(), flow, streams)?;
        }
        Ok((mbps, measure_rtt(target, config.rtt_iters)?))
    })();
    let stopped = relay.as_mut().map_or(Ok(()), RelayProcess::stop);
    let (mbps, (p50_us, p99_us)) = match (measured, stopped) {
        (Ok(m), Ok(())) => m,
        // A relay that died explains a failed measurement better than the socket error does.
        (Err(e), Err(stop)) => return fail(format!("{e}; {stop}")),
        (Err(e), Ok(())) => {
            let tail = relay.as_ref().map(RelayProcess::tail).unwrap_or_default();
            return fail(format!("{e}{tail}"));
        }
        (Ok(_), Err(stop)) => return Err(stop),
    };

    if path == PathKind::FaultlineCapture {
        match fs::metadata(&capture_file) {
            Ok(meta) => println!("  capture file: {} bytes", meta.len()),
            Err(e) => println!("  note: no capture file at {}: {e}", capture_file.display()),
        }
        // Removed after every run so the disk never holds more than one capture.
        let _ = fs::remove_file(&capture_file);
    }
    Ok(Sample {
        mbps,
        p50_us,
        p99_us,
    })
}

fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .context(|| format!("connect to {addr}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .context(|| format!("set timeouts on the connection to {addr}"))?;
    Ok(stream)
}

fn header(mode: u8, count: u64) -> [u8; HEADER] {
    let mut header = [0u8; HEADER];
    header[0] = mode;
    header[1..].copy_from_slice(&count.to_be_bytes());
    header
}

/// Moves `bytes` of payload in total over `streams` parallel connections in `flow`'s direction and
/// returns MB/s measured until the last byte arrived on every connection.
fn measure_bulk(addr: SocketAddr, bytes: u64, flow: Flow, streams: u64) -> Result<f64> {
    let share = bytes / streams;
    let mut connections = Vec::new();
    for _ in 0..streams {
        connections.push(connect(addr)?);
    }
    let start = Instant::now();
    let workers: Vec<JoinHandle<Result<()>>> = connections
        .into_iter()
        .map(|stream| {
            thread::spawn(move || match flow {
                Flow::Upload => upload(stream, addr, share),
                Flow::Download => download(stream, addr, share),
            })
        })
        .collect();
    for worker in workers {
        worker
            .join()
            .map_err(|_| BenchError("bulk: a client thread panicked".into()))??;
    }
    let elapsed = start.elapsed();
    Ok((share * streams) as f64 / elapsed.as_secs_f64() / 1e6)
}

/// Sends `bytes` and waits for the upstream's one-byte acknowledgement.
fn upload(mut stream: TcpStream, addr: SocketAddr, bytes: u64) -> Result<()> {
    let chunk = vec![0xA5u8; CHUNK];
    stream
        .write_all(&header(MODE_BULK, bytes))
        .context(|| format!("bulk: send header to {addr}"))?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        stream.write_all(&chunk[..n]).context(|| {
            format!(
                "bulk: write to {addr} after {} of {bytes} bytes",
                bytes - left
            )
        })?;
        left -= n as u64;
    }
    let mut done = [0u8; 1];
    stream
        .read_exact(&mut done)
        .context(|| format!("bulk: wait for the upstream's acknowledgement through {addr}"))?;
    if done[0] != BULK_DONE {
        return fail(format!(
            "bulk: acknowledgement through {addr} was {:#04x}, expected {BULK_DONE:#04x}",
            done[0]
        ));
    }
    Ok(())
}

/// Asks the upstream for `bytes` and reads them all.
fn download(mut stream: TcpStream, addr: SocketAddr, bytes: u64) -> Result<()> {
    stream
        .write_all(&header(MODE_DOWNLOAD, bytes))
        .context(|| format!("bulk: send header to {addr}"))?;
    let mut buf = vec![0u8; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let want = left.min(CHUNK as u64) as usize;
        let n = stream.read(&mut buf[..want]).context(|| {
            format!(
                "bulk: read from {addr} after {} of {bytes} bytes",
                bytes - left
            )
        })?;
        if n == 0 {
            return fail(format!(
                "bulk: {addr} closed after {} of {bytes} bytes",
                bytes - left
            ));
        }
        left -= n as u64;
    }
    Ok(())
}

/// Runs `iters` timed 64-byte exchanges (after untimed warm-up ones) and returns (p50, p99) in µs.
///
/// Every request carries its iteration number and the response must equal it, so a relay that loses,
/// reorders or corrupts bytes fails instead of looking fast.
fn measure_rtt(addr: SocketAddr, iters: u64) -> Result<(f64, f64)> {
    let warmup = (iters / 10).clamp(1, 1000);
    let mut stream = connect(addr)?;
    stream
        .set_nodelay(true)
        .context(|| format!("round trip: set TCP_NODELAY toward {addr}"))?;
    stream
        .write_all(&header(MODE_RTT, warmup + iters))
        .context(|| format!("round trip: send header to {addr}"))?;
    let mut latencies_ns: Vec<u64> = Vec::with_capacity(iters as usize);
    let mut request = [0u8; MSG];
    let mut response = [0u8; MSG];
    for i in 0..warmup + iters {
        request.fill(i as u8);
        request[..8].copy_from_slice(&i.to_be_bytes());
        let start = Instant::now();
        stream
            .write_all(&request)
            .context(|| format!("round trip: send request {i} to {addr}"))?;
        stream
            .read_exact(&mut response)
            .context(|| format!("round trip: read response {i} from {addr}"))?;
        let elapsed = start.elapsed();
        if response != request {
            return fail(format!(
                "round trip: response {i} through {addr} differs from its request"
            ));
        }
        if i >= warmup {
            latencies_ns.push(elapsed.as_nanos() as u64);
        }
    }
    latencies_ns.sort_unstable();
    let us = |p: f64| percentile(&latencies_ns, p) as f64 / 1000.0;
    Ok((us(50.0), us(99.0)))
}

/// Nearest-rank percentile of sorted, non-empty data.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------------------------------------
// The upstream

/// The benchmark's own upstream, in this process: a bulk sink and a round-trip echo behind one port.
///
/// One port serves both because each relay forwards to a single upstream; the client's header says which
/// service it wants. One thread per connection: there are never more than a few at once.
struct Upstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Upstream {
    fn start() -> Result<Self> {
        let listener = TcpListener::bind(loopback(0)).context(|| "upstream: bind 127.0.0.1:0")?;
        let addr = listener
            .local_addr()
            .context(|| "upstream: read the bound address")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let acceptor = thread::Builder::new()
            .name("upstream-accept".into())
            .spawn(move || accept_loop(&listener, &flag))
            .context(|| "upstream: spawn the accept thread")?;
        Ok(Self {
            addr,
            stop,
            acceptor: Some(acceptor),
        })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // accept() blocks; one connection wakes it up to see the flag.
        let _ = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, stop: &AtomicBool) {
    for _ in 0..MAX_UPSTREAM_CONNECTIONS {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((stream, peer)) => {
                let spawned =
                    thread::Builder::new()
                        .name("upstream-conn".into())
                        .spawn(move || {
                            if let Err(e) = serve(stream) {
                                eprintln!("upstream: connection from {peer}: {e}");
                            }
                        });
                if let Err(e) = spawned {
                    eprintln!("upstream: spawn a connection thread: {e}");
                }
            }
            Err(e) => {
                eprintln!("upstream: accept: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    eprintln!("upstream: stopped accepting after {MAX_UPSTREAM_CONNECTIONS} connections");
}

/// Serves one connection as told by its header; a connection closed before any byte is a readiness
/// probe and ends quietly.
fn serve(mut stream: TcpStream) -> Result<()> {
    stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(IO_TIMEOUT)))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .context(|| "set socket options")?;
    let mut head = [0u8; HEADER];
    // A relay forwarding a readiness probe closes with FIN or, like haproxy, RST: neither is an error.
    match stream.read(&mut head[..1]) {
        Ok(0) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
        read => read.context(|| "read header")?,
    };
    stream
        .read_exact(&mut head[1..])
        .context(|| "read header")?;
    let mut count_bytes = [0u8; 8];
    count_bytes.copy_from_slice(&head[1..]);
    let count = u64::from_be_bytes(count_bytes);
    match head[0] {
        MODE_BULK => {
            let mut buf = vec![0u8; CHUNK];
            let mut left = count;
            while left > 0 {
                let want = left.min(CHUNK as u64) as usize;
                let n = stream.read(&mut buf[..want]).context(|| "bulk: read")?;
                if n == 0 {
                    return fail(format!(
                        "bulk: client closed after {} of {count} bytes",
                        count - left
                    ));
                }
                left -= n as u64;
            }
            stream
                .write_all(&[BULK_DONE])
                .context(|| "bulk: send acknowledgement")
        }
        MODE_DOWNLOAD => {
            let chunk = vec![0x5Au8; CHUNK];
            let mut left = count;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                stream
                    .write_all(&chunk[..n])
                    .context(|| "download: write")?;
                left -= n as u64;
            }
            Ok(())
        }
        MODE_RTT => {
            let mut msg = [0u8; MSG];
            for i in 0..count {
                stream
                    .read_exact(&mut msg)
                    .context(|| format!("round trip: read request {i}"))?;
                stream
                    .write_all(&msg)
                    .context(|| format!("round trip: send response {i}"))?;
            }
            Ok(())
        }
        other => fail(format!("unknown mode byte {other:#04x}")),
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

// ---------------------------------------------------------------------------------------------------------
// Relay processes

/// A relay process started for one measurement, listening on `addr`.
///
/// It is stopped with SIGTERM by its PID (then SIGKILL if it lingers), either by `stop` or on drop, so an
/// early error never leaves it running. Its output is drained continuously (a full pipe would stall it)
/// and the last lines are kept to explain failures.
struct RelayProcess {
    name: &'static str,
    addr: SocketAddr,
    child: Option<Child>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl RelayProcess {
    /// Spawns `command` with piped output; every output line is also sent to the returned receiver.
    fn spawn(name: &'static str, mut command: Command) -> Result<(Self, mpsc::Receiver<String>)> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1")
            .spawn()
            .context(|| format!("{name}: spawn {command:?}"))?;
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let (lines, receiver) = mpsc::channel();
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for pipe in [stdout, stderr].into_iter().flatten() {
            let tail = Arc::clone(&tail);
            let lines = lines.clone();
            // Detached on purpose: a forked socat child may hold the pipe open after the parent exits,
            // and the thread ends by itself at EOF.
            let _ = thread::Builder::new()
                .name(format!("{name}-output"))
                .spawn(move || drain(pipe, &tail, &lines));
        }
        let process = Self {
            name,
            addr: loopback(0),
            child: Some(child),
            tail,
        };
        Ok((process, receiver))
    }

    /// Whether the process has exited on its own, with its status.
    fn exited(&mut self) -> Result<Option<String>> {
        let name = self.name;
        match self.child.as_mut() {
            None => Ok(Some("already stopped".into())),
            Some(child) => Ok(child
                .try_wait()
                .context(|| format!("{name}: check status"))?
                .map(|s| s.to_string())),
        }
    }

    /// Waits until `addr` accepts a connection: `Ok(false)` if the process exited first (e.g. the port
    /// was taken), so the caller can retry on another port.
    fn wait_accepting(&mut self, addr: SocketAddr) -> Result<bool> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.exited()?.is_some() {
                return Ok(false);
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                self.addr = addr;
                return Ok(true);
            }
            thread::sleep(Duration::from_millis(10));
        }
        fail(format!(
            "{}: not accepting on {addr} after {READY_TIMEOUT:?}{}",
            self.name,
            self.tail()
        ))
    }

    /// The last output lines, formatted to append to an error message.
    fn tail(&self) -> String {
        let tail = self
            .tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if tail.is_empty() {
            return String::new();
        }
        let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
        format!(
            "\n  {} output (last lines):\n    {}",
            self.name,
            lines.join("\n    ")
        )
    }

    /// Sends SIGTERM and waits; an error if it had already exited (it crashed) or ignored SIGTERM.
    fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let name = self.name;
        if let Some(status) = child
            .try_wait()
            .context(|| format!("{name}: check status"))?
        {
            return fail(format!(
                "{name} exited on its own ({status}){}",
                self.tail()
            ));
        }
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context(|| format!("{name}: run kill -TERM {pid}"))?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        if sent.success() {
            while Instant::now() < deadline {
                if child
                    .try_wait()
                    .context(|| format!("{name}: wait for pid {pid}"))?
                    .is_some()
                {
                    return Ok(());
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = child.kill();
        child
            .wait()
            .context(|| format!("{name}: wait for pid {pid} after SIGKILL"))?;
        fail(format!(
            "{name} (pid {pid}) did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed it"
        ))
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("{e}");
        }
    }
}

/// Reads lines until EOF, keeping the last ones and forwarding each while anyone listens.
fn drain(pipe: Box<dyn Read + Send>, tail: &Mutex<VecDeque<String>>, lines: &mpsc::Sender<String>) {
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { return };
        let line = strip_ansi(&line);
        {
            let mut tail = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.clone());
        }
        let _ = lines.send(line);
    }
}

/// Removes terminal colour sequences, in case a logger colours output even with `NO_COLOR` set.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC '[' parameters, ended by a byte in '@'..='~'.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The address in a `listening on ADDR` line: `ADDR` ends at a comma, whitespace or the end of the line.
fn listening_addr(line: &str) -> Option<&str> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let end = rest
        .find(|c: char| c == ',' || c.is_whitespace())
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// Starts faultline on an ephemeral port and waits for it to print where it listens.
fn start_faultline(
    config: &Config,
    tmp: &TempDir,
    upstream: SocketAddr,
    extra: &[String],
) -> Result<RelayProcess> {
    let Some(bin) = config.faultline_bin.as_ref() else {
        return fail("faultline: FAULTLINE_BIN is not set");
    };
    // The flags override both addresses; the file only has to be a valid scenario.
    let scenario = tmp.path.join("bench-scenario.toml");
    fs::write(
        &scenario,
        "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:1\"\n",
    )
    .context(|| format!("faultline: write {}", scenario.display()))?;
    let mut command = Command::new(bin);
    command
        .arg("run")
        .arg(&scenario)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream.to_string(),
        ])
        .args(extra);
    let (mut process, lines) = RelayProcess::spawn("faultline", command)?;
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        match lines.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                if let Some(text) = listening_addr(&line) {
                    process.addr = text.parse().context(|| {
                        format!("faultline: {text:?} in {line:?} is not a socket address")
                    })?;
                    return Ok(process);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Both pipes closed: it is exiting, or closed them on purpose; its status decides.
            Err(mpsc::RecvTimeoutError::Disconnected) => thread::sleep(Duration::from_millis(50)),
        }
        if let Some(status) = process.exited()? {
            // Already reaped: nothing is left for drop to stop.
            process.child = None;
            return fail(format!(
                "faultline exited before listening ({status}){}",
                process.tail()
            ));
        }
    }
    fail(format!(
        "faultline: no `listening on ADDR` line within {READY_TIMEOUT:?}{}",
        process.tail()
    ))
}

/// A port that was free a moment ago; the caller retries if someone takes it before the relay binds.
fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind(loopback(0)).context(|| "bind 127.0.0.1:0 to find a free port")?;
    Ok(listener
        .local_addr()
        .context(|| "read the probed port")?
        .port())
}

/// Starts a relay that binds a port given on its command line, retrying on another port if it exits.
fn start_on_free_port(
    name: &'static str,
    command_for: impl Fn(u16) -> Result<Command>,
) -> Result<RelayProcess> {
    for _ in 0..START_ATTEMPTS {
        let port = free_port()?;
        let (mut process, _lines) = RelayProcess::spawn(name, command_for(port)?)?;
        if process.wait_accepting(loopback(port))? {
            return Ok(process);
        }
        let tail = process.tail();
        // It already exited; stop() would report that as a crash.
        process.child = None;
        eprintln!("{name}: exited before accepting on port {port}, retrying{tail}");
    }
    fail(format!(
        "{name}: could not start after {START_ATTEMPTS} attempts"
    ))
}

/// socat with `fork` (one child per connection, as people use it) and `nodelay` on both legs, so the
/// round trip compares relays rather than Nagle's algorithm.
fn start_socat(upstream: SocketAddr) -> Result<RelayProcess> {
    start_on_free_port("socat", |port| {
        let mut command = Command::new("socat");
        command.args([
            format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,nodelay"),
            format!("TCP:{upstream},nodelay"),
        ]);
        Ok(command)
    })
}

/// haproxy in TCP mode, in the foreground (`-db`) so its PID is the one we stop.
fn start_haproxy(tmp: &TempDir, upstream: SocketAddr) -> Result<RelayProcess> {
    let config_file = tmp.path.join("haproxy.cfg");
    start_on_free_port("haproxy", |port| {
        let config = format!(
            "global\n    maxconn 256\n\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\n\
             frontend bench_in\n    bind 127.0.0.1:{port}\n    default_backend bench_upstream\n\n\
             backend bench_upstream\n    server upstream {upstream}\n"
        );
        fs::write(&config_file, config)
            .context(|| format!("haproxy: write {}", config_file.display()))?;
        let mut command = Command::new("haproxy");
        command.arg("-f").arg(&config_file).arg("-db");
        Ok(command)
    })
}

// ---------------------------------------------------------------------------------------------------------
// Temporary files and the summary

/// A private directory for scenario, config and capture files, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create() -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("faultline-bench-{}-{nanos}", std::process::id()));
        fs::create_dir(&path).context(|| format!("create {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Prints the median table (one line per path and bulk row) and one `RESULT` line per path and row.
fn print_summary(paths: &[PathKind], samples: &[Vec<Sample>], config: &Config) {
    let medians: Vec<Option<Sample>> = samples
        .iter()
        .map(|s| {
            (!s.is_empty()).then(|| {
                let mut mbps = [0.0; BULK_ROWS.len()];
                for (row, slot) in mbps.iter_mut().enumerate() {
                    *slot = median(s.iter().map(|x| x.mbps[row]).collect());
                }
                Sample {
                    mbps,
                    p50_us: median(s.iter().map(|x| x.p50_us).collect()),
                    p99_us: median(s.iter().map(|x| x.p99_us).collect()),
                }
            })
        })
        .collect();
    let direct = paths
        .iter()
        .position(|p| *p == PathKind::Direct)
        .and_then(|i| medians[i]);

    println!();
    println!(
        "{:<18} {:<20} {:>6} {:>10} {:>8}",
        "path", "bulk row", "rounds", "MB/s", "ratio"
    );
    let mut results = Vec::new();
    for ((path, m), s) in paths.iter().zip(&medians).zip(samples) {
        let Some(m) = m else {
            println!("{:<18} (no completed round)", path.name());
            continue;
        };
        for (row, spec) in BULK_ROWS.iter().enumerate() {
            let ratio = direct.map_or(f64::NAN, |d| m.mbps[row] / d.mbps[row]);
            println!(
                "{:<18} {:<20} {:>6} {:>10.1} {:>8.3}",
                path.name(),
                row_name(*spec),
                s.len(),
                m.mbps[row],
                ratio
            );
            results.push(format!(
                "RESULT path={} row=\"{}\" mbps={:.1} ratio={:.3} rounds={} bulk_mib={}",
                path.name(),
                row_name(*spec),
                m.mbps[row],
                ratio,
                s.len(),
                config.bulk_mib,
            ));
        }
    }
    println!();
    println!(
        "{:<18} {:>6} {:>9} {:>9} {:>12}",
        "path", "rounds", "p50 µs", "p99 µs", "+p50 µs"
    );
    for ((path, m), s) in paths.iter().zip(&medians).zip(samples) {
        let Some(m) = m else { continue };
        let added = direct.map_or(f64::NAN, |d| m.p50_us - d.p50_us);
        println!(
            "{:<18} {:>6} {:>9.1} {:>9.1} {:>12.1}",
            path.name(),
            s.len(),
            m.p50_us,
            m.p99_us,
            added
        );
        results.push(format!(
            "RESULT path={} rtt p50_us={:.1} p99_us={:.1} added_p50_us={:.1} rtt_iters={}",
            path.name(),
            m.p50_us,
            m.p99_us,
            added,
            config.rtt_iters
        ));
    }
    println!();
    for line in results {
        println!("{line}");
    }
}
