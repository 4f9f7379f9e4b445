//! Following a job: its state as JSON, and waiting for it with a progress bar.

use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::json;
use taskq_common::job::{JobId, JobState, JobStatus};
use taskq_common::store::JobStore;
use tokio_util::sync::CancellationToken;

use crate::bars::Bars;
use crate::ProducerError;

/// The first wait between progress reads; each next one is 1.5 times longer, up to [`POLL_MAX`]. The
/// consumer announces a job's end on Redis pub/sub, so the end is seen at once; polling draws progress,
/// and finds the end by itself if the announcement is missed (a Redis restart).
const POLL_FIRST: Duration = Duration::from_millis(10);
/// The longest wait between progress reads.
const POLL_MAX: Duration = Duration::from_millis(250);

/// A job's state as `status` prints it, with each stage's progress for a job of several.
pub async fn status_json(
    store: &JobStore,
    state: &JobState,
) -> Result<serde_json::Value, ProducerError> {
    let mut value = state_json(state);
    if !state.status.is_final() {
        if let Some(progress) = store.stage_progress(state.spec.id).await? {
            value["pipeline"] = json!(progress.plan.describe());
            value["stages"] = json!(progress.stages);
        }
    }
    Ok(value)
}

/// A job's state as the JSON `status` and `wait` print: the consumer's summary once completed or
/// cancelled.
pub fn state_json(state: &JobState) -> serde_json::Value {
    if let (JobStatus::Completed | JobStatus::Cancelled, Some(summary)) =
        (state.status, &state.summary)
    {
        return summary.clone();
    }
    let mut value = json!({
        "job_id": state.spec.id.to_string(),
        "kind": state.spec.kind,
        "status": state.status.as_str(),
        "items": state.spec.total_items,
        "items_done": state.items_done,
        "failed": state.items_failed,
        "chunks": state.spec.total_chunks,
        "chunks_done": state.chunks_done,
        "duplicates_ignored": state.duplicates,
    });
    if let Some(error) = &state.error {
        value["error"] = json!(error);
    }
    value
}

/// Whether waiting draws a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A bar on stderr (drawn only when it is a terminal).
    Bar,
    /// Nothing.
    Hidden,
}

/// Waits until the job is completed or failed, showing `progress`. Redis errors while waiting are
/// logged and retried: the job goes on regardless.
pub async fn wait(
    store: &JobStore,
    job: JobId,
    timeout: Option<Duration>,
    progress: Progress,
    shutdown: &CancellationToken,
) -> Result<JobState, ProducerError> {
    let announced = match store.finished_announcements(job).await {
        Ok(announcements) => announcements.boxed(),
        Err(error) => {
            tracing::debug!("{error}; polling only");
            futures::stream::pending().boxed()
        }
    };
    wait_announced(store, job, timeout, progress, announced, shutdown).await
}

/// Waits like [`wait`], learning of the job's end from `finished` (subscribed before this is called).
pub async fn wait_announced(
    store: &JobStore,
    job: JobId,
    timeout: Option<Duration>,
    progress: Progress,
    mut finished: BoxStream<'static, ()>,
    shutdown: &CancellationToken,
) -> Result<JobState, ProducerError> {
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    let mut bars: Option<Bars> = None;
    let mut poll = POLL_FIRST;
    loop {
        match store.job_state(job).await {
            Ok(Some(state)) => {
                if progress == Progress::Bar {
                    let stages = store.stage_progress(job).await.ok().flatten();
                    let bars = bars.get_or_insert_with(|| Bars::new(&state, stages.as_ref()));
                    bars.update(&state, stages.as_ref());
                }
                if state.status.is_final() {
                    if let Some(bars) = &bars {
                        bars.clear();
                    }
                    return Ok(state);
                }
            }
            Ok(None) => {
                return Err(ProducerError::Store(
                    taskq_common::store::StoreError::UnknownJob {
                        job,
                        prefix: store.topology().prefix().to_owned(),
                    },
                ))
            }
            Err(error) => tracing::warn!("{error}; still waiting"),
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(ProducerError::WaitTimeout { job });
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            announced = finished.next() => {
                if announced.is_none() {
                    finished = Box::pin(futures::stream::pending());
                }
            }
            _ = shutdown.cancelled() => return Err(ProducerError::WaitInterrupted { job }),
        }
        poll = poll.mul_f64(1.5).min(POLL_MAX);
    }
}
