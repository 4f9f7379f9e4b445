//! Chains of maps (`--then`): every output in its place, and a failure travelling from the stage that
//! failed it to the output without running later stages.

use super::*;

#[test]
fn a_then_chain_maps_every_output_and_a_failure_in_the_last_stage_stays_in_place() {
    let mut deployment = Deployment::new("stagechain");
    deployment.start_workers(TEST_WORKER, 2, &[]);
    deployment.start_consumer();

    let summary = deployment
        .producer(&[
            "submit",
            "square",
            "--values",
            "1..=50",
            "--chunk-size",
            "7",
            "--then",
            "test-negate",
            "--wait",
        ])
        .json();

    let expected: Vec<Value> = (1..=50i64)
        .map(|x| {
            let index = (x - 1) as usize;
            if x == 13 {
                // It fails in the last stage itself: its message as the task gave it.
                failed_line(index, json!(169), UNLUCKY)
            } else {
                ok_line(index, json!(x * x), json!(-(x * x)))
            }
        })
        .collect();
    assert_output(&summary, "square -map-> test-negate", &expected, 1);
    assert_eq!(summary["kind"], "test-negate", "the last stage's kind");
    assert_eq!(summary["chunks"].as_u64(), Some(8));
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["square", "source", 8, 8, 50, 0]),
            json!(["test-negate", "map", 8, 8, 50, 1]),
        ]
    );
    assert_timestamps(&summary);
    assert_last_unfinished(&summary);
}

#[test]
fn a_chain_of_squares_keeps_the_last_kinds_aggregate() {
    let mut deployment = Deployment::new("stagesquares");
    deployment.start_test_worker(&[]);
    deployment.start_consumer();

    let summary = deployment
        .producer(&[
            "submit",
            "square",
            "--values",
            "1..=10",
            "--chunk-size",
            "3",
            "--then",
            "square",
            "--wait",
        ])
        .json();

    let expected: Vec<Value> = (1..=10i64)
        .map(|x| ok_line((x - 1) as usize, json!(x * x), json!(x.pow(4))))
        .collect();
    assert_output(&summary, "square -map-> square", &expected, 0);
    assert_eq!(summary["aggregate"], json!({"total": 25333}));
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["square", "source", 4, 4, 10, 0]),
            json!(["square", "map", 4, 4, 10, 0]),
        ]
    );
}

#[test]
fn a_failure_in_a_middle_stage_travels_to_the_output_without_running_later_stages() {
    let mut deployment = Deployment::new("stagemiddle");
    deployment.start_workers(TEST_WORKER, 2, &[]);
    deployment.start_consumer();

    // 13 squared is 169, which stage 1 fails; stages 2 and 3 must carry that failure, not run it.
    let summary = deployment
        .producer(&[
            "submit",
            "square",
            "--values",
            "1..=20",
            "--chunk-size",
            "6",
            "--then",
            "test-negate",
            "--then",
            "test-negate",
            "--then",
            "square",
            "--wait",
        ])
        .json();

    let expected: Vec<Value> = (1..=20i64)
        .map(|x| {
            let index = (x - 1) as usize;
            if x == 13 {
                failed_line(index, Value::Null, "stage 1 (test-negate): 169 is unlucky")
            } else {
                ok_line(index, json!(x * x), json!(x.pow(4)))
            }
        })
        .collect();
    assert_output(
        &summary,
        "square -map-> test-negate -map-> test-negate -map-> square",
        &expected,
        1,
    );
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["square", "source", 4, 4, 20, 0]),
            json!(["test-negate", "map", 4, 4, 20, 1]),
            json!(["test-negate", "map", 4, 4, 20, 1]),
            json!(["square", "map", 4, 4, 20, 1]),
        ]
    );
    assert_timestamps(&summary);
    assert_last_unfinished(&summary);
}
