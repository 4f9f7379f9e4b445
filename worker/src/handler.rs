//! What happens to one delivery: decode, run (CPU kinds on the pool, I/O kinds on the I/O lane), publish
//! the result with a confirm, then ack.
//!
//! The order is the at-least-once guarantee: a task is acknowledged only after its result is safely with
//! the broker, so a worker that dies at any point loses nothing (the task is redelivered and the consumer
//! counts its result once). A message that cannot be processed is copied to the dead-letter queue with the
//! reason, and only then acknowledged.

use std::sync::Arc;
use std::time::Duration;

use taskq_common::broker::{self, BrokerError, DeadLetter, Outgoing, Publisher};
use taskq_common::envelope::{self, ResultMessage, TaskMessage, WIRE_VERSION};
use taskq_common::job::JobStatus;
use taskq_common::settle::Received;
use taskq_common::store::{Claim, JobStore};
use taskq_common::tasks::TEST_ONLY_KINDS;
use taskq_common::topology::{Topology, REASON_HEADER, RETRY_DELAYS};
use tracing::Instrument;

use crate::cancel::Cancellations;
use crate::io_lane::IoLane;
use crate::pool::{CpuPool, Permit, PoolOutcome};
use crate::results::ResultPublisher;
use crate::tasks::{self, ChunkOutput, ChunkRun, CpuRunner, IoRunner, RunError, Runner};

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
    /// Where CPU chunks run.
    pub pool: Arc<CpuPool>,
    /// Where I/O chunks run.
    pub io: Arc<IoLane>,
    /// This worker's name.
    pub worker_id: String,
    /// Job state, to skip chunks of jobs that can no longer complete.
    pub store: JobStore,
    /// Whether test-only kinds (which kill the worker) may run.
    pub test_kinds: bool,
    /// Retries of a chunk after transient task failures.
    pub max_retries: u32,
    /// How long a CPU chunk may run before its remaining items fail.
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
        Err(reason) => refuse(&context, &delivery, &reason.to_string(), None).await,
    }
}

async fn run_task(context: &Context, delivery: &Received, task: TaskMessage) {
    let attempts = Some(task.attempt);
    if TEST_ONLY_KINDS.contains(&task.kind.as_str()) && !context.test_kinds {
        let reason = "test-only task kind: workers run it only with --enable-test-kinds";
        return refuse(context, delivery, reason, attempts).await;
    }
    let Some(runner) = tasks::runner(&task.kind) else {
        let reason = envelope::DecodeError::UnknownKind(task.kind.clone());
        return refuse(context, delivery, &reason.to_string(), attempts).await;
    };
    // Until this chunk's result is ready (or it ends otherwise), a batch of other results may wait for it.
    let upcoming = context.results.upcoming();
    // Only a chunk about to run counts as delivered: chunks merely prefetched beside a chunk that kills
    // the worker must not be blamed for its crashes. I/O chunks start at once (their items wait for
    // I/O slots inside), so every one in flight counts.
    let ready = match runner {
        Runner::Cpu(run) => match context.pool.reserve().await {
            Some(permit) => Ready::Cpu(run, permit),
            None => return delivery.requeue_after(Duration::ZERO).await,
        },
        Runner::Io(run) => Ready::Io(run),
    };
    let received = std::time::Instant::now();
    match context.store.claim_run(task.job_id, task.task_id).await {
        Ok(Claim {
            status: Some(JobStatus::Failed),
            ..
        }) => {
            tracing::info!("job was marked failed; chunk dropped");
            return delivery.ack().await;
        }
        Ok(Claim {
            status: Some(JobStatus::Completed),
            ..
        }) => {
            tracing::info!("job already completed; duplicate chunk dropped");
            return delivery.ack().await;
        }
        Ok(Claim {
            status: Some(JobStatus::Cancelling | JobStatus::Cancelled),
            ..
        }) => {
            tracing::info!("job was cancelled; chunk dropped");
            return delivery.ack().await;
        }
        Ok(Claim {
            unfinished_runs, ..
        }) if unfinished_runs > POISON_RUNS => {
            let reason = format!(
                "started {unfinished_runs} times without finishing: it kills the worker that runs it"
            );
            drop(upcoming); // its failed items are published now
            return give_up(context, delivery, &task, &reason).await;
        }
        Ok(Claim {
            status: Some(_), ..
        }) => {}
        Ok(Claim { status: None, .. }) => {
            let reason = format!(
                "chunk of job {}, which Redis does not know under prefix '{}' (expired, or Redis was wiped)",
                task.job_id,
                context.topology.prefix()
            );
            return refuse(context, delivery, &reason, attempts).await;
        }
        Err(error) => {
            tracing::warn!("{error}; the chunk goes back to the queue");
            return delivery.requeue_after(RETRY_DELAY).await;
        }
    }
    // A copy runs; the message stays whole for a retry.
    let payload = task.payload.clone();
    let status_checked = received.elapsed();
    let running = context.cancels.start(task.job_id);
    let cancel = running.token();
    let outcome = match ready {
        Ready::Cpu(run, permit) => {
            let (attempt, time_limit) = (task.attempt, context.chunk_time_limit);
            let timed = move |items| {
                let started = std::time::Instant::now();
                let chunk = ChunkRun {
                    attempt,
                    deadline: started + time_limit,
                    time_limit,
                    cancel,
                    items,
                };
                (run(&payload, &chunk), started.elapsed())
            };
            match context.pool.run(permit, timed).await {
                PoolOutcome::Done((Ok(output), compute)) => Ok((output, compute)),
                PoolOutcome::Done((Err(RunError::Cancelled), _)) => Err(None),
                PoolOutcome::Done((Err(reason), _)) => Err(Some(reason.to_string())),
                PoolOutcome::Panicked(message) => Err(Some(format!("the chunk {message}"))),
                PoolOutcome::NotStarted => Err(None),
            }
        }
        Ready::Io(run) => {
            let started = std::time::Instant::now();
            match run(context.io.clone(), payload, cancel).await {
                Ok(output) => Ok((output, started.elapsed())),
                Err(RunError::Cancelled) => Err(None),
                Err(reason) => Err(Some(reason.to_string())),
            }
        }
    };
    drop(running);
    drop(upcoming);
    // The run failed (or never started): it no longer counts towards quarantine.
    let end_run = || async {
        if let Err(error) = context.store.end_run(task.job_id, task.task_id).await {
            tracing::warn!("{error}; this run may count towards quarantining the chunk");
        }
    };
    // Err(None): the worker began stopping before the chunk started, or its job was cancelled while it
    // ran; it goes back untouched (and the status check drops a cancelled job's chunk next time).
    let (output, compute) = match outcome {
        Ok(done) => done,
        Err(reason) => {
            end_run().await;
            return match reason {
                Some(reason) => refuse(context, delivery, &reason, attempts).await,
                None => delivery.requeue_after(Duration::ZERO).await,
            };
        }
    };
    let retry_reason = output.retry_reason.clone();
    if let Some(reason) = &retry_reason {
        if task.attempt <= context.max_retries {
            end_run().await;
            return retry_later(context, delivery, &task, reason).await;
        }
    }
    let (items, failed) = (output.items, output.failed);
    let publishing = std::time::Instant::now();
    // The run's end is recorded by the consumer with its result, not here: one round trip less per chunk.
    match publish_result(context, &task, output).await {
        Ok(()) => {
            match retry_reason {
                // Out of retries: the result counts the failures, and a copy of the chunk goes to the
                // dead-letter queue, where `producer dlq` shows it and can run it again.
                Some(reason) => {
                    let reason = format!("failed after {} attempts: {reason}", task.attempt);
                    refuse(context, delivery, &reason, attempts).await;
                }
                None => delivery.ack().await,
            }
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
            if let (Some(costs), Runner::Cpu(_)) = (&context.costs, runner) {
                let _ = costs.send(ChunkCost {
                    compute,
                    overhead: status_checked + published,
                });
            }
        }
        Err(error) => {
            tracing::warn!("result not published ({error}); the chunk goes back to the queue");
            end_run().await;
            delivery.requeue_after(RETRY_DELAY).await
        }
    }
}

