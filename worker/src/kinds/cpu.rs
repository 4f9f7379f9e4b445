//! CPU chunks: a typed [`CpuTask`] behind the [`CpuChunk`] interface the pool runs.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use taskq_common::job::JobId;
use taskq_common::payload::TaskPayload;
use taskq_common::task::{CpuTask, ItemContext, TaskError};
use tokio_util::sync::CancellationToken;

use super::output::{chunk_output, preview, ChunkOutput, ItemResult, RunError};
use crate::pool::{panic_message, Items};

/// How a chunk runs this time.
#[derive(Debug, Clone)]
pub struct ChunkRun {
    /// The chunk's job.
    pub job: JobId,
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

impl ChunkRun {
    /// Whether the item may start: `None` when the job was cancelled, `Some(Err)` past the deadline.
    pub fn may_start(&self) -> Option<Result<(), TaskError>> {
        if self.cancel.is_cancelled() {
            return None;
        }
        if Instant::now() >= self.deadline {
            return Some(Err(TaskError::permanent(format!(
                "not run: the chunk reached its time limit of {:?} (--chunk-time-limit); submit with a \
                 smaller --chunk-size",
                self.time_limit
            ))));
        }
        Some(Ok(()))
    }
}

/// Runs every item of a chunk. Called on a pool thread; items may spread over idle ones.
pub trait CpuChunk: Send + Sync {
    /// Runs the chunk's items in order and reports each one's outcome.
    fn run(&self, payload: &TaskPayload, run: &ChunkRun) -> Result<ChunkOutput, RunError>;
}

/// A typed CPU task as a chunk runner.
pub struct TypedCpu<T> {
    task: T,
}

impl<T: CpuTask> TypedCpu<T> {
    /// Wraps `task`.
    pub fn new(task: T) -> Self {
        Self { task }
    }

    fn run_item(&self, index: u64, raw: &RawValue, run: &ChunkRun) -> Option<ItemResult> {
        if let Err(late) = run.may_start()? {
            return Some(Err(late));
        }
        let input: T::Input = match serde_json::from_str(raw.get()) {
            Ok(input) => input,
            Err(error) => return Some(Err(invalid_input(T::NAME, raw, &error))),
        };
        let context = ItemContext {
            job: run.job,
            index,
            attempt: run.attempt,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| self.task.run(input, &context)))
            .unwrap_or_else(|panic| Err(TaskError::transient(panic_message(panic.as_ref()))));
        Some(outcome.and_then(|output| encode_output(&output)))
    }
}

impl<T: CpuTask> CpuChunk for TypedCpu<T> {
    fn run(&self, payload: &TaskPayload, run: &ChunkRun) -> Result<ChunkOutput, RunError> {
        let items: Vec<(u64, &RawValue)> = (payload.first_index..).zip(payload.items()?).collect();
        // Collecting into an Option stops taking items as soon as one check sees the job cancelled.
        let results = run
            .items
            .collect(&items, |(index, raw)| self.run_item(*index, raw, run))
            .ok_or(RunError::Cancelled)?;
        Ok(chunk_output(payload, results))
    }
}

/// The error of an item whose JSON does not fit the kind's input type: every attempt would repeat it.
pub fn invalid_input(kind: &str, raw: &RawValue, error: &serde_json::Error) -> TaskError {
    // serde places the error inside this one item's text ("at line 1 column 2"), which a user would read
    // as a place in their items file: the item itself is named instead.
    let text = error.to_string();
    let reason = match text.rfind(" at line ") {
        Some(cut) if error.line() > 0 => &text[..cut],
        _ => &text,
    };
    TaskError::permanent(format!(
        "input {} is not a valid '{kind}' input: {reason}",
        preview(raw.get())
    ))
}

/// An output as JSON text; one that does not encode fails its item for good.
pub fn encode_output<O: serde::Serialize>(output: &O) -> ItemResult {
    serde_json::to_string(output).map_err(|error| {
        TaskError::permanent(format!("the output does not encode as JSON: {error}"))
    })
}

#[cfg(test)]
#[path = "cpu_tests.rs"]
mod tests;
