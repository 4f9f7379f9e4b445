//! The producer's command line.

use clap::{Args, Parser, Subcommand};
use taskq_common::config::ConnectionArgs;
use taskq_common::job::{ChunkSize, JobId};
use taskq_common::telemetry::LogArgs;

/// Submits jobs to taskq workers and follows them to their result.
///
/// A job is split into chunks (messages) that any number of workers share; a consumer collects the results
/// and writes the job's output. `submit` prints the job id on stdout; with --wait it shows a progress bar on
/// stderr and prints the job's JSON summary on stdout instead.
///
/// Exit codes: 0 done, 1 the job failed or a service is unreachable, 2 invalid arguments, 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "producer", version)]
pub struct Cli {
    /// Broker, store and prefix.
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Log format.
    #[command(flatten)]
    pub log: LogArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The producer's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Split a data set into chunks and enqueue them as a job.
    Submit {
        /// The job's kind and data.
        #[command(subcommand)]
        job: SubmitJob,
    },
    /// Print a job's progress (or summary, once completed) as JSON.
    Status {
        /// The job id `submit` printed.
        job: JobId,
    },
    /// Wait for a job with a progress bar, then print its summary as JSON.
    Wait {
        /// The job id `submit` printed.
        job: JobId,
        /// Give up after this many seconds (exit 1); the job itself goes on.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Look at, run again, or drop the messages in the dead-letter queue (<prefix>.dead).
    Dlq {
        /// What to do with them.
        #[command(subcommand)]
        action: DlqAction,
    },
}

/// What `dlq` does.
#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// Print dead letters as JSON (reason, attempts, worker, job, chunk); they stay in the queue.
    List {
        /// Only this job's.
        #[arg(long)]
        job: Option<JobId>,
        /// Print at most this many, oldest first.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Run dead chunks again: each original job's dead chunks become a new job (its output keeps the
    /// original item indices). Prints the new job ids; removes the chunks from the queue once enqueued.
    Replay {
        /// Only this job's.
        #[arg(long)]
        job: Option<JobId>,
        /// Wait for the new jobs and print their summaries.
        #[arg(long)]
        wait: bool,
    },
    /// Delete dead letters for good; prints how many.
    Purge {
        /// Only this job's (others stay).
        #[arg(long)]
        job: Option<JobId>,
    },
}

/// A job to submit: its kind and data.
#[derive(Debug, Subcommand)]
pub enum SubmitJob {
    /// For each n, sum(i*i for i in range(n)), exactly (the seed's CPU-bound workload).
    SumSquares(SumSquaresArgs),
    /// x*x for each x, in input order (the seed's pool.map(square, dataset, chunksize)).
    Square(SquareArgs),
    /// Download each URL: final URL, HTTP status, bytes, SHA-256 and time of each, or its error.
    Download(DownloadArgs),
}

/// Data of a `sum-squares` job.
#[derive(Debug, Args)]
pub struct SumSquaresArgs {
    /// First n.
    #[arg(long, requires = "count", conflicts_with = "values")]
    pub from: Option<u64>,
    /// How many consecutive n, starting at --from.
    #[arg(long, requires = "from")]
    pub count: Option<u64>,
    /// The n values instead: a range like 5000000..=5000019 or a list like 10,20,30.
    #[arg(long, required_unless_present = "from", allow_hyphen_values = true)]
    pub values: Option<String>,
    /// Chunking and waiting.
    #[command(flatten)]
    pub options: SubmitOptions,
}

/// Data of a `square` job.
#[derive(Debug, Args)]
pub struct SquareArgs {
    /// The values: a range like 1..=14 (or 1..15, or -5..=5) or a list like 3,-1,4.
    #[arg(long, allow_hyphen_values = true)]
    pub values: String,
    /// Chunking and waiting.
    #[command(flatten)]
    pub options: SubmitOptions,
}

/// Data of a `download` job.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("sources").required(true).multiple(true))]
pub struct DownloadArgs {
    /// A URL to download (http or https); repeat for more.
    #[arg(long = "url", value_name = "URL", group = "sources")]
    pub urls: Vec<String>,
    /// A file of URLs, one per line ('-' for stdin). Blank lines and lines starting with '#' are skipped.
    #[arg(long, value_name = "PATH", group = "sources")]
    pub urls_file: Option<std::path::PathBuf>,
    /// Chunking and waiting.
    #[command(flatten)]
    pub options: SubmitOptions,
}

/// Options every `submit` takes.
#[derive(Debug, Args)]
pub struct SubmitOptions {
    /// Items per message [default: per kind: 1 for sum-squares, 1000 for square, 1 for download].
    #[arg(long)]
    pub chunk_size: Option<ChunkSize>,
    /// Wait for the job: progress bar on stderr, JSON summary on stdout.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this many seconds (exit 1); the job itself goes on.
    #[arg(long, requires = "wait")]
    pub timeout: Option<u64>,
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
    fn bad_chunk_sizes_are_refused_by_the_parser() {
        let error = Cli::try_parse_from([
            "producer",
            "submit",
            "square",
            "--values",
            "1..=3",
            "--chunk-size",
            "0",
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("use 1 to"), "{error}");
    }

    #[test]
    fn negative_values_are_values_not_flags() {
        let cli =
            Cli::try_parse_from(["producer", "submit", "square", "--values", "-5..5"]).unwrap();
        let Command::Submit {
            job: SubmitJob::Square(args),
        } = cli.command
        else {
            panic!("square")
        };
        assert_eq!(args.values, "-5..5");
    }
}
