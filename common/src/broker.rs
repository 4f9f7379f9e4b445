//! RabbitMQ: connecting, and publishing persistent messages that count only once the broker confirmed them.

use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::PublisherConfirm;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::config::redact_url;
use crate::deadline;
use crate::envelope::CONTENT_TYPE;

/// How often a nacked message is published again before the nack counts as a failure.
pub const NACK_RETRIES: u32 = 5;

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// What can go wrong talking to RabbitMQ.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Connecting failed or timed out.
    #[error("cannot reach RabbitMQ at {url}: {reason}. Start it (`scripts/services.sh`, or `docker compose up -d rabbitmq`), or point --amqp-url / AMQP_URL at a running broker")]
    Unreachable {
        /// The URL, password redacted.
        url: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// A step of reaching the broker (channel open, declare, consumer start) or a confirm took longer
    /// than its deadline: the peer accepts but does not answer in time.
    #[error("RabbitMQ did not answer {operation} within {limit:?} (--connect-timeout): the broker may be starting, overloaded, or not a broker at all")]
    TimedOut {
        /// The step.
        operation: &'static str,
        /// The deadline it had.
        limit: Duration,
    },
    /// A queue could not be declared, typically because it exists with other arguments.
    #[error("cannot declare queue '{queue}': {source}. If it exists with other settings from an older version, delete it in the management UI or use another --prefix")]
    Declare {
        /// The queue.
        queue: String,
        /// The broker's answer.
        source: lapin::Error,
    },
    /// The connection or channel failed after it was open.
    #[error("RabbitMQ connection failed during {operation}: {source}")]
    Channel {
        /// What was being done.
        operation: &'static str,
        /// The underlying error.
        source: lapin::Error,
    },
    /// The connection failed while nothing was waiting on it (noticed by [`crate::connection_watch`]).
    #[error("RabbitMQ connection lost: {reason}")]
    ConnectionLost {
        /// What lapin reported.
        reason: String,
    },
    /// The broker ended a consumer: the queue was deleted or the broker is going down.
    #[error(
        "RabbitMQ stopped delivering from '{queue}' (queue deleted, or the broker is restarting)"
    )]
    ConsumerEnded {
        /// The queue consumed.
        queue: String,
    },
    /// The broker nacked a message: it did not take responsibility for it (for example a quorum queue
    /// still electing its leader). Publishing again is safe and usually succeeds.
    #[error("RabbitMQ nacked a message for '{queue}' {NACK_RETRIES} times in a row: check the broker's health and logs")]
    Nacked {
        /// Where it was sent.
        queue: String,
    },
    /// The broker could not route a published message.
    #[error("RabbitMQ did not accept a message for '{queue}': {reason}")]
    NotConfirmed {
        /// Where it was sent.
        queue: String,
        /// Nack, or the return reason.
        reason: String,
    },
}

impl BrokerError {
    /// True when reconnecting may help: everything but a declaration the broker refused (arguments
    /// that differ, no permission). A declaration cut short by the connection (the broker restarting
    /// while a process starts) is an outage like any other, not a reason to stop.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Declare { source, .. } => !crate::declare::is_refusal(source),
            _ => true,
        }
    }

    /// Wraps a lapin error met during `operation`.
    pub fn channel(operation: &'static str) -> impl FnOnce(lapin::Error) -> Self {
        move |source| Self::Channel { operation, source }
    }
}

/// Runs one step of talking to the broker with the process's deadline ([`deadline::limit`]).
pub async fn within<T>(
    operation: &'static str,
    step: impl std::future::Future<Output = Result<T, BrokerError>>,
) -> Result<T, BrokerError> {
    let limit = deadline::limit();
    deadline::within(limit, step)
        .await
        .unwrap_or(Err(BrokerError::TimedOut { operation, limit }))
}

/// The nodes of an `AMQP_URL`: one URL, or several separated by commas, in the order given.
pub fn node_urls(urls: &str) -> Vec<&str> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect()
}

