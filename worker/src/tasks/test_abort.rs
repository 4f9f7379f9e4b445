//! `test-abort`: aborts the process, like a segfault in native code would. The handler runs it only on
//! workers started with `--enable-test-kinds`.

use taskq_common::tasks::TestAbort;

use super::{CpuTask, TaskError};

impl CpuTask for TestAbort {
    fn run(_: &u8, _attempt: u32) -> Result<u8, TaskError> {
        std::process::abort()
    }
}
