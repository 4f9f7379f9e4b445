//! `test-abort`: aborts the process, like a segfault in native code would. The handler runs it only on
//! workers started with `--enable-test-kinds`.

use taskq_common::tasks::TestAbort;

use super::CpuTask;

impl CpuTask for TestAbort {
    fn run(_: &u8) -> Result<u8, String> {
        std::process::abort()
    }
}
