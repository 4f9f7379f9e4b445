//! One connection's life: open, declare the topology, consume the results queue and hand each delivery
//! to the handler until stopped or disconnected.

use std::sync::Arc;
use std::time::Duration;

use taskq_common::broker::{self, BrokerError, Publisher};
use taskq_common::connection_watch::ConnectionWatch;
use taskq_common::consume::Consuming;
use taskq_common::store::JobStore;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::handler;
use crate::settings::Settings;

/// An open connection that consumes results.
pub struct Session {
    consuming: Consuming,
    context: Arc<Context>,
    shutdown_timeout: Duration,
}

impl Session {
    /// Connects, declares every queue and starts consuming the results queue.
    pub async fn open(
        settings: &Settings,
        store: JobStore,
        consumer_id: &str,
    ) -> Result<Self, BrokerError> {
        let url = &settings.connection.amqp_url;
        let connection = broker::connect(url, &format!("consumer {consumer_id}")).await?;
        let topology = store.topology().clone();
        let publisher = Publisher::new(broker::open_channel(&connection).await?).await?;
        topology.declare(&connection).await?;
        let queue = topology.results_queue();
        let (channel, consumer) =
            broker::consume(&connection, &queue, settings.prefetch, consumer_id).await?;
        tracing::info!(%queue, output_dir = %settings.output_dir.display(), "consuming");
        let context = Arc::new(Context {
            store,
            publisher,
            output_dir: settings.output_dir.clone(),
            consumer_id: consumer_id.to_owned(),
            images: Default::default(),
        });
        Ok(Self {
            consuming: Consuming {
                watch: ConnectionWatch::new(&connection),
                connection: Some(connection),
                channel,
                consumer,
                queue,
            },
            context,
            shutdown_timeout: settings.shutdown_timeout,
        })
    }

    /// Handles deliveries until `shutdown` fires (`Ok`) or the connection fails (`Err`: reconnect).
    pub async fn run(self, shutdown: &CancellationToken) -> Result<(), BrokerError> {
        let context = self.context;
        self.consuming
            .run(
                shutdown,
                self.shutdown_timeout,
                futures::stream::pending(),
                |delivery| handler::handle(context.clone(), delivery),
            )
            .await
    }
}
