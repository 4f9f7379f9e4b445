//! Publishing a job all or nothing: the job is recorded as `submitting`, every chunk is published with
//! pipelined confirms, and only then is it `running`. If publishing fails or is interrupted, the job is
//! marked failed, so nobody waits for it forever and workers drop the chunks already published.

use std::sync::atomic::{AtomicU32, Ordering};

use taskq_common::broker::Publisher;
use taskq_common::job::{JobId, JobStatus};
use taskq_common::store::JobStore;
use tokio_util::sync::CancellationToken;

use crate::prepare::Prepared;
use crate::ProducerError;

/// Unconfirmed messages in flight at most while publishing: enough to keep the broker streaming, few
/// enough to bound memory and the work lost to a failure.
const CONFIRM_WINDOW: usize = 1024;

/// Records and publishes a prepared job on `publisher` (whose channel has the kind's queue declared);
/// returns its id once every chunk is confirmed.
pub async fn publish(
    publisher: &Publisher,
    store: &JobStore,
    prepared: Prepared,
    shutdown: &CancellationToken,
) -> Result<JobId, ProducerError> {
    let Prepared {
        spec,
        messages,
        plan,
    } = prepared;
    let job = spec.id;
    let total = messages.len() as u32;
    match &plan {
        Some(plan) => store.create_staged_job(&spec, plan, total).await?,
        None => store.create_job(&spec).await?,
    }
    tracing::info!(%job, kind = %spec.kind, items = spec.total_items, chunks = total, "submitting");

    let confirmed = AtomicU32::new(0);
    let publishing = publisher.publish_all(messages, CONFIRM_WINDOW, || {
        confirmed.fetch_add(1, Ordering::Relaxed);
    });
    let outcome = tokio::select! {
        outcome = publishing => outcome.map_err(|source| ProducerError::SubmitFailed {
            job,
            published: confirmed.load(Ordering::Relaxed),
            total,
            source: Box::new(source),
        }),
        _ = shutdown.cancelled() => Err(ProducerError::SubmitInterrupted { job }),
    };
    if let Err(error) = outcome {
        if let Err(store_error) = store.fail(job, &error.to_string()).await {
            tracing::error!("could not mark job {job} failed: {store_error}");
        }
        return Err(error);
    }
    store
        .transition(job, JobStatus::Submitting, JobStatus::Running)
        .await?;
    Ok(job)
}
