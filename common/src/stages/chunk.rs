//! Which chunk of which stage: the identity a stage records a chunk by, and what a worker knows of the
//! job it belongs to.

use super::{Edge, Plan};

/// A chunk's identity within its job: stage, reduce level and number. Each stage records a chunk once
/// by this identity, and a chunk's runs are counted by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkRef {
    /// The stage, from 0.
    pub stage: u16,
    /// The reduce level (see [`tree`]); 0 outside a reduce stage.
    pub level: u8,
    /// The chunk's number within its stage (and level).
    pub chunk: u32,
}

impl ChunkRef {
    /// A chunk of a job of one stage (or of a job's first stage).
    pub fn first_stage(chunk: u32) -> Self {
        Self {
            stage: 0,
            level: 0,
            chunk,
        }
    }

    /// The identity a task message carries.
    pub fn of(task: &crate::envelope::TaskMessage) -> Self {
        Self {
            stage: task.stage,
            level: task.level,
            chunk: task.task_id,
        }
    }

    /// The chunk's field in the job's Redis hashes: its number alone in the first stage (as before
    /// stages existed), `stage:level.number` after it.
    pub fn field(&self) -> String {
        if self.stage == 0 && self.level == 0 {
            self.chunk.to_string()
        } else {
            format!("{}:{}.{}", self.stage, self.level, self.chunk)
        }
    }
}

/// What a worker knows of a multi-stage job while it runs one of its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedJob {
    /// The stages.
    pub plan: Plan,
    /// Chunks of the first stage.
    pub source_chunks: u32,
}

impl StagedJob {
    /// Chunks (outputs) stage `stage` has: the leaves of a reduce that follows it.
    pub fn chunks_of(&self, stage: u16) -> u32 {
        let mut outputs = self.source_chunks;
        for (number, current) in self.plan.stages().iter().enumerate() {
            if current.edge == Some(Edge::Reduce) {
                outputs = 1;
            }
            if number == usize::from(stage) {
                break;
            }
        }
        outputs
    }
}
