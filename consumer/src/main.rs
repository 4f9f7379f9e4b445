//! `consumer` binary: parses arguments and hands over to [`consumer::run`] until a stop signal.

use std::process::ExitCode;

use clap::Parser;
use consumer::settings::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = cli.log.clone();
    // The metrics address is bound before anything runs: a taken one is a usage error (exit 2).
    let prepared = cli.into_settings().and_then(|settings| {
        let metrics = settings.metrics.bind().map_err(|error| error.to_string())?;
        Ok((settings, metrics))
    });
    taskq_common::service::main(&log, prepared, |(settings, metrics), shutdown| {
        consumer::run(settings, metrics, shutdown)
    })
    .await
}
