//! The producer: validates a job's input, records the job in Redis, publishes its chunks with pipelined
//! publisher confirms, and follows jobs to their result.
//!
//! - [`client`]: the client API (submit, status, wait from a program), which the CLI uses too;
//!   [`announcements`]: one subscription to every job's end for a long-lived client.
//! - [`cli`]: the command line.
//! - [`input`], [`urls`], [`items`], [`prepare`]: from what the user typed to task messages, before any
//!   connection.
//! - [`submit`]: recording and publishing a job, all or nothing; [`broadcast`]: the same for a job shared
//!   among the live workers that serve its kind.
//! - [`kinds`]: the kinds the workers declared and who serves them; [`served`]: what a long-lived client
//!   remembers of that between submits.
//! - [`follow`]: `status` and `wait`.
//! - [`dlq`]: `dlq list | replay | purge`.
//! - [`control`]: commands to every live worker and their answers; [`workers`]: the registry as JSON;
//!   [`cancel`]: cancelling a job.

pub(crate) mod announcements;
pub(crate) mod bars;
pub(crate) mod broadcast;
pub(crate) mod cancel;
pub mod cli;
pub mod client;
pub(crate) mod control;
pub(crate) mod dlq;
pub(crate) mod follow;
pub(crate) mod image;
pub(crate) mod input;
pub(crate) mod items;
pub(crate) mod kinds;
pub mod prepare;
pub(crate) mod served;
pub(crate) mod submit;
pub(crate) mod urls;
pub(crate) mod workers;

use std::time::Duration;

use taskq_common::broker::BrokerError;
use taskq_common::control::Command as ControlCommand;
use taskq_common::job::{JobId, JobStatus};
use taskq_common::registry::Registry;
use taskq_common::store::{JobStore, StoreError};
use taskq_common::topology::Topology;
use tokio_util::sync::CancellationToken;

pub use crate::client::{outputs, Client, Job, JobOptions};
pub use crate::prepare::{Items, JobInput};

use crate::cli::{Cli, Command, DlqAction, SubmitJob};
use crate::control::ControlPlane;
use crate::follow::Progress;

