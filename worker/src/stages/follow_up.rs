//! The next stage's chunk, built from a finished chunk's outputs by the next stage's edge: a map keeps
//! each output in its place, a flat-map spreads each output array into items, a reduce stores the
//! outputs as a leaf of its tree. Items that failed travel on as failures, so the output shows them.

use std::time::Duration;

use serde_json::value::RawValue;
use taskq_common::envelope::decode_payload;
use taskq_common::job::JobId;
use taskq_common::payload::{ItemError, ResultPayload, TaskPayload};
use taskq_common::stage_store::ReduceValue;
use taskq_common::stages::tree::{Node, Tree};
use taskq_common::stages::{ChunkRef, Edge, StagedJob, CAP_WAIT};
use tokio::time::Instant;

use super::{from_stage, join, note, publish_chunk, reduce, PassOnError};
use crate::handler::Context;
use crate::kinds::output::{preview, ChunkOutput};

/// Passes the output of chunk `from` on to the next stage as its chunk `number`, then records `from`
/// done.
pub async fn publish(
    context: &Context,
    job: JobId,
    staged: &StagedJob,
    from: ChunkRef,
    number: u32,
    output: ChunkOutput,
) -> Result<(), PassOnError> {
    let result: ResultPayload =
        decode_payload(&output.payload).map_err(|error| PassOnError::Invalid(error.to_string()))?;
    let kind = &staged.plan.stages()[usize::from(from.stage)].kind;
    let next_stage = from.stage + 1;
    let next = staged.plan.stage(next_stage).ok_or_else(|| {
        PassOnError::Invalid(format!("stage {} has no stage after it", from.stage))
    })?;
    let store = &context.store;
    let payload = match next.edge {
        Some(Edge::Reduce) => {
            let tree = Tree::new(staged.chunks_of(from.stage));
            let leaf = Node {
                level: 0,
                index: number,
            };
            let value = ReduceValue {
                node: reduce::chunk_ref(next_stage, leaf),
                stored: &succeeded_outputs(&result)?,
                parent: reduce::chunk_ref(next_stage, tree.parent(leaf)),
            };
            let (items, failed) = (output.items, output.failed);
            let recorded = store
                .record_stage_chunk(job, from, items, failed, Some(value))
                .await?;
            note(recorded);
            let folding = reduce::Folding {
                job,
                staged,
                stage: next_stage,
                tree,
            };
            return folding.when_complete(context, leaf, recorded).await;
        }
        Some(Edge::Neighbours) => {
            let finished = (&output, &result);
            return join::record_and_publish(context, job, staged, from, number, finished).await;
        }
        Some(Edge::FlatMap) => flattened(&result, from.stage, kind)?,
        Some(Edge::Map) | None => mapped(&result, from.stage, kind),
    };
    take_slot(context, job, staged, next_stage).await;
    let at = ChunkRef {
        stage: next_stage,
        level: 0,
        chunk: number,
    };
    publish_chunk(context, job, at, &next.kind, &payload).await?;
    let recorded = store
        .record_stage_chunk(job, from, output.items, output.failed, None)
        .await?;
    note(recorded);
    Ok(())
}

/// A map's follow-up: each output in its item's place, failures carried as missing items.
fn mapped(result: &ResultPayload, stage: u16, kind: &str) -> TaskPayload {
    TaskPayload {
        first_index: result.first_index,
        items: result.outputs.clone(),
        missing: result
            .errors
            .iter()
            .map(|error| ItemError {
                offset: error.offset,
                message: from_stage(stage, kind, &error.message),
            })
            .collect(),
    }
}

/// A flat-map's follow-up: the elements of each output array, in order; a failed item (or an output
/// that is not an array) becomes one missing item with its reason.
fn flattened(result: &ResultPayload, stage: u16, kind: &str) -> Result<TaskPayload, PassOnError> {
    let lines = result
        .lines()
        .map_err(|error| PassOnError::Invalid(error.to_string()))?;
    let mut items: Vec<&str> = Vec::new();
    let mut missing = Vec::new();
    let mut fail = |items: &mut Vec<&str>, message: String| {
        missing.push(ItemError {
            offset: items.len() as u32,
            message: from_stage(stage, kind, &message),
        });
        items.push("null");
    };
    for line in &lines {
        match line.outcome {
            Ok(output) => match serde_json::from_str::<Vec<&RawValue>>(output.get()) {
                Ok(elements) => items.extend(elements.iter().map(|element| element.get())),
                Err(_) => fail(
                    &mut items,
                    format!(
                        "item {} gave {}, but a flat-map stage follows, which needs a JSON array",
                        line.index,
                        preview(output.get())
                    ),
                ),
            },
            Err(message) => fail(&mut items, message.to_owned()),
        }
    }
    let mut payload = TaskPayload::of_json(result.first_index, &items);
    payload.missing = missing;
    Ok(payload)
}

/// A reduce leaf: the outputs of the items that succeeded, as one JSON array.
fn succeeded_outputs(result: &ResultPayload) -> Result<String, PassOnError> {
    let lines = result
        .lines()
        .map_err(|error| PassOnError::Invalid(error.to_string()))?;
    let outputs: Vec<&str> = lines
        .iter()
        .filter_map(|line| line.outcome.ok().map(RawValue::get))
        .collect();
    Ok(format!("[{}]", outputs.join(",")))
}

/// Holds a follow-up back while its stage has `cap` chunks in flight, for [`CAP_WAIT`] at most, and
/// counts it in flight once it may go.
async fn take_slot(context: &Context, job: JobId, staged: &StagedJob, stage: u16) {
    let Some(cap) = staged.plan.stage(stage).and_then(|stage| stage.cap) else {
        return;
    };
    let last = stage == staged.plan.last();
    let deadline = Instant::now() + CAP_WAIT;
    loop {
        match context.store.take_stage_slot(job, stage, last, cap).await {
            Ok(true) => return,
            Ok(false) if Instant::now() >= deadline => {
                tracing::info!(
                    stage,
                    cap,
                    "stage still at its cap after {CAP_WAIT:?}; publishing anyway"
                );
                if let Err(error) = context.store.count_stage_published(job, stage).await {
                    tracing::warn!("{error}; the stage's cap may let one more chunk through");
                }
                return;
            }
            Ok(false) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(error) => {
                tracing::warn!("{error}; publishing without checking the stage's cap");
                return;
            }
        }
    }
}
