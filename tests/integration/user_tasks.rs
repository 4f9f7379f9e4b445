//! Users' own task kinds end to end: a CPU kind of a user's crate (`wordcount-worker`, examples/wordcount)
//! and an I/O kind of the test worker (`test-echo-after`), submitted as JSON items through the producer;
//! workers with different kind sets sharing one broker, each receiving only its own kinds; a kind no
//! live worker serves refused (or enqueued with `--allow-unserved` until one starts); items that are not
//! JSON refused with their line, before anything is published.

use std::time::Duration;

use serde_json::{json, Value};
use taskq_tests::{eventually, output_lines, Deployment, QueueStats, Run, WORDCOUNT_WORKER};

/// The texts of the wordcount job and their word counts (`split_whitespace`), in input order.
const TEXTS: [(&str, u64); 6] = [
    ("the quick brown fox", 4),
    ("", 0),
    ("  spaced   out\ttext \n", 3),
    ("naïve café", 2),
    ("a b c d e f g h i j", 10),
    ("one", 1),
];

/// Where the item that is not a text goes in the wordcount job.
const NOT_A_TEXT_AT: usize = 2;

/// The error of the item that is not a text: the item named, without serde's position inside it.
const NOT_A_TEXT_ERROR: &str =
    "input 42 is not a valid 'wordcount' input: invalid type: integer `42`, expected a string";

/// The wordcount job's items as JSON lines: [`TEXTS`] with `42` inserted at [`NOT_A_TEXT_AT`].
fn wordcount_items() -> Vec<Value> {
    let mut items: Vec<Value> = TEXTS.iter().map(|(text, _)| json!(text)).collect();
    items.insert(NOT_A_TEXT_AT, json!(42));
    items
}

/// One JSON value per line.
fn json_lines(items: &[Value]) -> String {
    items.iter().map(|item| format!("{item}\n")).collect()
}

/// Asserts a producer run exited 2 (refused) and returns its stderr.
fn refused(run: &Run) -> String {
    assert_eq!(
        run.code(),
        Some(2),
        "refused with exit 2\nstdout: {}\nstderr: {}",
        run.stdout(),
        run.stderr()
    );
    run.stderr()
}

/// Asserts the namespace holds no job record in Redis.
async fn assert_no_job(deployment: &Deployment) {
    let jobs = deployment.store().await.job_ids().await.expect("job ids");
    assert!(jobs.is_empty(), "no job was recorded: {jobs:?}");
}

#[test]
fn a_user_cpu_task_runs_end_to_end_and_a_wrong_typed_item_fails_alone() {
    let mut deployment = Deployment::new("wordcount");
    deployment.start_workers(WORDCOUNT_WORKER, 1, &[]);
    deployment.start_consumer();
    let items = wordcount_items();
    let file = deployment.write_file("texts.jsonl", &json_lines(&items));
    let file = file.to_str().expect("UTF-8 path");

    let summary = deployment
        .producer(&["submit", "wordcount", "--items-file", file, "--wait"])
        .json();

    assert_eq!(summary["kind"], "wordcount");
    assert_eq!(summary["status"], "completed", "{summary}");
    assert_eq!(
        (summary["items"].as_u64(), summary["failed"].as_u64()),
        (Some(7), Some(1)),
        "{summary}"
    );
    // The kind's declared chunk size (100) applies: 7 items are one chunk.
    assert_eq!(summary["chunks"].as_u64(), Some(1));
    let mut expected: Vec<Value> = Vec::new();
    let mut counts = TEXTS.iter().map(|(_, words)| *words);
    for (index, item) in items.iter().enumerate() {
        expected.push(if index == NOT_A_TEXT_AT {
            json!({"index": index, "input": 42, "error": NOT_A_TEXT_ERROR})
        } else {
            json!({"index": index, "input": item, "output": counts.next().unwrap()})
        });
    }
    assert_eq!(output_lines(&summary), expected);
    assert_eq!(summary["aggregate"], json!({"words": 20, "longest": 10}));
}

/// The `test-echo-after` items: each waits `ms` and answers a value of its own (with an integer beyond
/// u64, which must come back digit for digit).
fn echo_items(count: usize, ms: u64) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let value: Value = serde_json::from_str(&format!(
                r#"{{"i": {i}, "tag": "v{i}", "big": 1234567890123456789012345678{i:02}}}"#
            ))
            .expect("JSON");
            json!({"ms": ms, "value": value})
        })
        .collect()
}

