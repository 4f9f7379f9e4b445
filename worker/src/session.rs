//! One connection's life: open, declare the topology, consume the queue of every kind this worker serves
//! and its broadcast queue, and hand each delivery to the handler until stopped or disconnected.
//!
//! Each kind's queue has a consumer on a channel of its own. CPU kinds share the CPU lane: one result
//! publisher and the adaptive prefetch (every CPU kind's consumer follows it), while the thread pool's
//! permits bound how many of their chunks run. I/O kinds share the I/O lane: prefetch fixed at
//! `--io-concurrency`, async tasks. So a flood of slow downloads never holds CPU chunks back and busy
//! cores never hold downloads back. A further consumer takes this worker's broadcast queue (broadcast
//! chunks and control commands, see [`crate::broadcast`]), and beside it runs the takeover check of
//! broadcast jobs ([`crate::takeover`]). They share the connection (a connection costs about 8 MB of
//! memory, a channel next to nothing) and stop together: on shutdown, or when any fails; the connection
//! is closed once all have finished their in-flight chunks. After a requested stop, the worker deletes
//! its broadcast queue: it will not come back as the same member.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::QueueDeleteOptions;
use lapin::{Channel, Connection, Consumer};
use taskq_common::broker::{self, BrokerError, Publisher};
use taskq_common::connection_watch::ConnectionWatch;
use taskq_common::consume::Consuming;
use taskq_common::settle::Received;
use taskq_common::store::JobStore;
use taskq_common::task::Lane;
use taskq_common::topology::Topology;
use tokio_util::sync::CancellationToken;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};

use crate::broadcast::{Broadcast, BroadcastLane};
use crate::broadcast_queue;
use crate::cancel::Cancellations;
use crate::handler::{self, ChunkCost, Context};
use crate::io_lane::IoLane;
use crate::kinds::Kinds;
use crate::metrics;
use crate::pool::CpuPool;
use crate::prefetch::AdaptivePrefetch;
use crate::results::ResultPublisher;
use crate::settings::{Prefetch, Settings};

/// What outlives a connection: the kinds, where they run, and the broadcast lane's state.
#[derive(Clone)]
pub struct Shared {
    /// The kinds this worker serves.
    pub kinds: Arc<Kinds>,
    /// Where CPU chunks run.
    pub pool: Arc<CpuPool>,
    /// Where I/O chunks run.
    pub io: Arc<IoLane>,
    /// Job state.
    pub store: JobStore,
    /// Broadcast jobs' shares and what control commands act on.
    pub broadcast: Arc<Broadcast>,
}

/// An open connection that consumes every served kind's queue and the broadcast queue.
pub struct Session {
    connection: Connection,
    lanes: Vec<LaneSession>,
    broadcast_lane: Arc<BroadcastLane>,
    shutdown_timeout: Duration,
}

/// What handles one delivery of a lane.
type Handle = Box<dyn FnMut(Received) -> BoxFuture<'static, ()> + Send>;

/// One queue's consumer and its handler.
struct LaneSession {
    consuming: Consuming,
    handle: Handle,
    prefetch_changes: Option<BoxStream<'static, u16>>,
}

/// The handler of a task queue: every delivery goes to [`handler::handle`].
fn chunk_handler(context: Arc<Context>) -> Handle {
    Box::new(move |delivery| handler::handle(context.clone(), delivery).boxed())
}

/// What opening a session's consumers needs; builds handler contexts, each with a publisher channel of
/// its own.
struct Contexts<'a> {
    settings: &'a Settings,
    shared: &'a Shared,
    topology: Topology,
    cancels: Arc<Cancellations>,
}

