//! Job state in Redis: the record the producer writes, the progress the consumer counts, and chunk results
//! held until the job's output file is written.
//!
//! Recording a chunk result is one Lua script, so "store the result" and "count it" happen together or not
//! at all, and a chunk recorded before (a redelivery) is counted as a duplicate instead of twice.
//!
//! Submodules: [`sentinel_url`] parses the `redis+sentinel://` form of `REDIS_URL`; the store's
//! connection ([`StoreConnection`]) follows the master through failovers (`failover`), sending again the
//! commands that are safe to run twice (`retry`); [`replication`] has replicas confirm the writes a
//! failover must not lose; `announcements` are jobs' ends on pub/sub; `scripts` the Lua scripts.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use redis::AsyncCommands;

mod announcements;
mod connection;
mod failover;
pub mod replication;
mod retry;
mod scripts;
pub mod sentinel_url;

pub use connection::StoreConnection;
pub use failover::FAILOVER_WAIT;
use scripts::{CLAIM_RUN, END_RUN, RECORD_RESULT, SET_STATUS_IF};
pub use sentinel_url::SentinelUrlError;

use crate::job::{JobId, JobSpec, JobState, JobStatus};
use crate::stages::{ChunkRef, Plan, StagedJob};
use crate::topology::Topology;

/// How long a finished job's record stays in Redis.
pub const JOB_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// What can go wrong with the job store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Connecting failed.
    #[error("cannot reach Redis at {url}: {reason}. Start it (`scripts/services.sh`, or `docker compose up -d redis`), or point --redis-url / REDIS_URL at a running server")]
    Unreachable {
        /// The URL, password redacted.
        url: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// `REDIS_URL` is in the Sentinel form but cannot be used.
    #[error(transparent)]
    BadUrl(#[from] SentinelUrlError),
    /// Too few replicas confirmed a write that must survive a failover.
    #[error("only {confirmed} of the {asked} Redis replica(s) asked for confirmed a write within {within:?}, so a failover could lose it; it counts as failed and is made again. Check the replicas (`redis-cli info replication` on the master), or lower --redis-min-replicas")]
    NotReplicated {
        /// Replicas that confirmed.
        confirmed: i64,
        /// Replicas asked for (`--redis-min-replicas`).
        asked: u32,
        /// How long they had.
        within: Duration,
    },
    /// The connection was replaced (a failover) between writes and their confirmation.
    #[error("the Redis master changed (failover) while writes were under way: they may not have reached the new master, so they count as failed and are made again")]
    MasterChanged,
    /// A command failed (connection lost, server error).
    #[error("Redis failed during {operation}: {source}")]
    Command {
        /// What was being done.
        operation: &'static str,
        /// The underlying error.
        source: redis::RedisError,
    },
    /// No record for the job.
    #[error("job {job} is unknown to Redis under prefix '{prefix}': check the job id and --prefix (finished jobs are kept 7 days)")]
    UnknownJob {
        /// The job.
        job: JobId,
        /// The prefix looked under.
        prefix: String,
    },
    /// The record exists but cannot be read.
    #[error("job {job} has an unreadable record in Redis: {detail}")]
    Corrupt {
        /// The job.
        job: JobId,
        /// What is wrong.
        detail: String,
    },
}

pub(crate) fn command(operation: &'static str) -> impl FnOnce(redis::RedisError) -> StoreError {
    move |source| StoreError::Command { operation, source }
}

/// The outcome of recording one chunk result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First result for this chunk, now counted. `job_done`: it was the job's last missing chunk.
    New {
        /// Every chunk of the job now has a result.
        job_done: bool,
    },
    /// The chunk was recorded before; only the duplicate counter changed. `job_done` is true when every
    /// chunk has a result but the job is not marked completed yet (the finisher crashed): finish it.
    Duplicate {
        /// Every chunk has a result and the output still needs writing.
        job_done: bool,
    },
    /// The job was marked failed; its results are no longer wanted.
    JobFailed,
    /// The job was cancelled and its output written; later results are no longer wanted.
    JobCancelled,
    /// No such job in Redis (wrong prefix, expired, or the store was wiped).
    UnknownJob,
}

