//! Long-running child processes of the tests (the built `faultline run`/`serve-store`, servers
//! such as `git annex p2phttp` or `wsgidav`) and bounded one-shot commands, with their output in
//! files so no pipe can fill up; everything stopped by PID.
#![allow(dead_code)] // shared by several test files; each uses only some helpers

use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::process::{self, Finished};

/// For a daemon to print its address or accept connections, or to exit after SIGTERM.
pub const START_LIMIT: Duration = Duration::from_secs(30);

/// The built faultline binary.
pub const FAULTLINE: &str = env!("CARGO_BIN_EXE_faultline");

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

/// Runs `command` with stdout and stderr in `LOGS/LABEL.{stdout,stderr}`, killing it by PID after
/// `limit` (which fails the test).
pub fn run_bounded(command: &mut Command, logs: &Path, label: &str, limit: Duration) -> Finished {
    let out = logs.join(format!("{label}.stdout"));
    let err = logs.join(format!("{label}.stderr"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(File::create(&out).expect("create a stdout file"))
        .stderr(File::create(&err).expect("create a stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {label} ({command:?}): {e}"));
    let Some(status) = process::wait_within(&mut child, limit) else {
        process::kill_if_running(&mut child);
        panic!(
            "{label} did not finish within {limit:?}; killed pid {}\nstdout:\n{}\nstderr:\n{}",
            child.id(),
            read_lossy(&out),
            read_lossy(&err)
        );
    };
    Finished {
        status,
        stdout: read_lossy(&out),
        stderr: read_lossy(&err),
    }
}

/// A long-running child, output in files, stopped by PID (SIGKILL on drop if still running).
pub struct Daemon {
    label: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Daemon {
    /// Starts `command` with its output in `LOGS/LABEL.{stdout,stderr}`.
    pub fn start(command: &mut Command, logs: &Path, label: &str) -> Daemon {
        let stdout = logs.join(format!("{label}.stdout"));
        let stderr = logs.join(format!("{label}.stderr"));
        let child = command
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create a stdout file"))
            .stderr(File::create(&stderr).expect("create a stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
        Daemon {
            label: label.to_string(),
            child,
            stdout,
            stderr,
        }
    }

    /// Everything it printed so far (stdout then stderr).
    pub fn output(&self) -> String {
        format!("{}{}", read_lossy(&self.stdout), read_lossy(&self.stderr))
    }

    /// The address in the `listening on ADDR` line faultline prints on stderr once it accepts.
    pub fn faultline_address(&mut self) -> SocketAddr {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let text = read_lossy(&self.stderr);
            if let Some((_, rest)) = text.split_once("listening on ") {
                let addr = rest.split([',', ' ', '\n']).next().unwrap_or_default();
                return addr
                    .parse()
                    .unwrap_or_else(|e| panic!("{}: bad address {addr:?}: {e}", self.label));
            }
            self.assert_alive(deadline, "printed no address");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the daemon has printed `needle` (stdout or stderr) and returns all it printed:
    /// for servers that print the address they bound (e.g. `moto_server -p 0`).
    pub fn wait_printed(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let text = self.output();
            if text.contains(needle) {
                return text;
            }
            self.assert_alive(deadline, &format!("printed no {needle:?}"));
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `addr` accepts TCP connections (for servers that print no address).
    pub fn wait_accepting(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + START_LIMIT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            self.assert_alive(deadline, &format!("accepted nothing on {addr}"));
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn assert_alive(&mut self, deadline: Instant, what: &str) {
        if let Some(status) = self.child.try_wait().expect("poll a daemon") {
            panic!("{} exited ({status}):\n{}", self.label, self.output());
        }
        assert!(
            Instant::now() < deadline,
            "{} {what} within {START_LIMIT:?}:\n{}",
            self.label,
            self.output()
        );
    }

    /// SIGTERM by PID, then a bounded wait; returns what it printed.
    pub fn stop(mut self) -> Finished {
        let pid = self.child.id().to_string();
        let sent = process::sigterm(&self.child);
        assert!(sent.success(), "kill -TERM {pid} ({}) failed", self.label);
        let status = process::wait_within(&mut self.child, START_LIMIT).unwrap_or_else(|| {
            panic!(
                "{} (pid {pid}) did not exit within {START_LIMIT:?} of SIGTERM",
                self.label
            )
        });
        Finished {
            status,
            stdout: read_lossy(&self.stdout),
            stderr: read_lossy(&self.stderr),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        process::kill_if_running(&mut self.child);
    }
}

/// A free loopback port for a server that cannot be told to bind port 0: bound and released
/// right away (another process could take it in between; the caller's start then fails loudly).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