impl Contexts<'_> {
    /// Declares every queue, this worker's broadcast queue included, and then consumes each served
    /// kind's, on channels of their own: CPU kinds share one result publisher and the adaptive prefetch,
    /// I/O kinds another publisher. Nothing is consumed before every declaration succeeded: a session
    /// that fails after its consumers started returns the chunks they hold, and each return counts
    /// against a chunk's delivery limit, so a declaration failing again and again (a cluster node that
    /// holds a queue is down) would dead-letter chunks that never ran.
    async fn kind_lanes(
        &self,
        connection: &Connection,
        watch: &ConnectionWatch,
    ) -> Result<Vec<LaneSession>, BrokerError> {
        let (settings, kinds) = (self.settings, &self.shared.kinds);
        let publisher = Publisher::new(broker::open_channel(connection).await?).await?;
        self.topology.declare(connection).await?;
        for kind in kinds.iter() {
            self.topology
                .declare_kind(connection, &kind.info.name)
                .await?;
        }
        let channel = publisher.channel();
        self.topology
            .declare_broadcast_queue(channel, &settings.worker_id)
            .await?;
        let (initial, costs, prefetch) =
            cpu_prefetch(settings.prefetch, self.shared.pool.threads());
        // Only the CPU lane's results wait for others. An I/O chunk holds one of the lane's few prefetch
        // slots (as many as downloads in flight) until acked, so a wait there costs download throughput
        // (1.12x the ideal became 1.19x at 5 ms), and downloads are never tiny.
        let cpu = self.new_context(publisher, costs, settings.result_batch_wait);
        let io_publisher = Publisher::new(broker::open_channel(connection).await?).await?;
        let io = self.new_context(io_publisher, None, Duration::ZERO);
        let mut lanes = Vec::new();
        for kind in kinds.iter() {
            let name = &kind.info.name;
            let queue = self.topology.task_queue(name);
            let tag = format!("{}-{name}", settings.worker_id);
            let (context, count, changes) = match kind.info.lane {
                Lane::Cpu => (&cpu, initial, prefetch.clone().map(changes)),
                Lane::Io => (&io, settings.io_concurrency, None),
            };
            let (channel, consumer) = broker::consume(connection, &queue, count, &tag).await?;
            tracing::info!(%queue, prefetch = count, lane = kind.info.lane.as_str(), "consuming");
            metrics::prefetch(kind.info.lane, count);
            let handle = chunk_handler(context.clone());
            lanes.push(LaneSession {
                prefetch_changes: changes,
                ..LaneSession::new(channel, consumer, queue, watch.clone(), handle)
            });
        }
        Ok(lanes)
    }

    /// Consumes this worker's broadcast queue (declared by [`Self::kind_lanes`]), without a prefetch
    /// limit: commands must never wait behind chunks (see [`crate::broadcast`]).
    async fn broadcast_lane(
        &self,
        connection: &Connection,
        watch: ConnectionWatch,
    ) -> Result<(LaneSession, Arc<BroadcastLane>), BrokerError> {
        let worker_id = &self.settings.worker_id;
        let publisher = Publisher::new(broker::open_channel(connection).await?).await?;
        let queue = self.topology.broadcast_queue(worker_id);
        let tag = format!("{worker_id}-broadcast");
        let (channel, consumer) = broker::consume(connection, &queue, 0, &tag).await?;
        tracing::info!(%queue, "receiving broadcasts and commands");
        let lane = Arc::new(BroadcastLane {
            broadcast: self.shared.broadcast.clone(),
            chunks: self.new_context(publisher, None, Duration::ZERO),
            queue: queue.clone(),
        });
        let handle_lane = lane.clone();
        let handle: Handle = Box::new(move |delivery| {
            broadcast_queue::handle(handle_lane.clone(), delivery).boxed()
        });
        let session = LaneSession::new(channel, consumer, queue, watch, handle);
        Ok((session, lane))
    }

    /// A context whose results wait up to `batch_wait` for others, and whose chunks report their cost
    /// to `costs`.
    fn new_context(
        &self,
        publisher: Publisher,
        costs: Option<mpsc::UnboundedSender<ChunkCost>>,
        batch_wait: Duration,
    ) -> Arc<Context> {
        let shared = self.shared;
        Arc::new(Context {
            results: ResultPublisher::new(
                publisher.clone(),
                self.topology.results_queue(),
                batch_wait,
            ),
            publisher,
            topology: self.topology.clone(),
            kinds: shared.kinds.clone(),
            pool: shared.pool.clone(),
            io: shared.io.clone(),
            worker_id: self.settings.worker_id.clone(),
            store: shared.store.clone(),
            max_retries: self.settings.max_retries,
            chunk_time_limit: self.settings.chunk_time_limit,
            costs,
            cancels: self.cancels.clone(),
        })
    }
}

