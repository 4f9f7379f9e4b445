//! A connection to whichever server the sentinels name master now.
//!
//! A plain connection manager reconnects to the address it started with, which after a failover is a
//! replica (or nothing). This one asks the sentinels instead: when a command finds the master gone (see
//! [`super::retry`]), it asks them for the current master, waiting out a failover with a bounded backoff
//! ([`FAILOVER_WAIT`]), swaps its connection, and sends the command again where that is safe. One lookup
//! runs at a time; commands that fail meanwhile wait for its outcome instead of each asking again.
//!
//! Every connection gets a new generation number, so writes can be confirmed on the connection that
//! made them (see [`super::replication`]).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo,
    RedisError, RedisResult,
};

use super::retry::{self, Failure};
use super::sentinel_url::SentinelUrl;

/// How long a command waits for the sentinels to name a reachable master before it fails: a failover
/// takes the sentinels' `down-after-milliseconds` plus a few seconds.
pub const FAILOVER_WAIT: Duration = Duration::from_secs(30);

/// When a command that failed because the master went away is sent again to the next master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resend {
    /// After the server refused it (see [`super::retry::Failure::Refused`]).
    pub after_refusal: bool,
    /// After the connection failed with the command's outcome unknown.
    pub after_loss: bool,
}

/// Why the connection is being replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suspicion {
    /// The master refused a command or the connection failed: wait for the sentinels to name one.
    Gone,
    /// Too few replicas confirmed a write: the sentinels may have promoted another server while this
    /// one was cut off from them. Asked once; the connection changes only if they name another master.
    Isolated,
}

/// The connection to the current master, and how to find the next one.
pub(crate) struct Failover {
    url: SentinelUrl,
    node: SentinelNodeConnectionInfo,
    /// The sentinels; locked for one lookup at a time.
    sentinels: tokio::sync::Mutex<Sentinel>,
    /// Lookups started so far, so a command that waited for another's lookup does not start its own.
    lookups: AtomicU64,
    current: Mutex<Current>,
}

#[derive(Clone)]
struct Current {
    generation: u64,
    connection: MultiplexedConnection,
    client: Client,
    master: String,
}

impl Failover {
    /// Asks the sentinels of `url` for the master and connects to it (one attempt, within the deadline).
    pub(crate) async fn connect(url: SentinelUrl) -> RedisResult<Self> {
        let sentinels = url
            .sentinels
            .iter()
            .map(|(host, port)| sentinel_info(host, *port, url.sentinel_password.as_deref()))
            .collect::<RedisResult<Vec<_>>>()?;
        let mut sentinel = Sentinel::build(sentinels)?;
        let mut master = RedisConnectionInfo::default().set_db(url.db);
        if let Some(user) = &url.username {
            master = master.set_username(user);
        }
        if let Some(password) = &url.password {
            master = master.set_password(password);
        }
        let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(master);
        let current = find_master(&mut sentinel, &url.master, &node).await?;
        tracing::info!(master = %current.master, name = %url.master, "Redis master found through the sentinels");
        Ok(Self {
            url,
            node,
            sentinels: tokio::sync::Mutex::new(sentinel),
            lookups: AtomicU64::new(0),
            current: Mutex::new(current),
        })
    }

