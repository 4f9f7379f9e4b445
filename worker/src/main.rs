//! The stock `worker` binary: the built-in kinds (`sum-squares`, `square`, `download`) registered on
//! [`worker::Worker::builder`] (see [`worker::stock`]), plus any `--exec` programs.

use std::process::ExitCode;

use clap::Parser;
use worker::stock::StockArgs;

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
    stock: StockArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().stock.into_builder() {
        Ok((builder, args)) => builder.run_with(args).await,
        Err(message) => taskq_common::service::usage_error(&message),
    }
}
