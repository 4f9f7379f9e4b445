//! A later stage's chunks under the job's controls: a transient failure retried through the broker, a
//! cancel stopping every stage, and a `neighbours` edge refused into a kind that has no notion of it.

use super::*;

#[test]
fn a_later_stage_retries_a_transient_failure_and_the_job_completes() {
    let mut deployment = Deployment::new("stage-retry");
    deployment.start_test_worker(&[]);
    deployment.start_consumer();
    // square: 0 -> 0, 1 -> 1; test-flaky then fails an item that many runs before one succeeds, and
    // outputs the attempt that did: 1 for 0, 2 for 1 (its chunk went back through a retry queue).
    let run = deployment.producer(&[
        "submit",
        "square",
        "--values",
        "0..=1",
        "--chunk-size",
        "1",
        "--then",
        "test-flaky",
        "--wait",
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let summary = run.stdout_json();
    let outputs: Vec<Value> = output_lines(&summary)
        .iter()
        .map(|line| line["output"].clone())
        .collect();
    assert_eq!(outputs, vec![json!(1), json!(2)], "{summary}");
    assert_eq!(
        stage_counts(&summary)[1],
        json!(["test-flaky", "map", 2, 2, 2, 0])
    );
}

#[tokio::test]
async fn a_cancel_stops_every_stage_of_a_job() {
    let mut deployment = Deployment::new("stage-cancel");
    deployment.start_test_worker(&["--cpu-threads", "1"]);
    deployment.start_consumer();
    // 60 items of about a tenth of a second each in stage 0: the cancel lands mid-job.
    let job = deployment.producer(&[
        "submit",
        "sum-squares",
        "--from",
        "3000000",
        "--count",
        "60",
        "--then",
        "test-negate",
    ]);
    assert_eq!(job.code(), Some(0), "{}", job.stderr());
    let job = job.stdout().trim().to_owned();
    let id: JobId = job.parse().expect("a job id");
    let store = deployment.store().await;
    let store = &store;
    eventually(
        "stage 1 to record a chunk",
        Duration::from_secs(60),
        || async move {
            let progress = store.stage_progress(id).await.ok().flatten()?;
            (progress.stages[1].chunks_done > 0).then_some(())
        },
    )
    .await;
    let cancel = deployment.producer(&["cancel", &job]);
    assert_eq!(cancel.code(), Some(0), "{}", cancel.stderr());
    let waited = deployment.producer(&["wait", &job, "--timeout", "60"]);
    assert_eq!(
        waited.code(),
        Some(1),
        "a cancelled job: {}",
        waited.stderr()
    );
    let summary = waited.stdout_json();
    assert_eq!(summary["status"], "cancelled", "{summary}");
    let lines = output_lines(&summary);
    assert!(
        (1..60).contains(&lines.len()),
        "the output holds the last stage's items finished before the cancel: {summary}"
    );
    for line in lines {
        let n = 3_000_000 + line["index"].as_u64().expect("an index");
        let sum = sum_of_squares_below(n);
        assert_eq!(line["input"].to_string(), sum.to_string(), "{line}");
        assert_eq!(line["output"].to_string(), (-sum).to_string(), "{line}");
    }
}

#[tokio::test]
async fn a_neighbours_edge_into_a_kind_without_the_notion_is_refused() {
    let mut deployment = Deployment::new("stage-neighbours");
    deployment.start_test_worker(&[]);
    let spec = "[[stage]]\nkind = \"square\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"square\"\nedge = \"neighbours\"\n";
    let path = deployment.write_file("neighbours.toml", spec);
    let run = deployment.producer(&[
        "submit",
        "square",
        "--values",
        "1..=5",
        "--spec",
        path_text(&path),
    ]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("kind 'test-negate' has no notion of neighbours"),
        "{}",
        run.stderr()
    );
    let jobs = deployment.store().await.job_ids().await.expect("job ids");
    assert!(jobs.is_empty(), "nothing recorded: {jobs:?}");
}
