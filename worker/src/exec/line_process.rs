//! One long-lived `--exec-lines` process: writes a batch of items, one JSON
//! line each, while reading one JSON line back per item, in order.

use std::future::Future;
use std::process::ExitStatus;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::task::JoinHandle;

use super::once::{kill_and_reap, spawn_piped, MAX_OUTPUT_BYTES};
use super::outcome::{
    describe_status, parse_output, timed_out, ItemFailure, StderrTail, EX_TEMPFAIL,
};

/// Pipe buffers: big enough that a batch of small items moves in few syscalls.
const PIPE_BUFFER: usize = 64 * 1024;

/// How long a process whose stdout closed gets to exit on its own (so its
/// real exit status is reported) before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// How long to wait for the last of stderr after the process ended, for the
/// message. Short: a grandchild may hold stderr open forever.
const STDERR_GRACE: Duration = Duration::from_millis(500);

/// The result of one item.
pub(super) type ItemResult = Result<Box<RawValue>, ItemFailure>;

/// A running process and its pipes.
pub(super) struct LineProcess {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    tail: StderrTail,
    drain: AbortOnDrop,
}

/// Stops the stderr-draining task with its process, even when a grandchild
/// keeps the pipe open.
struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

/// How reading a batch's outputs ended.
enum ReadEnd {
    /// Every item got its line.
    All,
    /// No line within the time limit.
    TimedOut,
    /// stdout closed (or failed): the process exited or is exiting.
    Closed,
    /// A line longer than [`MAX_OUTPUT_BYTES`]: the rest of it cannot be
    /// skipped cheaply, so the process is replaced.
    TooLong,
    /// Every item got its line, but the writer never finished: the process
    /// cannot be trusted with another batch.
    WriterStuck,
}

impl LineProcess {
    /// Starts the program, with a background task keeping the end of stderr.
    pub(super) fn spawn(argv: &[String]) -> Result<Self, ItemFailure> {
        let mut child = spawn_piped(argv)?;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdin), Some(stdout), Some(stderr)) = (stdin, stdout, stderr) else {
            return Err(ItemFailure::permanent(
                "internal error: the program's standard streams were not piped",
            ));
        };
        let tail = StderrTail::default();
        let drainer = tail.clone();
        let drain = tokio::spawn(async move { drainer.drain(stderr).await });
        Ok(Self {
            child,
            stdin: BufWriter::with_capacity(PIPE_BUFFER, stdin),
            stdout: BufReader::with_capacity(PIPE_BUFFER, stdout),
            tail,
            drain: AbortOnDrop(Some(drain)),
        })
    }

    /// Whether the process is still running (an idle one may have died).
    pub(super) fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Runs `inputs` through the process, appending one result per item
    /// answered to `results`. Returns `true` if the process can be reused.
    /// When it cannot, it has been stopped, and when an item was awaited its
    /// failure was appended: the caller resumes after it with a new process.
    pub(super) async fn exchange(
        &mut self,
        inputs: &[&RawValue],
        limit: Duration,
        results: &mut Vec<ItemResult>,
    ) -> bool {
        let write = write_lines(&mut self.stdin, inputs);
        let read = read_lines(&mut self.stdout, inputs.len(), limit, results);
        let end = pipeline(write, read, limit).await;
        let failure = match end {
            ReadEnd::All => return true,
            ReadEnd::WriterStuck => {
                kill_and_reap(&mut self.child).await;
                return false;
            }
            ReadEnd::TimedOut => {
                kill_and_reap(&mut self.child).await;
                ItemFailure::permanent(format!(
                    "{}; the program was stopped and restarted",
                    timed_out(limit)
                ))
            }
            ReadEnd::TooLong => {
                kill_and_reap(&mut self.child).await;
                ItemFailure::permanent(
                    "the program printed a line larger than 16 MiB (the limit for one item's \
                     output); it was stopped and restarted",
                )
            }
            ReadEnd::Closed => self.exit_failure().await,
        };
        results.push(Err(failure));
        false
    }

    /// Waits for a process whose stdout closed, and explains its end. Exit 75
    /// means a temporary failure here too, so the item is worth retrying.
    async fn exit_failure(&mut self) -> ItemFailure {
        let status = self.wait_or_kill(EXIT_GRACE).await;
        if let Some(handle) = self.drain.0.take() {
            let _ = tokio::time::timeout(STDERR_GRACE, handle).await;
        }
        let tail = self.tail.text();
        let Some(status) = status else {
            return ItemFailure::permanent(format!(
                "the program closed its stdout while running this item and was stopped: {tail}"
            ));
        };
        let message = format!(
            "the program exited ({}) while running this item: {tail}",
            describe_status(status)
        );
        match status.code() {
            Some(EX_TEMPFAIL) => ItemFailure::transient(message),
            _ => ItemFailure::permanent(message),
        }
    }

    /// The exit status if the process exits within `grace`; otherwise kills it
    /// and returns `None`.
    async fn wait_or_kill(&mut self, grace: Duration) -> Option<ExitStatus> {
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                kill_and_reap(&mut self.child).await;
                None
            }
        }
    }

    /// Ends an idle process gracefully: closing stdin is the end-of-input a
    /// line program waits for; one that does not exit within `grace` is killed.
    pub(super) async fn close(self, grace: Duration) {
        let Self {
            mut child, stdin, ..
        } = self;
        // Nothing is buffered in an idle process's writer (every batch ends
        // with a flush), so dropping it just closes the pipe.
        drop(stdin);
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            kill_and_reap(&mut child).await;
        }
    }
}

