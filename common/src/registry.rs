//! The worker registry: who is alive right now, so that broadcast jobs know whom to share their data
//! among and control commands know whom to wait for.
//!
//! Each worker writes its whole entry (`<prefix>:worker:<id>`, JSON) every [`HEARTBEAT_INTERVAL`] with a
//! time to live of [`ENTRY_TTL`], and scores its id in the index (`<prefix>:workers`) with the time of
//! that heartbeat. So an entry disappears by itself when its heartbeats stop, and comes back in full after
//! a Redis restart. A worker that stops gracefully removes both; one whose entry expired while its id is
//! still in the index stopped without saying so (killed, crashed, cut off): the index remembers it, with
//! its last heartbeat, for [`CRASHED_RETENTION`].

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::broadcast::Member;
use crate::job::now_ms;
use crate::store::{command, JobStore, StoreConnection, StoreError};
use crate::task::Lane;
use crate::topology::Topology;

/// How often a worker refreshes its entry.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// How long an entry lives without a heartbeat: three intervals, so one late heartbeat is not a death.
pub const ENTRY_TTL: Duration = Duration::from_secs(6);

/// How long the index remembers a worker whose heartbeats stopped without it unregistering.
pub const CRASHED_RETENTION: Duration = Duration::from_secs(600);

/// What a worker is doing, as far as new work is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Taking work.
    Running,
    /// Stopping gracefully: finishing in-flight chunks, taking nothing new.
    Stopping,
}

/// What a worker is busy with at its last heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    /// CPU pool threads taken by chunks.
    pub cpu_busy: u32,
    /// I/O slots taken by items (downloads).
    pub io_busy: u32,
    /// Chunks running, on either lane.
    pub running_chunks: u32,
}

/// One worker's registry entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker's name (`--worker-id`).
    pub worker_id: String,
    /// Unique to this run of the worker process: a restarted worker with the same id is another member.
    pub instance: String,
    /// Host name.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// The worker's version.
    pub version: String,
    /// Threads of its CPU pool.
    pub cpu_threads: u32,
    /// I/O items it runs at once.
    pub io_concurrency: u32,
    /// The queues it consumes.
    pub queues: Vec<String>,
    /// The task kinds it serves.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// When it started, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// When this entry was written, ms since the Unix epoch.
    pub heartbeat_at_ms: u64,
    /// Running or stopping.
    pub state: WorkerState,
    /// In-flight work at `heartbeat_at_ms`.
    pub load: Load,
}

impl WorkerInfo {
    /// True if this worker serves `kind`.
    pub fn serves(&self, kind: &str) -> bool {
        self.kinds.iter().any(|served| served == kind)
    }

    /// This worker as a member of a broadcast job.
    pub fn member(&self) -> Member {
        Member {
            worker_id: self.worker_id.clone(),
            instance: self.instance.clone(),
        }
    }
}

/// A worker whose heartbeats stopped without it unregistering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crashed {
    /// Its id.
    pub worker_id: String,
    /// Its last heartbeat, ms since the Unix epoch.
    pub last_heartbeat_ms: u64,
}

/// The registry as read at one moment.
#[derive(Debug, Clone, Default)]
pub struct Membership {
    /// Workers with a live entry, by id.
    pub live: Vec<WorkerInfo>,
    /// Workers still in the index whose entry expired.
    pub crashed: Vec<Crashed>,
}

impl Membership {
    /// True if `member` (that very run of the worker) still heartbeats.
    pub fn is_alive(&self, member: &Member) -> bool {
        self.live
            .iter()
            .any(|info| info.worker_id == member.worker_id && info.instance == member.instance)
    }

    /// The live workers taking work.
    pub fn running(&self) -> impl Iterator<Item = &WorkerInfo> {
        self.live
            .iter()
            .filter(|info| info.state == WorkerState::Running)
    }