/// Opens a connection named `name` (shown in the management UI's connection list) to the first node of
/// `urls` (comma-separated) that answers, trying them in a random order so the clients of a cluster
/// spread over its nodes. Each attempt (TCP connect and AMQP handshake) has the process's deadline.
pub async fn connect(urls: &str, name: &str) -> Result<Connection, BrokerError> {
    use rand::seq::SliceRandom;
    let mut nodes = node_urls(urls);
    nodes.shuffle(&mut rand::rng());
    let mut failures = Vec::with_capacity(nodes.len());
    for url in &nodes {
        match connect_node(url, name).await {
            Ok(connection) => return Ok(connection),
            Err(reason) => failures.push((redact_url(url), reason)),
        }
    }
    Err(match failures.as_slice() {
        [(url, reason)] => BrokerError::Unreachable {
            url: url.clone(),
            reason: reason.clone(),
        },
        _ => BrokerError::Unreachable {
            url: failures
                .iter()
                .map(|(url, _)| url.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            reason: failures
                .iter()
                .map(|(url, reason)| format!("{url}: {reason}"))
                .collect::<Vec<_>>()
                .join("; "),
        },
    })
}

/// Connects to one node; the error says why not.
async fn connect_node(url: &str, name: &str) -> Result<Connection, String> {
    let properties = ConnectionProperties::default().with_connection_name(LongString::from(name));
    let limit = deadline::limit();
    match deadline::within(limit, Connection::connect(url, properties)).await {
        Some(Ok(connection)) => Ok(connection),
        Some(Err(error)) => Err(error.to_string()),
        None => Err(format!(
            "no AMQP handshake within {limit:?} (--connect-timeout): the port accepts but does not answer as a broker"
        )),
    }
}

/// Opens a channel on `connection`.
pub async fn open_channel(connection: &Connection) -> Result<Channel, BrokerError> {
    within("opening a channel", async {
        connection
            .create_channel()
            .await
            .map_err(BrokerError::channel("opening a channel"))
    })
    .await
}

/// An outgoing message: where it goes, its body, and the properties that identify it.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    /// The exchange; empty for the default exchange, which routes straight to the queue named `queue`.
    pub exchange: String,
    /// The queue, or with an `exchange`, the routing key.
    pub queue: String,
    /// The encoded message.
    pub body: Vec<u8>,
    /// AMQP `message-id`, for example `<job>/<chunk>`.
    pub message_id: String,
    /// AMQP `type`: the task kind.
    pub kind: String,
    /// Extra headers, such as the dead-letter reason.
    pub headers: Vec<(String, String)>,
    /// How long the message may wait in a queue before it expires (a retry delay).
    pub expiration: Option<Duration>,
}

impl Outgoing {
    fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        for (name, value) in &self.headers {
            headers.insert(
                ShortString::from(name.as_str()),
                AMQPValue::LongString(LongString::from(value.as_str())),
            );
        }
        let properties = BasicProperties::default()
            .with_content_type(ShortString::from(CONTENT_TYPE))
            .with_delivery_mode(PERSISTENT)
            .with_message_id(ShortString::from(self.message_id.as_str()))
            .with_type(ShortString::from(self.kind.as_str()))
            .with_timestamp(crate::job::now_ms() / 1000)
            .with_headers(headers);
        match self.expiration {
            Some(ttl) => properties.with_expiration(ShortString::from(ttl.as_millis().to_string())),
            None => properties,
        }
    }
}

