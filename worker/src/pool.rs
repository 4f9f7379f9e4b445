//! The CPU thread pool: chunks run here, never on the async runtime's threads, and their results come back
//! through a channel so the runtime (and the AMQP heartbeat) keeps running while every core is busy.
//!
//! Each chunk runs on a thread of its own from tokio's blocking pool, at most one per `--cpu-threads`
//! (the permits). While every thread has a chunk, a chunk's items run one after another on it; when
//! threads are idle (fewer chunks than threads, say one large chunk), its items are spread over a rayon
//! pool of `--cpu-threads` threads. Chunks are not handed to rayon itself because an idle rayon thread
//! spins (`sched_yield`) before it sleeps: with thousands of tiny chunks a second, that spinning took a
//! third of a worker's CPU, on a host whose other cores the broker needs.

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

/// Threads for `--cpu-threads` chunks at once, with one permit per thread: a chunk takes a permit before
/// it starts, so chunks wait (unstarted, uncounted) outside the pool, never inside it.
pub struct CpuPool {
    spread: Arc<rayon::ThreadPool>,
    permits: Arc<Semaphore>,
    threads: usize,
    stopping: CancellationToken,
}

/// How a chunk's items run: one after another on the chunk's thread, or spread over idle threads.
#[derive(Clone)]
pub enum Items {
    /// On the chunk's thread: every pool thread has a chunk of its own.
    Sequential,
    /// Over the rayon pool: some threads have no chunk.
    Spread(Arc<rayon::ThreadPool>),
}

impl std::fmt::Debug for Items {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sequential => f.write_str("Sequential"),
            Self::Spread(_) => f.write_str("Spread"),
        }
    }
}

impl Items {
    /// Applies `run` to every item in order; `None` as soon as one call returns `None` (a cancelled job).
    pub fn collect<T, R, F>(&self, items: &[T], run: F) -> Option<Vec<R>>
    where
        T: Sync,
        R: Send,
        F: Fn(&T) -> Option<R> + Sync + Send,
    {
        match self {
            Self::Spread(pool) if items.len() > 1 => {
                use rayon::prelude::*;
                pool.install(|| items.par_iter().map(run).collect())
            }
            _ => items.iter().map(run).collect(),
        }
    }
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
        let threads = threads.max(1);
        let spread = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|index| format!("cpu-{index}"))
            .build()?;
        Ok(Self {
            spread: Arc::new(spread),
            permits: Arc::new(Semaphore::new(threads)),
            threads,
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
        self.threads
    }

    /// Threads taken by chunks now (reserved or running).
    pub fn busy(&self) -> usize {
        self.threads
            .saturating_sub(self.permits.available_permits())
    }

    /// How a chunk starting now runs its items: spread while some thread has no chunk.
    fn items(&self) -> Items {
        if self.busy() < self.threads {
            Items::Spread(self.spread.clone())
        } else {
            Items::Sequential
        }
    }

    /// Runs `job` on a thread of its own under `permit` and waits for it without blocking the runtime.
    /// The job is told how to run its items; the caller's tracing span is carried into the thread.
    pub async fn run<R, F>(&self, permit: Permit, job: F) -> PoolOutcome<R>
    where
        F: FnOnce(Items) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (sender, receiver) = oneshot::channel();
        let span = Span::current();
        let stopping = self.stopping.clone();
        let items = self.items();
        // A blocking-pool thread sleeps when idle instead of spinning; the permits bound how many run.
        tokio::task::spawn_blocking(move || {
            let outcome = if stopping.is_cancelled() {
                PoolOutcome::NotStarted
            } else {
                let _entered = span.enter();
                match catch_unwind(AssertUnwindSafe(|| job(items))) {
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
            pool.run(permit, |_| 6 * 7).await,
            PoolOutcome::Done(42)
        ));
        let permit = pool.reserve().await.unwrap();
        let panicked = pool.run(permit, |_| -> u8 { panic!("boom") }).await;
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
            pool.run(held.0, |_| 1).await,
            PoolOutcome::NotStarted
        ));
        assert!(
            pool.reserve().await.is_none(),
            "no new permits once stopping"
        );
    }

    #[tokio::test]
    async fn items_spread_only_while_a_thread_has_no_chunk() {
        let pool = CpuPool::new(2, CancellationToken::new()).unwrap();
        let lone = pool.reserve().await.unwrap();
        let items = pool.run(lone, |items| format!("{items:?}")).await;
        assert!(
            matches!(items, PoolOutcome::Done(ref i) if i == "Spread"),
            "{items:?}"
        );
        let (first, second) = (pool.reserve().await.unwrap(), pool.reserve().await.unwrap());
        let items = pool.run(first, |items| format!("{items:?}")).await;
        assert!(
            matches!(items, PoolOutcome::Done(ref i) if i == "Sequential"),
            "{items:?}"
        );
        drop(second);
    }

    #[test]
    fn spread_and_sequential_items_give_the_same_results_in_order() {
        let spread = Items::Spread(Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap(),
        ));
        let items: Vec<u64> = (1..=1000).collect();
        let square = |x: &u64| Some(x * x);
        let expected: Vec<u64> = items.iter().map(|x| x * x).collect();
        assert_eq!(spread.collect(&items, square), Some(expected.clone()));
        assert_eq!(Items::Sequential.collect(&items, square), Some(expected));
        let stop_at_500 = |x: &u64| (*x != 500).then_some(*x);
        assert_eq!(spread.collect(&items, stop_at_500), None);
        assert_eq!(Items::Sequential.collect(&items, stop_at_500), None);
    }
}
