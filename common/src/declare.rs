//! Declaring queues, exchanges and bindings, on a channel of their own: a refused declaration closes its
//! channel, and it must not be one a publisher or consumer goes on using.
//!
//! One refusal is expected and survived: a quorum queue that exists with another replication factor
//! (`x-quorum-initial-group-size`) than this process asks for, because `--quorum-size` changed, the
//! broker grew into a cluster, or the queue comes from a version that did not set it. RabbitMQ compares
//! that argument when a queue is declared again and refuses a difference (PRECONDITION_FAILED), yet a
//! queue's members can only be changed by an operator (`rabbitmq-queues grow`), never by declaring it.
//! So the queue is kept as it is: checked to exist on a new channel, reported once per process with the
//! command that adds replicas, never a reason to stop.

use std::sync::atomic::{AtomicBool, Ordering};

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

use crate::broker::{self, BrokerError};

/// The queue argument that sets a quorum queue's replication factor when it is created.
pub const QUORUM_SIZE_ARG: &str = "x-quorum-initial-group-size";

/// Whether a queue kept with another replication factor was reported already in this process: once is
/// enough (every queue of a deployment has the same story, and a worker declares again on each reconnect).
static KEPT_MEMBERSHIP_REPORTED: AtomicBool = AtomicBool::new(false);

/// Declarations on a channel opened for them, replaced when a refusal closes it.
pub(crate) struct Declarer<'a> {
    connection: &'a Connection,
    channel: Channel,
}

impl<'a> Declarer<'a> {
    /// Opens a channel on `connection` for declarations.
    pub(crate) async fn open(connection: &'a Connection) -> Result<Self, BrokerError> {
        let channel = broker::open_channel(connection).await?;
        Ok(Self {
            connection,
            channel,
        })
    }

    /// Declares a durable queue (idempotent). A quorum queue that exists with another replication factor
    /// is kept as it is (see the module docs); any other difference is a [`BrokerError::Declare`].
    pub(crate) async fn queue(&mut self, name: &str, args: FieldTable) -> Result<(), BrokerError> {
        let declared = self
            .channel
            .queue_declare(name.into(), QueueDeclareOptions::durable(), args)
            .await;
        match declared {
            Ok(_) => Ok(()),
            Err(refusal) if is_quorum_size_refusal(&refusal) => {
                self.channel = broker::open_channel(self.connection).await?;
                let passive = QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                self.channel
                    .queue_declare(name.into(), passive, FieldTable::default())
                    .await
                    .map_err(declare_error(name))?;
                report_kept_membership(name, &refusal);
                Ok(())
            }
            Err(refusal) => Err(declare_error(name)(refusal)),
        }
    }

    /// Declares a durable fanout exchange (idempotent).
    pub(crate) async fn fanout(&self, name: &str) -> Result<(), BrokerError> {
        declare_fanout(&self.channel, name).await
    }

    /// Binds `queue` to `exchange` (idempotent).
    pub(crate) async fn bind(&self, queue: &str, exchange: &str) -> Result<(), BrokerError> {
        bind(&self.channel, queue, exchange).await
    }

    /// Closes the channel; a failure is of no consequence (the declarations are done).
    pub(crate) async fn close(self) {
        let _ = self.channel.close(200, "declared".into()).await;
    }
}

/// True when the broker refused a declaration because of the replication factor argument alone: the
/// refusal [`Declarer::queue`] expects and survives, which closes only its own channel.
///
/// RabbitMQ compares a redeclared queue's arguments in a fixed order and names the first that differs;
/// every argument taskq sets that it compares (queue type, dead-lettering, overflow) comes before the
/// replication factor, so a refusal that names it means the others are equal.
pub fn is_quorum_size_refusal(refusal: &lapin::Error) -> bool {
    match refusal.kind() {
        lapin::ErrorKind::ProtocolError(error) => {
            matches!(
                error.kind(),
                AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
            ) && error.get_message().as_str().contains(QUORUM_SIZE_ARG)
        }
        _ => false,
    }
}

/// True when the broker refused a declaration for good: its arguments differ from the existing
/// queue's, or the user may not declare it. Declaring again gives the same answer.
pub(crate) fn is_refusal(error: &lapin::Error) -> bool {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(error) => matches!(
            error.kind(),
            AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED | AMQPSoftError::ACCESSREFUSED)
        ),
        _ => false,
    }
}

