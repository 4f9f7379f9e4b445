//! The broadcast pattern's shared rule: every member of a broadcast job receives all of its chunks, and
//! each works out on its own which ones are its share, so that together they cover every chunk once.
//!
//! The share is decided by rendezvous (highest random weight) hashing of (job, chunk, worker) over the
//! members the producer recorded at submit: the owner of a chunk is the member whose hash is highest.
//! Every process computes the same owner without talking to the others, and when a member stops, only its
//! chunks move (each to the survivor with the next highest hash). The hash is XXH3-64: stable across
//! processes, hosts and versions (unlike the standard library's randomly seeded hasher).
//!
//! A member holds the chunks it does not own in memory only, so when every member stopped before the
//! job finished, nobody can finish it: the job is failed, saying so (see [`JobStore::fail_unfinished`],
//! used by the consumer, which watches the jobs in [`JobStore::broadcast_jobs`]).

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::job::JobId;
use crate::job::JobStatus;
use crate::store::{command, JobStore, StoreError, JOB_RETENTION};

/// The most chunks a broadcast job may have: every member receives and holds all of them.
pub const MAX_BROADCAST_CHUNKS: u32 = 100_000;

/// One run of a worker taking part in a broadcast job.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The worker's id.
    pub worker_id: String,
    /// Which run of that worker: a worker restarted under the same id is not a member of earlier jobs.
    pub instance: String,
}

/// The member that owns `chunk` of `job` among `candidates`; `None` without candidates.
pub fn owner<'a>(
    job: JobId,
    chunk: u32,
    candidates: impl IntoIterator<Item = &'a Member>,
) -> Option<&'a Member> {
    let job = job.to_string();
    candidates
        .into_iter()
        .max_by_key(|member| weight(&job, chunk, member))
}

/// The member's weight for a chunk; ties (astronomically unlikely) go to the larger worker id.
fn weight<'a>(job: &str, chunk: u32, member: &'a Member) -> (u64, &'a str) {
    let mut key = Vec::with_capacity(job.len() + 4 + member.worker_id.len());
    key.extend_from_slice(job.as_bytes());
    key.extend_from_slice(&chunk.to_le_bytes());
    key.extend_from_slice(member.worker_id.as_bytes());
    (xxh3_64(&key), &member.worker_id)
}

impl JobStore {
    /// Records the members a broadcast job is shared among, and the job among the broadcast jobs the
    /// consumer watches. Written before the job record, so a worker that sees the job always finds its
    /// members.
    pub async fn record_members(&self, job: JobId, members: &[Member]) -> Result<(), StoreError> {
        let encoded = serde_json::to_string(members).expect("members encode as JSON");
        let _: () = redis::pipe()
            .atomic()
            .set_ex(
                self.topology().job_members_key(job),
                encoded,
                JOB_RETENTION.as_secs(),
            )
            .sadd(self.topology().broadcast_jobs_key(), job.to_string())
            .query_async(&mut self.connection())
            .await
            .map_err(command("recording the job's members"))?;
        Ok(())
    }

    /// The broadcast jobs recorded and not yet forgotten (see [`JobStore::forget_broadcast_job`]).
    pub async fn broadcast_jobs(&self) -> Result<Vec<JobId>, StoreError> {
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.topology().broadcast_jobs_key())
            .query_async(&mut self.connection())
            .await
            .map_err(command("listing the broadcast jobs"))?;
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// Stops watching a broadcast job (it ended, or Redis no longer knows it).
    pub async fn forget_broadcast_job(&self, job: JobId) -> Result<(), StoreError> {
        let _: () = redis::cmd("SREM")
            .arg(self.topology().broadcast_jobs_key())
            .arg(job.to_string())
            .query_async(&mut self.connection())
            .await
            .map_err(command("forgetting a broadcast job"))?;
        Ok(())
    }

