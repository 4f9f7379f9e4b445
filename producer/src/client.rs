//! The client API: submit jobs and follow them from a program, without spawning the producer CLI (which
//! uses it too). A long-lived client keeps its Redis and broker connections and remembers which kinds'
//! queues it declared, so a submit costs a few round trips.
//!
//! ```ignore
//! use taskq::{Client, Square};
//!
//! let client = Client::connect("amqp://guest:guest@127.0.0.1:5672/%2f", "redis://127.0.0.1:6379", "taskq").await?;
//! let job = client.submit::<Square>(&[1, 2, 3]).await?;
//! let state = job.wait().await?;              // or job.wait_with_progress()
//! let squares: Vec<i128> = outputs(&state)?;  // the outputs, in input order (jobs up to 1,000 items)
//! ```

use std::collections::HashSet;

use lapin::Connection;
use serde::de::DeserializeOwned;
use taskq_common::broker::{self, Publisher};
use taskq_common::job::{ChunkSize, JobId, JobState};
use taskq_common::registry::{Membership, Registry};
use taskq_common::stages::Plan;
use taskq_common::store::JobStore;
use taskq_common::task::Task;
use taskq_common::topology::{default_quorum_size, Topology};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

mod streamed;

pub(crate) use streamed::Streamed;

use crate::announcements::Announcements;
use crate::prepare::{self, Items, JobInput};
use crate::served::ServedKinds;
use crate::{broadcast, follow, submit, ProducerError};

/// How a job is submitted.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// Items per chunk; the kind's declared default when `None`.
    pub chunk_size: Option<ChunkSize>,
    /// Enqueue even if no live worker serves the kind (its chunks wait in the queue).
    pub allow_unserved: bool,
    /// Send every chunk to every live worker serving the kind; each runs its own share.
    pub broadcast: bool,
    /// Later stages: the job's outputs flow through them (the plan's first stage is the kind
    /// submitted). `None` for a job of one stage.
    pub plan: Option<Plan>,
}

/// A connection to one taskq deployment (broker, Redis, prefix) for submitting and following jobs.
pub struct Client {
    store: JobStore,
    amqp_url: String,
    broker: Mutex<Option<Broker>>,
    served: ServedKinds,
    announcements: Announcements,
}

/// The broker side of a client, opened on first use and again after a failure.
struct Broker {
    connection: Connection,
    publisher: Publisher,
    declared: HashSet<String>,
}

/// A submitted job.
pub struct Job<'a> {
    client: &'a Client,
    id: JobId,
}

impl Client {
    /// Connects to Redis and the broker (each attempt has a deadline) and declares the shared queues.
    /// Quorum queues it creates get one replica per node listed in `amqp_url`, at most 3
    /// ([`taskq_common::topology::default_quorum_size`]).
    pub async fn connect(
        amqp_url: &str,
        redis_url: &str,
        prefix: &str,
    ) -> Result<Self, ProducerError> {
        let topology = Topology::new(prefix).with_quorum_size(default_quorum_size(amqp_url));
        Self::connect_with(amqp_url, redis_url, topology).await
    }

    /// [`Client::connect`] with the names and replication factor of `topology` (for example
    /// [`taskq_common::config::ConnectionArgs::topology`], which applies `--quorum-size`).
    pub async fn connect_with(
        amqp_url: &str,
        redis_url: &str,
        topology: Topology,
    ) -> Result<Self, ProducerError> {
        let store = JobStore::connect(redis_url, topology).await?;
        let client = Self {
            announcements: Announcements::start(store.clone()),
            store,
            amqp_url: amqp_url.to_owned(),
            broker: Mutex::new(None),
            served: ServedKinds::default(),
        };
        client.open_broker(&mut *client.broker.lock().await).await?;
        Ok(client)
    }

    /// The client's job store (job state, the registry).
    pub fn store(&self) -> &JobStore {
        &self.store
    }