    /// The running workers that serve `kind`.
    pub fn serving<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a WorkerInfo> + 'a {
        self.running().filter(move |info| info.serves(kind))
    }

    /// Every kind some running worker serves, sorted, without repeats.
    pub fn served_kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .running()
            .flat_map(|info| info.kinds.iter().cloned())
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// When the worker `worker_id` last heartbeat, if the registry remembers it.
    pub fn last_heartbeat_ms(&self, worker_id: &str) -> Option<u64> {
        let live = self.live.iter().find(|info| info.worker_id == worker_id);
        live.map(|info| info.heartbeat_at_ms).or_else(|| {
            self.crashed
                .iter()
                .find(|crashed| crashed.worker_id == worker_id)
                .map(|crashed| crashed.last_heartbeat_ms)
        })
    }
}

/// A kind as the workers that serve it declare it: what the producer and consumer need to know of a
/// kind without its code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindInfo {
    /// The kind's wire name.
    pub name: String,
    /// Where workers run it.
    pub lane: Lane,
    /// Items per chunk when the submitter does not choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<u32>,
    /// What the consumer folds the outputs of its jobs into.
    #[serde(default)]
    pub aggregate: Aggregate,
    /// How it runs, for people: for example the command of an `--exec` kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// It takes a `neighbours` edge (see [`crate::task::TaskOptions::neighbours`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub neighbours: bool,
}

/// The registry of one deployment. Cheap to clone; shares the job store's connection.
#[derive(Clone)]
pub struct Registry {
    connection: StoreConnection,
    topology: Topology,
}

impl Registry {
    /// The registry next to `store`'s job state.
    pub fn new(store: &JobStore) -> Self {
        Self {
            connection: store.connection(),
            topology: store.topology().clone(),
        }
    }

    /// Writes a worker's whole entry with a fresh time to live, and its heartbeat time in the index.
    /// Returns the entry it replaced, if it was readable (for noticing two workers with one id).
    pub async fn heartbeat(&self, info: &WorkerInfo) -> Result<Option<WorkerInfo>, StoreError> {
        let entry = serde_json::to_string(info).expect("a registry entry encodes as JSON");
        let mut set = redis::cmd("SET");
        set.arg(self.topology.worker_key(&info.worker_id))
            .arg(entry)
            .arg("PX")
            .arg(ENTRY_TTL.as_millis() as u64)
            .arg("GET");
        // The index update is ignored, so the pipeline answers with the SET's reply alone.
        let (previous,): (Option<String>,) = redis::pipe()
            .atomic()
            .add_command(set)
            .zadd(
                self.topology.workers_key(),
                &info.worker_id,
                info.heartbeat_at_ms,
            )
            .ignore()
            .query_async(&mut self.connection.clone())
            .await
            .map_err(command("writing the worker's registry entry"))?;
        Ok(previous.and_then(|raw| serde_json::from_str(&raw).ok()))
    }

    /// Records how the kinds this worker serves are declared (overwriting older declarations: the newest
    /// worker's word counts).
    pub async fn declare_kinds(&self, kinds: &[KindInfo]) -> Result<(), StoreError> {
        if kinds.is_empty() {
            return Ok(());
        }
        let fields: Vec<(String, String)> = kinds
            .iter()
            .map(|kind| {
                let json = serde_json::to_string(kind).expect("a kind declaration encodes as JSON");
                (kind.name.clone(), json)
            })
            .collect();
        let _: () = redis::cmd("HSET")
            .arg(self.topology.kinds_key())
            .arg(fields)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(command("recording the worker's task kinds"))?;
        Ok(())
    }

