//! The producer's command line.

use clap::{Args, Parser, Subcommand};
use taskq_common::config::ConnectionArgs;
use taskq_common::job::{ChunkSize, JobId};
use taskq_common::telemetry::LogArgs;

/// Submits jobs to taskq workers, follows them to their result, and talks to the workers.
///
/// A job is split into chunks (messages) that any number of workers share; a consumer collects the results
/// and writes the job's output. `submit` prints the job id on stdout; with --wait it shows a progress bar on
/// stderr and prints the job's JSON summary on stdout instead. `broadcast` sends the whole data set to
/// every live worker instead, and each runs its own share. `workers`, `ping`, `cancel` and `shutdown` use
/// the control plane: JSON on stdout, progress on stderr.
///
/// Exit codes: 0 done, 1 the job failed or was cancelled, a service is unreachable, or a worker did not
/// answer; 2 invalid arguments; 3 `dlq replay --wait` ran and replayed items failed again; 130
/// interrupted.
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
    ///
    /// The built-in kinds take their own flags (`submit square --values 1..=14`); any other kind takes
    /// JSON items: `submit KIND --items-file items.jsonl` (one JSON value per line, '-' for stdin) or
    /// `submit KIND --items '[1, 2]'`, with the same options (--chunk-size, --wait, --timeout,
    /// --allow-unserved). A kind no live worker serves is refused (exit 2) unless --allow-unserved.
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
    /// Send a whole data set to every live worker; each runs its own share (broadcast pattern).
    ///
    /// The job is shared among the workers alive now (as `producer workers` lists them): every one of them
    /// receives every chunk and runs those it owns by rendezvous hashing, so together they run each chunk
    /// once; the consumer collects the results as for `submit`. If a worker stops mid-job, the survivors
    /// run its unfinished chunks. Workers started later take no share. Fails if no worker is alive.
    /// At most 100,000 chunks: every worker holds all of them.
    Broadcast {
        /// The job's kind and data, as for `submit`.
        #[command(subcommand)]
        job: SubmitJob,
    },
    /// List the task kinds as JSON: each with its lane, default chunk size, aggregate and the live
    /// workers serving it (kinds declared by workers that are gone are listed with no workers).
    Kinds,
    /// List the live workers with their load (and those whose heartbeats stopped lately) as JSON.
    Workers,
    /// Ask every live worker to answer; report who answered, who is missing and who does not answer.
    ///
    /// Workers whose heartbeats stopped in the last 10 minutes without a graceful stop are reported
    /// missing too. Exit 1 if any worker is missing or does not answer.
    Ping {
        /// How long to wait for answers.
        #[command(flatten)]
        wait: ReplyWait,
    },
    /// Cancel a job: workers drop its queued chunks and stop running ones at the next item boundary.
    ///
    /// The consumer then writes the items finished before the cancel and marks the job cancelled;
    /// `producer wait JOB` shows that summary. Running it again for a job still being cancelled (an
    /// earlier cancel was interrupted) finishes the cancel. Exit 1 if a worker is missing or does not
    /// answer (the job is cancelled all the same).
    Cancel {
        /// The job id `submit` or `broadcast` printed.
        job: JobId,
        /// How long to wait for answers.
        #[command(flatten)]
        wait: ReplyWait,
    },
    /// Stop workers gracefully, as SIGTERM does: they answer, finish their running chunks and exit.
    Shutdown {
        /// Only this worker (its id as `producer workers` lists it); every live worker without it.
        #[arg(long, value_name = "ID")]
        worker: Option<String>,
        /// How long to wait for answers.
        #[command(flatten)]
        wait: ReplyWait,
    },
}

/// How long a control command waits for the workers' answers.
#[derive(Debug, Clone, Copy, Args)]
pub struct ReplyWait {
    /// Seconds a live worker may take to answer before it is reported as alive but not answering. A
    /// worker whose heartbeats stop is reported missing as soon as its registry entry expires (6 s).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
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
        /// Wait for the new jobs and print their summaries. Exits 3 if any replayed item failed again
        /// (1 if a replay job failed or was cancelled), 0 only when every one succeeded.
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
    /// Blur a PNG in tiles, exactly (the seed's mix-and-match example); waits and writes --output.
    ///
    /// The producer publishes each tile, with a halo of its neighbours' pixels, as soon as its rows are
    /// decoded; workers blur tiles; the consumer writes the PNG band by band as tiles arrive; the
    /// producer then writes it to --output. The result is byte for byte the same Gaussian blur applied
    /// to the whole image in one process, whatever the tile size. With --passes K, each pass is a stage
    /// and a tile of the next pass starts as soon as it and its neighbours are done.
    ImageBlur(ImageBlurArgs),
    /// Any other kind a worker serves (yours, or an --exec program): KIND --items-file F | --items JSON.
    #[command(external_subcommand)]
    Other(Vec<String>),
}