    /// Submits `items` as a job of the task kind `T`, with the kind's default chunk size.
    pub async fn submit<T: Task>(&self, items: &[T::Input]) -> Result<Job<'_>, ProducerError> {
        self.submit_with::<T>(items, &JobOptions::default()).await
    }

    /// Submits `items` as a job of the task kind `T`.
    pub async fn submit_with<T: Task>(
        &self,
        items: &[T::Input],
        options: &JobOptions,
    ) -> Result<Job<'_>, ProducerError> {
        let json = items
            .iter()
            .map(serde_json::value::to_raw_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| {
                ProducerError::Input(format!("an item does not encode as JSON: {error}"))
            })?;
        let input = JobInput {
            kind: T::NAME.to_owned(),
            items: Items::Json(json),
        };
        self.submit_input(&input, options, &CancellationToken::new())
            .await
    }

    /// Submits validated input of any kind; `shutdown` interrupts publishing (the job is then marked
    /// failed).
    pub async fn submit_input(
        &self,
        input: &JobInput,
        options: &JobOptions,
        shutdown: &CancellationToken,
    ) -> Result<Job<'_>, ProducerError> {
        if input.items.is_empty() {
            return Err(ProducerError::Input("a job needs at least one item".into()));
        }
        let (membership, declared_chunk_size) = self.served(&input.kind, options).await?;
        let stages = options.plan.as_ref().map(Plan::stages).unwrap_or_default();
        if options.broadcast && !stages.is_empty() {
            return Err(ProducerError::Input(
                "a broadcast job has one stage: submit it without --then or --spec".into(),
            ));
        }
        for stage in stages.iter().skip(1) {
            self.served(&stage.kind, options).await?;
        }
        if let Some(plan) = &options.plan {
            self.check_neighbours(plan).await?;
        }
        let planned_chunk_size = stages.first().and_then(|stage| stage.chunk_size);
        let per_chunk = match (options.chunk_size, planned_chunk_size) {
            (Some(size), _) => size.get(),
            (None, Some(size)) => size as usize,
            (None, None) => declared_chunk_size.unwrap_or(1) as usize,
        };
        let mut prepared = prepare::build(input, per_chunk, self.store.topology());
        if let Some(plan) = &options.plan {
            prepared = prepared.with_plan(plan.clone());
        }
        if options.broadcast {
            broadcast::validate(&prepared).map_err(ProducerError::Input)?;
        }
        let mut broker = self.broker.lock().await;
        for stage in stages.iter().skip(1) {
            self.declared(&mut broker, &stage.kind).await?;
        }
        let opened = self.declared(&mut broker, &input.kind).await?;
        let (store, publisher) = (&self.store, &opened.publisher);
        let published = if let (true, Some(membership)) = (options.broadcast, &membership) {
            broadcast::publish(publisher, store, membership, prepared, shutdown).await
        } else {
            submit::publish(publisher, store, prepared, shutdown).await
        };
        forget_on_failure(&mut broker, &published);
        Ok(self.job(published?))
    }

    /// Checks that `kind` is served (unless `--allow-unserved`, or for a broadcast, which needs live
    /// members and says so itself) and finds its declared chunk size. Returns the registry as read, or
    /// `None` when the kind was seen served a moment ago (not for a broadcast, which needs its members).
    async fn served(
        &self,
        kind: &str,
        options: &JobOptions,
    ) -> Result<(Option<Membership>, Option<u32>), ProducerError> {
        if !options.broadcast {
            if let Some(chunk_size) = self.served.recent(kind) {
                return Ok((None, chunk_size));
            }
        }
        let registry = Registry::new(&self.store);
        let membership = registry.membership().await?;
        if !options.broadcast {
            check_served(&membership, kind, options.allow_unserved)?;
        }
        let chunk_size = registry.kind(kind).await?.and_then(|info| info.chunk_size);
        if membership.serving(kind).next().is_some() {
            self.served.remember(kind, chunk_size);
        }
        Ok((Some(membership), chunk_size))
    }

    /// Refuses a `neighbours` edge into a kind whose workers did not declare it takes one.
    async fn check_neighbours(&self, plan: &Plan) -> Result<(), ProducerError> {
        let registry = Registry::new(&self.store);
        for (number, stage) in plan.stages().iter().enumerate() {
            if stage.edge != Some(taskq_common::stages::Edge::Neighbours) {
                continue;
            }
            let declared = registry.kind(&stage.kind).await?;
            if declared.is_some_and(|info| !info.neighbours) {
                return Err(ProducerError::Input(format!(
                    "stage {number} takes its input by a neighbours edge, but kind '{}' has no notion of neighbours: its workers do not declare it (`TaskOptions::neighbours`); use map, flat-map or reduce",
                    stage.kind
                )));
            }
        }
        Ok(())
    }

    /// Publishes a job built already (a dead-letter replay), declaring its kind's queue first.
    pub async fn publish_prepared(
        &self,
        prepared: prepare::Prepared,
        shutdown: &CancellationToken,
    ) -> Result<JobId, ProducerError> {
        let mut broker = self.broker.lock().await;
        let opened = self.declared(&mut broker, &prepared.spec.kind).await?;
        let published = submit::publish(&opened.publisher, &self.store, prepared, shutdown).await;
        forget_on_failure(&mut broker, &published);
        published
    }

    /// A job submitted earlier, by id.
    pub fn job(&self, id: JobId) -> Job<'_> {
        Job { client: self, id }
    }

    /// Closes the broker connection (Redis closes on drop).
    pub async fn close(self) {
        if let Some(broker) = self.broker.lock().await.take() {
            let _ = broker.connection.close(200, "client closed".into()).await;
        }
    }

    /// The open broker side, with `kind`'s queue declared.
    async fn declared<'b>(
        &self,
        broker: &'b mut Option<Broker>,
        kind: &str,
    ) -> Result<&'b mut Broker, ProducerError> {
        let opened = self.open_broker(broker).await?;
        if !opened.declared.contains(kind) {
            let connection = &opened.connection;
            self.store.topology().declare_kind(connection, kind).await?;
            opened.declared.insert(kind.to_owned());
        }
        Ok(opened)
    }

    async fn open_broker<'b>(
        &self,
        broker: &'b mut Option<Broker>,
    ) -> Result<&'b mut Broker, ProducerError> {
        if broker
            .as_ref()
            .is_some_and(|b| !b.connection.status().connected())
        {
            *broker = None;
        }
        if broker.is_none() {
            let connection = broker::connect(&self.amqp_url, "producer").await?;
            let publisher = Publisher::new(broker::open_channel(&connection).await?).await?;
            self.store.topology().declare(&connection).await?;
            *broker = Some(Broker {
                connection,
                publisher,
                declared: HashSet::new(),
            });
        }
        Ok(broker.as_mut().expect("opened above"))
    }
}

