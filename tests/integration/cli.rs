//! The real binary: exit codes, `check`, `run` flags and summaries.
//!
//! Every test runs the built `faultline` as a user would, with real sockets on `127.0.0.1:0`;
//! processes are stopped by PID and every wait is bounded.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::support::process::{self, Finished};
use crate::support::temp_dir::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_faultline");
const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
/// Far above what any command needs: reaching it means a hang.
const LIMIT: Duration = Duration::from_secs(30);

/// A running `faultline`: its output is drained by threads (so it never blocks on a full pipe),
/// and stderr lines are also handed over as they come. Killed by PID if the test gives up.
struct Process {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    stderr_lines: mpsc::Receiver<String>,
    stdout_chunks: mpsc::Receiver<String>,
}

impl Process {
    fn spawn(command: &mut Command) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn faultline");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (chunks, stdout_chunks) = mpsc::channel();
        let stdout = thread::spawn(move || {
            let mut text = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.extend_from_slice(&buf[..n]);
                let _ = chunks.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            String::from_utf8_lossy(&text).into_owned()
        });
        let (tx, stderr_lines) = mpsc::channel();
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                text.push_str(&line);
                text.push('\n');
                let _ = tx.send(line);
            }
            text
        });
        Process {
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
            stderr_lines,
            stdout_chunks,
        }
    }

    /// Stdout up to (and including the chunk with) `needle`; fails if the process stays
    /// silent or ends first. Reads chunks, not lines: a status line has no newline.
    fn wait_for_stdout(&self, needle: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        let mut seen = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout_chunks.recv_timeout(left) {
                Ok(chunk) => {
                    seen.push_str(&chunk);
                    if seen.contains(needle) {
                        return seen;
                    }
                }
                Err(_) => panic!("faultline printed no {needle:?} on stdout: {seen}"),
            }
        }
    }

    /// The first stderr line containing `needle`; fails if the process ends or stays silent.
    fn wait_for_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("faultline printed no {needle:?} within {LIMIT:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("faultline closed stderr before printing {needle:?}")
                }
            }
        }
    }

    /// Sends SIGTERM, as a service manager would.
    fn terminate(&self) {
        let status = process::sigterm(&self.child);
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the exit (bounded) and collects the output.
    fn wait(mut self) -> Finished {
        let status = process::wait_within(&mut self.child, LIMIT)
            .unwrap_or_else(|| panic!("faultline did not exit within {LIMIT:?}"));
        let join = |handle: Option<JoinHandle<String>>| {
            handle
                .map(|h| h.join().expect("output reader thread"))
                .unwrap_or_default()
        };
        Finished {
            status,
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        process::kill_if_running(&mut self.child);
    }
}

/// Runs `faultline ARGS` to completion (bounded).
fn faultline(args: &[&str]) -> Finished {
    Process::spawn(Command::new(BIN).args(args)).wait()
}

/// Runs `faultline check FILES` to completion (bounded).
fn check(files: &[&Path]) -> Finished {
    Process::spawn(Command::new(BIN).arg("check").args(files)).wait()
}

/// `NAME.toml` in `dir`: a scenario named NAME with no rules, relaying to `builtin:echo`.
fn echo_scenario(dir: &TempDir, name: &str) -> PathBuf {
    dir.write(
        &format!("{name}.toml"),
        &format!("name = \"{name}\"\n[proxy]\nupstream = \"builtin:echo\"\n"),
    )
}

/// A port nobody listens on, kept bound so nothing else can take it while the test runs:
/// connecting to it is refused.
fn dead_port() -> (Socket, SocketAddr) {
    let socket =
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("create a socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind a port");
    let addr = socket
        .local_addr()
        .expect("bound address")
        .as_socket()
        .expect("an IP address");
    (socket, addr)
}

/// Echoes the first connection `listener` accepts (bounded), then half-closes; returns the
/// number of bytes echoed.
fn echo_once(listener: TcpListener) -> JoinHandle<io::Result<u64>> {
    thread::spawn(move || {
        listener.set_nonblocking(true)?;
        let deadline = Instant::now() + LIMIT;
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(LIMIT))?;
        let echoed = io::copy(&mut stream.try_clone()?, &mut stream)?;
        stream.shutdown(Shutdown::Write)?;
        Ok(echoed)
    })
}

/// Sends `payload` to `addr`, half-closes and reads everything back (bounded).
fn round_trip(addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to faultline");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream.write_all(payload).expect("send through faultline");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let mut back = Vec::new();
    stream.read_to_end(&mut back).expect("read the echo back");
    back
}

