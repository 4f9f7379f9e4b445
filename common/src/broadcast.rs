//! The broadcast pattern's shared rule: every member of a broadcast job receives all of its chunks, and
//! each works out on its own which ones are its share, so that together they cover every chunk once.
//!
//! The share is decided by rendezvous (highest random weight) hashing of (job, chunk, worker) over the
//! members the producer recorded at submit: the owner of a chunk is the member whose hash is highest.
//! Every process computes the same owner without talking to the others, and when a member stops, only its
//! chunks move (each to the survivor with the next highest hash). The hash is XXH3-64: stable across
//! processes, hosts and versions (unlike the standard library's randomly seeded hasher).

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::job::JobId;
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
    /// Records the members a broadcast job is shared among. Written before the job record, so a worker
    /// that sees the job always finds its members.
    pub async fn record_members(&self, job: JobId, members: &[Member]) -> Result<(), StoreError> {
        let encoded = serde_json::to_string(members).expect("members encode as JSON");
        let _: () = redis::cmd("SET")
            .arg(self.topology().job_members_key(job))
            .arg(encoded)
            .arg("EX")
            .arg(JOB_RETENTION.as_secs())
            .query_async(&mut self.connection())
            .await
            .map_err(command("recording the job's members"))?;
        Ok(())
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
