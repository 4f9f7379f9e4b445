//! Multi-stage jobs end to end: `--then` chains and `--spec` files run by the real workers, each stage
//! starting on its predecessor's chunks as they are recorded. Checked exactly: every output line, each
//! stage's counts (`chunks_done == chunks`, items, failures), failures travelling from the stage that
//! failed them to the output without running later, a flat-map renumbering its lines, a reduce folding
//! 100,000 values through its tree, streaming read from the recorded timestamps (not from sleeps), a cap,
//! a running job's per-stage status, and bad specs refused with their line before anything is recorded.

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

/// The word count's texts (repeated) and the words each contributes, normalized.
const TEXTS: [(&str, &[&str]); 5] = [
    (
        "Hello, world! Hello again.",
        &["hello", "world", "hello", "again"],
    ),
    (
        "The cat; the HAT... the end",
        &["the", "cat", "the", "hat", "the", "end"],
    ),
    ("  spaced   out\t WORLD \n", &["spaced", "out", "world"]),
    ("Naïve café, CAFÉ!", &["naïve", "café", "café"]),
    (
        "It's 42 o'clock: it's TIME.",
        &["it's", "42", "o'clock", "it's", "time"],
    ),
];

/// How often [`TEXTS`] are repeated.
const REPEATS: usize = 40;

#[test]
fn the_wordcount_spec_counts_every_word_exactly_through_a_flat_map_and_a_reduce() {
    let mut deployment = Deployment::new("stagewords");
    deployment.start_workers(WORDCOUNT_WORKER, 2, &[]);
    deployment.start_consumer();
    let mut texts: Vec<&str> = Vec::new();
    for _ in 0..REPEATS {
        texts.extend(TEXTS.iter().map(|(text, _)| *text));
    }
    // A word with no letters, which normalize-word fails, and a text with no words at all.
    texts.insert(57, "...");
    texts.insert(101, "");
    let lines: String = texts
        .iter()
        .map(|text| format!("{}\n", json!(text)))
        .collect();
    let file = deployment.write_file("texts.jsonl", &lines);
    let spec = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/wordcount/wordcount.toml"
    );

    let summary = deployment
        .producer(&[
            "submit",
            "split-words",
            "--items-file",
            path_text(&file),
            "--spec",
            spec,
            "--wait",
        ])
        .json();

    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, words) in TEXTS {
        for word in words {
            *counts.entry(word).or_default() += REPEATS as u64;
        }
    }
    let words: usize = TEXTS.iter().map(|(_, words)| words.len()).sum::<usize>() * REPEATS;
    let expected = [json!({"index": 0, "input": null, "output": counts})];
    assert_output(
        &summary,
        "split-words -flat-map-> normalize-word -reduce-> count-words",
        &expected,
        0,
    );
    // 202 texts in chunks of 10 (the spec's chunk_size): 21 chunks, whose 21 leaves fold in 2 nodes
    // and the root.
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["split-words", "source", 21, 21, 202, 0]),
            json!(["normalize-word", "flat-map", 21, 21, words + 1, 1]),
            json!(["count-words", "reduce", 3, 3, 3, 0]),
        ]
    );
    assert_timestamps(&summary);
}

/// A spec of two stages: `first`, then `second` taking its outputs by `edge`.
fn two_stages(first: &str, second: &str, edge: &str) -> String {
    format!(
        "[[stage]]\nkind = \"{first}\"\n\n[[stage]]\nkind = \"{second}\"\nafter = \"{first}\"\nedge = \"{edge}\"\n"
    )
}

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

