//! `test-abort`: kills the worker process that runs it, every time. For testing poison-message handling
//! only: workers refuse it (dead-letter) unless started with `--enable-test-kinds`, and the producer
//! offers no way to submit it.

use super::{Lane, TaskKind};

/// Marker type for the `test-abort` kind.
pub struct TestAbort;

impl TaskKind for TestAbort {
    const NAME: &'static str = "test-abort";
    const LANE: Lane = Lane::Cpu;
    const DEFAULT_CHUNK_SIZE: u32 = 1;
    type Item = u8;
    type Output = u8;
    type Aggregate = ();

    fn fold(_: &mut (), _: &u8) {}
}
