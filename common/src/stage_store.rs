//! A multi-stage job's state in Redis: its plan in the job record, each earlier stage's chunks recorded
//! once (with per-stage counts and times), a reduce's partial results and how many children each node
//! has, and how many chunks of a stage are in flight (for its cap).
//!
//! Intermediate data (done marks, reduce values, a chunk's outputs kept for its neighbours) is deleted
//! when the job ends, whichever way, and expires after a week (`SCRATCH_TTL`, like a finished job's
//! record) should a job never end.
//!
//! The last stage is recorded by the consumer like any job's chunks ([`JobStore::record_result`]); the
//! stages before it are recorded here by the worker that ran the chunk, once its follow-up is confirmed
//! by the broker. Recording and counting are one script, so a chunk that runs twice counts once.

use std::collections::HashMap;

use redis::AsyncCommands;

use crate::job::{JobId, JobSpec};
use crate::stages::{ChunkRef, Plan};
use crate::store::{command, JobStore, StoreError};

/// Records an earlier stage's chunk as done, once; stores a reduce value and counts it for its parent.
/// KEYS: job, done, runs, partials, groups.
/// ARGV: field, stage, items, failed, [value field, value, parent field].
/// Sent again after a failover even when its first run's outcome is unknown: a second run answers as a
/// rerun chunk's recording does (not new, the same sibling count).
pub(crate) const RECORD_STAGE: &str = r#"
local SCRATCH_TTL = 604800
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {-1, 0} end
if status == 'failed' then return {-2, 0} end
if status == 'cancelled' or status == 'cancelling' then return {-3, 0} end
if status == 'completed' then return {0, 0} end
redis.call('HDEL', KEYS[3], ARGV[1])
local new = redis.call('HSETNX', KEYS[2], ARGV[1], 1)
if new == 1 then
  local p = 's' .. ARGV[2] .. '.'
  redis.call('HINCRBY', KEYS[1], p .. 'chunks', 1)
  redis.call('HINCRBY', KEYS[1], p .. 'items', ARGV[3])
  redis.call('HINCRBY', KEYS[1], p .. 'failed', ARGV[4])
  local now = redis.call('TIME')
  redis.call('HSET', KEYS[1], p .. 'finished_ms', now[1] * 1000 + math.floor(now[2] / 1000))
  if ARGV[5] then
    redis.call('HSET', KEYS[4], ARGV[5], ARGV[6])
    redis.call('HINCRBY', KEYS[5], ARGV[7], 1)
    redis.call('EXPIRE', KEYS[4], SCRATCH_TTL)
    redis.call('EXPIRE', KEYS[5], SCRATCH_TTL)
  end
  redis.call('EXPIRE', KEYS[2], SCRATCH_TTL)
else
  redis.call('HINCRBY', KEYS[1], 'duplicates', 1)
end
local children = 0
if ARGV[7] then children = tonumber(redis.call('HGET', KEYS[5], ARGV[7]) or '0') end
return {new, children}
"#;

/// Records an earlier stage's chunk as done, once, with its outputs for a `neighbours` edge, and counts
/// it towards each chunk of the next stage whose neighbourhood holds it (once per pair).
/// KEYS: job, done, runs, partials, groups.
/// ARGV: field, stage, items, failed, value field, value, then the joining chunks' fields.
/// Returns, per joining chunk, how many of its neighbours are recorded now (empty when the job ended).
/// Safe to run twice like [`RECORD_STAGE`]: each pair is counted once.
pub(crate) const RECORD_JOINED: &str = r#"
local SCRATCH_TTL = 604800
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'submitting' and status ~= 'running' then return {} end
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('HSETNX', KEYS[2], ARGV[1], 1) == 1 then
  local p = 's' .. ARGV[2] .. '.'
  redis.call('HINCRBY', KEYS[1], p .. 'chunks', 1)
  redis.call('HINCRBY', KEYS[1], p .. 'items', ARGV[3])
  redis.call('HINCRBY', KEYS[1], p .. 'failed', ARGV[4])
  local now = redis.call('TIME')
  redis.call('HSET', KEYS[1], p .. 'finished_ms', now[1] * 1000 + math.floor(now[2] / 1000))
  redis.call('HSET', KEYS[4], ARGV[5], ARGV[6])
  redis.call('EXPIRE', KEYS[2], SCRATCH_TTL)
  redis.call('EXPIRE', KEYS[4], SCRATCH_TTL)
  redis.call('EXPIRE', KEYS[5], SCRATCH_TTL)
