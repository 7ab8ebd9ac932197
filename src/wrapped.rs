//! The command `faultline run SCENARIO -- COMMAND` wraps: started once the proxy listens, told
//! where in its environment, and the proxy stops when it exits.
//!
//! Without it a CI script backgrounds `faultline run`, waits for the port, runs its client and
//! kills faultline by PID, and a port picked with `--listen 127.0.0.1:0` has to be scraped from
//! stderr. Wrapped, the run is one command whose exit status a script can test, like `timeout`
//! or `strace`: the command's own, or with `--inspect` the capture's verdict.

use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::watch;

/// Environment variable holding the proxy's listen address (`127.0.0.1:3030`, `[::1]:3030`).
pub const LISTEN_VAR: &str = "FAULTLINE_LISTEN";
/// Environment variable holding the proxy's base URL (`http://127.0.0.1:3030`).
pub const URL_VAR: &str = "FAULTLINE_URL";
/// How long a command stopped by faultline (SIGTERM) has to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A command running through the proxy.
#[derive(Debug)]
pub struct Wrapped {
    child: Child,
    /// The command as the user wrote it, for messages.
    pub shown: String,
}

/// How the command ended.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    /// Its exit status.
    pub status: ExitStatus,
    /// True when faultline was told to stop (SIGINT, SIGTERM, SIGHUP) before the command
    /// exited, and sent SIGTERM to it and every process it started.
    pub stopped: bool,
}

impl Wrapped {
    /// Starts `command` (program and arguments) with the proxy's address in its environment;
    /// its stdin, stdout and stderr are faultline's, except that with `stdout_to_stderr` (under
    /// `run --json`) its stdout is faultline's stderr: stdout holds faultline's one JSON
    /// document, which a trial's `| jq` could not parse behind the command's own output.
    pub fn spawn(
        command: &[OsString],
        listen: SocketAddr,
        stdout_to_stderr: bool,
    ) -> io::Result<Wrapped> {
        use std::os::fd::AsFd;
        let shown = shown(command);
        let Some((program, args)) = command.split_first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no command"));
        };
        let listen = connectable(listen);
        become_subreaper();
        let mut child = Command::new(program);
        child
            .args(args)
            .env(LISTEN_VAR, listen.to_string())
            .env(URL_VAR, format!("http://{listen}"))
            .kill_on_drop(true);
        if stdout_to_stderr {
            child.stdout(std::process::Stdio::from(
                io::stderr().as_fd().try_clone_to_owned()?,
            ));
        }
        let child = child.spawn()?;
        Ok(Wrapped { child, shown })
    }

    /// Waits for the command to exit, or for faultline's own stop signal (`signals` counts
    /// them): then the command and every process it started get SIGTERM and [`STOP_GRACE`] to
    /// exit before they are killed; a second stop signal kills them at once. Processes the
    /// command left running when it exited on its own are stopped too, and said.
    pub async fn wait_or_stop(mut self, mut signals: watch::Receiver<u32>) -> io::Result<Ended> {
        tokio::select! {
            status = self.child.wait() => {
                let status = status?;
                stop_leftovers(&self.shown);
                return Ok(Ended { status, stopped: false });
            }
            _ = signals.changed() => {}
        }
        // The command's own children too (`sh -c 'a && b'` runs b as one): a trial's `sleep`
        // outlived faultline. Listed again at each signal: one forked after a listing (a
        // shell starting its next command as the stop came) was missed and kept the test's
        // output pipe open for 30 s.
        self.signal_family(libc::SIGTERM);
        let why = if *signals.borrow_and_update() > 1 {
            "was stopped a second time".to_string()
        } else {
            tokio::select! {
                status = self.child.wait() => {
                    let status = status?;
                    stop_leftovers(&self.shown);
                    return Ok(Ended { status, stopped: true });
                }
                () = tokio::time::sleep(STOP_GRACE) => {
                    format!("did not exit within {} s of SIGTERM", STOP_GRACE.as_secs())
                }
                _ = signals.changed() => "was stopped a second time".to_string(),
            }
        };
        tracing::warn!(command = %self.shown, "the command {why}; killed");
        self.signal_family(libc::SIGKILL);
        let status = self.child.wait().await?;
        stop_leftovers(&self.shown);
        Ok(Ended {
            status,
            stopped: true,
        })
    }

    /// Sends `signal` to the command (while it is not yet reaped) and to every live process
    /// under faultline (what the command started, also those whose parent already exited: they
    /// are faultline's, see [`become_subreaper`]).
    fn signal_family(&self, signal: libc::c_int) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) with a pid we spawned and have not yet reaped (`id` is `None`
            // once `wait` returned), so it cannot name another process; it touches no memory.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
        }
        for descendant in descendants(std::process::id()) {
            // SAFETY: kill(2) touches no memory of ours; a descendant that exited since it was
            // listed makes it fail with ESRCH (pids are not reused that fast).
            unsafe { libc::kill(descendant, signal) };
        }
    }
}

