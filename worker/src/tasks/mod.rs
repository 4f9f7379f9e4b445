//! How the worker runs each task kind. One file per kind; [`runner`] maps wire names to runners: CPU
//! kinds run synchronously on the thread pool, I/O kinds as async tasks on the I/O lane.

mod download;
mod square;
mod sum_squares;
mod test_abort;
mod test_flaky;

pub use sum_squares::sum_of_squares_below;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use taskq_common::envelope::{decode_payload, encode, DecodeError};
use taskq_common::tasks::{
    Download, ItemOutcome, ResultPayload, Square, SumSquares, TaskKind, TaskPayload, TestAbort,
    TestFlaky,
};

use crate::io_lane::IoLane;
use crate::pool::{panic_message, Items};

/// A CPU-bound kind: a synchronous function of one item, run on the thread pool.
pub trait CpuTask: TaskKind {
    /// Computes one item on the chunk's `attempt`-th run (1 for the first). An `Err` is that item's
    /// failure and says whether running the chunk again may help; a panic may (it is retried).
    fn run(item: &Self::Item, attempt: u32) -> Result<Self::Output, TaskError>;
}

/// Why a CPU task failed, and whether retrying the chunk later may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// What went wrong, for the item's output line.
    pub message: String,
    /// True when a later attempt may succeed: the worker retries the chunk after a delay.
    pub retry: bool,
}

impl TaskError {
    /// A failure that a later attempt may not repeat (a flaky dependency, a panic).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: true,
        }
    }

    /// A failure every attempt would repeat (the input is invalid).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: false,
        }
    }
}

/// How a chunk runs this time.
#[derive(Debug, Clone)]
pub struct ChunkRun {
    /// 1 for the first run, one more for each retry.
    pub attempt: u32,
    /// Items not started by then are reported failed, so the chunk is acknowledged before the broker's
    /// consumer ack timeout (see `--chunk-time-limit`).
    pub deadline: Instant,
    /// The limit the deadline came from, for the message.
    pub time_limit: Duration,
    /// Fires when the chunk's job is cancelled: items not started by then are not run, and the chunk
    /// reports nothing (rayon work cannot be interrupted, so this is checked between items).
    pub cancel: CancellationToken,
    /// One after another, or spread over idle pool threads.
    pub items: Items,
}

/// An I/O-bound kind: an async function of one item, run on the I/O lane.
pub trait IoTask: TaskKind {
    /// Processes one item. An `Err` is reported as that item's failure, as is a panic.
    fn run(
        item: &Self::Item,
        lane: &IoLane,
    ) -> impl Future<Output = Result<Self::Output, String>> + Send;
}

/// A finished chunk, ready to be published as a result message.
#[derive(Debug)]
pub struct ChunkOutput {
    /// Items in the chunk.
    pub items: u32,
    /// Items that failed.
    pub failed: u32,
    /// The encoded [`ResultPayload`].
    pub payload: Vec<u8>,
    /// The first failure that running the chunk again may fix; `None` when no item failed that way.
    pub retry_reason: Option<String>,
}

/// Why a chunk produced no output.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The payload does not decode as the kind's items.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The job was cancelled while the chunk ran; it stopped at an item boundary and reports nothing.
    #[error("the job was cancelled")]
    Cancelled,
}

/// Runs every item of an encoded chunk. Call from inside the pool (items are spread over its threads).
pub type CpuRunner = fn(&[u8], &ChunkRun) -> Result<ChunkOutput, RunError>;

/// Reports every item of an encoded chunk as failed with the given reason, without running any.
pub type ChunkFailer = fn(&[u8], &str) -> Result<ChunkOutput, DecodeError>;

/// Runs every item of an encoded chunk concurrently, each holding one of the lane's slots while it runs;
/// a cancel drops the items still waiting or in flight.
pub type IoRunner = fn(
    Arc<IoLane>,
    Vec<u8>,
    CancellationToken,
) -> BoxFuture<'static, Result<ChunkOutput, RunError>>;

/// How a kind runs.
#[derive(Clone, Copy)]
pub enum Runner {
    /// On the CPU pool.
    Cpu(CpuRunner),
    /// On the I/O lane.
    Io(IoRunner),
}

