//! The N-workers pattern: the producer splits the data, two workers share the chunks, the consumer
//! consolidates. Results are checked exactly, in input order, in the summary and in the output file.

use serde_json::Value;
use taskq_tests::{output_lines, Deployment};
use worker::tasks::SumSquares;

/// The (input, output) pairs of a summary's inline results, as exact decimal strings.
fn inline_results(summary: &Value) -> Vec<(String, String)> {
    summary["results"]
        .as_array()
        .expect("inline results")
        .iter()
        .enumerate()
        .map(|(i, line)| {
            assert_eq!(
                line["index"].as_u64(),
                Some(i as u64),
                "results out of order: {line}"
            );
            (line["input"].to_string(), line["output"].to_string())
        })
        .collect()
}

#[test]
fn seed_sum_squares_job_is_exact() {
    let mut deployment = Deployment::new("seed");
    deployment.start(2, &[]);
    let run = deployment.producer(&[
        "submit",
        "sum-squares",
        "--from",
        "5000000",
        "--count",
        "20",
        "--wait",
    ]);
    let summary = run.json();

    let expected: Vec<(String, String)> = (5_000_000u64..5_000_020)
        .map(|n| (n.to_string(), SumSquares::closed_form(n).to_string()))
        .collect();
    assert_eq!(inline_results(&summary), expected);
    let total: u128 = (5_000_000u64..5_000_020).map(SumSquares::closed_form).sum();
    assert_eq!(summary["aggregate"]["total"].to_string(), total.to_string());
    assert_eq!(summary["status"], "completed");
    assert_eq!(
        (summary["items"].as_u64(), summary["failed"].as_u64()),
        (Some(20), Some(0))
    );

    let lines = output_lines(&summary);
    assert_eq!(lines.len(), 20);
    for (line, (n, sum)) in lines.iter().zip(&expected) {
        assert_eq!(
            (line["input"].to_string(), line["output"].to_string()),
            (n.clone(), sum.clone())
        );
    }
    assert!(std::path::Path::new(
        &summary["output"]
            .as_str()
            .unwrap()
            .replace(".jsonl", ".summary.json")
    )
    .exists());
}

#[test]
fn square_job_keeps_input_order() {
    let mut deployment = Deployment::new("square");
    deployment.start(2, &[]);
    let summary = deployment
        .producer(&[
            "submit",
            "square",
            "--values",
            "1..=14",
            "--chunk-size",
            "3",
            "--wait",
        ])
        .json();
    let outputs: Vec<String> = inline_results(&summary)
        .into_iter()
        .map(|(_, output)| output)
        .collect();
    let expected: Vec<String> = (1..=14i64).map(|x| (x * x).to_string()).collect();
    assert_eq!(outputs, expected);
    assert_eq!(summary["chunks"].as_u64(), Some(5));
    assert_eq!(summary["aggregate"]["total"].as_i64(), Some(1015));
}

#[test]
fn many_small_chunks_land_in_order_in_the_output_file() {
    let mut deployment = Deployment::new("many");
    deployment.start(2, &[]);
    let summary = deployment
        .producer(&[
            "submit",
            "square",
            "--values",
            "-5000..5000",
            "--chunk-size",
            "7",
            "--wait",
        ])
        .json();
    assert!(
        summary.get("results").is_none(),
        "10,000 items are too many to inline"
    );
    assert_eq!(summary["chunks"].as_u64(), Some(1429));
    let lines = output_lines(&summary);
    assert_eq!(lines.len(), 10_000);
    for (i, line) in lines.iter().enumerate() {
        let x = i as i64 - 5000;
        assert_eq!(
            (line["index"].as_u64(), line["input"].as_i64()),
            (Some(i as u64), Some(x))
        );
        assert_eq!(line["output"].as_i64(), Some(x * x), "line {i}");
    }
}

#[test]
fn submit_prints_the_job_id_and_status_and_wait_follow_it() {
    let mut deployment = Deployment::new("follow");
    // No worker yet: the submit must be told to enqueue anyway.
    let submitted =
        deployment.producer(&["submit", "square", "--allow-unserved", "--values", "1,2,3"]);
    assert!(submitted.output.status.success(), "{}", submitted.stderr());
    let job = submitted.stdout().trim().to_owned();
    assert_eq!(job.len(), 36, "a job id: {job}");

    // No worker yet: the job is recorded and waits in the queue.
    let status = deployment.producer(&["status", &job]).json();
    assert_eq!(
        (status["status"].as_str(), status["items_done"].as_u64()),
        (Some("running"), Some(0))
    );
    let timed_out = deployment.producer(&["wait", &job, "--timeout", "1"]);
    assert_eq!(timed_out.code(), Some(1));
    assert!(
        timed_out.stderr().contains("gave up waiting"),
        "{}",
        timed_out.stderr()
    );

    deployment.start(1, &[]);
    let summary = deployment.producer(&["wait", &job]).json();
    assert_eq!(summary["aggregate"]["total"].as_i64(), Some(14));
    assert_eq!(deployment.producer(&["status", &job]).json(), summary);
}
