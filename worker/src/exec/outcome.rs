//! What running an item produced, and the helpers that turn a process's exit
//! status, stderr and output into messages an operator can act on.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Exit code by which a program says "temporary failure, retry me later"
/// (`EX_TEMPFAIL` from sysexits.h).
pub const EX_TEMPFAIL: i32 = 75;

/// How much of the end of a program's stderr is kept for failure messages.
pub const STDERR_TAIL_BYTES: usize = 2048;

/// How much of a bad output is quoted in a failure message: enough to recognise
/// it, short enough to keep logs and stored errors readable.
const PREVIEW_BYTES: usize = 200;

/// Why one item failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ItemFailure {
    /// What went wrong, written for the operator (includes the end of stderr
    /// when the program wrote any).
    pub message: String,
    /// `true` when running the item again later may succeed (the program exited
    /// 75, or the item was never run); `false` when retrying will not help.
    pub transient: bool,
}

impl ItemFailure {
    /// A failure that retrying will not fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
        }
    }

    /// A failure worth retrying later.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: true,
        }
    }
}

/// The message for an item whose program ran past the per-item time limit.
pub(super) fn timed_out(limit: Duration) -> String {
    format!("timed out after {limit:?} (the per-item time limit, --exec-timeout)")
}

/// "exit 3" or "killed by signal 9": the form operators know from shells.
pub(super) fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// The failure for an exit status other than 0, classified by its code.
pub(super) fn exit_failure(status: ExitStatus, tail: &StderrTail) -> ItemFailure {
    if status.code() == Some(EX_TEMPFAIL) {
        return ItemFailure::transient(format!(
            "exit {EX_TEMPFAIL} (temporary failure): {}",
            tail.text()
        ));
    }
    ItemFailure::permanent(format!("{}: {}", describe_status(status), tail.text()))
}

/// Parses what the program printed for one item as exactly one JSON value
/// (surrounding whitespace allowed), keeping its text as is.
pub(super) fn parse_output(bytes: &[u8]) -> Result<Box<RawValue>, ItemFailure> {
    let text = std::str::from_utf8(bytes).map_err(|_| not_json(bytes, "it is not UTF-8"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(not_json(bytes, "it is empty"));
    }
    serde_json::from_str(text).map_err(|e| not_json(bytes, &e.to_string()))
}

fn not_json(bytes: &[u8], why: &str) -> ItemFailure {
    ItemFailure::permanent(format!(
        "the program printed output that is not JSON ({why}): {}; it must print one JSON value per item on stdout (log to stderr instead)",
        preview(bytes)
    ))
}

/// The first bytes of `bytes`, decoded lossily and quoted with escapes so that
/// control characters and binary junk stay visible and harmless in logs.
fn preview(bytes: &[u8]) -> String {
    let end = bytes.len().min(PREVIEW_BYTES);
    let shown = format!("{:?}", String::from_utf8_lossy(&bytes[..end]));
    if bytes.len() > PREVIEW_BYTES {
        format!("{shown}… ({} bytes in all)", bytes.len())
    } else {
        shown
    }
}

/// The last [`STDERR_TAIL_BYTES`] of a process's stderr. Shared (cheap clones)
/// so that a background task can fill it while failures are reported from
/// elsewhere.
#[derive(Clone, Default)]
pub(super) struct StderrTail(Arc<Mutex<TailBuffer>>);

#[derive(Default)]
struct TailBuffer {
    bytes: Vec<u8>,
    /// Whether earlier output was dropped, so the message can say so.
    cut: bool,
}

impl StderrTail {
    /// Reads `reader` to its end, keeping only the tail. Read errors end the
    /// drain quietly: stderr is only ever used to explain other failures.
    pub(super) async fn drain<R: AsyncRead + Unpin>(&self, mut reader: R) {
        let mut chunk = vec![0u8; 8192];
        while let Ok(n @ 1..) = reader.read(&mut chunk).await {
            self.push(&chunk[..n]);
        }
    }

    fn push(&self, chunk: &[u8]) {
        let mut tail = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        tail.bytes.extend_from_slice(chunk);
        if tail.bytes.len() > STDERR_TAIL_BYTES {
            let excess = tail.bytes.len() - STDERR_TAIL_BYTES;
            tail.bytes.drain(..excess);
            tail.cut = true;
        }
    }

    /// The tail as text for a message (never empty, so messages read well).
    pub(super) fn text(&self) -> String {
        let tail = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let text = String::from_utf8_lossy(&tail.bytes);
        let text = text.trim();
        match (text.is_empty(), tail.cut) {
            (true, _) => "(nothing on stderr)".to_owned(),
            (false, true) => format!("…{text}"),
            (false, false) => text.to_owned(),
        }
    }
}
