//! The tests' broker seen from outside, as an operator sees it: who consumes a queue, with which
//! arguments a queue was created, deleting a queue, restarting the broker.
//!
//! The broker is the one the tests use (`TASKQ_TEST_AMQP_URL`), its management API at
//! `TASKQ_TEST_MANAGEMENT_URL` (default `http://guest:guest@127.0.0.1:15672`, read with `curl`), restarted
//! with `rabbitmqctl` (`TASKQ_TEST_RABBITMQCTL`, for example `docker exec rabbit rabbitmqctl`) on its node
//! (`TASKQ_TEST_RABBITMQ_NODE`, for `-n`). Unset, they are CI's: the local broker and its default node.

use std::process::Command;
use std::time::{Duration, Instant};

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use taskq_common::broker;

use crate::{amqp_url, QueueStats};

/// Runs `rabbitmqctl` on the tests' broker node (see the module docs) with `args`; panics if it fails.
fn rabbitmqctl(args: &[&str]) {
    let program = std::env::var("TASKQ_TEST_RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".into());
    let mut words = program.split_whitespace();
    let mut command = Command::new(
        words
            .next()
            .expect("TASKQ_TEST_RABBITMQCTL names a program"),
    );
    command.args(words).arg("-q");
    if let Ok(node) = std::env::var("TASKQ_TEST_RABBITMQ_NODE") {
        command.args(["-n", &node]);
    }
    let status = command
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

/// Stops the broker application (every connection drops; the node stays, so it comes back quickly),
/// waits `down_for`, starts it again and waits (at most 60 s) until it takes AMQP connections.
pub async fn restart_broker(down_for: Duration) {
    rabbitmqctl(&["stop_app"]);
    tokio::time::sleep(down_for).await;
    rabbitmqctl(&["start_app"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while broker::connect(&amqp_url(), "test probe").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the broker did not come back within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A queue's ready messages and consumers as the broker reports them, or `None` if it cannot say now
/// (the queue does not exist, or the broker does not answer).
pub async fn queue_stats(queue: &str) -> Option<QueueStats> {
    let connection = broker::connect(&amqp_url(), "test probe").await.ok()?;
    let declared = async {
        let channel = connection.create_channel().await.ok()?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .ok()
    }
    .await;
    let _ = connection.close(200, "done".into()).await;
    declared.map(|queue| QueueStats {
        messages: queue.message_count(),
        consumers: queue.consumer_count(),
    })
}

/// Waits (at most `limit`) until the broker reports exactly `count` consumers on `queue`; returns how
/// long that took, or the last count seen when it did not happen in time.
pub async fn until_consumed(queue: &str, count: u32, limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let mut seen = None;
    while started.elapsed() < limit {
        seen = queue_stats(queue).await.map(|stats| stats.consumers);
        if seen == Some(count) {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "the broker reported {seen:?} consumers on {queue} for {limit:?}, not {count}"
    ))
}

/// Deletes `queue` on the tests' broker, whatever it holds and whoever consumes it: the broker cancels
/// its consumers.
pub async fn delete_queue(queue: &str) {
    let connection = broker::connect(&amqp_url(), "test").await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot delete {queue}: {e}"));
    let _ = connection.close(200, "done".into()).await;
}

/// The arguments the broker holds for `queue`, from its management API (`null` if it has none).
pub fn queue_arguments(queue: &str) -> serde_json::Value {
    let api = std::env::var("TASKQ_TEST_MANAGEMENT_URL")
        .unwrap_or_else(|_| "http://guest:guest@127.0.0.1:15672".into());
    let url = format!("{}/api/queues/%2f/{queue}", api.trim_end_matches('/'));
    let output = Command::new("curl")
        .args(["-fsS", &url])
        .output()
        .expect("curl");
    assert!(
        output.status.success(),
        "GET {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let queue: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    queue["arguments"].clone()
}
