//! The command line every worker shares (the stock `worker` binary and a user's own), turned once into
//! validated settings.

use std::time::Duration;

use clap::Args;
use taskq_common::config::ConnectionArgs;
use taskq_common::metrics::MetricsArgs;
use taskq_common::telemetry::LogArgs;

use crate::exec::{parse_exec, ExecSpec};

/// The flags of every worker: connections, threads, prefetch, retries, limits and `--exec` kinds.
/// A worker binary flattens them into its own `clap` parser, beside flags of its own tasks.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Broker, store and prefix.
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Log format.
    #[command(flatten)]
    pub log: LogArgs,

    /// Where to serve Prometheus metrics.
    #[command(flatten)]
    pub metrics: MetricsArgs,

    /// Threads for CPU-bound chunks [default: all cores].
    #[arg(long, env = "TASKQ_CPU_THREADS")]
    pub cpu_threads: Option<usize>,

    /// Unacknowledged chunks this worker may hold [default: adaptive]. Adaptive starts at 2 per CPU thread
    /// and follows measured chunk costs: about one spare per thread for heavy chunks (no hoarding), up to
    /// 32 per thread for tiny ones (to cover the broker's confirm latency). A number fixes it.
    #[arg(long, env = "TASKQ_PREFETCH")]
    pub prefetch: Option<u16>,

    /// Seconds to let in-flight chunks finish after a stop signal.
    #[arg(long, env = "TASKQ_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,

    /// This worker's name in logs, result messages and the management UI [default: <host>-<pid>].
    #[arg(long, env = "TASKQ_WORKER_ID")]
    pub worker_id: Option<String>,

    /// I/O items (downloads, a task's requests) in flight at once. Also each I/O kind's prefetch, in
    /// chunks. They run as async tasks, not threads, so a few hundred cost little.
    #[arg(long, env = "TASKQ_IO_CONCURRENCY", default_value_t = 64)]
    pub io_concurrency: u16,

    /// Retries of a chunk whose task failed in a way a later attempt may fix (a transient error, a
    /// panic). The broker holds each retry for 1-2 s, then 4-8 s, 16-32 s, 64-128 s, 256-512 s (doubling
    /// levels of four, with jitter); a chunk still failing after them goes to the dead-letter queue with its
    /// error, attempts and this worker's id, and its failed items count in the job's summary.
    #[arg(long, env = "TASKQ_MAX_RETRIES", default_value_t = 3)]
    pub max_retries: u32,

    /// Seconds a CPU chunk may run. Items not started by then fail ("reached its time limit"), so the chunk
    /// is acknowledged before RabbitMQ's consumer ack timeout (`consumer_timeout`, 30 min by default) and
    /// is never redelivered in a loop. Keep it below that timeout; an item that alone runs longer needs the
    /// broker's timeout raised (see the README).
    #[arg(long, env = "TASKQ_CHUNK_TIME_LIMIT", default_value_t = 20 * 60)]
    pub chunk_time_limit: u64,

    /// Milliseconds a CPU chunk's result may wait for other chunks' results to share its message, while
    /// other CPU chunks are in this worker's hands (a lone chunk's result never waits; I/O chunks'
    /// results never do). Fewer, fuller result messages
    /// save the broker most of its work for tiny chunks; 0 sends each result at once unless a previous
    /// message is still waiting for its confirm.
    #[arg(long, env = "TASKQ_RESULT_BATCH_WAIT", default_value_t = 5)]
    pub result_batch_wait: u64,

    /// Serve kind NAME by running COMMAND once per item: the item's JSON on stdin, its output JSON on
    /// stdout. Exit 0 is success, exit 75 a transient failure (the chunk is retried), any other exit that
    /// item's error with the end of stderr. COMMAND is split into words like a shell would (quotes work)
    /// but never runs through one; items reach it only on stdin. Repeatable; in the environment, one per
    /// line. Example: --exec 'upper=python3 upper.py'
    #[arg(
        long = "exec",
        value_name = "NAME=COMMAND",
        env = "TASKQ_EXEC",
        value_delimiter = '\n'
    )]
    pub exec: Vec<String>,

    /// Serve kind NAME with long-lived COMMAND processes (one per CPU thread) that read one JSON item per
    /// line on stdin and write one JSON output per line on stdout, in order. No process start per item; a
    /// process that crashes is restarted and its item fails. Repeatable; in the environment, one per line.
    #[arg(
        long = "exec-lines",
        value_name = "NAME=COMMAND",
        env = "TASKQ_EXEC_LINES",
        value_delimiter = '\n'
    )]
    pub exec_lines: Vec<String>,

    /// Seconds one item of an --exec or --exec-lines kind may take; the process is then killed and the
    /// item fails (decimals allowed).
    #[arg(long, env = "TASKQ_EXEC_TIMEOUT", default_value_t = 60.0)]
    pub exec_timeout: f64,
}

/// How the worker's prefetch is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefetch {
    /// Follows chunk costs (see [`crate::prefetch`]).
    Adaptive,
    /// Set by the user.
    Fixed(u16),
}

impl Prefetch {
    /// The prefetch to start with for a pool of `threads`.
    pub fn initial(self, threads: usize) -> u16 {
        match self {
            Self::Adaptive => crate::prefetch::AdaptivePrefetch::initial(threads),
            Self::Fixed(prefetch) => prefetch,
        }
    }
}