/// Drops a broker side that failed: the connection may be gone, and the next submit opens a new one.
fn forget_on_failure<T>(broker: &mut Option<Broker>, published: &Result<T, ProducerError>) {
    if let Err(ProducerError::Broker(_) | ProducerError::SubmitFailed { .. }) = published {
        *broker = None;
    }
}

/// Refuses a kind no running worker serves, naming those that are served, unless `allow_unserved`.
fn check_served(
    membership: &Membership,
    kind: &str,
    allow_unserved: bool,
) -> Result<(), ProducerError> {
    if allow_unserved || membership.serving(kind).next().is_some() {
        return Ok(());
    }
    Err(ProducerError::Unserved {
        kind: kind.to_owned(),
        served: membership.served_kinds(),
    })
}

impl Job<'_> {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The job's state now.
    pub async fn status(&self) -> Result<JobState, ProducerError> {
        Ok(self.client.store.require_job(self.id).await?)
    }

    /// Waits until the job completed, failed or was cancelled.
    pub async fn wait(&self) -> Result<JobState, ProducerError> {
        self.wait_showing(follow::Progress::Hidden).await
    }

    /// Waits like [`Job::wait`], drawing a progress bar on stderr when it is a terminal.
    pub async fn wait_with_progress(&self) -> Result<JobState, ProducerError> {
        self.wait_showing(follow::Progress::Bar).await
    }

    async fn wait_showing(&self, progress: follow::Progress) -> Result<JobState, ProducerError> {
        let never = CancellationToken::new();
        let announced = self.client.announcements.of(self.id);
        let store = &self.client.store;
        follow::wait_announced(store, self.id, None, progress, announced, &never).await
    }
}

/// The outputs of a completed job in input order, each its output or its error, for jobs small enough
/// to carry their results in the summary (at most 1,000 items; larger ones are in the consumer's output
/// file, whose path the summary gives).
pub fn outputs<O: DeserializeOwned>(
    state: &JobState,
) -> Result<Vec<Result<O, String>>, ProducerError> {
    let results = state
        .summary
        .as_ref()
        .and_then(|summary| summary["results"].as_array())
        .ok_or_else(|| {
            ProducerError::Input(format!(
                "job {} has no results in its summary: it is not completed, or has more than 1,000 items (read its output file)",
                state.spec.id
            ))
        })?;
    results
        .iter()
        .map(|line| match (line.get("output"), line.get("error")) {
            (_, Some(error)) => Ok(Err(error.as_str().unwrap_or_default().to_owned())),
            (Some(output), None) => {
                serde_json::from_value(output.clone())
                    .map(Ok)
                    .map_err(|error| {
                        ProducerError::Input(format!(
                            "an output does not fit the type asked for: {error}"
                        ))
                    })
            }
            (None, None) => Err(ProducerError::Input(
                "a result line has neither output nor error".into(),
            )),
        })
        .collect()
}
