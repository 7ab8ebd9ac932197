//! Waiting on a proxy run started in-process, so that its summary counts what the connections did.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use faultline::proxy::Running;
use tokio::time::{sleep, Instant};

/// How long connections may take to wind down after their clients are done.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// Waits until the proxy serves no connection any more (every task ended), failing after
/// [`SETTLE_LIMIT`].
pub async fn wait_idle(running: &Running) {
    let deadline = Instant::now() + SETTLE_LIMIT;
    loop {
        let active = running.shared.active.load(Relaxed);
        if active == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{active} connection(s) still served {SETTLE_LIMIT:?} after their clients finished"
        );
        sleep(Duration::from_millis(5)).await;
    }
}