else
  redis.call('HINCRBY', KEYS[1], 'duplicates', 1)
end
local counts = {}
for i = 7, #ARGV do
  if redis.call('HSETNX', KEYS[5], ARGV[i] .. '<' .. ARGV[5], 1) == 1 then
    redis.call('HINCRBY', KEYS[5], ARGV[i], 1)
  end
  counts[#counts + 1] = tonumber(redis.call('HGET', KEYS[5], ARGV[i]))
end
return counts
"#;

/// Takes one of a stage's in-flight slots if fewer than its cap are taken (chunks published and not yet
/// done): check and count in one step, so workers finishing together cannot all pass the check.
/// KEYS: job. ARGV: stage, 1 if it is the last stage, the cap. Returns 1 when a slot was taken.
const TAKE_SLOT: &str = r#"
local p = 's' .. ARGV[1] .. '.'
local published = tonumber(redis.call('HGET', KEYS[1], p .. 'published') or '0')
local done_field = p .. 'chunks'
if ARGV[2] == '1' then done_field = 'chunks_done' end
local done = tonumber(redis.call('HGET', KEYS[1], done_field) or '0')
if published - done >= tonumber(ARGV[3]) then return 0 end
redis.call('HINCRBY', KEYS[1], p .. 'published', 1)
return 1
"#;

/// What recording an earlier stage's chunk came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageRecorded {
    /// Recorded (`new`: for the first time). `siblings_done`: for a reduce value, how many children of
    /// its parent node are recorded now (the parent may start when all are).
    Done {
        /// First time this chunk was recorded.
        new: bool,
        /// Children of the parent node recorded so far (0 when not a reduce value).
        siblings_done: u32,
    },
    /// The job failed, was cancelled or completed: nothing more is wanted of it.
    JobEnded,
    /// Redis does not know the job.
    UnknownJob,
}

/// A reduce value to store with its chunk: where it sits in the tree, the value, and the node that
/// folds it.
#[derive(Debug, Clone, Copy)]
pub struct ReduceValue<'a> {
    /// The value's node: a leaf (level 0) for an output of the stage before the reduce.
    pub node: ChunkRef,
    /// The value as stored (see [`crate::stages::tree`]).
    pub stored: &'a str,
    /// The node that folds it.
    pub parent: ChunkRef,
}

/// One stage's progress, as `producer status` and the summary show it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct StageStats {
    /// The stage's kind.
    pub kind: String,
    /// How it takes its predecessor's outputs (`source` for the first stage).
    pub edge: String,
    /// Chunks the stage runs in all.
    pub chunks: u32,
    /// Chunks recorded so far.
    pub chunks_done: u32,
    /// Items its recorded chunks held.
    pub items: u64,
    /// Of those, items that failed.
    pub failed: u64,
    /// When its first chunk started, ms since the Unix epoch.
    pub started_ms: Option<u64>,
    /// When its latest chunk was recorded, ms since the Unix epoch.
    pub finished_ms: Option<u64>,
}

/// A multi-stage job's plan and each stage's progress.
#[derive(Debug, Clone)]
pub struct StageProgress {
    /// The stages.
    pub plan: Plan,
    /// Progress of each stage, in order.
    pub stages: Vec<StageStats>,
}

