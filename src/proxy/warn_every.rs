//! At most one warning per interval for a failure that repeats per connection (an upstream
//! that is down, a process out of file descriptors): the first goes out at once, the next ones
//! say how many were held back. A thousand clients a second must not make a thousand log lines.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

/// Shared by every connection of a run; lock-free.
#[derive(Debug)]
pub struct WarnEvery {
    start: Instant,
    every: Duration,
    /// Milliseconds since `start` of the last warning, plus one (0: none yet).
    last: AtomicU64,
    /// Failures not warned about since the last warning.
    held: AtomicU64,
}

impl WarnEvery {
    /// A limiter allowing one warning per `every`.
    pub fn new(every: Duration) -> Self {
        WarnEvery {
            start: Instant::now(),
            every,
            last: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// One more failure at `now`: `Some(n)` when it is to be warned about, `n` being the
    /// failures held back since the last warning; `None` when it is held back.
    pub fn failure(&self, now: Instant) -> Option<u64> {
        let at = now.saturating_duration_since(self.start).as_millis() as u64 + 1;
        let last = self.last.load(Relaxed);
        let due = last == 0 || at.saturating_sub(last) >= self.every.as_millis() as u64;
        if due
            && self
                .last
                .compare_exchange(last, at, Relaxed, Relaxed)
                .is_ok()
        {
            return Some(self.held.swap(0, Relaxed));
        }
        self.held.fetch_add(1, Relaxed);
        None
    }

    /// The failures held back since the last warning, now taken: said when the run ends, so a
    /// burst that stopped before the next warning was due is not left unsaid.
    pub fn take_held_back(&self) -> u64 {
        self.held.swap(0, Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_warns_then_one_per_interval_with_the_count_held_back() {
        let limiter = WarnEvery::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(limiter.take_held_back(), 0);
        assert_eq!(limiter.failure(t0), Some(0));
        for n in 1..=40 {
            assert_eq!(limiter.failure(t0 + Duration::from_millis(n)), None);
        }
        assert_eq!(limiter.failure(t0 + Duration::from_millis(1001)), Some(40));
        assert_eq!(limiter.failure(t0 + Duration::from_millis(1002)), None);
        // The one held back after the last warning is there to be said at the end, once.
        assert_eq!(limiter.take_held_back(), 1);
        assert_eq!(limiter.take_held_back(), 0);
    }
}