/// Data of a job of any kind, as JSON items: `submit KIND --items-file items.jsonl` or
/// `submit KIND --items '[1, 2]'`. The kind's worker decodes each item into its input type; an item
/// that does not fit fails alone, with the reason in its output line.
#[derive(Debug, Parser)]
#[command(name = "producer submit", no_binary_name = true)]
pub struct JsonJobArgs {
    /// The kind's name, as `producer kinds` lists it.
    #[arg(value_parser = parse_kind)]
    pub kind: String,
    /// A file of items, one JSON value per line ('-' for stdin). Blank lines are skipped.
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "items",
        conflicts_with = "items"
    )]
    pub items_file: Option<std::path::PathBuf>,
    /// The items as one JSON array, for example '[1, 2, 3]' or '[{"path": "a.png"}]'.
    #[arg(long, value_name = "JSON", allow_hyphen_values = true)]
    pub items: Option<String>,
    /// Chunking and waiting.
    #[command(flatten)]
    pub options: SubmitOptions,
}

fn parse_kind(raw: &str) -> Result<String, String> {
    taskq_common::task::validate_kind_name(raw).map(|()| raw.to_owned())
}

/// An `image-blur` job.
#[derive(Debug, Args)]
pub struct ImageBlurArgs {
    /// The PNG to blur: RGB or RGBA (grey too), 8 or 16 bits per sample, not interlaced.
    #[arg(long, value_name = "PATH")]
    pub input: std::path::PathBuf,
    /// Where to write the blurred PNG (replaced whole once the job completes).
    #[arg(long, value_name = "PATH")]
    pub output: std::path::PathBuf,
    /// The Gaussian's standard deviation in pixels, above 0 and at most 50; each tile travels with a
    /// halo of ceil(3 sigma) pixels.
    #[arg(long)]
    pub sigma: f32,
    /// Tile size in pixels: T for T x T, or WxH (like 4096x1 for one pixel row).
    #[arg(long, default_value = "256", value_name = "T|WxH")]
    pub tile: taskq_image::TileSize,
    /// Blur this many times, each pass a stage of the job.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub passes: u32,
    /// Enqueue even if no live worker serves image-blur (the tiles wait in its queue).
    #[arg(long)]
    pub allow_unserved: bool,
    /// Give up waiting after this many seconds (exit 1); the job itself goes on.
    #[arg(long)]
    pub timeout: Option<u64>,
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
#[derive(Debug, Clone, Args)]
pub struct SubmitOptions {
    /// Items per message [default: the kind's own, as its workers declare it (1 for sum-squares, 1000
    /// for square, 1 for download); 1 for a kind no worker declared yet].
    #[arg(long)]
    pub chunk_size: Option<ChunkSize>,
    /// Enqueue even if no live worker serves the kind: the chunks wait in the kind's queue (visible in
    /// the management UI) until a worker that serves it starts. Without it, such a submit fails (exit 2)
    /// and names the kinds that are served.
    #[arg(long)]
    pub allow_unserved: bool,
    /// Wait for the job: progress bar on stderr, JSON summary on stdout.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this many seconds (exit 1); the job itself goes on.
    #[arg(long, requires = "wait")]
    pub timeout: Option<u64>,
    /// Run the outputs through another kind as a next stage (repeat for more): each chunk's outputs
    /// become the next stage's items as soon as the chunk finishes, with no barrier between stages.
    #[arg(long, value_name = "KIND", value_parser = parse_kind, conflicts_with = "spec")]
    pub then: Vec<String>,
    /// A job spec (TOML) naming the stages, their kinds, edges (map, flat-map, reduce), chunk size and
    /// caps; its first stage must be the kind submitted. See README "Stages".
    #[arg(long, value_name = "PATH")]
    pub spec: Option<std::path::PathBuf>,
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

    #[test]
    fn control_commands_parse() {
        let cli = Cli::try_parse_from(["producer", "shutdown", "--worker", "w2"]).unwrap();
        let Command::Shutdown { worker, wait } = cli.command else {
            panic!("shutdown")
        };
        assert_eq!((worker.as_deref(), wait.timeout), (Some("w2"), 15));
        let error = Cli::try_parse_from(["producer", "ping", "--timeout", "0"]).unwrap_err();
        assert!(error.to_string().contains("0"), "{error}");
        let cli = Cli::try_parse_from(["producer", "broadcast", "square", "--values", "1..=3"]);
        assert!(matches!(
            cli.unwrap().command,
            Command::Broadcast {
                job: SubmitJob::Square(_)
            }
        ));
    }
}
