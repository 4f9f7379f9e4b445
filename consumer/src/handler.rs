//! What happens to one result message: record it once in Redis, finish the job if it was the last chunk,
//! then ack. Recording and counting are one atomic step in Redis, so a redelivered result (a worker died
//! after publishing, or this consumer died before acking) changes nothing but the duplicate counter.

use std::path::PathBuf;

use taskq_common::broker::{self, DeadLetter, Publisher};
use taskq_common::cancel::Finish;
use taskq_common::control::JOB_CANCELLED_TYPE;
use taskq_common::envelope::{self, ResultMessage};
use taskq_common::job::JobId;
use taskq_common::settle::Received;
use taskq_common::store::{JobStore, Recorded};
use tracing::Instrument;

use crate::finalize::{finalize, FinalizeError};

/// How long a result waits before going back to the queue when Redis or the disk failed.
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// What every result handler shares.
pub struct Context {
    /// Job state.
    pub store: JobStore,
    /// For dead-lettering results that can never be used.
    pub publisher: Publisher,
    /// Where outputs go.
    pub output_dir: PathBuf,
    /// This consumer's name, for dead-letter headers.
    pub consumer_id: String,
}

/// Handles one result delivery (or cancelled job's notice) to the end.
pub async fn handle(context: std::sync::Arc<Context>, delivery: Received) {
    let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
    if kind == Some(JOB_CANCELLED_TYPE) {
        return crate::cancelled::handle(&context, &delivery).await;
    }
    let result: ResultMessage = match envelope::decode(&delivery.data) {
        Ok(result) => result,
        Err(reason) => return refuse(&context, &delivery, &reason.to_string()).await,
    };
    let span = tracing::info_span!(
        "result",
        job = %result.job_id,
        chunk = result.task_id,
        worker = %result.worker_id,
        attempt = result.attempt,
    );
    record(&context, &delivery, result).instrument(span).await
}

async fn record(context: &Context, delivery: &Received, result: ResultMessage) {
    let job = result.job_id;
    let recorded = context
        .store
        .record_result(
            job,
            result.task_id,
            result.items,
            result.failed,
            &result.payload,
        )
        .await;
    let job_done = match recorded {
        Ok(Recorded::New { job_done }) => job_done,
        Ok(Recorded::Duplicate { job_done }) => {
            tracing::info!("duplicate result ignored");
            job_done
        }
        Ok(Recorded::JobFailed) => {
            tracing::info!("result for a failed job dropped");
            false
        }
        Ok(Recorded::JobCancelled) => {
            tracing::info!("result for a cancelled job dropped");
            false
        }
        Ok(Recorded::UnknownJob) => {
            let reason = format!(
                "result for job {job}, which Redis does not know under prefix '{}' (expired, or Redis was wiped)",
                context.store.topology().prefix()
            );
            return refuse(context, delivery, &reason).await;
        }
        Err(error) => {
            tracing::warn!("{error}; the result goes back to the queue");
            return delivery.requeue_after(RETRY_DELAY).await;
        }
    };
    if job_done {
        finish(context, delivery, job, Finish::Complete).await
    } else {
        delivery.ack().await
    }
}

/// Writes the job's output `how` it ends, then acks the delivery that asked for it; or returns the
/// delivery to the queue to try again later.
pub(crate) async fn finish(context: &Context, delivery: &Received, job: JobId, how: Finish) {
    match finalize(&context.store, &context.output_dir, job, how).await {
        Ok(summary) => tracing::info!(
            status = %summary["status"],
            items = %summary["items"],
            failed = %summary["failed"],
            elapsed_ms = %summary["elapsed_ms"],
            output = %summary["output"],
            "job finished"
        ),
        Err(FinalizeError::Ended(reason)) => tracing::info!("{reason}"),
        Err(FinalizeError::Unfinishable(reason)) => {
            tracing::error!("job cannot complete: {reason}");
            if let Err(error) = context.store.fail(job, &reason).await {
                tracing::warn!("{error}; the message goes back to the queue");
                return delivery.requeue_after(RETRY_DELAY).await;
            }
        }
        Err(error) => {
            tracing::warn!("{error}; the message goes back to the queue to finish the job later");
            return delivery.requeue_after(RETRY_DELAY).await;
        }
    }
    delivery.ack().await
}

/// Copies a message that can never be used to the dead-letter queue with `reason`, then acks it.
pub(crate) async fn refuse(context: &Context, delivery: &Received, reason: &str) {
    let dead_queue = context.store.topology().dead_queue();
    let letter = DeadLetter {
        reason,
        refused_by: &context.consumer_id,
        attempts: None,
    };
    broker::quarantine(&context.publisher, &dead_queue, delivery, &letter).await
}