/// Why a producer command did not succeed. [`ProducerError::exit_code`] maps each to the process exit code.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The input is invalid; nothing was sent.
    #[error("{0}")]
    Input(String),
    /// Redis failed or does not know the job.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// RabbitMQ failed (boxed: the broker's errors are large, and every result carries this enum).
    #[error(transparent)]
    Broker(Box<BrokerError>),
    /// Publishing failed part-way; the job was marked failed so nothing waits for it.
    #[error("submitting job {job} failed after {published} of {total} chunks: {source}. The job is marked failed and workers drop its published chunks; submit it again")]
    SubmitFailed {
        /// The job.
        job: JobId,
        /// Chunks confirmed before the failure.
        published: u32,
        /// Chunks in the job.
        total: u32,
        /// What failed.
        source: Box<BrokerError>,
    },
    /// Interrupted while publishing; the job was marked failed.
    #[error("interrupted while submitting job {job}: it is marked failed and workers drop its published chunks")]
    SubmitInterrupted {
        /// The job.
        job: JobId,
    },
    /// The job ended failed.
    #[error("job {job} failed: {reason}")]
    JobFailed {
        /// The job.
        job: JobId,
        /// Why.
        reason: String,
    },
    /// `dlq replay --wait`: replayed items failed again (exit 3).
    #[error("{failed} replayed item(s) failed again, in job(s) {jobs}: their errors are in the summaries' output files; chunks that ran out of retries are back in the dead-letter queue (`producer dlq list`)")]
    ReplayFailedAgain {
        /// Items that failed again, over every replay job.
        failed: u64,
        /// The replay jobs with failed items, comma-separated.
        jobs: String,
    },
    /// `wait --timeout` ran out.
    #[error(
        "gave up waiting for job {job}; it goes on: `producer wait {job}` to keep following it"
    )]
    WaitTimeout {
        /// The job.
        job: JobId,
    },
    /// Interrupted while waiting; the job goes on.
    #[error(
        "stopped waiting for job {job}; it goes on: `producer wait {job}` to keep following it"
    )]
    WaitInterrupted {
        /// The job.
        job: JobId,
    },
    /// The job was cancelled.
    #[error("job {job} was cancelled: its output holds the items finished before the cancel")]
    JobCancelled {
        /// The job.
        job: JobId,
    },
    /// A broadcast job or a command found no live worker.
    #[error("no live worker is registered under prefix '{prefix}': start workers (same --prefix) and try again; `producer workers` lists the live ones")]
    NoWorkers {
        /// The prefix looked under.
        prefix: String,
    },
    /// No live worker serves the kind, and `--allow-unserved` was not given.
    #[error("no live worker serves task kind '{kind}' (served now: {}). Start a worker that serves it, check the name (`producer kinds` lists them), or, for `submit`, pass --allow-unserved to enqueue anyway: the chunks then wait in the kind's queue until such a worker starts", if served.is_empty() { "none".to_owned() } else { served.join(", ") })]
    Unserved {
        /// The kind.
        kind: String,
        /// The kinds some live worker serves.
        served: Vec<String>,
    },
    /// `shutdown --worker` named a worker that is not alive.
    #[error("worker '{worker}' is not a live worker under prefix '{prefix}': `producer workers` lists the live ones")]
    UnknownWorker {
        /// The id given.
        worker: String,
        /// The prefix looked under.
        prefix: String,
    },
    /// Some workers did not answer a command; stdout says who and why.
    #[error("{command}: {missing} worker(s) missing and {not_answering} alive but not answering (see the JSON on stdout)")]
    Unanswered {
        /// The command.
        command: &'static str,
        /// Workers whose heartbeats stopped.
        missing: usize,
        /// Workers heartbeating but silent.
        not_answering: usize,
    },
    /// Interrupted while waiting for answers.
    #[error("interrupted while waiting for answers to {command}")]
    ControlInterrupted {
        /// The command.
        command: &'static str,
    },
    /// The job cannot be cancelled any more.
    #[error("job {job} is already {status}: nothing to cancel")]
    NotCancellable {
        /// The job.
        job: JobId,
        /// Its status.
        status: &'static str,
    },
}

impl From<BrokerError> for ProducerError {
    fn from(error: BrokerError) -> Self {
        Self::Broker(Box::new(error))
    }
}

impl ProducerError {
    /// The process exit code: 2 for invalid input, 3 when replayed items failed again, 130 when
    /// interrupted, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Input(_) | Self::Unserved { .. } => 2,
            Self::ReplayFailedAgain { .. } => 3,
            Self::SubmitInterrupted { .. }
            | Self::WaitInterrupted { .. }
            | Self::ControlInterrupted { .. } => 130,
            _ => 1,
        }
    }
}