/// Job state for one deployment (one prefix). Cheap to clone; clones share one multiplexed connection.
#[derive(Clone)]
pub struct JobStore {
    connection: StoreConnection,
    /// Replicas that must confirm a write a failover must not lose (see [`replication`]).
    min_replicas: u32,
    topology: Topology,
    record_result: redis::Script,
    set_status_if: redis::Script,
    claim_run: redis::Script,
    end_run: redis::Script,
}

/// A worker's view of a chunk it is about to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The job's status; `None` if Redis does not know the job.
    pub status: Option<JobStatus>,
    /// Runs of this chunk that started and never finished, this one included: more than one means
    /// earlier runs died with their worker.
    pub unfinished_runs: u32,
    /// The job's stages, when it has several; `None` for a job of one stage.
    pub staged: Option<StagedJob>,
}

impl JobStore {
    /// Connects and checks the server answers. `url` is a plain `redis://` URL, or a
    /// `redis+sentinel://` one whose master is found (and found again after a failover) through the
    /// sentinels (see [`sentinel_url`]).
    pub async fn connect(url: &str, topology: Topology) -> Result<Self, StoreError> {
        let connection = StoreConnection::open(url).await?;
        Ok(Self {
            min_replicas: replication::min_replicas(connection.follows_failovers()),
            connection,
            topology,
            record_result: redis::Script::new(RECORD_RESULT),
            set_status_if: redis::Script::new(SET_STATUS_IF),
            claim_run: redis::Script::new(CLAIM_RUN),
            end_run: redis::Script::new(END_RUN),
        })
    }

    /// The deployment this store serves.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The shared connection, for this crate's other Redis-backed modules (registry, broadcast, cancel).
    pub(crate) fn connection(&self) -> StoreConnection {
        self.connection.clone()
    }

    /// Records a new job in status `submitting`.
    pub async fn create_job(&self, spec: &JobSpec) -> Result<(), StoreError> {
        self.create_job_with(spec, &[]).await
    }

    /// Records a new job in status `submitting`, with `extra` fields beside the spec's (a multi-stage
    /// job's plan, an image job's geometry).
    pub async fn create_job_with(
        &self,
        spec: &JobSpec,
        extra: &[(&str, String)],
    ) -> Result<(), StoreError> {
        let mut fields = vec![
            ("kind", spec.kind.clone()),
            ("status", JobStatus::Submitting.as_str().to_owned()),
            ("total_chunks", spec.total_chunks.to_string()),
            ("total_items", spec.total_items.to_string()),
            ("submitted_at_ms", spec.submitted_at_ms.to_string()),
            ("chunks_done", "0".into()),
            ("items_done", "0".into()),
            ("items_failed", "0".into()),
            ("duplicates", "0".into()),
        ];
        fields.extend(extra.iter().cloned());
        // Confirmed by replicas: chunks published for a record a failover lost would be dead-lettered.
        self.replicated(async {
            let _: () = self
                .connection
                .clone()
                .hset_multiple(self.topology.job_key(spec.id), &fields)
                .await
                .map_err(command("creating the job record"))?;
            Ok(())
        })
        .await
    }

    /// Moves a job from status `from` to `to`; returns false (and changes nothing) if it was not in `from`.
    pub async fn transition(
        &self,
        job: JobId,
        from: JobStatus,
        to: JobStatus,
    ) -> Result<bool, StoreError> {
        let changed: i64 = self
            .set_status_if
            .key(self.topology.job_key(job))
            .arg(from.as_str())
            .arg(to.as_str())
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(command("changing the job status"))?;
        Ok(changed == 1)
    }

    /// Marks a job failed with a reason that `producer status` shows.
    pub async fn fail(&self, job: JobId, reason: &str) -> Result<(), StoreError> {
        let ending = ("error", reason);
        self.end_job(job, JobStatus::Failed, ending, "marking the job failed")
            .await
    }

