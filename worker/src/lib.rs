//! The worker: consumes the chunks of the task kinds it serves, runs CPU kinds on a local thread pool and
//! I/O kinds as bounded async tasks, publishes each chunk's result (confirmed by the broker) and only
//! then acknowledges the task.
//!
//! A worker of your own is [`Worker::builder()`] with your tasks registered (see [`builder`]); the stock
//! `worker` binary is that with the built-in [`tasks`] ([`stock`]).
//!
//! - [`builder`]: registering kinds and running a worker; [`kinds`]: the kinds served, each behind a
//!   chunk runner; [`exec`]: programs as kinds (`--exec`, `--exec-lines`).
//! - [`settings`]: the command line and validated settings.
//! - [`session`]: one connection: declare, consume every served kind's queue, stop gracefully.
//! - [`handler`]: what happens to one delivery.
//! - [`pool`]: the CPU thread pool.
//! - [`io_lane`]: the I/O lane's bounded concurrency; [`http`]: its HTTP client and limits.
//! - [`prefetch`]: adapting the prefetch to what chunks cost.
//! - [`tasks`]: the built-in kinds, written with the public task API.
//! - [`registration`]: this worker's entry in the registry, kept alive by heartbeats.
//! - [`broadcast_queue`]: this worker's queue of broadcast chunks and control commands; [`broadcast`]:
//!   broadcast jobs' chunks; [`shares`]: which broadcast chunks are this worker's; [`takeover`]: taking
//!   over the share of members that stopped; [`control`]: carrying out commands; [`cancel`]: stopping a
//!   cancelled job's running chunks.

pub(crate) mod broadcast;
pub(crate) mod broadcast_queue;
pub mod builder;
pub(crate) mod cancel;
pub(crate) mod control;
pub mod exec;
pub(crate) mod handler;
pub mod http;
pub(crate) mod io_lane;
pub(crate) mod kinds;
pub(crate) mod pool;
pub(crate) mod prefetch;
pub(crate) mod registration;
pub(crate) mod results;
pub(crate) mod session;
pub mod settings;
pub(crate) mod shares;
pub(crate) mod stages;
pub mod stock;
pub(crate) mod takeover;
pub mod tasks;

use std::sync::Arc;

use taskq_common::broker::BrokerError;
use taskq_common::connect;
use taskq_common::registry::{Registry, ENTRY_TTL};
use tokio_util::sync::CancellationToken;

use crate::broadcast::Broadcast;
use crate::cancel::Cancellations;
use crate::registration::Registration;

pub use crate::builder::{Worker, WorkerBuilder};
pub use crate::settings::{Settings, WorkerArgs};

use crate::http::ClientError;
use crate::io_lane::IoLane;
use crate::kinds::Kinds;
use crate::pool::CpuPool;
use crate::session::{Session, Shared};

/// Why the worker stopped other than by request.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The thread pool could not be created.
    #[error("cannot start {threads} CPU threads: {source}. Lower --cpu-threads")]
    Pool {
        /// Threads asked for.
        threads: usize,
        /// Why it failed.
        source: rayon::ThreadPoolBuildError,
    },
    /// The HTTP client for downloads could not be built.
    #[error(transparent)]
    Http(#[from] ClientError),
    /// The broker refused something reconnecting cannot fix.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// A registered kind is invalid, or there is none.
    #[error("{0}")]
    Kinds(String),
}

/// Serves `kinds` until `shutdown` fires, reconnecting with backoff whenever the broker goes away.
async fn serve(
    kinds: Arc<Kinds>,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    settings.connection.apply();
    let pool = CpuPool::new(settings.cpu_threads, shutdown.clone()).map_err(|source| {
        WorkerError::Pool {
            threads: settings.cpu_threads,
            source,
        }
    })?;
    let pool = std::sync::Arc::new(pool);
    let io = std::sync::Arc::new(IoLane::new(usize::from(settings.io_concurrency)));
    tracing::info!(
        worker = %settings.worker_id,
        kinds = %kinds.names().join(","),
        cpu_threads = pool.threads(),
        prefetch = ?settings.prefetch,
        io_concurrency = io.concurrency(),
        "worker starting"
    );
    let Some(store) = connect::store_until_up(&settings.connection, &shutdown).await else {
        return Ok(());
    };
    let cancels = Arc::new(Cancellations::default());
    let registration = Arc::new(Registration::new(
        &settings,
        &kinds,
        Registry::new(&store),
        pool.clone(),
        io.clone(),
        cancels.clone(),
    ));
    let broadcast = Arc::new(Broadcast::new(
        registration.clone(),
        store.clone(),
        cancels,
        shutdown.clone(),
        // Missing for a whole entry lifetime, not one heartbeat: a heartbeat lost while Redis restarts
        // must not make a live member count as stopped.
        ENTRY_TTL,
    ));
    let finished = CancellationToken::new();
    let heartbeats = tokio::spawn({
        let (ready, stopping, finished) = (
            broadcast.ready.subscribe(),
            shutdown.clone(),
            finished.clone(),
        );
        async move { registration.run(ready, stopping, finished).await }
    });
    let outcome = connect::run_sessions(
        &shutdown,
        || {
            let shared = Shared {
                kinds: kinds.clone(),
                pool: pool.clone(),
                io: io.clone(),
                store: store.clone(),
                broadcast: broadcast.clone(),
            };
            Session::open(&settings, shared)
        },
        |session| session.run(&shutdown),
    )
    .await;
    finished.cancel();
    let _ = heartbeats.await;
    outcome?;
    tracing::info!("worker stopped");
    Ok(())
}