/// The address in `faultline: listening on ADDR, upstream …`.
fn listening_address(line: &str) -> SocketAddr {
    let rest = line
        .split_once("listening on ")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let addr = rest.split([',', ' ']).next().unwrap_or_default();
    addr.parse()
        .unwrap_or_else(|e| panic!("bad listen address {addr:?} in {line:?}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------------------------

#[test]
fn check_accepts_every_shipped_scenario() {
    let mut files: Vec<PathBuf> = fs::read_dir(SCENARIOS)
        .expect("list scenarios/")
        .map(|entry| entry.expect("scenarios/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("demo-tcp.toml")),
        "{files:?}"
    );
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = check(&paths);
    assert_eq!(out.code(), Some(0), "stderr:\n{}", out.stderr);
    for file in &files {
        assert!(
            out.stdout.contains(&format!("{}: ok", file.display())),
            "{} is not listed as ok:\n{}",
            file.display(),
            out.stdout
        );
    }
}

/// A bad scenario and where `check` must say the error is.
struct Bad {
    name: &'static str,
    text: &'static str,
    line: usize,
    /// `None` where the column is not pinned down (see the case).
    column: Option<usize>,
    /// Empty for syntax errors, which have no key.
    key: &'static str,
}

const BAD: &[Bad] = &[
    Bad {
        name: "unknown-key.toml",
        text: "# a typo in a key\nname = \"t\"\n\n[[rule]]\nname = \"a\"\nmatch = { conection = 2 }\nfault.refuse = {}\n",
        line: 6,
        column: Some(11),
        key: "rule[1].match.conection",
    },
    Bad {
        name: "bad-unit.toml",
        text: "# a unit nobody knows\n[[rule]]\nfault.reset = { after = \"64 parsecs\" }\n",
        line: 3,
        column: Some(25),
        key: "rule[1].fault.reset.after",
    },
    Bad {
        name: "probability.toml",
        text: "[[rule]]\nfault.refuse = {}\n\n[[rule]]\nmatch = { probability = 1.5 }\nfault.refuse = {}\n",
        line: 5,
        column: Some(25),
        key: "rule[2].match.probability",
    },
    Bad {
        // The column points at the fault (`reset`), not at `at`: only the line is pinned.
        name: "after-and-at.toml",
        text: "[[rule]]\nname = \"x\"\nfault.reset = { after = \"1KiB\", at = \"1s\" }\n",
        line: 3,
        column: None,
        key: "rule[1].fault.reset.at",
    },
    Bad {
        name: "direction-on-terminate.toml",
        text: "[[rule]]\nmatch = { direction = \"client->upstream\" }\nfault.terminate = { after = \"1s\" }\n",
        line: 2,
        column: Some(23),
        key: "rule[1].match.direction",
    },
    Bad {
        name: "syntax.toml",
        text: "name = \"x\"\n\n[proxy\nlisten = \"127.0.0.1:0\"\n",
        line: 3,
        column: Some(7),
        key: "",
    },
];

#[test]
fn check_locates_each_error_at_file_line_column_and_key() {
    let dir = TempDir::new("check-bad");
    for bad in BAD {
        let path = dir.write(bad.name, bad.text);
        let out = check(&[&path]);
        assert_eq!(out.code(), Some(2), "{}: stderr:\n{}", bad.name, out.stderr);
        let first = out.stderr.lines().next().unwrap_or_default();
        let prefix = format!("{}:{}:", path.display(), bad.line);
        let rest = first
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{}: expected {prefix:?}…, got {first:?}", bad.name));
        let (column, rest) = rest
            .split_once(": ")
            .unwrap_or_else(|| panic!("{}: no column in {first:?}", bad.name));
        let column: usize = column
            .parse()
            .unwrap_or_else(|_| panic!("{}: bad column in {first:?}", bad.name));
        if let Some(expected) = bad.column {
            assert_eq!(column, expected, "{}: {first:?}", bad.name);
        }
        if !bad.key.is_empty() {
            assert!(
                rest.starts_with(&format!("{}: ", bad.key)),
                "{}: expected key {:?} in {first:?}",
                bad.name,
                bad.key
            );
        }
        assert!(out.stdout.is_empty(), "{}: {}", bad.name, out.stdout);
    }
}

#[test]
fn check_reports_each_bad_file_once_and_lists_the_good_ones() {
    let dir = TempDir::new("check-many");
    let good = dir.write("good.toml", "[[rule]]\nfault.refuse = {}\n");
    let unit = dir.write("bad-unit.toml", BAD[1].text);
    let shipped = PathBuf::from(SCENARIOS).join("demo-tcp.toml");
    let unknown = dir.write("unknown-key.toml", BAD[0].text);
    let out = check(&[&good, &unit, &shipped, &unknown]);
    assert_eq!(
        out.code(),
        Some(2),
        "one bad file makes the whole check fail"
    );
    assert!(
        out.stdout
            .contains(&format!("{}: ok (1 rule)", good.display())),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("{}: ok", shipped.display())),
        "{}",
        out.stdout
    );
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.contains(": warning: "))
        .collect();
    assert_eq!(errors.len(), 2, "one line per bad file:\n{}", out.stderr);
    assert!(errors[0].starts_with(&format!("{}:3:25: ", unit.display())));
    assert!(errors[1].starts_with(&format!("{}:6:11: ", unknown.display())));
}

/// One rule reads `ok (1 rule)`, not `ok (1 rules)`.
#[test]
fn check_counts_one_rule_in_the_singular() {
    let dir = TempDir::new("check-one-rule");
    let one = dir.write(
        "one.toml",
        "name = \"one\"\n[[rule]]\nfault.reset = { after = \"1KiB\" }\n",
    );
    let out = check(&[&one]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("{}: ok (1 rule)\n", one.display())),
        "{}",
        out.stdout
    );
}

#[test]
fn check_warns_about_what_run_will_need() {
    let dir = TempDir::new("check-warn");
    let empty = dir.write("empty.toml", "");
    let out = check(&[&empty]);
    assert_eq!(out.code(), Some(0), "a valid file is ok: {}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("{}: ok (0 rules)", empty.display())),
        "{}",
        out.stdout
    );
    let upstream = format!("{}: warning: no upstream", empty.display());
    let rules = format!("{}: warning: no rules", empty.display());
    assert!(out.stderr.contains(&upstream), "{}", out.stderr);
    assert!(out.stderr.contains(&rules), "{}", out.stderr);
    let run = Command::new(BIN)
        .arg("run")
        .arg(&empty)
        .output()
        .expect("run faultline");
    assert_eq!(
        run.status.code(),
        Some(2),
        "run refuses what check warned about"
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("no upstream"));
}

/// `check` passed files `run` refused (a .pcap capture with capture_tls = "raw", an upstream_ca
/// that is missing), `keylog = "keys/kl.log"` failed in a missing folder, and `ca_dir`,
/// `upstream_ca` and `keylog` were read from the working directory instead of the scenario's
/// folder (`cd /tmp && faultline run /else/s.toml` found no CA).
#[test]
fn check_refuses_what_run_refuses_and_tls_paths_are_read_from_the_scenario_folder() {
    let dir = TempDir::new("check-run-agree");
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).expect("mkdir");
    let ca = faultline(&[
        "ca",
        "init",
        "--dir",
        &dir.path().join("ca").display().to_string(),
    ]);
    assert_eq!(ca.code(), Some(0), "{}", ca.stderr);
    let tls = "[proxy.tls]\nintercept = true\nca_dir = \"ca\"\n";
    let run = |scenario: &Path| {
        Process::spawn(
            Command::new(BIN)
                .arg("run")
                .arg(scenario)
                .args(["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9"])
                .env_remove("FAULTLINE_CA_DIR")
                .current_dir(&elsewhere),
        )
    };

    let pcap = dir.write(
        "pcap.toml",
        &format!("[proxy]\ncapture = \"caps/x.pcap\"\n{tls}capture_tls = \"raw\"\n"),
    );
    let missing_ca = dir.write(
        "missing-ca.toml",
        &format!("{tls}upstream_ca = \"up/none.pem\"\n"),
    );
    let checked = check(&[&pcap, &missing_ca]);
    assert_eq!(checked.code(), Some(2), "{}", checked.stderr);
    assert!(
        checked.stderr.contains(&format!(
            "{}:2:11: proxy.capture: capture_tls = \"raw\" needs a pcapng capture",
            pcap.display()
        )),
        "{}",
        checked.stderr
    );
    let none = dir.path().join("up/none.pem");
    assert!(
        checked.stderr.contains(&format!(
            "{}:4:15: proxy.tls.upstream_ca: {}",
            missing_ca.display(),
            none.display()
        )),
        "{}",
        checked.stderr
    );
    for (file, said) in [
        (&pcap, "needs a pcapng capture".to_string()),
        (&missing_ca, none.display().to_string()),
    ] {
        let out = run(file).wait();
        assert_eq!(
            out.code(),
            Some(2),
            "run {}: {}",
            file.display(),
            out.stderr
        );
        assert!(out.stderr.contains(&said), "{}", out.stderr);
    }

    let good = dir.write(
        "good.toml",
        &format!(
            "{tls}keylog = \"keys/kl.log\"\n[[rule]]\nfault.latency = {{ delay = \"1ms\" }}\n"
        ),
    );
    let checked = check(&[&good]);
    assert_eq!(checked.code(), Some(0), "{}", checked.stderr);
    let process = run(&good);
    process.wait_for_stderr("listening on");
    assert!(
        dir.path().join("keys").is_dir(),
        "the key log's folder is created next to the scenario"
    );
    process.terminate();
    let out = process.wait();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
}

