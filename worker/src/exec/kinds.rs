//! Programs as task kinds: each `--exec` and `--exec-lines` program becomes a CPU-lane kind whose chunk
//! runner hands items to the program as JSON. The CPU lane bounds them: at most `--cpu-threads` chunks
//! run at once, so at most that many programs (or long-lived processes) work at a time.

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use taskq_common::payload::TaskPayload;
use taskq_common::task::{Lane, TaskError, TaskOptions};
use tokio::runtime::Handle;

use super::{run_once, ExecSpec, ItemFailure, LineProcesses};
use crate::kinds::cpu::{ChunkRun, CpuChunk};
use crate::kinds::output::{chunk_output, ChunkOutput, ItemResult, RunError};
use crate::kinds::{KindError, Kinds, Runner};

/// How the worker runs programs.
#[derive(Debug, Clone)]
pub struct ExecSettings {
    /// Kinds served by a process per item (`--exec`).
    pub once: Vec<ExecSpec>,
    /// Kinds served by long-lived processes, one item per line (`--exec-lines`).
    pub lines: Vec<ExecSpec>,
    /// How long one item may take (`--exec-timeout`).
    pub time_limit: Duration,
    /// Long-lived processes per `--exec-lines` kind: one per CPU thread.
    pub processes: usize,
}

/// Registers every program kind; must be called inside the worker's runtime (its runners block on it).
pub fn register(kinds: &mut Kinds, settings: &ExecSettings) -> Result<(), KindError> {
    let runtime = Handle::current();
    for spec in &settings.once {
        let runner = ExecOnce {
            argv: spec.argv.clone(),
            time_limit: settings.time_limit,
            runtime: runtime.clone(),
        };
        let description = format!("--exec {}", shell_words::join(&spec.argv));
        add(kinds, spec, Arc::new(runner), description)?;
    }
    for spec in &settings.lines {
        let processes =
            LineProcesses::new(spec.argv.clone(), settings.processes, settings.time_limit);
        let runner = ExecLines {
            processes,
            runtime: runtime.clone(),
        };
        let description = format!("--exec-lines {}", shell_words::join(&spec.argv));
        add(kinds, spec, Arc::new(runner), description)?;
    }
    Ok(())
}

fn add(
    kinds: &mut Kinds,
    spec: &ExecSpec,
    runner: Arc<dyn CpuChunk>,
    description: String,
) -> Result<(), KindError> {
    let options = TaskOptions::default();
    kinds.add(
        &spec.name,
        Lane::Cpu,
        options,
        Runner::Cpu(runner),
        Some(description),
    )
}

/// A program run once per item, with the item's JSON on stdin.
struct ExecOnce {
    argv: Vec<String>,
    time_limit: Duration,
    runtime: Handle,
}

impl CpuChunk for ExecOnce {
    fn run(&self, payload: &TaskPayload, run: &ChunkRun) -> Result<ChunkOutput, RunError> {
        let items = payload.items()?;
        // Items spread over idle pool threads like a Rust task's: each waits on its own process.
        let results = run
            .items
            .collect(&items, |item| {
                if let Err(late) = run.may_start()? {
                    return Some(Err(late));
                }
                let ran = self
                    .runtime
                    .block_on(run_once(&self.argv, item.get(), self.time_limit));
                Some(item_result(ran))
            })
            .ok_or(RunError::Cancelled)?;
        Ok(chunk_output(payload, results))
    }
}

/// Long-lived programs reading one item per line; a chunk goes to one of them whole, pipelined.
struct ExecLines {
    processes: LineProcesses,
    runtime: Handle,
}

impl CpuChunk for ExecLines {
    fn run(&self, payload: &TaskPayload, run: &ChunkRun) -> Result<ChunkOutput, RunError> {
        let items: Vec<&RawValue> = payload.items()?;
        if let Err(late) = run.may_start().ok_or(RunError::Cancelled)? {
            let results = items.iter().map(|_| Err(late.clone())).collect();
            return Ok(chunk_output(payload, results));
        }
        let ran = self.runtime.block_on(self.processes.run_batch(&items));
        Ok(chunk_output(
            payload,
            ran.into_iter().map(item_result).collect(),
        ))
    }
}

/// A program's outcome for one item as the task API's.
fn item_result(ran: Result<Box<RawValue>, ItemFailure>) -> ItemResult {
    match ran {
        Ok(output) => Ok(output.get().to_owned()),
        Err(failure) if failure.transient => Err(TaskError::transient(failure.message)),
        Err(failure) => Err(TaskError::permanent(failure.message)),
    }
}
