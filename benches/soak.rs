//! Soak: mixed traffic with random faults through one faultline at a steady connection rate for
//! `SOAK_MINUTES` (default 30), sampling its fds, threads and resident memory every second.
//!
//! Traffic: `SOAK_RATE` (default 1,000) new connections per second to an in-process echo upstream,
//! each sending 64 B to 256 KiB (mostly small; a few hold the connection for a moment), shutting
//! down its write half and reading the echo to EOF. The scenario draws faults per connection from
//! its seed: resets, truncations, refusals and latency.
//!
//! Checks (exit 1 when one fails): every connection received a prefix of what it sent (never a
//! wrong byte), and received everything unless a fault acted, counted against the rules' "fired"
//! totals in faultline's summary; faultline never panicked and exited cleanly; fds and resident
//! memory stay flat (the last tenth of the run within a small margin of the first tenth after
//! warm-up). Samples go to `SOAK_CSV` (default target/soak/soak.csv) for benches/plot_soak.py.

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::sync::Semaphore;

/// Connections in flight at most; a tick that finds none free is counted as skipped.
const MAX_IN_FLIGHT: usize = 4_000;
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Flat means: the last tenth's mean within this of the first tenth's (after warm-up).
const RSS_MARGIN_MIB: f64 = 16.0;
const FD_MARGIN: f64 = 200.0;

const SCENARIO: &str = r#"name = "soak"
seed = 20261129

[proxy]
listen = "127.0.0.1:0"
upstream = "127.0.0.1:1"

[[rule]]
name = "reset some uploads after 2 KiB"
match = { probability = 0.05, direction = "client->upstream" }
fault.reset = { after = "2KiB" }

[[rule]]
name = "truncate some echoes after 1 KiB"
match = { probability = 0.05, direction = "upstream->client" }
fault.truncate = { after = "1KiB" }

[[rule]]
name = "refuse a few"
match = { probability = 0.02 }
fault.refuse = {}

[[rule]]
name = "slow some"
match = { probability = 0.10 }
fault.latency = { delay = "2ms", jitter = "3ms" }
"#;

type Result<T> = std::result::Result<T, String>;

#[derive(Default)]
struct Tally {
    complete: AtomicU64,
    short: AtomicU64,
    corrupt: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
    bytes: AtomicU64,
}

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
            eprintln!("soak: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env_f64(name: &str, default: f64) -> Result<f64> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| *v > 0.0)
            .ok_or_else(|| format!("{name}={text:?} must be a positive number")),
    }
}

fn proc_usage(pid: u32) -> Option<(usize, u64, u64)> {
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some((fds, field("Threads:"), field("VmRSS:")))
}

async fn echo_upstream() -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind the echo upstream: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        loop {
            if let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                        let _ = w.shutdown().await;
                    }
                });
            } else {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    Ok(addr)
}

/// One client connection: send, half-close, read the echo to EOF, compare.
async fn one(addr: std::net::SocketAddr, size: usize, hold: Duration, seed: u64, tally: &Tally) {
    let mut payload = vec![0u8; size];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut payload[..]);
    let work = async {
        let stream = TcpStream::connect(addr).await?;
        let (mut r, mut w) = stream.into_split();
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            // A reset or refusal may end the connection while we write: that is a fault acting.
            let _ = w.write_all(&sent).await;
            tokio::time::sleep(hold).await;
            let _ = w.shutdown().await;
        });
        let mut got = Vec::with_capacity(size);
        let read = r.read_to_end(&mut got).await;
        let _ = writer.await;
        Ok::<_, std::io::Error>((got, read.is_ok()))
    };
    match tokio::time::timeout(IO_TIMEOUT, work).await {
        Ok(Ok((got, clean))) => {
            tally.bytes.fetch_add(got.len() as u64, Relaxed);
            if !payload.starts_with(&got) {
                tally.corrupt.fetch_add(1, Relaxed);
            } else if got.len() == size && clean {
                tally.complete.fetch_add(1, Relaxed);
            } else {
                tally.short.fetch_add(1, Relaxed);
            }
        }
        // Refused before connect completed, or reset before any byte: a short connection.
        Ok(Err(_)) => {
            tally.short.fetch_add(1, Relaxed);
        }
        Err(_) => {
            tally.errors.fetch_add(1, Relaxed);
        }
    }
}