/// Makes faultline the "subreaper" of what it starts: a process whose parent exits is
/// reparented to faultline instead of init, so a stop still finds what a wrapped command left
/// behind (a `sleep &` of a shell that exited, a daemon that double-forked).
fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) only sets a flag of this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Processes the command started and left running when it ended (a server in the background, a
/// `nohup`): the proxy they used stops with the run, so they are stopped too (SIGTERM), and
/// said: a CI trial found them running on with nothing said.
fn stop_leftovers(shown: &str) {
    let left = descendants(std::process::id());
    if left.is_empty() {
        return;
    }
    let listed: Vec<String> = left.iter().map(ToString::to_string).collect();
    tracing::warn!(
        command = %shown,
        "the command left {} running (pid {}): sending SIGTERM",
        faultline::plural::count(left.len(), "process"),
        listed.join(", ")
    );
    for pid in left {
        // SAFETY: kill(2) touches no memory of ours; see `signal_family`.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// The address a client connects to for `listen`: a proxy listening on every interface
/// (`0.0.0.0`, `[::]`) is reached on loopback (a trial's command got `http://0.0.0.0:PORT`).
fn connectable(listen: SocketAddr) -> SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

/// `command` as a shell would take it back (words with spaces or quotes quoted).
pub fn shown(command: &[OsString]) -> String {
    faultline::shell::line(command.iter().map(|word| word.to_string_lossy()))
}

impl Ended {
    /// The exit code a shell would give: the command's, or 128 + the signal that killed it.
    pub fn code(&self) -> u8 {
        exit_code(self.status)
    }

    /// "exited with status 3", "was killed by signal 9 (exit 137)".
    pub fn describe(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        let how = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => {
                format!("was killed by signal {signal} (exit {})", self.code())
            }
            (None, None) => format!("ended with {}", self.status),
        };
        match self.stopped {
            true => format!("{how} after faultline, told to stop, sent it SIGTERM"),
            false => how,
        }
    }
}

/// Every live descendant of `pid` (children, their children, …; zombies left out), read from
/// `/proc`: the processes a wrapped command started, which a stop must reach too.
fn descendants(pid: u32) -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // (pid, parent pid) of every process; `stat` is "PID (COMM) STATE PPID …", COMM may hold
    // spaces and parentheses, so fields are counted after its last ')'.
    let parents: Vec<(libc::pid_t, libc::pid_t)> = entries
        .flatten()
        .filter_map(|entry| {
            let pid: libc::pid_t = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let after = &stat[stat.rfind(')')? + 1..];
            let mut fields = after.split_whitespace();
            // An exited process not yet reaped (an orphan reparented to faultline) is gone.
            if matches!(fields.next()?, "Z" | "X") {
                return None;
            }
            let ppid = fields.next()?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![pid as libc::pid_t];
    while let Some(parent) = frontier.pop() {
        for &(child, _) in parents.iter().filter(|(_, ppid)| *ppid == parent) {
            if !found.contains(&child) && found.len() < 4096 {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// A shell's exit code for `status`.
fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + (signal & 0x7f)).unwrap_or(1),
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_wildcard_listen_is_reached_on_loopback() {
        let addr = |text: &str| text.parse::<SocketAddr>().expect("addr");
        assert_eq!(connectable(addr("0.0.0.0:80")), addr("127.0.0.1:80"));
        assert_eq!(connectable(addr("[::]:80")), addr("[::1]:80"));
        assert_eq!(connectable(addr("127.0.0.2:80")), addr("127.0.0.2:80"));
    }

    #[test]
    fn exit_codes_are_the_shells() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
        // Killed by SIGKILL (9): 137, as sh reports it.
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
    }

    /// The tests of one process share it as subreaper, and a stop reaches every process under
    /// it: one test at a time, or one test's stop would end another's command.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// Waits (at most 5 s) until `pid` is no longer alive: gone, or a zombie (one left
    /// unreaped by faultline as subreaper, or by an init that never reaps).
    fn assert_gone_within_5s(pid: libc::pid_t, what: &str) {
        let alive = |pid: libc::pid_t| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rfind(')')
                    .and_then(|at| stat[at + 1..].split_whitespace().next())
                    .is_some_and(|state| state != "Z" && state != "X")
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "{what} {pid} outlived the stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop signals counted as `main` counts them, one after each delay (ms, from the last);
    /// none when `delays` is empty.
    fn stop_signals_after(delays: &[u64]) -> watch::Receiver<u32> {
        let (count, signals) = watch::channel(0u32);
        let delays = delays.to_vec();
        tokio::spawn(async move {
            for delay in delays {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                count.send_modify(|n| *n += 1);
            }
            // Held open: a closed channel is not a signal.
            std::future::pending::<()>().await;
        });
        signals
    }

    #[tokio::test]
    async fn a_second_stop_kills_a_command_that_ignores_sigterm() {
        let _serial = SERIAL.lock().await;
        let command: Vec<OsString> = ["sh", "-c", "trap '' TERM; sleep 30"]
            .iter()
            .map(OsString::from)
            .collect();
        let wrapped =
            Wrapped::spawn(&command, "127.0.0.1:1".parse().expect("addr"), false).expect("sh runs");
        let started = std::time::Instant::now();
        let ended = wrapped
            .wait_or_stop(stop_signals_after(&[300, 300]))
            .await
            .expect("waits");
        assert!(ended.stopped);
        assert_eq!(ended.code(), 137, "{}", ended.describe());
        assert!(started.elapsed() < STOP_GRACE, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn the_command_sees_the_address_and_its_status_comes_back() {
        let _serial = SERIAL.lock().await;
        let command: Vec<OsString> = ["sh", "-c", "test \"$FAULTLINE_URL\" = \"http://$FAULTLINE_LISTEN\" && test \"$FAULTLINE_LISTEN\" = 127.0.0.1:3030 && exit 5"]
            .iter()
            .map(OsString::from)
            .collect();
        let wrapped = Wrapped::spawn(&command, "127.0.0.1:3030".parse().expect("addr"), false)
            .expect("sh runs");
        let ended = wrapped
            .wait_or_stop(stop_signals_after(&[]))
            .await
            .expect("waits");
        assert_eq!(ended.code(), 5, "{}", ended.describe());
        assert!(!ended.stopped);
    }

    #[tokio::test]
    async fn a_stop_reaches_the_commands_own_children() {
        let _serial = SERIAL.lock().await;
        let dir = std::env::temp_dir().join(format!("faultline-wrapped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let pidfile = dir.join("grandchild.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let command: Vec<OsString> = ["sh", "-c", &script].iter().map(OsString::from).collect();
        let wrapped =
            Wrapped::spawn(&command, "127.0.0.1:1".parse().expect("addr"), false).expect("sh runs");
        let ended = wrapped
            .wait_or_stop(stop_signals_after(&[300]))
            .await
            .expect("waits");
        assert!(ended.stopped);
        let grandchild: libc::pid_t = std::fs::read_to_string(&pidfile)
            .expect("the script wrote its child's pid")
            .trim()
            .parse()
            .expect("a pid");
        assert_gone_within_5s(grandchild, "the command's own child");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A shell that starts `sleep` in the background and exits leaves it to faultline (its
    /// subreaper), which stops it: a CI trial's background children ran on, unsaid.
    #[tokio::test]
    async fn what_the_command_leaves_running_is_stopped() {
        let _serial = SERIAL.lock().await;
        let dir = std::env::temp_dir().join(format!("faultline-leftover-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let pidfile = dir.join("left.pid");
        let script = format!("sleep 30 & echo $! > {}", pidfile.display());
        let command: Vec<OsString> = ["sh", "-c", &script].iter().map(OsString::from).collect();
        let wrapped =
            Wrapped::spawn(&command, "127.0.0.1:1".parse().expect("addr"), false).expect("sh runs");
        let ended = wrapped
            .wait_or_stop(stop_signals_after(&[]))
            .await
            .expect("waits");
        assert_eq!(ended.code(), 0);
        let left: libc::pid_t = std::fs::read_to_string(&pidfile)
            .expect("the script wrote its child's pid")
            .trim()
            .parse()
            .expect("a pid");
        assert_gone_within_5s(left, "the command's background child");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_stop_passes_sigterm_to_the_command() {
        let _serial = SERIAL.lock().await;
        let command: Vec<OsString> = ["sleep", "30"].iter().map(OsString::from).collect();
        let wrapped = Wrapped::spawn(&command, "127.0.0.1:1".parse().expect("addr"), false)
            .expect("sleep runs");
        let started = std::time::Instant::now();
        let ended = wrapped
            .wait_or_stop(stop_signals_after(&[50]))
            .await
            .expect("waits");
        assert!(ended.stopped);
        assert_eq!(ended.code(), 143, "{}", ended.describe());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            ended.describe().contains("signal 15"),
            "{}",
            ended.describe()
        );
    }
}
