//! Cancelling a job, on the Redis side.
//!
//! `producer cancel` moves the job to `cancelling`: workers drop its chunks from then on (their status
//! check at claim time) and stop the running ones at the next item boundary (the control command). Results
//! still arriving are recorded. Once every live worker answered, the producer tells the consumer, which
//! writes the output of the chunks recorded so far and moves the job to `cancelled` with its summary;
//! results arriving after that are dropped.
//!
//! A job whose last result arrives while it is being cancelled could be finished both ways at once, so
//! whoever writes a job's output first claims how it ends ([`Finish`]); the other way then leaves it alone.

use crate::job::{now_ms, JobId, JobStatus};
use crate::store::{command, JobStore, StoreError};

const REQUEST_CANCEL: &str = r#"
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return '' end
if status == 'submitting' or status == 'running' then
  redis.call('HSET', KEYS[1], 'status', 'cancelling', 'cancel_requested_at_ms', ARGV[1])
end
return status
"#;

/// Claims how the job finishes. Safe to run twice (sent again after a failover): the same claim
/// answers the same.
pub(crate) const CLAIM_FINISH: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local claimed = redis.call('HGET', KEYS[1], 'finish')
if not claimed then
  redis.call('HSET', KEYS[1], 'finish', ARGV[1])
  return 1
end
if claimed == ARGV[1] then return 1 end
return 0
"#;

/// How a job's output gets written: every chunk (completed) or those recorded so far (cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Every chunk has a result.
    Complete,
    /// The job was cancelled.
    Cancel,
}

impl Finish {
    fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Cancel => "cancel",
        }
    }
}

impl JobStore {
    /// Moves a submitting or running job to `cancelling`. Returns the status it had (`None` if Redis does
    /// not know the job); only `submitting` and `running` change.
    pub async fn request_cancel(&self, job: JobId) -> Result<Option<JobStatus>, StoreError> {
        let before: String = redis::Script::new(REQUEST_CANCEL)
            .key(self.topology().job_key(job))
            .arg(now_ms())
            .invoke_async(&mut self.connection())
            .await
            .map_err(command("cancelling the job"))?;
        match before.as_str() {
            "" => Ok(None),
            raw => raw
                .parse()
                .map(Some)
                .map_err(|detail| StoreError::Corrupt { job, detail }),
        }
    }

    /// Claims the right to write the job's output the `finish` way. True if this way was claimed now or
    /// before (finishing again after a crash is allowed); false if the job ends the other way, or is
    /// unknown.
    pub async fn claim_finish(&self, job: JobId, finish: Finish) -> Result<bool, StoreError> {
        let claimed: i64 = redis::Script::new(CLAIM_FINISH)
            .key(self.topology().job_key(job))
            .arg(finish.as_str())
            .invoke_async(&mut self.connection())
            .await
            .map_err(command("claiming how the job finishes"))?;
        Ok(claimed == 1)
    }

    /// Marks a cancelled job's output written: status `cancelled`, its summary, and its chunk results
    /// dropped (the output file has them).
    pub async fn finish_cancelled(
        &self,
        job: JobId,
        summary: &serde_json::Value,
    ) -> Result<(), StoreError> {
        // Confirmed by replicas before the cancel notice is acked: a lost end would stay `cancelling`.
        let summary = summary.to_string();
        let ending = ("summary", summary.as_str());
        self.end_job(
            job,
            JobStatus::Cancelled,
            ending,
            "marking the job cancelled",
        )
        .await
    }
}