impl JobStore {
    /// Records a new multi-stage job (status `submitting`): the spec (its `total_chunks` are the
    /// results the consumer waits for), the plan and the first stage's chunk count.
    pub async fn create_staged_job(
        &self,
        spec: &JobSpec,
        plan: &Plan,
        source_chunks: u32,
    ) -> Result<(), StoreError> {
        let extra = [
            ("stages", plan.to_json()),
            ("source_chunks", source_chunks.to_string()),
        ];
        self.create_job_with(spec, &extra).await
    }

    /// Records that `chunk` of an earlier stage is done (its follow-up confirmed), with its item
    /// counts, and for a reduce its value. Counts once however often the chunk ran.
    pub async fn record_stage_chunk(
        &self,
        job: JobId,
        chunk: ChunkRef,
        items: u32,
        failed: u32,
        value: Option<ReduceValue<'_>>,
    ) -> Result<StageRecorded, StoreError> {
        let script = redis::Script::new(RECORD_STAGE);
        let mut invocation = self.stage_invocation(&script, job, chunk, (items, failed));
        if let Some(value) = value {
            invocation
                .arg(value.node.field())
                .arg(value.stored)
                .arg(value.parent.field());
        }
        // Confirmed by replicas before the worker acks the chunk: a lost record would never count it
        // (a reduce's parent would wait for it for ever).
        let (code, siblings): (i64, i64) = self
            .replicated(async {
                invocation
                    .invoke_async(&mut self.connection())
                    .await
                    .map_err(command("recording a stage chunk"))
            })
            .await?;
        Ok(match code {
            -1 => StageRecorded::UnknownJob,
            -2 | -3 => StageRecorded::JobEnded,
            new => StageRecorded::Done {
                new: new == 1,
                siblings_done: siblings.max(0) as u32,
            },
        })
    }

    /// Records that `chunk` of an earlier stage is done, storing `value` (its outputs) as `node` of the
    /// next stage, and counts it once for each of `joining` (the next stage's chunks whose neighbourhood
    /// holds it). Returns how many neighbours each of `joining` has recorded now; `None` when the job
    /// ended (or is unknown).
    pub async fn record_joined_chunk(
        &self,
        job: JobId,
        chunk: ChunkRef,
        counts: (u32, u32),
        value: (ChunkRef, &str),
        joining: &[ChunkRef],
    ) -> Result<Option<Vec<u32>>, StoreError> {
        let script = redis::Script::new(RECORD_JOINED);
        let mut invocation = self.stage_invocation(&script, job, chunk, counts);
        invocation.arg(value.0.field()).arg(value.1);
        for next in joining {
            invocation.arg(next.field());
        }
        // Confirmed by replicas, as for [`JobStore::record_stage_chunk`].
        let recorded: Vec<u32> = self
            .replicated(async {
                invocation
                    .invoke_async(&mut self.connection())
                    .await
                    .map_err(command("recording a joined chunk"))
            })
            .await?;
        Ok((recorded.len() == joining.len()).then_some(recorded))
    }

