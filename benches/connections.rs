//! Connection-scale benchmark: thousands of idle connections through one faultline started under a
//! soft open-file limit of 1024, then thousands of short ones, then a long capture; reports file
//! descriptors, threads and resident memory of the faultline process from /proc.
//!
//! What it checks (exit 1 when one fails), from issue 9:
//! - `BENCH_IDLE_CONNECTIONS` (default 9,000) concurrent idle connections are all accepted and all
//!   still echo, with faultline at < 200 MiB resident; per-connection memory and fds are printed.
//! - `BENCH_SHORT_CONNECTIONS` (default 10,000) short connections afterwards leave no fd, thread or
//!   memory behind (fds back to the idle baseline, resident size back near it).
//! - A capture of `BENCH_CAPTURE_GB` (default 10) GB relayed through faultline keeps the resident
//!   size bounded while it runs and back under 50 MiB afterwards. The capture goes to
//!   `BENCH_CAPTURE_PATH` (default /dev/null: the point is faultline's memory, not the disk).
//!
//! The upstream is an echo server in this process (tokio): faultline's own `builtin:echo` would put
//! the upstream's sockets in faultline's fd budget too. This process raises its own soft limit to
//! the hard limit, since it holds both ends of every connection.

use std::fs;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;

/// The soft open-file limit faultline is started under: the common distribution default.
const STOCK_SOFT_LIMIT: u64 = 1024;
/// Resident size that 9,000 idle connections must stay under.
const IDLE_RSS_LIMIT_MIB: f64 = 200.0;
/// Resident size a capture run must return under once traffic stops.
const AFTER_CAPTURE_RSS_LIMIT_MIB: f64 = 50.0;
/// fds the splice pipe pool may keep open while idle (64 pipes of two fds, see
/// `src/proxy/pipe_pool.rs`): not a leak, and far below one fd per connection.
const POOL_FDS: usize = 128;
/// Connects in flight at once.
const PARALLEL: usize = 200;
/// Bound on every wait for a condition (fds returning, a line on stderr).
const WAIT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    // `cargo test --all-targets` runs bench binaries without `--bench`: a measurement is not a test.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "{} is a benchmark: run it with `make bench`, `make soak` or cargo bench",
            env!("CARGO_CRATE_NAME")
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("connections bench: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("connections bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env_number(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{name}={text:?} must be a number")),
    }
}

/// What /proc says about a process now.
#[derive(Debug, Clone, Copy)]
struct Usage {
    fds: usize,
    threads: u64,
    rss_kib: u64,
    peak_rss_kib: u64,
}

fn usage(pid: u32) -> Result<Usage> {
    let fds = fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| format!("read /proc/{pid}/fd: {e}"))?
        .count();
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("read /proc/{pid}/status: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Usage {
        fds,
        threads: field("Threads:"),
        rss_kib: field("VmRSS:"),
        peak_rss_kib: field("VmHWM:"),
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// An echo upstream: every connection gets its bytes back until it closes.
async fn echo_upstream() -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind the echo upstream: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((mut stream, _)) => {
                    tokio::spawn(async move {
                        let (mut r, mut w) = stream.split();
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    });
    Ok(addr)
}

/// faultline started under `ulimit -Sn 1024`, its stderr scanned for the listen address.
struct Faultline {
    child: Child,
    pid: u32,
    addr: std::net::SocketAddr,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Faultline {
    async fn start(bin: &PathBuf, upstream: std::net::SocketAddr, extra: &[&str]) -> Result<Self> {
        let dir = std::env::temp_dir();
        let scenario = dir.join(format!("faultline-connections-{}.toml", std::process::id()));
        fs::write(
            &scenario,
            "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:1\"\n",
        )
        .map_err(|e| format!("write {}: {e}", scenario.display()))?;
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "ulimit -Sn {STOCK_SOFT_LIMIT} && exec \"$0\" \"$@\""
            ))
            .arg(bin)
            .arg("run")
            .arg(&scenario)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                &upstream.to_string(),
            ])
            .args(extra)
            .env(
                "RUST_LOG",
                "faultline=info,faultline::proxy::fd_limit=debug",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let pid = child.id().ok_or("faultline exited at once")?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let kept = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(mut kept) = kept.lock() {
                    kept.push(line.clone());
                }
                let _ = tx.send(line);
            }
        });
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let line = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .map_err(|_| "faultline printed no listen address in time".to_string())?
                .ok_or("faultline exited before listening")?;
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr = rest
                    .split([',', ' '])
                    .next()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e| format!("{line:?}: {e}"))?;
                return Ok(Faultline {
                    child,
                    pid,
                    addr,
                    lines,
                });
            }
        }
    }

    fn log_lines_with(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .map(|l| l.iter().filter(|l| l.contains(needle)).count())
            .unwrap_or(0)
    }

    async fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("faultline exited with {status}")),
            _ => {
                let _ = self.child.kill().await;
                Err("faultline did not stop within 10 s of SIGTERM".into())
            }
        }
    }
}

