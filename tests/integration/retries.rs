//! Task failures that a later attempt may fix are retried after delays the broker keeps (TTL and
//! dead-lettering), up to `--max-retries`; then the chunk's items count as failed and a copy goes to the
//! dead-letter queue, where `producer dlq` lists, replays and purges it.

use std::time::Instant;

use taskq_common::envelope::WIRE_VERSION;
use taskq_common::job::JobId;
use taskq_common::topology::RETRY_DELAYS;
use taskq_tests::{output_lines, payload, Deployment, TEST_WORKER};

/// The test worker's kind that fails its first runs (see tests/bin/test_kinds/flaky.rs).
const FLAKY: &str = "test-flaky";

/// Publishes a `test-flaky` job with one chunk per entry of `failing_runs`: chunk i fails its first
/// `failing_runs[i]` runs.
async fn flaky_job(deployment: &Deployment, failing_runs: &[u32]) -> JobId {
    deployment.declare_kinds(&[FLAKY]).await;
    let chunks = failing_runs.len() as u32;
    let job = deployment
        .create_job(FLAKY, chunks, u64::from(chunks))
        .await;
    let messages: Vec<_> = failing_runs
        .iter()
        .enumerate()
        .map(|(i, runs)| {
            let body = payload(i as u64, vec![*runs]);
            deployment.task(job, i as u32, FLAKY, WIRE_VERSION, body)
        })
        .collect();
    deployment.publish(&messages).await;
    job
}

#[tokio::test]
async fn transient_failures_are_retried_after_broker_held_delays_until_they_succeed() {
    let mut deployment = Deployment::new("retries");
    let started = Instant::now();
    let job = flaky_job(&deployment, &[0, 1, 2]).await;
    deployment.start_workers(TEST_WORKER, 2, &["--max-retries", "3"]);
    deployment.start_consumer();

    let summary = deployment
        .producer(&["wait", &job.to_string(), "--timeout", "60"])
        .json();
    assert_eq!(
        (summary["items"].as_u64(), summary["failed"].as_u64()),
        (Some(3), Some(0)),
        "{summary}\n{}",
        deployment.all_logs()
    );
    // Each chunk's output is the attempt that succeeded: the failed runs really ran again.
    let succeeded_on: Vec<u64> = output_lines(&summary)
        .iter()
        .map(|line| line["output"].as_u64().unwrap())
        .collect();
    assert_eq!(succeeded_on, [1, 2, 3]);
    // The third chunk waited out the first two levels (each at least its delay) in the broker.
    let waited = RETRY_DELAYS[0] + RETRY_DELAYS[1];
    assert!(started.elapsed() >= waited, "{:?}", started.elapsed());
    let logs = deployment.all_logs();
    assert_eq!(
        logs.matches("task failed; retrying later").count(),
        3,
        "{logs}"
    );
    assert_eq!(
        deployment
            .queue_depth(&deployment.topology().dead_queue())
            .await,
        0
    );
}

#[tokio::test]
async fn a_chunk_failing_every_retry_is_counted_failed_then_listed_replayed_and_purged() {
    let mut deployment = Deployment::new("dlq");
    // Chunk 0 always fails; chunk 1 fails twice, so with one retry it is dead too, and succeeds on replay.
    // The second job's one chunk is like chunk 1.
    let job = flaky_job(&deployment, &[1000, 2]).await;
    let healed = flaky_job(&deployment, &[2]).await;
    deployment.start_workers(TEST_WORKER, 1, &["--max-retries", "1"]);
    deployment.start_consumer();
    let summary = deployment
        .producer(&["wait", &healed.to_string(), "--timeout", "60"])
        .json();
    assert_eq!(summary["failed"].as_u64(), Some(1), "{summary}");

    let summary = deployment
        .producer(&["wait", &job.to_string(), "--timeout", "60"])
        .json();
    assert_eq!(
        (summary["items"].as_u64(), summary["failed"].as_u64()),
        (Some(2), Some(2)),
        "{summary}"
    );
    let lines = output_lines(&summary);
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("flaky failure 2 of 1000"),
        "{lines:?}"
    );

    // Both chunks are in the dead-letter queue with their error, attempts and worker.
    let listed = deployment
        .producer(&["dlq", "list", "--job", &job.to_string()])
        .json();
    let letters = listed.as_array().unwrap();
    assert_eq!(letters.len(), 2, "{listed}");
    for letter in letters {
        assert_eq!(letter["job_id"].as_str(), Some(job.to_string().as_str()));
        assert_eq!(letter["attempts"].as_u64(), Some(2), "{letter}");
        assert!(
            letter["reason"]
                .as_str()
                .unwrap()
                .starts_with("failed after 2 attempts: flaky failure 2 of"),
            "{letter}"
        );
        assert!(
            letter["refused_by"].as_str().unwrap().contains('-'),
            "{letter}"
        );
        assert_eq!(letter["replayable"].as_bool(), Some(true));
    }
    // Listing left them where they were.
    let dead = deployment.topology().dead_queue();
    assert_eq!(deployment.queue_depth(&dead).await, 3);

    // The operator allows more retries and replays: a new job with both chunks, keeping the original
    // item indices, with a fresh retry budget. The always-failing chunk fails again (and is dead-lettered
    // again); the other succeeds on its third attempt.
    deployment.kill(0);
    deployment.start_test_worker(&["--max-retries", "2"]);
    // Every replayed item succeeds: exit 0.
    let replayed = deployment
        .producer(&["dlq", "replay", "--job", &healed.to_string(), "--wait"])
        .json();
    assert_eq!(
        replayed[0]["summary"]["failed"].as_u64(),
        Some(0),
        "{replayed}"
    );
    // An item fails again: the report still on stdout, and exit 3 saying so.
    let run = deployment.producer(&["dlq", "replay", "--job", &job.to_string(), "--wait"]);
    assert_eq!(run.code(), Some(3), "{}", run.stderr());
    let replayed = run.stdout_json();
    let replay = &replayed[0];
    let again = format!(
        "1 replayed item(s) failed again, in job(s) {}:",
        replay["job_id"].as_str().unwrap()
    );
    assert!(run.stderr().contains(&again), "{}", run.stderr());
    assert_eq!(replay["replay_of"].as_str(), Some(job.to_string().as_str()));
    assert_eq!(replay["chunks"].as_u64(), Some(2));
    let replay_summary = &replay["summary"];
    assert_eq!(
        (
            replay_summary["items"].as_u64(),
            replay_summary["failed"].as_u64()
        ),
        (Some(2), Some(1)),
        "{replayed}"
    );
    let indices: Vec<u64> = output_lines(replay_summary)
        .iter()
        .map(|line| line["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, [0, 1]);

    // Only the chunk that failed again is left; purge removes it.
    let purged = deployment.producer(&["dlq", "purge"]).json();
    assert_eq!(purged["purged"].as_u64(), Some(1), "{purged}");
    assert_eq!(deployment.queue_depth(&dead).await, 0);
}
