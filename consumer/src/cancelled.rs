//! A cancelled job's notice, sent by `producer cancel` once every live worker stopped the job: write the
//! output of the chunks recorded so far and mark the job cancelled, so `producer wait` returns with it.

use taskq_common::cancel::Finish;
use taskq_common::control::JobCancelledNotice;
use taskq_common::envelope;
use taskq_common::settle::Received;
use tracing::Instrument;

use crate::context::{self, Context};

/// Handles one notice to the end.
pub async fn handle(context: &Context, delivery: &Received) {
    let notice: JobCancelledNotice = match envelope::decode(&delivery.data) {
        Ok(notice) => notice,
        Err(reason) => return context::refuse(context, delivery, &reason.to_string()).await,
    };
    let job = notice.job_id;
    let span = tracing::info_span!("cancelled", %job);
    context::finish(context, delivery, job, Finish::Cancel)
        .instrument(span)
        .await
}
