//! What happens to one result message (a worker's batch of results, or a single result): record each
//! result once in Redis, finish every job whose last chunk it was, then ack. Recording and counting are one
//! atomic step in Redis, so a redelivered result (a worker died after publishing, or this consumer died
//! before acking, or another result of its batch failed to record) changes nothing but the duplicate
//! counter. A batch with a result for a job Redis does not know goes to the dead-letter queue whole,
//! after its other results were recorded.

use taskq_common::cancel::Finish;
use taskq_common::control::JOB_CANCELLED_TYPE;
use taskq_common::envelope::{self, ResultBatch, ResultMessage, RESULT_BATCH_TYPE};
use taskq_common::job::JobId;
use taskq_common::settle::Received;
use taskq_common::stages::ChunkRef;
use taskq_common::store::Recorded;
use tracing::Instrument;

use crate::context::{finish_job, refuse, Context, RETRY_DELAY};
use crate::images::ImageError;

/// Handles one result delivery (a batch of results, a single result, or a cancelled job's notice) to the
/// end.
pub async fn handle(context: std::sync::Arc<Context>, delivery: Received) {
    let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
    if kind == Some(JOB_CANCELLED_TYPE) {
        return crate::cancelled::handle(&context, &delivery).await;
    }
    let results = if kind == Some(RESULT_BATCH_TYPE) {
        envelope::decode::<ResultBatch>(&delivery.data).map(|batch| batch.results)
    } else {
        envelope::decode::<ResultMessage>(&delivery.data).map(|result| vec![result])
    };
    match results {
        Ok(results) => record_all(&context, &delivery, results).await,
        Err(reason) => refuse(&context, &delivery, &reason.to_string()).await,
    }
}

/// What recording one result asks of its delivery.
enum Outcome {
    /// Recorded, or not wanted any more; `Some(job)` when it was the job's last missing chunk.
    Settled(Option<JobId>),
    /// Its job is unknown: the message goes to the dead-letter queue with this reason.
    Unusable(String),
    /// Redis failed: the message goes back to the queue (results already recorded count once).
    Retry,
}

/// Records every result of a message (concurrently: Redis pipelines them), has replicas confirm the
/// records (once per message; see `taskq_common::store::replication`), finishes the jobs they
/// completed, then settles the message once.
async fn record_all(context: &Context, delivery: &Received, results: Vec<ResultMessage>) {
    let mark = context.store.mark_writes();
    let outcomes = futures::future::join_all(results.into_iter().map(|result| {
        let span = tracing::info_span!(
            "result",
            job = %result.job_id,
            chunk = result.task_id,
            worker = %result.worker_id,
            attempt = result.attempt,
        );
        record(context, result).instrument(span)
    }))
    .await;
    if outcomes
        .iter()
        .any(|outcome| matches!(outcome, Outcome::Retry))
    {
        return delivery.requeue_after(RETRY_DELAY).await;
    }
    // Acked only once a failover cannot lose the records; recorded again (as duplicates) otherwise.
    if let Err(error) = context.store.confirm_writes(mark).await {
        tracing::warn!("{error}; the results go back to the queue");
        return delivery.requeue_after(RETRY_DELAY).await;
    }
    let mut finished = Vec::new();
    let mut unusable = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Settled(Some(job)) if !finished.contains(&job) => finished.push(job),
            Outcome::Unusable(reason) => unusable.push(reason),
            _ => {}
        }
    }
    for job in finished {
        let span = tracing::info_span!("finish", %job);
        if !finish_job(context, job, Finish::Complete)
            .instrument(span)
            .await
        {
            return delivery.requeue_after(RETRY_DELAY).await;
        }
    }
    if unusable.is_empty() {
        delivery.ack().await
    } else {
        refuse(context, delivery, &unusable.join("; ")).await
    }
}

/// Draws a recorded tile of an image job into its PNG; an error is the outcome to settle with instead.
async fn draw_tile(context: &Context, result: &ResultMessage) -> Result<(), Outcome> {
    let job = result.job_id;
    let is_image = match context.images.geometry(&context.store, job).await {
        Ok(geometry) => geometry.is_some(),
        Err(error) => {
            tracing::warn!("{error}; the result goes back to the queue");
            return Err(Outcome::Retry);
        }
    };
    if !is_image {
        return Ok(());
    }
    let (store, dir) = (&context.store, context.output_dir.as_path());
    let drawn = context
        .images
        .add(store, dir, job, result.task_id, result.payload.clone())
        .await;
    match drawn {
        Ok(()) => Ok(()),
        // The job cannot complete as an image: finishing it says so.
        Err(ImageError::Unusable(reason)) => {
            tracing::warn!("{reason}");
            Ok(())
        }
        Err(error) => {
            // The tile is recorded: the PNG starts again from Redis when it is next opened.
            context.images.forget(job);
            tracing::warn!("{error}; the result goes back to the queue");
            Err(Outcome::Retry)
        }
    }
}

async fn record(context: &Context, result: ResultMessage) -> Outcome {
    let job = result.job_id;
    let recorded = context
        .store
        .record_result(
            job,
            ChunkRef {
                stage: result.stage,
                level: result.level,
                chunk: result.task_id,
            },
            result.items,
            result.failed,
            &result.payload,
        )
        .await;
    // A duplicate was drawn when it was new, or is drawn from Redis when the PNG is opened again.
    if let Ok(Recorded::New { .. }) = recorded {
        if let Err(outcome) = draw_tile(context, &result).await {
            return outcome;
        }
    }
    match recorded {
        Ok(Recorded::New { job_done }) => Outcome::Settled(job_done.then_some(job)),
        Ok(Recorded::Duplicate { job_done }) => {
            tracing::info!("duplicate result ignored");
            Outcome::Settled(job_done.then_some(job))
        }
        Ok(Recorded::JobFailed) => {
            // An image whose submission failed never finishes: drop its PNG.
            context.images.forget(job);
            tracing::info!("result for a failed job dropped");
            Outcome::Settled(None)
        }
        Ok(Recorded::JobCancelled) => {
            tracing::info!("result for a cancelled job dropped");
            Outcome::Settled(None)
        }
        Ok(Recorded::UnknownJob) => Outcome::Unusable(format!(
            "result for job {job}, which Redis does not know under prefix '{}' (expired, or Redis was wiped)",
            context.store.topology().prefix()
        )),
        Err(error) => {
            tracing::warn!("{error}; the result goes back to the queue");
            Outcome::Retry
        }
    }
}
