//! `test-echo-after`: an I/O-bound kind that waits, then answers, as a slow remote service would. For
//! tests of the I/O lane: items that only wait must overlap, never queue behind each other.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use taskq_common::task::{IoTask, ItemContext, Task, TaskError};

/// One `test-echo-after` item: how long to wait, and what to answer then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EchoAfter {
    /// Milliseconds to wait (asynchronously: the wait holds no thread).
    pub ms: u64,
    /// Any JSON, returned as the item's output.
    pub value: serde_json::Value,
}

/// The `test-echo-after` kind: waits `ms` milliseconds on the worker's runtime, then outputs `value`.
pub struct TestEchoAfter;

impl Task for TestEchoAfter {
    const NAME: &'static str = "test-echo-after";
    type Input = EchoAfter;
    type Output = serde_json::Value;
}

impl IoTask for TestEchoAfter {
    async fn run(&self, item: EchoAfter, _: &ItemContext) -> Result<serde_json::Value, TaskError> {
        tokio::time::sleep(Duration::from_millis(item.ms)).await;
        Ok(item.value)
    }
}

#[cfg(test)]
mod tests {
    use taskq_common::job::JobId;

    use super::*;

    #[tokio::test]
    async fn answers_the_value_after_the_wait() {
        let context = ItemContext {
            job: JobId::new(),
            index: 0,
            attempt: 1,
        };
        let item = EchoAfter {
            ms: 50,
            value: serde_json::json!({"a": [1, 2]}),
        };
        let started = std::time::Instant::now();
        let output = TestEchoAfter.run(item, &context).await;
        assert_eq!(output, Ok(serde_json::json!({"a": [1, 2]})));
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