    /// Ends a job in one transaction: its final `status` and one more `field` (its summary, or why it
    /// failed), a week to live, its scratch keys dropped, and its end announced. Confirmed by replicas,
    /// like every end of a job: one a failover lost would leave the job waiting for chunks nobody sends,
    /// after the message that ended it was acked.
    pub(crate) async fn end_job(
        &self,
        job: JobId,
        status: JobStatus,
        (field, value): (&str, &str),
        operation: &'static str,
    ) -> Result<(), StoreError> {
        let key = self.topology.job_key(job);
        self.replicated(async {
            let _: () = redis::pipe()
                .atomic()
                .hset(&key, "status", status.as_str())
                .hset(&key, field, value)
                .expire(&key, JOB_RETENTION.as_secs() as i64)
                .del(self.topology.job_scratch_keys(job))
                .publish(self.topology.job_finished_channel(job), status.as_str())
                .query_async(&mut self.connection.clone())
                .await
                .map_err(command(operation))?;
            Ok(())
        })
        .await
    }

    /// Reads a job's status and records that a run of `chunk` starts, in one round trip. A run ends when
    /// the consumer records the chunk's result ([`JobStore::record_result`] clears the count, which saves
    /// the worker a round trip per chunk), or when the worker calls [`JobStore::end_run`] because the run
    /// failed or never started. Runs that started and never ended are how workers recognise a chunk that
    /// keeps killing them, on every broker version (RabbitMQ 4.3 and later no longer count a delivery whose
    /// consumer died towards a quorum queue's delivery limit). Chunks that merely waited, or awaited a
    /// confirm, when their worker died are not counted.
    ///
    /// For a job of several stages, the first claim of a stage records when the stage started.
    pub async fn claim_run(&self, job: JobId, chunk: ChunkRef) -> Result<Claim, StoreError> {
        let (status, unfinished_runs, stages, source_chunks): (String, i64, String, u32) = self
            .claim_run
            .key(self.topology.job_key(job))
            .key(self.topology.job_runs_key(job))
            .arg(chunk.field())
            .arg(chunk.stage)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(command("claiming a chunk"))?;
        let staged = match stages.as_str() {
            "" => None,
            raw => Some(StagedJob {
                plan: Plan::from_json(raw).map_err(|detail| StoreError::Corrupt { job, detail })?,
                source_chunks,
            }),
        };
        let status = match status.as_str() {
            "" => None,
            raw => Some(
                raw.parse()
                    .map_err(|detail| StoreError::Corrupt { job, detail })?,
            ),
        };
        Ok(Claim {
            status,
            unfinished_runs: unfinished_runs.max(0) as u32,
            staged,
        })
    }

    /// Records that a run of `chunk` ended (or never started after all).
    pub async fn end_run(&self, job: JobId, chunk: ChunkRef) -> Result<(), StoreError> {
        // A script, so a late run of a finished job does not recreate its deleted counter.
        let _: i64 = self
            .end_run
            .key(self.topology.job_runs_key(job))
            .arg(chunk.field())
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(command("ending a chunk run"))?;
        Ok(())
    }

    /// Reads a job's record and progress; `None` if Redis has no such job.
    pub async fn job_state(&self, job: JobId) -> Result<Option<JobState>, StoreError> {
        let fields: HashMap<String, String> = self
            .connection
            .clone()
            .hgetall(self.topology.job_key(job))
            .await
            .map_err(command("reading the job record"))?;
        if fields.is_empty() {
            return Ok(None);
        }
        parse_state(job, &fields).map(Some)
    }

    /// Like [`JobStore::job_state`], but a missing job is an error that says what to check.
    pub async fn require_job(&self, job: JobId) -> Result<JobState, StoreError> {
        self.job_state(job)
            .await?
            .ok_or_else(|| StoreError::UnknownJob {
                job,
                prefix: self.topology.prefix().to_owned(),
            })
    }

    /// Stores a chunk's result and counts it, unless that chunk was recorded before. Either way the chunk's
    /// runs count as finished (see [`JobStore::claim_run`]). Not confirmed by replicas here: the consumer
    /// confirms a whole message's results at once ([`JobStore::confirm_writes`]) before it acks. Sent
    /// again after a failover even when its first run's outcome is unknown: a second run answers as a
    /// redelivery does.
    pub async fn record_result(
        &self,
        job: JobId,
        chunk: ChunkRef,
        items: u32,
        failed: u32,
        result: &[u8],
    ) -> Result<Recorded, StoreError> {
        let (code, job_done): (i64, i64) = self
            .record_result
            .key(self.topology.job_key(job))
            .key(self.topology.job_results_key(job))
            .key(self.topology.job_runs_key(job))
            .arg(chunk.chunk)
            .arg(result)
            .arg(items)
            .arg(failed)
            .arg(chunk.field())
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(command("recording a chunk result"))?;
        let job_done = job_done == 1;
        Ok(match code {
            1 => Recorded::New { job_done },
            0 => Recorded::Duplicate { job_done },
            -2 => Recorded::JobFailed,
            -3 => Recorded::JobCancelled,
            _ => Recorded::UnknownJob,
        })
    }

