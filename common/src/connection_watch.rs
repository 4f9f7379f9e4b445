//! Notices a failed RabbitMQ connection even when nothing happens to be waiting on it.
//!
//! A consumer's delivery stream does not always end when its connection dies: publishes then fail with
//! "invalid channel state" while the consuming loop waits for deliveries that never come, a silent stall.
//! lapin reports every connection error as an event, so a small task turns the first one into a signal
//! the consuming loops select on, and the session reconnects. lapin reports a channel the broker closed
//! the same way, and that ends the session too (a dead publisher channel must not linger), except the
//! one refusal a declaration expects and survives on a channel of its own ([`crate::declare`]).

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use lapin::{Connection, Event};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::broker::BrokerError;
use crate::declare::is_quorum_size_refusal;

/// Fires once the connection it watches reports an error. Clones watch the same connection; the watching
/// task ends when the last clone is dropped.
#[derive(Clone)]
pub struct ConnectionWatch {
    lost: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
    _stop_watching: Arc<DropGuard>,
}

impl ConnectionWatch {
    /// Starts watching `connection`'s events.
    pub fn new(connection: &Connection) -> Self {
        let lost = CancellationToken::new();
        let reason = Arc::new(Mutex::new(None));
        let stop = CancellationToken::new();
        let mut events = Box::pin(connection.events_listener());
        let (on_lost, on_reason, stopped) = (lost.clone(), reason.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = stopped.cancelled() => return,
                    event = events.next() => event,
                };
                match event {
                    // A declaration's own channel, closed by a refusal the declaration survives.
                    Some(Event::Error(error)) if is_quorum_size_refusal(&error) => {}
                    Some(Event::Error(error)) => {
                        *on_reason.lock().expect("reason lock") = Some(error.to_string());
                        on_lost.cancel();
                        return;
                    }
                    Some(_) => {}
                    None => return,
                }
            }
        });
        Self {
            lost,
            reason,
            _stop_watching: Arc::new(stop.drop_guard()),
        }
    }

    /// Waits until the connection fails and says how.
    pub async fn lost(&self) -> BrokerError {
        self.lost.cancelled().await;
        let reason = self.reason.lock().expect("reason lock").clone();
        BrokerError::ConnectionLost {
            reason: reason.unwrap_or_else(|| "unknown error".to_owned()),
        }
    }
}
