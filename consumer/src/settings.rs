//! The consumer's command line, turned once into validated settings.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use taskq_common::config::ConnectionArgs;
use taskq_common::metrics::MetricsArgs;
use taskq_common::telemetry::LogArgs;

/// Consumes chunk results, counts each chunk once, and writes every finished job's output.
///
/// For each job it writes `<output-dir>/<job-id>.jsonl` (one line per item, in input order) and
/// `<output-dir>/<job-id>.summary.json` (counts, timing and the aggregate), and marks the job completed
/// in Redis so `producer wait` returns.
#[derive(Debug, Parser)]
#[command(name = "consumer", version)]
pub struct Cli {
    /// Broker, store and prefix.
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Log format.
    #[command(flatten)]
    pub log: LogArgs,

    /// Where to serve Prometheus metrics.
    #[command(flatten)]
    pub metrics: MetricsArgs,

    /// Directory for job output files; created if missing.
    #[arg(long, env = "TASKQ_OUTPUT_DIR", default_value = "output")]
    pub output_dir: PathBuf,

    /// Results handled concurrently (the consumer's prefetch).
    #[arg(long, env = "TASKQ_CONSUMER_PREFETCH", default_value_t = 256)]
    pub prefetch: u16,

    /// Seconds to let in-flight results finish after a stop signal.
    #[arg(long, env = "TASKQ_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,
}

/// Validated consumer settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Broker, store and prefix.
    pub connection: ConnectionArgs,
    /// Where outputs go.
    pub output_dir: PathBuf,
    /// Consumer prefetch on the results queue.
    pub prefetch: u16,
    /// Grace period at stop.
    pub shutdown_timeout: Duration,
    /// Where to serve Prometheus metrics (off when unset).
    pub metrics: MetricsArgs,
}

impl Cli {
    /// Checks the arguments.
    pub fn into_settings(self) -> Result<Settings, String> {
        if self.prefetch == 0 {
            return Err("--prefetch 0 would mean unlimited: use 1 or more".into());
        }
        Ok(Settings {
            connection: self.connection,
            output_dir: self.output_dir,
            prefetch: self.prefetch,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            metrics: self.metrics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
        assert!(Cli::parse_from(["consumer", "--prefetch", "0"])
            .into_settings()
            .is_err());
    }
}
