//! Settling deliveries in batches: one `basic.ack` with `multiple` for a run of finished deliveries.
//!
//! Every acknowledgement of a quorum queue's delivery is a command the broker replicates and writes to
//! its log; acking a run of deliveries with `multiple` makes it one command. For tiny chunks that is a
//! large share of the broker's work per task. But `multiple` acks *every* outstanding delivery up to the
//! tag, and a delivery acked while it still runs would be lost if the worker died. RabbitMQ numbers a
//! channel's deliveries 1, 2, 3, ... without gaps, so the [`Ledger`] tracks which tags are settled and a
//! batch reaches only as far as every earlier delivery is settled. An ack stuck behind a delivery that
//! still runs goes out on its own after [`HELD_ACK_LIMIT`]; a requeue (nack) goes out at once.
//!
//! While other deliveries are still running, a batch waits up to [`ACK_LINGER`] for more acks; when
//! none runs (at a low prefetch, say) it goes out at once. Settling returns once the ack is written, so a
//! consuming loop that drained its handlers has sent every ack before it closes the connection.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::Channel;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::batching::next_before;

/// How long a batch of acks waits for more while other deliveries still run.
pub const ACK_LINGER: Duration = Duration::from_millis(5);

/// How long an ack may wait behind an earlier delivery that still runs before it is sent on its own.
pub const HELD_ACK_LIMIT: Duration = Duration::from_millis(20);

/// A delivery, and the way to settle it through its channel's [`Settler`].
pub struct Received {
    delivery: Delivery,
    settler: Settler,
}

impl Deref for Received {
    type Target = Delivery;

    fn deref(&self) -> &Delivery {
        &self.delivery
    }
}

impl Received {
    /// Acknowledges the delivery; returns once the ack (possibly batched with others) is written. A
    /// failure is only logged: the broker redelivers, and redeliveries are recognised downstream.
    pub async fn ack(&self) {
        self.settler
            .settle(self.delivery_tag, Settlement::Ack)
            .await
    }

    /// Changes the routing key the delivery is taken to have come with (retries are published with it).
    pub fn set_routing_key(&mut self, routing_key: &str) {
        self.delivery.routing_key = routing_key.into();
    }

    /// Returns the delivery to its queue after `delay`, so a failing dependency is not hammered in a hot
    /// loop. A failure is only logged: the broker requeues every unsettled delivery when the channel
    /// closes.
    pub async fn requeue_after(&self, delay: Duration) {
        tokio::time::sleep(delay).await;
        self.settler
            .settle(self.delivery_tag, Settlement::Requeue)
            .await
    }
}

/// Settles one channel's deliveries, batching acks. Cheap to clone; the batching task ends when the last
/// clone is dropped.
#[derive(Clone)]
pub struct Settler {
    requests: mpsc::UnboundedSender<Request>,
    /// The highest delivery tag handed to a handler so far.
    highest_received: Arc<AtomicU64>,
}

impl Settler {
    /// Starts settling deliveries of `channel`, whose tags must all go through this settler.
    pub fn new(channel: Channel) -> Self {
        let (requests, receiver) = mpsc::unbounded_channel();
        let highest_received = Arc::new(AtomicU64::new(0));
        tokio::spawn(batch_acks(channel, receiver, highest_received.clone()));
        Self {
            requests,
            highest_received,
        }
    }

    /// Wraps a delivery of this settler's channel so its handler can settle it.
    pub fn receive(&self, delivery: Delivery) -> Received {
        self.highest_received
            .fetch_max(delivery.delivery_tag, Ordering::Relaxed);
        Received {
            delivery,
            settler: self.clone(),
        }
    }

    async fn settle(&self, tag: u64, how: Settlement) {
        let (done, written) = oneshot::channel();
        if self.requests.send(Request { tag, how, done }).is_ok() {
            let _ = written.await;
        }
    }
}

/// What becomes of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settlement {
    Ack,
    Requeue,
}

struct Request {
    tag: u64,
    how: Settlement,
    done: oneshot::Sender<()>,
}