impl Session {
    /// Connects, declares every queue and starts consuming each served kind's queue and the broadcast
    /// queue.
    pub async fn open(settings: &Settings, shared: Shared) -> Result<Self, BrokerError> {
        let url = &settings.connection.amqp_url;
        let name = format!("worker {}", settings.worker_id);
        let connection = broker::connect(url, &name).await?;
        let opening = Contexts {
            settings,
            shared: &shared,
            topology: shared.store.topology().clone(),
            cancels: shared.broadcast.cancels.clone(),
        };
        let watch = ConnectionWatch::new(&connection);
        let mut lanes = opening.kind_lanes(&connection, &watch).await?;
        let (broadcast, lane) = opening.broadcast_lane(&connection, watch).await?;
        lanes.push(broadcast);
        shared.broadcast.ready.send_replace(true);
        Ok(Self {
            connection,
            lanes,
            broadcast_lane: lane,
            shutdown_timeout: settings.shutdown_timeout,
        })
    }

    /// Handles every queue's deliveries until `shutdown` fires (`Ok`) or a connection fails (`Err`:
    /// reconnect). When one consumer fails, the others stop too (finishing their in-flight chunks), so
    /// the worker reconnects as a whole.
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
        let (outcomes, ()) = tokio::join!(
            futures::future::join_all(self.lanes.into_iter().map(run)),
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
        outcomes.into_iter().collect()
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

/// The CPU lane's first prefetch and, when adaptive, where chunks report their costs and the values
/// its consumers follow.
fn cpu_prefetch(
    setting: Prefetch,
    threads: usize,
) -> (
    u16,
    Option<mpsc::UnboundedSender<ChunkCost>>,
    Option<watch::Receiver<u16>>,
) {
    let initial = setting.initial(threads);
    match setting {
        Prefetch::Adaptive => {
            let controller = AdaptivePrefetch::new(threads, initial);
            let (costs, prefetch) = adaptive_prefetch(controller, initial);
            (initial, Some(costs), Some(prefetch))
        }
        Prefetch::Fixed(_) => (initial, None, None),
    }
}

/// The adaptive prefetch of the CPU lane: chunks report their costs to the sender; the controller turns
/// them into prefetch values that every CPU kind's consumer follows. Ends when the senders are gone.
fn adaptive_prefetch(
    mut controller: AdaptivePrefetch,
    initial: u16,
) -> (mpsc::UnboundedSender<ChunkCost>, watch::Receiver<u16>) {
    let (costs, mut reported) = mpsc::unbounded_channel::<ChunkCost>();
    let (set, prefetch) = watch::channel(initial);
    tokio::spawn(async move {
        while let Some(cost) = reported.recv().await {
            let now = std::time::Instant::now();
            if let Some(change) = controller.observe(cost.compute, cost.overhead, now) {
                metrics::prefetch(Lane::Cpu, change);
                set.send_replace(change);
            }
        }
    });
    (costs, prefetch)
}

/// Each new prefetch value, as a stream for one consumer.
fn changes(prefetch: watch::Receiver<u16>) -> BoxStream<'static, u16> {
    futures::stream::unfold(prefetch, |mut prefetch| async move {
        prefetch.changed().await.ok()?;
        let value = *prefetch.borrow_and_update();
        Some((value, prefetch))
    })
    .boxed()
}
