//! How a delivery ends once its chunk has been looked at: acked, back to its queue, copied to the
//! dead-letter queue, or republished for a later attempt; and what each counts as in the metrics.

use std::time::Duration;

use taskq_common::broker::Outgoing;
use taskq_common::dead_letter::{self, DeadLetter};
use taskq_common::envelope::{self, TaskMessage};
use taskq_common::settle::Received;
use taskq_common::stages::StagedJob;
use taskq_common::topology::{REASON_HEADER, RETRY_DELAYS};

use super::{Context, RETRY_DELAY};
use crate::kinds::output::fail_chunk;
use crate::metrics::{self, ChunkOutcome, ItemCounts};
use crate::stages;

/// What happens to a delivery once its chunk has been looked at.
pub(super) enum Settle {
    /// Done with: ack. It ran (ok, or failed items), or its job no longer wants it (cancelled, dropped).
    Ack(ChunkOutcome),
    /// Back to the queue untouched after `delay`: the worker is stopping, the job was cancelled while
    /// the chunk ran, or Redis or the broker failed for a moment.
    Requeue(Duration),
    /// It can never run: to the dead-letter queue with the reason.
    Refuse(String),
    /// Quarantined: its items are reported failed (passed on like any output of its stage) and it goes
    /// to the dead-letter queue.
    GiveUp(String, Option<StagedJob>),
    /// A task asked for another attempt: republish it with a delay.
    RetryLater(String),
}

impl Settle {
    /// What the chunk counts as in the worker's metrics.
    pub(super) fn outcome(&self) -> ChunkOutcome {
        match self {
            Self::Ack(outcome) => *outcome,
            Self::Requeue(_) => ChunkOutcome::Requeued,
            Self::Refuse(_) | Self::GiveUp(..) => ChunkOutcome::DeadLettered,
            Self::RetryLater(_) => ChunkOutcome::Retried,
        }
    }

    /// Settles `delivery` this way.
    pub(super) async fn apply(self, context: &Context, delivery: &Received, task: &TaskMessage) {
        match self {
            Self::Ack(_) => delivery.ack().await,
            Self::Requeue(delay) => delivery.requeue_after(delay).await,
            Self::Refuse(reason) => refuse(context, delivery, &reason, Some(task.attempt)).await,
            Self::GiveUp(reason, staged) => {
                give_up(context, delivery, task, staged.as_ref(), &reason).await
            }
            Self::RetryLater(reason) => retry_later(context, delivery, task, &reason).await,
        }
    }
}

/// Gives up on a chunk that must not run again: its items are reported failed with `reason`, so the job
/// completes and counts them, and the message goes to the dead-letter queue for inspection.
async fn give_up(
    context: &Context,
    delivery: &Received,
    task: &TaskMessage,
    staged: Option<&StagedJob>,
    reason: &str,
) {
    if let Ok(output) = fail_chunk(&task.payload, reason) {
        let failed = ItemCounts {
            failed: output.failed,
            ..ItemCounts::default()
        };
        if let Err(error) = stages::pass_on(context, task, staged, output).await {
            tracing::warn!(
                "failed items not published ({error}); the chunk goes back to the queue"
            );
            return delivery.requeue_after(RETRY_DELAY).await;
        }
        metrics::items(&task.kind, task.stage, failed);
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
    dead_letter::quarantine(&context.publisher, &dead_queue, delivery, &letter).await
}