/// A channel in confirm mode: every publish is done only once the broker confirmed it.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    /// Puts `channel` into confirm mode.
    pub async fn new(channel: Channel) -> Result<Self, BrokerError> {
        within("enabling publisher confirms", async {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(BrokerError::channel("enabling publisher confirms"))
        })
        .await?;
        Ok(Self { channel })
    }

    /// Sends a message and returns the pending confirmation without waiting for it.
    pub async fn send(&self, message: &Outgoing) -> Result<PendingConfirm, BrokerError> {
        let confirm = self
            .channel
            .basic_publish(
                ShortString::from(message.exchange.as_str()),
                ShortString::from(message.queue.as_str()),
                // Mandatory: a message no queue takes comes back instead of vanishing.
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &message.body,
                message.properties(),
            )
            .await
            .map_err(BrokerError::channel("publishing"))?;
        Ok(PendingConfirm {
            queue: message.queue.clone(),
            confirm,
        })
    }

    /// Sends a message and waits until the broker confirmed it.
    pub async fn publish(&self, message: &Outgoing) -> Result<(), BrokerError> {
        let pending = self.send(message).await?;
        self.confirmed_or_resent(pending, message).await
    }

    /// Waits for `pending`'s confirmation; if the broker nacked it, sends `message` again, with backoff,
    /// up to [`NACK_RETRIES`] times.
    async fn confirmed_or_resent(
        &self,
        mut pending: PendingConfirm,
        message: &Outgoing,
    ) -> Result<(), BrokerError> {
        let mut delay = Duration::from_millis(50);
        for _ in 0..NACK_RETRIES {
            match pending.confirmed().await {
                Err(BrokerError::Nacked { queue }) => {
                    tracing::debug!(%queue, retry_in = ?delay, "message nacked; publishing it again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                    pending = self.send(message).await?;
                }
                other => return other,
            }
        }
        pending.confirmed().await
    }

    /// Publishes every message with at most `window` unconfirmed at once, calling `on_confirmed` as
    /// confirmations arrive. Returns the first failure; messages already confirmed stay published.
    pub async fn publish_all<I>(
        &self,
        messages: I,
        window: usize,
        mut on_confirmed: impl FnMut(),
    ) -> Result<(), BrokerError>
    where
        I: IntoIterator<Item = Outgoing>,
    {
        let mut in_flight = FuturesUnordered::new();
        for message in messages {
            if in_flight.len() >= window.max(1) {
                if let Some(result) = in_flight.next().await {
                    result?;
                    on_confirmed();
                }
            }
            let pending = self.send(&message).await?;
            in_flight.push(async move { self.confirmed_or_resent(pending, &message).await });
        }
        while let Some(result) = in_flight.next().await {
            result?;
            on_confirmed();
        }
        Ok(())
    }

    /// The channel, for consuming or declaring on the same connection.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}

/// A published message whose confirmation has not been awaited yet.
pub struct PendingConfirm {
    queue: String,
    confirm: PublisherConfirm,
}

impl PendingConfirm {
    /// Waits for the broker's confirmation; a nack or a returned message is an error.
    pub async fn confirmed(self) -> Result<(), BrokerError> {
        let limit = deadline::confirm_limit();
        let confirmation = deadline::within(limit, self.confirm)
            .await
            .ok_or(BrokerError::TimedOut {
                operation: "confirming a published message",
                limit,
            })?
            .map_err(BrokerError::channel("waiting for a publisher confirm"))?;
        let not_confirmed = |reason: String| BrokerError::NotConfirmed {
            queue: self.queue.clone(),
            reason,
        };
        if confirmation.is_nack() {
            return Err(BrokerError::Nacked {
                queue: self.queue.clone(),
            });
        }
        match confirmation.take_message() {
            None => Ok(()),
            Some(returned) => Err(not_confirmed(format!(
                "returned {} {}: is the queue declared?",
                returned.reply_code, returned.reply_text
            ))),
        }
    }
}

/// Reads a string header from a delivery's properties.
pub fn header(properties: &BasicProperties, name: &str) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(value) => Some(value.to_string()),
        AMQPValue::ShortString(value) => Some(value.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// Opens a channel with `prefetch` unacknowledged deliveries at most and starts consuming `queue`.
pub async fn consume(
    connection: &Connection,
    queue: &str,
    prefetch: u16,
    consumer_tag: &str,
) -> Result<(Channel, lapin::Consumer), BrokerError> {
    use lapin::options::{BasicConsumeOptions, BasicQosOptions};
    let channel = open_channel(connection).await?;
    let consumer = within("starting to consume", async {
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(BrokerError::channel("setting the prefetch count"))?;
        channel
            .basic_consume(
                ShortString::from(queue),
                ShortString::from(consumer_tag),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(BrokerError::channel("starting to consume"))
    })
    .await?;
    Ok((channel, consumer))
}