/// The runner for a kind, or `None` if the kind is unknown to this worker.
pub fn runner(kind: &str) -> Option<Runner> {
    match kind {
        SumSquares::NAME => Some(Runner::Cpu(run_chunk::<SumSquares>)),
        Square::NAME => Some(Runner::Cpu(run_chunk::<Square>)),
        TestAbort::NAME => Some(Runner::Cpu(run_chunk::<TestAbort>)),
        TestFlaky::NAME => Some(Runner::Cpu(run_chunk::<TestFlaky>)),
        Download::NAME => Some(Runner::Io(|lane, payload, cancel| {
            run_io_chunk::<Download>(lane, payload, cancel).boxed()
        })),
        _ => None,
    }
}

/// The runner for a CPU kind, or `None` if the kind is unknown to this worker or not CPU-bound.
pub fn cpu_runner(kind: &str) -> Option<CpuRunner> {
    match runner(kind)? {
        Runner::Cpu(run) => Some(run),
        Runner::Io(_) => None,
    }
}

async fn run_io_chunk<K: IoTask>(
    lane: Arc<IoLane>,
    encoded: Vec<u8>,
    cancel: CancellationToken,
) -> Result<ChunkOutput, RunError> {
    let payload: TaskPayload<K::Item> = decode_payload(&encoded)?;
    let outcomes: Option<Vec<ItemOutcome<K::Output>>> =
        futures::future::join_all(payload.items.iter().map(|item| async {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => None,
                outcome = lane.run_item(K::run(item, &lane)) => Some(outcome),
            }
        }))
        .await
        .into_iter()
        .collect();
    let outcomes = outcomes.ok_or(RunError::Cancelled)?;
    Ok(chunk_output(payload, outcomes))
}

/// The failer for a kind, or `None` if the kind is unknown to this worker.
pub fn chunk_failer(kind: &str) -> Option<ChunkFailer> {
    match kind {
        SumSquares::NAME => Some(fail_chunk::<SumSquares>),
        Square::NAME => Some(fail_chunk::<Square>),
        TestAbort::NAME => Some(fail_chunk::<TestAbort>),
        TestFlaky::NAME => Some(fail_chunk::<TestFlaky>),
        Download::NAME => Some(fail_chunk::<Download>),
        _ => None,
    }
}

fn fail_chunk<K: TaskKind>(encoded: &[u8], reason: &str) -> Result<ChunkOutput, DecodeError> {
    let payload: TaskPayload<K::Item> = decode_payload(encoded)?;
    let outcomes: Vec<ItemOutcome<K::Output>> = payload
        .items
        .iter()
        .map(|_| Err(reason.to_owned()))
        .collect();
    Ok(chunk_output(payload, outcomes))
}

fn chunk_output<I: serde::Serialize, O: serde::Serialize>(
    payload: TaskPayload<I>,
    outcomes: Vec<ItemOutcome<O>>,
) -> ChunkOutput {
    let result = ResultPayload {
        first_index: payload.first_index,
        items: payload.items,
        outcomes,
    };
    ChunkOutput {
        items: result.items.len() as u32,
        failed: result.failed() as u32,
        payload: encode(&result),
        retry_reason: None,
    }
}

