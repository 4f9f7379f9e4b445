//! Where a finished chunk's output goes: to the consumer (a job of one stage, or the last stage), or to
//! the next stage as a follow-up this worker publishes itself (workers talk to workers through the
//! broker), or into a reduce's tree.
//!
//! Order is what makes a stage exactly-once in effect: the follow-up is confirmed by the broker before
//! the chunk is recorded done, and the chunk is acked after that. A chunk that runs twice publishes a
//! follow-up with the same identity (stage, level, number), which its stage records once.
//!
//! - [`upstream`]: running a chunk whose items partly failed in an earlier stage.
//! - [`follow_up`]: the next stage's chunk built from this one's outputs (map, flat-map, a reduce leaf).
//! - [`reduce`]: the nodes of a reduce's tree, and its root's output.
//! - [`join`]: the `neighbours` edge, a chunk waiting for its neighbours.

pub mod follow_up;
pub mod join;
pub mod reduce;
pub mod upstream;

use taskq_common::broker::BrokerError;
use taskq_common::envelope::TaskMessage;
use taskq_common::stage_store::StageRecorded;
use taskq_common::stages::{Edge, StagedJob};
use taskq_common::store::StoreError;

use crate::handler::{publish_result, Context};
use crate::kinds::output::ChunkOutput;

/// Why a chunk's output could not be passed on; the chunk goes back to its queue and runs again.
#[derive(Debug, thiserror::Error)]
pub enum PassOnError {
    /// Publishing (or its confirm) failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Redis failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output or a stored value is not what the stage expects.
    #[error("{0}")]
    Invalid(String),
}

/// Passes a chunk's output on: to the consumer, or to the job's next stage. `staged` is `None` for a
/// job of one stage.
pub async fn pass_on(
    context: &Context,
    task: &TaskMessage,
    staged: Option<&StagedJob>,
    output: ChunkOutput,
) -> Result<(), PassOnError> {
    let Some(job) = staged else {
        return Ok(publish_result(context, task, output).await?);
    };
    let stage = job.plan.stage(task.stage).ok_or_else(|| {
        PassOnError::Invalid(format!(
            "chunk of stage {}, but job {} has {} stages",
            task.stage,
            task.job_id,
            job.plan.stages().len()
        ))
    })?;
    if stage.edge == Some(Edge::Reduce) {
        reduce::node_done(context, task, job, output).await
    } else if task.stage == job.plan.last() {
        Ok(publish_result(context, task, output).await?)
    } else {
        let from = taskq_common::stages::ChunkRef::of(task);
        follow_up::publish(context, task.job_id, job, from, task.task_id, output).await
    }
}

/// Publishes chunk `at` of a later stage of `job` (a first attempt) to `kind`'s queue, with the
/// broker's confirm. Its message id is the chunk's identity, the same however often it is published.
async fn publish_chunk(
    context: &Context,
    job: taskq_common::job::JobId,
    at: taskq_common::stages::ChunkRef,
    kind: &str,
    payload: &taskq_common::payload::TaskPayload,
) -> Result<(), BrokerError> {
    let task = TaskMessage::new(job, (at.stage, at.level, at.chunk), kind, payload);
    let outgoing = context.topology.task_outgoing(&task);
    context.publisher.publish(&outgoing).await
}

/// Logs what recording a stage's chunk said when it was not a plain success.
fn note(recorded: StageRecorded) {
    match recorded {
        StageRecorded::Done { new: false, .. } => {
            tracing::info!("stage chunk recorded before (it ran again); counted once")
        }
        StageRecorded::JobEnded => tracing::info!("the job ended meanwhile; nothing more to do"),
        StageRecorded::UnknownJob => tracing::warn!("Redis no longer knows the job"),
        StageRecorded::Done { .. } => {}
    }
}

/// Marks a value stored in Redis (a reduce's partial, a chunk's outputs for its neighbours) as a
/// failure: `!` and the reason, never valid JSON.
const FAILED: char = '!';

/// A value as stored: its JSON text, or the failure's reason behind [`FAILED`].
fn stored(value: Result<&str, &str>) -> String {
    match value {
        Ok(json) => json.to_owned(),
        Err(reason) => format!("{FAILED}{reason}"),
    }
}

/// A stored value: its JSON text, or why it failed.
fn read_stored(value: &str) -> Result<&str, &str> {
    match value.strip_prefix(FAILED) {
        Some(reason) => Err(reason),
        None => Ok(value),
    }
}

/// An error message as the next stage shows it: which stage it came from, unless it already says.
fn from_stage(stage: u16, kind: &str, message: &str) -> String {
    if message.starts_with("stage ") {
        message.to_owned()
    } else {
        format!("stage {stage} ({kind}): {message}")
    }
}
