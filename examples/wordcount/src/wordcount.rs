//! The `wordcount` kind: a task of this crate, one file, written with taskq's task API.

use taskq::{Aggregate, CpuTask, Fold, ItemContext, Task, TaskError, TaskOptions};

/// Counts the words of a text; the job's aggregate is the total and the longest count.
pub struct WordCount {
    /// Texts longer than this (in bytes) fail: a limit set by whoever runs the worker.
    pub max_bytes: usize,
}

impl Task for WordCount {
    const NAME: &'static str = "wordcount";
    type Input = String;
    type Output = u64;

    fn options(&self) -> TaskOptions {
        let aggregate = Aggregate::sum("words").with("longest", Fold::Max, None);
        TaskOptions::default().chunk_size(100).aggregate(aggregate)
    }
}

impl CpuTask for WordCount {
    fn run(&self, text: String, _: &ItemContext) -> Result<u64, TaskError> {
        if text.len() > self.max_bytes {
            return Err(TaskError::permanent(format!(
                "text of {} bytes is longer than the {} this worker accepts",
                text.len(),
                self.max_bytes
            )));
        }
        Ok(text.split_whitespace().count() as u64)
    }
}
