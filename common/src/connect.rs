//! Start-up retry: workers and consumers often start before the broker (under compose, or after a reboot),
//! so they keep trying with exponential backoff, logging each attempt, until it works or they are stopped.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerError;
use crate::config::ConnectionArgs;
use crate::store::JobStore;
use crate::topology::Topology;

/// The backoff between attempts: 250 ms doubling to at most 10 s, with jitter, without end.
pub fn backoff() -> impl Iterator<Item = Duration> {
    backoff_between(Duration::from_millis(250), Duration::from_secs(10))
}

/// A backoff from `min` doubling to at most `max`, with jitter, without end.
pub fn backoff_between(min: Duration, max: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Calls `attempt` until it succeeds, sleeping with [`backoff`] between failures. Returns `None` if
/// `shutdown` fires first. `service` names what is being reached, for the log.
pub async fn until_up<T, E, F, Fut>(
    service: &str,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delays = backoff();
    for number in 1u64.. {
        let result = tokio::select! {
            result = attempt() => result,
            _ = shutdown.cancelled() => return None,
        };
        match result {
            Ok(value) => {
                if number > 1 {
                    tracing::info!(service, attempts = number, "connected");
                }
                return Some(value);
            }
            Err(error) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(10));
                tracing::warn!(service, attempt = number, retry_in = ?delay, "{error}");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
        }
    }
    None
}

/// Connects to the job store of `connection`, retrying until it answers; `None` if `shutdown` fires first.
pub async fn store_until_up(
    connection: &ConnectionArgs,
    shutdown: &CancellationToken,
) -> Option<JobStore> {
    let topology = Topology::new(connection.prefix.clone());
    until_up("Redis", shutdown, || {
        JobStore::connect(&connection.redis_url, topology.clone())
    })
    .await
}

/// Runs broker sessions until `shutdown` fires: opens one with `open` (retrying with backoff), runs it
/// with `run`, and opens a new one whenever it ends with a transient error (the broker went away).
/// Returns `Ok` after a requested stop, or the first error reconnecting cannot fix.
pub async fn run_sessions<S, Open, Opening, Run, Running>(
    shutdown: &CancellationToken,
    mut open: Open,
    mut run: Run,
) -> Result<(), BrokerError>
where
    Open: FnMut() -> Opening,
    Opening: Future<Output = Result<S, BrokerError>>,
    Run: FnMut(S) -> Running,
    Running: Future<Output = Result<(), BrokerError>>,
{
    loop {
        let Some(session) = until_up("RabbitMQ", shutdown, &mut open).await else {
            return Ok(());
        };
        match run(session).await {
            Ok(()) => return Ok(()),
            Err(error) if error.is_transient() => tracing::warn!("{error}; reconnecting"),
            Err(error) => return Err(error),
        }
    }
}
