//! What happens to one delivery: decode, run (CPU kinds on the pool, I/O kinds on the I/O lane), publish
//! the result with a confirm, then ack.
//!
//! The order is the at-least-once guarantee: a task is acknowledged only after its result is safely with
//! the broker, so a worker that dies at any point loses nothing (the task is redelivered and the consumer
//! counts its result once). A message that cannot be processed is copied to the dead-letter queue with the
//! reason, and only then acknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use taskq_common::broker::{BrokerError, Publisher};
use taskq_common::envelope::{self, ResultMessage, TaskMessage, WIRE_VERSION};
use taskq_common::job::JobStatus;
use taskq_common::settle::Received;
use taskq_common::stages::{ChunkRef, StagedJob};
use taskq_common::store::{Claim, JobStore};
use taskq_common::topology::Topology;
use tracing::Instrument;

use crate::cancel::Cancellations;
use crate::io_lane::IoLane;
use crate::kinds::output::{without_inputs, ChunkOutput};
use crate::kinds::{Kind, Kinds, Runner};
use crate::metrics::{self, ChunkOutcome, ItemCounts};
use crate::pool::CpuPool;
use crate::results::ResultPublisher;
use crate::stages;

mod run;
mod settle;

use run::{run_chunk, Ran, Ready};
pub(crate) use settle::refuse;
use settle::Settle;

/// Unfinished runs after which a chunk is quarantined instead of run again: it keeps killing its worker.
/// Below the queues' broker-side delivery limit, so the dead letter carries this worker's reason.
pub const POISON_RUNS: u32 = 5;

/// How long a chunk waits before going back to the queue when Redis or publishing its result failed.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// What every delivery handler shares.
pub struct Context {
    /// Confirmed publishing of dead letters and retries.
    pub publisher: Publisher,
    /// Confirmed publishing of results, in batches.
    pub results: ResultPublisher,
    /// Queue names.
    pub topology: Topology,
    /// The kinds this worker serves.
    pub kinds: Arc<Kinds>,
    /// Where CPU chunks run.
    pub pool: Arc<CpuPool>,
    /// Where I/O chunks run.
    pub io: Arc<IoLane>,
    /// This worker's name.
    pub worker_id: String,
    /// Job state, to skip chunks of jobs that can no longer complete.
    pub store: JobStore,
    /// Retries of a chunk after transient task failures, unless its kind sets its own.
    pub max_retries: u32,
    /// How long a CPU chunk may run before its remaining items fail, unless its kind sets its own.
    pub chunk_time_limit: Duration,
    /// Where finished chunks report what they cost, for the adaptive prefetch.
    pub costs: Option<tokio::sync::mpsc::UnboundedSender<ChunkCost>>,
    /// Running chunks per job, to stop them when their job is cancelled.
    pub cancels: Arc<Cancellations>,
}

/// What one chunk cost: time on a pool thread, and other time holding a prefetch slot.
#[derive(Debug, Clone, Copy)]
pub struct ChunkCost {
    /// Time computing on a pool thread.
    pub compute: Duration,
    /// Status check and result confirm.
    pub overhead: Duration,
}

/// Handles one delivery to the end: acked, requeued, dead-lettered, or left for redelivery.
pub async fn handle(context: Arc<Context>, delivery: Received) {
    match envelope::decode_task(&delivery.data) {
        Ok(task) => {
            let span = tracing::info_span!(
                "chunk",
                job = %task.job_id,
                chunk = task.task_id,
                kind = %task.kind,
                attempt = task.attempt,
            );
            if delivery.redelivered {
                span.in_scope(|| {
                    tracing::warn!(
                        "redelivered chunk: a worker died or lost its connection before acking it"
                    )
                });
            }
            run_task(&context, &delivery, task).instrument(span).await;
        }
        Err(reason) => {
            let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
            metrics::chunk_settled(kind.unwrap_or("unknown"), 0, ChunkOutcome::DeadLettered);
            refuse(&context, &delivery, &reason.to_string(), None).await
        }
    }
}