/// Opens a connection and checks it echoes `tag`.
async fn echo_once(stream: &mut TcpStream, tag: u64) -> Result<()> {
    let sent = tag.to_be_bytes();
    stream
        .write_all(&sent)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut back = [0u8; 8];
    tokio::time::timeout(IO_TIMEOUT, stream.read_exact(&mut back))
        .await
        .map_err(|_| "no echo within 30 s".to_string())?
        .map_err(|e| format!("read echo: {e}"))?;
    if back != sent {
        return Err(format!("echo of {tag} came back different"));
    }
    Ok(())
}

/// Waits (bounded) until faultline's fd count is at most `target`.
async fn wait_fds(pid: u32, target: usize) -> Result<Usage> {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = usage(pid)?;
        if now.fds <= target || Instant::now() >= deadline {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run() -> Result<bool> {
    let bin = PathBuf::from(
        std::env::var_os("FAULTLINE_BIN")
            .ok_or("FAULTLINE_BIN is not set (benches/run.sh builds faultline and sets it)")?,
    );
    let idle = env_number("BENCH_IDLE_CONNECTIONS", 9_000)? as usize;
    let short = env_number("BENCH_SHORT_CONNECTIONS", 10_000)?;
    let capture_gb = env_number("BENCH_CAPTURE_GB", 10)?;
    let capture_path =
        std::env::var("BENCH_CAPTURE_PATH").unwrap_or_else(|_| "/dev/null".to_string());
    let (soft, hard) =
        rlimit::getrlimit(rlimit::Resource::NOFILE).map_err(|e| format!("getrlimit: {e}"))?;
    if soft < hard {
        rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard)
            .map_err(|e| format!("raise this process's open-file limit: {e}"))?;
    }
    let mut ok = true;
    let upstream = echo_upstream().await?;

    // 1. Idle connections under a stock soft limit.
    let faultline = Faultline::start(&bin, upstream, &[]).await?;
    let pid = faultline.pid;
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or("Max open files ?")
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect::<Vec<_>>()
        .join(" / ");
    let raised = faultline.log_lines_with("raised the open-file soft limit") > 0;
    println!(
        "faultline pid {pid} started under ulimit -Sn {STOCK_SOFT_LIMIT}: open files soft/hard now {open_files}; debug log says raised: {raised}"
    );
    ok &= raised;
    let base = usage(pid)?;
    println!(
        "baseline: {} fds, {} threads, {:.1} MiB resident",
        base.fds,
        base.threads,
        mib(base.rss_kib)
    );

    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut opening = Vec::with_capacity(idle);
    for i in 0..idle {
        let gate = gate.clone();
        let addr = faultline.addr;
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let mut stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| "connect timed out".to_string())?
                .map_err(|e| format!("connect: {e}"))?;
            echo_once(&mut stream, i as u64).await?;
            Ok::<_, String>(stream)
        }));
    }
    let mut streams = Vec::with_capacity(idle);
    let mut failures = 0usize;
    for task in opening {
        match task.await {
            Ok(Ok(stream)) => streams.push(stream),
            Ok(Err(e)) => {
                if failures == 0 {
                    println!("first failure: {e}");
                }
                failures += 1;
            }
            Err(e) => return Err(format!("a client task failed: {e}")),
        }
    }
    let opened_in = started.elapsed();
    // Let the connection tasks settle before reading /proc.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = usage(pid)?;
    let per_conn_kib = (loaded.rss_kib.saturating_sub(base.rss_kib)) as f64 / idle as f64;
    let per_conn_fds = (loaded.fds - base.fds) as f64 / idle as f64;
    println!(
        "{} of {idle} idle connections open in {:.1} s: {} fds ({per_conn_fds:.2} per connection), {} threads, {:.1} MiB resident ({per_conn_kib:.1} KiB per connection; 100,000 would need ~{:.0} MiB and {:.0} fds)",
        streams.len(),
        opened_in.as_secs_f64(),
        loaded.fds,
        loaded.threads,
        mib(loaded.rss_kib),
        mib(base.rss_kib) + per_conn_kib * 100_000.0 / 1024.0,
        per_conn_fds * 100_000.0 + base.fds as f64,
    );
    let all_accepted = failures == 0;
    ok &= all_accepted && mib(loaded.rss_kib) < IDLE_RSS_LIMIT_MIB;

    // Every idle connection still echoes.
    let mut still = 0usize;
    for (i, stream) in streams.iter_mut().enumerate() {
        if echo_once(stream, (i + idle) as u64).await.is_ok() {
            still += 1;
        }
    }
    println!("{still} of {} idle connections still echo", streams.len());
    ok &= still == idle;
    drop(streams);
    let after_idle = wait_fds(pid, base.fds + POOL_FDS).await?;

    // 2. Short connections.
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..short {
        let gate = gate.clone();
        let addr = faultline.addr;
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let mut stream = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            echo_once(&mut stream, i).await?;
            done.fetch_add(1, Ordering::Relaxed);
            Ok::<_, String>(())
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let short_in = started.elapsed();
    let after_short = wait_fds(pid, base.fds + POOL_FDS).await?;
    let completed = done.load(Ordering::Relaxed);
    println!(
        "{completed} of {short} short connections echoed in {:.1} s ({:.0}/s); afterwards {} fds (baseline {}), {} threads (baseline {}), {:.1} MiB resident (after the idle ones {:.1} MiB, peak {:.1} MiB)",
        short_in.as_secs_f64(),
        completed as f64 / short_in.as_secs_f64(),
        after_short.fds,
        base.fds,
        after_short.threads,
        base.threads,
        mib(after_short.rss_kib),
        mib(after_idle.rss_kib),
        mib(after_short.peak_rss_kib),
    );
    let accept_warnings = faultline.log_lines_with("clients wait in the listen backlog");
    println!("backlog (accept back-off) warnings: {accept_warnings}");
    let no_fd_left = after_short.fds <= base.fds + POOL_FDS;
    let no_thread_left = after_short.threads <= base.threads;
    let no_memory_left = after_short.rss_kib <= after_idle.rss_kib + 8 * 1024;
    println!(
        "short connections left behind: fds {} (pooled pipes allowed), threads {}, memory {}",
        if no_fd_left { "none" } else { "SOME" },
        if no_thread_left { "none" } else { "SOME" },
        if no_memory_left { "none" } else { "SOME" },
    );
    ok &= completed == short && no_fd_left && no_thread_left && no_memory_left;
    faultline.stop().await?;

    // 3. Memory of a long capture.
    if capture_gb > 0 {
        let faultline =
            Faultline::start(&bin, upstream, &["--capture", capture_path.as_str()]).await?;
        let pid = faultline.pid;
        let total = capture_gb * 1_000_000_000;
        let streams = 4u64;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let addr = faultline.addr;
            tasks.push(tokio::spawn(async move {
                let stream = TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let (mut r, mut w) = stream.into_split();
                let share = total / streams;
                let writer = tokio::spawn(async move {
                    let chunk = vec![0xA5u8; 256 * 1024];
                    let mut left = share;
                    while left > 0 {
                        let n = left.min(chunk.len() as u64) as usize;
                        w.write_all(&chunk[..n]).await?;
                        left -= n as u64;
                    }
                    w.shutdown().await
                });
                let mut buf = vec![0u8; 256 * 1024];
                let mut got = 0u64;
                loop {
                    let n = r.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
                    if n == 0 {
                        break;
                    }
                    got += n as u64;
                }
                writer
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("write: {e}"))?;
                if got != share {
                    return Err(format!("echoed {got} of {share} bytes"));
                }
                Ok::<_, String>(())
            }));
        }
        let mut peak = 0u64;
        while tasks.iter().any(|t| !t.is_finished()) {
            peak = peak.max(usage(pid)?.rss_kib);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
        let secs = started.elapsed().as_secs_f64();
        // The writer returns freed memory after a whole idle flush tick (1 s); allow a few.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut after = usage(pid)?;
        while mib(after.rss_kib) >= AFTER_CAPTURE_RSS_LIMIT_MIB && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            after = usage(pid)?;
        }
        println!(
            "capture to {capture_path}: {capture_gb} GB echoed over {streams} connections (both directions, both legs captured) in {secs:.1} s; resident peak {:.1} MiB (VmHWM {:.1} MiB), {:.1} MiB after",
            mib(peak),
            mib(after.peak_rss_kib),
            mib(after.rss_kib)
        );
        ok &= mib(after.rss_kib) < AFTER_CAPTURE_RSS_LIMIT_MIB;
        faultline.stop().await?;
    }
    println!(
        "{}",
        if ok {
            "connections bench: all checks hold"
        } else {
            "connections bench: FAILED (see above)"
        }
    );
    Ok(ok)
}
