//! Running a chunk cleared to run: on a pool thread (CPU kinds) or the I/O lane, items that failed in
//! an earlier stage left out and put back in their places, and what the run came to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use taskq_common::envelope::{decode_payload, TaskMessage};
use taskq_common::payload::TaskPayload;

use super::Context;
use crate::kinds::cpu::{ChunkRun, CpuChunk};
use crate::kinds::io::{IoChunk, IoRun};
use crate::kinds::output::{ChunkOutput, RunError};
use crate::kinds::Kind;
use crate::pool::{Permit, PoolOutcome};
use crate::stages::upstream;

/// What running a chunk came to.
pub(super) enum Ran {
    /// It ran: its output, and the time it took.
    Finished(ChunkOutput, Duration),
    /// It did not run to the end: the worker began stopping first, or its job was cancelled meanwhile.
    /// It goes back untouched (and the status check drops a cancelled job's chunk next time).
    Stopped,
    /// It can never run (its payload does not decode, or the chunk itself panicked).
    Failed(String),
}

/// A chunk cleared to run: a CPU chunk holds a pool thread.
pub(super) enum Ready {
    Cpu(Arc<dyn CpuChunk>, Permit),
    Io(Arc<dyn IoChunk>),
}

pub(super) async fn run_chunk(
    context: &Context,
    task: &TaskMessage,
    kind: &Kind,
    ready: Ready,
) -> Ran {
    let payload: TaskPayload = match decode_payload(&task.payload) {
        Ok(payload) => payload,
        Err(error) => return Ran::Failed(error.to_string()),
    };
    // Items that failed in an earlier stage are not run: the rest runs in parts, merged afterwards.
    let whole = (!payload.missing.is_empty()).then(|| payload.clone());
    let parts = match upstream::runnable_parts(payload) {
        Ok(parts) => parts,
        Err(error) => return Ran::Failed(error.to_string()),
    };
    let running = context.cancels.start(task.job_id);
    let cancel = running.token();
    let started = Instant::now();
    let outcome = match ready {
        Ready::Cpu(run, permit) => {
            let time_limit = kind.time_limit.unwrap_or(context.chunk_time_limit);
            let (job, attempt) = (task.job_id, task.attempt);
            let chunk = move |items| {
                let started = Instant::now();
                let run_this = ChunkRun {
                    job,
                    attempt,
                    deadline: started + time_limit,
                    time_limit,
                    cancel,
                    items,
                };
                let outputs: Result<Vec<_>, _> =
                    parts.iter().map(|part| run.run(part, &run_this)).collect();
                (outputs, started.elapsed())
            };
            match context.pool.run(permit, chunk).await {
                PoolOutcome::Done((outcome, compute)) => outcome.map(|outputs| (outputs, compute)),
                PoolOutcome::Panicked(message) => {
                    return Ran::Failed(format!("the chunk {message}"))
                }
                PoolOutcome::NotStarted => return Ran::Stopped,
            }
        }
        Ready::Io(run) => {
            let io_run = IoRun {
                job: task.job_id,
                attempt: task.attempt,
                cancel,
                lane: context.io.clone(),
            };
            let mut outputs = Vec::with_capacity(parts.len());
            let mut failure = None;
            for part in parts {
                match run.run(part, io_run.clone()).await {
                    Ok(output) => outputs.push(output),
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
            match failure {
                Some(error) => Err(error),
                None => Ok((outputs, started.elapsed())),
            }
        }
    };
    drop(running);
    let merged = outcome.and_then(|(mut outputs, compute)| match &whole {
        None => Ok((outputs.remove(0), compute)),
        Some(whole) => Ok((upstream::merge(whole, outputs)?, compute)),
    });
    match merged {
        Ok((output, compute)) => Ran::Finished(output, compute),
        Err(RunError::Cancelled) => Ran::Stopped,
        Err(error) => Ran::Failed(error.to_string()),
    }
}
