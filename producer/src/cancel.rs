//! `producer cancel`: mark the job cancelling (workers drop its queued chunks from then on), have every
//! live worker stop its running chunks, then tell the consumer to write what the job has.

use std::time::Duration;

use taskq_common::control::Command;
use taskq_common::job::{JobId, JobStatus};
use taskq_common::store::{JobStore, StoreError};
use tokio_util::sync::CancellationToken;

use crate::control::{ControlPlane, Report};
use crate::ProducerError;

/// Cancels `job`; returns what the workers answered.
pub async fn cancel(
    amqp_url: &str,
    store: &JobStore,
    job: JobId,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<Report, ProducerError> {
    match store.request_cancel(job).await? {
        None => {
            return Err(StoreError::UnknownJob {
                job,
                prefix: store.topology().prefix().to_owned(),
            }
            .into())
        }
        Some(status @ (JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)) => {
            return Err(ProducerError::NotCancellable {
                job,
                status: status.as_str(),
            })
        }
        Some(JobStatus::Submitting | JobStatus::Running | JobStatus::Cancelling) => {}
    }
    eprintln!("job {job} marked cancelling: workers drop its queued chunks");
    let control = ControlPlane::connect(amqp_url, store).await?;
    let report = control
        .send(Command::Cancel { job }, timeout, shutdown)
        .await;
    // The job is `cancelling` whatever became of the command (interrupted, a broker hiccup): the consumer
    // must still be told, or the job would wait forever.
    control.notify_consumer(job).await?;
    control.close().await;
    let report = report?;
    eprintln!("the consumer writes what the job has: `producer wait {job}` shows it");
    Ok(report)
}
