//! The stock `worker` binary: the built-in kinds (`sum-squares`, `square`, `download`) registered on
//! [`worker::Worker::builder`], plus any `--exec` programs.

use std::process::ExitCode;

use clap::Parser;
use worker::http::{HttpArgs, HttpClient};
use worker::tasks::{Download, Square, SumSquares};
use worker::{Worker, WorkerArgs};

/// Runs chunks of jobs from RabbitMQ: CPU-bound kinds on a local thread pool, I/O-bound kinds as async
/// tasks, and programs given with --exec; publishes their results.
///
/// Serves the built-in kinds sum-squares, square and download, plus each --exec/--exec-lines kind. Start as
/// many workers as you like, on any host that reaches the broker; they share each kind's queue. Stop with
/// SIGINT or SIGTERM: in-flight chunks finish (up to --shutdown-timeout); a second signal exits at once
/// and the broker hands unfinished chunks to other workers.
#[derive(Debug, Parser)]
#[command(name = "worker", version)]
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
        .run_with(cli.worker)
        .await
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(taskq_common::service::USAGE_EXIT_CODE)
}
