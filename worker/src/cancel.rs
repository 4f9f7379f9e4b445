//! Cancelling a job's running chunks in this worker. Rayon work cannot be interrupted, so each running
//! chunk holds its job's cancel token and checks it between items (I/O items also race it, so a download
//! in flight is dropped at once); `producer cancel` reaches [`Cancellations::cancel_and_wait`] through the
//! control plane, which waits (bounded) until the job's running chunks have stopped.
//!
//! Queued chunks need nothing from here: the job is marked `cancelling` in Redis first, and the status
//! check every chunk passes before it runs drops them. Cancelled jobs are remembered for a while, so a
//! chunk that passed that check just before the cancel still starts cancelled.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use taskq_common::job::{now_ms, JobId};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long a cancelled job is remembered.
const REMEMBER: Duration = Duration::from_secs(3600);

/// Per-job cancel tokens and running-chunk counts of one worker.
#[derive(Default)]
pub struct Cancellations {
    state: Mutex<State>,
    /// Woken whenever a job's last running chunk stops.
    idle: Notify,
}

#[derive(Default)]
struct State {
    running: HashMap<JobId, Running>,
    cancelled: HashMap<JobId, Instant>,
}

struct Running {
    token: CancellationToken,
    chunks: u32,
}

/// A chunk running under its job's cancel token; dropping it records that the chunk stopped.
pub struct RunningChunk<'a> {
    owner: &'a Cancellations,
    job: JobId,
    token: CancellationToken,
}

impl RunningChunk<'_> {
    /// The token the chunk checks between items.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

impl Drop for RunningChunk<'_> {
    fn drop(&mut self) {
        let mut state = self.owner.lock();
        if let Some(running) = state.running.get_mut(&self.job) {
            running.chunks -= 1;
            if running.chunks == 0 {
                state.running.remove(&self.job);
                self.owner.idle.notify_waiters();
            }
        }
    }
}

/// What a cancel did in this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Running chunks of the job that stopped.
    pub chunks: u32,
    /// Chunks still running when the wait ended.
    pub still_running: u32,
    /// When the last one stopped (or the cancel arrived), ms since the Unix epoch.
    pub at_ms: u64,
}

impl Cancellations {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves consistent counters (every update is one statement).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that a chunk of `job` starts; it runs under the job's token until the guard drops.
    pub fn start(&self, job: JobId) -> RunningChunk<'_> {
        let mut state = self.lock();
        let cancelled = state.cancelled.contains_key(&job);
        let running = state.running.entry(job).or_insert_with(|| Running {
            token: CancellationToken::new(),
            chunks: 0,
        });
        if cancelled {
            running.token.cancel();
        }
        running.chunks += 1;
        RunningChunk {
            owner: self,
            job,
            token: running.token.clone(),
        }
    }

    /// Chunks running now, all jobs together.
    pub fn running_chunks(&self) -> u32 {
        self.lock()
            .running
            .values()
            .map(|running| running.chunks)
            .sum()
    }

    /// Cancels `job`'s running chunks and waits up to `limit` for them to stop.
    pub async fn cancel_and_wait(&self, job: JobId, limit: Duration) -> Stopped {
        let initially = {
            let mut state = self.lock();
            let now = Instant::now();
            state
                .cancelled
                .retain(|_, at| now.duration_since(*at) < REMEMBER);
            state.cancelled.insert(job, now);
            match state.running.get(&job) {
                Some(running) => {
                    running.token.cancel();
                    running.chunks
                }
                None => 0,
            }
        };
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            // Registered before looking, so a chunk stopping in between still wakes us.
            idle.as_mut().enable();
            let still_running = self.lock().running.get(&job).map_or(0, |r| r.chunks);
            if still_running == 0 || tokio::time::Instant::now() >= deadline {
                return Stopped {
                    chunks: initially.saturating_sub(still_running),
                    still_running,
                    at_ms: now_ms(),
                };
            }
            let _ = tokio::time::timeout_at(deadline, idle).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_reaches_running_chunks_and_later_ones_and_waits_for_them() {
        let cancellations = std::sync::Arc::new(Cancellations::default());
        let (job, other) = (JobId::new(), JobId::new());
        let first = cancellations.start(job);
        let bystander = cancellations.start(other);
        let token = first.token();
        assert_eq!(cancellations.running_chunks(), 2);

        let waiting = {
            let cancellations = cancellations.clone();
            tokio::spawn(async move {
                cancellations
                    .cancel_and_wait(job, Duration::from_secs(10))
                    .await
            })
        };
        tokio::time::timeout(Duration::from_secs(5), token.cancelled())
            .await
            .expect("the running chunk sees the cancel");
        drop(first);
        let stopped = waiting.await.unwrap();
        assert_eq!((stopped.chunks, stopped.still_running), (1, 0));
        assert!(!bystander.token().is_cancelled(), "other jobs run on");
        assert!(
            cancellations.start(job).token().is_cancelled(),
            "a chunk starting after the cancel starts cancelled"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_is_bounded() {
        let cancellations = Cancellations::default();
        let job = JobId::new();
        let _stuck = cancellations.start(job);
        let stopped = cancellations
            .cancel_and_wait(job, Duration::from_secs(3))
            .await;
        assert_eq!((stopped.chunks, stopped.still_running), (0, 1));
    }
}
