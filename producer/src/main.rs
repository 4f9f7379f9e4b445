//! `producer` binary: parses arguments, starts logging, runs one command and maps its outcome to the exit
//! code (0 done, 1 failed, 2 invalid arguments, 130 interrupted).

use std::process::ExitCode;

use clap::Parser;
use producer::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Only warnings by default: the producer's stdout is for scripts and its stderr for the progress bar.
    taskq_common::telemetry::init(&cli.log, "warn");
    let shutdown = taskq_common::shutdown::on_signals();
    match producer::run(cli, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", taskq_common::service::describe(&error));
            ExitCode::from(error.exit_code())
        }
    }
}
