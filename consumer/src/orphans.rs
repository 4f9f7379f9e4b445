//! Broadcast jobs that nobody can finish any more. A broadcast job's members hold the chunks they do not
//! own in memory only; when one stops, the others take its share over (the workers' takeover check), but
//! when every member stopped before the job finished, its missing chunks are nowhere: no queue holds them
//! and a worker started later is not a member. Without this watch such a job would stay `running` and
//! `producer wait` would wait forever.
//!
//! Every heartbeat interval the consumer (which every job needs anyway) reads the broadcast jobs still
//! recorded as running and their members' liveness in the registry. A job none of whose members is alive
//! is failed, with a reason naming its members and how much of it was done, once that has held for two
//! checks at least [`GRACE`] apart with no chunk recorded in between: a Redis restart that briefly hides
//! the registry, or results still on their way to this consumer, do not fail a job that can finish.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use taskq_common::broadcast::Member;
use taskq_common::job::{now_ms, JobId, JobState, JobStatus};
use taskq_common::registry::{Membership, Registry, ENTRY_TTL, HEARTBEAT_INTERVAL};
use taskq_common::store::{JobStore, StoreError};
use tokio_util::sync::CancellationToken;

/// How long a job's members must all have been gone, with no progress, before it is failed: a registry
/// entry's time to live, so a worker whose heartbeat was merely late is back within it.
pub const GRACE: Duration = ENTRY_TTL;

/// Checks every heartbeat interval until `stop` fires; Redis errors are logged and tried again.
pub async fn watch(store: JobStore, stop: CancellationToken) {
    let registry = Registry::new(&store);
    let mut orphans = Orphans::default();
    let mut ticks = tokio::time::interval(HEARTBEAT_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(error) = check(&store, &registry, &mut orphans).await {
            tracing::warn!("{error}; broadcast jobs checked again shortly");
        }
    }
}

async fn check(
    store: &JobStore,
    registry: &Registry,
    orphans: &mut Orphans,
) -> Result<(), StoreError> {
    let jobs = store.broadcast_jobs().await?;
    if jobs.is_empty() {
        return Ok(());
    }
    let membership = registry.membership().await?;
    for job in jobs {
        let state = store.job_state(job).await?;
        let members = store.members(job).await?;
        match orphans.verdict(
            job,
            state.as_ref(),
            members.as_deref(),
            &membership,
            Instant::now(),
        ) {
            Verdict::Forget => store.forget_broadcast_job(job).await?,
            Verdict::Wait => {}
            Verdict::Fail(reason) => {
                if store.fail_unfinished(job, &reason).await? {
                    tracing::error!(%job, "{reason}");
                }
                orphans.suspects.remove(&job);
            }
        }
    }
    Ok(())
}

/// What to do about one broadcast job at one check.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// It ended, or Redis no longer knows it: stop watching it.
    Forget,
    /// It can still finish, or it has not been orphaned long enough to be sure.
    Wait,
    /// Nobody can finish it: fail it with this reason.
    Fail(String),
}

/// The jobs whose members were all gone at an earlier check: since when, and how far the job was then.
#[derive(Default)]
struct Orphans {
    suspects: HashMap<JobId, (Instant, u32)>,
}

impl Orphans {
    fn verdict(
        &mut self,
        job: JobId,
        state: Option<&JobState>,
        members: Option<&[Member]>,
        membership: &Membership,
        now: Instant,
    ) -> Verdict {
        let (Some(state), Some(members)) = (state, members) else {
            self.suspects.remove(&job);
            return Verdict::Forget;
        };
        if state.status.is_final() {
            self.suspects.remove(&job);
            return Verdict::Forget;
        }
        let alive = members.iter().any(|member| membership.is_alive(member));
        // Submitting: the producer is still publishing (and fails the job itself if it cannot finish);
        // cancelling: `producer cancel` ends it.
        if alive || state.status != JobStatus::Running {
            self.suspects.remove(&job);
            return Verdict::Wait;
        }
        let done = state.chunks_done;
        match self.suspects.get(&job) {
            Some((since, before)) if *before == done && now.duration_since(*since) >= GRACE => {
                Verdict::Fail(reason(state, members, membership))
            }
            Some((_, before)) if *before == done => Verdict::Wait,
            _ => {
                self.suspects.insert(job, (now, done));
                Verdict::Wait
            }
        }
    }
}

/// Why the job failed, naming its members and their last heartbeats, and what to do.
fn reason(state: &JobState, members: &[Member], membership: &Membership) -> String {
    let members: Vec<String> = members
        .iter()
        .map(|member| format!("{} ({})", member.worker_id, gone(member, membership)))
        .collect();
    format!(
        "every member of this broadcast job stopped before it finished: {}; {} of {} chunks have results, \
         and the others were held only by those workers, so nobody can run them. Nothing was taken over: \
         broadcast the job again to the live workers",
        members.join(", "),
        state.chunks_done,
        state.spec.total_chunks
    )
}

/// How a member left, as the registry tells.
fn gone(member: &Member, membership: &Membership) -> String {
    let id = &member.worker_id;
    if membership.live.iter().any(|info| &info.worker_id == id) {
        return "restarted since: the new run is not a member".into();
    }
    match membership
        .crashed
        .iter()
        .find(|crashed| &crashed.worker_id == id)
    {
        Some(crashed) => format!(
            "last heartbeat {} s ago",
            now_ms().saturating_sub(crashed.last_heartbeat_ms) / 1000
        ),
        None => "unregistered: it stopped".into(),
    }
}

#[cfg(test)]
#[path = "orphans_tests.rs"]
mod tests;