    fn current(&self) -> Current {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current connection's generation.
    pub(crate) fn generation(&self) -> u64 {
        self.current().generation
    }

    /// The connection of `generation`, if it is still the current one.
    pub(crate) fn connection_of(&self, generation: u64) -> Option<MultiplexedConnection> {
        let current = self.current();
        (current.generation == generation).then_some(current.connection)
    }

    /// A client for the master the sentinels name now (for pub/sub, which needs its own connection).
    pub(crate) async fn master_client(&self) -> RedisResult<Client> {
        let mut sentinel = self.sentinels.lock().await;
        Ok(find_master(&mut sentinel, &self.url.master, &self.node)
            .await?
            .client)
    }

    /// The database number on the master.
    pub(crate) fn db(&self) -> i64 {
        self.url.db
    }

    /// Sends a command with `send`; if the master is gone, finds the current one and sends it again as
    /// `resend` allows, for at most [`FAILOVER_WAIT`].
    pub(crate) async fn run<T, F, Fut>(&self, resend: Resend, mut send: F) -> RedisResult<T>
    where
        F: FnMut(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let started = Instant::now();
        let mut pauses = backoff();
        let mut sent = 0u32;
        loop {
            let Current {
                generation,
                connection,
                ..
            } = self.current();
            if sent > 1 {
                // Refused again by the master just found (one loading its data): a moment before the
                // next try, so it is not asked in a tight loop. The first resend goes at once.
                tokio::time::sleep(pauses.next().unwrap_or(Duration::from_secs(1))).await;
            }
            sent += 1;
            let error = match send(connection).await {
                Ok(reply) => return Ok(reply),
                Err(error) => error,
            };
            let failure = retry::classify(&error);
            let allowed = match failure {
                Failure::Refused => resend.after_refusal,
                Failure::Lost => resend.after_loss,
                Failure::Other => return Err(error),
            };
            if self
                .replace(generation, Suspicion::Gone, &error)
                .await
                .is_err()
                || !allowed
                || started.elapsed() >= FAILOVER_WAIT
            {
                return Err(error);
            }
        }
    }

    /// Replaces the connection of `generation` by one to the master the sentinels name, unless another
    /// command did so already. `cause` is what made the caller suspect the master, for the log.
    pub(crate) async fn replace(
        &self,
        generation: u64,
        suspicion: Suspicion,
        cause: &RedisError,
    ) -> RedisResult<()> {
        let lookups_before = self.lookups.load(Ordering::SeqCst);
        let mut sentinel = self.sentinels.lock().await;
        let old = self.current();
        if old.generation != generation {
            return Ok(());
        }
        if self.lookups.load(Ordering::SeqCst) != lookups_before {
            // Another command's lookup ended while this one waited, without a new master.
            return Err(no_master(&self.url.master, "the last lookup found none"));
        }
        if suspicion == Suspicion::Gone {
            tracing::warn!(master = %old.master, "Redis master lost ({cause}); asking the sentinels for the current one");
        }
        let started = Instant::now();
        let mut delays = backoff();
        loop {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let found = find_master(&mut sentinel, &self.url.master, &self.node).await;
            let error = match found {
                Ok(found) if suspicion == Suspicion::Isolated && found.master == old.master => {
                    return Ok(());
                }
                Ok(found) => {
                    self.swap(old, found, started);
                    return Ok(());
                }
                Err(error) => error,
            };
            let delay = delays.next().unwrap_or(Duration::from_secs(1));
            if suspicion == Suspicion::Isolated || started.elapsed() + delay > FAILOVER_WAIT {
                tracing::warn!(name = %self.url.master, "no Redis master found: {error}");
                return Err(error);
            }
            tracing::debug!(name = %self.url.master, retry_in = ?delay, "no Redis master yet: {error}");
            tokio::time::sleep(delay).await;
        }
    }

    fn swap(&self, old: Current, mut found: Current, started: Instant) {
        found.generation = old.generation + 1;
        let waited_ms = started.elapsed().as_millis() as u64;
        if found.master == old.master {
            tracing::info!(master = %found.master, waited_ms, "reconnected to the Redis master");
        } else {
            tracing::warn!(master = %found.master, previous = %old.master, waited_ms, "Redis master changed (failover)");
        }
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = found;
    }
}

/// Between lookups while a failover is under way: 100 ms doubling to 1 s, with jitter.
fn backoff() -> impl Iterator<Item = Duration> {
    crate::connect::backoff_between(Duration::from_millis(100), Duration::from_secs(1))
}

fn sentinel_info(
    host: &str,
    port: u16,
    password: Option<&str>,
) -> RedisResult<redis::ConnectionInfo> {
    let mut settings = RedisConnectionInfo::default();
    if let Some(password) = password {
        settings = settings.set_password(password);
    }
    Ok(ConnectionAddr::Tcp(host.to_owned(), port)
        .into_connection_info()?
        .set_redis_settings(settings))
}

fn no_master(name: &str, why: &str) -> RedisError {
    RedisError::from((
        redis::ErrorKind::MasterNameNotFoundBySentinel,
        "no Redis master",
        format!("the sentinels name no reachable master '{name}': {why}"),
    ))
}

/// Asks the sentinels for the master (they check it answers `ROLE` as master) and connects to it, each
/// step within the deadline.
async fn find_master(
    sentinel: &mut Sentinel,
    name: &str,
    node: &SentinelNodeConnectionInfo,
) -> RedisResult<Current> {
    let limit = crate::deadline::limit();
    let late = |step: &str| no_master(name, &format!("{step} took longer than {limit:?}"));
    let client = crate::deadline::within(limit, sentinel.async_master_for(name, Some(node)))
        .await
        .ok_or_else(|| late("asking the sentinels"))??;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(limit))
        .set_response_timeout(Some(super::connection::response_timeout()));
    let connection = crate::deadline::within(
        limit,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .ok_or_else(|| late("connecting to the master"))??;
    Ok(Current {
        generation: 0,
        connection,
        master: client.get_connection_info().addr().to_string(),
        client,
    })
}