async fn run() -> Result<bool> {
    let bin = PathBuf::from(
        std::env::var_os("FAULTLINE_BIN")
            .ok_or("FAULTLINE_BIN is not set (benches/soak.sh builds faultline and sets it)")?,
    );
    let minutes = env_f64("SOAK_MINUTES", 30.0)?;
    let rate = env_f64("SOAK_RATE", 1000.0)?;
    let csv_path = PathBuf::from(
        std::env::var_os("SOAK_CSV").unwrap_or_else(|| "target/soak/soak.csv".into()),
    );
    if let Some(dir) = csv_path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let (_, hard) =
        rlimit::getrlimit(rlimit::Resource::NOFILE).map_err(|e| format!("getrlimit: {e}"))?;
    rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard)
        .map_err(|e| format!("raise the open-file limit: {e}"))?;

    let upstream = echo_upstream().await?;
    let scenario = std::env::temp_dir().join(format!("faultline-soak-{}.toml", std::process::id()));
    fs::write(&scenario, SCENARIO).map_err(|e| format!("write {}: {e}", scenario.display()))?;
    let mut child = Command::new(&bin)
        .arg("run")
        .arg(&scenario)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream.to_string(),
        ])
        .env("RUST_LOG", "faultline=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let pid = child.id().ok_or("faultline exited at once")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let panics = Arc::new(AtomicU64::new(0));
    let (addr_tx, mut addr_rx) = tokio::sync::mpsc::unbounded_channel();
    {
        let panics = panics.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("panicked") {
                    panics.fetch_add(1, Relaxed);
                    eprintln!("faultline: {line}");
                }
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = addr_tx.send(rest.split([',', ' ']).next().unwrap_or("").to_string());
                }
            }
        });
    }
    let summary = tokio::spawn(async move {
        let mut text = String::new();
        let _ = BufReader::new(stdout).read_to_string(&mut text).await;
        text
    });
    let addr: std::net::SocketAddr = tokio::time::timeout(Duration::from_secs(30), addr_rx.recv())
        .await
        .map_err(|_| "faultline printed no listen address")?
        .ok_or("faultline exited before listening")?
        .parse()
        .map_err(|e| format!("listen address: {e}"))?;

    let mut csv =
        fs::File::create(&csv_path).map_err(|e| format!("create {}: {e}", csv_path.display()))?;
    writeln!(csv, "seconds,fds,threads,rss_kib,connections,in_flight")
        .map_err(|e| e.to_string())?;
    let tally = Arc::new(Tally::default());
    let gate = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let started = Instant::now();
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut launched = 0u64;
    let mut next_sample = Duration::ZERO;
    let mut samples: Vec<(f64, usize, u64)> = Vec::new();
    while started.elapsed() < duration {
        tick.tick().await;
        let elapsed = started.elapsed();
        if elapsed >= next_sample {
            next_sample += Duration::from_secs(1);
            if let Some((fds, threads, rss)) = proc_usage(pid) {
                let in_flight = MAX_IN_FLIGHT - gate.available_permits();
                samples.push((elapsed.as_secs_f64(), fds, rss));
                writeln!(
                    csv,
                    "{:.1},{fds},{threads},{rss},{launched},{in_flight}",
                    elapsed.as_secs_f64()
                )
                .map_err(|e| e.to_string())?;
                if samples.len() % 60 == 0 {
                    println!(
                        "soak {:>5.0} s: {launched} connections, {in_flight} in flight, faultline {fds} fds, {threads} threads, {:.1} MiB",
                        elapsed.as_secs_f64(),
                        rss as f64 / 1024.0
                    );
                }
            }
        }
        let Ok(permit) = gate.clone().try_acquire_owned() else {
            tally.skipped.fetch_add(1, Relaxed);
            continue;
        };
        let size = match rng.gen_range(0..100) {
            0..=59 => rng.gen_range(64..=2048),
            60..=94 => rng.gen_range(2048..=64 * 1024),
            _ => rng.gen_range(64 * 1024..=256 * 1024),
        };
        let hold = if rng.gen_bool(0.05) {
            Duration::from_millis(rng.gen_range(100..2000))
        } else {
            Duration::ZERO
        };
        launched += 1;
        let seed = launched;
        let tally = tally.clone();
        tokio::spawn(async move {
            one(addr, size, hold, seed, &tally).await;
            drop(permit);
        });
    }
    // Let the last connections finish (bounded by their own timeout).
    let drain_deadline = Instant::now() + IO_TIMEOUT + Duration::from_secs(5);
    while gate.available_permits() < MAX_IN_FLIGHT && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .map_err(|_| "faultline did not stop within 30 s of SIGTERM")?
        .map_err(|e| e.to_string())?;
    let summary = summary.await.map_err(|e| e.to_string())?;
    let fired: u64 = summary
        .lines()
        .filter(|l| !l.contains("\"slow some\""))
        .filter_map(|l| l.split("fired ").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum();

    let secs = started.elapsed().as_secs_f64();
    let complete = tally.complete.load(Relaxed);
    let short = tally.short.load(Relaxed);
    let corrupt = tally.corrupt.load(Relaxed);
    let errors = tally.errors.load(Relaxed);
    let skipped = tally.skipped.load(Relaxed);
    println!("faultline summary:\n{summary}");
    println!(
        "soak: {launched} connections in {secs:.0} s ({:.0}/s), {skipped} ticks skipped (client saturated); {complete} byte-exact and complete, {short} cut short (faults that cut or refuse fired {fired} times), {corrupt} with a wrong byte, {errors} timed out; {:.1} GB echoed",
        launched as f64 / secs,
        tally.bytes.load(Relaxed) as f64 / 1e9
    );

    // Flatness: compare the first tenth after a 10% warm-up with the last tenth.
    let tenth = (samples.len() / 10).max(1);
    let mean = |s: &[(f64, usize, u64)]| {
        let n = s.len().max(1) as f64;
        (
            s.iter().map(|x| x.1 as f64).sum::<f64>() / n,
            s.iter().map(|x| x.2 as f64 / 1024.0).sum::<f64>() / n,
        )
    };
    let early = &samples[tenth.min(samples.len())..(2 * tenth).min(samples.len())];
    let late = &samples[samples.len().saturating_sub(tenth)..];
    let (fd_early, rss_early) = mean(early);
    let (fd_late, rss_late) = mean(late);
    println!(
        "flatness: fds {fd_early:.0} -> {fd_late:.0}, resident {rss_early:.1} -> {rss_late:.1} MiB (early tenth after warm-up -> last tenth); samples in {}",
        csv_path.display()
    );
    let panicked = panics.load(Relaxed);
    let mut ok = true;
    let mut check = |holds: bool, what: &str| {
        println!("{} {what}", if holds { "ok  " } else { "FAIL" });
        ok &= holds;
    };
    check(corrupt == 0, "no connection received a wrong byte");
    check(
        short <= fired,
        "connections cut short <= faults that cut them",
    );
    check(errors == 0, "no connection hung");
    check(panicked == 0, "faultline never panicked");
    check(status.success(), "faultline exited cleanly on SIGTERM");
    check(fd_late <= fd_early + FD_MARGIN, "fd count flat");
    check(
        rss_late <= rss_early + RSS_MARGIN_MIB,
        "resident memory flat",
    );
    check(
        (launched as f64) >= 0.9 * rate * secs.min(minutes * 60.0),
        "the connection rate was held (>= 90%)",
    );
    Ok(ok)
}