/// Says, once per process, that `queue` keeps its members and how an operator adds replicas.
fn report_kept_membership(queue: &str, refusal: &lapin::Error) {
    if KEPT_MEMBERSHIP_REPORTED.swap(true, Ordering::Relaxed) {
        tracing::debug!(%queue, "quorum queue kept with its current members");
        return;
    }
    // The broker's words name both sizes: "received '3' but current is '1'".
    tracing::warn!(
        %queue,
        broker_said = %refusal,
        "quorum queue exists with another replication factor than --quorum-size asks; it keeps its \
         current members and works as it is (so may this deployment's other queues: reported once). \
         To add a replica on a node, run `rabbitmq-queues grow <node> all` there (or \
         `rabbitmq-queues add_member <queue> <node>` for one queue)"
    );
}

/// Declares a durable fanout exchange (idempotent).
async fn declare_fanout(channel: &Channel, name: &str) -> Result<(), BrokerError> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let fanout = ExchangeKind::Fanout;
    channel
        .exchange_declare(name.into(), fanout, options, FieldTable::default())
        .await
        .map_err(declare_error(name))
}

/// Binds `queue` to `exchange` (idempotent).
pub(crate) async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
) -> Result<(), BrokerError> {
    let (options, args) = (QueueBindOptions::default(), FieldTable::default());
    channel
        .queue_bind(queue.into(), exchange.into(), "".into(), options, args)
        .await
        .map_err(declare_error(queue))
}

/// Declares a durable queue with `args` on `channel` (idempotent), with no second chance: for classic
/// queues, which have no replication factor.
pub(crate) async fn declare_queue(
    channel: &Channel,
    name: &str,
    args: FieldTable,
) -> Result<(), BrokerError> {
    channel
        .queue_declare(name.into(), QueueDeclareOptions::durable(), args)
        .await
        .map(|_| ())
        .map_err(declare_error(name))
}

/// The error for a queue or exchange `name` that could not be declared or bound.
fn declare_error(name: &str) -> impl FnOnce(lapin::Error) -> BrokerError + '_ {
    move |source| BrokerError::Declare {
        queue: name.to_owned(),
        source,
    }
}

/// A string argument.
pub(crate) fn string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// The arguments of a quorum queue with `size` replicas.
pub(crate) fn quorum_args(size: u8) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-queue-type"), string("quorum"));
    args.insert(
        ShortString::from(QUORUM_SIZE_ARG),
        AMQPValue::LongLongInt(i64::from(size)),
    );
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::protocol::{AMQPError, AMQPHardError};

    fn broker_said(kind: AMQPErrorKind, message: &str) -> lapin::Error {
        lapin::ErrorKind::ProtocolError(AMQPError::new(kind, message.into())).into()
    }

    #[test]
    fn only_a_refusal_naming_the_replication_factor_is_survived() {
        let soft = |kind| AMQPErrorKind::Soft(kind);
        let size = format!(
            "inequivalent arg '{QUORUM_SIZE_ARG}' for queue 'q': received '3' but current is '1'"
        );
        let other = "inequivalent arg 'x-dead-letter-exchange' for queue 'q'";
        assert!(is_quorum_size_refusal(&broker_said(
            soft(AMQPSoftError::PRECONDITIONFAILED),
            &size
        )));
        assert!(!is_quorum_size_refusal(&broker_said(
            soft(AMQPSoftError::PRECONDITIONFAILED),
            other
        )));
        assert!(!is_quorum_size_refusal(&broker_said(
            soft(AMQPSoftError::NOTFOUND),
            &size
        )));
    }

    #[test]
    fn a_declaration_cut_short_is_transient_a_refused_one_is_not() {
        let declare = |source| BrokerError::Declare {
            queue: "q".into(),
            source,
        };
        let refused = broker_said(
            AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED),
            "differs",
        );
        assert!(!declare(refused).is_transient());
        let forbidden = broker_said(AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED), "no");
        assert!(!declare(forbidden).is_transient());
        let restarting = broker_said(
            AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED),
            "shutdown",
        );
        assert!(declare(restarting).is_transient());
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(declare(lapin::Error::from(reset)).is_transient());
    }
}
