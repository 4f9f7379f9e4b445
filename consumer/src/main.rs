//! `consumer` binary: parses arguments and hands over to [`consumer::run`] until a stop signal.

use std::process::ExitCode;

use clap::Parser;
use consumer::settings::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = cli.log.clone();
    taskq_common::service::main(&log, cli.into_settings(), consumer::run).await
}
