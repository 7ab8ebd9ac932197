//! The boundary of a connection task: whatever happens inside — including a panic nobody
//! foresaw — the task ends cleanly for the run: the panic is caught, logged once and counted,
//! the sockets it owned are dropped (closed), and the run's `active` counter drops.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};

use tracing::error;

use super::RunShared;

/// Counts a connection as active for as long as it lives, on every path out.
#[derive(Debug)]
pub struct ActiveConnection {
    run: Arc<RunShared>,
}

impl ActiveConnection {
    /// Counts one more active connection in `run`.
    pub fn enter(run: Arc<RunShared>) -> Self {
        run.active.fetch_add(1, Relaxed);
        ActiveConnection { run }
    }
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.run.active.fetch_sub(1, Relaxed);
    }
}

/// Runs `task` (one connection, number `id`) so that a panic inside it ends only this task:
/// caught, logged with the connection id, counted in the run's summary.
///
/// The task is boxed before this future is made: an async fn keeps its arguments in its own
/// state, so a task passed by value would be stored twice per connection (once here, once in
/// the box being polled), doubling what an idle connection costs.
pub fn guarded(
    id: u64,
    run: Arc<RunShared>,
    task: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    guard_boxed(id, run, Box::pin(task))
}

async fn guard_boxed(id: u64, run: Arc<RunShared>, task: Pin<Box<dyn Future<Output = ()> + Send>>) {
    let _active = ActiveConnection::enter(run.clone());
    if let Err(panic) = CatchUnwind(task).await {
        run.stats.panics.fetch_add(1, Relaxed);
        error!(conn = id, panic = %panic_message(&panic), "connection task panicked; its sockets are closed and the run goes on");
    }
    run.events
        .emit(|| super::events::RunEvent::Closed { connection: id });
}

/// The text a panic carried, when it carried text.
fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Polls a future, turning a panic while polling into an error. The future is boxed, so no
/// pinning projection (and no `unsafe`) is needed; after a panic it is dropped, never polled
/// again.
struct CatchUnwind(Pin<Box<dyn Future<Output = ()> + Send>>);

impl Future for CatchUnwind {
    type Output = Result<(), Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_caught_counted_and_releases_what_the_task_held() {
        let run = RunShared::for_tests();
        let held = Arc::new(());
        let inside = held.clone();
        guarded(7, run.clone(), async move {
            let _keep = inside;
            tokio::task::yield_now().await;
            panic!("boom");
        })
        .await;
        assert_eq!(run.stats.panics.load(Relaxed), 1);
        assert_eq!(run.active.load(Relaxed), 0);
        assert_eq!(Arc::strong_count(&held), 1, "the task's state was dropped");
        guarded(8, run.clone(), async {}).await;
        assert_eq!(run.stats.panics.load(Relaxed), 1);
        assert_eq!(run.active.load(Relaxed), 0);
    }
}
