//! One connection's life: open, declare the topology, consume both lanes' task queues and hand each
//! delivery to the handler until stopped or disconnected.
//!
//! The two lanes are independent consumers, each on channels of its own (one to consume, one to publish
//! results) with its own prefetch: the CPU lane (`tasks.cpu`, adaptive prefetch, the thread pool) and the
//! I/O lane (`tasks.io`, prefetch fixed at `--io-concurrency`, async tasks). So a flood of slow downloads
//! never holds CPU chunks back and busy cores never hold downloads back. They share the connection (a
//! connection costs about 8 MB of memory, a channel next to nothing) and stop together: on shutdown, or
//! when either fails; the connection is closed once both have finished their in-flight chunks.

use std::sync::Arc;
use std::time::Duration;

use lapin::Connection;
use taskq_common::broker::{self, BrokerError, Publisher};
use taskq_common::connection_watch::ConnectionWatch;
use taskq_common::consume::Consuming;
use taskq_common::store::JobStore;
use taskq_common::tasks::Lane;
use tokio_util::sync::CancellationToken;

use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::handler::{self, ChunkCost, Context};
use crate::io_lane::IoLane;
use crate::pool::CpuPool;
use crate::prefetch::AdaptivePrefetch;
use crate::settings::Prefetch;
use crate::settings::Settings;

/// An open connection that consumes both lanes' tasks.
pub struct Session {
    connection: Connection,
    cpu: LaneSession,
    io: LaneSession,
    shutdown_timeout: Duration,
}

/// One lane's consumer and what its handlers share.
struct LaneSession {
    consuming: Consuming,
    context: Arc<Context>,
    prefetch_changes: Option<BoxStream<'static, u16>>,
}

impl Session {
    /// Connects, declares every queue and starts consuming both task queues.
    pub async fn open(
        settings: &Settings,
        pool: Arc<CpuPool>,
        io: Arc<IoLane>,
        store: JobStore,
    ) -> Result<Self, BrokerError> {
        let topology = store.topology().clone();
        let worker_id = &settings.worker_id;
        let context = |publisher, costs| {
            Arc::new(Context {
                publisher,
                topology: topology.clone(),
                pool: pool.clone(),
                io: io.clone(),
                worker_id: worker_id.clone(),
                store: store.clone(),
                test_kinds: settings.enable_test_kinds,
                max_retries: settings.max_retries,
                chunk_time_limit: settings.chunk_time_limit,
                costs,
            })
        };

        let url = &settings.connection.amqp_url;
        let connection = broker::connect(url, &format!("worker {worker_id}")).await?;
        let watch = ConnectionWatch::new(&connection);
        let publisher = Publisher::new(broker::open_channel(&connection).await?).await?;
        topology.declare(publisher.channel()).await?;
        let queue = topology.task_queue(Lane::Cpu);
        let prefetch = settings.prefetch.initial(pool.threads());
        let (channel, consumer) = broker::consume(&connection, &queue, prefetch, worker_id).await?;
        tracing::info!(%queue, prefetch, "consuming");
        let (costs, prefetch_changes) = match settings.prefetch {
            Prefetch::Adaptive => {
                let (sender, receiver) = mpsc::unbounded_channel();
                let controller = AdaptivePrefetch::new(pool.threads(), prefetch);
                (Some(sender), Some(prefetch_changes(controller, receiver)))
            }
            Prefetch::Fixed(_) => (None, None),
        };
        let cpu = LaneSession {
            consuming: Consuming {
                connection: None,
                channel,
                consumer,
                queue,
                watch: watch.clone(),
            },
            context: context(publisher, costs),
            prefetch_changes,
        };

        let publisher = Publisher::new(broker::open_channel(&connection).await?).await?;
        let queue = topology.task_queue(Lane::Io);
        let prefetch = settings.io_concurrency;
        let tag = format!("{worker_id}-io");
        let (channel, consumer) = broker::consume(&connection, &queue, prefetch, &tag).await?;
        tracing::info!(%queue, prefetch, "consuming");
        let io = LaneSession {
            consuming: Consuming {
                connection: None,
                channel,
                consumer,
                queue,
                watch,
            },
            context: context(publisher, None),
            prefetch_changes: None,
        };
        Ok(Self {
            connection,
            cpu,
            io,
            shutdown_timeout: settings.shutdown_timeout,
        })
    }

    /// Handles both lanes' deliveries until `shutdown` fires (`Ok`) or a connection fails (`Err`:
    /// reconnect). When one lane fails, the other stops too (finishing its in-flight chunks), so the
    /// worker reconnects as a whole.
    pub async fn run(self, shutdown: &CancellationToken) -> Result<(), BrokerError> {
        let stop = shutdown.child_token();
        let timeout = self.shutdown_timeout;
        let run = |lane: LaneSession| {
            let stop = &stop;
            async move {
                let outcome = lane.run(stop, timeout).await;
                stop.cancel();
                outcome
            }
        };
        let (cpu, io) = tokio::join!(run(self.cpu), run(self.io));
        let _ = self.connection.close(200, "stopping".into()).await;
        cpu.and(io)
    }
}

impl LaneSession {
    async fn run(self, stop: &CancellationToken, timeout: Duration) -> Result<(), BrokerError> {
        let context = self.context;
        let changes = self
            .prefetch_changes
            .unwrap_or_else(|| futures::stream::pending().boxed());
        self.consuming
            .run(stop, timeout, changes, |delivery| {
                handler::handle(context.clone(), delivery)
            })
            .await
    }
}

/// Turns reported chunk costs into prefetch changes.
fn prefetch_changes(
    mut controller: AdaptivePrefetch,
    costs: mpsc::UnboundedReceiver<ChunkCost>,
) -> BoxStream<'static, u16> {
    UnboundedReceiverStream::new(costs)
        .filter_map(move |cost| {
            let change = controller.observe(cost.compute, cost.overhead, std::time::Instant::now());
            futures::future::ready(change)
        })
        .boxed()
}
