//! I/O chunks: a typed [`IoTask`] behind the [`IoChunk`] interface the I/O lane runs.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::value::RawValue;
use taskq_common::job::JobId;
use taskq_common::payload::TaskPayload;
use taskq_common::task::{IoTask, ItemContext, TaskError};
use tokio_util::sync::CancellationToken;

use super::cpu::{encode_output, invalid_input};
use super::output::{chunk_output, ChunkOutput, ItemResult, RunError};
use crate::io_lane::IoLane;

/// How an I/O chunk runs this time.
#[derive(Clone)]
pub struct IoRun {
    /// The chunk's job.
    pub job: JobId,
    /// 1 for the first run, one more for each retry.
    pub attempt: u32,
    /// Fires when the chunk's job is cancelled: items waiting or in flight are dropped.
    pub cancel: CancellationToken,
    /// The lane whose slots bound the items in flight.
    pub lane: Arc<IoLane>,
}

/// Runs every item of a chunk concurrently, each holding one of the lane's slots while it runs.
pub trait IoChunk: Send + Sync {
    /// Runs the chunk's items and reports each one's outcome, in order.
    fn run(
        &self,
        payload: TaskPayload,
        run: IoRun,
    ) -> BoxFuture<'static, Result<ChunkOutput, RunError>>;
}

/// A typed I/O task as a chunk runner.
pub struct TypedIo<T> {
    task: Arc<T>,
    time_limit: Option<Duration>,
}

impl<T: IoTask> TypedIo<T> {
    /// Wraps `task`; each item may run for `time_limit` at most.
    pub fn new(task: T, time_limit: Option<Duration>) -> Self {
        Self {
            task: Arc::new(task),
            time_limit,
        }
    }
}

impl<T: IoTask> IoChunk for TypedIo<T> {
    fn run(
        &self,
        payload: TaskPayload,
        run: IoRun,
    ) -> BoxFuture<'static, Result<ChunkOutput, RunError>> {
        let (task, time_limit) = (self.task.clone(), self.time_limit);
        async move {
            let items = payload.items()?;
            let runs = (payload.first_index..).zip(items).map(|(index, raw)| {
                let (task, run) = (&task, &run);
                async move {
                    let item = run_item(task.as_ref(), index, raw, run, time_limit);
                    tokio::select! {
                        biased;
                        _ = run.cancel.cancelled() => None,
                        outcome = run.lane.run_item(item) => Some(outcome),
                    }
                }
            });
            let results: Option<Vec<ItemResult>> =
                futures::future::join_all(runs).await.into_iter().collect();
            let results = results.ok_or(RunError::Cancelled)?;
            Ok(chunk_output(&payload, results))
        }
        .boxed()
    }
}

async fn run_item<T: IoTask>(
    task: &T,
    index: u64,
    raw: &RawValue,
    run: &IoRun,
    time_limit: Option<Duration>,
) -> ItemResult {
    let input: T::Input =
        serde_json::from_str(raw.get()).map_err(|error| invalid_input(T::NAME, raw, &error))?;
    let context = ItemContext {
        job: run.job,
        index,
        attempt: run.attempt,
    };
    let running = task.run(input, &context);
    let output = match time_limit {
        Some(limit) => tokio::time::timeout(limit, running)
            .await
            .unwrap_or_else(|_| {
                Err(TaskError::transient(format!(
                    "timed out after {limit:?} (the kind's time limit)"
                )))
            })?,
        None => running.await?,
    };
    encode_output(&output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskq_common::envelope::decode_payload;
    use taskq_common::payload::ResultPayload;
    use taskq_common::task::Task;

    /// Sleeps its input in milliseconds, then returns it.
    struct Nap;

    impl Task for Nap {
        const NAME: &'static str = "nap";
        type Input = u64;
        type Output = u64;
    }

    impl IoTask for Nap {
        async fn run(&self, ms: u64, _: &ItemContext) -> Result<u64, TaskError> {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(ms)
        }
    }

    fn io_run(cancel: CancellationToken) -> IoRun {
        IoRun {
            job: JobId::new(),
            attempt: 1,
            cancel,
            lane: Arc::new(IoLane::new(2)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn items_overlap_up_to_the_lane_and_one_past_its_time_limit_fails_alone() {
        let runner = TypedIo::new(Nap, Some(Duration::from_millis(500)));
        let payload = TaskPayload::of(0, &[100u64, 100, 100, 100, 900]).unwrap();
        let started = tokio::time::Instant::now();
        let output = runner
            .run(payload, io_run(CancellationToken::new()))
            .await
            .unwrap();
        // Two slots: the four short items in two rounds of 100 ms, then the long one until its 500 ms
        // limit (the limit counts from when the item gets a slot).
        assert_eq!(started.elapsed(), Duration::from_millis(700));
        assert_eq!((output.items, output.failed), (5, 1));
        let result: ResultPayload = decode_payload(&output.payload).unwrap();
        assert_eq!(result.errors[0].offset, 4);
        assert!(
            result.errors[0].message.contains("timed out"),
            "{:?}",
            result.errors
        );
        assert!(
            output.retry_reason.is_some(),
            "a timeout may pass on another attempt"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_chunk_reports_nothing() {
        let runner = TypedIo::new(Nap, None);
        let cancel = CancellationToken::new();
        let payload = TaskPayload::of(0, &[10_000u64]).unwrap();
        let running = tokio::spawn(runner.run(payload, io_run(cancel.clone())));
        tokio::time::sleep(Duration::from_millis(10)).await;
        cancel.cancel();
        assert!(matches!(running.await.unwrap(), Err(RunError::Cancelled)));
    }
}
