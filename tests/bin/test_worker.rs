//! The `test-worker` binary: the stock worker's built-in kinds, registered exactly as `worker` does,
//! plus the test-only kinds of [`test_kinds`]. End-to-end tests start it where they need a task that
//! kills its worker or fails on purpose; production deployments run `worker`, which serves neither.

mod test_kinds;

use std::process::ExitCode;

use clap::Parser;
use worker::stock::StockArgs;

use crate::test_kinds::{TestAbort, TestEchoAfter, TestFlaky, TestNegate, TestSum, UserSquare};

/// A worker for taskq's own tests: the built-in kinds (sum-squares, square, download) and the test-only
/// kinds test-abort, test-flaky, test-echo-after, user-square, test-sum and test-negate. Same flags and environment as `worker`.
#[derive(Debug, Parser)]
#[command(name = "test-worker", version)]
struct Cli {
    #[command(flatten)]
    stock: StockArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let (builder, args) = match Cli::parse().stock.into_builder() {
        Ok(stock) => stock,
        Err(message) => return taskq_common::service::usage_error(&message),
    };
    builder
        .cpu_task(TestAbort)
        .cpu_task(TestFlaky)
        .io_task(TestEchoAfter)
        .cpu_task(UserSquare)
        .cpu_task(TestSum)
        .cpu_task(TestNegate)
        .run_with(args)
        .await
}
