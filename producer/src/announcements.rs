//! One subscription to every job's end for a long-lived client: its waits learn of their job's end from
//! it instead of each opening a Redis connection of its own. If the subscription drops (Redis
//! restarted), it is made again with backoff; meanwhile waits find the end by polling, as they always can.

use futures::stream::BoxStream;
use futures::StreamExt;
use taskq_common::connect::backoff;
use taskq_common::job::JobId;
use taskq_common::store::JobStore;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Announcements a slow waiter may fall behind by before it just polls once more.
const BACKLOG: usize = 1024;

/// The announced ends of every job under the client's prefix, for its waits. Stops with the client.
pub(crate) struct Announcements {
    ends: broadcast::Sender<JobId>,
    _stop: DropGuard,
}

impl Announcements {
    /// Subscribes on `store`'s Redis in a task of its own.
    pub(crate) fn start(store: JobStore) -> Self {
        let (ends, _) = broadcast::channel(BACKLOG);
        let stop = CancellationToken::new();
        tokio::spawn(forward(store, ends.clone(), stop.clone()));
        Self {
            ends,
            _stop: stop.drop_guard(),
        }
    }

    /// A stream that yields whenever `job`'s end may have been announced. Subscribe before reading the
    /// job's state, so an end announced in between is not missed.
    pub(crate) fn of(&self, job: JobId) -> BoxStream<'static, ()> {
        futures::stream::unfold(self.ends.subscribe(), move |mut ends| async move {
            loop {
                match ends.recv().await {
                    Ok(ended) if ended == job => return Some(((), ends)),
                    Ok(_) => continue,
                    // Fell behind: the job may be among the missed ones, so look once more.
                    Err(broadcast::error::RecvError::Lagged(_)) => return Some(((), ends)),
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }
}

/// Forwards every announced end until `stop` fires, subscribing again whenever the subscription drops.
async fn forward(store: JobStore, ends: broadcast::Sender<JobId>, stop: CancellationToken) {
    let mut delays = backoff();
    while !stop.is_cancelled() {
        match store.every_finished_announcement().await {
            Ok(mut announced) => {
                delays = backoff();
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        next = announced.next() => match next {
                            // Nobody waiting is fine: the send has no one to tell.
                            Some(job) => { let _ = ends.send(job); }
                            None => break,
                        },
                    }
                }
                tracing::debug!("job announcements ended; subscribing again");
            }
            Err(error) => tracing::debug!("{error}; waits poll until subscribed again"),
        }
        let delay = delays.next().unwrap_or(std::time::Duration::from_secs(10));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