    /// A recording script's call with the keys and first arguments every stage recording takes: the
    /// job's record, done marks, runs, values and counters; the chunk, its stage and its item counts.
    fn stage_invocation<'a>(
        &self,
        script: &'a redis::Script,
        job: JobId,
        chunk: ChunkRef,
        (items, failed): (u32, u32),
    ) -> redis::ScriptInvocation<'a> {
        let topology = self.topology();
        let mut invocation = script.prepare_invoke();
        invocation
            .key(topology.job_key(job))
            .key(topology.job_done_key(job))
            .key(topology.job_runs_key(job))
            .key(topology.job_partials_key(job))
            .key(topology.job_groups_key(job))
            .arg(chunk.field())
            .arg(chunk.stage)
            .arg(items)
            .arg(failed);
        invocation
    }

    /// The stored reduce values of `chunks`, in order; `None` where one is missing.
    pub async fn reduce_values(
        &self,
        job: JobId,
        chunks: &[ChunkRef],
    ) -> Result<Vec<Option<String>>, StoreError> {
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        let fields: Vec<String> = chunks.iter().map(ChunkRef::field).collect();
        let mut hmget = redis::cmd("HMGET");
        hmget
            .arg(self.topology().job_partials_key(job))
            .arg(&fields);
        hmget
            .query_async(&mut self.connection())
            .await
            .map_err(command("reading reduce values"))
    }

    /// Takes one of `stage`'s `cap` in-flight slots for a chunk about to be published; false when all
    /// are taken (chunks published and not yet recorded).
    pub async fn take_stage_slot(
        &self,
        job: JobId,
        stage: u16,
        last: bool,
        cap: u32,
    ) -> Result<bool, StoreError> {
        let taken: i64 = redis::Script::new(TAKE_SLOT)
            .key(self.topology().job_key(job))
            .arg(stage)
            .arg(if last { "1" } else { "0" })
            .arg(cap)
            .invoke_async(&mut self.connection())
            .await
            .map_err(command("taking a stage's in-flight slot"))?;
        Ok(taken == 1)
    }

    /// Chunks of `stage` counted in flight (published under its cap and not yet recorded).
    pub async fn stage_in_flight(
        &self,
        job: JobId,
        stage: u16,
        last: bool,
    ) -> Result<i64, StoreError> {
        let done = if last {
            "chunks_done".to_owned()
        } else {
            format!("s{stage}.chunks")
        };
        let mut hmget = redis::cmd("HMGET");
        hmget
            .arg(self.topology().job_key(job))
            .arg(format!("s{stage}.published"))
            .arg(done);
        let (published, done): (Option<i64>, Option<i64>) = hmget
            .query_async(&mut self.connection())
            .await
            .map_err(command("counting a stage's chunks in flight"))?;
        Ok(published.unwrap_or(0) - done.unwrap_or(0))
    }

    /// Counts one more chunk of `stage` published without a slot (its cap waited long enough).
    pub async fn count_stage_published(&self, job: JobId, stage: u16) -> Result<(), StoreError> {
        let _: i64 = self
            .connection()
            .hincr(
                self.topology().job_key(job),
                format!("s{stage}.published"),
                1,
            )
            .await
            .map_err(command("counting a published stage chunk"))?;
        Ok(())
    }

    /// The job's stages and their progress; `None` for a job of one stage (or an unknown job).
    pub async fn stage_progress(&self, job: JobId) -> Result<Option<StageProgress>, StoreError> {
        let fields: HashMap<String, String> = self
            .connection()
            .hgetall(self.topology().job_key(job))
            .await
            .map_err(command("reading the job record"))?;
        let Some(raw) = fields.get("stages") else {
            return Ok(None);
        };
        let plan = Plan::from_json(raw).map_err(|detail| StoreError::Corrupt { job, detail })?;
        let number = |name: &str| fields.get(name).and_then(|raw| raw.parse::<u64>().ok());
        let source = number("source_chunks").unwrap_or(0) as u32;
        let chunks = plan.chunks_per_stage(source);
        let last = usize::from(plan.last());
        let stages = plan
            .stages()
            .iter()
            .enumerate()
            .map(|(k, stage)| {
                let field = |name: &str| number(&format!("s{k}.{name}"));
                // The last stage's results are the consumer's counts; a reduce's nodes below its root
                // are recorded like an earlier stage's chunks.
                let recorded = |stage_field: &str, job_field: &str| {
                    let consumer = if k == last { number(job_field) } else { None };
                    field(stage_field).unwrap_or(0) + consumer.unwrap_or(0)
                };
                StageStats {
                    kind: stage.kind.clone(),
                    edge: stage.edge.map_or("source", |edge| edge.as_str()).to_owned(),
                    chunks: chunks[k],
                    chunks_done: recorded("chunks", "chunks_done") as u32,
                    items: recorded("items", "items_done"),
                    failed: recorded("failed", "items_failed"),
                    started_ms: field("started_ms"),
                    // The last stage ends with the job (a reduce's lower nodes finish before its root).
                    finished_ms: if k == last {
                        None
                    } else {
                        field("finished_ms")
                    },
                }
            })
            .collect();
        Ok(Some(StageProgress { plan, stages }))
    }
}