fn run_chunk<K: CpuTask>(encoded: &[u8], run: &ChunkRun) -> Result<ChunkOutput, RunError> {
    let payload: TaskPayload<K::Item> = decode_payload(encoded)?;
    // Collecting into an Option stops taking items as soon as one check sees the job cancelled.
    let results: Option<Vec<Result<K::Output, TaskError>>> =
        run.items.collect(&payload.items, |item| {
            if run.cancel.is_cancelled() {
                return None;
            }
            if Instant::now() >= run.deadline {
                return Some(Err(TaskError::permanent(format!(
                    "not run: the chunk reached its time limit of {:?} (--chunk-time-limit); submit \
                     with a smaller --chunk-size",
                    run.time_limit
                ))));
            }
            Some(
                catch_unwind(AssertUnwindSafe(|| K::run(item, run.attempt))).unwrap_or_else(
                    |panic| Err(TaskError::transient(panic_message(panic.as_ref()))),
                ),
            )
        });
    let results = results.ok_or(RunError::Cancelled)?;
    let retry_reason = results.iter().find_map(|result| match result {
        Err(error) if error.retry => Some(error.message.clone()),
        _ => None,
    });
    let outcomes = results
        .into_iter()
        .map(|result| result.map_err(|error| error.message))
        .collect();
    Ok(ChunkOutput {
        retry_reason,
        ..chunk_output(payload, outcomes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_runs_in_order_and_reports_failures() {
        let encoded = encode(&TaskPayload {
            first_index: 10,
            items: vec![3i64, i64::MIN, -4],
        });
        let output = cpu_runner(Square::NAME).unwrap()(&encoded, &first_run()).unwrap();
        assert_eq!((output.items, output.failed), (3, 0));
        let result: ResultPayload<i64, i128> = decode_payload(&output.payload).unwrap();
        assert_eq!(result.first_index, 10);
        assert_eq!(
            result.outcomes,
            vec![Ok(9), Ok(i128::from(i64::MIN).pow(2)), Ok(16)]
        );
    }

    #[test]
    fn a_failed_chunk_reports_every_item_with_the_reason() {
        let encoded = encode(&TaskPayload {
            first_index: 4,
            items: vec![7u64, 8],
        });
        let output = chunk_failer(SumSquares::NAME).unwrap()(&encoded, "quarantined").unwrap();
        assert_eq!((output.items, output.failed), (2, 2));
        let result: ResultPayload<u64, u128> = decode_payload(&output.payload).unwrap();
        assert_eq!(
            result.outcomes,
            vec![Err("quarantined".into()), Err("quarantined".into())]
        );
    }

    #[test]
    fn unknown_kinds_and_bad_payloads_are_refused_not_run() {
        assert!(runner("nope").is_none());
        assert!(cpu_runner(Download::NAME).is_none(), "downloads are I/O");
        let wrong_type = encode(&TaskPayload {
            first_index: 0,
            items: vec!["x"],
        });
        assert!(cpu_runner(SumSquares::NAME).unwrap()(&wrong_type, &first_run()).is_err());
    }

    fn first_run() -> ChunkRun {
        ChunkRun {
            attempt: 1,
            deadline: Instant::now() + Duration::from_secs(60),
            time_limit: Duration::from_secs(60),
            cancel: CancellationToken::new(),
            items: Items::Sequential,
        }
    }

    #[test]
    fn a_cancelled_chunk_stops_at_an_item_boundary_and_reports_nothing() {
        let encoded = encode(&TaskPayload {
            first_index: 0,
            items: vec![1u64; 1000],
        });
        let cancelled = first_run();
        cancelled.cancel.cancel();
        let run = cpu_runner(SumSquares::NAME).unwrap();
        assert!(matches!(
            run(&encoded, &cancelled),
            Err(RunError::Cancelled)
        ));
    }

    #[test]
    fn a_transient_failure_asks_for_a_retry_until_an_attempt_succeeds() {
        let encoded = encode(&TaskPayload {
            first_index: 0,
            items: vec![0u32, 2],
        });
        let run = cpu_runner(TestFlaky::NAME).unwrap();
        let first = run(&encoded, &first_run()).unwrap();
        assert_eq!(first.failed, 1);
        assert_eq!(first.retry_reason.as_deref(), Some("flaky failure 1 of 2"));
        let third = run(
            &encoded,
            &ChunkRun {
                attempt: 3,
                ..first_run()
            },
        )
        .unwrap();
        assert_eq!((third.failed, third.retry_reason), (0, None));
    }

    #[test]
    fn items_not_started_by_the_deadline_fail_for_good_with_a_hint() {
        let encoded = encode(&TaskPayload {
            first_index: 0,
            items: vec![1i64, 2, 3],
        });
        let late = ChunkRun {
            deadline: Instant::now(),
            ..first_run()
        };
        let output = cpu_runner(Square::NAME).unwrap()(&encoded, &late).unwrap();
        assert_eq!((output.failed, output.retry_reason), (3, None));
        let result: ResultPayload<i64, i128> = decode_payload(&output.payload).unwrap();
        assert!(result.outcomes[0]
            .as_ref()
            .unwrap_err()
            .contains("--chunk-size"));
    }
}
