//! The job store's one shared connection, whichever form `REDIS_URL` takes: a plain `redis://` URL gets
//! the redis crate's connection manager (it reconnects to the same address), a `redis+sentinel://` URL
//! a connection that follows the master through failovers ([`super::failover`]). Cheap to clone;
//! clones share the connection. Everything that talks to Redis (job state, registry, broadcast, cancel,
//! stages) sends through it.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use super::failover::{Failover, Resend, Suspicion};
use super::retry;
use super::sentinel_url::{is_sentinel_url, SentinelUrl};
use super::StoreError;
use crate::config::redact_url;

/// The job store's connection.
#[derive(Clone)]
pub struct StoreConnection {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Plain {
        manager: ConnectionManager,
        client: redis::Client,
    },
    Sentinel(Arc<Failover>),
}

/// How long a reply may take: long enough for a `WAIT` of the whole deadline.
pub(crate) fn response_timeout() -> Duration {
    Duration::from_secs(10).max(crate::deadline::limit() + Duration::from_secs(5))
}

impl StoreConnection {
    /// Connects to `url` (either form) and checks the server answers, each step within the deadline.
    pub(crate) async fn open(url: &str) -> Result<Self, StoreError> {
        let unreachable = |reason: String| StoreError::Unreachable {
            url: redact_url(url),
            reason,
        };
        let limit = crate::deadline::limit();
        let no_answer = || {
            unreachable(format!(
                "no answer within {limit:?} (--connect-timeout): the port accepts but does not answer as Redis"
            ))
        };
        let inner = if is_sentinel_url(url) {
            let parsed = SentinelUrl::parse(url)?;
            let failover = Failover::connect(parsed)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            Inner::Sentinel(Arc::new(failover))
        } else {
            let client = redis::Client::open(url).map_err(|e| unreachable(e.to_string()))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(limit))
                .set_response_timeout(Some(response_timeout()))
                .set_number_of_retries(3);
            let manager =
                crate::deadline::within(limit, client.get_connection_manager_with_config(config))
                    .await
                    .ok_or_else(no_answer)?
                    .map_err(|e| unreachable(e.to_string()))?;
            Inner::Plain { manager, client }
        };
        let mut connection = Self { inner };
        crate::deadline::within(limit, redis::cmd("PING").query_async::<()>(&mut connection))
            .await
            .ok_or_else(no_answer)?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(connection)
    }

    /// True for a `redis+sentinel://` URL.
    pub(crate) fn follows_failovers(&self) -> bool {
        matches!(self.inner, Inner::Sentinel(_))
    }

    /// The generation of the connection commands go through now; it changes when the connection is
    /// replaced after a failover (always 0 for a plain URL, whose manager reconnects unseen).
    pub(crate) fn generation(&self) -> u64 {
        match &self.inner {
            Inner::Plain { .. } => 0,
            Inner::Sentinel(failover) => failover.generation(),
        }
    }

    /// Sends `command` once, on the connection of `generation` only: `None` if that connection was
    /// replaced since. Never sent again on another connection.
    pub(crate) async fn query_on<T: redis::FromRedisValue>(
        &self,
        generation: u64,
        command: &Pipeline,
    ) -> Option<RedisResult<T>> {
        match &self.inner {
            Inner::Plain { manager, .. } => Some(command.query_async(&mut manager.clone()).await),
            Inner::Sentinel(failover) => {
                let mut connection = failover.connection_of(generation)?;
                Some(command.query_async(&mut connection).await)
            }
        }
    }

    /// Tells a Sentinel-backed connection that too few replicas confirmed a write on `generation`, so it
    /// asks the sentinels whether another master took over (a master cut off from them keeps
    /// accepting writes that its successor never sees).
    pub(crate) async fn suspect_isolation(&self, generation: u64, cause: &redis::RedisError) {
        if let Inner::Sentinel(failover) = &self.inner {
            let _ = failover
                .replace(generation, Suspicion::Isolated, cause)
                .await;
        }
    }

    /// A new pub/sub connection to the master (for a Sentinel URL, the one the sentinels name now).
    pub(crate) async fn pubsub(&self) -> RedisResult<PubSub> {
        match &self.inner {
            Inner::Plain { client, .. } => client.get_async_pubsub().await,
            Inner::Sentinel(failover) => failover.master_client().await?.get_async_pubsub().await,
        }
    }
}

impl ConnectionLike for StoreConnection {
    fn req_packed_command<'a>(&'a mut self, command: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.inner {
            Inner::Plain { manager, .. } => manager.req_packed_command(command),
            Inner::Sentinel(failover) => {
                // A refused command did not run: any may be sent again.
                let resend = Resend {
                    after_refusal: true,
                    after_loss: retry::resend_safe(command),
                };
                Box::pin(failover.run(resend, move |mut connection| async move {
                    connection.req_packed_command(command).await
                }))
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.inner {
            Inner::Plain { manager, .. } => manager.req_packed_commands(pipeline, offset, count),
            Inner::Sentinel(failover) => {
                // A refused transaction ran none of its commands; a refused plain pipeline may have run
                // some before the server was demoted.
                let safe = retry::pipeline_resend_safe(pipeline);
                let resend = Resend {
                    after_refusal: pipeline.is_transaction() || safe,
                    after_loss: safe,
                };
                Box::pin(failover.run(resend, move |mut connection| async move {
                    connection
                        .req_packed_commands(pipeline, offset, count)
                        .await
                }))
            }
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Plain { manager, .. } => manager.get_db(),
            Inner::Sentinel(failover) => failover.db(),
        }
    }
}
