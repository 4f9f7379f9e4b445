//! The `neighbours` edge: chunk n of the next stage starts once chunk n and its neighbours are done.
//! Each finished chunk stores its outputs and counts itself, once, towards every next-stage chunk whose
//! neighbourhood holds it; whoever completes a neighbourhood publishes that chunk, with the outputs of
//! its neighbourhood as its one item. No barrier: a tile of the next pass starts as soon as the tiles
//! around it are done.

use taskq_common::job::JobId;
use taskq_common::payload::{ItemError, ResultPayload, TaskPayload};
use taskq_common::stages::{ChunkRef, StagedJob};

use super::{from_stage, publish_chunk, read_stored, stored, PassOnError};
use crate::handler::Context;
use crate::kinds::output::ChunkOutput;

/// Records chunk `number` of stage `from.stage` done with its outputs, and publishes every chunk of the
/// next stage whose neighbourhood that completes.
pub async fn record_and_publish(
    context: &Context,
    job: JobId,
    staged: &StagedJob,
    from: ChunkRef,
    number: u32,
    (output, result): (&ChunkOutput, &ResultPayload),
) -> Result<(), PassOnError> {
    let stage = from.stage + 1;
    let next = &staged.plan.stages()[usize::from(stage)];
    let hood = next.neighbourhood.unwrap_or_default();
    let chunks = staged.chunks_of(from.stage);
    let at = |chunk: u32| ChunkRef {
        stage,
        level: 0,
        chunk,
    };
    let kind = &staged.plan.stages()[usize::from(from.stage)].kind;
    let value = match result.errors.first() {
        Some(error) => stored(Err(&from_stage(from.stage, kind, &error.message))),
        None => stored(Ok(&String::from_utf8_lossy(&result.outputs))),
    };
    let joining = hood.of(number, chunks);
    let refs: Vec<ChunkRef> = joining.iter().copied().map(at).collect();
    let counts = (output.items, output.failed);
    let Some(recorded) = context
        .store
        .record_joined_chunk(job, from, counts, (at(number), &value), &refs)
        .await?
    else {
        tracing::info!("the job ended meanwhile; nothing more to do");
        return Ok(());
    };
    for (chunk, done) in joining.into_iter().zip(recorded) {
        let neighbours = hood.of(chunk, chunks);
        if done as usize >= neighbours.len() {
            let parts: Vec<ChunkRef> = neighbours.iter().copied().map(at).collect();
            let payload = joined_payload(context, job, chunk, &parts).await?;
            publish_chunk(context, job, at(chunk), &next.kind, &payload).await?;
        }
    }
    Ok(())
}

/// Chunk `chunk`'s one item: `{"chunk": n, "parts": [{"chunk": m, "outputs": [..]}, ..]}`, or a missing
/// item naming the first neighbour that failed.
async fn joined_payload(
    context: &Context,
    job: JobId,
    chunk: u32,
    parts: &[ChunkRef],
) -> Result<TaskPayload, PassOnError> {
    let values = context.store.reduce_values(job, parts).await?;
    let mut texts = Vec::with_capacity(parts.len());
    for (part, value) in parts.iter().zip(values) {
        let value = value.ok_or_else(|| {
            PassOnError::Invalid(format!(
                "the outputs of neighbour {} are missing from Redis (was it restarted without persistence?)",
                part.field()
            ))
        })?;
        match read_stored(&value) {
            Ok(outputs) => texts.push(format!(
                "{{\"chunk\":{},\"outputs\":{outputs}}}",
                part.chunk
            )),
            Err(reason) => {
                let mut payload = TaskPayload::of_json(u64::from(chunk), &["null"]);
                payload.missing = vec![ItemError {
                    offset: 0,
                    message: format!("neighbour {} failed: {reason}", part.chunk),
                }];
                return Ok(payload);
            }
        }
    }
    let item = format!("{{\"chunk\":{chunk},\"parts\":[{}]}}", texts.join(","));
    Ok(TaskPayload::of_json(u64::from(chunk), &[item]))
}