/// Runs one producer command. Script output goes to stdout; progress and logs to stderr.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> Result<(), ProducerError> {
    cli.connection.apply();
    let topology = Topology::new(cli.connection.prefix.clone());
    match cli.command {
        Command::Submit { job } => submit_job(&cli.connection, &job, false, &shutdown).await,
        Command::Broadcast { job } => submit_job(&cli.connection, &job, true, &shutdown).await,
        Command::Kinds => {
            let store = JobStore::connect(&cli.connection.redis_url, topology).await?;
            print_json(&kinds::kinds_json(&Registry::new(&store)).await?);
            Ok(())
        }
        Command::Workers => {
            let store = JobStore::connect(&cli.connection.redis_url, topology).await?;
            let membership = Registry::new(&store).membership().await?;
            eprintln!("{} live worker(s)", membership.live.len());
            print_json(&workers::membership_json(&membership));
            Ok(())
        }
        Command::Ping { wait } => {
            let store = JobStore::connect(&cli.connection.redis_url, topology).await?;
            let timeout = Duration::from_secs(wait.timeout);
            command(
                &cli.connection.amqp_url,
                &store,
                ControlCommand::Ping,
                timeout,
                &shutdown,
            )
            .await
        }
        Command::Shutdown { worker, wait } => {
            let store = JobStore::connect(&cli.connection.redis_url, topology).await?;
            if let Some(worker) = &worker {
                let membership = Registry::new(&store).membership().await?;
                if !membership.running().any(|info| &info.worker_id == worker) {
                    return Err(ProducerError::UnknownWorker {
                        worker: worker.clone(),
                        prefix: store.topology().prefix().to_owned(),
                    });
                }
            }
            let timeout = Duration::from_secs(wait.timeout);
            let shutdown_command = ControlCommand::Shutdown { worker };
            command(
                &cli.connection.amqp_url,
                &store,
                shutdown_command,
                timeout,
                &shutdown,
            )
            .await
        }
        Command::Cancel { job, wait } => {
            let store = JobStore::connect(&cli.connection.redis_url, topology).await?;
            let timeout = Duration::from_secs(wait.timeout);
            let report =
                cancel::cancel(&cli.connection.amqp_url, &store, job, timeout, &shutdown).await?;
            let mut json = report.to_json();
            json["job_id"] = job.to_string().into();
            print_json(&json);
            report.incomplete().map_or(Ok(()), Err)
        }
        Command::Status { job } => {
            let store = JobStore::connect(&cli.connection.redis_url, topology).await?;
            let state = store.require_job(job).await?;
            print_json(&follow::status_json(&store, &state).await?);
            Ok(())
        }
        Command::Wait { job, timeout } => {
            let store = JobStore::connect(&cli.connection.redis_url, topology).await?;
            wait_and_print(&store, job, timeout, &shutdown).await
        }
        Command::Dlq { action } => {
            let letters = dlq::DeadLetters::open(&cli.connection.amqp_url, &topology).await?;
            match action {
                DlqAction::List { job, limit } => {
                    print_json(&dlq::list(letters, job, limit).await?);
                    Ok(())
                }
                DlqAction::Purge { job } => {
                    let purged = dlq::purge(letters, job).await?;
                    print_json(&serde_json::json!({ "purged": purged }));
                    Ok(())
                }
                DlqAction::Replay { job, wait } => {
                    let client = connect(&cli.connection).await?;
                    replay(&client, letters, job, wait, &shutdown).await
                }
            }
        }
    }
}

async fn replay(
    client: &Client,
    letters: dlq::DeadLetters,
    job: Option<JobId>,
    wait: bool,
    shutdown: &CancellationToken,
) -> Result<(), ProducerError> {
    let store = client.store();
    let replays = dlq::replays(&letters, job, store.topology()).await?;
    let mut submitted = Vec::with_capacity(replays.len());
    for dlq::Replay {
        original,
        prepared,
        letters: taken,
    } in replays
    {
        let (chunks, items) = (prepared.spec.total_chunks, prepared.spec.total_items);
        let id = client.publish_prepared(prepared, shutdown).await?;
        taken.acknowledge().await?;
        tracing::info!(%original, replay = %id, chunks, "dead chunks replayed as a new job");
        submitted.push((original, id, chunks, items));
    }
    letters.close().await;
    let mut report = Vec::with_capacity(submitted.len());
    let mut ended = Vec::new();
    for (original, id, chunks, items) in submitted {
        let mut entry = serde_json::json!({
            "replay_of": original.to_string(),
            "job_id": id.to_string(),
            "chunks": chunks,
            "items": items,
        });
        if wait {
            let state = follow::wait(store, id, None, Progress::Bar, shutdown).await?;
            entry["summary"] = follow::state_json(&state);
            ended.push(state);
        }
        report.push(entry);
    }
    print_json(&serde_json::Value::Array(report));
    replay_outcome(&ended)
}

