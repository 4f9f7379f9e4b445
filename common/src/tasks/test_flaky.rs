//! `test-flaky`: fails its first runs, then succeeds. For testing retries only: like `test-abort`,
//! workers refuse it unless started with `--enable-test-kinds`, and the producer offers no way to submit
//! it.

use super::{Lane, TaskKind};

/// Marker type for the `test-flaky` kind. An item is how many runs fail before one succeeds; its output
/// is the attempt that succeeded.
pub struct TestFlaky;

impl TaskKind for TestFlaky {
    const NAME: &'static str = "test-flaky";
    const LANE: Lane = Lane::Cpu;
    const DEFAULT_CHUNK_SIZE: u32 = 1;
    type Item = u32;
    type Output = u32;
    type Aggregate = ();

    fn fold(_: &mut (), _: &u32) {}
}
