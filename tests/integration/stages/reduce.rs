//! Reduces: 100,000 values folded exactly through the tree, failures left out of the fold, and the
//! last stage unfinished until the job is.

use super::*;

#[test]
fn a_reduce_folds_100000_outputs_exactly_through_its_tree() {
    let mut deployment = Deployment::new("stagereduce");
    deployment.start_workers(TEST_WORKER, 2, &[]);
    deployment.start_consumer();
    let spec = deployment.write_file("sum.toml", &two_stages("square", "test-sum", "reduce"));

    let summary = deployment
        .producer(&[
            "submit",
            "square",
            "--values",
            "1..=100000",
            "--chunk-size",
            "1000",
            "--spec",
            path_text(&spec),
            "--wait",
        ])
        .json();

    // The sum of x² for x = 1..=n is n(n+1)(2n+1)/6.
    let expected = [json!({"index": 0, "input": null, "output": 333_338_333_350_000i64})];
    assert_output(&summary, "square -reduce-> test-sum", &expected, 0);
    assert_eq!(summary["kind"], "test-sum");
    assert_eq!(
        summary["chunks"].as_u64(),
        Some(1),
        "one result: the root's"
    );
    // 100 leaves fold in 7 nodes of 16, then the root.
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["square", "source", 100, 100, 100_000, 0]),
            json!(["test-sum", "reduce", 8, 8, 8, 0]),
        ]
    );
    assert_timestamps(&summary);
}

#[test]
fn a_reduce_after_a_failure_folds_the_outputs_that_succeeded() {
    let mut deployment = Deployment::new("stagereducefail");
    deployment.start_test_worker(&[]);
    deployment.start_consumer();
    let spec = deployment.write_file(
        "sum.toml",
        "[[stage]]\nkind = \"square\"\n[[stage]]\nkind = \"test-negate\"\nafter = \"square\"\n[[stage]]\nkind = \"test-sum\"\nafter = \"test-negate\"\nedge = \"reduce\"\n",
    );

    let summary = deployment
        .producer(&[
            "submit",
            "square",
            "--values",
            "1..=20",
            "--chunk-size",
            "3",
            "--spec",
            path_text(&spec),
            "--wait",
        ])
        .json();

    // -(1² + ... + 20²) = -2870, without 13² = 169, which failed in stage 1.
    let expected = [json!({"index": 0, "input": null, "output": -2701})];
    assert_output(
        &summary,
        "square -map-> test-negate -reduce-> test-sum",
        &expected,
        0,
    );
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["square", "source", 7, 7, 20, 0]),
            json!(["test-negate", "map", 7, 7, 20, 1]),
            json!(["test-sum", "reduce", 1, 1, 1, 0]),
        ]
    );
}

#[test]
fn the_last_stage_has_no_finished_ms_even_when_it_is_a_reduce_of_several_nodes() {
    let mut deployment = Deployment::new("stagelastfinish");
    deployment.start_test_worker(&[]);
    deployment.start_consumer();
    let spec = deployment.write_file("sum.toml", &two_stages("square", "test-sum", "reduce"));

    let summary = deployment
        .producer(&[
            "submit",
            "square",
            "--values",
            "1..=40",
            "--chunk-size",
            "1",
            "--spec",
            path_text(&spec),
            "--wait",
        ])
        .json();

    let expected = [json!({"index": 0, "input": null, "output": 22140})];
    assert_output(&summary, "square -reduce-> test-sum", &expected, 0);
    // 40 leaves: 3 nodes, then the root.
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["square", "source", 40, 40, 40, 0]),
            json!(["test-sum", "reduce", 4, 4, 4, 0]),
        ]
    );
    assert_timestamps(&summary);
    // finished_ms is for the stages before the last; the last stage's end is the job's.
    assert_last_unfinished(&summary);
}
