//! How stages flow: a later stage starting while an earlier one runs (from recorded timestamps), a cap
//! on a stage's chunks in flight, and a running job's per-stage status.

use super::*;

#[test]
fn a_later_stage_starts_while_the_earlier_one_still_runs() {
    let mut deployment = Deployment::new("stagestream");
    deployment.start_workers(TEST_WORKER, 2, &[]);
    deployment.start_consumer();
    // 60 chunks of one heavy item each (tens of ms apiece): stage 0 lasts many times one chunk.
    let from = 2_000_000u64;

    let summary = deployment
        .producer(&[
            "submit",
            "sum-squares",
            "--from",
            &from.to_string(),
            "--count",
            "60",
            "--chunk-size",
            "1",
            "--then",
            "test-negate",
            "--wait",
        ])
        .json();

    let expected: Vec<Value> = (0..60u64)
        .map(|i| {
            let sum = sum_of_squares_below(from + i);
            ok_line(i as usize, json!(sum), json!(-sum))
        })
        .collect();
    assert_output(&summary, "sum-squares -map-> test-negate", &expected, 0);
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["sum-squares", "source", 60, 60, 60, 0]),
            json!(["test-negate", "map", 60, 60, 60, 0]),
        ]
    );
    assert_timestamps(&summary);
    let first_started = millis(&summary, 0, "started_ms");
    let first_finished = millis(&summary, 0, "finished_ms");
    let second_started = millis(&summary, 1, "started_ms");
    assert!(
        second_started < first_finished,
        "stage 1 started ({second_started}) before stage 0 finished ({first_finished})\n{summary}"
    );
    eprintln!(
        "stage 0 ran {first_started}..{first_finished} ms, stage 1 started at +{} ms",
        second_started - first_started
    );
    // No barrier: stage 1 starts after a chunk or two of stage 0, not near its end.
    let half = first_started + (first_finished - first_started) / 2;
    assert!(
        second_started < half,
        "stage 1 started in the first half of stage 0 ({first_started}..{first_finished}), at {second_started}\n{summary}"
    );
}

#[tokio::test]
async fn a_capped_stage_completes_exactly_without_stalling() {
    let mut deployment = Deployment::new("stagecap");
    let workers = deployment.start_workers(TEST_WORKER, 2, &[]);
    deployment.start_consumer();
    let spec = deployment.write_file(
        "capped.toml",
        "[[stage]]\nkind = \"square\"\nchunk_size = 4\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"square\"\ncap = 1\n\n[[stage]]\nname = \"again\"\nkind = \"test-negate\"\nafter = \"test-negate\"\n",
    );
    let submitted = deployment.producer(&[
        "submit",
        "square",
        "--values",
        "1..=40",
        "--spec",
        path_text(&spec),
    ]);
    assert!(submitted.output.status.success(), "{}", submitted.stderr());
    let job: JobId = submitted.stdout().trim().parse().expect("a job id");
    // Stage 1's chunks in flight, sampled while the job runs: the cap holds them to one.
    let store = deployment.store().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut most_in_flight = 0;
    loop {
        let in_flight = store
            .stage_in_flight(job, 1, false)
            .await
            .expect("in flight");
        most_in_flight = most_in_flight.max(in_flight);
        if store.require_job(job).await.expect("job").status.is_final() {
            break;
        }
        assert!(Instant::now() < deadline, "the job did not end within 60 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let summary = deployment
        .producer(&["wait", &job.to_string(), "--timeout", "10"])
        .json();

    let expected: Vec<Value> = (1..=40i64)
        .map(|x| {
            let index = (x - 1) as usize;
            if x == 13 {
                failed_line(index, Value::Null, "stage 1 (test-negate): 169 is unlucky")
            } else {
                ok_line(index, json!(-(x * x)), json!(x * x))
            }
        })
        .collect();
    assert_output(
        &summary,
        "square -map-> test-negate -map-> test-negate",
        &expected,
        1,
    );
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["square", "source", 10, 10, 40, 0]),
            json!(["test-negate", "map", 10, 10, 40, 1]),
            json!(["test-negate", "map", 10, 10, 40, 1]),
        ]
    );
    // The cap slows the stage; it never waits out its bound (10 s) here, where stage 1 keeps up.
    for worker in workers {
        let log = deployment.log(worker);
        assert!(
            !log.contains("publishing anyway"),
            "a follow-up waited out the cap:\n{log}"
        );
    }
    let elapsed_ms = summary["elapsed_ms"].as_u64().expect("elapsed_ms");
    assert!(elapsed_ms < 10_000, "took {elapsed_ms} ms: {summary}");
    assert!(
        most_in_flight <= 1,
        "stage 1 had {most_in_flight} chunks in flight, over its cap of 1\n{}",
        deployment.all_logs()
    );
}

#[tokio::test]
async fn a_running_job_shows_each_stages_progress_and_completes_once_its_kind_is_served() {
    let mut deployment = Deployment::new("stagestatus");
    // The stock worker serves square, not test-negate: stage 1 waits in its queue.
    deployment.start_worker(&[]);
    deployment.start_consumer();
    let submitted = deployment.producer(&[
        "submit",
        "square",
        "--values",
        "1..=30",
        "--chunk-size",
        "4",
        "--then",
        "test-negate",
        "--allow-unserved",
    ]);
    assert!(submitted.output.status.success(), "{}", submitted.stderr());
    let job = submitted.stdout().trim().to_owned();
    let id: JobId = job.parse().expect("a job id");
    let store = deployment.store().await;
    eventually("stage 0 to finish", Duration::from_secs(30), || async {
        let progress = store.stage_progress(id).await.expect("progress")?;
        (progress.stages[0].chunks_done == 8).then_some(())
    })
    .await;

    let status = deployment.producer(&["status", &job]).json();
    assert_eq!(status["status"], "running", "{status}");
    assert_eq!(status["pipeline"], "square -map-> test-negate", "{status}");
    assert_eq!(
        stage_counts(&status),
        [
            json!(["square", "source", 8, 8, 30, 0]),
            json!(["test-negate", "map", 8, 0, 0, 0]),
        ]
    );
    assert!(status["stages"][0]["started_ms"].is_u64(), "{status}");
    assert!(status["stages"][0]["finished_ms"].is_u64(), "{status}");
    assert_eq!(status["stages"][1]["started_ms"], Value::Null, "{status}");
    let queue = deployment.topology().task_queue("test-negate");
    assert_eq!(
        deployment.queue_stats(&queue).await,
        Some(QueueStats {
            messages: 8,
            consumers: 0
        }),
        "stage 1's chunks wait in their queue"
    );

    deployment.start_test_worker(&[]);
    let summary = deployment
        .producer(&["wait", &job, "--timeout", "60"])
        .json();
    let expected: Vec<Value> = (1..=30i64)
        .map(|x| {
            let index = (x - 1) as usize;
            if x == 13 {
                failed_line(index, json!(169), UNLUCKY)
            } else {
                ok_line(index, json!(x * x), json!(-(x * x)))
            }
        })
        .collect();
    assert_output(&summary, "square -map-> test-negate", &expected, 1);
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["square", "source", 8, 8, 30, 0]),
            json!(["test-negate", "map", 8, 8, 30, 1]),
        ]
    );
    assert_timestamps(&summary);
}
