//! The process's open-file limit: raised from the soft to the hard limit at start, as Go's runtime
//! and haproxy do, because every proxied connection costs file descriptors.
//!
//! Distributions ship a soft limit of 1024 for compatibility with `select(2)`, which faultline never
//! uses; the hard limit (often 20,000 to 1,048,576) is what an administrator actually granted.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tracing::{debug, warn};

/// The soft limit after [`raise`]; 0 until then (a library user who never called it: no check).
static SOFT_LIMIT: AtomicU64 = AtomicU64::new(0);
/// fds kept free beyond two per connection: pooled or busy splice pipes, the capture file, DNS.
const RESERVE: u64 = 32;

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

/// Whether one more connection (client leg + upstream leg: 2 fds) fits under the limit, given
/// `active` connections and the `baseline` fds open before any connection. Accepting a client
/// whose upstream leg then cannot be opened would reset it; leaving it in the listen backlog
/// lets it be served as soon as another connection ends.
pub fn another_connection_fits(active: u64, baseline: u64) -> bool {
    match SOFT_LIMIT.load(Relaxed) {
        0 => true,
        limit => baseline + RESERVE + 2 * (active + 1) <= limit,
    }
}

/// The soft limit [`raise`] left in force, 0 when it was never called.
pub fn soft_limit() -> u64 {
    SOFT_LIMIT.load(Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_leaves_soft_equal_to_hard() {
        let limit = raise().expect("getrlimit works on Linux");
        assert_eq!(limit.soft, limit.hard);
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
        assert_eq!((soft, hard), (limit.soft, limit.hard));
    }
}
