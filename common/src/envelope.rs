//! The versioned messages on the wire, encoded as MessagePack maps, and why a message can be refused.
//!
//! Both messages are maps with named fields, so a reader can look at `version` before trusting the rest
//! and a later version can add fields without breaking older readers of the same version.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::job::JobId;
use crate::task::validate_kind_name;

/// The wire format version this build writes and reads. Version 2 carries items and outputs as JSON
/// ([`crate::payload`]), so any kind travels without this build knowing its types.
pub const WIRE_VERSION: u16 = 2;

/// The AMQP content type of every message.
pub const CONTENT_TYPE: &str = "application/msgpack";

/// A task: one chunk of a job, for a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMessage {
    /// Wire format version, [`WIRE_VERSION`].
    pub version: u16,
    /// The job the chunk belongs to.
    pub job_id: JobId,
    /// The chunk's number within its stage, from 0. A follow-up keeps its parent chunk's number (a
    /// reduce chunk is numbered within its tree level).
    pub task_id: u32,
    /// The task kind's wire name.
    pub kind: String,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// The job's stage this chunk belongs to, from 0 (a job of one stage has only stage 0). Absent in
    /// messages of builds before stages, which read as 0.
    #[serde(default)]
    pub stage: u16,
    /// For a chunk of a reduce stage, its level in the tree of partial reduces (see
    /// [`crate::stages::tree`]); 0 otherwise.
    #[serde(default)]
    pub level: u8,
    /// The chunk's [`crate::payload::TaskPayload`], MessagePack-encoded.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

impl TaskMessage {
    /// A first attempt at chunk `task_id` of `stage` (and reduce `level`) of `job`, holding `payload`.
    pub fn new(
        job_id: JobId,
        (stage, level, task_id): (u16, u8, u32),
        kind: &str,
        payload: &crate::payload::TaskPayload,
    ) -> Self {
        Self {
            version: WIRE_VERSION,
            job_id,
            task_id,
            kind: kind.to_owned(),
            attempt: 1,
            stage,
            level,
            payload: encode(payload),
        }
    }
}

/// A result: the outcome of one chunk, for the consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultMessage {
    /// Wire format version, [`WIRE_VERSION`].
    pub version: u16,
    /// The job the chunk belongs to.
    pub job_id: JobId,
    /// The chunk's number within its job.
    pub task_id: u32,
    /// The task kind's wire name.
    pub kind: String,
    /// The attempt that produced this result.
    pub attempt: u32,
    /// The stage the chunk belongs to: the job's last (0 for a job of one stage).
    #[serde(default)]
    pub stage: u16,
    /// The chunk's reduce level, when the last stage is a reduce (its root's); 0 otherwise.
    #[serde(default)]
    pub level: u8,
    /// The worker that ran it.
    pub worker_id: String,
    /// Items in the chunk.
    pub items: u32,
    /// Items whose task returned an error.
    pub failed: u32,
    /// The chunk's [`crate::payload::ResultPayload`], MessagePack-encoded.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// AMQP `type` of a [`ResultBatch`]; a message without it on the results queue is one [`ResultMessage`].
pub const RESULT_BATCH_TYPE: &str = "result-batch";

/// Results of several chunks in one message: a worker sends together the results that finished while
/// its previous message waited for the broker's confirm, so tiny chunks do not cost a message each.
/// Consumers record each result by its chunk as if it had come alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultBatch {
    /// Wire format version, [`WIRE_VERSION`].
    pub version: u16,
    /// The results, each whole.
    pub results: Vec<ResultMessage>,
}

/// Why a message was refused. Every variant sends the message to the dead-letter queue.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not MessagePack, or not a map with the expected fields.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Written by a newer or older build with another wire format.
    #[error("unsupported wire version {found} (this build reads version {WIRE_VERSION}): run matching producer, worker and consumer versions")]
    UnsupportedVersion {
        /// The version the message carries.
        found: u16,
    },
}

#[derive(Deserialize)]
struct VersionProbe {
    version: u16,
}

/// Encodes any message or payload as a MessagePack map.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain data structs into a Vec cannot fail.
    rmp_serde::to_vec_named(value).expect("MessagePack encoding of a plain struct")
}

/// Decodes a message, checking its version first and then its shape.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let probe: VersionProbe =
        rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if probe.version != WIRE_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: probe.version,
        });
    }
    rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Decodes a task message and checks that its kind is a valid name (whether this worker serves it is
/// the worker's to say).
pub fn decode_task(bytes: &[u8]) -> Result<TaskMessage, DecodeError> {
    let task: TaskMessage = decode(bytes)?;
    validate_kind_name(&task.kind).map_err(DecodeError::Malformed)?;
    Ok(task)
}

/// Decodes a kind-specific payload.
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Malformed(format!("payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::TaskPayload;

    fn task(kind: &str, version: u16) -> TaskMessage {
        TaskMessage {
            version,
            job_id: JobId::new(),
            task_id: 7,
            kind: kind.into(),
            attempt: 1,
            stage: 0,
            level: 0,
            payload: encode(&TaskPayload::of(21, &[5_000_000u64]).unwrap()),
        }
    }

    #[test]
    fn task_round_trips() {
        let original = task("sum-squares", WIRE_VERSION);
        let decoded = decode_task(&encode(&original)).unwrap();
        assert_eq!(decoded, original);
        let payload: TaskPayload = decode_payload(&decoded.payload).unwrap();
        assert_eq!(payload.items, b"[5000000]");
    }

    #[test]
    fn a_result_batch_round_trips_and_checks_its_version() {
        let result = ResultMessage {
            version: WIRE_VERSION,
            job_id: JobId::new(),
            task_id: 3,
            kind: "square".into(),
            attempt: 1,
            stage: 0,
            level: 0,
            worker_id: "w".into(),
            items: 1,
            failed: 0,
            payload: vec![1, 2, 3],
        };
        let batch = ResultBatch {
            version: WIRE_VERSION,
            results: vec![
                result.clone(),
                ResultMessage {
                    task_id: 4,
                    ..result
                },
            ],
        };
        assert_eq!(decode::<ResultBatch>(&encode(&batch)).unwrap(), batch);
        let future = ResultBatch {
            version: WIRE_VERSION + 1,
            ..batch
        };
        assert!(matches!(
            decode::<ResultBatch>(&encode(&future)),
            Err(DecodeError::UnsupportedVersion { found }) if found == WIRE_VERSION + 1
        ));
    }

    #[test]
    fn refusals_say_why() {
        assert!(matches!(
            decode_task(b"\xc1garbage"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_task(&encode(&task("sum-squares", 99))),
            Err(DecodeError::UnsupportedVersion { found: 99 })
        ));
        let bad_name = decode_task(&encode(&task("Mine Bitcoin", WIRE_VERSION))).unwrap_err();
        assert!(bad_name.to_string().contains("lowercase"), "{bad_name}");
    }
}