/// The batching task: collects acks, sends each contiguous run as one `multiple` ack, held acks one by
/// one when overdue, and requeues at once.
async fn batch_acks(
    channel: Channel,
    mut requests: mpsc::UnboundedReceiver<Request>,
    highest_received: Arc<AtomicU64>,
) {
    let mut ledger = Ledger::default();
    let mut wire = Wire { channel };
    loop {
        let due = ledger.next_due(HELD_ACK_LIMIT);
        let first = tokio::select! {
            request = requests.recv() => match request {
                Some(request) => Some(request),
                None => break,
            },
            () = sleep_until_due(due) => None,
        };
        if let Some(request) = first {
            wire.apply(&mut ledger, request).await;
            let linger_until = Instant::now() + ACK_LINGER;
            // More acks are worth waiting for while some are pending and other deliveries still run.
            while let Some(request) = next_before(&mut requests, linger_until, || {
                let highest = highest_received.load(Ordering::Relaxed);
                ledger.has_pending_acks() && !ledger.all_decided(highest)
            })
            .await
            {
                wire.apply(&mut ledger, request).await;
            }
        }
        if let Some((through, waiters)) = ledger.contiguous_batch() {
            wire.ack(through, true).await;
            for done in waiters {
                let _ = done.send(());
            }
        }
        for (tag, done) in ledger.overdue(Instant::now(), HELD_ACK_LIMIT) {
            wire.ack(tag, false).await;
            let _ = done.send(());
        }
    }
}

async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sends settlements on the channel; a failure is logged, never fatal.
struct Wire {
    channel: Channel,
}

impl Wire {
    async fn apply(&mut self, ledger: &mut Ledger<oneshot::Sender<()>>, request: Request) {
        match request.how {
            Settlement::Ack => ledger.ack(request.tag, request.done, Instant::now()),
            Settlement::Requeue => {
                let options = BasicNackOptions {
                    multiple: false,
                    requeue: true,
                };
                if let Err(error) = self.channel.basic_nack(request.tag, options).await {
                    tracing::warn!(
                        "returning a message to its queue failed ({error}); it returns when the channel closes"
                    );
                }
                ledger.settled(request.tag);
                let _ = request.done.send(());
            }
        }
    }

    async fn ack(&mut self, tag: u64, multiple: bool) {
        if let Err(error) = self
            .channel
            .basic_ack(tag, BasicAckOptions { multiple })
            .await
        {
            tracing::warn!("ack failed ({error}); the broker will redeliver the message");
        }
    }
}

/// Which delivery tags of a channel are settled, and which acks wait to be sent. `W` is what is told
/// when an ack went out.
#[derive(Debug)]
struct Ledger<W> {
    /// Every tag up to this one is settled at the broker.
    settled_through: u64,
    /// Tags above `settled_through` whose fate is decided.
    decided: BTreeMap<u64, Decided<W>>,
}

impl<W> Default for Ledger<W> {
    fn default() -> Self {
        Self {
            settled_through: 0,
            decided: BTreeMap::new(),
        }
    }
}

#[derive(Debug)]
enum Decided<W> {
    /// To be acked; `since` is when it was asked for.
    Ack { waiter: W, since: Instant },
    /// Already settled at the broker (requeued, or acked on its own).
    Settled,
}

impl<W> Ledger<W> {
    /// Records that `tag` is to be acked.
    fn ack(&mut self, tag: u64, waiter: W, now: Instant) {
        if tag > self.settled_through {
            self.decided
                .insert(tag, Decided::Ack { waiter, since: now });
        }
    }

    /// Records that `tag` was settled at the broker on its own.
    fn settled(&mut self, tag: u64) {
        if tag > self.settled_through {
            self.decided.insert(tag, Decided::Settled);
        }
    }

    fn has_pending_acks(&self) -> bool {
        self.decided
            .values()
            .any(|decided| matches!(decided, Decided::Ack { .. }))
    }

    /// True when every tag up to `highest_received` is decided: no delivery is still running.
    fn all_decided(&self, highest_received: u64) -> bool {
        let decided = u64::try_from(self.decided.len()).unwrap_or(u64::MAX);
        self.settled_through.saturating_add(decided) >= highest_received
    }

