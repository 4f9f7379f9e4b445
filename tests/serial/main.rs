//! Tests that need the machine and the shared services to themselves: outages of RabbitMQ and Redis,
//! processes killed at random, and timing (heartbeats under full CPU load, one lane against the other,
//! how fast a cancel stops a running job). Cargo runs test binaries one
//! after another, so nothing in the `integration` binary overlaps them, and each takes [`ONE_AT_A_TIME`]
//! so they do not overlap each other either.

mod cancel;
mod chaos;
mod failover;
mod heartbeat;
mod lanes;
mod outages;
mod stages_chaos;

use std::sync::LazyLock;

use tokio::sync::{Mutex, MutexGuard};

/// Held for the whole of each test in this binary.
static ONE_AT_A_TIME: LazyLock<Mutex<()>> = LazyLock::new(|| Mutex::new(()));

/// Waits until no other test of this binary runs.
async fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}
