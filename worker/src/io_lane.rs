//! The I/O lane's slots, which bound how many I/O items (downloads, a user's requests) are in flight at
//! once (`--io-concurrency`). I/O items run as async tasks on the runtime, never on the CPU pool, so a
//! worker whose cores are all busy still downloads at full speed.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio::sync::Semaphore;

use taskq_common::task::TaskError;

use crate::pool::panic_message;

/// What every I/O item shares.
pub struct IoLane {
    slots: Semaphore,
    concurrency: usize,
}

impl IoLane {
    /// A lane running at most `concurrency` items at once.
    pub fn new(concurrency: usize) -> Self {
        Self {
            slots: Semaphore::new(concurrency),
            concurrency,
        }
    }

    /// Items in flight at most.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Items in flight now.
    pub fn busy(&self) -> usize {
        self.concurrency
            .saturating_sub(self.slots.available_permits())
    }

    /// Runs one item once a slot is free. A panic becomes the item's error (one a retry may not
    /// repeat), not a dead worker.
    pub async fn run_item<O>(
        &self,
        item: impl Future<Output = Result<O, TaskError>>,
    ) -> Result<O, TaskError> {
        // The semaphore is never closed, so acquiring only waits.
        let _slot = self.slots.acquire().await;
        AssertUnwindSafe(item)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(TaskError::transient(format!(
                    "the task {}",
                    panic_message(panic.as_ref())
                )))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn lane(concurrency: usize) -> IoLane {
        IoLane::new(concurrency)
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_concurrency_items_run_at_once_and_panics_become_errors() {
        let lane = lane(3);
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items = (0..10).map(|_| {
            lane.run_item(async {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, TaskError>(())
            })
        });
        let started = tokio::time::Instant::now();
        let outcomes = futures::future::join_all(items).await;
        assert!(outcomes.iter().all(Result::is_ok));
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(400),
            "ceil(10 / 3) rounds"
        );

        let panicked = lane
            .run_item(async { panic!("boom") as Result<(), TaskError> })
            .await;
        assert_eq!(
            panicked,
            Err(TaskError::transient("the task panicked: boom"))
        );
    }
}
