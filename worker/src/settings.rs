//! The worker's command line, turned once into validated settings.

use std::time::Duration;

use clap::Parser;
use taskq_common::config::ConnectionArgs;
use taskq_common::telemetry::LogArgs;

use crate::http::HttpSettings;

/// Runs chunks of jobs from RabbitMQ on a local thread pool and publishes their results.
///
/// Start as many workers as you like, on any host that reaches the broker; they share the task queue.
/// Stop with SIGINT or SIGTERM: in-flight chunks finish (up to --shutdown-timeout); a second signal
/// exits at once and the broker hands unfinished chunks to other workers.
#[derive(Debug, Parser)]
#[command(name = "worker", version)]
pub struct Cli {
    /// Broker, store and prefix.
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Log format.
    #[command(flatten)]
    pub log: LogArgs,

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

    /// Run test-only task kinds (one of them kills this process). For the project's own tests.
    #[arg(long, env = "TASKQ_ENABLE_TEST_KINDS", hide = true)]
    pub enable_test_kinds: bool,

    /// Downloads (I/O items) in flight at once. Also the I/O queue's prefetch, in chunks. They run as async
    /// tasks, not threads, so a few hundred cost little.
    #[arg(long, env = "TASKQ_IO_CONCURRENCY", default_value_t = 64)]
    pub io_concurrency: u16,

    /// Seconds one HTTP request may take, from connecting to the last body byte (decimals allowed).
    #[arg(long, env = "TASKQ_HTTP_TIMEOUT", default_value_t = 30.0)]
    pub http_timeout: f64,

    /// Largest response body a download accepts, in bytes; a larger one is an error for that URL.
    #[arg(long, env = "TASKQ_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: u64,

    /// Redirects a download follows; one more is an error for that URL.
    #[arg(long, env = "TASKQ_MAX_REDIRECTS", default_value_t = 10)]
    pub max_redirects: usize,

    /// Retries of a download after a transient failure (connection refused, timeout, HTTP 5xx), with
    /// exponential backoff from 200 ms and jitter. HTTP 4xx, DNS failures and oversized bodies are final.
    #[arg(long, env = "TASKQ_DOWNLOAD_RETRIES", default_value_t = 2)]
    pub download_retries: usize,

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
    /// Whether test-only kinds may run.
    pub enable_test_kinds: bool,
    /// I/O items in flight at most; also the I/O queue's prefetch.
    pub io_concurrency: u16,
    /// Download limits.
    pub http: HttpSettings,
    /// Retries of a chunk after transient task failures.
    pub max_retries: u32,
    /// How long a CPU chunk may run before its remaining items fail.
    pub chunk_time_limit: Duration,
    /// How long a result may wait for others to share its message.
    pub result_batch_wait: Duration,
}

impl Cli {
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
        if !(self.http_timeout.is_finite()
            && self.http_timeout > 0.0
            && self.http_timeout <= 86_400.0)
        {
            return Err(format!(
                "--http-timeout {} is out of range: use more than 0 and at most 86400 seconds",
                self.http_timeout
            ));
        }
        if self.max_redirects > 100 {
            return Err(format!(
                "--max-redirects {} is out of range: use 0 to 100",
                self.max_redirects
            ));
        }
        if self.download_retries > 20 {
            return Err(format!(
                "--download-retries {} is out of range: use 0 to 20",
                self.download_retries
            ));
        }
        if self.chunk_time_limit == 0 {
            return Err("--chunk-time-limit 0 would run no items: use 1 second or more".into());
        }
        let http = HttpSettings {
            timeout: Duration::from_secs_f64(self.http_timeout),
            max_body_bytes: self.max_body_bytes,
            max_redirects: self.max_redirects,
            retries: self.download_retries,
        };
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
            enable_test_kinds: self.enable_test_kinds,
            io_concurrency: self.io_concurrency,
            http,
            max_retries: self.max_retries,
            chunk_time_limit: Duration::from_secs(self.chunk_time_limit),
            result_batch_wait: Duration::from_millis(self.result_batch_wait),
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
    }

    #[test]
    fn defaults_follow_the_pool_size() {
        let settings = Cli::parse_from(["worker", "--cpu-threads", "3"])
            .into_settings()
            .unwrap();
        assert_eq!(
            (settings.cpu_threads, settings.prefetch),
            (3, Prefetch::Adaptive)
        );
        assert_eq!(settings.prefetch.initial(settings.cpu_threads), 6);
        let fixed = Cli::parse_from(["worker", "--prefetch", "9"])
            .into_settings()
            .unwrap();
        assert_eq!(fixed.prefetch, Prefetch::Fixed(9));
        let error = Cli::parse_from(["worker", "--cpu-threads", "0"])
            .into_settings()
            .unwrap_err();
        assert!(error.contains("1 to 1024"));
    }

    #[test]
    fn the_result_batch_wait_is_in_milliseconds_and_zero_turns_it_off() {
        let default = Cli::parse_from(["worker"]).into_settings().unwrap();
        assert_eq!(default.result_batch_wait, Duration::from_millis(5));
        let off = Cli::parse_from(["worker", "--result-batch-wait", "0"])
            .into_settings()
            .unwrap();
        assert_eq!(off.result_batch_wait, Duration::ZERO);
    }

    #[test]
    fn download_settings_are_validated() {
        let settings = Cli::parse_from(["worker"]).into_settings().unwrap();
        assert_eq!(settings.io_concurrency, 64);
        assert_eq!(
            settings.http,
            HttpSettings {
                timeout: Duration::from_secs(30),
                max_body_bytes: 10 * 1024 * 1024,
                max_redirects: 10,
                retries: 2,
            }
        );
        let short = Cli::parse_from(["worker", "--http-timeout", "0.5"])
            .into_settings()
            .unwrap();
        assert_eq!(short.http.timeout, Duration::from_millis(500));
        for (flag, value, expected) in [
            ("--io-concurrency", "0", "use 1 or more"),
            ("--http-timeout", "0", "more than 0"),
            ("--http-timeout", "NaN", "more than 0"),
            ("--max-redirects", "101", "0 to 100"),
            ("--download-retries", "21", "0 to 20"),
        ] {
            let error = Cli::parse_from(["worker", flag, value])
                .into_settings()
                .unwrap_err();
            assert!(error.contains(expected), "{flag} {value}: {error}");
        }
    }
}
