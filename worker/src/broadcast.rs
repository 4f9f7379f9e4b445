//! The broadcast lane: this worker's own queue on the broadcast exchange, which carries every chunk of
//! every broadcast job and the control plane's commands.
//!
//! A chunk this worker owns runs through the ordinary chunk handler (pool or I/O lane, result published
//! with a confirm, then acked); a chunk another member owns is held in memory and acked (see [`shares`]);
//! a job this worker is not a member of is ignored. The queue is consumed without a prefetch limit, so a
//! command never waits behind chunks: every member holds all of a broadcast job anyway.
//!
//! [`shares`]: crate::shares

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use taskq_common::envelope::{self, TaskMessage};
use taskq_common::job::JobId;
use taskq_common::settle::Received;
use taskq_common::store::{JobStore, StoreError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::cancel::Cancellations;
use crate::handler::{self, Context};
use crate::registration::Registration;
use crate::shares::{Decision, Found, Shares};

/// How long a chunk waits before going back to the queue when Redis failed.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// What the broadcast lane keeps across connections: the jobs' shares, and what commands act on.
pub struct Broadcast {
    /// This worker in the registry.
    pub registration: Arc<Registration>,
    /// The broadcast jobs this worker knows.
    shares: Mutex<Shares>,
    /// Held while a job is looked up in Redis: the chunks of a new job arrive together, and one lookup
    /// serves them all.
    lookup: tokio::sync::Mutex<()>,
    /// Running chunks per job, for `cancel`.
    pub cancels: Arc<Cancellations>,
    /// Job state.
    pub store: JobStore,
    /// The worker's stop signal, for `shutdown`.
    pub shutdown: CancellationToken,
    /// Turns true once the queue is bound: the worker may register.
    pub ready: watch::Sender<bool>,
}

impl Broadcast {
    /// The lane's lasting state; `grace` is how long a member must be missing to count as stopped.
    pub fn new(
        registration: Arc<Registration>,
        store: JobStore,
        cancels: Arc<Cancellations>,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Self {
        let shares = Shares::new(registration.member(), grace);
        Self {
            registration,
            shares: Mutex::new(shares),
            lookup: tokio::sync::Mutex::new(()),
            cancels,
            store,
            shutdown,
            ready: watch::Sender::new(false),
        }
    }

    /// The shares, locked (never across an await).
    pub fn shares(&self) -> MutexGuard<'_, Shares> {
        // Every update of the shares is complete before anything can panic; the data stays usable.
        self.shares
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One connection's broadcast lane.
pub struct BroadcastLane {
    /// The lasting state.
    pub broadcast: Arc<Broadcast>,
    /// The chunk handler's context on this connection (its publisher sends results and replies).
    pub chunks: Arc<Context>,
    /// This worker's broadcast queue.
    pub queue: String,
}

/// Handles one broadcast chunk from the broadcast queue.
pub async fn handle_chunk(lane: Arc<BroadcastLane>, delivery: Received) {
    let Ok(task) = envelope::decode_task(&delivery.data) else {
        // The chunk handler dead-letters it, with the reason.
        return handler::handle(lane.chunks.clone(), delivery).await;
    };
    let span = tracing::info_span!("broadcast", job = %task.job_id, chunk = task.task_id);
    let decided = decide(&lane, &task, &delivery.data).instrument(span).await;
    match decided {
        Ok(Decision::Run) => {
            // The chunk is this worker's now: a retry must come back to this worker's queue, not go
            // through the broadcast exchange to everybody (retries route by the delivery's routing key).
            let mut delivery = delivery;
            delivery.set_routing_key(&lane.queue);
            handler::handle(lane.chunks.clone(), delivery).await
        }
        Ok(Decision::Hold | Decision::Ignore) => delivery.ack().await,
        Err(Refusal::Refuse(reason)) => {
            handler::refuse(&lane.chunks, &delivery, &reason, None).await
        }
        Err(Refusal::Store(error)) => {
            tracing::warn!("{error}; the broadcast chunk goes back to the queue");
            delivery.requeue_after(RETRY_DELAY).await
        }
    }
}

enum Refusal {
    Refuse(String),
    Store(StoreError),
}

async fn decide(
    lane: &BroadcastLane,
    task: &TaskMessage,
    body: &[u8],
) -> Result<Decision, Refusal> {
    let broadcast = &lane.broadcast;
    if let Some(decision) = broadcast.shares().decide(task.job_id, task.task_id, body) {
        return Ok(decision);
    }
    let _lookup = broadcast.lookup.lock().await;
    // Another chunk of the job may have looked it up while this one waited.
    if let Some(decision) = broadcast.shares().decide(task.job_id, task.task_id, body) {
        return Ok(decision);
    }
    let found = find(&broadcast.store, task.job_id).await?;
    let Some(found) = found else {
        // A job Redis does not know: the chunk handler dead-letters its chunk with that reason.
        return Ok(Decision::Run);
    };
    let members = match &found {
        Found::Running { members, .. } => members.len(),
        Found::Inactive => 0,
    };
    let mut shares = broadcast.shares();
    if shares.join(task.job_id, found) {
        tracing::info!(
            members,
            "joined broadcast job: running my share (rendezvous hashing over its members)"
        );
    } else if members > 0 {
        tracing::info!("not a member of this broadcast job (started after it was submitted): ignoring its chunks");
    }
    Ok(shares
        .decide(task.job_id, task.task_id, body)
        .unwrap_or(Decision::Ignore))
}

/// Looks a broadcast job up in Redis: `None` if Redis does not know it.
async fn find(store: &JobStore, job: JobId) -> Result<Option<Found>, Refusal> {
    let Some(state) = store.job_state(job).await.map_err(Refusal::Store)? else {
        return Ok(None);
    };
    if !state.status.is_active() {
        return Ok(Some(Found::Inactive));
    }
    match store.members(job).await.map_err(Refusal::Store)? {
        Some(members) => Ok(Some(Found::Running {
            members,
            total_chunks: state.spec.total_chunks,
            kind: state.spec.kind,
        })),
        None => Err(Refusal::Refuse(format!(
            "broadcast chunk of job {job}, which has no member list: it was not submitted with `producer broadcast`"
        ))),
    }
}
