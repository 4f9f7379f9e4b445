//! A reduce stage's tree of partial reduces (see [`taskq_common::stages::tree`]): each node is a chunk
//! of one item, the array of its children's values, run by the stage's kind, which folds an array of
//! values into one value of the same type. A node is published by whoever records its last child, so
//! folding streams up the tree; the root's output is the stage's one output.
//!
//! Values are stored in Redis as JSON text, or as `!` and the reason when the node failed: its parent
//! then fails with that reason instead of folding a hole.

use taskq_common::envelope::{decode_payload, TaskMessage};
use taskq_common::job::JobId;
use taskq_common::payload::{ItemError, ResultPayload, TaskPayload};
use taskq_common::stage_store::{ReduceValue, StageRecorded};
use taskq_common::stages::tree::{Node, Tree};
use taskq_common::stages::{ChunkRef, StagedJob};

use super::{follow_up, note, publish_chunk, read_stored, stored, PassOnError};
use crate::handler::{publish_result, Context};
use crate::kinds::output::{without_inputs, ChunkOutput};

/// The identity of `node` of the reduce in `stage`.
pub fn chunk_ref(stage: u16, node: Node) -> ChunkRef {
    ChunkRef {
        stage,
        level: node.level,
        chunk: node.index,
    }
}

/// One reduce stage of one job, with its tree.
pub struct Folding<'a> {
    /// The job.
    pub job: JobId,
    /// What the worker knows of it.
    pub staged: &'a StagedJob,
    /// The reduce stage.
    pub stage: u16,
    /// Its tree.
    pub tree: Tree,
}

impl Folding<'_> {
    /// Publishes the parent of `child` if recording `child` completed its children.
    pub async fn when_complete(
        &self,
        context: &Context,
        child: Node,
        recorded: StageRecorded,
    ) -> Result<(), PassOnError> {
        let parent = self.tree.parent(child);
        match recorded {
            StageRecorded::Done { siblings_done, .. }
                if siblings_done as usize >= self.tree.children(parent).len() =>
            {
                self.publish_node(context, parent).await
            }
            _ => Ok(()),
        }
    }

    /// Publishes `node` with its children's stored values as its one item.
    async fn publish_node(&self, context: &Context, node: Node) -> Result<(), PassOnError> {
        let children: Vec<ChunkRef> = self
            .tree
            .children(node)
            .map(|index| {
                chunk_ref(
                    self.stage,
                    Node {
                        level: node.level - 1,
                        index,
                    },
                )
            })
            .collect();
        let values = context.store.reduce_values(self.job, &children).await?;
        let mut parts = Vec::with_capacity(values.len());
        let mut failure = None;
        for (child, value) in children.iter().zip(values) {
            let value = value.ok_or_else(|| {
                PassOnError::Invalid(format!(
                    "the reduce value of {} is missing from Redis (was it restarted without persistence?)",
                    child.field()
                ))
            })?;
            match read_stored(&value) {
                Err(reason) => failure = Some(reason.to_owned()),
                // Leaves are arrays of outputs: a level-1 node folds their elements together.
                Ok(leaf) if node.level == 1 => {
                    let inner = leaf.trim().trim_start_matches('[').trim_end_matches(']');
                    if !inner.trim().is_empty() {
                        parts.push(inner.to_owned());
                    }
                }
                Ok(partial) => parts.push(partial.to_owned()),
            }
        }
        let mut payload =
            TaskPayload::of_json(u64::from(node.index), &[format!("[{}]", parts.join(","))]);
        if let Some(reason) = failure {
            payload = TaskPayload::of_json(u64::from(node.index), &["null"]);
            payload.missing = vec![ItemError {
                offset: 0,
                message: reason,
            }];
        }
        let kind = &self.staged.plan.stages()[usize::from(self.stage)].kind;
        let at = chunk_ref(self.stage, node);
        Ok(publish_chunk(context, self.job, at, kind, &payload).await?)
    }
}

/// A chunk of a reduce stage finished: store its value for its parent, or, at the root, pass the
/// stage's output on (to the consumer when the reduce is the last stage).
pub async fn node_done(
    context: &Context,
    task: &TaskMessage,
    staged: &StagedJob,
    output: ChunkOutput,
) -> Result<(), PassOnError> {
    let folding = Folding {
        job: task.job_id,
        staged,
        stage: task.stage,
        tree: Tree::new(staged.chunks_of(task.stage - 1)),
    };
    let node = Node {
        level: task.level,
        index: task.task_id,
    };
    let result: ResultPayload =
        decode_payload(&output.payload).map_err(|error| PassOnError::Invalid(error.to_string()))?;
    if folding.tree.is_root(node) {
        // The root's input is every partial value: the output keeps only the fold.
        let output = without_inputs(output).map_err(|e| PassOnError::Invalid(e.to_string()))?;
        return if task.stage == staged.plan.last() {
            Ok(publish_result(context, task, output).await?)
        } else {
            let from = ChunkRef::of(task);
            follow_up::publish(context, task.job_id, staged, from, 0, output).await
        };
    }
    let value = match result
        .lines()
        .map_err(|e| PassOnError::Invalid(e.to_string()))?
        .first()
    {
        Some(line) => stored(line.outcome.map(|value| value.get())),
        None => {
            return Err(PassOnError::Invalid(
                "a reduce chunk reported no item".into(),
            ))
        }
    };
    let value = ReduceValue {
        node: chunk_ref(task.stage, node),
        stored: &value,
        parent: chunk_ref(task.stage, folding.tree.parent(node)),
    };
    let recorded = context
        .store
        .record_stage_chunk(
            task.job_id,
            ChunkRef::of(task),
            output.items,
            output.failed,
            Some(value),
        )
        .await?;
    note(recorded);
    folding.when_complete(context, node, recorded).await
}
