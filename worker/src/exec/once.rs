//! `--exec`: one process per item. The item's JSON goes to stdin (then closed),
//! the program prints one JSON value on stdout and exits.

use std::io::ErrorKind;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::outcome::{exit_failure, parse_output, timed_out, ItemFailure, StderrTail};

/// The most stdout one item may produce. More is refused rather than buffered
/// without bound: one runaway program must not exhaust the worker's memory.
pub const MAX_OUTPUT_BYTES: usize = 16 * 1024 * 1024;

/// Runs `argv` once for one item: writes `input` to its stdin, then returns
/// what it printed on stdout, which must be one JSON value.
///
/// The whole run, writing and reading included, is bounded by `time_limit`;
/// past it the process is killed. Exit code 75 gives a transient failure; any
/// other failure is permanent. Messages include the end of stderr.
pub async fn run_once(
    argv: &[String],
    input: &str,
    time_limit: Duration,
) -> Result<Box<RawValue>, ItemFailure> {
    let mut child = spawn_piped(argv)?;
    let tail = StderrTail::default();
    let outcome = tokio::time::timeout(time_limit, exchange(&mut child, input, &tail)).await;
    match outcome {
        Ok(Ok((status, output))) if status.success() => parse_output(&output),
        Ok(Ok((status, _))) => Err(exit_failure(status, &tail)),
        Ok(Err(failure)) => {
            kill_and_reap(&mut child).await;
            Err(failure)
        }
        Err(_elapsed) => {
            kill_and_reap(&mut child).await;
            Err(ItemFailure::permanent(timed_out(time_limit)))
        }
    }
}

/// Starts `argv` with all three standard streams piped. `kill_on_drop` makes
/// sure a process whose caller gave up (timeout, cancelled task) does not
/// linger.
pub(super) fn spawn_piped(argv: &[String]) -> Result<Child, ItemFailure> {
    let Some((program, args)) = argv.split_first() else {
        return Err(ItemFailure::permanent(
            "the command is empty; configure a program to run",
        ));
    };
    Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            ItemFailure::permanent(format!(
                "could not start '{program}': {e}; check that it exists and is executable"
            ))
        })
}

/// Writes the input, reads stdout and drains stderr all at once, then waits for
/// the exit. Doing the three concurrently is what avoids a pipe deadlock: a
/// program that echoes as it reads blocks on a full stdout pipe unless someone
/// reads it while we are still writing.
async fn exchange(
    child: &mut Child,
    input: &str,
    tail: &StderrTail,
) -> Result<(ExitStatus, Vec<u8>), ItemFailure> {
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let (Some(stdin), Some(stdout), Some(stderr)) = (stdin, stdout, stderr) else {
        return Err(ItemFailure::permanent(
            "internal error: the program's standard streams were not piped",
        ));
    };
    let drain = async {
        tail.drain(stderr).await;
        Ok(())
    };
    // try_join: a too-large output ends the wait at once (the caller kills the
    // process) instead of waiting for the program to finish on its own.
    let ((), output, ()) = tokio::try_join!(write_input(stdin, input), read_capped(stdout), drain)?;
    let status = child.wait().await.map_err(|e| {
        ItemFailure::permanent(format!("could not wait for the program to exit: {e}"))
    })?;
    Ok((status, output))
}

/// Writes the item and closes stdin (by dropping it) so the program sees EOF.
async fn write_input(mut stdin: ChildStdin, input: &str) -> Result<(), ItemFailure> {
    match stdin.write_all(input.as_bytes()).await {
        Ok(()) => Ok(()),
        // The program exited or closed stdin without reading everything; its
        // exit status and output decide the item, not this.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(ItemFailure::permanent(format!(
            "could not write the item to the program's stdin: {e}"
        ))),
    }
}

/// Reads all of stdout, refusing more than [`MAX_OUTPUT_BYTES`].
async fn read_capped(stdout: ChildStdout) -> Result<Vec<u8>, ItemFailure> {
    let mut output = Vec::new();
    let limit = MAX_OUTPUT_BYTES as u64 + 1;
    stdout
        .take(limit)
        .read_to_end(&mut output)
        .await
        .map_err(|e| ItemFailure::permanent(format!("could not read the program's stdout: {e}")))?;
    if output.len() > MAX_OUTPUT_BYTES {
        return Err(ItemFailure::permanent(
            "output larger than 16 MiB (the limit for one item's output); \
             make the program print less, e.g. store large results elsewhere and print a reference",
        ));
    }
    Ok(output)
}

/// Kills the process and waits for it, so no zombie is left behind. Errors
/// mean it already exited, which is just as good.
pub(super) async fn kill_and_reap(child: &mut Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}