async fn run_task(context: &Context, delivery: &Received, task: TaskMessage) {
    let kind = context.kinds.get(&task.kind);
    let _in_flight = kind.map(|kind| metrics::in_flight(kind.info.lane));
    let settle = match kind {
        Some(kind) => run_kind(context, &task, kind).await,
        None => Settle::Refuse(format!(
            "this worker does not serve task kind '{}' (it serves {}); a chunk reaches a worker only \
             through its kind's queue, so this one was published by hand to the wrong queue",
            task.kind,
            context.kinds.names().join(", ")
        )),
    };
    metrics::chunk_settled(&task.kind, task.stage, settle.outcome());
    settle.apply(context, delivery, &task).await
}

/// Runs a chunk of a kind this worker serves, from its status check to its published result.
async fn run_kind(context: &Context, task: &TaskMessage, kind: &Kind) -> Settle {
    // Until this chunk's result is ready (or it ends otherwise), a batch of other results may wait for it.
    let upcoming = context.results.upcoming();
    // Only a chunk about to run counts as delivered: chunks merely prefetched beside a chunk that kills
    // the worker must not be blamed for its crashes. I/O chunks start at once (their items wait for
    // I/O slots inside), so every one in flight counts.
    let ready = match &kind.runner {
        Runner::Cpu(run) => match context.pool.reserve().await {
            Some(permit) => Ready::Cpu(run.clone(), permit),
            None => return Settle::Requeue(Duration::ZERO),
        },
        Runner::Io(run) => Ready::Io(run.clone()),
    };
    let received = Instant::now();
    // A chunk that must not run returns here, and its `upcoming` is dropped before a quarantined
    // chunk's failed items are published.
    let staged = match check_status(context, task).await {
        Ok(staged) => staged,
        Err(settle) => return settle,
    };
    let status_checked = received.elapsed();
    let ran = run_chunk(context, task, kind, ready).await;
    drop(upcoming);
    if let Ran::Finished(_, compute) = &ran {
        metrics::chunk_ran(&task.kind, kind.info.lane, *compute);
    }
    match ran {
        Ran::Finished(output, compute) => {
            let ran = Finished {
                output,
                compute,
                status_checked,
            };
            finish(context, task, kind, staged.as_ref(), ran).await
        }
        Ran::Stopped => {
            end_run(context, task).await;
            Settle::Requeue(Duration::ZERO)
        }
        Ran::Failed(reason) => {
            end_run(context, task).await;
            Settle::Refuse(reason)
        }
    }
}

/// A chunk that ran to the end.
struct Finished {
    /// What it produced.
    output: ChunkOutput,
    /// Time computing.
    compute: Duration,
    /// Time the status check took.
    status_checked: Duration,
}

