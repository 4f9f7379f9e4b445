//! Logging set-up shared by every binary: `tracing` to stderr, human-readable or JSON.

use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::declare::QUORUM_SIZE_ARG;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Logging options every binary flattens into its CLI. Levels come from `RUST_LOG` (default `info`).
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(
        long,
        env = "TASKQ_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// Installs the global subscriber. Logs go to stderr so stdout stays for script output.
pub fn init(args: &LogArgs, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match args.log_format {
        LogFormat::Text => builder.finish().with(ExpectedRefusals).init(),
        LogFormat::Json => builder.json().finish().with(ExpectedRefusals).init(),
    }
}

/// Drops lapin's own error line ("Channel closed") for the one refusal taskq expects: a quorum queue
/// that exists with another replication factor, which [`crate::declare`] survives and explains in a
/// warning of its own. Left in, every process start of an existing deployment would log an error per
/// queue for a queue that works.
struct ExpectedRefusals;

impl<S: tracing::Subscriber> Layer<S> for ExpectedRefusals {
    fn event_enabled(&self, event: &tracing::Event<'_>, _: Context<'_, S>) -> bool {
        if !event.metadata().target().starts_with("lapin") {
            return true;
        }
        let mut refusal = NamesQuorumSize(false);
        event.record(&mut refusal);
        !refusal.0
    }
}

/// Whether any field of an event names the replication factor argument.
struct NamesQuorumSize(bool);

impl Visit for NamesQuorumSize {
    fn record_debug(&mut self, _: &Field, value: &dyn std::fmt::Debug) {
        self.0 = self.0 || format!("{value:?}").contains(QUORUM_SIZE_ARG);
    }
}
