//! Submitting a job whose chunks are made while it is published (an image cut into tiles as it is
//! decoded), with the same checks and all-or-nothing record as any submit.

use taskq_common::broker::Outgoing;
use taskq_common::job::{JobId, JobStatus};
use tokio_util::sync::CancellationToken;

use super::{forget_on_failure, Client, JobOptions};
use crate::ProducerError;

/// A job whose chunks are published as they are made ([`Client::submit_streamed`]).
pub(crate) struct Streamed {
    /// Its record.
    pub spec: taskq_common::job::JobSpec,
    /// More fields of its record (stages, image geometry).
    pub fields: Vec<(&'static str, String)>,
    /// Every kind its stages run.
    pub kinds: Vec<String>,
    /// Submit even if a kind has no live worker.
    pub allow_unserved: bool,
}

impl Client {
    /// Submits a job whose chunks are made while it is published (an image cut into tiles as it is
    /// decoded): its record (`spec` and `fields`) first, then each chunk from `chunks` as it comes, each
    /// confirmed. A chunk that comes as an error (the input turned out damaged) fails the job with it.
    /// `kinds` are every stage's kinds, checked served and declared before anything is recorded.
    pub(crate) async fn submit_streamed(
        &self,
        job: Streamed,
        mut chunks: tokio::sync::mpsc::Receiver<Result<Outgoing, String>>,
        shutdown: &CancellationToken,
    ) -> Result<JobId, ProducerError> {
        let options = JobOptions {
            allow_unserved: job.allow_unserved,
            ..JobOptions::default()
        };
        for kind in &job.kinds {
            self.served(kind, &options).await?;
        }
        let mut broker = self.broker.lock().await;
        for kind in &job.kinds {
            self.declared(&mut broker, kind).await?;
        }
        let publisher = &self.open_broker(&mut broker).await?.publisher;
        let id = job.spec.id;
        self.store.create_job_with(&job.spec, &job.fields).await?;
        let mut published = 0;
        let outcome = loop {
            let next = tokio::select! {
                next = chunks.recv() => next,
                _ = shutdown.cancelled() => break Err(ProducerError::SubmitInterrupted { job: id }),
            };
            match next {
                None => break Ok(()),
                Some(Err(reason)) => break Err(ProducerError::Input(reason)),
                Some(Ok(message)) => match publisher.publish(&message).await {
                    Ok(()) => published += 1,
                    Err(source) => {
                        break Err(ProducerError::SubmitFailed {
                            job: id,
                            published,
                            total: job.spec.total_chunks,
                            source: Box::new(source),
                        })
                    }
                },
            }
        };
        if let Err(error) = outcome {
            if let Err(store_error) = self.store.fail(id, &error.to_string()).await {
                tracing::error!("could not mark job {id} failed: {store_error}");
            }
            let failed = Err(error);
            forget_on_failure(&mut broker, &failed);
            return failed;
        }
        self.store
            .transition(id, JobStatus::Submitting, JobStatus::Running)
            .await?;
        Ok(id)
    }
}
