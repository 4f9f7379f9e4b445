//! What running a chunk produces: its result payload, ready to publish, or why there is none.

use taskq_common::envelope::{decode_payload, encode, DecodeError};
use taskq_common::payload::{ResultBuilder, ResultPayload, TaskPayload};
use taskq_common::task::TaskError;

/// One item's outcome: its output as JSON text, or its error.
pub type ItemResult = Result<String, TaskError>;

/// A finished chunk, ready to be published as a result message.
#[derive(Debug)]
pub struct ChunkOutput {
    /// Items in the chunk.
    pub items: u32,
    /// Items that failed.
    pub failed: u32,
    /// The encoded result payload.
    pub payload: Vec<u8>,
    /// The first failure that running the chunk again may fix; `None` when no item failed that way.
    pub retry_reason: Option<String>,
}

/// Why a chunk produced no output.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The payload does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The job was cancelled while the chunk ran; it stopped at an item boundary and reports nothing.
    #[error("the job was cancelled")]
    Cancelled,
}

/// The output of a chunk whose items ended with `results`, in order.
pub fn chunk_output(payload: &TaskPayload, results: Vec<ItemResult>) -> ChunkOutput {
    let retry_reason = results.iter().find_map(|result| match result {
        Err(error) if error.retry => Some(error.message.clone()),
        _ => None,
    });
    let items = results.len() as u32;
    let mut builder = ResultBuilder::new(payload);
    for result in results {
        match result {
            Ok(json) => builder.ok_json(&json),
            Err(error) => builder.failed(error.message),
        }
    }
    let result = builder.finish();
    ChunkOutput {
        items,
        failed: result.errors.len() as u32,
        payload: encode(&result),
        retry_reason,
    }
}

/// Reports every item of an encoded chunk as failed with `reason`, without running any: for a chunk
/// that must not run again. Needs no kind: every kind's items are JSON.
pub fn fail_chunk(encoded: &[u8], reason: &str) -> Result<ChunkOutput, DecodeError> {
    let payload: TaskPayload = decode_payload(encoded)?;
    let count = payload.items()?.len();
    let results = (0..count)
        .map(|_| Err(TaskError::permanent(reason)))
        .collect();
    Ok(chunk_output(&payload, results))
}

/// `output` with each item's input replaced by `null` (outputs and errors stay).
pub fn without_inputs(output: ChunkOutput) -> Result<ChunkOutput, DecodeError> {
    let result: ResultPayload = decode_payload(&output.payload)?;
    let nulls = vec!["null"; output.items as usize];
    let result = ResultPayload {
        items: format!("[{}]", nulls.join(",")).into_bytes(),
        ..result
    };
    Ok(ChunkOutput {
        payload: encode(&result),
        ..output
    })
}

/// An item's input, shortened for an error message.
pub fn preview(json: &str) -> String {
    const MAX: usize = 80;
    match json.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &json[..cut]),
        None => json.to_owned(),
    }
}
