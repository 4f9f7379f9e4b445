//! Dead-lettering a delivery that can never be processed: a copy goes to the dead-letter queue with why,
//! by whom and how often in its headers ([`crate::topology`] names them), and the original is acked only
//! once the copy is confirmed ([`crate::broker`] publishes it).

use std::time::Duration;

use lapin::types::ShortString;

use crate::broker::{BrokerError, Outgoing, Publisher};
use crate::settle::Received;
use crate::topology::{ATTEMPTS_HEADER, REASON_HEADER, SOURCE_QUEUE_HEADER, WORKER_HEADER};

/// Why and by whom a message is dead-lettered; travels in its headers.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// What went wrong ([`crate::topology::REASON_HEADER`]).
    pub reason: &'a str,
    /// The worker or consumer that gave up on it ([`crate::topology::WORKER_HEADER`]).
    pub refused_by: &'a str,
    /// How many times the task ran, when known ([`crate::topology::ATTEMPTS_HEADER`]).
    pub attempts: Option<u32>,
}

/// Moves a message that can never be processed to the dead-letter queue: publishes a copy with the reason
/// in a header, and acknowledges the original only once the copy is confirmed, so nothing is lost in
/// between. If the copy fails, the original goes back to its queue.
pub async fn quarantine(
    publisher: &Publisher,
    dead_queue: &str,
    delivery: &Received,
    letter: &DeadLetter<'_>,
) {
    tracing::warn!(
        reason = letter.reason,
        "refusing message: moving it to the dead-letter queue"
    );
    match dead_letter_copy(publisher, dead_queue, delivery, letter).await {
        Ok(()) => delivery.ack().await,
        Err(error) => {
            tracing::warn!("dead-lettering failed ({error}); the message goes back to its queue");
            delivery.requeue_after(Duration::from_secs(1)).await
        }
    }
}

async fn dead_letter_copy(
    publisher: &Publisher,
    dead_queue: &str,
    delivery: &lapin::message::Delivery,
    letter: &DeadLetter<'_>,
) -> Result<(), BrokerError> {
    let property = |value: Option<&ShortString>| value.map(|v| v.to_string()).unwrap_or_default();
    let mut headers = vec![
        (REASON_HEADER.to_owned(), letter.reason.to_owned()),
        (WORKER_HEADER.to_owned(), letter.refused_by.to_owned()),
        (
            SOURCE_QUEUE_HEADER.to_owned(),
            delivery.routing_key.to_string(),
        ),
    ];
    if let Some(attempts) = letter.attempts {
        headers.push((ATTEMPTS_HEADER.to_owned(), attempts.to_string()));
    }
    let outgoing = Outgoing {
        queue: dead_queue.to_owned(),
        body: delivery.data.clone(),
        message_id: property(delivery.properties.message_id().as_ref()),
        kind: property(delivery.properties.kind().as_ref()),
        headers,
        ..Outgoing::default()
    };
    publisher.publish(&outgoing).await
}
