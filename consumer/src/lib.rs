//! The consumer: consumes chunk results, records each chunk once in Redis, and when a job's last chunk
//! arrives writes its output files and marks it completed.
//!
//! - [`settings`]: the command line and validated settings.
//! - [`session`]: one connection's life.
//! - [`handler`]: what happens to one result message; [`context`]: what handlers share, finishing a
//!   job and dead-lettering.
//! - [`cancelled`]: what happens to a cancelled job's notice.
//! - [`finalize`]: writing a finished job's files and summary.
//! - [`output`]: per-kind output lines and aggregates.
//! - [`orphans`]: failing broadcast jobs whose members all stopped (nobody else can finish them).

pub(crate) mod cancelled;
pub(crate) mod context;
pub(crate) mod finalize;
pub(crate) mod handler;
pub(crate) mod images;
pub(crate) mod orphans;
pub(crate) mod output;
pub(crate) mod session;
pub mod settings;

use taskq_common::broker::BrokerError;
use taskq_common::connect;
use tokio_util::sync::CancellationToken;

use crate::session::Session;
use crate::settings::Settings;

/// Why the consumer stopped other than by request.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The output directory cannot be created.
    #[error(
        "cannot create the output directory {path}: {source}. Choose another with --output-dir"
    )]
    OutputDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The broker refused something reconnecting cannot fix.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Runs the consumer until `shutdown` fires, reconnecting with backoff whenever a service goes away.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), ConsumerError> {
    settings.connection.apply();
    std::fs::create_dir_all(&settings.output_dir).map_err(|source| ConsumerError::OutputDir {
        path: settings.output_dir.display().to_string(),
        source,
    })?;
    let consumer_id = format!("consumer-{}", std::process::id());
    let Some(store) = connect::store_until_up(&settings.connection, &shutdown).await else {
        return Ok(());
    };
    // Needs Redis only, so it goes on while the broker is away.
    let stop_watch = shutdown.child_token();
    let watch = tokio::spawn(orphans::watch(store.clone(), stop_watch.clone()));
    let sessions = connect::run_sessions(
        &shutdown,
        || Session::open(&settings, store.clone(), &consumer_id),
        |session| session.run(&shutdown),
    )
    .await;
    stop_watch.cancel();
    let _ = watch.await;
    sessions?;
    tracing::info!("consumer stopped");
    Ok(())
}
