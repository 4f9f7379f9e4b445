//! Writes a failover must not lose, confirmed by replicas before anyone acts on them.
//!
//! Redis acknowledges a write once its master has it; replicas get it a moment later. A master that dies
//! in that moment takes the write with it, and the replica promoted in its place never saw it. For most
//! writes that costs nothing (a run counter, a heartbeat), but some are acted on at once: the consumer
//! acks a result to RabbitMQ after recording it, the producer publishes chunks after creating the job,
//! a job's end is announced. After those, the store sends `WAIT n timeout` and treats fewer than `n`
//! replicas within the deadline as a failed write: its caller tries again (the consumer requeues the
//! result, which is safe because recording is record-once), so an acknowledged result is one a
//! promoted replica has too.
//!
//! `n` is `--redis-min-replicas` / `TASKQ_REDIS_MIN_REPLICAS`; unset, 1 with a Sentinel URL and 0 (no
//! `WAIT`) with a plain one. `WAIT` confirms the writes of the connection it is sent on, so a
//! confirmation runs on the connection the writes went through ([`WriteMark`]) and fails if that
//! connection was replaced meanwhile. A write (the fence) just before the `WAIT` makes it cover every
//! earlier write the server accepted, even through a reconnect of a plain URL's connection manager.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::{command, JobStore, StoreError};

/// `--redis-min-replicas` when not given.
const UNSET: u32 = u32::MAX;

static MIN_REPLICAS: AtomicU32 = AtomicU32::new(UNSET);

/// How long the fence key lives: it only needs to outlive the `WAIT` right after it.
const FENCE_TTL: Duration = Duration::from_secs(60);

/// Sets the process's `--redis-min-replicas` (`None`: the default for the URL's form).
pub fn set_min_replicas(replicas: Option<u32>) {
    MIN_REPLICAS.store(replicas.unwrap_or(UNSET), Ordering::Relaxed);
}

/// The replicas a write must reach: as set, or 1 behind sentinels and 0 otherwise.
pub(crate) fn min_replicas(follows_failovers: bool) -> u32 {
    match MIN_REPLICAS.load(Ordering::Relaxed) {
        UNSET => u32::from(follows_failovers),
        set => set,
    }
}

/// The confirmations of one store and its clones: one `WAIT` at a time, shared by the groups of writes
/// it covers.
#[derive(Default)]
pub(crate) struct Confirmations {
    /// Groups of writes that ended and asked for confirmation, counted.
    ended: AtomicU64,
    /// The last `WAIT`: it covers the groups up to `covered`.
    last: tokio::sync::Mutex<Round>,
}

struct Round {
    covered: u64,
    generation: u64,
    outcome: Result<(), Shortfall>,
}

/// Before the first `WAIT`: it covers nothing (the first group is number 1).
impl Default for Round {
    fn default() -> Self {
        Self {
            covered: 0,
            generation: 0,
            outcome: Ok(()),
        }
    }
}

/// Why a `WAIT` did not confirm.
#[derive(Debug, Clone)]
enum Shortfall {
    TooFew { confirmed: i64, within: Duration },
    MasterChanged,
    Failed(redis::RedisError),
}

/// The point before a group of writes that [`JobStore::confirm_writes`] confirms: the connection they
/// go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteMark {
    generation: u64,
}

impl JobStore {
    /// How many replicas must confirm a write that must survive a failover (0: none are asked).
    pub fn min_replicas(&self) -> u32 {
        self.min_replicas
    }

    /// Marks the start of writes to confirm later with [`JobStore::confirm_writes`].
    pub fn mark_writes(&self) -> WriteMark {
        WriteMark {
            generation: self.connection.generation(),
        }
    }

    /// Waits until [`JobStore::min_replicas`] replicas have every write made since `mark` (at most the
    /// deadline). Fails if fewer confirm in time, or if the connection was replaced after a failover
    /// meanwhile (the writes may not have reached the new master): the caller then treats the writes
    /// as failed and makes them again, which must be safe (they record once, or set absolute values).
    ///
    /// One `WAIT` runs at a time per store, and confirms every group of writes that ended before it
    /// was sent: the groups that end while it runs share the next one. So a busy consumer sends few
    /// `WAIT`s, and with too few replicas one `WAIT` times out for all the groups waiting, not one after
    /// another (a `WAIT` holds its connection until it returns).
    pub async fn confirm_writes(&self, mark: WriteMark) -> Result<(), StoreError> {
        if self.min_replicas == 0 {
            return Ok(());
        }
        let confirmations = &self.confirmations;
        let ticket = confirmations.ended.fetch_add(1, Ordering::SeqCst) + 1;
        let mut last = confirmations.last.lock().await;
        let covered = last.covered >= ticket && last.generation == mark.generation;
        if !covered {
            let ended = confirmations.ended.load(Ordering::SeqCst);
            let outcome = self.wait_for_replicas(mark.generation).await;
            *last = Round {
                covered: ended,
                generation: mark.generation,
                outcome,
            };
        }
        last.outcome.clone().map_err(|outcome| match outcome {
            Shortfall::TooFew { confirmed, within } => StoreError::NotReplicated {
                confirmed,
                asked: self.min_replicas,
                within,
            },
            Shortfall::MasterChanged => StoreError::MasterChanged,
            Shortfall::Failed(source) => command("confirming writes with replicas")(source),
        })
    }

    /// Sends the fence and `WAIT` on the connection of `generation`, once.
    async fn wait_for_replicas(&self, generation: u64) -> Result<(), Shortfall> {
        let asked = self.min_replicas;
        let within = crate::deadline::limit();
        let mut fence_and_wait = redis::pipe();
        fence_and_wait
            .cmd("SET")
            .arg(self.topology.replication_fence_key())
            .arg(crate::job::now_ms())
            .arg("PX")
            .arg(FENCE_TTL.as_millis() as u64)
            .ignore()
            .cmd("WAIT")
            .arg(asked)
            .arg(within.as_millis() as u64);
        let (confirmed,): (i64,) = self
            .connection
            .query_on(generation, &fence_and_wait)
            .await
            .ok_or(Shortfall::MasterChanged)?
            .map_err(Shortfall::Failed)?;
        if confirmed < i64::from(asked) {
            let cause = redis::RedisError::from((
                redis::ErrorKind::Extension,
                "too few replicas confirmed a write",
            ));
            self.connection.suspect_isolation(generation, &cause).await;
            return Err(Shortfall::TooFew { confirmed, within });
        }
        Ok(())
    }

    /// Runs `writes` and confirms them with [`JobStore::confirm_writes`].
    pub(crate) async fn replicated<T>(
        &self,
        writes: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let mark = self.mark_writes();
        let value = writes.await?;
        self.confirm_writes(mark).await?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_ask_one_replica_unless_told_otherwise() {
        set_min_replicas(None);
        assert_eq!(min_replicas(true), 1);
        assert_eq!(min_replicas(false), 0);
        set_min_replicas(Some(2));
        assert_eq!(min_replicas(false), 2);
        set_min_replicas(Some(0));
        assert_eq!(min_replicas(true), 0);
        set_min_replicas(None);
    }
}
