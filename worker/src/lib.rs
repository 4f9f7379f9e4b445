//! The worker: consumes task chunks from two lanes, runs CPU chunks on a local thread pool and I/O chunks
//! (downloads) as bounded async tasks, publishes each chunk's result (confirmed by the broker) and only
//! then acknowledges the task.
//!
//! - [`settings`]: the command line and validated settings.
//! - [`session`]: the lanes' connections: declare, consume, handle deliveries, stop gracefully.
//! - [`handler`]: what happens to one delivery.
//! - [`pool`]: the CPU thread pool.
//! - [`io_lane`]: the I/O lane's bounded concurrency; [`http`]: its HTTP client and limits.
//! - [`prefetch`]: adapting the prefetch to what chunks cost.
//! - [`tasks`]: how each task kind runs.
//! - [`registration`]: this worker's entry in the registry, kept alive by heartbeats.
//! - [`broadcast`]: the broadcast queue (broadcast jobs, control commands); [`shares`]: which broadcast
//!   chunks are this worker's; [`takeover`]: taking over the share of members that stopped;
//!   [`control`]: carrying out commands; [`cancel`]: stopping a cancelled job's running chunks.

pub mod broadcast;
pub mod cancel;
pub mod control;
pub mod handler;
pub mod http;
pub mod io_lane;
pub mod pool;
pub mod prefetch;
pub mod registration;
pub mod results;
pub mod session;
pub mod settings;
pub mod shares;
pub mod takeover;
pub mod tasks;

use std::sync::Arc;

use taskq_common::broker::BrokerError;
use taskq_common::connect;
use taskq_common::registry::{Registry, ENTRY_TTL};
use tokio_util::sync::CancellationToken;

use crate::broadcast::Broadcast;
use crate::cancel::Cancellations;
use crate::registration::Registration;

use crate::http::{ClientError, HttpClient};
use crate::io_lane::IoLane;
use crate::pool::CpuPool;
use crate::session::Session;
use crate::settings::Settings;

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
}

/// Runs the worker until `shutdown` fires, reconnecting with backoff whenever the broker goes away.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let pool = CpuPool::new(settings.cpu_threads, shutdown.clone()).map_err(|source| {
        WorkerError::Pool {
            threads: settings.cpu_threads,
            source,
        }
    })?;
    let pool = std::sync::Arc::new(pool);
    let http = HttpClient::new(settings.http.clone())?;
    let io = std::sync::Arc::new(IoLane::new(http, usize::from(settings.io_concurrency)));
    tracing::info!(
        worker = %settings.worker_id,
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
            let broadcast = broadcast.clone();
            Session::open(
                &settings,
                pool.clone(),
                io.clone(),
                store.clone(),
                broadcast,
            )
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
