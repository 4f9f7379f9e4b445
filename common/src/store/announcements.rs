//! A job's end announced on Redis pub/sub, so a waiting producer learns of it at once instead of at its
//! next poll: one subscription per job, or one to every job for a long-lived client.

use crate::job::JobId;

use super::{command, JobStore, StoreError};

impl JobStore {
    /// A stream that yields when `job` is announced finished (completed or failed). Subscribe before
    /// reading the job's state, so an end between the read and the subscription is not missed. It ends
    /// if the subscription's connection does; then read the state as before.
    pub async fn finished_announcements(
        &self,
        job: JobId,
    ) -> Result<impl futures::Stream<Item = ()> + Send + Unpin, StoreError> {
        let mut pubsub = self.pubsub().await?;
        pubsub
            .subscribe(self.topology.job_finished_channel(job))
            .await
            .map_err(command("subscribing to job announcements"))?;
        Ok(futures::StreamExt::map(pubsub.into_on_message(), |_| ()))
    }

    /// Every job's end as it is announced, by job id: one subscription for a long-lived client that
    /// waits for many jobs. Ends when the subscription's connection does.
    pub async fn every_finished_announcement(
        &self,
    ) -> Result<impl futures::Stream<Item = JobId> + Send + Unpin, StoreError> {
        let mut pubsub = self.pubsub().await?;
        pubsub
            .psubscribe(self.topology.jobs_finished_pattern())
            .await
            .map_err(command("subscribing to job announcements"))?;
        let topology = self.topology.clone();
        Ok(futures::StreamExt::filter_map(
            pubsub.into_on_message(),
            move |message| {
                futures::future::ready(topology.finished_job(message.get_channel_name()))
            },
        ))
    }

    /// A new pub/sub connection to the master (behind sentinels: the one they name now), within the
    /// process's deadline.
    async fn pubsub(&self) -> Result<redis::aio::PubSub, StoreError> {
        let limit = crate::deadline::limit();
        match crate::deadline::within(limit, self.connection.pubsub()).await {
            Some(pubsub) => pubsub.map_err(command("subscribing to job announcements")),
            None => Err(StoreError::Unreachable {
                url: "Redis (pub/sub)".into(),
                reason: format!("no answer within {limit:?} (--connect-timeout)"),
            }),
        }
    }
}
