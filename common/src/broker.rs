//! RabbitMQ: connecting, and publishing persistent messages that count only once the broker confirmed them.

use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::PublisherConfirm;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::config::redact_url;
use crate::envelope::CONTENT_TYPE;

/// How long connecting may take before the broker counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// True when reconnecting may help (everything but a declaration conflict).
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Declare { .. })
    }

    /// Wraps a lapin error met during `operation`.
    pub fn channel(operation: &'static str) -> impl FnOnce(lapin::Error) -> Self {
        move |source| Self::Channel { operation, source }
    }
}

/// Opens a connection named `name` (shown in the management UI's connection list).
pub async fn connect(url: &str, name: &str) -> Result<Connection, BrokerError> {
    let properties = ConnectionProperties::default().with_connection_name(LongString::from(name));
    let unreachable = |reason: String| BrokerError::Unreachable {
        url: redact_url(url),
        reason,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(unreachable(error.to_string())),
        Err(_) => Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
}

/// Opens a channel on `connection`.
pub async fn open_channel(connection: &Connection) -> Result<Channel, BrokerError> {
    connection
        .create_channel()
        .await
        .map_err(BrokerError::channel("opening a channel"))
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
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(BrokerError::channel("enabling publisher confirms"))?;
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
        let confirmation = self
            .confirm
            .await
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
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(BrokerError::channel("setting the prefetch count"))?;
    let consumer = channel
        .basic_consume(
            ShortString::from(queue),
            ShortString::from(consumer_tag),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::channel("starting to consume"))?;
    Ok((channel, consumer))
}