/// What becomes of a chunk that ran: another attempt later if an item asked for one and retries are
/// left, else its output passed on (its result published, or its stage's follow-up) with its failures
/// counted and the delivery acked, or dead-lettered when retries ran out.
async fn finish(
    context: &Context,
    task: &TaskMessage,
    kind: &Kind,
    staged: Option<&StagedJob>,
    ran: Finished,
) -> Settle {
    let Finished {
        output,
        compute,
        status_checked,
    } = ran;
    let retry_reason = output.retry_reason.clone();
    if let Some(reason) = &retry_reason {
        if task.attempt <= kind.max_retries.unwrap_or(context.max_retries) {
            let retried = ItemCounts {
                retried: output.items,
                ..ItemCounts::default()
            };
            metrics::items(&task.kind, task.stage, retried);
            end_run(context, task).await;
            return Settle::RetryLater(reason.clone());
        }
    }
    let (items, failed) = (output.items, output.failed);
    let counts = ItemCounts {
        ok: items - failed,
        failed,
        retried: 0,
    };
    let output = match kind.omit_inputs {
        true => match without_inputs(output) {
            Ok(output) => output,
            Err(error) => return Settle::Refuse(error.to_string()),
        },
        false => output,
    };
    let publishing = Instant::now();
    // The run's end is recorded with the result (by the consumer, or with the stage's follow-up), not
    // here: one round trip less per chunk.
    if let Err(error) = stages::pass_on(context, task, staged, output).await {
        tracing::warn!("output not passed on ({error}); the chunk goes back to the queue");
        end_run(context, task).await;
        return Settle::Requeue(RETRY_DELAY);
    }
    metrics::items(&task.kind, task.stage, counts);
    let published = publishing.elapsed();
    tracing::debug!(
        items,
        failed,
        ?status_checked,
        ?compute,
        ?published,
        "chunk done"
    );
    // Only the CPU lane adapts its prefetch; the I/O lane's is fixed at its concurrency.
    if let (Some(costs), Runner::Cpu(_)) = (&context.costs, &kind.runner) {
        let _ = costs.send(ChunkCost {
            compute,
            overhead: status_checked + published,
        });
    }
    match retry_reason {
        // Out of retries: the result counts the failures, and a copy of the chunk goes to the
        // dead-letter queue, where `producer dlq` shows it and can run it again.
        Some(reason) => Settle::Refuse(format!("failed after {} attempts: {reason}", task.attempt)),
        None if failed > 0 => Settle::Ack(ChunkOutcome::Failed),
        None => Settle::Ack(ChunkOutcome::Ok),
    }
}

/// Claims a run of the chunk in Redis and returns the job's stages (`None` for a job of one stage); or
/// how to settle the chunk when it must not run (its job ended, it keeps killing workers, Redis does
/// not know its job, or Redis failed).
async fn check_status(context: &Context, task: &TaskMessage) -> Result<Option<StagedJob>, Settle> {
    let claim = match context
        .store
        .claim_run(task.job_id, ChunkRef::of(task))
        .await
    {
        Ok(claim) => claim,
        Err(error) => {
            tracing::warn!("{error}; the chunk goes back to the queue");
            return Err(Settle::Requeue(RETRY_DELAY));
        }
    };
    let Claim {
        status,
        unfinished_runs,
        staged,
    } = claim;
    let dropped = |why: &str, outcome| {
        tracing::info!("{why}; chunk dropped");
        Err(Settle::Ack(outcome))
    };
    match status {
        Some(JobStatus::Failed) => dropped("job was marked failed", ChunkOutcome::Dropped),
        Some(JobStatus::Completed) => dropped(
            "job already completed (a duplicate chunk)",
            ChunkOutcome::Dropped,
        ),
        Some(JobStatus::Cancelling | JobStatus::Cancelled) => {
            dropped("job was cancelled", ChunkOutcome::Cancelled)
        }
        Some(_) if unfinished_runs > POISON_RUNS => Err(Settle::GiveUp(
            format!(
                "started {unfinished_runs} times without finishing: it kills the worker that runs it"
            ),
            staged,
        )),
        Some(_) => Ok(staged),
        None => Err(Settle::Refuse(format!(
            "chunk of job {}, which Redis does not know under prefix '{}' (expired, or Redis was wiped)",
            task.job_id,
            context.topology.prefix()
        ))),
    }
}

/// The run failed (or never started): it no longer counts towards quarantine.
async fn end_run(context: &Context, task: &TaskMessage) {
    if let Err(error) = context.store.end_run(task.job_id, ChunkRef::of(task)).await {
        tracing::warn!("{error}; this run may count towards quarantining the chunk");
    }
}

/// Publishes a chunk's result for the consumer and waits for the broker's confirm.
pub(crate) async fn publish_result(
    context: &Context,
    task: &TaskMessage,
    output: ChunkOutput,
) -> Result<(), BrokerError> {
    let result = ResultMessage {
        version: WIRE_VERSION,
        job_id: task.job_id,
        task_id: task.task_id,
        kind: task.kind.clone(),
        attempt: task.attempt,
        stage: task.stage,
        level: task.level,
        worker_id: context.worker_id.clone(),
        items: output.items,
        failed: output.failed,
        payload: output.payload,
    };
    context.results.publish(result).await
}
