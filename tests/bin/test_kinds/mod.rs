//! Task kinds that exist only for tests, one file each. The producer has no subcommand for them: tests
//! publish their chunks by hand, and only `test-worker` serves them.

mod abort;
mod flaky;

pub use abort::TestAbort;
pub use flaky::TestFlaky;
