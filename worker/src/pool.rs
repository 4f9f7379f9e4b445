//! The CPU thread pool: chunks run here, never on the async runtime's threads, and their results come back
//! through a channel so the runtime (and the AMQP heartbeat) keeps running while every core is busy.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Span;

/// What became of a job handed to the pool.
#[derive(Debug)]
pub enum PoolOutcome<R> {
    /// It ran and returned.
    Done(R),
    /// It panicked; the message says how.
    Panicked(String),
    /// The worker began stopping before the job started, so it did not run.
    NotStarted,
}

/// A rayon thread pool sized to the worker's `--cpu-threads`, with one permit per thread: a chunk takes
/// a permit before it starts, so chunks wait (unstarted, uncounted) outside the pool, never inside it.
pub struct CpuPool {
    pool: rayon::ThreadPool,
    permits: Arc<Semaphore>,
    stopping: CancellationToken,
}

/// The right to run one chunk on the pool now.
pub struct Permit {
    // Held for its drop, which frees the thread.
    _held: OwnedSemaphorePermit,
}

impl CpuPool {
    /// A pool of `threads` threads. Jobs not started when `stopping` fires are skipped.
    pub fn new(
        threads: usize,
        stopping: CancellationToken,
    ) -> Result<Self, rayon::ThreadPoolBuildError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|index| format!("cpu-{index}"))
            .build()?;
        let permits = Arc::new(Semaphore::new(threads));
        Ok(Self {
            pool,
            permits,
            stopping,
        })
    }

    /// Waits for a free thread; `None` if the worker began stopping first.
    pub async fn reserve(&self) -> Option<Permit> {
        tokio::select! {
            // Stopping wins over a free thread: no chunk starts once the worker is stopping.
            biased;
            _ = self.stopping.cancelled() => None,
            permit = self.permits.clone().acquire_owned() => {
                permit.ok().map(|held| Permit { _held: held })
            }
        }
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Threads taken by chunks now (reserved or running).
    pub fn busy(&self) -> usize {
        self.threads()
            .saturating_sub(self.permits.available_permits())
    }

    /// Runs `job` on the pool under `permit` and waits for it without blocking the runtime. The caller's
    /// tracing span is carried into the pool thread.
    pub async fn run<R, F>(&self, permit: Permit, job: F) -> PoolOutcome<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (sender, receiver) = oneshot::channel();
        let span = Span::current();
        let stopping = self.stopping.clone();
        self.pool.spawn(move || {
            let outcome = if stopping.is_cancelled() {
                PoolOutcome::NotStarted
            } else {
                let _entered = span.enter();
                match catch_unwind(AssertUnwindSafe(job)) {
                    Ok(value) => PoolOutcome::Done(value),
                    Err(panic) => PoolOutcome::Panicked(panic_message(panic.as_ref())),
                }
            };
            drop(permit);
            // The receiver is gone only if the delivery's task was dropped; nothing is left to tell.
            let _ = sender.send(outcome);
        });
        receiver
            .await
            .unwrap_or_else(|_| PoolOutcome::Panicked("the pool dropped the job".into()))
    }
}

/// The text of a panic payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        format!("panicked: {text}")
    } else if let Some(text) = panic.downcast_ref::<String>() {
        format!("panicked: {text}")
    } else {
        "panicked".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn results_and_panics_come_back_and_stopping_skips_new_jobs() {
        let stopping = CancellationToken::new();
        let pool = CpuPool::new(2, stopping.clone()).unwrap();
        let permit = pool.reserve().await.unwrap();
        assert!(matches!(
            pool.run(permit, || 6 * 7).await,
            PoolOutcome::Done(42)
        ));
        let permit = pool.reserve().await.unwrap();
        let panicked = pool.run(permit, || -> u8 { panic!("boom") }).await;
        assert!(
            matches!(panicked, PoolOutcome::Panicked(ref m) if m.contains("boom")),
            "{panicked:?}"
        );
        let held = (pool.reserve().await.unwrap(), pool.reserve().await.unwrap());
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), pool.reserve()).await;
        assert!(
            waiting.is_err(),
            "a third chunk waits while both threads are taken"
        );
        stopping.cancel();
        assert!(matches!(
            pool.run(held.0, || 1).await,
            PoolOutcome::NotStarted
        ));
        assert!(
            pool.reserve().await.is_none(),
            "no new permits once stopping"
        );
    }
}