/// `run` never repeated what `check` warns about a rule, so a user who skipped `check` saw a rule
/// fire 0 times with no word why: the warning is said once at start.
#[test]
fn run_repeats_checks_rule_warnings_once_at_start() {
    let dir = TempDir::new("run-warns");
    let scenario = dir.write(
        "warn.toml",
        "[[rule]]\nname = \"cut\"\nmatch = { method = \"GET\", path = \"/x\" }\nfault.rst_stream = { after = \"1KiB\" }\n",
    );
    let checked = check(&[&scenario]);
    assert_eq!(checked.code(), Some(0), "{}", checked.stderr);
    let warning = "rule \"cut\": rst_stream counts `after` in request body bytes";
    assert!(checked.stderr.contains(warning), "{}", checked.stderr);
    let process = Process::spawn(Command::new(BIN).arg("run").arg(&scenario).args([
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--no-capture",
    ]));
    process.wait_for_stderr("listening on");
    process.terminate();
    let out = process.wait();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stderr.matches(warning).count(), 1, "{}", out.stderr);
    let listening = out.stderr.find("listening on").expect("listening line");
    assert!(
        out.stderr.find(warning).is_some_and(|at| at < listening),
        "said before the run starts:\n{}",
        out.stderr
    );
}

/// A trial's `check -qq` still printed warnings that `run -qq` hid, and `run` never said that
/// `{TIME}` in a capture template is not a placeholder (`check` did).
#[test]
fn qq_hides_checks_warnings_and_run_says_the_settings_warnings() {
    let dir = TempDir::new("check-qq");
    let scenario = dir.write(
        "qq.toml",
        "[proxy]\nupstream = \"127.0.0.1:9\"\ncapture = \"caps/{name}-{TIME}.pcapng\"\n[[rule]]\nmatch = { probability = 0.0 }\nfault.refuse = {}\n",
    );
    let warning = "{TIME} is not a placeholder";
    let loud = check(&[&scenario]);
    assert_eq!(loud.code(), Some(0), "{}", loud.stderr);
    assert!(loud.stderr.contains(warning), "{}", loud.stderr);
    let quiet = faultline(&["check", "-q", &scenario.display().to_string()]);
    assert!(
        quiet.stderr.contains(warning),
        "-q keeps warnings: {}",
        quiet.stderr
    );
    let silent = faultline(&["check", "-qq", &scenario.display().to_string()]);
    assert_eq!(silent.code(), Some(0), "{}", silent.stderr);
    assert_eq!(silent.stderr, "", "-qq hides warnings");
    assert!(silent.stdout.contains(": ok (1 rule)"), "{}", silent.stdout);
    let process = Process::spawn(
        Command::new(BIN)
            .current_dir(dir.path())
            .arg("run")
            .arg(&scenario)
            .args(["--listen", "127.0.0.1:0"]),
    );
    process.wait_for_stderr("listening on");
    process.terminate();
    let out = process.wait();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stderr.matches(warning).count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("probability = 0"), "{}", out.stderr);
}

#[test]
fn check_reports_a_syntax_error_on_one_line() {
    let dir = TempDir::new("check-syntax");
    let syntax = dir.write("syntax.toml", BAD[5].text);
    let unit = dir.write("bad-unit.toml", BAD[1].text);
    let out = check(&[&syntax, &unit]);
    assert_eq!(out.code(), Some(2));
    let errors: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(errors.len(), 2, "one line per bad file:\n{}", out.stderr);
    assert!(errors[0].starts_with(&format!("{}:3:7: ", syntax.display())));
    assert!(errors[1].starts_with(&format!("{}:3:25: ", unit.display())));
}

/// Issue 15: `run` on a missing scenario said "error:" and exited 1 where `check` exits 2 for the
/// same file; both now say the same line and exit 2 (bad input).
#[test]
fn run_and_check_agree_on_a_missing_scenario() {
    let dir = TempDir::new("run-missing");
    let missing = dir.path().join("no-such-scenario.toml");
    let checked = check(&[&missing]);
    let run = Process::spawn(Command::new(BIN).arg("run").arg(&missing)).wait();
    assert_eq!(run.code(), Some(2), "stderr:\n{}", run.stderr);
    assert_eq!(run.stderr, checked.stderr);
}