#[test]
fn a_user_io_task_overlaps_its_waits_on_the_io_lane() {
    let mut deployment = Deployment::new("echoafter");
    deployment.start_test_worker(&[]);
    deployment.start_consumer();
    let items = echo_items(20, 300);
    let items_json = Value::Array(items.clone()).to_string();

    let summary = deployment
        .producer(&[
            "submit",
            "test-echo-after",
            "--items",
            &items_json,
            "--chunk-size",
            "1",
            "--wait",
        ])
        .json();

    assert_eq!(
        (summary["items"].as_u64(), summary["failed"].as_u64()),
        (Some(20), Some(0)),
        "{summary}"
    );
    assert_eq!(summary["chunks"].as_u64(), Some(20));
    let outputs: Vec<String> = output_lines(&summary)
        .iter()
        .map(|line| line["output"].to_string())
        .collect();
    let expected: Vec<String> = items.iter().map(|item| item["value"].to_string()).collect();
    assert_eq!(outputs, expected);
    assert!(
        outputs[7].contains("\"big\":123456789012345678901234567807"),
        "{}",
        outputs[7]
    );
    // One after another they would take 20 × 300 ms = 6 s; overlapped, a little over 300 ms.
    let elapsed_ms = summary["elapsed_ms"].as_u64().expect("elapsed_ms");
    assert!(
        (300..3000).contains(&elapsed_ms),
        "20 waits of 300 ms overlap on the I/O lane: the job took {elapsed_ms} ms\n{}",
        deployment.all_logs()
    );
}

/// Asserts `producer kinds` lists `kind` as served by exactly `workers` (sorted).
fn assert_served_by(kinds: &Value, kind: &str, workers: &[&str]) {
    let entry = kinds
        .as_array()
        .expect("kinds array")
        .iter()
        .find(|entry| entry["name"] == kind)
        .unwrap_or_else(|| panic!("kind {kind} is listed: {kinds}"));
    let mut listed: Vec<&str> = entry["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w.as_str().expect("worker id"))
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, workers, "workers serving {kind}: {kinds}");
}

/// Asserts the broker has `consumers` consumers on `kind`'s queue.
async fn assert_consumers(deployment: &Deployment, kind: &str, consumers: u32) {
    let queue = deployment.topology().task_queue(kind);
    let stats = deployment.queue_stats(&queue).await;
    assert_eq!(
        stats.map(|s| s.consumers),
        Some(consumers),
        "consumers of {queue}"
    );
}

#[tokio::test]
async fn workers_with_different_kinds_on_one_broker_each_receive_only_their_own() {
    let mut deployment = Deployment::new("kindsets");
    let stock = deployment.start_workers(taskq_tests::WORKER, 1, &["--worker-id", "stock-1"])[0];
    let wc = deployment.start_workers(WORDCOUNT_WORKER, 1, &["--worker-id", "wc-1"])[0];
    deployment.start_consumer();
    // 200 one-item chunks of each kind, submitted at once: both queues are busy at the same time.
    let texts: Vec<Value> = (0..200).map(|i| json!("w ".repeat(i % 9))).collect();
    let file = deployment.write_file("texts.jsonl", &json_lines(&texts));
    let wordcount = deployment.producer_in_background(&[
        "submit",
        "wordcount",
        "--items-file",
        file.to_str().expect("UTF-8 path"),
        "--chunk-size",
        "1",
        "--wait",
    ]);
    let sum_squares = deployment.producer_in_background(&[
        "submit",
        "sum-squares",
        "--values",
        "0..200",
        "--wait",
    ]);
    let limit = Duration::from_secs(120);
    let (wordcount, sum_squares) = (
        wordcount.finish(limit).json(),
        sum_squares.finish(limit).json(),
    );

    for summary in [&wordcount, &sum_squares] {
        assert_eq!(
            (summary["items"].as_u64(), summary["failed"].as_u64()),
            (Some(200), Some(0)),
            "{summary}\n{}",
            deployment.all_logs()
        );
    }
    let counts: Vec<u64> = output_lines(&wordcount)
        .iter()
        .map(|line| line["output"].as_u64().expect("a count"))
        .collect();
    assert_eq!(counts, (0..200).map(|i| i % 9).collect::<Vec<u64>>());
    let sums: Vec<String> = output_lines(&sum_squares)
        .iter()
        .map(|line| line["output"].to_string())
        .collect();
    let expected: Vec<String> = (0..200u64)
        .map(|n| worker::tasks::SumSquares::closed_form(n).to_string())
        .collect();
    assert_eq!(sums, expected);
    assert_eq!(deployment.producer(&["dlq", "list"]).json(), json!([]));

    // The broker side: each kind's queue is consumed by exactly the workers that serve it.
    assert_consumers(&deployment, "wordcount", 1).await;
    assert_consumers(&deployment, "sum-squares", 1).await;
    assert_consumers(&deployment, "download", 1).await;
    assert_consumers(&deployment, "square", 2).await;
    assert_consumes(
        &deployment,
        stock,
        &["sum-squares", "square", "download"],
        "wordcount",
    );
    assert_consumes(&deployment, wc, &["wordcount", "square"], "sum-squares");
    let kinds = deployment.producer(&["kinds"]).json();
    assert_served_by(&kinds, "wordcount", &["wc-1"]);
    assert_served_by(&kinds, "sum-squares", &["stock-1"]);
    assert_served_by(&kinds, "download", &["stock-1"]);
    assert_served_by(&kinds, "square", &["stock-1", "wc-1"]);
}