/// Drives the writer and the reader together. They must run concurrently: a
/// program answering each line as it comes blocks on a full stdout pipe unless
/// someone reads while the rest of the batch is still being written.
async fn pipeline(
    write: impl Future<Output = std::io::Result<()>>,
    read: impl Future<Output = ReadEnd>,
    limit: Duration,
) -> ReadEnd {
    tokio::pin!(write, read);
    let mut written = false;
    loop {
        tokio::select! {
            end = &mut read => {
                // If reading failed, the writer may be blocked on a process that
                // no longer reads; it is dropped along with that process.
                if written || !matches!(end, ReadEnd::All) {
                    return end;
                }
                // Every line was answered, so every line was consumed: at most
                // the final flush is left to complete.
                return match tokio::time::timeout(limit, &mut write).await {
                    Ok(Ok(())) => ReadEnd::All,
                    _ => ReadEnd::WriterStuck,
                };
            }
            result = &mut write, if !written => {
                written = true;
                // A write error means the process stopped reading; the reader
                // then sees stdout close, and the exit status explains more.
                if let Err(e) = result {
                    tracing::debug!(error = %e, "writing to an --exec-lines program failed");
                }
            }
        }
    }
}

/// Writes one line per item and flushes once for the whole batch.
async fn write_lines(
    stdin: &mut BufWriter<ChildStdin>,
    inputs: &[&RawValue],
) -> std::io::Result<()> {
    for input in inputs {
        let json = input.get();
        // In valid JSON a raw CR or LF can only be whitespace (inside strings
        // they must be escaped), so blanking them keeps the value exact while
        // making it one line, without re-serialising. CR counts too: line
        // readers such as Python's text stdin treat it as a line break.
        if json.contains(['\n', '\r']) {
            stdin
                .write_all(json.replace(['\n', '\r'], " ").as_bytes())
                .await?;
        } else {
            stdin.write_all(json.as_bytes()).await?;
        }
        stdin.write_all(b"\n").await?;
    }
    stdin.flush().await
}

/// Reads one line per item, in order, each within `limit` of the previous one.
async fn read_lines(
    stdout: &mut BufReader<ChildStdout>,
    count: usize,
    limit: Duration,
    results: &mut Vec<ItemResult>,
) -> ReadEnd {
    let mut line = Vec::new();
    for _ in 0..count {
        line.clear();
        // The cap keeps a runaway line from growing memory without bound.
        let mut capped = (&mut *stdout).take(MAX_OUTPUT_BYTES as u64 + 1);
        match tokio::time::timeout(limit, capped.read_until(b'\n', &mut line)).await {
            Err(_elapsed) => return ReadEnd::TimedOut,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "reading from an --exec-lines program failed");
                return ReadEnd::Closed;
            }
            Ok(Ok(0)) => return ReadEnd::Closed,
            Ok(Ok(_)) if line.len() > MAX_OUTPUT_BYTES => return ReadEnd::TooLong,
            // A bad line fails only its own item: the next line still belongs
            // to the next item, so the process carries on.
            Ok(Ok(_)) => results.push(parse_output(&line)),
        }
    }
    ReadEnd::All
}
