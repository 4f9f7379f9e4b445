//! `test-flaky`: a task error that goes away on a later attempt, as a flaky dependency's would. The
//! handler runs it only on workers started with `--enable-test-kinds`.

use taskq_common::tasks::TestFlaky;

use super::{CpuTask, TaskError};

impl CpuTask for TestFlaky {
    fn run(failing_runs: &u32, attempt: u32) -> Result<u32, TaskError> {
        if attempt <= *failing_runs {
            Err(TaskError::transient(format!(
                "flaky failure {attempt} of {failing_runs}"
            )))
        } else {
            Ok(attempt)
        }
    }
}
