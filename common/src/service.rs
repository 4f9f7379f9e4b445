//! How a long-running binary (worker, consumer) starts and ends: logging, settings validation, the stop
//! signal, and the exit code, so each `main.rs` is a few lines.

use std::future::Future;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::telemetry::{self, LogArgs};

/// Exit code for invalid arguments, as clap uses.
pub const USAGE_EXIT_CODE: u8 = 2;

/// Reports invalid arguments found after parsing, as clap does for its own: the message on stderr and
/// exit code 2.
pub fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(USAGE_EXIT_CODE)
}

/// Starts logging, validates settings, runs `run` with the stop signal, and maps the outcome to an exit
/// code: 0 after a requested stop, 2 for invalid settings, 1 for a fatal error (whole cause chain logged).
pub async fn main<S, E, F, Fut>(log: &LogArgs, settings: Result<S, String>, run: F) -> ExitCode
where
    F: FnOnce(S, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    telemetry::init(log, "info");
    log_panics();
    let settings = match settings {
        Ok(settings) => settings,
        Err(message) => return usage_error(&message),
    };
    let shutdown = crate::shutdown::on_signals();
    match run(settings, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// Sends every panic to the log, in its format, with the thread and the place: a panic in a spawned task
/// ends only that task, silently but for the default hook's plain line on stderr, which a JSON log
/// collector drops. (A task's own panic is also caught and reported as its failure by the worker.)
fn log_panics() {
    std::panic::set_hook(Box::new(|panic| {
        let payload = panic.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        let place = panic
            .location()
            .map(ToString::to_string)
            .unwrap_or_default();
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        tracing::error!(%place, %thread, "panic: {message}");
    }));
}

/// An error and its causes on one line, each cause added only if the text before does not already say it.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Hides(#[source] std::io::Error);

    #[test]
    fn causes_are_listed_once() {
        let io = || std::io::Error::other("disk full");
        assert_eq!(describe(&Repeats(io())), "outer: disk full");
        assert_eq!(describe(&Hides(io())), "outer: disk full");
    }
}