    /// Every kind some worker ever declared here, sorted by name.
    pub async fn kinds(&self) -> Result<Vec<KindInfo>, StoreError> {
        let all: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.topology.kinds_key())
            .query_async(&mut self.connection.clone())
            .await
            .map_err(command("reading the task kinds"))?;
        let mut kinds: Vec<KindInfo> = all
            .values()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect();
        kinds.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(kinds)
    }

    /// How `kind` was declared, if some worker ever served it here.
    pub async fn kind(&self, kind: &str) -> Result<Option<KindInfo>, StoreError> {
        let json: Option<String> = redis::cmd("HGET")
            .arg(self.topology.kinds_key())
            .arg(kind)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(command("reading a task kind"))?;
        Ok(json.and_then(|json| serde_json::from_str(&json).ok()))
    }

    /// Removes a worker that stops gracefully, so nobody counts it as crashed.
    pub async fn unregister(&self, worker_id: &str) -> Result<(), StoreError> {
        let _: () = redis::pipe()
            .atomic()
            .del(self.topology.worker_key(worker_id))
            .zrem(self.topology.workers_key(), worker_id)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(command("removing the worker's registry entry"))?;
        Ok(())
    }

    /// Reads who is alive and who stopped heartbeating lately, forgetting the crashed ones older than
    /// [`CRASHED_RETENTION`].
    pub async fn membership(&self) -> Result<Membership, StoreError> {
        let index = self.topology.workers_key();
        let forget_before = now_ms().saturating_sub(CRASHED_RETENTION.as_millis() as u64);
        let mut connection = self.connection.clone();
        let ((), scored): ((), Vec<(String, f64)>) = redis::pipe()
            .zrembyscore(&index, "-inf", format!("({forget_before}"))
            .zrange_withscores(&index, 0, -1)
            .query_async(&mut connection)
            .await
            .map_err(command("reading the worker index"))?;
        if scored.is_empty() {
            return Ok(Membership::default());
        }
        let keys: Vec<String> = scored
            .iter()
            .map(|(id, _)| self.topology.worker_key(id))
            .collect();
        let entries: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .map_err(command("reading worker entries"))?;
        let mut membership = Membership::default();
        let mut live = HashMap::new();
        for ((worker_id, score), entry) in scored.into_iter().zip(entries) {
            let parsed = entry.as_deref().map(serde_json::from_str::<WorkerInfo>);
            match parsed {
                Some(Ok(info)) => {
                    live.insert(worker_id, info);
                }
                Some(Err(error)) => {
                    tracing::warn!(%worker_id, "unreadable registry entry ignored: {error}")
                }
                None => membership.crashed.push(Crashed {
                    worker_id,
                    last_heartbeat_ms: score as u64,
                }),
            }
        }
        let mut live: Vec<WorkerInfo> = live.into_values().collect();
        live.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        membership.live = live;
        Ok(membership)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(worker_id: &str, instance: &str, state: WorkerState) -> WorkerInfo {
        WorkerInfo {
            worker_id: worker_id.into(),
            instance: instance.into(),
            host: "h".into(),
            pid: 1,
            version: "0".into(),
            cpu_threads: 2,
            io_concurrency: 64,
            queues: vec![],
            kinds: vec!["square".into()],
            started_at_ms: 1,
            heartbeat_at_ms: 5,
            state,
            load: Load::default(),
        }
    }

    #[test]
    fn a_restarted_worker_is_another_member_and_stopping_ones_take_no_work() {
        let membership = Membership {
            live: vec![
                info("a", "1", WorkerState::Running),
                info("b", "2", WorkerState::Stopping),
            ],
            crashed: vec![Crashed {
                worker_id: "c".into(),
                last_heartbeat_ms: 3,
            }],
        };
        assert!(membership.is_alive(&info("a", "1", WorkerState::Running).member()));
        assert!(!membership.is_alive(&info("a", "9", WorkerState::Running).member()));
        let running: Vec<&str> = membership
            .running()
            .map(|info| info.worker_id.as_str())
            .collect();
        assert_eq!(running, ["a"]);
        assert_eq!(membership.served_kinds(), ["square"]);
        assert_eq!(membership.serving("square").count(), 1);
        assert_eq!(membership.serving("cube").count(), 0);
        assert_eq!(membership.last_heartbeat_ms("a"), Some(5));
        assert_eq!(membership.last_heartbeat_ms("c"), Some(3));
        assert_eq!(membership.last_heartbeat_ms("d"), None);
    }
}