    /// The stored results of chunks `chunks`, in order; `None` for a chunk with no result.
    pub async fn chunk_results(
        &self,
        job: JobId,
        chunks: Range<u32>,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let fields: Vec<u32> = chunks.collect();
        self.chunk_results_of(job, &fields).await
    }

    /// The stored results of `chunks`, in that order; `None` for a chunk with no result.
    pub async fn chunk_results_of(
        &self,
        job: JobId,
        fields: &[u32],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let mut command_ = redis::cmd("HMGET");
        command_.arg(self.topology.job_results_key(job)).arg(fields);
        command_
            .query_async(&mut self.connection.clone())
            .await
            .map_err(command("reading chunk results"))
    }

    /// Marks a job completed with its summary and drops its chunk results (the output file has them).
    /// Confirmed by replicas before the result that finished the job is acked.
    pub async fn complete(
        &self,
        job: JobId,
        summary: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let summary = summary.to_string();
        let ending = ("summary", summary.as_str());
        self.end_job(
            job,
            JobStatus::Completed,
            ending,
            "marking the job completed",
        )
        .await
    }

    /// The ids of every job recorded under this prefix (finished ones until they expire).
    pub async fn job_ids(&self) -> Result<Vec<JobId>, StoreError> {
        let pattern = format!("{}:job:*", self.topology.prefix());
        Ok(self
            .scan(&pattern)
            .await?
            .iter()
            .filter_map(|key| key.rsplit(':').next()?.parse().ok())
            .collect())
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let mut connection = self.connection.clone();
        let mut iter: redis::AsyncIter<String> = connection
            .scan_match(pattern)
            .await
            .map_err(command("listing keys"))?;
        let mut keys = Vec::new();
        while let Some(key) = futures::StreamExt::next(&mut iter).await {
            keys.push(key.map_err(command("listing keys"))?);
        }
        Ok(keys)
    }

    /// Deletes every key of this deployment. For tests and `reset`-style tooling.
    pub async fn delete_everything(&self) -> Result<u64, StoreError> {
        let keys = self.scan(&self.topology.redis_pattern()).await?;
        if keys.is_empty() {
            return Ok(0);
        }
        self.connection
            .clone()
            .del(&keys)
            .await
            .map_err(command("deleting keys"))
    }
}

fn parse_state(job: JobId, fields: &HashMap<String, String>) -> Result<JobState, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { job, detail };
    let text = |name: &str| {
        fields
            .get(name)
            .cloned()
            .ok_or_else(|| corrupt(format!("field '{name}' is missing")))
    };
    fn number<T: std::str::FromStr>(
        fields: &HashMap<String, String>,
        name: &str,
    ) -> Result<T, String> {
        let raw = fields
            .get(name)
            .ok_or_else(|| format!("field '{name}' is missing"))?;
        raw.parse()
            .map_err(|_| format!("field '{name}' is not a number: '{raw}'"))
    }
    let spec = JobSpec {
        id: job,
        kind: text("kind")?,
        total_chunks: number(fields, "total_chunks").map_err(corrupt)?,
        total_items: number(fields, "total_items").map_err(corrupt)?,
        submitted_at_ms: number(fields, "submitted_at_ms").map_err(corrupt)?,
    };
    let summary = match fields.get("summary") {
        Some(raw) => Some(serde_json::from_str(raw).map_err(|e| corrupt(format!("summary: {e}")))?),
        None => None,
    };
    Ok(JobState {
        spec,
        status: text("status")?.parse().map_err(corrupt)?,
        chunks_done: number(fields, "chunks_done").map_err(corrupt)?,
        items_done: number(fields, "items_done").map_err(corrupt)?,
        items_failed: number(fields, "items_failed").map_err(corrupt)?,
        duplicates: number(fields, "duplicates").map_err(corrupt)?,
        error: fields.get("error").cloned(),
        summary,
    })
}
