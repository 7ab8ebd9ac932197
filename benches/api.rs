//! The control API under load (issue 14): API calls per second sustained while traffic flows
//! through another proxy, what that load does to the traffic's round-trip times, and how soon a
//! toxic added or removed over the API acts on an open connection.
//!
//! In one process: `faultline serve`'s API (the library's `api::server` on 127.0.0.1:0) on a
//! 2-worker runtime, an echo upstream, blocking std clients on threads (ping-pong traffic, API
//! clients on keep-alive connections paced to BENCH_API_RATE calls/s, default 1000, for
//! BENCH_API_SECONDS, default 5). Prints a Markdown table for benches/RESULTS.md.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use faultline::api::{server, Api};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A keep-alive HTTP/1.1 client: one request, its status.
struct Client(TcpStream);

impl Client {
    fn new(api: SocketAddr) -> Client {
        let stream = TcpStream::connect(api).expect("connect to the API");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Client(stream)
    }

    fn call(&mut self, method: &str, path: &str, body: &str) -> u16 {
        write!(
            self.0,
            "{method} {path} HTTP/1.1\r\nHost: api\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.0.read_exact(&mut byte).expect("read the head");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        self.0.read_exact(&mut body).expect("read the body");
        status
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// Ping-pong round trips of 64 bytes through `proxy` until `stop`; (when, how long) each.
fn traffic(proxy: SocketAddr, stop: Arc<AtomicBool>) -> Vec<(Instant, Duration)> {
    let mut stream = TcpStream::connect(proxy).expect("connect to the proxy");
    stream.set_nodelay(true).expect("nodelay");
    let mut samples = Vec::new();
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        stream.write_all(&[7u8; 64]).expect("write");
        stream.read_exact(&mut buf).expect("read");
        samples.push((started, started.elapsed()));
        thread::sleep(Duration::from_millis(1));
    }
    samples
}

fn main() {
    let rate = env("BENCH_API_RATE", 1000);
    let seconds = env("BENCH_API_SECONDS", 5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let api = Arc::new(Api::new(None, Some(1), "bench".into()));
    let (api_addr, echo_addr) = runtime.block_on(async {
        let listeners = server::bind("127.0.0.1:0").await.expect("bind the API");
        let addr = listeners[0].local_addr().expect("addr");
        tokio::spawn(server::serve(
            listeners,
            api.clone(),
            tokio_util::sync::CancellationToken::new(),
        ));
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("echo");
        let echo_addr = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        (addr, echo_addr)
    });
    let mut admin = Client::new(api_addr);
    let mut listen = |name: &str| -> SocketAddr {
        let body =
            format!(r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{echo_addr}"}}"#);
        assert_eq!(admin.call("POST", "/proxies", &body), 201);
        let mut c = Client::new(api_addr);
        let _ = c.call("GET", &format!("/proxies/{name}"), "");
        drop(c);
        // The listen address, read back from the registry.
        let registry = runtime.block_on(api.registry.lock());
        registry
            .proxy(name)
            .expect("created")
            .listen()
            .parse()
            .expect("an address")
    };
    let traffic_proxy = listen("traffic");
    let live_proxy = listen("live");
    listen("churn");

    // Phase 1: traffic alone; phase 2: traffic while API clients call at `rate`.
    let stop = Arc::new(AtomicBool::new(false));
    let flow = {
        let stop = stop.clone();
        thread::spawn(move || traffic(traffic_proxy, stop))
    };
    thread::sleep(Duration::from_secs(seconds));
    let load_start = Instant::now();
    let threads = 4u64;
    let per_thread = rate / threads;
    let loaders: Vec<_> = (0..threads)
        .map(|t| {
            thread::spawn(move || {
                let mut client = Client::new(api_addr);
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let interval = Duration::from_secs_f64(1.0 / per_thread as f64);
                let start = Instant::now();
                let mut i = 0u64;
                while start.elapsed() < Duration::from_secs(seconds) {
                    let due = start + interval * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                    let name = format!("t{t}_{}", i / 4);
                    let (method, path, body, want) = match i % 4 {
                        0 => (
                            "POST",
                            "/proxies/churn/toxics".to_string(),
                            format!(r#"{{"name":"{name}","type":"latency","attributes":{{"latency":1}}}}"#),
                            200,
                        ),
                        1 => ("GET", format!("/proxies/churn/toxics/{name}"), String::new(), 200),
                        2 => ("DELETE", format!("/proxies/churn/toxics/{name}"), String::new(), 204),
                        _ => ("GET", "/proxies".to_string(), String::new(), 200),
                    };
                    let started = Instant::now();
                    if client.call(method, &path, &body) != want {
                        errors += 1;
                    }
                    latencies.push(started.elapsed());
                    i += 1;
                }
                (latencies, errors, start.elapsed())
            })
        })
        .collect();
    let mut calls = Vec::new();
    let mut errors = 0;
    let mut longest = Duration::ZERO;
    for loader in loaders {
        let (latencies, e, took) = loader.join().expect("a load thread");
        calls.extend(latencies);
        errors += e;
        longest = longest.max(took);
    }
    let load_end = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let samples = flow.join().expect("traffic");
    let mut before: Vec<Duration> = samples
        .iter()
        .filter(|(at, _)| *at < load_start)
        .map(|(_, d)| *d)
        .collect();
    let mut during: Vec<Duration> = samples
        .iter()
        .filter(|(at, _)| *at >= load_start && *at < load_end)
        .map(|(_, d)| *d)
        .collect();
    before.sort();
    during.sort();
    calls.sort();
    let achieved = calls.len() as f64 / longest.as_secs_f64();

    // Effect: a 200 ms latency toxic added (then removed) on a connection already open; the API
    // answers once the new rules are in force, so the next chunk is already delayed.
    let mut open = TcpStream::connect(live_proxy).expect("connect");
    open.set_nodelay(true).expect("nodelay");
    let mut buf = [0u8; 8];
    let mut add_times = Vec::new();
    let mut remove_times = Vec::new();
    let mut missed = 0;
    let mut control = Client::new(api_addr);
    for _ in 0..20 {
        let started = Instant::now();
        let status = control.call(
            "POST",
            "/proxies/live/toxics",
            r#"{"name":"slow","type":"latency","stream":"upstream","attributes":{"latency":200}}"#,
        );
        add_times.push(started.elapsed());
        assert_eq!(status, 200);
        let sent = Instant::now();
        open.write_all(&buf).expect("write");
        open.read_exact(&mut buf).expect("read");
        if sent.elapsed() < Duration::from_millis(200) {
            missed += 1;
        }
        let started = Instant::now();
        assert_eq!(control.call("DELETE", "/proxies/live/toxics/slow", ""), 204);
        remove_times.push(started.elapsed());
        let sent = Instant::now();
        open.write_all(&buf).expect("write");
        open.read_exact(&mut buf).expect("read");
        if sent.elapsed() >= Duration::from_millis(200) {
            missed += 1;
        }
    }
    add_times.sort();
    remove_times.sort();

    println!("| measure | value |");
    println!("|---|---:|");
    println!("| API calls/s asked | {rate} |");
    println!(
        "| API calls/s achieved | {achieved:.0} ({} calls, {errors} failed) |",
        calls.len()
    );
    println!(
        "| API call p50 / p99 / max ms | {} / {} / {} |",
        ms(percentile(&calls, 0.5)),
        ms(percentile(&calls, 0.99)),
        ms(*calls.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "| traffic RTT p50 / p99 ms, no API load | {} / {} ({} round trips) |",
        ms(percentile(&before, 0.5)),
        ms(percentile(&before, 0.99)),
        before.len()
    );
    println!(
        "| traffic RTT p50 / p99 ms, under API load | {} / {} ({} round trips) |",
        ms(percentile(&during, 0.5)),
        ms(percentile(&during, 0.99)),
        during.len()
    );
    println!(
        "| add toxic → in force p50 / max ms | {} / {} |",
        ms(percentile(&add_times, 0.5)),
        ms(*add_times.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "| remove toxic → lifted p50 / max ms | {} / {} |",
        ms(percentile(&remove_times, 0.5)),
        ms(*remove_times.last().unwrap_or(&Duration::ZERO))
    );
    println!("| next chunk not under the new rules | {missed} of 40 |");
    runtime.block_on(api.shutdown());
}
