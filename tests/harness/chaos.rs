//! What the tests that kill processes share: seeded randomness whose seed is printed, killing processes
//! at random and starting them again, and the exactness check of a `square` job's output. Restarting
//! the broker is in [`crate::rabbitmq`].

use std::ops::Range;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use taskq_common::job::JobId;

use crate::Deployment;

/// A seeded random source: the seed is `TASKQ_CHAOS_SEED` if set (to replay a run), else random, and
/// printed either way; returns the seed too, for failure messages.
pub fn seeded() -> (u64, StdRng) {
    let seed = std::env::var("TASKQ_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("chaos seed: {seed} (replay with TASKQ_CHAOS_SEED={seed})");
    (seed, StdRng::seed_from_u64(seed))
}

/// How a kill loop goes: at most `most` kills, for at most `lasting`, one after a pause drawn from
/// `pause_ms` each time.
#[derive(Debug, Clone)]
pub struct Kills {
    /// The most kills.
    pub most: u32,
    /// The longest the loop goes on.
    pub lasting: Duration,
    /// The pause before each kill, in milliseconds.
    pub pause_ms: Range<u64>,
}

/// Kills one of `processes` (indexes in `deployment`) at random with SIGKILL and starts it again in its
/// place (not waiting for it to come up).
pub fn kill_and_restart_one(
    deployment: &mut Deployment,
    processes: &mut [usize],
    rng: &mut StdRng,
) {
    let victim = rng.random_range(0..processes.len());
    deployment.kill(processes[victim]);
    processes[victim] = deployment.restart(processes[victim]);
}

/// Kills workers at random as [`Kills`] says, until `job` ends, then waits until every worker started in
/// their place is registered (one that cannot come back would stall the job for another reason); returns
/// how many kills there were.
pub async fn kill_workers_at_random(
    deployment: &mut Deployment,
    workers: &mut [usize],
    job: JobId,
    rng: &mut StdRng,
    kills: &Kills,
) -> u32 {
    let store = deployment.store().await;
    let started = Instant::now();
    let mut done = 0;
    while done < kills.most && started.elapsed() < kills.lasting {
        tokio::time::sleep(Duration::from_millis(
            rng.random_range(kills.pause_ms.clone()),
        ))
        .await;
        if store.require_job(job).await.expect("job").status.is_final() {
            break;
        }
        kill_and_restart_one(deployment, workers, rng);
        done += 1;
    }
    deployment.wait_until_registered(workers);
    done
}

/// Asserts a job completed with `items` items, none failed, and its output file's lines are, in
/// order, `expected(0)`, `expected(1)`, ...: every item exactly once.
pub fn assert_output_is(
    summary: &Value,
    items: u64,
    context: &str,
    expected: impl Fn(u64) -> Value,
) {
    assert_eq!(summary["status"], "completed", "{context}: {summary}");
    assert_eq!(summary["items"].as_u64(), Some(items), "{context}");
    assert_eq!(summary["failed"].as_u64(), Some(0), "{context}");
    let text =
        std::fs::read_to_string(summary["output"].as_str().expect("output")).expect("output file");
    let mut count = 0u64;
    for line in text.lines() {
        let line: Value = serde_json::from_str(line).expect("JSON line");
        assert_eq!(line, expected(count), "{context}: line {count}");
        count += 1;
    }
    assert_eq!(count, items, "{context}: every item exactly once");
}

/// Asserts a `square` job of x = 1..=`items` completed and its output file holds x*x for each, exactly
/// once, in order.
pub fn assert_every_square_once(summary: &Value, items: u64, context: &str) {
    assert_output_is(summary, items, context, |i| {
        let x = i + 1;
        serde_json::json!({"index": i, "input": x, "output": x * x})
    });
}
