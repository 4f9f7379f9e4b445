//! How the worker runs each task kind. One file per kind; [`runner`] maps wire names to runners: CPU
//! kinds run synchronously on the thread pool, I/O kinds as async tasks on the I/O lane.

mod download;
mod square;
mod sum_squares;
mod test_abort;

pub use sum_squares::sum_of_squares_below;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use rayon::prelude::*;
use taskq_common::envelope::{decode_payload, encode, DecodeError};
use taskq_common::tasks::{
    Download, ItemOutcome, ResultPayload, Square, SumSquares, TaskKind, TaskPayload, TestAbort,
};

use crate::io_lane::IoLane;
use crate::pool::panic_message;

/// A CPU-bound kind: a synchronous function of one item, run on the thread pool.
pub trait CpuTask: TaskKind {
    /// Computes one item. An `Err` is reported as that item's failure, as is a panic.
    fn run(item: &Self::Item) -> Result<Self::Output, String>;
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
}

/// Runs every item of an encoded chunk. Call from inside the pool (items are spread over its threads).
pub type CpuRunner = fn(&[u8]) -> Result<ChunkOutput, DecodeError>;

/// Reports every item of an encoded chunk as failed with the given reason, without running any.
pub type ChunkFailer = fn(&[u8], &str) -> Result<ChunkOutput, DecodeError>;

/// Runs every item of an encoded chunk concurrently, each holding one of the lane's slots while it runs.
pub type IoRunner =
    fn(Arc<IoLane>, Vec<u8>) -> BoxFuture<'static, Result<ChunkOutput, DecodeError>>;

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
        Download::NAME => Some(Runner::Io(|lane, payload| {
            run_io_chunk::<Download>(lane, payload).boxed()
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
) -> Result<ChunkOutput, DecodeError> {
    let payload: TaskPayload<K::Item> = decode_payload(&encoded)?;
    let outcomes: Vec<ItemOutcome<K::Output>> = futures::future::join_all(
        payload
            .items
            .iter()
            .map(|item| lane.run_item(K::run(item, &lane))),
    )
    .await;
    Ok(chunk_output(payload, outcomes))
}

/// The failer for a kind, or `None` if the kind is unknown to this worker.
pub fn chunk_failer(kind: &str) -> Option<ChunkFailer> {
    match kind {
        SumSquares::NAME => Some(fail_chunk::<SumSquares>),
        Square::NAME => Some(fail_chunk::<Square>),
        TestAbort::NAME => Some(fail_chunk::<TestAbort>),
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
    }
}

fn run_chunk<K: CpuTask>(encoded: &[u8]) -> Result<ChunkOutput, DecodeError> {
    let payload: TaskPayload<K::Item> = decode_payload(encoded)?;
    let outcomes: Vec<ItemOutcome<K::Output>> = payload
        .items
        .par_iter()
        .map(|item| {
            catch_unwind(AssertUnwindSafe(|| K::run(item)))
                .unwrap_or_else(|panic| Err(panic_message(panic.as_ref())))
        })
        .collect();
    Ok(chunk_output(payload, outcomes))
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
        let output = cpu_runner(Square::NAME).unwrap()(&encoded).unwrap();
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
        assert!(cpu_runner(SumSquares::NAME).unwrap()(&wrong_type).is_err());
    }
}