    /// Takes the run of decided tags right after `settled_through`: the highest ack in it (one `multiple`
    /// ack settles the run, since requeued tags are no longer outstanding) and the waiters to tell.
    fn contiguous_batch(&mut self) -> Option<(u64, Vec<W>)> {
        let mut through = None;
        let mut waiters = Vec::new();
        while let Some(entry) = self.decided.first_entry() {
            if *entry.key() != self.settled_through + 1 {
                break;
            }
            let (tag, decided) = entry.remove_entry();
            if let Decided::Ack { waiter, .. } = decided {
                through = Some(tag);
                waiters.push(waiter);
            }
            self.settled_through = tag;
        }
        through.map(|tag| (tag, waiters))
    }

    /// Takes the acks that waited `limit` or longer behind a delivery still running, to send one by one.
    fn overdue(&mut self, now: Instant, limit: Duration) -> Vec<(u64, W)> {
        let due: Vec<u64> = self
            .decided
            .iter()
            .filter_map(|(tag, decided)| match decided {
                Decided::Ack { since, .. } if now.duration_since(*since) >= limit => Some(*tag),
                _ => None,
            })
            .collect();
        due.into_iter()
            .filter_map(|tag| match self.decided.insert(tag, Decided::Settled) {
                Some(Decided::Ack { waiter, .. }) => Some((tag, waiter)),
                _ => None,
            })
            .collect()
    }

    /// When the oldest held ack becomes overdue.
    fn next_due(&self, limit: Duration) -> Option<Instant> {
        self.decided
            .values()
            .filter_map(|decided| match decided {
                Decided::Ack { since, .. } => Some(*since + limit),
                Decided::Settled => None,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_millis(20);

    #[test]
    fn a_run_of_acks_becomes_one_multiple_ack() {
        let now = Instant::now();
        let mut ledger = Ledger::default();
        for tag in [2, 1, 3] {
            ledger.ack(tag, tag, now);
        }
        assert!(ledger.all_decided(3));
        assert_eq!(ledger.contiguous_batch(), Some((3, vec![1, 2, 3])));
        assert_eq!(ledger.contiguous_batch(), None);
        assert!(!ledger.has_pending_acks());
    }

    #[test]
    fn a_batch_stops_before_a_delivery_still_running() {
        let now = Instant::now();
        let mut ledger = Ledger::default();
        for tag in [1, 2, 4, 5] {
            ledger.ack(tag, tag, now);
        }
        assert!(!ledger.all_decided(5), "tag 3 still runs");
        assert_eq!(ledger.contiguous_batch(), Some((2, vec![1, 2])));
        assert!(ledger.overdue(now, LIMIT).is_empty(), "not held long yet");
        assert_eq!(ledger.next_due(LIMIT), Some(now + LIMIT));
        // Once tag 3 finishes, the rest go out together.
        ledger.ack(3, 3, now);
        assert_eq!(ledger.contiguous_batch(), Some((5, vec![3, 4, 5])));
    }

    #[test]
    fn held_acks_go_out_alone_once_overdue_and_the_run_passes_them_later() {
        let now = Instant::now();
        let mut ledger = Ledger::default();
        ledger.ack(2, 2, now);
        ledger.ack(3, 3, now);
        assert_eq!(ledger.overdue(now + LIMIT, LIMIT), vec![(2, 2), (3, 3)]);
        assert_eq!(ledger.next_due(LIMIT), None);
        ledger.ack(1, 1, now + LIMIT);
        // Tags 2 and 3 are already acked: the batch acks only up to 1, then skips them.
        assert_eq!(ledger.contiguous_batch(), Some((1, vec![1])));
        assert!(ledger.decided.is_empty());
        assert_eq!(ledger.settled_through, 3);
    }

    #[test]
    fn a_requeued_tag_is_passed_but_never_the_end_of_a_multiple_ack() {
        let now = Instant::now();
        let mut ledger = Ledger::default();
        ledger.ack(1, 1, now);
        ledger.settled(2);
        assert_eq!(ledger.contiguous_batch(), Some((1, vec![1])));
        assert_eq!(ledger.settled_through, 2);
        ledger.settled(3);
        assert_eq!(ledger.contiguous_batch(), None, "nothing to ack");
        assert_eq!(ledger.settled_through, 3);
    }

    #[test]
    fn a_late_settlement_of_a_passed_tag_is_ignored() {
        let now = Instant::now();
        let mut ledger = Ledger::default();
        ledger.ack(1, 1, now);
        let _ = ledger.contiguous_batch();
        ledger.ack(1, 1, now);
        assert!(ledger.decided.is_empty());
    }
}
