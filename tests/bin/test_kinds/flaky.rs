//! `test-flaky`: a task error that goes away on a later attempt, as a flaky dependency's would. For
//! retry tests: an item says how many runs of its chunk fail before one succeeds.

use taskq_common::task::{CpuTask, ItemContext, Task, TaskError};

/// The `test-flaky` kind: an item is how many runs fail before one succeeds; its output is the attempt
/// that succeeded.
pub struct TestFlaky;

impl Task for TestFlaky {
    const NAME: &'static str = "test-flaky";
    type Input = u32;
    type Output = u32;
}

impl CpuTask for TestFlaky {
    fn run(&self, failing_runs: u32, context: &ItemContext) -> Result<u32, TaskError> {
        let attempt = context.attempt;
        if attempt <= failing_runs {
            Err(TaskError::transient(format!(
                "flaky failure {attempt} of {failing_runs}"
            )))
        } else {
            Ok(attempt)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use taskq_common::job::JobId;
    use taskq_common::payload::TaskPayload;
    use tokio_util::sync::CancellationToken;
    use worker::kinds::cpu::{ChunkRun, CpuChunk, TypedCpu};
    use worker::pool::Items;

    use super::*;

    fn run(attempt: u32) -> ChunkRun {
        ChunkRun {
            job: JobId::new(),
            attempt,
            deadline: Instant::now() + Duration::from_secs(60),
            time_limit: Duration::from_secs(60),
            cancel: CancellationToken::new(),
            items: Items::Sequential,
        }
    }

    /// Through the worker's own chunk runner, so the retry reason is the one the worker acts on.
    #[test]
    fn a_transient_failure_asks_for_a_retry_until_an_attempt_succeeds() {
        let payload = TaskPayload::of(0, &[0u32, 2]).unwrap();
        let chunk = TypedCpu::new(TestFlaky);
        let first = chunk.run(&payload, &run(1)).unwrap();
        assert_eq!(first.failed, 1);
        assert_eq!(first.retry_reason.as_deref(), Some("flaky failure 1 of 2"));
        let third = chunk.run(&payload, &run(3)).unwrap();
        assert_eq!((third.failed, third.retry_reason), (0, None));
    }
}
