//! Publishing results in batches (group commit): results that finish while the previous message waits for
//! the broker's confirm go out together in the next [`ResultBatch`].
//!
//! With tiny chunks, a message per result was half of the broker's work per task (a publish, a confirm,
//! a delivery and an ack, each a quorum-queue log entry or more). When no message is waiting for its
//! confirm, a result goes out at once, so a lone chunk waits no longer than before; under load, batches
//! grow with the confirm latency by themselves, up to [`MAX_RESULTS`] results or [`MAX_BYTES`] of
//! payload. A result counts as published, and its chunk may be acked, only once its batch is confirmed.

use tokio::sync::{mpsc, oneshot};

use taskq_common::broker::{BrokerError, Outgoing, Publisher};
use taskq_common::envelope::{self, ResultBatch, ResultMessage, RESULT_BATCH_TYPE, WIRE_VERSION};

/// Results in one message at most.
pub const MAX_RESULTS: usize = 256;

/// Result payload bytes in one message at most (a single larger result still goes, alone).
pub const MAX_BYTES: usize = 1 << 20;

/// Publishes results to one queue in confirmed batches. Cheap to clone; the batching task ends when the
/// last clone is dropped.
#[derive(Clone)]
pub struct ResultPublisher {
    queue: String,
    requests: mpsc::UnboundedSender<Pending>,
}

struct Pending {
    result: ResultMessage,
    confirmed: oneshot::Sender<Result<(), String>>,
}

impl ResultPublisher {
    /// Starts batching results for `queue` on `publisher`'s channel.
    pub fn new(publisher: Publisher, queue: String) -> Self {
        let (requests, receiver) = mpsc::unbounded_channel();
        tokio::spawn(publish_batches(publisher, queue.clone(), receiver));
        Self { queue, requests }
    }

    /// Publishes `result`; returns once the broker confirmed the message that carries it.
    pub async fn publish(&self, result: ResultMessage) -> Result<(), BrokerError> {
        let not_confirmed = |reason: String| BrokerError::NotConfirmed {
            queue: self.queue.clone(),
            reason,
        };
        let (confirmed, outcome) = oneshot::channel();
        self.requests
            .send(Pending { result, confirmed })
            .map_err(|_| not_confirmed("the result publisher has stopped".into()))?;
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(not_confirmed(reason)),
            Err(_) => Err(not_confirmed("the result publisher has stopped".into())),
        }
    }
}

async fn publish_batches(
    publisher: Publisher,
    queue: String,
    mut requests: mpsc::UnboundedReceiver<Pending>,
) {
    while let Some(first) = requests.recv().await {
        let mut bytes = first.result.payload.len();
        let mut batch = vec![first];
        while batch.len() < MAX_RESULTS && bytes < MAX_BYTES {
            match requests.try_recv() {
                Ok(next) => {
                    bytes += next.result.payload.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let (results, waiters): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|pending| (pending.result, pending.confirmed))
            .unzip();
        let outgoing = batch_message(&queue, results);
        let outcome = publisher
            .publish(&outgoing)
            .await
            .map_err(|error| error.to_string());
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
    }
}

/// The message carrying `results`; its id names the first chunk and how many follow.
fn batch_message(queue: &str, results: Vec<ResultMessage>) -> Outgoing {
    let message_id = match results.first() {
        Some(first) => format!("{}/{} +{}", first.job_id, first.task_id, results.len() - 1),
        None => String::new(),
    };
    Outgoing {
        queue: queue.to_owned(),
        body: envelope::encode(&ResultBatch {
            version: WIRE_VERSION,
            results,
        }),
        message_id,
        kind: RESULT_BATCH_TYPE.to_owned(),
        ..Outgoing::default()
    }
}
