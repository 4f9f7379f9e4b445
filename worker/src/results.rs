//! Publishing results in batches (group commit): results that finish while the previous message waits for
//! the broker's confirm, or within a short wait (`--result-batch-wait`) of the first, go out together in
//! one [`ResultBatch`].
//!
//! With tiny chunks, a message per result was half of the broker's work per task (a publish, a confirm,
//! a delivery and an ack, each a quorum-queue log entry or more). A batch waits for more results only
//! while other chunks of the lane are in the worker's hands ([`Upcoming`]), so a lone chunk's result
//! goes out at once; batches end at [`MAX_RESULTS`] results or [`MAX_BYTES`] of payload. A result counts
//! as published, and its chunk may be acked, only once its batch is confirmed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use taskq_common::batching::next_before;
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
    upcoming: Arc<AtomicUsize>,
}

/// A chunk in the worker's hands (waiting for a thread, or running) whose result will come: while any is
/// held, a batch may wait for its result.
pub struct Upcoming {
    upcoming: Arc<AtomicUsize>,
}

impl Drop for Upcoming {
    fn drop(&mut self) {
        self.upcoming.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Pending {
    result: ResultMessage,
    confirmed: oneshot::Sender<Result<(), String>>,
}

impl ResultPublisher {
    /// Starts batching results for `queue` on `publisher`'s channel; a batch waits up to `linger` for
    /// more results while other chunks are upcoming.
    pub fn new(publisher: Publisher, queue: String, linger: Duration) -> Self {
        let (requests, receiver) = mpsc::unbounded_channel();
        let upcoming = Arc::new(AtomicUsize::new(0));
        tokio::spawn(publish_batches(
            publisher,
            queue.clone(),
            receiver,
            upcoming.clone(),
            linger,
        ));
        Self {
            queue,
            requests,
            upcoming,
        }
    }

    /// Marks a chunk as upcoming until the returned guard is dropped (drop it before publishing the
    /// chunk's result, so a batch does not wait for the result it already holds).
    pub fn upcoming(&self) -> Upcoming {
        self.upcoming.fetch_add(1, Ordering::Relaxed);
        Upcoming {
            upcoming: self.upcoming.clone(),
        }
    }

    /// Publishes `result`; returns once the broker confirmed the message that carries it.
    pub async fn publish(&self, result: ResultMessage) -> Result<(), BrokerError> {
        let not_confirmed = |reason: String| BrokerError::NotConfirmed {
            queue: self.queue.clone(),
            reason,
        };
        let stopped = || "the result publisher has stopped".to_owned();
        let (confirmed, outcome) = oneshot::channel();
        self.requests
            .send(Pending { result, confirmed })
            .map_err(|_| not_confirmed(stopped()))?;
        outcome
            .await
            .unwrap_or_else(|_| Err(stopped()))
            .map_err(not_confirmed)
    }
}

async fn publish_batches(
    publisher: Publisher,
    queue: String,
    mut requests: mpsc::UnboundedReceiver<Pending>,
    upcoming: Arc<AtomicUsize>,
    linger: Duration,
) {
    while let Some(first) = requests.recv().await {
        let linger_until = Instant::now() + linger;
        let mut bytes = first.result.payload.len();
        let mut batch = vec![first];
        while batch.len() < MAX_RESULTS && bytes < MAX_BYTES {
            let worth_waiting = || upcoming.load(Ordering::Relaxed) > 0;
            let Some(next) = next_before(&mut requests, linger_until, worth_waiting).await else {
                break;
            };
            bytes += next.result.payload.len();
            batch.push(next);
        }
        crate::metrics::result_batch(batch.len());
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