    /// Marks a job failed with `reason`, as [`JobStore::fail`] does, but only while it is running with
    /// chunks missing, in one atomic step: a job whose last result was just recorded completes instead.
    /// Returns whether it failed the job.
    pub async fn fail_unfinished(&self, job: JobId, reason: &str) -> Result<bool, StoreError> {
        let topology = self.topology();
        let failed: i64 = redis::Script::new(FAIL_UNFINISHED)
            .key(topology.job_key(job))
            .key(topology.broadcast_jobs_key())
            .key(topology.job_scratch_keys(job))
            .arg(reason)
            .arg(JOB_RETENTION.as_secs())
            .arg(topology.job_finished_channel(job))
            .arg(job.to_string())
            .arg(JobStatus::Running.as_str())
            .arg(JobStatus::Failed.as_str())
            .invoke_async(&mut self.connection())
            .await
            .map_err(command("failing an unfinished broadcast job"))?;
        Ok(failed == 1)
    }

    /// The members of a broadcast job; `None` if it has none recorded (not a broadcast job, or expired).
    pub async fn members(&self, job: JobId) -> Result<Option<Vec<Member>>, StoreError> {
        let encoded: Option<String> = redis::cmd("GET")
            .arg(self.topology().job_members_key(job))
            .query_async(&mut self.connection())
            .await
            .map_err(command("reading the job's members"))?;
        encoded
            .map(|raw| {
                serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt {
                    job,
                    detail: format!("member list: {e}"),
                })
            })
            .transpose()
    }

    /// Which of `chunks` have a recorded result, in the same order.
    pub async fn recorded(&self, job: JobId, chunks: &[u32]) -> Result<Vec<bool>, StoreError> {
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.topology().job_results_key(job);
        let mut pipe = redis::pipe();
        for chunk in chunks {
            pipe.hexists(&key, chunk);
        }
        pipe.query_async(&mut self.connection())
            .await
            .map_err(command("checking which chunks have results"))
    }
}

/// KEYS: the job, the set of broadcast jobs, then the job's scratch keys. ARGV: reason, retention,
/// finished channel, job id, the running and failed statuses' names.
const FAIL_UNFINISHED: &str = r#"
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[5] then return 0 end
local done = tonumber(redis.call('HGET', KEYS[1], 'chunks_done') or '0')
if done >= tonumber(redis.call('HGET', KEYS[1], 'total_chunks') or '0') then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[6], 'error', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[2], ARGV[4])
for i = 3, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('PUBLISH', ARGV[3], 'failed')
return 1
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn members(count: usize) -> Vec<Member> {
        (0..count)
            .map(|i| Member {
                worker_id: format!("worker-{i}"),
                instance: format!("run-{i}"),
            })
            .collect()
    }

    #[test]
    fn the_owner_is_stable_across_processes_and_versions() {
        // A fixed job id and members: if this changes, workers of different versions disagree on shares.
        let job: JobId = "26fda2e9-bab7-4f5b-b9fc-9e90c89bbab5".parse().unwrap();
        let members = members(3);
        let owners: Vec<&str> = (0..8)
            .map(|chunk| owner(job, chunk, &members).unwrap().worker_id.as_str())
            .collect();
        assert_eq!(
            owners,
            [
                "worker-1", "worker-1", "worker-1", "worker-2", "worker-0", "worker-2", "worker-0",
                "worker-0"
            ]
        );
    }

    #[test]
    fn shares_are_even_and_only_a_stopped_members_chunks_move() {
        let job = JobId::new();
        let all = members(3);
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for chunk in 0..3000 {
            *counts
                .entry(&owner(job, chunk, &all).unwrap().worker_id)
                .or_default() += 1;
        }
        for (member, count) in &counts {
            assert!((800..1200).contains(count), "{member}: {count} of 3000");
        }
        let survivors = &all[..2];
        for chunk in 0..3000 {
            let before = owner(job, chunk, &all).unwrap();
            let after = owner(job, chunk, survivors).unwrap();
            if before != &all[2] {
                assert_eq!(
                    before, after,
                    "chunk {chunk} moved although its owner lives"
                );
            }
        }
        assert!(owner(job, 0, &[]).is_none());
    }
}
