//! Production behaviour of the real binary under resource limits and in logs: the open-file limit
//! raised at start, 2 fds per idle connection, accept back-off when fds run out, plain or JSON
//! logs, and a listen error said once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::support::process::{kill_if_running, sigterm, wait_within};
use crate::support::temp_dir::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_faultline");
/// Far above what any step needs: reaching it means a hang.
const LIMIT: Duration = Duration::from_secs(30);

/// An echo upstream on 127.0.0.1:0 with a thread per connection (a test opens a few dozen).
fn echo_upstream() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo upstream");
    let addr = listener.local_addr().expect("echo address");
    thread::spawn(move || {
        for stream in listener.incoming().take(1000) {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// faultline started through `bash -c "ulimit …; exec faultline …"`, stderr collected.
struct Proxy {
    child: Child,
    addr: Option<std::net::SocketAddr>,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl Proxy {
    fn start(ulimit: &str, args: &[&str], envs: &[(&str, &str)]) -> Proxy {
        let dir = TempDir::new("scale");
        let scenario = dir.path().join("s.toml");
        std::fs::write(
            &scenario,
            "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:1\"\n",
        )
        .expect("write scenario");
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(format!("{ulimit} exec \"$0\" \"$@\""))
            .arg(BIN)
            .arg("run")
            .arg(&scenario)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            command.env(k, v);
        }
        command.env_remove("NO_COLOR");
        let mut child = command.spawn().expect("spawn faultline");
        let stderr = child.stderr.take().expect("piped stderr");
        let text = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let kept = text.clone();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut kept) = kept.lock() {
                    kept.push_str(&line);
                    kept.push('\n');
                }
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + LIMIT;
        let mut addr = None;
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        addr = rest.split([',', ' ']).next().and_then(|a| a.parse().ok());
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        Proxy {
            child,
            addr,
            stderr: text,
            reader: Some(reader),
            _dir: dir,
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.addr
            .unwrap_or_else(|| panic!("faultline did not listen:\n{}", self.stderr()))
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// SIGTERM, wait, and return everything it wrote on stderr.
    fn stop(mut self) -> String {
        sigterm(&self.child);
        let status = wait_within(&mut self.child, LIMIT);
        kill_if_running(&mut self.child);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        assert!(
            status.is_some_and(|s| s.success()),
            "faultline did not exit cleanly: {status:?}\n{}",
            self.stderr()
        );
        self.stderr()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        kill_if_running(&mut self.child);
    }
}

fn echo_through(stream: &mut TcpStream, message: &[u8]) {
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    stream.write_all(message).expect("write through faultline");
    let mut back = vec![0u8; message.len()];
    stream
        .read_exact(&mut back)
        .expect("echo through faultline");
    assert_eq!(back, message);
}

#[test]
fn the_soft_fd_limit_is_raised_and_an_idle_connection_costs_two_fds() {
    let upstream = echo_upstream();
    let proxy = Proxy::start(
        "ulimit -Sn 256 &&",
        &[
            "--upstream",
            &upstream.to_string(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[(
            "RUST_LOG",
            "faultline=info,faultline::proxy::fd_limit=debug",
        )],
    );
    let addr = proxy.addr();
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", proxy.child.id())).expect("limits");
    let open_files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files line")
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect();
    assert_eq!(
        open_files[0], open_files[1],
        "soft raised to hard: {limits}"
    );
    assert!(
        proxy
            .stderr()
            .contains("raised the open-file soft limit to the hard limit"),
        "{}",
        proxy.stderr()
    );
    // One connection first, so the pipe pool holds what a burst of data needs.
    let mut first = TcpStream::connect(addr).expect("connect");
    echo_through(&mut first, b"warm up");
    let before = proxy.fds();
    let mut idle = Vec::new();
    for i in 0..50u8 {
        let mut stream = TcpStream::connect(addr).expect("connect");
        echo_through(&mut stream, &[i; 16]);
        idle.push(stream);
    }
    let per_connection = (proxy.fds() - before) as f64 / 50.0;
    // Each exchange may leave one more pipe (two fds) in the pool; 50 connections bound that.
    assert!(
        per_connection <= 2.0 + 4.0 / 50.0,
        "{per_connection} fds per idle connection"
    );
    for stream in &mut idle {
        echo_through(stream, b"still here");
    }
    drop(idle);
    proxy.stop();
}

/// faultline in front of `upstream` with hard and soft limits of 80 fds: it cannot raise them,
/// and a dozen connections fit beside its reserve.
fn proxy_with_80_fds(upstream: std::net::SocketAddr) -> Proxy {
    Proxy::start(
        "ulimit -n 80 &&",
        &[
            "--upstream",
            &upstream.to_string(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[("RUST_LOG", "faultline=warn")],
    )
}

#[test]
fn out_of_fds_the_accept_loop_backs_off_warns_once_a_second_and_recovers() {
    let upstream = echo_upstream();
    let proxy = proxy_with_80_fds(upstream);
    let addr = proxy.addr();
    let mut served = Vec::new();
    // Connect more clients than fit, one at a time. Each served one holds 2 fds; once another
    // would not fit, the next clients wait in the listen backlog (none is accepted and reset).
    let started = Instant::now();
    let mut waiting = Vec::new();
    let mut reset = 0;
    for i in 0..40u8 {
        let mut stream = TcpStream::connect(addr).expect("connect (kernel backlog)");
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut back = [0u8; 8];
        match stream
            .write_all(&[i; 8])
            .and_then(|()| stream.read_exact(&mut back))
        {
            Ok(()) => served.push(stream),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => waiting.push((i, stream)),
            Err(_) => reset += 1,
        }
    }
    assert!(
        !served.is_empty() && !waiting.is_empty() && reset == 0,
        "served {}, waiting {}, reset {reset}",
        served.len(),
        waiting.len()
    );
    // Let the loop fail for a few seconds, then free fds: every waiting client is served.
    while started.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(100));
    }
    drop(served);
    // Each client from the backlog is served once fds are free, and leaves room for the next.
    for (i, mut stream) in waiting {
        stream.set_read_timeout(Some(LIMIT)).expect("timeout");
        let mut back = [0u8; 8];
        stream
            .read_exact(&mut back)
            .expect("a client from the backlog is served once fds are free");
        assert_eq!(back, [i; 8]);
    }
    // The loop can fail until the last waiting client is accepted, i.e. through the drain above
    // too (each freed fd is taken after a backoff of up to 200 ms): the warnings' window ends
    // here, not when the served clients were dropped.
    let failing_for = started.elapsed();
    let stderr = proxy.stop();
    let warnings = stderr.matches("clients wait in the listen backlog").count();
    let seconds = failing_for.as_secs_f64().ceil() as usize + 2;
    assert!(
        (1..=seconds).contains(&warnings),
        "{warnings} backlog warnings in ~{seconds} s:\n{stderr}"
    );
    assert!(stderr.contains("failures="), "{stderr}");
}

/// Busy connections take splice pipes (two fds per moving direction) beyond the two sockets the
/// accept check counts: they once used up the fds a newly accepted client's upstream leg needed,
/// and that client was reset. Pipes now come out of the same budget and leave room for another
/// connection (a connection without one relays through the pump): every client is served or
/// waits in the backlog, none is reset.
#[test]
fn busy_connections_pipes_never_cost_a_new_client_its_upstream_leg() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let upstream = echo_upstream();
    let proxy = proxy_with_80_fds(upstream);
    let addr = proxy.addr();
    // Fourteen connections that keep both directions moving: their pipes alone (4 fds each)
    // would take more fds than the reserve the accept check keeps.
    let stop = Arc::new(AtomicBool::new(false));
    let mut movers = Vec::new();
    for _ in 0..14 {
        let stream = TcpStream::connect(addr).expect("connect a busy client");
        let mut reader = stream.try_clone().expect("clone");
        let mut writer = stream;
        let stop_writing = stop.clone();
        movers.push(thread::spawn(move || {
            let chunk = vec![7u8; 64 * 1024];
            while !stop_writing.load(Ordering::Relaxed) {
                if writer.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = writer.shutdown(std::net::Shutdown::Write);
        }));
        movers.push(thread::spawn(move || {
            let mut sink = vec![0u8; 64 * 1024];
            while let Ok(n) = reader.read(&mut sink) {
                if n == 0 {
                    break;
                }
            }
        }));
    }
    thread::sleep(Duration::from_millis(300));
    let mut served = Vec::new();
    let mut waiting = 0;
    let mut reset = 0;
    for i in 0..30u8 {
        let mut stream = TcpStream::connect(addr).expect("connect (kernel backlog)");
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        let mut back = [0u8; 8];
        match stream
            .write_all(&[i; 8])
            .and_then(|()| stream.read_exact(&mut back))
        {
            Ok(()) => served.push(stream),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => waiting += 1,
            Err(_) => reset += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(served);
    for mover in movers {
        mover.join().expect("a mover thread");
    }
    let stderr = proxy.stop();
    assert_eq!(
        reset, 0,
        "{reset} clients reset ({waiting} waiting in the backlog):\n{stderr}"
    );
    assert!(
        !stderr.contains("cannot connect to upstream"),
        "an upstream leg found no fd:\n{stderr}"
    );
}

/// Every client of a dead upstream fails the same way: a trial saw one warning per
/// connection (41 in 1 ms). The first is logged, then at most one a second with a count.
#[test]
fn failed_upstream_connects_are_warned_about_once_a_second() {
    // A port nobody listens on: bound, then closed.
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let proxy = Proxy::start(
        "",
        &["--upstream", &dead.to_string(), "--listen", "127.0.0.1:0"],
        &[],
    );
    for _ in 0..30 {
        let mut client = std::net::TcpStream::connect(proxy.addr()).expect("connect");
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = [0u8; 16];
        // Reset (or closed) at once: the upstream is not there.
        let _ = std::io::Read::read(&mut client, &mut buf);
    }
    let stderr = proxy.stop();
    let warnings = stderr.matches("cannot connect to upstream").count();
    assert!(
        (1..=3).contains(&warnings),
        "{warnings} warnings:\n{stderr}"
    );
}

#[test]
fn logs_are_plain_off_a_terminal_and_json_on_request() {
    let upstream = echo_upstream();
    let proxy = Proxy::start(
        "",
        &[
            "--upstream",
            &upstream.to_string(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[("RUST_LOG", "faultline=info")],
    );
    let text = proxy.stop();
    assert!(text.contains("proxy started"), "{text}");
    assert!(!text.contains('\u{1b}'), "escape codes in a pipe: {text:?}");

    let proxy = Proxy::start(
        "",
        &[
            "--upstream",
            &upstream.to_string(),
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
        &[("RUST_LOG", "faultline=info")],
    );
    let text = proxy.stop();
    // Every stderr line is JSON, the "listening on" banner too (a log collector met it as
    // the one line of text).
    let logs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        logs.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("faultline: listening on "))),
        "{text}"
    );
    assert!(
        logs.iter()
            .any(|l| l["fields"]["message"] == "proxy started" && l["level"] == "INFO"),
        "{text}"
    );
}

#[test]
fn a_listen_address_in_use_is_reported_once() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let dir = TempDir::new("scale-listen");
    let scenario: PathBuf = dir.path().join("s.toml");
    std::fs::write(&scenario, "[proxy]\nupstream = \"127.0.0.1:1\"\n").expect("scenario");
    let out = Command::new(BIN)
        .arg("run")
        .arg(&scenario)
        .args(["--listen", &addr])
        .output()
        .expect("run faultline");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.matches("in use").count(),
        1,
        "the OS error appears once: {stderr}"
    );
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );

    // With `--log-format json` the fatal error is a JSON line too, not one line of text at the end.
    let out = Command::new(BIN)
        .args(["--log-format", "json", "run"])
        .arg(&scenario)
        .args(["--listen", &addr])
        .output()
        .expect("run faultline");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    let line: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(line["level"], "ERROR", "{stderr}");
    assert_eq!(line["fields"]["exit_code"], 1, "{stderr}");
    let message = line["fields"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );

    // A scenario error too (a trial: the FILE:LINE:COL line came as text among JSON lines).
    std::fs::write(&scenario, "[proxy]\nupstream = 5\n").expect("scenario");
    let out = Command::new(BIN)
        .args(["--log-format", "json", "run"])
        .arg(&scenario)
        .output()
        .expect("run faultline");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for l in stderr.lines() {
        let line: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {stderr}"));
        assert_eq!(line["fields"]["exit_code"], 2, "{stderr}");
        let message = line["fields"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("s.toml:2:12: proxy.upstream:"), "{stderr}");
    }
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
