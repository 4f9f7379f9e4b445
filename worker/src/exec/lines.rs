//! `--exec-lines`: a pool of long-lived processes that each read one JSON item
//! per line on stdin and write one JSON output per line on stdout, in order.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::sync::Semaphore;

use super::line_process::{ItemResult, LineProcess};
use super::outcome::ItemFailure;

/// How long [`LineProcesses::shutdown`] lets idle processes exit on their own.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// After this many fresh processes in a row die without answering a single
/// item, the program is taken to be broken as a whole (e.g. it fails at
/// startup), and the rest of the batch is not run, rather than starting one
/// doomed process per item.
const MAX_SILENT_DEATHS: usize = 3;

/// A pool of up to `processes` long-lived processes running one program.
///
/// Processes start on first use and are reused across batches; a process that
/// crashes, hangs or misbehaves is replaced. Dropping the pool kills its
/// processes.
pub struct LineProcesses {
    argv: Vec<String>,
    time_limit: Duration,
    /// One permit per process: a batch holds one for its whole run, so at most
    /// `processes` processes exist and extra batches wait their turn.
    permits: Semaphore,
    /// Started processes not running a batch now.
    idle: Mutex<Vec<LineProcess>>,
}

impl LineProcesses {
    /// A pool running `argv` in up to `processes` processes (at least one),
    /// where each output line must come within `time_limit` of the previous
    /// one (or of the batch start). Starts nothing yet.
    pub fn new(argv: Vec<String>, processes: usize, time_limit: Duration) -> Self {
        let processes = processes.max(1);
        Self {
            argv,
            time_limit,
            permits: Semaphore::new(processes),
            idle: Mutex::new(Vec::with_capacity(processes)),
        }
    }

    /// Runs a batch through one process (waiting for one if all are busy) and
    /// returns one result per input, in order.
    ///
    /// A line that is not JSON fails only its item. If the process exits, hangs
    /// past the time limit or prints an over-long line, the awaited item fails,
    /// the process is replaced and the batch continues with the next item.
    /// Cancelling the returned future kills the process it was using.
    pub async fn run_batch(&self, inputs: &[&RawValue]) -> Vec<ItemResult> {
        let Ok(_permit) = self.permits.acquire().await else {
            return vec![Err(shutting_down()); inputs.len()];
        };
        let mut results = Vec::with_capacity(inputs.len());
        let mut process = self.checkout();
        let mut silent_deaths = 0;
        while results.len() < inputs.len() {
            let mut current = match process.take().map_or_else(|| self.start(), Ok) {
                Ok(current) => current,
                Err(failure) => {
                    results.resize(inputs.len(), Err(failure));
                    break;
                }
            };
            let before = results.len();
            if current
                .exchange(&inputs[before..], self.time_limit, &mut results)
                .await
            {
                process = Some(current);
                continue;
            }
            // Only the failure of the awaited item was added: nothing answered.
            silent_deaths = if results.len() - before <= 1 {
                silent_deaths + 1
            } else {
                0
            };
            if silent_deaths >= MAX_SILENT_DEATHS {
                fail_rest(&mut results, inputs.len());
                break;
            }
        }
        if let Some(process) = process {
            self.checkin(process);
        }
        results
    }

    /// Closes the stdin of idle processes and gives them a moment to exit
    /// (killing those that do not). Batches started afterwards fail
    /// transiently; processes still running a batch are killed when it ends.
    pub async fn shutdown(&self) {
        self.permits.close();
        let idle = std::mem::take(&mut *self.lock_idle());
        futures::future::join_all(idle.into_iter().map(|p| p.close(SHUTDOWN_GRACE))).await;
    }

    fn start(&self) -> Result<LineProcess, ItemFailure> {
        let process = LineProcess::spawn(&self.argv);
        if let Err(failure) = &process {
            tracing::warn!(error = %failure, "could not start an --exec-lines program");
        }
        process
    }

    /// An idle process that is still alive, if any. Dead ones are dropped here
    /// so that their first item is not blamed for a death that happened while
    /// idle.
    fn checkout(&self) -> Option<LineProcess> {
        let mut idle = self.lock_idle();
        while let Some(mut process) = idle.pop() {
            if process.is_alive() {
                return Some(process);
            }
        }
        None
    }

    fn checkin(&self, process: LineProcess) {
        // After shutdown the process is dropped, which kills it.
        if !self.permits.is_closed() {
            self.lock_idle().push(process);
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<LineProcess>> {
        // The list stays consistent even if a holder panicked: pushes and pops
        // are the only operations.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn shutting_down() -> ItemFailure {
    ItemFailure::transient("not run: the worker is shutting down; the item will be retried")
}

/// Fails the items never sent to a working process. Transient: they were never
/// run, so nothing is known to be wrong with them.
fn fail_rest(results: &mut Vec<ItemResult>, len: usize) {
    let why = match results.last() {
        Some(Err(failure)) => failure.message.clone(),
        _ => String::from("(no message)"),
    };
    let failure = ItemFailure::transient(format!(
        "not run: the program failed {MAX_SILENT_DEATHS} times in a row without answering \
         any item, so the rest of the batch was skipped; fix the program (last failure: {why})"
    ));
    results.resize(len, Err(failure));
}