/// Validated worker settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Broker, store and prefix.
    pub connection: ConnectionArgs,
    /// Threads in the CPU pool.
    pub cpu_threads: usize,
    /// Consumer prefetch on the CPU queue.
    pub prefetch: Prefetch,
    /// Grace period for in-flight chunks at stop.
    pub shutdown_timeout: Duration,
    /// This worker's name.
    pub worker_id: String,
    /// I/O items in flight at most; also the I/O queues' prefetch.
    pub io_concurrency: u16,
    /// Retries of a chunk after transient task failures.
    pub max_retries: u32,
    /// How long a CPU chunk may run before its remaining items fail.
    pub chunk_time_limit: Duration,
    /// How long a result may wait for others to share its message.
    pub result_batch_wait: Duration,
    /// Kinds served by running a program once per item.
    pub exec: Vec<ExecSpec>,
    /// Kinds served by long-lived programs, one item per line.
    pub exec_lines: Vec<ExecSpec>,
    /// How long one item of a program kind may take.
    pub exec_timeout: Duration,
    /// Where to serve Prometheus metrics (off when unset).
    pub metrics: MetricsArgs,
}

impl WorkerArgs {
    /// Checks the arguments and fills in defaults that depend on the machine.
    pub fn into_settings(self) -> Result<Settings, String> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let cpu_threads = self.cpu_threads.unwrap_or(cores);
        if cpu_threads == 0 || cpu_threads > 1024 {
            return Err(format!(
                "--cpu-threads {cpu_threads} is out of range: use 1 to 1024"
            ));
        }
        let prefetch = match self.prefetch {
            Some(0) => return Err("--prefetch 0 would mean unlimited: use 1 or more".into()),
            Some(prefetch) => Prefetch::Fixed(prefetch),
            None => Prefetch::Adaptive,
        };
        if self.io_concurrency == 0 {
            return Err("--io-concurrency 0 would run no downloads: use 1 or more".into());
        }
        if self.chunk_time_limit == 0 {
            return Err("--chunk-time-limit 0 would run no items: use 1 second or more".into());
        }
        let exec_timeout = seconds("--exec-timeout", self.exec_timeout)?;
        let exec = parse_all(&self.exec, "--exec")?;
        let exec_lines = parse_all(&self.exec_lines, "--exec-lines")?;
        let worker_id = self.worker_id.unwrap_or_else(|| {
            let host = hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{host}-{}", std::process::id())
        });
        Ok(Settings {
            connection: self.connection,
            cpu_threads,
            prefetch,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            worker_id,
            io_concurrency: self.io_concurrency,
            max_retries: self.max_retries,
            chunk_time_limit: Duration::from_secs(self.chunk_time_limit),
            result_batch_wait: Duration::from_millis(self.result_batch_wait),
            exec,
            exec_lines,
            exec_timeout,
            metrics: self.metrics,
        })
    }
}

/// A positive number of seconds (decimals allowed), at most a day.
pub fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    if value.is_finite() && value > 0.0 && value <= 86_400.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!(
            "{flag} {value} is out of range: use more than 0 and at most 86400 seconds"
        ))
    }
}

fn parse_all(raw: &[String], flag: &str) -> Result<Vec<ExecSpec>, String> {
    raw.iter()
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| parse_exec(entry, flag))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        worker: WorkerArgs,
    }

    fn settings(args: &[&str]) -> Result<Settings, String> {
        let mut argv = vec!["worker"];
        argv.extend(args);
        Cli::parse_from(argv).worker.into_settings()
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_follow_the_pool_size() {
        let settings = settings(&["--cpu-threads", "3"]).unwrap();
        assert_eq!(
            (settings.cpu_threads, settings.prefetch),
            (3, Prefetch::Adaptive)
        );
        assert_eq!(settings.prefetch.initial(settings.cpu_threads), 6);
        assert_eq!(settings.io_concurrency, 64);
        let fixed = self::settings(&["--prefetch", "9"]).unwrap();
        assert_eq!(fixed.prefetch, Prefetch::Fixed(9));
        let error = self::settings(&["--cpu-threads", "0"]).unwrap_err();
        assert!(error.contains("1 to 1024"));
        let error = self::settings(&["--io-concurrency", "0"]).unwrap_err();
        assert!(error.contains("use 1 or more"));
    }

    #[test]
    fn the_result_batch_wait_is_in_milliseconds_and_zero_turns_it_off() {
        let default = settings(&[]).unwrap();
        assert_eq!(default.result_batch_wait, Duration::from_millis(5));
        let off = settings(&["--result-batch-wait", "0"]).unwrap();
        assert_eq!(off.result_batch_wait, Duration::ZERO);
    }

    #[test]
    fn program_kinds_are_parsed_and_checked_before_the_worker_starts() {
        let parsed = settings(&[
            "--exec",
            "up=python3 -c 'import json; print(1)'",
            "--exec-lines",
            "ln=/bin/cat",
            "--exec-timeout",
            "2.5",
        ])
        .unwrap();
        assert_eq!(parsed.exec[0].name, "up");
        assert_eq!(
            parsed.exec[0].argv,
            ["python3", "-c", "import json; print(1)"]
        );
        assert_eq!(parsed.exec_lines[0].argv, ["/bin/cat"]);
        assert_eq!(parsed.exec_timeout, Duration::from_millis(2500));
        let missing = settings(&["--exec", "x=no-such-program-here"]).unwrap_err();
        assert!(missing.contains("no-such-program-here"), "{missing}");
        let bad_name = settings(&["--exec", "Bad Name=/bin/cat"]).unwrap_err();
        assert!(bad_name.contains("lowercase"), "{bad_name}");
        let error = settings(&["--exec-timeout", "0"]).unwrap_err();
        assert!(error.contains("more than 0"), "{error}");
    }
}
