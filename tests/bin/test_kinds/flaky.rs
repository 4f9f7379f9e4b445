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
    use taskq_common::job::JobId;

    use super::*;

    fn attempt(attempt: u32) -> ItemContext {
        ItemContext {
            job: JobId::new(),
            index: 0,
            attempt,
        }
    }

    #[test]
    fn a_transient_failure_asks_for_a_retry_until_an_attempt_succeeds() {
        let first = TestFlaky.run(2, &attempt(1)).unwrap_err();
        assert_eq!(first, TaskError::transient("flaky failure 1 of 2"));
        assert_eq!(TestFlaky.run(2, &attempt(3)), Ok(3));
        assert_eq!(TestFlaky.run(0, &attempt(1)), Ok(1));
    }
}
