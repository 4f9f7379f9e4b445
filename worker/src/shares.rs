//! What this worker knows about the broadcast jobs it receives: whether it is a member, which members
//! stopped, and the chunks it holds for the others. Pure bookkeeping; the broadcast lane and the takeover
//! check do the I/O around it.
//!
//! Every member receives every chunk. It runs the chunks it owns (see [`taskq_common::broadcast::owner`])
//! and holds the others in memory until the job ends, because if their owner stops, ownership moves among
//! the surviving members, and the new owner needs the chunk. A member counts as stopped once it is seen
//! without a live registry entry in two checks at least a heartbeat interval apart (one check could fall
//! into a Redis restart, before the heartbeats re-register everybody); stopped stays stopped for the job.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use taskq_common::broadcast::{owner, Member};
use taskq_common::job::JobId;

/// What to do with a broadcast chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// This worker owns it: run it.
    Run,
    /// Another member owns it: hold it in case that member stops.
    Hold,
    /// This worker is not a member of the job (it started later), or the job no longer runs.
    Ignore,
}

/// A broadcast job as the lane found it in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Running, with these members, chunks and kind.
    Running {
        /// The members recorded at submit.
        members: Vec<Member>,
        /// Chunks in the job.
        total_chunks: u32,
        /// The task kind.
        kind: String,
    },
    /// Finished, cancelled or failed: nothing more to do for it.
    Inactive,
}

/// What this worker did in a job it leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Members at submit.
    pub members: usize,
    /// Chunks in the job.
    pub total_chunks: u32,
    /// Distinct chunks this worker decided to run.
    pub owned: usize,
    /// Of those, chunks taken over from stopped members.
    pub taken_over: usize,
    /// Members that stopped during the job.
    pub stopped: Vec<String>,
}

/// Held chunks to run again elsewhere: their numbers with the encoded task messages.
pub type Chunks = Vec<(u32, Vec<u8>)>;

/// The broadcast jobs this worker knows.
pub struct Shares {
    me: Member,
    /// How long a member must be seen missing before it counts as stopped.
    grace: Duration,
    jobs: HashMap<JobId, Job>,
}

enum Job {
    Outsider,
    Member(Share),
}

struct Share {
    members: Vec<Member>,
    total_chunks: u32,
    kind: String,
    stopped: BTreeSet<String>,
    missing_since: HashMap<String, Instant>,
    held: BTreeMap<u32, Vec<u8>>,
    owned: BTreeSet<u32>,
    taken_over: usize,
    /// Held chunks may have changed owner (a member stopped, or a takeover must be tried again): only then
    /// is it worth rehashing every held chunk.
    takeover_due: bool,
}

impl Share {
    fn owner(&self, job: JobId, chunk: u32) -> Option<&Member> {
        let alive = self
            .members
            .iter()
            .filter(|member| !self.stopped.contains(&member.worker_id));
        owner(job, chunk, alive)
    }
}

impl Shares {
    /// No jobs yet, for the worker run `me`. Members must be missing `grace` to count as stopped.
    pub fn new(me: Member, grace: Duration) -> Self {
        Self {
            me,
            grace,
            jobs: HashMap::new(),
        }
    }

    /// What to do with `chunk` (encoded as `body`); `None` if the job is not known yet (look it up, then
    /// [`Shares::join`]).
    pub fn decide(&mut self, job: JobId, chunk: u32, body: &[u8]) -> Option<Decision> {
        let Job::Member(share) = self.jobs.get_mut(&job)? else {
            return Some(Decision::Ignore);
        };
        if share.owner(job, chunk) == Some(&self.me) {
            share.owned.insert(chunk);
            share.held.remove(&chunk);
            Some(Decision::Run)
        } else {
            share.held.insert(chunk, body.to_vec());
            Some(Decision::Hold)
        }
    }

    /// Learns a job from Redis. Returns true if this worker is a member (and so takes a share). A job
    /// already known is left as it is.
    pub fn join(&mut self, job: JobId, found: Found) -> bool {
        let me = &self.me;
        let entry = self.jobs.entry(job).or_insert_with(|| match found {
            Found::Running {
                members,
                total_chunks,
                kind,
            } if members.contains(me) => Job::Member(Share {
                members,
                total_chunks,
                kind,
                stopped: BTreeSet::new(),
                missing_since: HashMap::new(),
                held: BTreeMap::new(),
                owned: BTreeSet::new(),
                taken_over: 0,
                takeover_due: false,
            }),
            _ => Job::Outsider,
        });
        matches!(entry, Job::Member(_))
    }

