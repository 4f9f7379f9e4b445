//! Collecting a batch from a channel (group commit): what is already queued joins the batch at once,
//! and, while more is worth waiting for, what arrives before the batch's deadline. Acks
//! ([`crate::settle`]) and the worker's result messages batch this way.

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

/// The next item for the batch: one already queued, or, when `worth_waiting()` says so (asked only
/// when the queue is empty), one that arrives before `until`. `None` ends the batch.
pub async fn next_before<T>(
    receiver: &mut UnboundedReceiver<T>,
    until: Instant,
    worth_waiting: impl FnOnce() -> bool,
) -> Option<T> {
    if let Ok(item) = receiver.try_recv() {
        return Some(item);
    }
    if !worth_waiting() {
        return None;
    }
    tokio::time::timeout_at(until, receiver.recv())
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::mpsc;

    #[tokio::test(start_paused = true)]
    async fn queued_items_join_at_once_and_later_ones_only_while_worth_waiting() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let until = Instant::now() + Duration::from_millis(5);
        sender.send(1).unwrap();
        assert_eq!(next_before(&mut receiver, until, || false).await, Some(1));
        assert_eq!(next_before(&mut receiver, until, || false).await, None);
        let late = sender.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            late.send(2).unwrap();
        });
        assert_eq!(next_before(&mut receiver, until, || true).await, Some(2));
        assert_eq!(
            next_before(&mut receiver, until, || true).await,
            None,
            "nothing before the deadline"
        );
    }
}