/// The texts of the flat-map job: text `i` has `i % 17` words (`W{i}x{k},`), so some have none.
fn numbered_texts(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            (0..i % 17)
                .map(|k| format!("W{i}x{k},"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn a_flat_map_renumbers_the_lines_and_carries_each_failure_to_its_place() {
    let mut deployment = Deployment::new("stageflat");
    deployment.start_workers(WORDCOUNT_WORKER, 2, &[]);
    deployment.start_consumer();
    let mut items: Vec<Value> = numbered_texts(150).into_iter().map(Value::from).collect();
    // Not a text: split-words fails it, and the flat-map carries it as one failed item.
    items.insert(5, json!(42));
    // A word normalize-word fails, in the last stage.
    items.insert(77, json!("... ok"));
    let lines: String = items.iter().map(|item| format!("{item}\n")).collect();
    let file = deployment.write_file("texts.jsonl", &lines);
    let spec = deployment.write_file(
        "words.toml",
        "[[stage]]\nkind = \"split-words\"\nchunk_size = 7\n\n[[stage]]\nkind = \"normalize-word\"\nafter = \"split-words\"\nedge = \"flat-map\"\n",
    );

    let summary = deployment
        .producer(&[
            "submit",
            "split-words",
            "--items-file",
            path_text(&file),
            "--spec",
            path_text(&spec),
            "--wait",
        ])
        .json();

    let mut expected: Vec<Value> = Vec::new();
    for item in &items {
        let index = expected.len();
        match item.as_str() {
            None => expected.push(failed_line(
                index,
                Value::Null,
                "stage 0 (split-words): input 42 is not a valid 'split-words' input: invalid type: integer `42`, expected a string",
            )),
            Some(text) => {
                for word in text.split_whitespace() {
                    let index = expected.len();
                    expected.push(if word == "..." {
                        failed_line(index, json!(word), "'...' has no letters or digits")
                    } else {
                        // normalize-word counts its word once: {"w5x0": 1}.
                        let normalized = word.trim_end_matches(',').to_lowercase();
                        ok_line(index, json!(word), json!({ normalized: 1 }))
                    });
                }
            }
        }
    }
    // 1,179 words, the word that fails and the item that was not a text.
    assert_eq!(expected.len(), 1182);
    assert_eq!(summary["status"], "completed", "{summary}");
    assert_eq!(
        (summary["items"].as_u64(), summary["failed"].as_u64()),
        (Some(1182), Some(2)),
        "{summary}"
    );
    assert_eq!(
        summary["pipeline"],
        "split-words -flat-map-> normalize-word"
    );
    assert!(
        summary.get("results").is_none(),
        "more than 1,000 lines are not inline: {}",
        summary["results"]
    );
    let written = output_lines(&summary);
    assert_eq!(written.len(), expected.len());
    for (line, expected) in written.iter().zip(&expected) {
        assert_eq!(line, expected);
    }
    // 152 items in chunks of 7.
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["split-words", "source", 22, 22, 152, 1]),
            json!(["normalize-word", "flat-map", 22, 22, 1182, 2]),
        ]
    );
    assert_timestamps(&summary);
    assert_last_unfinished(&summary);
}

#[test]
fn a_flat_map_over_outputs_that_are_not_arrays_fails_each_item_with_the_reason() {
    let mut deployment = Deployment::new("stagenotarray");
    deployment.start_test_worker(&[]);
    deployment.start_consumer();
    let spec = deployment.write_file(
        "flat.toml",
        &two_stages("square", "test-negate", "flat-map"),
    );

    let summary = deployment
        .producer(&[
            "submit",
            "square",
            "--values",
            "1..=4",
            "--chunk-size",
            "3",
            "--spec",
            path_text(&spec),
            "--wait",
        ])
        .json();

    let expected: Vec<Value> = (1..=4i64)
        .map(|x| {
            let index = (x - 1) as usize;
            let message = format!(
                "stage 0 (square): item {index} gave {}, but a flat-map stage follows, which needs a JSON array",
                x * x
            );
            failed_line(index, Value::Null, &message)
        })
        .collect();
    assert_output(&summary, "square -flat-map-> test-negate", &expected, 4);
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["square", "source", 2, 2, 4, 0]),
            json!(["test-negate", "flat-map", 2, 2, 4, 4]),
        ]
    );
}

/// `SumSquares`' closed form: the sum of i² for i in 0..n.
fn sum_of_squares_below(n: u64) -> i128 {
    let n = i128::from(n);
    n * (n - 1) * (2 * n - 1) / 6
}

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

/// Asserts a producer run was refused with exit 2, printing nothing on stdout; returns its stderr.
fn refused(run: &Run, what: &str) -> String {
    assert_eq!(
        run.code(),
        Some(2),
        "{what}: refused with exit 2\nstdout: {}\nstderr: {}",
        run.stdout(),
        run.stderr()
    );
    assert_eq!(run.stdout(), "", "{what}: no job id");
    run.stderr()
}

/// Asserts the namespace holds no job and `kinds`' queues hold nothing (or do not exist).
async fn assert_nothing_submitted(deployment: &Deployment, kinds: &[&str]) {
    let jobs = deployment.store().await.job_ids().await.expect("job ids");
    assert!(jobs.is_empty(), "no job was recorded: {jobs:?}");
    for kind in kinds {
        let queue = deployment.topology().task_queue(kind);
        let depth = deployment.queue_stats(&queue).await.map(|s| s.messages);
        assert!(
            matches!(depth, None | Some(0)),
            "nothing published to {queue}: {depth:?}"
        );
    }
}

