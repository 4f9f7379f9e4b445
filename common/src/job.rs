//! Validated job identifiers and sizes, and the job record kept in Redis.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Identifies one submitted job everywhere: in messages, Redis keys and output file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobId(uuid::Uuid);

impl JobId {
    /// A fresh random job id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for JobId {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(raw.trim()).map(Self).map_err(|_| {
            format!("'{raw}' is not a job id: expected the UUID `producer submit` printed")
        })
    }
}

/// How many items travel in one task message. Never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSize(NonZeroU32);

impl ChunkSize {
    /// The largest accepted chunk size; larger chunks would make single messages unwieldy.
    pub const MAX: u32 = 1_000_000;

    /// A chunk size, or `None` for zero or more than [`ChunkSize::MAX`].
    pub fn new(items: u32) -> Option<Self> {
        (items <= Self::MAX).then_some(())?;
        NonZeroU32::new(items).map(Self)
    }

    /// Items per chunk.
    pub fn get(self) -> usize {
        self.0.get() as usize
    }
}

impl FromStr for ChunkSize {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let items: u32 = raw.trim().parse().map_err(|_| {
            format!("'{raw}' is not a chunk size: expected a whole number of items, like 100")
        })?;
        Self::new(items).ok_or_else(|| {
            format!(
                "chunk size {items} is out of range: use 1 to {} items per message",
                Self::MAX
            )
        })
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// The producer is still publishing its chunks.
    Submitting,
    /// Every chunk is published; results are coming in.
    Running,
    /// Every chunk has a result and the output is written.
    Completed,
    /// The job cannot complete (for example its submission was interrupted).
    Failed,
    /// `producer cancel` stopped the job: workers drop its chunks, and the consumer writes what it has.
    Cancelling,
    /// Cancelled: the output holds the items finished before the cancel took effect.
    Cancelled,
}

impl JobStatus {
    /// The name stored in Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitting => "submitting",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelling => "cancelling",
            Self::Cancelled => "cancelled",
        }
    }

    /// True when the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// True while the job's chunks are still wanted: it is being submitted or running.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Submitting | Self::Running)
    }
}

impl FromStr for JobStatus {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "submitting" => Ok(Self::Submitting),
            "running" => Ok(Self::Running),
            "completed" => Ok(Self::Completed),
            "failed" => Ok(Self::Failed),
            "cancelling" => Ok(Self::Cancelling),
            "cancelled" => Ok(Self::Cancelled),
            other => Err(format!("unknown job status '{other}'")),
        }
    }
}

/// What the producer records about a job when it submits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// The job's id.
    pub id: JobId,
    /// The task kind's wire name.
    pub kind: String,
    /// How many task messages the job has.
    pub total_chunks: u32,
    /// How many items across all chunks.
    pub total_items: u64,
    /// Submission time, milliseconds since the Unix epoch.
    pub submitted_at_ms: u64,
}

/// A job's state as read back from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    /// What was submitted.
    pub spec: JobSpec,
    /// Where the job is in its life.
    pub status: JobStatus,
    /// Chunks with a recorded result.
    pub chunks_done: u32,
    /// Items with a recorded result (failed ones included).
    pub items_done: u64,
    /// Items whose task returned an error.
    pub items_failed: u64,
    /// Result messages that arrived again for an already recorded chunk and were ignored.
    pub duplicates: u64,
    /// Why the job failed, when it did.
    pub error: Option<String>,
    /// The final summary as JSON, once completed.
    pub summary: Option<serde_json::Value>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_rejects_zero_and_garbage_with_advice() {
        assert_eq!("3".parse::<ChunkSize>().unwrap().get(), 3);
        let zero = "0".parse::<ChunkSize>().unwrap_err();
        assert!(zero.contains("use 1 to"), "{zero}");
        assert!("x"
            .parse::<ChunkSize>()
            .unwrap_err()
            .contains("whole number"));
        assert!("2000000".parse::<ChunkSize>().is_err());
    }

    #[test]
    fn statuses_round_trip_and_cancelling_is_neither_active_nor_final() {
        use JobStatus::*;
        for status in [
            Submitting, Running, Completed, Failed, Cancelling, Cancelled,
        ] {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
        }
        assert!(!Cancelling.is_final() && !Cancelling.is_active());
        assert!(Cancelled.is_final() && Running.is_active());
    }

    #[test]
    fn job_ids_round_trip_and_bad_ones_are_explained() {
        let id = JobId::new();
        assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        assert!("nope".parse::<JobId>().unwrap_err().contains("job id"));
    }
}