/// Asserts the worker at `index` logged consuming each of `kinds`' queues, and never `other`'s.
fn assert_consumes(deployment: &Deployment, index: usize, kinds: &[&str], other: &str) {
    let log = deployment.log(index);
    let consuming = |kind: &str| {
        let queue = deployment.topology().task_queue(kind);
        log.lines()
            .any(|line| line.contains("consuming") && line.contains(&format!("queue={queue} ")))
    };
    for kind in kinds {
        assert!(consuming(kind), "worker {index} consumes {kind}:\n{log}");
    }
    let other_queue = deployment.topology().task_queue(other);
    assert!(
        !log.contains(&other_queue),
        "worker {index} never touches {other_queue}:\n{log}"
    );
}

/// A command serving a kind by echoing its item back: Python reading stdin and printing it as it came.
const ECHO: &str = r#"python3 -c "import sys; sys.stdout.write(sys.stdin.read())""#;

#[tokio::test]
async fn an_unserved_kind_is_refused_or_waits_in_its_queue_until_a_worker_serves_it() {
    let mut deployment = Deployment::new("unserved");
    deployment.start_worker(&[]);
    deployment.start_consumer();
    let queue = deployment.topology().task_queue("nosuch");

    let run = deployment.producer(&["submit", "nosuch", "--items", "[1]"]);
    let stderr = refused(&run);
    assert!(
        stderr.contains(
            "no live worker serves task kind 'nosuch' (served now: download, image-blur, square, sum-squares)"
        ),
        "{stderr}"
    );
    assert_eq!(run.stdout(), "", "no job id");
    let depth = deployment.queue_stats(&queue).await.map(|s| s.messages);
    assert!(matches!(depth, None | Some(0)), "nothing queued: {depth:?}");
    assert_no_job(&deployment).await;

    let items = r#"[1, "two", {"three": [3]}, null, 123456789012345678901234567890]"#;
    let submitted =
        deployment.producer(&["submit", "nosuch", "--allow-unserved", "--items", items]);
    assert!(submitted.output.status.success(), "{}", submitted.stderr());
    let job = submitted.stdout().trim().to_owned();
    assert_eq!(job.len(), 36, "a job id: {job}");
    // No chunk size declared for the kind: one item per chunk, all five waiting, no one consuming.
    let waiting = deployment.queue_stats(&queue).await;
    assert_eq!(
        waiting,
        Some(QueueStats {
            messages: 5,
            consumers: 0
        })
    );

    let exec = format!("nosuch={ECHO}");
    deployment.start_worker(&["--exec", &exec]);
    let summary = deployment
        .producer(&["wait", &job, "--timeout", "60"])
        .json();
    let outputs: Vec<String> = output_lines(&summary)
        .iter()
        .map(|line| line["output"].to_string())
        .collect();
    assert_eq!(
        outputs,
        [
            "1",
            "\"two\"",
            "{\"three\":[3]}",
            "null",
            "123456789012345678901234567890"
        ],
        "{summary}"
    );
    assert_eq!(summary["failed"].as_u64(), Some(0));
    eventually("the queue to drain", Duration::from_secs(10), || async {
        let stats = deployment.queue_stats(&queue).await;
        (stats.map(|s| s.messages) == Some(0)).then_some(())
    })
    .await;
}

/// Four lines of which the third is not JSON.
const BAD_THIRD_LINE: &str = "\"a b\"\n\"c\"\n{oops\n\"d\"\n";

#[tokio::test]
async fn items_that_are_not_json_are_refused_with_their_line_and_nothing_is_published() {
    let mut deployment = Deployment::new("badjson");
    deployment.start_workers(WORDCOUNT_WORKER, 1, &[]);
    let file = deployment.write_file("bad.jsonl", BAD_THIRD_LINE);
    let file = file.to_str().expect("UTF-8 path");

    let from_file = deployment.producer(&["submit", "wordcount", "--items-file", file]);
    let stderr = refused(&from_file);
    let expected = format!("error: {file} line 3: not a JSON value");
    assert!(stderr.starts_with(&expected), "{stderr}");

    let from_stdin = deployment.producer_stdin(
        &["submit", "wordcount", "--items-file", "-"],
        BAD_THIRD_LINE,
    );
    let stderr = refused(&from_stdin);
    assert!(
        stderr.starts_with("error: stdin line 3: not a JSON value"),
        "{stderr}"
    );

    let queue = deployment.topology().task_queue("wordcount");
    assert_eq!(deployment.queue_depth(&queue).await, 0, "nothing published");
    assert_no_job(&deployment).await;
}
