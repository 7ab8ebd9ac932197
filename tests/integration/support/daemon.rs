//! Long-running child processes of the tests (the built `faultline run`/`serve-store`, servers
//! such as `git annex p2phttp` or `wsgidav`) and bounded one-shot commands, with their output in
//! files so no pipe can fill up; everything stopped by PID.
#![allow(dead_code)] // shared by several test files; each uses only some helpers

use std::collections::HashSet;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
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

/// The whole lines of `path` so far: a line being written is left out, because writers print
/// one in several write(2) calls (Rust's unbuffered stderr writes `127`, `.`, `0`, … of an
/// address one by one), so a reader between two of them would see half an address.
fn complete_lines(path: &Path) -> String {
    let mut text = read_lossy(path);
    text.truncate(text.rfind('\n').map_or(0, |end| end + 1));
    text
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

    /// Its process id (to read `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far (stdout then stderr).
    pub fn output(&self) -> String {
        format!("{}{}", read_lossy(&self.stdout), read_lossy(&self.stderr))
    }

    /// The address in the `listening on ADDR` line faultline prints on stderr once it accepts.
    pub fn faultline_address(&mut self) -> SocketAddr {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let text = complete_lines(&self.stderr);
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

    /// Waits until the daemon has printed `needle` (stdout or stderr) on a whole line and returns
    /// every whole line it printed: for servers that print the address they bound (e.g.
    /// `moto_server -p 0`).
    pub fn wait_printed(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let text = format!(
                "{}{}",
                complete_lines(&self.stdout),
                complete_lines(&self.stderr)
            );
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
/// right away. Another process can take it in between, so start such servers with
/// [`Daemon::start_on_free_port`], which checks the listener is the server's and retries.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// How many free ports [`Daemon::start_on_free_port`] tries before failing the test.
const PORT_ATTEMPTS: usize = 5;

impl Daemon {
    /// Starts a server that must be told its port (nginx, wsgidav) on a [`free_port`] and returns
    /// it with the address it listens on, once it listens there itself. Were the port taken
    /// between [`free_port`] and the server's bind (parallel tests, their clients' ephemeral
    /// ports), the server exits with "Address already in use" and is started again on another
    /// port, at most [`PORT_ATTEMPTS`] times; any other exit fails the test.
    pub fn start_on_free_port(
        logs: &Path,
        label: &str,
        mut command: impl FnMut(u16) -> Command,
    ) -> (Daemon, SocketAddr) {
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let mut daemon = Daemon::start(&mut command(port), logs, label);
            if let Some(addr) = daemon.wait_listening(Some(port)) {
                return (daemon, addr);
            }
            let output = daemon.output();
            assert!(
                output
                    .to_ascii_lowercase()
                    .contains("address already in use"),
                "{label} exited:\n{output}"
            );
            println!("{label}: port {port} was taken (attempt {attempt}), trying another");
        }
        panic!("{label}: {PORT_ATTEMPTS} free ports were all taken before it could bind one");
    }

    /// Waits until the daemon (or a process it started, as `git annex` starts `git-annex`) has a
    /// listening TCP socket (on `port`, if given) and returns its address: for servers told to
    /// bind port 0 that print no address, and to tell the server's own listener from another
    /// process's on the same port. `None` when the daemon exited first.
    pub fn wait_listening(&mut self, port: Option<u16>) -> Option<SocketAddr> {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if self.child.try_wait().expect("poll a daemon").is_some() {
                return None;
            }
            let ours = socket_inodes(&process_tree(self.child.id()));
            if let Some(addr) = listeners()
                .into_iter()
                .find(|(addr, inode)| ours.contains(inode) && port.is_none_or(|p| addr.port() == p))
                .map(|(addr, _)| addr)
            {
                return Some(addr);
            }
            assert!(
                Instant::now() < deadline,
                "{} listened on no port {port:?} within {START_LIMIT:?}:\n{}",
                self.label,
                self.output()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `pid` and every process below it, from each process's parent in `/proc/PID/stat` (the
/// `children` files need a kernel option a CI machine may lack).
fn process_tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            // PID (COMM) STATE PPID …, where COMM may hold spaces and parentheses.
            let after_comm = &stat[stat.rfind(')')? + 1..];
            let parent = after_comm.split_whitespace().nth(1)?.parse().ok()?;
            Some((child, parent))
        })
        .collect();
    let mut tree = vec![pid];
    let mut next = 0;
    while next < tree.len() {
        let parent = tree[next];
        next += 1;
        tree.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
    }
    tree
}

/// The inodes of the sockets the processes `pids` hold open.
fn socket_inodes(pids: &[u32]) -> HashSet<u64> {
    pids.iter()
        .filter_map(|pid| fs::read_dir(format!("/proc/{pid}/fd")).ok())
        .flatten()
        .flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Every listening IPv4 TCP socket on this host: its address and inode (`/proc/net/tcp`).
fn listeners() -> Vec<(SocketAddr, u64)> {
    let table = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&"0A") {
                return None; // not TCP_LISTEN
            }
            let (ip, port) = fields.get(1)?.split_once(':')?;
            // The address is its network-order bytes printed as one native-endian u32.
            let ip = Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.to_ne_bytes());
            let port = u16::from_str_radix(port, 16).ok()?;
            let inode = fields.get(9)?.parse().ok()?;
            Some((SocketAddr::from((ip, port)), inode))
        })
        .collect()
}
