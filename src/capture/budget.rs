//! The capture's memory budget, kept exact when a waiting recorder is cancelled.
//!
//! Recorders queue an event first and pay for it second, so an event is never lost because the
//! future recording it was dropped: a connection that ends with a fault (or a timer) drops its
//! other direction's pump wherever it waits, and the bytes that pump already read or wrote must
//! still reach the capture. A payment that never completes becomes debt; the writer's next
//! give-back pays the debt before it frees permits, so the budget neither grows nor shrinks.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

/// Bytes of queued capture events (see `sink::event_cost`): recorders take, the writer gives back.
#[derive(Debug)]
pub(crate) struct Budget {
    permits: Semaphore,
    size: usize,
    /// Costs of queued events whose recorder stopped waiting before it paid.
    debt: AtomicUsize,
}

impl Budget {
    /// A budget of `size` bytes (at least 1, at most what a semaphore holds).
    pub(crate) fn new(size: usize) -> Budget {
        let size = size.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Budget {
            permits: Semaphore::new(size),
            size,
            debt: AtomicUsize::new(0),
        }
    }

    /// The whole budget.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Takes `cost` (at most the whole budget) if it is free now.
    pub(crate) fn try_take(&self, cost: usize) -> bool {
        match self.permits.try_acquire_many(self.units(cost)) {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// Waits until `cost` is free and takes it. What is more than the whole budget (several events
    /// paid at once) is owed at once, so the wait ends once the queue has drained. Dropped before
    /// it has taken: the cost is owed instead.
    pub(crate) async fn take(&self, cost: usize) {
        let now = cost.min(self.size);
        self.owe(cost - now);
        let mut unpaid = Unpaid {
            budget: self,
            cost: now,
        };
        // An error means the budget is closed (the writer is gone): nothing to wait for.
        if let Ok(permit) = self.permits.acquire_many(self.units(now)).await {
            permit.forget();
        }
        unpaid.cost = 0;
    }

    /// The writer gives `cost` back once the events it paid for are written.
    pub(crate) fn give_back(&self, mut cost: usize) {
        let mut debt = self.debt.load(Ordering::Acquire);
        while debt > 0 && cost > 0 {
            let pay = debt.min(cost);
            match self.debt.compare_exchange_weak(
                debt,
                debt - pay,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    cost -= pay;
                    break;
                }
                Err(now) => debt = now,
            }
        }
        if cost > 0 {
            self.permits.add_permits(cost);
        }
    }

    /// Nobody gives back any more (the writer is gone): every wait ends now and none starts, so
    /// recorders go on without a budget instead of waiting forever.
    pub(crate) fn close(&self) {
        self.permits.close();
    }

    /// Bytes free now (for tests).
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.permits.available_permits()
    }

    fn owe(&self, cost: usize) {
        if cost > 0 {
            self.debt.fetch_add(cost, Ordering::AcqRel);
        }
    }

    fn units(&self, cost: usize) -> u32 {
        cost.min(self.size) as u32
    }
}

/// A payment in progress: dropped unfinished, its cost is owed.
struct Unpaid<'a> {
    budget: &'a Budget,
    cost: usize,
}

impl Drop for Unpaid<'_> {
    fn drop(&mut self) {
        self.budget.owe(self.cost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    #[test]
    fn a_cancelled_wait_is_paid_by_the_next_give_back() {
        let budget = Budget::new(100);
        assert!(budget.try_take(80));
        {
            // 50 does not fit: the wait is cancelled before it takes anything.
            let mut wait = pin!(budget.take(50));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(wait.as_mut().poll(&mut cx).is_pending());
        }
        // The writer writes the 80 and the 50 (queued, never paid): 130 given back in all.
        budget.give_back(80);
        budget.give_back(50);
        assert_eq!(budget.available(), 100, "the budget is whole again");
    }

    #[test]
    fn costs_beyond_the_budget_are_owed_not_waited_for_forever() {
        let budget = Budget::new(100);
        let mut wait = pin!(budget.take(250));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(wait.as_mut().poll(&mut cx), Poll::Ready(())));
        assert_eq!(budget.available(), 0);
        budget.give_back(250);
        assert_eq!(budget.available(), 100);
    }

    #[test]
    fn a_paid_wait_owes_nothing() {
        let budget = Budget::new(10);
        assert!(budget.try_take(10));
        assert!(!budget.try_take(1));
        budget.give_back(10);
        let mut wait = pin!(budget.take(4));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(wait.as_mut().poll(&mut cx), Poll::Ready(())));
        budget.give_back(4);
        assert_eq!(budget.available(), 10);
    }
}