    /// The jobs known.
    pub fn jobs(&self) -> Vec<JobId> {
        self.jobs.keys().copied().collect()
    }

    /// The job's task kind, if this worker is a member.
    pub fn kind(&self, job: JobId) -> Option<String> {
        match self.jobs.get(&job)? {
            Job::Member(share) => Some(share.kind.clone()),
            Job::Outsider => None,
        }
    }

    /// The members of `job` that stopped, as far as this worker saw.
    pub fn stopped(&self, job: JobId) -> Vec<String> {
        match self.jobs.get(&job) {
            Some(Job::Member(share)) => share.stopped.iter().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Forgets a job that ended; returns what this worker did in it, if it was a member.
    pub fn forget(&mut self, job: JobId) -> Option<Report> {
        match self.jobs.remove(&job)? {
            Job::Member(share) => Some(Report {
                members: share.members.len(),
                total_chunks: share.total_chunks,
                owned: share.owned.len(),
                taken_over: share.taken_over,
                stopped: share.stopped.into_iter().collect(),
            }),
            Job::Outsider => None,
        }
    }

    /// Notes which members of `job` are alive now (`is_alive`), at `now`; returns the members that count
    /// as stopped from this check on.
    pub fn check_members(
        &mut self,
        job: JobId,
        now: Instant,
        is_alive: impl Fn(&Member) -> bool,
    ) -> Vec<String> {
        let Some(Job::Member(share)) = self.jobs.get_mut(&job) else {
            return Vec::new();
        };
        let mut newly_stopped = Vec::new();
        for member in &share.members {
            let id = &member.worker_id;
            if member == &self.me || share.stopped.contains(id) {
                continue;
            }
            if is_alive(member) {
                share.missing_since.remove(id);
                continue;
            }
            let since = *share.missing_since.entry(id.clone()).or_insert(now);
            if now.duration_since(since) >= self.grace {
                newly_stopped.push(id.clone());
            }
        }
        share.takeover_due |= !newly_stopped.is_empty();
        for id in &newly_stopped {
            share.missing_since.remove(id);
            share.stopped.insert(id.clone());
        }
        newly_stopped
    }

    /// Held chunks of `job` that this worker owns now that members stopped.
    pub fn orphans(&self, job: JobId) -> Vec<u32> {
        let Some(Job::Member(share)) = self.jobs.get(&job) else {
            return Vec::new();
        };
        if !share.takeover_due {
            return Vec::new();
        }
        share
            .held
            .keys()
            .copied()
            .filter(|chunk| share.owner(job, *chunk) == Some(&self.me))
            .collect()
    }

    /// Drops held chunks that have a result (`done`) and hands over the ones to run (`todo`).
    pub fn take_over(&mut self, job: JobId, done: &[u32], todo: &[u32]) -> Chunks {
        let Some(Job::Member(share)) = self.jobs.get_mut(&job) else {
            return Vec::new();
        };
        share.takeover_due = false;
        for chunk in done {
            share.held.remove(chunk);
        }
        share.taken_over += todo.len();
        todo.iter()
            .filter_map(|chunk| Some((*chunk, share.held.remove(chunk)?)))
            .collect()
    }

    /// Holds chunks again whose hand-over failed, for the next check.
    pub fn hold_again(&mut self, job: JobId, chunks: Chunks) {
        if let Some(Job::Member(share)) = self.jobs.get_mut(&job) {
            share.taken_over -= chunks.len().min(share.taken_over);
            share.held.extend(chunks);
            share.takeover_due = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> Member {
        Member {
            worker_id: id.into(),
            instance: format!("{id}-run"),
        }
    }

    fn running(ids: &[&str]) -> Found {
        Found::Running {
            members: ids.iter().map(|id| member(id)).collect(),
            total_chunks: 300,
            kind: "square".into(),
        }
    }

    const GRACE: Duration = Duration::from_secs(2);

    #[test]
    fn members_together_run_every_chunk_exactly_once() {
        let job = JobId::new();
        let mut workers: Vec<Shares> = ["a", "b", "c"]
            .iter()
            .map(|id| Shares::new(member(id), GRACE))
            .collect();
        let mut runs = vec![0u32; 300];
        for shares in &mut workers {
            assert!(shares.join(job, running(&["a", "b", "c"])));
            for chunk in 0..300 {
                if shares.decide(job, chunk, b"task") == Some(Decision::Run) {
                    runs[chunk as usize] += 1;
                }
            }
        }
        assert!(runs.iter().all(|runs| *runs == 1), "{runs:?}");
        let owned: Vec<usize> = workers
            .iter_mut()
            .map(|shares| shares.forget(job).unwrap().owned)
            .collect();
        assert!(owned.iter().all(|owned| *owned > 0), "{owned:?}");
    }

    #[test]
    fn a_stopped_members_chunks_are_taken_over_by_the_survivors_and_nothing_is_skipped() {
        let job = JobId::new();
        let mut a = Shares::new(member("a"), GRACE);
        let mut b = Shares::new(member("b"), GRACE);
        let mut c_owned = BTreeSet::new();
        for shares in [&mut a, &mut b] {
            shares.join(job, running(&["a", "b", "c"]));
        }
        let mut ran = BTreeSet::new();
        for chunk in 0..300 {
            let by_a = a.decide(job, chunk, &chunk.to_le_bytes());
            let by_b = b.decide(job, chunk, &chunk.to_le_bytes());
            match (by_a, by_b) {
                (Some(Decision::Run), Some(Decision::Hold))
                | (Some(Decision::Hold), Some(Decision::Run)) => {
                    ran.insert(chunk);
                }
                (Some(Decision::Hold), Some(Decision::Hold)) => {
                    c_owned.insert(chunk);
                }
                other => panic!("chunk {chunk}: {other:?}"),
            }
        }
        assert!(!c_owned.is_empty());
        let t0 = Instant::now();
        let alive = |m: &Member| m.worker_id != "c";
        assert!(
            a.check_members(job, t0, alive).is_empty(),
            "one missed check is not a death"
        );
        assert_eq!(a.check_members(job, t0 + GRACE, alive), ["c"]);
        b.check_members(job, t0, alive);
        assert_eq!(b.check_members(job, t0 + GRACE, alive), ["c"]);
        for shares in [&mut a, &mut b] {
            let orphans = shares.orphans(job);
            let taken = shares.take_over(job, &[], &orphans);
            for (chunk, body) in taken {
                assert_eq!(body, chunk.to_le_bytes());
                assert!(c_owned.remove(&chunk), "chunk {chunk} taken twice");
                // The hand-over comes back as a delivery, and is then this worker's to run.
                assert_eq!(shares.decide(job, chunk, &body), Some(Decision::Run));
            }
        }
        assert!(c_owned.is_empty(), "skipped: {c_owned:?}");
        let report = a.forget(job).unwrap();
        assert_eq!(report.stopped, ["c"]);
        assert!(report.taken_over > 0);
    }

    #[test]
    fn a_member_seen_again_is_not_stopped_and_late_workers_ignore_the_job() {
        let job = JobId::new();
        let mut a = Shares::new(member("a"), GRACE);
        a.join(job, running(&["a", "b"]));
        let t0 = Instant::now();
        a.check_members(job, t0, |_| false);
        a.check_members(job, t0 + GRACE / 2, |_| true);
        assert!(a.check_members(job, t0 + GRACE * 2, |_| false).is_empty());
        assert!(a.orphans(job).is_empty());

        let mut late = Shares::new(member("z"), GRACE);
        assert!(!late.join(job, running(&["a", "b"])));
        assert_eq!(late.decide(job, 0, b"x"), Some(Decision::Ignore));
        assert!(late.forget(job).is_none());
        let mut restarted = Shares::new(
            Member {
                worker_id: "a".into(),
                instance: "another run".into(),
            },
            GRACE,
        );
        assert!(!restarted.join(job, running(&["a", "b"])));
        assert!(!a.join(JobId::new(), Found::Inactive));
    }
}
