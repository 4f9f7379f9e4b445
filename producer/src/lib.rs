//! The producer: validates a job's input, records the job in Redis, publishes its chunks with pipelined
//! publisher confirms, and follows jobs to their result.
//!
//! - [`cli`]: the command line.
//! - [`input`], [`urls`], [`prepare`]: from what the user typed to task messages, before any connection.
//! - [`submit`]: recording and publishing a job, all or nothing.
//! - [`follow`]: `status` and `wait`.
//! - [`dlq`]: `dlq list | replay | purge`.

pub mod cli;
pub mod dlq;
pub mod follow;
pub mod input;
pub mod prepare;
pub mod submit;
pub mod urls;

use std::time::Duration;

use taskq_common::broker::BrokerError;
use taskq_common::job::{JobId, JobStatus};
use taskq_common::store::{JobStore, StoreError};
use taskq_common::topology::Topology;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, DlqAction};

/// Why a producer command did not succeed. [`ProducerError::exit_code`] maps each to the process exit code.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The input is invalid; nothing was sent.
    #[error("{0}")]
    Input(String),
    /// Redis failed or does not know the job.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// RabbitMQ failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
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
        source: BrokerError,
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
}

impl ProducerError {
    /// The process exit code: 2 for invalid input, 130 when interrupted, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Input(_) => 2,
            Self::SubmitInterrupted { .. } | Self::WaitInterrupted { .. } => 130,
            _ => 1,
        }
    }
}

/// Runs one producer command. Script output goes to stdout; progress and logs to stderr.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> Result<(), ProducerError> {
    let topology = Topology::new(cli.connection.prefix.clone());
    match cli.command {
        Command::Submit { job } => {
            let prepared = prepare::prepare(&job, &topology).map_err(ProducerError::Input)?;
            let options = prepare::options(&job);
            let store = JobStore::connect(&cli.connection.redis_url, topology).await?;
            let id = submit::submit(&cli.connection.amqp_url, &store, prepared, &shutdown).await?;
            if options.wait {
                wait_and_print(&store, id, options.timeout, &shutdown).await
            } else {
                println!("{id}");
                Ok(())
            }
        }
        Command::Status { job } => {
            let store = JobStore::connect(&cli.connection.redis_url, topology).await?;
            let state = store.require_job(job).await?;
            print_json(&follow::state_json(&state));
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
                    let store = JobStore::connect(&cli.connection.redis_url, topology).await?;
                    replay(
                        &cli.connection.amqp_url,
                        &store,
                        letters,
                        job,
                        wait,
                        &shutdown,
                    )
                    .await
                }
            }
        }
    }
}

async fn replay(
    amqp_url: &str,
    store: &JobStore,
    letters: dlq::DeadLetters,
    job: Option<JobId>,
    wait: bool,
    shutdown: &CancellationToken,
) -> Result<(), ProducerError> {
    let replays = dlq::replays(&letters, job, store.topology()).await?;
    let mut submitted = Vec::with_capacity(replays.len());
    for dlq::Replay {
        original,
        prepared,
        letters: taken,
    } in replays
    {
        let (chunks, items) = (prepared.spec.total_chunks, prepared.spec.total_items);
        let id = submit::submit(amqp_url, store, prepared, shutdown).await?;
        taken.acknowledge().await?;
        tracing::info!(%original, replay = %id, chunks, "dead chunks replayed as a new job");
        submitted.push((original, id, chunks, items));
    }
    dlq::finish(letters).await;
    let mut report = Vec::with_capacity(submitted.len());
    for (original, id, chunks, items) in submitted {
        let mut entry = serde_json::json!({
            "replay_of": original.to_string(),
            "job_id": id.to_string(),
            "chunks": chunks,
            "items": items,
        });
        if wait {
            let state = follow::wait(store, id, None, shutdown).await?;
            entry["summary"] = follow::state_json(&state);
        }
        report.push(entry);
    }
    print_json(&serde_json::Value::Array(report));
    Ok(())
}

async fn wait_and_print(
    store: &JobStore,
    job: JobId,
    timeout: Option<u64>,
    shutdown: &CancellationToken,
) -> Result<(), ProducerError> {
    let state = follow::wait(store, job, timeout.map(Duration::from_secs), shutdown).await?;
    print_json(&follow::state_json(&state));
    match state.status {
        JobStatus::Failed => Err(ProducerError::JobFailed {
            job,
            reason: state.error.unwrap_or_else(|| "no reason recorded".into()),
        }),
        _ => Ok(()),
    }
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}