/// Ok when every replay job completed without failed items; else a failed or cancelled job (exit 1), or
/// the items that failed again (exit 3), so a script learns that the dead letters are not dealt with.
fn replay_outcome(ended: &[taskq_common::job::JobState]) -> Result<(), ProducerError> {
    ended.iter().try_for_each(job_outcome)?;
    let again: Vec<_> = ended.iter().filter(|s| s.items_failed > 0).collect();
    if again.is_empty() {
        return Ok(());
    }
    let jobs: Vec<String> = again.iter().map(|s| s.spec.id.to_string()).collect();
    Err(ProducerError::ReplayFailedAgain {
        failed: again.iter().map(|s| s.items_failed).sum(),
        jobs: jobs.join(", "),
    })
}

/// Validates, records and publishes a job (`broadcast`: to every live worker serving its kind), then
/// prints its id or, with `--wait`, its summary.
async fn submit_job(
    connection: &taskq_common::config::ConnectionArgs,
    job: &SubmitJob,
    broadcast: bool,
    shutdown: &CancellationToken,
) -> Result<(), ProducerError> {
    if let SubmitJob::ImageBlur(args) = job {
        if broadcast {
            return Err(ProducerError::Input(
                "an image is blurred by `producer submit image-blur`, not broadcast".into(),
            ));
        }
        return image::submit(connection, args, shutdown).await;
    }
    let (input, options) = prepare::parse(job).map_err(ProducerError::Input)?;
    let plan = prepare::plan(&input.kind, &options).map_err(ProducerError::Input)?;
    let client = connect(connection).await?;
    let job_options = JobOptions {
        chunk_size: options.chunk_size,
        allow_unserved: options.allow_unserved,
        broadcast,
        plan,
    };
    let id = client
        .submit_input(&input, &job_options, shutdown)
        .await?
        .id();
    let result = if options.wait {
        wait_and_print(client.store(), id, options.timeout, shutdown).await
    } else {
        println!("{id}");
        Ok(())
    };
    client.close().await;
    result
}

async fn connect(
    connection: &taskq_common::config::ConnectionArgs,
) -> Result<Client, ProducerError> {
    Client::connect(
        &connection.amqp_url,
        &connection.redis_url,
        &connection.prefix,
    )
    .await
}

/// Sends a command to every live worker it addresses and prints the report; exit 1 unless all answered.
async fn command(
    amqp_url: &str,
    store: &JobStore,
    command: ControlCommand,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<(), ProducerError> {
    let control = ControlPlane::connect(amqp_url, store).await?;
    let report = control.send(command, timeout, shutdown).await?;
    control.close().await;
    if report.asked() == 0 && report.is_complete() {
        return Err(ProducerError::NoWorkers {
            prefix: store.topology().prefix().to_owned(),
        });
    }
    print_json(&report.to_json());
    report.incomplete().map_or(Ok(()), Err)
}

async fn wait_and_print(
    store: &JobStore,
    job: JobId,
    timeout: Option<u64>,
    shutdown: &CancellationToken,
) -> Result<(), ProducerError> {
    let timeout = timeout.map(Duration::from_secs);
    let state = follow::wait(store, job, timeout, Progress::Bar, shutdown).await?;
    print_json(&follow::state_json(&state));
    job_outcome(&state)
}

/// Ok for a completed job; the failure or cancel as the error otherwise.
fn job_outcome(state: &taskq_common::job::JobState) -> Result<(), ProducerError> {
    let job = state.spec.id;
    match state.status {
        JobStatus::Failed => Err(ProducerError::JobFailed {
            job,
            reason: state
                .error
                .clone()
                .unwrap_or_else(|| "no reason recorded".into()),
        }),
        JobStatus::Cancelled => Err(ProducerError::JobCancelled { job }),
        _ => Ok(()),
    }
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}