#[test]
fn check_names_a_missing_file() {
    let dir = TempDir::new("check-missing");
    let missing = dir.path().join("no-such-scenario.toml");
    let out = check(&[&missing]);
    assert_eq!(out.code(), Some(2), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains(&missing.display().to_string()),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// run
// ---------------------------------------------------------------------------------------------

#[test]
fn run_relays_with_flags_over_the_file_and_prints_a_summary_on_sigterm() {
    let dir = TempDir::new("run");
    // The file names a listen address that is taken and an upstream that is down: only the
    // flags make this run work.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (_dead, dead) = dead_port();
    let echo = TcpListener::bind("127.0.0.1:0").expect("bind the echo upstream");
    let echo_addr = echo.local_addr().expect("echo address");
    let echoed = echo_once(echo);
    let scenario = dir.write(
        "cli-run.toml",
        &format!(
            "name = \"cli-run\"\nseed = 1\n\n[proxy]\nlisten = \"{}\"\nupstream = \"{dead}\"\n",
            taken.local_addr().expect("taken address")
        ),
    );

    let process = Process::spawn(Command::new(BIN).arg("run").arg(&scenario).args([
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &echo_addr.to_string(),
        "--seed",
        "42",
    ]));
    let addr = listening_address(&process.wait_for_stderr("listening on"));
    assert_ne!(addr.port(), 0, "the real port is printed");
    let payload: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    let back = round_trip(addr, &payload);
    assert_eq!(back, payload, "echoed through the binary");
    let echoed = echoed
        .join()
        .expect("echo thread")
        .expect("the echo served the flag's upstream");
    assert_eq!(echoed, payload.len() as u64);

    process.terminate();
    let out = process.wait();
    assert_eq!(out.code(), Some(0), "stderr:\n{}", out.stderr);
    let n = payload.len();
    for expected in [
        "scenario \"cli-run\", --seed 42".to_string(),
        "connections: 1 (0 upstream failures)".to_string(),
        format!("bytes: client->upstream {n}, upstream->client {n}"),
        "rules: none (pass-through)".to_string(),
    ] {
        assert!(
            out.stdout.contains(&expected),
            "stdout lacks {expected:?}:\n{}",
            out.stdout
        );
    }
}

/// `--capture /dev/full` fails its header and the run exits 2; the "empty file claimed for the
/// run" that was then removed was the device itself (a CI trial running as root lost
/// /dev/full, and the next write made it a regular file).
#[test]
fn a_capture_device_that_fails_is_never_removed() {
    use std::os::unix::fs::FileTypeExt;
    let dir = TempDir::new("cli-dev-full");
    let scenario = echo_scenario(&dir, "full");
    let out = faultline(&[
        "run",
        &scenario.display().to_string(),
        "--listen",
        "127.0.0.1:0",
        "--capture",
        "/dev/full",
        "--",
        "true",
    ]);
    assert_eq!(out.code(), Some(2), "{}", out.output());
    let kind = fs::metadata("/dev/full")
        .expect("/dev/full exists")
        .file_type();
    assert!(
        kind.is_char_device(),
        "/dev/full is no longer a device: {kind:?}"
    );
}

/// `check -` reads the scenario from stdin (a CI step that generates it), naming it `-`.
#[test]
fn check_reads_a_scenario_from_stdin() {
    let check_stdin = |text: &str| {
        let mut child = Command::new(BIN)
            .args(["check", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn check");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write the scenario");
        let status = process::wait_within(&mut child, LIMIT).expect("check ends");
        let mut out = String::new();
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("stdout");
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut out)
            .expect("stderr");
        (status.code(), out)
    };
    let good = "[proxy]\nupstream = \"127.0.0.1:9\"\n[[rule]]\nfault.reset = { after = 1 }\n";
    assert_eq!(check_stdin(good), (Some(0), "-: ok (1 rule)\n".to_string()));
    let (code, out) =
        check_stdin("[proxy]\nupstream = \"127.0.0.1:9\"\n[[rule]]\nfault.reset = {}\n");
    assert_eq!(code, Some(2), "{out}");
    assert!(out.starts_with("-:4:7: rule[1].fault.reset.after"), "{out}");
}

/// A report that cannot be written whole is an error, not exit 0: a CI trial's
/// `inspect --json > full-disk/r.json` wrote 8 KiB of 31 and passed.
#[test]
fn a_report_that_cannot_be_written_to_stdout_fails() {
    let dir = TempDir::new("cli-stdout-full");
    let scenario = echo_scenario(&dir, "full");
    let capture = dir.path().join("c.pcapng").display().to_string();
    let run = faultline(&[
        "run",
        &scenario.display().to_string(),
        "--listen",
        "127.0.0.1:0",
        "--capture",
        &capture,
        "--",
        "true",
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.output());
    for format in ["--json", "--markdown"] {
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("open /dev/full");
        let mut child = Command::new(BIN)
            .args(["inspect", &capture, format])
            .stdout(full)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn inspect");
        let status = process::wait_within(&mut child, LIMIT).expect("inspect ends");
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read stderr");
        assert_eq!(status.code(), Some(2), "{format}: {stderr}");
        assert!(
            stderr.contains("cannot write the output to stdout: No space left on device"),
            "{format}: {stderr}"
        );
    }
}

/// An HTTPS request through a forward proxy that does not intercept TLS is a CONNECT tunnel of
/// opaque bytes: a trial's PUT rule fired 0 times with nothing said. The run says so, once.
#[test]
fn a_connect_tunnel_without_interception_says_http_rules_cannot_see_inside_it() {
    let dir = TempDir::new("cli-opaque-tunnel");
    let scenario = dir.write(
        "tunnel.toml",
        "[proxy]\nmode = \"forward\"\n\n[[rule]]\nname = \"put\"\nmatch = { method = \"PUT\" }\nfault.reset = { after = \"1B\" }\n",
    );
    let process = Process::spawn(
        Command::new(BIN)
            .arg("run")
            .arg(&scenario)
            .args(["--listen", "127.0.0.1:0"]),
    );
    let addr = listening_address(&process.wait_for_stderr("listening on"));
    for _ in 0..2 {
        let echo = TcpListener::bind("127.0.0.1:0").expect("bind the tunnel's target");
        let target = echo.local_addr().expect("target address");
        let echoed = echo_once(echo);
        let mut stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        write!(
            stream,
            "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
        )
        .expect("CONNECT");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).expect("the CONNECT answer");
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        stream
            .write_all(b"opaque")
            .expect("send through the tunnel");
        stream.shutdown(Shutdown::Write).expect("half-close");
        let mut back = Vec::new();
        stream.read_to_end(&mut back).expect("echo");
        assert_eq!(back, b"opaque");
        echoed.join().expect("echo thread").expect("echoed");
    }
    process.terminate();
    let out = process.wait();
    assert_eq!(out.code(), Some(0), "{}", out.output());
    assert_eq!(
        out.stderr
            .matches("CONNECT tunnel relayed as opaque bytes: HTTP rules cannot see the requests inside it")
            .count(),
        1,
        "{}",
        out.stderr
    );
}

/// Each run without `--store` made `/tmp/faultline-store-PID` and left it (a trial found 54).
/// The folder is named when the run starts and removed at the end when nothing was stored.
#[test]
fn a_fresh_store_folder_is_named_and_removed_when_nothing_was_stored() {
    let dir = TempDir::new("cli-fresh-store");
    let scenario = dir.write(
        "fresh-store.toml",
        "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"builtin:store\"\n",
    );
    let process = Process::spawn(Command::new(BIN).arg("run").arg(&scenario));
    let line = process.wait_for_stderr("listening on");
    let folder = line
        .split_once("(builtin:store, files in ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(folder, _)| PathBuf::from(folder))
        .unwrap_or_else(|| panic!("no store folder in {line:?}"));
    assert!(folder.is_dir(), "{} exists while running", folder.display());
    process.terminate();
    let out = process.wait();
    assert_eq!(out.code(), Some(0), "stderr:\n{}", out.stderr);
    assert!(
        !folder.exists(),
        "{} is removed: nothing was stored",
        folder.display()
    );
}

/// A trial's CA came from the environment (no `ca_dir` in the file) with a key others could
/// read: `check` located the error at 1:1 under `proxy.tls.ca_dir`, a key the file does not
/// have. It points at `intercept` and says where the CA came from.
#[test]
fn a_bad_ca_from_the_environment_is_located_at_intercept() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("cli-ca-env");
    let ca = dir.path().join("ca");
    let init = Process::spawn(Command::new(BIN).args(["ca", "init", "--dir"]).arg(&ca)).wait();
    assert_eq!(init.code(), Some(0), "{}", init.stderr);
    let key = ca.join("ca-key.pem");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
    let scenario = dir.write(
        "tls2.toml",
        "[proxy]\nupstream = \"127.0.0.1:9\"\n\n[proxy.tls]\nintercept = true\n",
    );
    let out = Process::spawn(
        Command::new(BIN)
            .arg("check")
            .arg(&scenario)
            .env("FAULTLINE_CA_DIR", &ca),
    )
    .wait();
    assert_eq!(out.code(), Some(2), "{}{}", out.stdout, out.stderr);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains(
            "tls2.toml:5:13: proxy.tls.intercept: the CA faultline found outside the file"
        ),
        "{said}"
    );
    assert!(said.contains("chmod 600"), "{said}");
}

/// A `status = 404` rule's summary said `matched 4 requests` when one response was a 404: it
/// counted every request that might have had the status. It counts the responses that had it.
#[test]
fn a_status_rule_counts_the_responses_that_had_the_status() {
    let dir = TempDir::new("run-status-count");
    let scenario = dir.write(
        "status.toml",
        "seed = 1\n[proxy]\nupstream = \"builtin:store\"\n[[rule]]\nname = \"slow 404\"\nmatch = { status = 404 }\nfault.latency = { delay = \"1ms\" }\n",
    );
    let store = dir.path().join("store");
    let process = Process::spawn(Command::new(BIN).arg("run").arg(&scenario).args([
        "--listen",
        "127.0.0.1:0",
        "--store",
        &store.display().to_string(),
        "--no-capture",
    ]));
    let addr = listening_address(&process.wait_for_stderr("listening on"));
    // No half-close (hyper drops a request whose client half-closed early): the store closes
    // after answering `Connection: close`.
    let request = |head: &str| {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .expect("connect to faultline");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream.write_all(head.as_bytes()).expect("send the request");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read the answer");
        String::from_utf8_lossy(&answer).into_owned()
    };
    let get = "GET /a HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n";
    let miss = request(get);
    assert!(
        miss.starts_with("HTTP/1.1 404"),
        "the first GET misses: {miss:?}"
    );
    let put =
        request("PUT /a HTTP/1.1\r\nHost: s\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
    assert!(put.starts_with("HTTP/1.1 2"), "{put}");
    for _ in 0..2 {
        let hit = request(get);
        assert!(hit.starts_with("HTTP/1.1 200"), "stored now: {hit:?}");
    }
    process.terminate();
    let out = process.wait();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("rule 1 \"slow 404\" (latency): matched 1 request (4 connections eligible)"),
        "{}",
        out.stdout
    );
}

/// Issue 15: `--listen localhost:PORT` was refused while `--upstream localhost:PORT` worked; both
/// take a name now, and the proxy listens on loopback and relays.
#[test]
fn run_listens_on_localhost_by_name() {
    let dir = TempDir::new("run-localhost");
    let scenario = dir.write(
        "echo.toml",
        "name = \"by-name\"\n[proxy]\nupstream = \"builtin:echo\"\n",
    );
    let process = Process::spawn(Command::new(BIN).arg("run").arg(&scenario).args([
        "--listen",
        "localhost:0",
        "--capture",
        &dir.path().join("c.pcapng").display().to_string(),
    ]));
    let addr = listening_address(&process.wait_for_stderr("listening on"));
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    assert_eq!(round_trip(addr, b"by name"), b"by name");
    process.terminate();
    let out = process.wait();
    assert_eq!(out.code(), Some(0), "stderr:\n{}", out.stderr);
}

#[test]
fn run_on_a_listen_address_in_use_exits_1_and_says_so() {
    let dir = TempDir::new("run-in-use");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("taken address");
    let (_dead, dead) = dead_port();
    let scenario = dir.write("s.toml", "name = \"in-use\"\n");
    let out = Process::spawn(Command::new(BIN).arg("run").arg(&scenario).args([
        "--listen",
        &addr.to_string(),
        "--upstream",
        &dead.to_string(),
    ]))
    .wait();
    assert_eq!(out.code(), Some(1), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "cannot listen on {addr} (--listen): Address already in use (os error 98); another process holds it: pass --listen 127.0.0.1:0"
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn run_with_a_missing_scenario_fails_naming_the_path() {
    let dir = TempDir::new("run-missing");
    let missing = dir.path().join("nowhere.toml");
    let (_dead, dead) = dead_port();
    let out = Process::spawn(Command::new(BIN).arg("run").arg(&missing).args([
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &dead.to_string(),
    ]))
    .wait();
    assert!(out.code().is_some_and(|c| c != 0), "exit {:?}", out.status);
    assert!(
        out.stderr.contains(&missing.display().to_string()),
        "{}",
        out.stderr
    );
}

/// `run --inspect` without a capture used to relay traffic until Ctrl-C and only then say it had
/// nothing to inspect; it is refused before it listens (exit 2), naming the flag to change.
#[test]
fn run_inspect_without_a_capture_is_refused_before_listening() {
    let (_dead, dead) = dead_port();
    let scenario = format!("{SCENARIOS}/reset-second-connection.toml");
    let no_capture = faultline(&[
        "run",
        &scenario,
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &dead.to_string(),
        "--inspect",
        "--no-capture",
    ]);
    assert_eq!(no_capture.code(), Some(2), "{}", no_capture.output());
    assert!(
        no_capture.stderr.contains("--inspect needs a capture")
            && no_capture.stderr.contains("--no-capture")
            && !no_capture.stderr.contains("listening on"),
        "{}",
        no_capture.stderr
    );
    // A scenario that names no capture: the hint is --capture.
    let dir = TempDir::new("run-inspect-no-capture");
    let bare = dir.write("bare.toml", "name = \"bare\"\n");
    let bare_run = faultline(&[
        "run",
        &bare.display().to_string(),
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &dead.to_string(),
        "--inspect",
    ]);
    assert_eq!(bare_run.code(), Some(2), "{}", bare_run.output());
    assert!(
        bare_run.stderr.contains("--capture PATH") && !bare_run.stderr.contains("listening on"),
        "{}",
        bare_run.stderr
    );
}

/// The global -v/-q/--log-format were listed in the middle of each subcommand's own options
/// (`run --help` showed `-v` between `--listen` and `--upstream`); they now have their own
/// "Logging" heading after them.
#[test]
fn help_lists_the_logging_options_under_their_own_heading() {
    for command in ["run", "inspect", "serve", "check"] {
        let help = faultline(&[command, "--help"]);
        assert_eq!(help.code(), Some(0), "{}", help.output());
        let heading = help
            .stdout
            .find("\nLogging:\n")
            .unwrap_or_else(|| panic!("{command} --help has no Logging heading:\n{}", help.stdout));
        let (own, logging) = help.stdout.split_at(heading);
        assert!(
            !own.contains("--verbose") && !own.contains("--log-format"),
            "{command}: {own}"
        );
        assert!(
            logging.contains("--verbose")
                && logging.contains("--quiet")
                && logging.contains("--log-format"),
            "{command}: {logging}"
        );
    }
}

/// `serve-store --dir` on a folder that cannot be created printed "listening on …, storing under
/// DIR" and then failed; it now fails first, naming the folder, and never says it listens.
#[test]
fn serve_store_on_a_folder_it_cannot_create_fails_before_listening() {
    let dir = TempDir::new("store-bad-dir");
    let file = dir.write("a-file", "not a folder");
    let inside = file.join("store");
    let out = faultline(&[
        "serve-store",
        "--listen",
        "127.0.0.1:0",
        "--dir",
        &inside.display().to_string(),
    ]);
    assert_eq!(out.code(), Some(2), "{}", out.output());
    assert!(
        out.stderr.contains("cannot create directory")
            && out.stderr.contains(&inside.display().to_string())
            && !out.output().contains("listening on"),
        "{}",
        out.output()
    );
}

/// A scenario's `store` that cannot be created is the user's to fix, as an uncreatable capture
/// folder is: `run` exits 2 (setup), not 1, and says which folder.
#[test]
fn run_with_a_store_folder_it_cannot_create_exits_2() {
    let dir = TempDir::new("run-store-bad-dir");
    let file = dir.write("a-file", "not a folder");
    let inside = file.join("store");
    let scenario = dir.write(
        "store.toml",
        &format!(
            "[proxy]\nupstream = \"builtin:store\"\nstore = {:?}\n",
            inside.display().to_string()
        ),
    );
    let out = faultline(&[
        "run",
        &scenario.display().to_string(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.code(), Some(2), "{}", out.output());
    assert!(
        out.stderr.contains("cannot create the store folder")
            && out.stderr.contains(&inside.display().to_string())
            && !out.output().contains("listening on"),
        "{}",
        out.output()
    );
}

/// The HTTP demo listed inspect's findings with the headline (the first finding, which the text
/// report prints last so a terminal ends on it) at the bottom: 2nd, 3rd, …, then 1st. They now
/// come headline first, then grouped by file, exactly the findings `inspect --json` lists.
#[test]
fn http_demo_lists_inspect_findings_headline_first() {
    let dir = TempDir::new("demo-http-order");
    let out = Process::spawn(Command::new(BIN).arg("demo").current_dir(dir.path())).wait();
    assert_eq!(out.code(), Some(0), "{}", out.output());
    let (_, corrupt) = out
        .stdout
        .split_once("client 2 retries")
        .unwrap_or_else(|| panic!("no second client:\n{}", out.stdout));
    let capture = corrupt
        .lines()
        .find_map(|l| l.trim().strip_prefix("capture: "))
        .unwrap_or_else(|| panic!("no capture line:\n{corrupt}"));
    let printed: Vec<&str> = corrupt
        .lines()
        .filter_map(|l| l.trim().strip_prefix("inspect: "))
        .collect();
    let json = Process::spawn(
        Command::new(BIN)
            .args(["inspect", "--json", "--leg", "client", capture])
            .current_dir(dir.path()),
    )
    .wait();
    assert_eq!(json.code(), Some(1), "{}", json.output());
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let findings: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(findings.len() > 1 && findings.len() <= 8, "{}", json.stdout);
    // The headline leads; the others are grouped by file (report.rs checks the grouping), and
    // none is lost or invented.
    assert_eq!(printed.first(), findings.first(), "{}", out.stdout);
    let mut printed = printed;
    let mut findings = findings;
    printed.sort_unstable();
    findings.sort_unstable();
    assert_eq!(printed, findings, "{}", out.stdout);
}

/// `--help` says what each exit status means, so scripts can tell findings (1) from a setup to
/// fix (2).
#[test]
fn long_help_documents_the_exit_statuses() {
    let out = faultline(&["--help"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    for line in [
        "Exit status:",
        "0  success",
        "1  findings",
        "2  invalid input or setup",
    ] {
        assert!(out.stdout.contains(line), "{line:?} in:\n{}", out.stdout);
    }
}

#[test]
fn help_of_every_subcommand_explains_scenarios() {
    let top = faultline(&["--help"]);
    assert_eq!(top.code(), Some(0));
    for sub in ["run", "check", "demo"] {
        assert!(
            top.stdout.contains(sub),
            "--help lists {sub}:\n{}",
            top.stdout
        );
        let out = faultline(&[sub, "--help"]);
        assert_eq!(out.code(), Some(0), "{sub} --help: {}", out.stderr);
        assert!(
            out.stdout.to_lowercase().contains("scenario"),
            "{sub} --help says what it does with scenarios:\n{}",
            out.stdout
        );
    }
}

// ---------------------------------------------------------------------------------------------
// demo
// ---------------------------------------------------------------------------------------------

#[test]
fn tcp_demo_runs_four_connections_and_writes_a_capture_in_the_cwd() {
    let dir = TempDir::new("demo");
    let started = Instant::now();
    let out = Process::spawn(
        Command::new(BIN)
            .args(["demo", "--tcp"])
            .current_dir(dir.path()),
    )
    .wait();
    assert!(
        started.elapsed() < LIMIT,
        "the demo took {:?}",
        started.elapsed()
    );
    assert_eq!(out.code(), Some(0), "stderr:\n{}", out.stderr);
    for expected in ["flow 6 (client leg) -> flow 7", "connections: 4", "reset"] {
        assert!(
            out.stdout.contains(expected),
            "stdout lacks {expected:?}:\n{}",
            out.stdout
        );
    }
    let capture = crate::support::demo_capture(&out.stdout);
    assert!(capture.ends_with(".pcapng"), "{capture}");
    let file = dir.path().join(capture);
    let size = fs::metadata(&file)
        .unwrap_or_else(|e| panic!("{} was not written: {e}", file.display()))
        .len();
    assert!(size > 0, "{} is empty", file.display());
    assert!(
        file.starts_with(dir.path().join("captures")),
        "{}",
        file.display()
    );
}

/// The default demo tells the HTTP story: the rewinding client's capture inspects clean, the
/// other's shows corruption, both captures land in ./captures, well within 15 s.
#[test]
fn http_demo_tells_a_clean_retry_from_a_corrupt_one() {
    let dir = TempDir::new("demo-http");
    let started = Instant::now();
    let out = Process::spawn(Command::new(BIN).arg("demo").current_dir(dir.path())).wait();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "the demo took {took:?}");
    assert_eq!(
        out.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    let (clean, corrupt) = out
        .stdout
        .split_once("client 2 retries")
        .unwrap_or_else(|| panic!("no second client:\n{}", out.stdout));
    assert!(
        clean.contains("inspect: OK:"),
        "first client not clean:\n{clean}"
    );
    assert!(!clean.contains("CORRUPT"), "first client:\n{clean}");
    assert!(
        corrupt.contains("inspect: CORRUPT:"),
        "second client:\n{corrupt}"
    );
    assert!(corrupt.contains("empty body"), "second client:\n{corrupt}");
    let captures: Vec<_> = fs::read_dir(dir.path().join("captures"))
        .expect("captures folder")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "pcapng"))
        .collect();
    assert_eq!(captures.len(), 2, "one capture per client");
}

/// `faultline inspect CAPTURE | head -1` must not panic when the reader goes away: output to a
/// closed pipe is dropped quietly (regression: println! panicked with "Broken pipe").
#[test]
fn output_to_a_closed_pipe_is_not_a_panic() {
    let dir = TempDir::new("epipe");
    let mut child = Command::new(BIN)
        .args(["demo", "--tcp"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn faultline demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("read the first line");
    assert!(first.starts_with("faultline demo"), "{first:?}");
    // The reader is gone now (the pipe's read end was dropped with the BufReader).
    let stderr = child.stderr.take().expect("stderr");
    let mut errors = String::new();
    let started = Instant::now();
    BufReader::new(stderr)
        .read_to_string(&mut errors)
        .expect("read stderr");
    let status = child.wait().expect("wait for faultline");
    assert!(started.elapsed() < LIMIT, "demo hung after its reader left");
    assert!(!errors.contains("panicked"), "stderr:\n{errors}");
    assert_eq!(status.code(), Some(0), "stderr:\n{errors}");
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definition() {
    let bash = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .expect("run faultline");
    assert!(bash.status.success());
    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(
        script.contains("_faultline") && script.contains("inspect"),
        "{script}"
    );
    let man = Command::new(BIN)
        .arg("man")
        .output()
        .expect("run faultline");
    assert!(man.status.success());
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(page.contains(".TH faultline 1"), "{page}");
    let help = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run faultline");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("RUST_LOG") && help.contains("--verbose"),
        "{help}"
    );
}

/// `faultline man` names `faultline-run(1)` … under SUBCOMMANDS, but `faultline man run` was
/// refused: every page it names can be printed.
#[test]
fn every_page_the_man_page_names_can_be_printed() {
    let top = faultline(&["man"]);
    assert_eq!(top.code(), Some(0), "{}", top.stderr);
    let named: Vec<String> = top
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("faultline\\-")?.strip_suffix("(1)"))
        .map(|name| name.replace("\\-", "-"))
        .collect();
    assert!(named.iter().any(|n| n == "run"), "{}", top.stdout);
    for name in ["run", "check", "ca", "serve-store"] {
        assert!(named.iter().any(|n| n == name), "{name}: {named:?}");
        let page = faultline(&["man", name]);
        assert_eq!(page.code(), Some(0), "man {name}: {}", page.stderr);
        // The footer names the program (a trial read "run 0.1.0").
        let title = format!(
            ".TH faultline-{name} 1  \"faultline {}\"",
            env!("CARGO_PKG_VERSION")
        );
        assert!(page.stdout.contains(&title), "man {name}:\n{}", page.stdout);
    }
    let nested = faultline(&["man", "ca", "init"]);
    assert_eq!(nested.code(), Some(0), "{}", nested.stderr);
    assert!(
        nested.stdout.contains(".TH faultline-ca-init 1"),
        "{}",
        nested.stdout
    );
    assert!(nested.stdout.contains("\\-\\-dir"), "{}", nested.stdout);
    // `--help` says the pages are reachable "as SEE ALSO names them" (a trial found no SEE ALSO).
    let see_also = |page: &str| -> String {
        page.split(".SH \"SEE ALSO\"\n")
            .nth(1)
            .and_then(|rest| rest.split("\n.SH").next())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        see_also(&top.stdout).contains("\\fBfaultline\\-run\\fR(1)"),
        "{}",
        top.stdout
    );
    let ca = faultline(&["man", "ca"]);
    let ca_also = see_also(&ca.stdout);
    for page in ["faultline", "faultline\\-ca\\-init"] {
        assert!(
            ca_also.contains(&format!("\\fB{page}\\fR(1)")),
            "{page}: {}",
            ca.stdout
        );
    }
    assert!(
        see_also(&nested.stdout).contains("\\fBfaultline\\-ca\\fR(1)"),
        "{}",
        nested.stdout
    );
    let unknown = faultline(&["man", "nope"]);
    assert_eq!(unknown.code(), Some(2), "{}", unknown.stdout);
    assert!(
        unknown.stderr.contains("no subcommand `nope`"),
        "{}",
        unknown.stderr
    );
}

/// `faultline completions bash | head -1` and `faultline man | head` must end quietly when the
/// reader is gone (regression: clap_complete panicked with "failed to write completion file").
#[test]
fn documents_written_to_a_closed_pipe_end_quietly() {
    for args in [
        &["completions", "bash"][..],
        &["completions", "zsh"],
        &["man"],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = Command::new(BIN)
            .args(args)
            .stdout(writer)
            .output()
            .expect("run faultline");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn quiet_silences_the_info_lines_and_verbose_adds_debug_ones() {
    let dir = TempDir::new("verbosity");
    let scenario = dir.write("s.toml", "[proxy]\nupstream = \"builtin:echo\"\n");
    let lines = |flag: &str| {
        let process = Process::spawn(Command::new(BIN).arg("run").arg(&scenario).args([
            "--listen",
            "127.0.0.1:0",
            flag,
        ]));
        let addr = listening_address(&process.wait_for_stderr("listening on"));
        drop(std::net::TcpStream::connect(addr).expect("connect"));
        if flag == "-v" {
            process.wait_for_stderr("DEBUG");
        }
        process.terminate();
        process.wait().stderr
    };
    let quiet = lines("-q");
    assert!(!quiet.contains("INFO"), "{quiet}");
    let verbose = lines("-v");
    assert!(verbose.contains("DEBUG"), "{verbose}");
}

/// On a terminal, `run` keeps one live status line; `script` gives it a real pseudo-terminal.
#[test]
fn run_on_a_terminal_draws_a_live_status_line_and_none_on_a_pipe() {
    let dir = TempDir::new("status-line");
    let scenario = dir.write("s.toml", "[proxy]\nupstream = \"builtin:echo\"\n");
    let command = format!("{BIN} run {} --listen 127.0.0.1:0", scenario.display());
    let process = Process::spawn(Command::new("script").args(["-qec", &command, "/dev/null"]));
    // script puts the terminal's output (stderr included) on its stdout.
    let seen = process.wait_for_stdout("(Ctrl-C to stop)");
    let line = seen
        .lines()
        .find(|l| l.contains("listening on "))
        .expect("the listening line");
    drop(std::net::TcpStream::connect(listening_address(line)).expect("connect"));
    process.wait_for_stdout("0 open / 1 connection ·");
    // Idle, the line is not redrawn 4 times a second (a trial watched it flicker): over 1.5 s
    // nothing changes, so it stays as drawn. Absence over time needs the wait.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    process.terminate();
    let out = process.wait();
    let drawn = out.stdout.matches("0 open / 1 connection ·").count();
    assert!(drawn <= 2, "redrawn {drawn} times while idle");
    // The same run on a pipe has no status line (the other tests read its stderr plainly).
    let plain = Process::spawn(
        Command::new(BIN)
            .arg("run")
            .arg(&scenario)
            .args(["--listen", "127.0.0.1:0"]),
    );
    let _ = plain.wait_for_stderr("listening on");
    plain.terminate();
    let out = plain.wait();
    assert!(!out.stderr.contains(" open / "), "{}", out.stderr);
}

/// `run SCENARIO -- COMMAND`: a CI script's whole run in one command. The command finds the
/// proxy in FAULTLINE_LISTEN (here on a port faultline picked), the run stops when it exits, and
/// faultline exits with its status; with --inspect, with the verdict's, the command's printed.
#[test]
fn run_wraps_a_command_and_exits_with_its_status_or_the_verdicts() {
    let dir = TempDir::new("run-wrapped");
    let scenario = echo_scenario(&dir, "wrapped");
    let scenario = scenario.display().to_string();
    let client = "import os, socket\n\
                  host, port = os.environ['FAULTLINE_LISTEN'].rsplit(':', 1)\n\
                  s = socket.create_connection((host, int(port)), timeout=10)\n\
                  s.sendall(b'ping' * 1000)\n\
                  got = b''\n\
                  while len(got) < 4000:\n    got += s.recv(65536)\n\
                  assert got == b'ping' * 1000\n\
                  assert os.environ['FAULTLINE_URL'] == 'http://' + os.environ['FAULTLINE_LISTEN']\n\
                  raise SystemExit(7)\n";
    let plain = faultline(&[
        "run",
        &scenario,
        "--listen",
        "127.0.0.1:0",
        "--",
        "python3",
        "-c",
        client,
    ]);
    assert_eq!(plain.code(), Some(7), "{}", plain.output());
    assert!(
        plain
            .stdout
            .contains("connections: 1 (0 upstream failures)")
            && plain
                .stdout
                .contains("bytes: client->upstream 4000, upstream->client 4000")
            && plain.stdout.contains("exited with status 7"),
        "{}",
        plain.output()
    );
    assert!(
        plain.stderr.contains("until `python3 -c"),
        "{}",
        plain.stderr
    );

    let capture = dir.path().join("wrapped.pcapng").display().to_string();
    let inspected = faultline(&[
        "run",
        &scenario,
        "--listen",
        "127.0.0.1:0",
        "--capture",
        &capture,
        "--inspect",
        "--",
        "python3",
        "-c",
        client,
    ]);
    assert_eq!(
        inspected.code(),
        Some(0),
        "a clean capture: the verdict's 0, not the command's 7: {}",
        inspected.output()
    );
    assert!(
        inspected.stdout.contains("exited with status 7"),
        "{}",
        inspected.output()
    );
    // The plain report says what made the capture and how to replay it, as the others do.
    assert!(
        inspected.stdout.contains("run: faultline ")
            && inspected.stdout.contains("replay: faultline run "),
        "{}",
        inspected.output()
    );

    let missing = faultline(&[
        "run",
        &scenario,
        "--listen",
        "127.0.0.1:0",
        "--",
        "faultline-no-such-command",
    ]);
    assert_eq!(missing.code(), Some(127), "{}", missing.output());
    assert!(
        missing
            .stderr
            .contains("cannot run `faultline-no-such-command`: No such file or directory")
            && !missing.output().contains("panicked"),
        "{}",
        missing.output()
    );

    // A clean verdict of no traffic is no pass: the command never connected.
    let idle = faultline(&[
        "run",
        &scenario,
        "--listen",
        "127.0.0.1:0",
        "--capture",
        &dir.path().join("idle.pcapng").display().to_string(),
        "--inspect",
        "--",
        "true",
    ]);
    assert_eq!(idle.code(), Some(3), "{}", idle.output());
    assert!(
        idle.stderr
            .contains("no client connected: the clean verdict judged no traffic"),
        "{}",
        idle.output()
    );

    // A trailing `--` with nothing after it is a mistake, not a run until Ctrl-C.
    let nothing = faultline(&["run", &scenario, "--listen", "127.0.0.1:0", "--"]);
    assert_eq!(nothing.code(), Some(2), "{}", nothing.output());
    assert!(
        nothing.stderr.contains("nothing follows `--`"),
        "{}",
        nothing.output()
    );
}

/// Stopping a wrapped run: the command gets SIGTERM; one that ignores it is killed at the second
/// stop signal (the impatient Ctrl-C), not only when the 10 s grace runs out.
#[test]
fn run_stops_its_command_and_a_second_stop_kills_it_at_once() {
    let dir = TempDir::new("run-wrapped-stop");
    let scenario = echo_scenario(&dir, "stop");
    let scenario = scenario.display().to_string();
    let wrapped = |script: &str| {
        Process::spawn(Command::new(BIN).args([
            "run",
            &scenario,
            "--listen",
            "127.0.0.1:0",
            "--",
            "sh",
            "-c",
            script,
        ]))
    };

    let obedient = wrapped("echo ready; sleep 30");
    obedient.wait_for_stdout("ready");
    obedient.terminate();
    let done = obedient.wait();
    assert!(
        done.stdout.contains(
            "was killed by signal 15 (exit 143) after faultline, told to stop, sent it SIGTERM"
        ),
        "{}",
        done.output()
    );

    // With --inspect, a stopped run's clean verdict covers half a test: the command's status.
    let capture = dir.path().join("stop.pcapng").display().to_string();
    let inspected = Process::spawn(Command::new(BIN).args([
        "run",
        &scenario,
        "--listen",
        "127.0.0.1:0",
        "--capture",
        &capture,
        "--inspect",
        "--",
        "sh",
        "-c",
        "echo ready; sleep 30",
    ]));
    inspected.wait_for_stdout("ready");
    inspected.terminate();
    let done = inspected.wait();
    assert_eq!(done.code(), Some(143), "{}", done.output());
    assert!(
        done.stderr
            .contains("the run was stopped before its command ended"),
        "{}",
        done.output()
    );

    let stubborn = wrapped("trap '' TERM; echo ready; sleep 30");
    stubborn.wait_for_stdout("ready");
    stubborn.terminate();
    thread::sleep(Duration::from_millis(300));
    let second = Instant::now();
    stubborn.terminate();
    let done = stubborn.wait();
    assert!(
        second.elapsed() < Duration::from_secs(5),
        "killed at the second signal, not after the grace: {:?}",
        second.elapsed()
    );
    assert_eq!(done.code(), Some(137), "{}", done.output());
    assert!(
        done.stderr.contains("was stopped a second time; killed")
            && done.stdout.contains("was killed by signal 9"),
        "{}",
        done.output()
    );
}

/// What the inspection would refuse about its outputs is refused before the command runs: a
/// CI trial's `--html` naming the capture, and `--html -` with `--json`, were refused only once
/// its whole test had run.
#[test]
fn run_inspect_output_problems_are_refused_before_the_command_runs() {
    let dir = TempDir::new("run-inspect-early");
    let scenario = echo_scenario(&dir, "early");
    let scenario = scenario.display().to_string();
    let capture = dir.path().join("early.pcapng").display().to_string();
    let ran = dir.path().join("ran");
    let marker = format!("touch {}", ran.display());
    for html in [
        vec!["--html", capture.as_str()],
        vec!["--html", "-", "--json"],
        vec!["--html", "-"],
    ] {
        let mut args = vec![
            "run",
            scenario.as_str(),
            "--listen",
            "127.0.0.1:0",
            "--capture",
            capture.as_str(),
            "--inspect",
        ];
        args.extend(html.iter().copied());
        args.extend(["--", "sh", "-c", marker.as_str()]);
        let out = faultline(&args);
        assert_eq!(out.code(), Some(2), "{html:?}: {}", out.output());
        assert!(!ran.exists(), "{html:?}: the command ran: {}", out.output());
    }
}

/// `run --json`: a CI step reads the rule counters and the verdict from one JSON document on
/// stdout, not from the text summary.
#[test]
fn run_json_is_one_document_with_the_summary_the_command_and_the_inspection() {
    let dir = TempDir::new("run-json");
    let scenario = dir.write(
        "json.toml",
        "name = \"json\"\n[proxy]\nupstream = \"builtin:echo\"\n\n[[rule]]\nname = \"cut\"\nmatch = { direction = \"upstream->client\" }\nfault.truncate = { after = \"3B\" }\n",
    );
    let capture = dir.path().join("json.pcapng").display().to_string();
    let client = "import os, socket\n\
                  host, port = os.environ['FAULTLINE_LISTEN'].rsplit(':', 1)\n\
                  s = socket.create_connection((host, int(port)), timeout=10)\n\
                  s.sendall(b'hello')\n\
                  got = b''\n\
                  while True:\n    chunk = s.recv(100)\n    if not chunk: break\n    got += chunk\n\
                  print('the command speaks on stdout')\n\
                  raise SystemExit(0 if got == b'hel' else 9)\n";
    let run = faultline(&[
        "run",
        &scenario.display().to_string(),
        "--listen",
        "127.0.0.1:0",
        "--capture",
        &capture,
        "--inspect",
        "--json",
        "--",
        "python3",
        "-c",
        client,
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.output());
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    let summary = &doc["run"]["summary"];
    assert_eq!(summary["connections"], 1, "{doc:#}");
    assert_eq!(summary["rules"][0]["name"], "cut", "{doc:#}");
    assert_eq!(summary["rules"][0]["fired"], 1, "{doc:#}");
    assert_eq!(doc["run"]["command"]["status"], 0, "{doc:#}");
    assert_eq!(doc["run"]["scenario"], "json", "{doc:#}");
    assert_eq!(doc["inspect"]["verdict"], "clean", "{doc:#}");
    // The command's own stdout went to stderr, not in front of the document.
    assert!(
        run.stderr.contains("the command speaks on stdout"),
        "{}",
        run.output()
    );
    // A chosen seed survives a reader holding JSON numbers as doubles (jq, JavaScript).
    let seed = doc["run"]["seed"].as_u64().expect("a seed");
    assert!(seed < 1 << 53, "{seed}");
}
