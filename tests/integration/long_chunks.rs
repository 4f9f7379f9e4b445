//! A chunk that would run longer than RabbitMQ's consumer ack timeout must not be redelivered in a loop:
//! the worker's `--chunk-time-limit` stops starting items once the chunk reached it, reports the rest as
//! failed with a hint to use smaller chunks, and acknowledges the chunk in time.

use taskq_tests::{output_lines, Deployment};

#[tokio::test]
async fn a_chunk_past_its_time_limit_fails_its_remaining_items_and_is_acked_once() {
    let mut deployment = Deployment::new("longchunk");
    // One thread, so items run one after another; each takes a good fraction of a second.
    deployment.start(1, &["--cpu-threads", "1", "--chunk-time-limit", "1"]);
    let summary = deployment
        .producer(&[
            "submit",
            "sum-squares",
            "--from",
            "200000000",
            "--count",
            "12",
            "--chunk-size",
            "12",
            "--wait",
            "--timeout",
            "120",
        ])
        .json();
    let logs = deployment.all_logs();
    let lines = output_lines(&summary);
    let failed: Vec<_> = lines
        .iter()
        .filter(|line| line.get("error").is_some())
        .collect();
    assert!(
        lines[0].get("output").is_some(),
        "the first item always runs: {summary}"
    );
    assert!(
        !failed.is_empty(),
        "12 items of this size take longer than 1 s: {summary}"
    );
    assert_eq!(summary["failed"].as_u64(), Some(failed.len() as u64));
    for line in &failed {
        let error = line["error"].as_str().unwrap();
        assert!(
            error.contains("time limit") && error.contains("--chunk-size"),
            "{error}"
        );
    }
    assert!(!logs.contains("redelivered"), "{logs}");
}
