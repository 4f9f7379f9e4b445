//! Chunks holding items that failed in an earlier stage: those items are never run, and reported failed
//! with the earlier stage's reason; the others run in contiguous parts, each with its true positions.

use taskq_common::envelope::{decode_payload, DecodeError};
use taskq_common::payload::{ResultPayload, TaskPayload};
use taskq_common::task::TaskError;

use crate::kinds::output::{chunk_output, ChunkOutput};

/// The runnable parts of `payload`: runs of consecutive items that did not fail upstream, each a
/// payload of its own. One part, the payload itself, when nothing is missing.
pub fn runnable_parts(payload: TaskPayload) -> Result<Vec<TaskPayload>, DecodeError> {
    if payload.missing.is_empty() {
        return Ok(vec![payload]);
    }
    let items = payload.items()?;
    let missing: std::collections::HashSet<u32> =
        payload.missing.iter().map(|error| error.offset).collect();
    let mut parts = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    let mut run_start = 0;
    for (offset, item) in items.iter().enumerate() {
        if missing.contains(&(offset as u32)) {
            if !run.is_empty() {
                parts.push(TaskPayload::of_json(payload.first_index + run_start, &run));
                run.clear();
            }
            continue;
        }
        if run.is_empty() {
            run_start = offset as u64;
        }
        run.push(item.get());
    }
    if !run.is_empty() {
        parts.push(TaskPayload::of_json(payload.first_index + run_start, &run));
    }
    Ok(parts)
}

/// The chunk's output from its parts' outputs (in order), with the items missing upstream failed in
/// their places.
pub fn merge(
    payload: &TaskPayload,
    mut parts: Vec<ChunkOutput>,
) -> Result<ChunkOutput, DecodeError> {
    if payload.missing.is_empty() && parts.len() == 1 {
        return Ok(parts.remove(0));
    }
    let retry_reason = parts.iter().find_map(|part| part.retry_reason.clone());
    let decoded: Vec<ResultPayload> = parts
        .iter()
        .map(|part| decode_payload(&part.payload))
        .collect::<Result<_, _>>()?;
    let mut ran = Vec::new();
    for part in &decoded {
        ran.extend(part.lines()?);
    }
    let mut ran = ran.into_iter();
    let mut missing = payload.missing.iter().peekable();
    let mut results = Vec::new();
    for offset in 0..payload.items()?.len() as u32 {
        if let Some(error) = missing.next_if(|error| error.offset == offset) {
            results.push(Err(TaskError::permanent(error.message.clone())));
            continue;
        }
        let line = ran.next().ok_or_else(|| {
            DecodeError::Malformed("a part of the chunk reported fewer items than it has".into())
        })?;
        results.push(match line.outcome {
            Ok(output) => Ok(output.get().to_owned()),
            Err(message) => Err(TaskError::permanent(message)),
        });
    }
    let mut output = chunk_output(payload, results);
    output.retry_reason = retry_reason;
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskq_common::payload::ItemError;

    fn payload_with_gaps() -> TaskPayload {
        let mut payload = TaskPayload::of_json(10, &["1", "null", "3", "4", "null"]);
        payload.missing = vec![
            ItemError {
                offset: 1,
                message: "stage 0 (parse): bad".into(),
            },
            ItemError {
                offset: 4,
                message: "stage 0 (parse): worse".into(),
            },
        ];
        payload
    }

    #[test]
    fn parts_skip_missing_items_and_keep_their_positions() {
        let parts = runnable_parts(payload_with_gaps()).unwrap();
        let shape: Vec<(u64, String)> = parts
            .iter()
            .map(|p| (p.first_index, String::from_utf8(p.items.clone()).unwrap()))
            .collect();
        assert_eq!(shape, vec![(10, "[1]".into()), (12, "[3,4]".into())]);
    }

    #[test]
    fn merged_output_puts_upstream_failures_back_in_place() {
        let payload = payload_with_gaps();
        let parts: Vec<ChunkOutput> = runnable_parts(payload.clone())
            .unwrap()
            .iter()
            .map(|part| {
                let results = part
                    .items()
                    .unwrap()
                    .iter()
                    .map(|item| Ok(format!("{}0", item.get())))
                    .collect();
                chunk_output(part, results)
            })
            .collect();
        let merged = merge(&payload, parts).unwrap();
        assert_eq!((merged.items, merged.failed), (5, 2));
        let result: ResultPayload = decode_payload(&merged.payload).unwrap();
        assert_eq!(result.outputs, b"[10,null,30,40,null]");
        assert_eq!(result.errors[1].message, "stage 0 (parse): worse");
        assert_eq!(result.first_index, 10);
    }
}
