//! The process's open-file limit: raised from the soft to the hard limit at start, as Go's runtime
//! and haproxy do, because every proxied connection costs file descriptors.
//!
//! Distributions ship a soft limit of 1024 for compatibility with `select(2)`, which faultline never
//! uses; the hard limit (often 20,000 to 1,048,576) is what an administrator actually granted.

use tracing::{debug, warn};

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
        return Some(FdLimit { soft, hard });
    }
    match rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard) {
        Ok(()) => {
            debug!(
                from = soft,
                to = hard,
                "raised the open-file soft limit to the hard limit"
            );
            Some(FdLimit { soft: hard, hard })
        }
        Err(e) => {
            warn!(soft, hard, error = %e, "cannot raise the open-file soft limit; fewer connections fit");
            Some(FdLimit { soft, hard })
        }
    }
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
