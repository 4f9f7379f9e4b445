//! One connection's life: open, declare the topology, consume both lanes' task queues and hand each
//! delivery to the handler until stopped or disconnected.
//!
//! The two lanes are independent consumers, each on channels of its own (one to consume, one to publish
//! results) with its own prefetch: the CPU lane (`tasks.cpu`, adaptive prefetch, the thread pool) and the
//! I/O lane (`tasks.io`, prefetch fixed at `--io-concurrency`, async tasks). So a flood of slow downloads
//! never holds CPU chunks back and busy cores never hold downloads back. A third consumer takes this
//! worker's broadcast queue (broadcast chunks and control commands, see [`crate::broadcast`]), and beside
//! it runs the takeover check of broadcast jobs ([`crate::takeover`]). They share the connection (a
//! connection costs about 8 MB of memory, a channel next to nothing) and stop together: on shutdown, or
//! when any fails; the connection is closed once all have finished their in-flight chunks. After a
//! requested stop, the worker deletes its broadcast queue: it will not come back as the same member.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::QueueDeleteOptions;
use lapin::{Channel, Connection, Consumer};
use taskq_common::broker::{self, BrokerError, Publisher};
use taskq_common::connection_watch::ConnectionWatch;
use taskq_common::consume::Consuming;
use taskq_common::settle::Received;
use taskq_common::store::JobStore;
use taskq_common::tasks::Lane;
use tokio_util::sync::CancellationToken;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::broadcast::{self, Broadcast, BroadcastLane};
use crate::handler::{self, ChunkCost, Context};
use crate::io_lane::IoLane;
use crate::pool::CpuPool;
use crate::prefetch::AdaptivePrefetch;
use crate::results::ResultPublisher;
use crate::settings::Prefetch;
use crate::settings::Settings;

/// An open connection that consumes both lanes' tasks and the broadcast queue.
pub struct Session {
    connection: Connection,
    cpu: LaneSession,
    io: LaneSession,
    broadcast: LaneSession,
    broadcast_lane: Arc<BroadcastLane>,
    shutdown_timeout: Duration,
}

/// What handles one delivery of a lane.
type Handle = Box<dyn FnMut(Received) -> BoxFuture<'static, ()> + Send>;

/// One lane's consumer and its handler.
struct LaneSession {
    consuming: Consuming,
    handle: Handle,
    prefetch_changes: Option<BoxStream<'static, u16>>,
}

/// The handler of a task lane: every delivery goes to [`handler::handle`].
fn chunk_handler(context: Arc<Context>) -> Handle {
    Box::new(move |delivery| handler::handle(context.clone(), delivery).boxed())
}

impl Session {
    /// Connects, declares every queue and starts consuming both task queues and the broadcast queue.
    pub async fn open(
        settings: &Settings,
        pool: Arc<CpuPool>,
        io: Arc<IoLane>,
        store: JobStore,
        broadcast: Arc<Broadcast>,
    ) -> Result<Self, BrokerError> {
        let topology = store.topology().clone();
        let worker_id = &settings.worker_id;
        // `batch_wait`: only the CPU lane's results wait for others. An I/O chunk holds one of the lane's
        // few prefetch slots (as many as downloads in flight) until acked, so a wait there costs
        // download throughput (1.12x the ideal became 1.19x at 5 ms), and downloads are never tiny.
        let context = |publisher: Publisher, costs, batch_wait| {
            Arc::new(Context {
                results: ResultPublisher::new(
                    publisher.clone(),
                    topology.results_queue(),
                    batch_wait,
                ),
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
                cancels: broadcast.cancels.clone(),
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
        let handle = chunk_handler(context(publisher, costs, settings.result_batch_wait));
        let cpu = LaneSession {
            prefetch_changes,
            ..LaneSession::new(channel, consumer, queue, watch.clone(), handle)
        };

        let publisher = Publisher::new(broker::open_channel(&connection).await?).await?;
        let queue = topology.task_queue(Lane::Io);
        let prefetch = settings.io_concurrency;
        let tag = format!("{worker_id}-io");
        let (channel, consumer) = broker::consume(&connection, &queue, prefetch, &tag).await?;
        tracing::info!(%queue, prefetch, "consuming");
        let handle = chunk_handler(context(publisher, None, Duration::ZERO));
        let io = LaneSession::new(channel, consumer, queue, watch.clone(), handle);

        let publisher = Publisher::new(broker::open_channel(&connection).await?).await?;
        let queue = topology
            .declare_broadcast_queue(publisher.channel(), worker_id)
            .await?;
        let tag = format!("{worker_id}-broadcast");
        // No prefetch limit: commands must never wait behind chunks (see crate::broadcast).
        let (channel, consumer) = broker::consume(&connection, &queue, 0, &tag).await?;
        tracing::info!(%queue, "receiving broadcasts and commands");
        let lane = Arc::new(BroadcastLane {
            broadcast: broadcast.clone(),
            chunks: context(publisher, None, Duration::ZERO),
            queue: queue.clone(),
        });
        let handle_lane = lane.clone();
        let handle: Handle =
            Box::new(move |delivery| broadcast::handle(handle_lane.clone(), delivery).boxed());
        let broadcast_session = LaneSession::new(channel, consumer, queue, watch, handle);
        broadcast.ready.send_replace(true);
        Ok(Self {
            connection,
            cpu,
            io,
            broadcast: broadcast_session,
            broadcast_lane: lane,
            shutdown_timeout: settings.shutdown_timeout,
        })
    }

    /// Handles every lane's deliveries until `shutdown` fires (`Ok`) or a connection fails (`Err`:
    /// reconnect). When one lane fails, the others stop too (finishing their in-flight chunks), so the
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
        let lane = self.broadcast_lane;
        let (cpu, io, broadcast, ()) = tokio::join!(
            run(self.cpu),
            run(self.io),
            run(self.broadcast),
            crate::takeover::run(&lane, &stop)
        );
        // Unreachable through the broker now: stop heartbeating until the next session.
        lane.broadcast.ready.send_replace(false);
        if shutdown.is_cancelled() {
            let options = QueueDeleteOptions::default();
            let channel = lane.chunks.publisher.channel();
            if let Err(error) = channel
                .queue_delete(lane.queue.as_str().into(), options)
                .await
            {
                tracing::warn!("could not delete the broadcast queue ({error}); it expires unused");
            }
        }
        let _ = self.connection.close(200, "stopping".into()).await;
        cpu.and(io).and(broadcast)
    }
}

impl LaneSession {
    /// A lane consuming `queue` on `channel`, its connection owned by the session, at a fixed prefetch.
    fn new(
        channel: Channel,
        consumer: Consumer,
        queue: String,
        watch: ConnectionWatch,
        handle: Handle,
    ) -> Self {
        Self {
            consuming: Consuming {
                connection: None,
                channel,
                consumer,
                queue,
                watch,
            },
            handle,
            prefetch_changes: None,
        }
    }

    async fn run(self, stop: &CancellationToken, timeout: Duration) -> Result<(), BrokerError> {
        let changes = self
            .prefetch_changes
            .unwrap_or_else(|| futures::stream::pending().boxed());
        self.consuming
            .run(stop, timeout, changes, self.handle)
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
