//! Multi-stage jobs end to end: `--then` chains and `--spec` files run by the real workers, each stage
//! starting on its predecessor's chunks as they are recorded. Checked exactly: every output line, each
//! stage's counts (`chunks_done == chunks`, items, failures), failures travelling from the stage that
//! failed them to the output without running later, a flat-map renumbering its lines, a reduce folding
//! 100,000 values through its tree, streaming read from the recorded timestamps (not from sleeps), a cap,
//! a running job's per-stage status, retries and cancel reaching later stages, and bad specs refused with
//! their line before anything is recorded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskq_common::job::JobId;
use taskq_tests::{
    eventually, output_lines, Deployment, QueueStats, Run, TEST_WORKER, WORDCOUNT_WORKER,
};

/// What `test-negate` says of 169.
const UNLUCKY: &str = "169 is unlucky";

/// The path of a written file, as text (the producer names it in its errors).
fn path_text(path: &std::path::Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Each stage's counts, without its timestamps: `[kind, edge, chunks, chunks_done, items, failed]`.
fn stage_counts(summary: &Value) -> Vec<Value> {
    summary["stages"]
        .as_array()
        .unwrap_or_else(|| panic!("a multi-stage summary has stages: {summary}"))
        .iter()
        .map(|stage| {
            json!([
                stage["kind"],
                stage["edge"],
                stage["chunks"],
                stage["chunks_done"],
                stage["items"],
                stage["failed"]
            ])
        })
        .collect()
}

/// A stage's timestamp, ms since the epoch.
fn millis(summary: &Value, stage: usize, field: &str) -> u64 {
    summary["stages"][stage][field]
        .as_u64()
        .unwrap_or_else(|| panic!("stage {stage} has a {field}: {summary}"))
}

/// Asserts the stages' timestamps are consistent: each stage started, no stage before the one it
/// follows, and every stage but the last finished no earlier than it started. The last stage's
/// `finished_ms` is checked by the tests (it is null).
fn assert_timestamps(summary: &Value) {
    let stages = summary["stages"].as_array().expect("stages").len();
    for stage in 0..stages {
        let started = millis(summary, stage, "started_ms");
        if stage > 0 {
            let before = millis(summary, stage - 1, "started_ms");
            assert!(
                started >= before,
                "stage {stage} started before stage {} did: {summary}",
                stage - 1
            );
        }
        if stage + 1 < stages {
            let finished = millis(summary, stage, "finished_ms");
            assert!(
                finished >= started,
                "stage {stage} finished before it started: {summary}"
            );
        }
    }
}

/// Asserts the last stage has no `finished_ms` (the job's own end is its end).
fn assert_last_unfinished(summary: &Value) {
    let stages = summary["stages"].as_array().expect("stages");
    let last = stages.last().expect("a stage");
    assert_eq!(
        last["finished_ms"],
        Value::Null,
        "the last stage's finished_ms is null: {summary}"
    );
}

/// Asserts a completed job's summary: its status, kind, pipeline, items and failures, and that the
/// output file and the inline results hold `expected`.
fn assert_output(summary: &Value, pipeline: &str, expected: &[Value], failed: u64) {
    assert_eq!(summary["status"], "completed", "{summary}");
    assert_eq!(summary["pipeline"], pipeline, "{summary}");
    assert_eq!(
        (summary["items"].as_u64(), summary["failed"].as_u64()),
        (Some(expected.len() as u64), Some(failed)),
        "{summary}"
    );
    assert_eq!(output_lines(summary), expected, "the output file");
    assert_eq!(
        summary["results"].as_array().map(Vec::as_slice),
        Some(expected),
        "the inline results"
    );
}

/// The line of an item that failed.
fn failed_line(index: usize, input: Value, error: &str) -> Value {
    json!({"index": index, "input": input, "error": error})
}

/// The line of an item that succeeded.
fn ok_line(index: usize, input: Value, output: Value) -> Value {
    json!({"index": index, "input": input, "output": output})
}

/// A spec of two stages: `first`, then `second` taking its outputs by `edge`.
fn two_stages(first: &str, second: &str, edge: &str) -> String {
    format!(
        "[[stage]]\nkind = \"{first}\"\n\n[[stage]]\nkind = \"{second}\"\nafter = \"{first}\"\nedge = \"{edge}\"\n"
    )
}

/// `SumSquares`' closed form: the sum of i² for i in 0..n.
fn sum_of_squares_below(n: u64) -> i128 {
    let n = i128::from(n);
    n * (n - 1) * (2 * n - 1) / 6
}

mod chains;
mod control;
mod flat_map;
mod flow;
mod reduce;
mod refusals;