/// A chunk cleared to run: a CPU chunk holds a pool thread.
enum Ready {
    Cpu(CpuRunner, Permit),
    Io(IoRunner),
}

/// Publishes a chunk's result and waits for the broker's confirm.
async fn publish_result(
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
        worker_id: context.worker_id.clone(),
        items: output.items,
        failed: output.failed,
        payload: output.payload,
    };
    context.results.publish(result).await
}

/// Gives up on a chunk that must not run again: its items are reported failed with `reason`, so the job
/// completes and counts them, and the message goes to the dead-letter queue for inspection.
async fn give_up(context: &Context, delivery: &Received, task: &TaskMessage, reason: &str) {
    let failed = tasks::chunk_failer(&task.kind).and_then(|fail| fail(&task.payload, reason).ok());
    if let Some(output) = failed {
        if let Err(error) = publish_result(context, task, output).await {
            tracing::warn!(
                "failed items not published ({error}); the chunk goes back to the queue"
            );
            return delivery.requeue_after(RETRY_DELAY).await;
        }
    }
    refuse(context, delivery, reason, Some(task.attempt)).await
}

/// Sends the chunk back for another attempt after a delay the broker keeps: a copy with the attempt
/// counted up goes to the retry level's exchange, expiring after the delay into its task queue, and the
/// original is acknowledged once the copy is confirmed. If the copy fails, the original goes back to its
/// queue as it is, so nothing is lost.
async fn retry_later(context: &Context, delivery: &Received, task: &TaskMessage, reason: &str) {
    let level = (task.attempt.max(1) as usize - 1).min(RETRY_DELAYS.len() - 1);
    // Jitter: anywhere between the level's delay and twice it, so retries of many chunks spread out.
    let delay = RETRY_DELAYS[level].mul_f64(1.0 + rand::random::<f64>());
    tracing::info!(reason, retry_in = ?delay, "task failed; retrying later");
    let sent = async {
        let next = TaskMessage {
            attempt: task.attempt + 1,
            ..task.clone()
        };
        let outgoing = Outgoing {
            exchange: context.topology.retry_exchange(level),
            queue: delivery.routing_key.to_string(),
            body: envelope::encode(&next),
            message_id: format!("{}/{}", next.job_id, next.task_id),
            kind: next.kind.clone(),
            headers: vec![(REASON_HEADER.to_owned(), reason.to_owned())],
            expiration: Some(delay),
        };
        context.publisher.publish(&outgoing).await
    };
    match sent.await {
        Ok(()) => delivery.ack().await,
        Err(error) => {
            tracing::warn!("retry not scheduled ({error}); the chunk goes back to the queue");
            delivery.requeue_after(RETRY_DELAY).await
        }
    }
}

/// Copies a delivery that can never be processed to the dead-letter queue with `reason` (and how often
/// the task ran, when known), then acks it.
pub(crate) async fn refuse(
    context: &Context,
    delivery: &Received,
    reason: &str,
    attempts: Option<u32>,
) {
    let dead_queue = context.topology.dead_queue();
    let letter = DeadLetter {
        reason,
        refused_by: &context.worker_id,
        attempts,
    };
    broker::quarantine(&context.publisher, &dead_queue, delivery, &letter).await
}
