//! The `test-worker` binary: the stock worker's built-in kinds, registered exactly as `worker` does,
//! plus the test-only kinds of [`test_kinds`]. End-to-end tests start it where they need a task that
//! kills its worker or fails on purpose; production deployments run `worker`, which serves neither.

mod test_kinds;

use std::process::ExitCode;

use clap::Parser;
use worker::http::{HttpArgs, HttpClient};
use worker::tasks::{Download, Square, SumSquares};
use worker::{Worker, WorkerArgs};

use crate::test_kinds::{TestAbort, TestEchoAfter, TestFlaky};

/// A worker for taskq's own tests: the built-in kinds (sum-squares, square, download) and the test-only
/// kinds test-abort, test-flaky and test-echo-after. Same flags and environment as `worker`.
#[derive(Debug, Parser)]
#[command(name = "test-worker", version)]
struct Cli {
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    http: HttpArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let http = match cli.http.into_settings().map(HttpClient::new) {
        Ok(Ok(http)) => http,
        Ok(Err(error)) => return usage(&error.to_string()),
        Err(message) => return usage(&message),
    };
    Worker::builder()
        .cpu_task(SumSquares)
        .cpu_task(Square)
        .io_task(Download::new(http))
        .cpu_task(TestAbort)
        .cpu_task(TestFlaky)
        .io_task(TestEchoAfter)
        .run_with(cli.worker)
        .await
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(taskq_common::service::USAGE_EXIT_CODE)
}