/// Bad specs: the mistake, the line the error must name, and a part of the message.
const BAD_SPECS: [(&str, &str, usize, &str); 6] = [
    (
        "cycle",
        "[[stage]]\nkind = \"square\"\n\n[[stage]]\nname = \"a\"\nkind = \"test-negate\"\nafter = \"b\"\n\n[[stage]]\nname = \"b\"\nkind = \"test-negate\"\nafter = \"a\"\n",
        4,
        "cycle",
    ),
    (
        "no_first_stage",
        "[[stage]]\nkind = \"square\"\nafter = \"test-negate\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"square\"\n",
        1,
        "cycle",
    ),
    (
        "unknown_after",
        "[[stage]]\nkind = \"square\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"sqare\"\n",
        6,
        "no stage is named 'sqare'",
    ),
    (
        "unknown_edge",
        "[[stage]]\nkind = \"square\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"square\"\nedge = \"join\"\n",
        7,
        "unknown edge 'join'",
    ),
    (
        "typo",
        "[[stage]]\nkind = \"square\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"square\"\nedeg = \"map\"\n",
        7,
        "edeg",
    ),
    (
        "branch",
        "[[stage]]\nkind = \"square\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"square\"\n\n[[stage]]\nname = \"again\"\nkind = \"test-negate\"\nafter = \"square\"\n",
        11,
        "two stages follow 'square'",
    ),
];

/// Submits square over 1..=5 with the spec `text` (no worker is needed: `--allow-unserved`).
fn submit_spec(deployment: &Deployment, name: &str, text: &str) -> (Run, String) {
    let path = deployment.write_file(&format!("{name}.toml"), text);
    let path = path_text(&path).to_owned();
    let run = deployment.producer(&[
        "submit",
        "square",
        "--allow-unserved",
        "--values",
        "1..=5",
        "--spec",
        &path,
    ]);
    (run, path)
}

#[tokio::test]
async fn bad_specs_are_refused_naming_their_line_and_nothing_is_submitted() {
    // No worker: anything published would stay in its queue.
    let deployment = Deployment::new("stagebadspec");
    for (name, text, line, message) in BAD_SPECS {
        let (run, path) = submit_spec(&deployment, name, text);
        let stderr = refused(&run, name);
        let at = format!("error: {path}:{line}: ");
        assert!(
            stderr.starts_with(&at),
            "{name}: names line {line} ({at}):\n{stderr}"
        );
        assert!(
            stderr.contains(message),
            "{name}: says '{message}':\n{stderr}"
        );
        assert_nothing_submitted(&deployment, &["square", "test-negate"]).await;
    }

    let mismatch = "[[stage]]\nkind = \"sum-squares\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"sum-squares\"\n";
    let (run, _) = submit_spec(&deployment, "mismatch", mismatch);
    let stderr = refused(&run, "mismatch");
    assert!(
        stderr.contains(
            "the spec's first stage runs 'sum-squares', but the items were given for 'square'"
        ),
        "{stderr}"
    );
    assert_nothing_submitted(&deployment, &["square", "sum-squares", "test-negate"]).await;
}

#[tokio::test]
async fn a_chunk_size_on_a_later_stage_is_refused_naming_its_line() {
    let deployment = Deployment::new("stagebadchunk");
    let text = "[[stage]]\nkind = \"square\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"square\"\nchunk_size = 5\n";
    let (run, path) = submit_spec(&deployment, "chunk_size", text);
    let stderr = refused(&run, "chunk_size");
    assert!(stderr.contains("sets chunk_size"), "{stderr}");
    assert_nothing_submitted(&deployment, &["square", "test-negate"]).await;
    // The mistake is `chunk_size = 5`, on line 7.
    let at = format!("error: {path}:7: ");
    assert!(stderr.starts_with(&at), "names line 7 ({at}):\n{stderr}");
}

#[tokio::test]
async fn a_stage_kind_no_live_worker_serves_is_refused_naming_the_served_kinds() {
    let mut deployment = Deployment::new("stageunserved");
    deployment.start_test_worker(&[]);
    // Whatever the test worker serves, as `producer kinds` lists it.
    let kinds = deployment.producer(&["kinds"]).json();
    let mut served: Vec<&str> = kinds
        .as_array()
        .expect("kinds array")
        .iter()
        .filter(|kind| kind["workers"].as_array().is_some_and(|w| !w.is_empty()))
        .map(|kind| kind["name"].as_str().expect("a name"))
        .collect();
    served.sort_unstable();
    assert!(served.contains(&"test-negate"), "{kinds}");
    let served = format!("served now: {}", served.join(", "));

    let then = deployment.producer(&[
        "submit",
        "square",
        "--values",
        "1..=5",
        "--then",
        "test-negate",
        "--then",
        "no-such-kind",
    ]);
    let stderr = refused(&then, "--then");
    let expected = format!("no live worker serves task kind 'no-such-kind' ({served})");
    assert!(stderr.contains(&expected), "{stderr}");
    assert_nothing_submitted(&deployment, &["no-such-kind"]).await;

    let spec = deployment.write_file(
        "unserved.toml",
        &two_stages("square", "no-such-kind", "map"),
    );
    let run = deployment.producer(&[
        "submit",
        "square",
        "--values",
        "1..=5",
        "--spec",
        path_text(&spec),
    ]);
    let stderr = refused(&run, "--spec");
    assert!(stderr.contains(&expected), "{stderr}");
    assert_nothing_submitted(&deployment, &["no-such-kind"]).await;
}
