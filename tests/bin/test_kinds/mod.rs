//! Task kinds that exist only for tests, one file each. The producer has no subcommand for them: tests
//! publish their chunks by hand or submit JSON items (`--items`), and only `test-worker` serves them.

mod abort;
mod echo_after;
mod flaky;
mod sum;
mod user_square;

pub use abort::TestAbort;
pub use echo_after::TestEchoAfter;
pub use flaky::TestFlaky;
pub use sum::{TestNegate, TestSum};
pub use user_square::UserSquare;
