//! `test-abort`: kills the worker process that runs it, every time, as a segfault in native code would.
//! For poison-message tests: the broker redelivers the chunk to the next worker until it is quarantined.

use taskq_common::task::{CpuTask, ItemContext, Task, TaskError};

/// The `test-abort` kind: any `u8` item aborts the process; nothing is ever output.
pub struct TestAbort;

impl Task for TestAbort {
    const NAME: &'static str = "test-abort";
    type Input = u8;
    type Output = u8;
}

impl CpuTask for TestAbort {
    fn run(&self, _: u8, _: &ItemContext) -> Result<u8, TaskError> {
        std::process::abort()
    }
}
