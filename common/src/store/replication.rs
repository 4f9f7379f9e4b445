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
use std::sync::atomic::{AtomicU32, Ordering};
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
    pub async fn confirm_writes(&self, mark: WriteMark) -> Result<(), StoreError> {
        let asked = self.min_replicas;
        if asked == 0 {
            return Ok(());
        }
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
            .query_on(mark.generation, &fence_and_wait)
            .await
            .ok_or(StoreError::MasterChanged)?
            .map_err(command("confirming writes with replicas"))?;
        if confirmed < i64::from(asked) {
            let shortfall = redis::RedisError::from((
                redis::ErrorKind::Extension,
                "too few replicas confirmed a write",
            ));
            self.connection
                .suspect_isolation(mark.generation, &shortfall)
                .await;
            return Err(StoreError::NotReplicated {
                confirmed,
                asked,
                within,
            });
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
