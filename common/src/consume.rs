//! The consuming loop both worker and consumer run: hand each delivery to a handler task, and on stop
//! cancel the consumer, let in-flight handlers finish (up to a deadline) and close the connection.

use std::future::Future;
use std::time::Duration;

use futures::stream::{SelectAll, Stream};
use futures::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::BrokerError;
use crate::connection_watch::ConnectionWatch;
use crate::settle::{Received, Settler};

/// A consumer of one queue, on its own channel.
pub struct Consuming {
    /// The connection, closed when the loop ends; `None` when several loops share one connection and
    /// its owner closes it once all of them have ended.
    pub connection: Option<Connection>,
    /// The channel the consumer is on.
    pub channel: Channel,
    /// The consumer.
    pub consumer: Consumer,
    /// The queue, for messages.
    pub queue: String,
    /// Ends the loop when the connection fails, even if the consumer's stream does not.
    pub watch: ConnectionWatch,
}

impl Consuming {
    /// Spawns `handle(delivery)` for each delivery (settled through one [`Settler`] per channel) until
    /// `shutdown` fires (`Ok`) or the connection fails (`Err`: the caller reconnects). On a stop, handlers
    /// already running get `drain_timeout` to finish. On a failed connection they are not waited for:
    /// they can no longer ack, the broker requeues their messages, and reconnecting at once is what keeps
    /// the worker from stalling.
    ///
    /// Each value from `prefetch_changes` becomes the new prefetch. RabbitMQ applies a prefetch only to
    /// consumers started after it is set, so a change starts a new consumer and cancels the old one, whose
    /// deliveries already on the way are still handled (delivery tags belong to the channel).
    pub async fn run<H, Fut, P>(
        self,
        shutdown: &CancellationToken,
        drain_timeout: Duration,
        mut prefetch_changes: P,
        mut handle: H,
    ) -> Result<(), BrokerError>
    where
        H: FnMut(Received) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
        P: Stream<Item = u16> + Unpin,
    {
        let base_tag = self.consumer.tag().to_string();
        let mut active_tag = self.consumer.tag();
        let mut consumers: SelectAll<Consumer> = SelectAll::new();
        consumers.push(self.consumer);
        let in_flight = TaskTracker::new();
        let settler = Settler::new(self.channel.clone());
        let mut generation = 0u32;
        let outcome = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                error = self.watch.lost() => break Err(error),
                next = consumers.next() => match next {
                    Some(Ok(delivery)) => {
                        in_flight.spawn(handle(settler.receive(delivery)));
                    }
                    Some(Err(source)) => break Err(BrokerError::channel("consuming")(source)),
                    None => break Err(BrokerError::ConsumerEnded { queue: self.queue.clone() }),
                },
                Some(prefetch) = prefetch_changes.next() => {
                    generation += 1;
                    let tag = format!("{base_tag}-{generation}");
                    match resubscribe(&self.channel, &self.queue, &tag, prefetch).await {
                        Ok(consumer) => {
                            consumers.push(consumer);
                            let old = std::mem::replace(&mut active_tag, tag.as_str().into());
                            if let Err(source) = self.channel.basic_cancel(old, BasicCancelOptions::default()).await {
                                break Err(BrokerError::channel("cancelling the previous consumer")(source));
                            }
                            tracing::info!(prefetch, "prefetch adapted to chunk costs");
                        }
                        Err(error) => break Err(error),
                    }
                }
            }
        };
        if outcome.is_ok() {
            // No new deliveries from here on; those already here finish or go back to the queue.
            if let Err(error) = self
                .channel
                .basic_cancel(active_tag, BasicCancelOptions::default())
                .await
            {
                tracing::warn!("cancelling the consumer failed: {error}");
            }
        }
        in_flight.close();
        if outcome.is_err() {
            if !in_flight.is_empty() {
                tracing::info!(
                    in_flight = in_flight.len(),
                    "connection lost with messages in flight; the broker returns them to the queue"
                );
            }
        } else if tokio::time::timeout(drain_timeout, in_flight.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                timeout = ?drain_timeout,
                "in-flight messages did not finish in time; the broker returns them to the queue"
            );
        }
        if let Some(connection) = &self.connection {
            let _ = connection.close(200, "stopping".into()).await;
        }
        outcome
    }
}

async fn resubscribe(
    channel: &Channel,
    queue: &str,
    tag: &str,
    prefetch: u16,
) -> Result<Consumer, BrokerError> {
    crate::broker::within("starting a consumer with the new prefetch", async {
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(BrokerError::channel("changing the prefetch count"))?;
        channel
            .basic_consume(
                queue.into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(BrokerError::channel(
                "starting a consumer with the new prefetch",
            ))
    })
    .await
}
