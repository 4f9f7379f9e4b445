//! What every handler of the results queue shares, and how a delivery ends: a finished job's output
//! written, or the message dead-lettered.

use std::path::PathBuf;

use taskq_common::broker::Publisher;
use taskq_common::cancel::Finish;
use taskq_common::dead_letter::{self, DeadLetter};
use taskq_common::job::{JobId, JobStatus};
use taskq_common::settle::Received;
use taskq_common::store::JobStore;

use crate::finalize::{finalize, FinalizeError};
use crate::images::Images;
use crate::metrics;

/// How long a result waits before going back to the queue when Redis or the disk failed.
pub(crate) const RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// Image jobs' PNGs being written.
    pub images: Images,
}

/// Writes the job's output `how` it ends, then acks the delivery that asked for it; or returns the
/// delivery to the queue to try again later.
pub(crate) async fn finish(context: &Context, delivery: &Received, job: JobId, how: Finish) {
    if finish_job(context, job, how).await {
        delivery.ack().await
    } else {
        delivery.requeue_after(RETRY_DELAY).await
    }
}

/// Writes the job's output `how` it ends. False when that failed and should be tried again later.
pub(crate) async fn finish_job(context: &Context, job: JobId, how: Finish) -> bool {
    let images = &context.images;
    let finalized = finalize(&context.store, &context.output_dir, images, job, how).await;
    if !matches!(
        finalized,
        Err(FinalizeError::Store(_) | FinalizeError::Output { .. })
    ) {
        images.forget(job);
    }
    match finalized {
        Ok(summary) => {
            metrics::job_finished(match how {
                Finish::Complete => JobStatus::Completed.as_str(),
                Finish::Cancel => JobStatus::Cancelled.as_str(),
            });
            tracing::info!(
            status = %summary["status"],
            items = %summary["items"],
            failed = %summary["failed"],
            elapsed_ms = %summary["elapsed_ms"],
                output = %summary["output"],
                "job finished"
            )
        }
        Err(FinalizeError::Ended(reason)) => tracing::info!("{reason}"),
        Err(FinalizeError::Unfinishable(reason)) => {
            tracing::error!("job cannot complete: {reason}");
            if let Err(error) = context.store.fail(job, &reason).await {
                tracing::warn!("{error}; the message goes back to the queue");
                return false;
            }
            metrics::job_finished(JobStatus::Failed.as_str());
        }
        Err(error) => {
            tracing::warn!("{error}; the message goes back to the queue to finish the job later");
            return false;
        }
    }
    true
}

/// Copies a message that can never be used to the dead-letter queue with `reason`, then acks it.
pub(crate) async fn refuse(context: &Context, delivery: &Received, reason: &str) {
    let dead_queue = context.store.topology().dead_queue();
    let letter = DeadLetter {
        reason,
        refused_by: &context.consumer_id,
        attempts: None,
    };
    dead_letter::quarantine(&context.publisher, &dead_queue, delivery, &letter).await
}
