//! Child processes of the tests (the built `faultline`, dvc, python): what a finished one did,
//! bounded waits, SIGTERM by PID, and never leaving one running.

use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished process did.
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl Finished {
    /// The exit code; `None` when a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Stdout then stderr, for failure messages.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Polls `child` until it exits; `None` when it is still running after `limit` (the caller
/// decides what that failure says, and whether to kill it).
pub fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("poll a child process") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends SIGTERM to `child` by its PID, as a service manager would; returns how `kill` exited.
pub fn sigterm(child: &Child) -> ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill")
}

/// Kills `child` (SIGKILL through its handle, i.e. by PID) and reaps it, if it is still running:
/// for `Drop`, so that a failing test never leaves a process behind.
pub fn kill_if_running(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
