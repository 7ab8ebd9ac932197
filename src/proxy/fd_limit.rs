//! The process's open-file limit: raised from the soft to the hard limit at start, as Go's runtime
//! and haproxy do, because every proxied connection costs file descriptors.
//!
//! Distributions ship a soft limit of 1024 for compatibility with `select(2)`, which faultline never
//! uses; the hard limit (often 20,000 to 1,048,576) is what an administrator actually granted.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

use tracing::{debug, warn};

/// The soft limit after [`raise`]; 0 until then (a library user who never called it: no check).
static SOFT_LIMIT: AtomicU64 = AtomicU64::new(0);
/// fds kept free beyond what [`FdClaim`]s hold: listeners, the capture file, the keylog, DNS,
/// the control API's own connections.
const RESERVE: u64 = 32;
/// fds held by [`FdClaim`]s now, across every run of the process (`faultline serve` runs one
/// per proxy): connections' sockets and splice pipes.
static CLAIMED: AtomicU64 = AtomicU64::new(0);
/// fds open before the first connection (stdio, the runtime, the first listener).
static BASELINE: OnceLock<u64> = OnceLock::new();

/// File descriptors counted against the limit while this lives: a connection's two sockets, a
/// splice pipe's two ends. Budgeting them process-wide is what keeps an accepted client from
/// being reset because its upstream leg found no fd left (pipes taken by busy connections used
/// to eat the room the accept check had counted on).
#[derive(Debug)]
pub struct FdClaim(u64);

impl FdClaim {
    /// Counts `n` fds until dropped.
    pub fn new(n: u64) -> FdClaim {
        CLAIMED.fetch_add(n, Relaxed);
        FdClaim(n)
    }
}

impl Drop for FdClaim {
    fn drop(&mut self) {
        CLAIMED.fetch_sub(self.0, Relaxed);
    }
}

/// The soft and hard `RLIMIT_NOFILE` after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// What the process may open now.
    pub soft: u64,
    /// The ceiling the soft limit may be raised to without privileges.
    pub hard: u64,
}

/// Raises the soft open-file limit to the hard limit and says so at debug level. A failure is
/// logged and otherwise harmless: faultline then serves fewer connections at once, and the accept
/// loop backs off when it runs out.
pub fn raise() -> Option<FdLimit> {
    let (soft, hard) = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            warn!(error = %e, "cannot read the open-file limit");
            return None;
        }
    };
    if soft >= hard {
        debug!(soft, hard, "open-file limit already at its hard limit");
        SOFT_LIMIT.store(soft, Relaxed);
        return Some(FdLimit { soft, hard });
    }
    match rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard) {
        Ok(()) => {
            debug!(
                from = soft,
                to = hard,
                "raised the open-file soft limit to the hard limit"
            );
            SOFT_LIMIT.store(hard, Relaxed);
            Some(FdLimit { soft: hard, hard })
        }
        Err(e) => {
            warn!(soft, hard, error = %e, "cannot raise the open-file soft limit; fewer connections fit");
            SOFT_LIMIT.store(soft, Relaxed);
            Some(FdLimit { soft, hard })
        }
    }
}

/// fds open in this process now (Linux: entries of /proc/self/fd); 0 when unknown.
pub fn open_now() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64)
}

/// Records the fds open before any connection, once per process (later calls keep the first).
pub fn note_baseline() {
    BASELINE.get_or_init(open_now);
}

/// Whether `more` fds fit beside what is claimed, keeping `spare` free as well.
fn fits(more: u64, spare: u64) -> bool {
    match SOFT_LIMIT.load(Relaxed) {
        0 => true,
        limit => {
            let baseline = BASELINE.get().copied().unwrap_or(0);
            baseline + RESERVE + CLAIMED.load(Relaxed) + more + spare <= limit
        }
    }
}

/// Whether one more connection (client leg + upstream leg: 2 fds) fits under the limit.
/// Accepting a client whose upstream leg then cannot be opened would reset it; leaving it in
/// the listen backlog lets it be served as soon as another connection ends.
pub fn another_connection_fits() -> bool {
    fits(2, 0)
}

/// Whether a splice pipe (2 fds) may be opened: only while room for another connection stays
/// free too, since a connection without a pipe still relays (through the pump), and a client
/// without an fd for its upstream leg does not.
pub fn another_pipe_fits() -> bool {
    fits(2, 2)
}

/// The soft limit [`raise`] left in force, 0 when it was never called.
pub fn soft_limit() -> u64 {
    SOFT_LIMIT.load(Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_count_until_dropped() {
        let before = CLAIMED.load(Relaxed);
        let claim = FdClaim::new(2);
        assert!(CLAIMED.load(Relaxed) >= before + 2);
        drop(claim);
        // Other tests claim concurrently; ours is gone again.
        let pipe = FdClaim::new(0);
        drop(pipe);
    }

    #[test]
    fn raising_leaves_soft_equal_to_hard() {
        let limit = raise().expect("getrlimit works on Linux");
        assert_eq!(limit.soft, limit.hard);
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
        assert_eq!((soft, hard), (limit.soft, limit.hard));
    }
}
