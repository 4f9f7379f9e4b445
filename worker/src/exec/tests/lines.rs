use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use super::{py, raw};
use crate::exec::{ItemFailure, LineProcesses};

const LIMIT: Duration = Duration::from_secs(10);

/// A line program whose behaviour depends on the item: numbers are doubled,
/// 13 crashes it, "bad" gets a non-JSON line, "sleep" hangs, {"pid": ..}
/// answers [its pid, how many items it has read] after an optional delay.
const SCRIPT: &str = r#"
import json, os, sys, time
count = 0
for line in sys.stdin:
    item = json.loads(line)
    count += 1
    if item == 75:
        sys.stderr.write("database busy\n"); sys.stderr.flush(); sys.exit(75)
    if item == 13:
        sys.stderr.write("crashed on 13\n"); sys.stderr.flush(); sys.exit(3)
    if item == "bad":
        out = "this is not json"
    elif item == "sleep":
        time.sleep(30); out = "null"
    elif isinstance(item, dict) and "pid" in item:
        time.sleep(item.get("delay", 0)); out = json.dumps([os.getpid(), count])
    elif isinstance(item, (int, float)):
        out = json.dumps(item * 2)
    else:
        out = json.dumps(item)
    sys.stdout.write(out + "\n"); sys.stdout.flush()
"#;

fn pool(processes: usize, limit: Duration) -> LineProcesses {
    LineProcesses::new(py(SCRIPT), processes, limit)
}

fn refs(items: &[Box<RawValue>]) -> Vec<&RawValue> {
    items.iter().map(|b| &**b).collect()
}

fn numbers(range: std::ops::Range<i64>) -> Vec<Box<RawValue>> {
    range.map(|n| raw(&n.to_string())).collect()
}

fn text(result: &Result<Box<RawValue>, ItemFailure>) -> &str {
    result.as_ref().expect("item succeeded").get()
}

#[tokio::test]
async fn a_batch_comes_back_in_order_and_the_process_is_reused() {
    let pool = pool(1, LIMIT);
    let items = numbers(1000..2000); // (13 and 75 would end the script)
    for _ in 0..2 {
        let results = pool.run_batch(&refs(&items)).await;
        assert_eq!(results.len(), 1000);
        for (n, result) in results.iter().enumerate() {
            assert_eq!(text(result), (2 * (1000 + n)).to_string());
        }
    }
    // The same process answered both batches: it has counted 2001 items.
    let results = pool.run_batch(&[&*raw(r#"{"pid": 1}"#)]).await;
    assert!(
        text(&results[0]).ends_with(", 2001]"),
        "{}",
        text(&results[0])
    );
}

#[tokio::test]
async fn multi_line_json_is_sent_as_one_line() {
    let pool = pool(1, LIMIT);
    let item = raw("{\r\n  \"a\": \"x\\ny\",\n  \"b\": [1,\n 2]\n}");
    let results = pool.run_batch(&[&*item, &*raw("5")]).await;
    assert_eq!(text(&results[0]), r#"{"a": "x\ny", "b": [1, 2]}"#);
    assert_eq!(text(&results[1]), "10");
}

#[tokio::test]
async fn a_crash_fails_only_its_item_and_the_batch_continues() {
    let pool = pool(1, LIMIT);
    let items = numbers(0..30);
    let results = pool.run_batch(&refs(&items)).await;
    for (n, result) in results.iter().enumerate() {
        if n == 13 {
            let failure = result.as_ref().unwrap_err();
            assert!(!failure.transient);
            assert_eq!(
                failure.message,
                "the program exited (exit 3) while running this item: crashed on 13"
            );
        } else {
            assert_eq!(text(result), (2 * n).to_string());
        }
    }
}

#[tokio::test]
async fn exit_75_fails_its_item_transiently() {
    let pool = pool(1, LIMIT);
    let results = pool.run_batch(&[&*raw("1"), &*raw("75"), &*raw("3")]).await;
    assert_eq!(text(&results[0]), "2");
    let failure = results[1].as_ref().unwrap_err();
    assert!(failure.transient);
    assert_eq!(
        failure.message,
        "the program exited (exit 75) while running this item: database busy"
    );
    assert_eq!(text(&results[2]), "6");
}

#[test]
fn the_pool_can_be_shared_across_spawned_tasks() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    fn assert_send<T: Send>(_: T) {}
    let pool = pool(1, LIMIT);
    assert_send_sync(&pool);
    assert_send(pool.run_batch(&[]));
}

#[tokio::test]
async fn a_line_that_is_not_json_fails_only_its_item() {
    let pool = pool(1, LIMIT);
    let items = [raw("1"), raw(r#""bad""#), raw("3")];
    let results = pool.run_batch(&refs(&items)).await;
    assert_eq!(text(&results[0]), "2");
    let failure = results[1].as_ref().unwrap_err();
    assert!(
        failure.message.contains(r#"not JSON"#),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains(r#""this is not json\n""#),
        "{}",
        failure.message
    );
    assert_eq!(text(&results[2]), "6");
    // Same process throughout: three items counted before this one.
    let results = pool.run_batch(&[&*raw(r#"{"pid": 1}"#)]).await;
    assert!(text(&results[0]).ends_with(", 4]"), "{}", text(&results[0]));
}

#[tokio::test]
async fn a_hung_item_times_out_and_the_rest_succeed() {
    let limit = Duration::from_secs(1);
    let pool = pool(1, limit);
    let items = [raw("1"), raw("2"), raw(r#""sleep""#), raw("4"), raw("5")];
    let started = Instant::now();
    let results = pool.run_batch(&refs(&items)).await;
    assert!(
        started.elapsed() < limit + Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(text(&results[0]), "2");
    assert_eq!(text(&results[1]), "4");
    let failure = results[2].as_ref().unwrap_err();
    assert!(!failure.transient);
    assert!(failure
        .message
        .starts_with("timed out after 1s (the per-item time limit"));
    assert_eq!(text(&results[3]), "8");
    assert_eq!(text(&results[4]), "10");
}

#[tokio::test]
async fn a_program_that_cannot_start_fails_every_item() {
    let pool = LineProcesses::new(vec!["/nonexistent/program".into()], 1, LIMIT);
    let items = numbers(0..5);
    let results = pool.run_batch(&refs(&items)).await;
    assert_eq!(results.len(), 5);
    for result in &results {
        let failure = result.as_ref().unwrap_err();
        assert!(!failure.transient);
        assert!(failure
            .message
            .starts_with("could not start '/nonexistent/program'"));
    }
}

#[tokio::test]
async fn a_program_that_always_dies_does_not_restart_per_item() {
    let argv = py("import sys; sys.stderr.write('no module named foo'); sys.exit(1)");
    let pool = LineProcesses::new(argv, 1, LIMIT);
    let items = numbers(0..100);
    let results = pool.run_batch(&refs(&items)).await;
    assert_eq!(results.len(), 100);
    let first = results[0].as_ref().unwrap_err();
    assert!(first
        .message
        .ends_with("while running this item: no module named foo"));
    let last = results[99].as_ref().unwrap_err();
    assert!(last.transient, "{}", last.message);
    assert!(last
        .message
        .starts_with("not run: the program failed 3 times"));
}

/// Sends `count` {"pid"} items and returns the (pid, count) answers.
async fn pids(pool: &LineProcesses, count: usize) -> Vec<(u64, u64)> {
    let items: Vec<_> = (0..count)
        .map(|_| raw(r#"{"pid": 1, "delay": 0.01}"#))
        .collect();
    let results = pool.run_batch(&refs(&items)).await;
    let parse = |r| serde_json::from_str::<(u64, u64)>(text(r)).expect("[pid, count]");
    results.iter().map(parse).collect()
}

#[tokio::test]
async fn two_processes_run_two_batches_at_once() {
    let pool = pool(2, LIMIT);
    let (a, b) = tokio::join!(pids(&pool, 20), pids(&pool, 20));
    assert_ne!(a[0].0, b[0].0, "two processes");
    for answers in [&a, &b] {
        let counts: Vec<u64> = answers.iter().map(|(_, count)| *count).collect();
        assert_eq!(counts, (1..=20).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn one_process_serialises_concurrent_batches() {
    let pool = pool(1, LIMIT);
    let (a, b) = tokio::join!(pids(&pool, 20), pids(&pool, 20));
    assert_eq!(a[0].0, b[0].0, "one process");
    let (first, second) = if a[0].1 == 1 { (a, b) } else { (b, a) };
    let counts = |answers: &[(u64, u64)]| answers.iter().map(|(_, c)| *c).collect::<Vec<_>>();
    assert_eq!(counts(&first), (1..=20).collect::<Vec<_>>());
    assert_eq!(counts(&second), (21..=40).collect::<Vec<_>>());
}

#[tokio::test]
async fn after_shutdown_batches_fail_transiently() {
    let pool = pool(1, LIMIT);
    assert_eq!(text(&pool.run_batch(&[&*raw("1")]).await[0]), "2");
    pool.shutdown().await;
    let results = pool.run_batch(&[&*raw("1")]).await;
    assert!(results[0].as_ref().unwrap_err().transient);
}

/// Run with `cargo test --release -- --ignored --nocapture line_throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn line_throughput() {
    let script = "import json, sys\nfor line in sys.stdin:\n    sys.stdout.write(json.dumps(json.loads(line)) + '\\n'); sys.stdout.flush()";
    let pool = LineProcesses::new(py(script), 1, LIMIT);
    let items: Vec<_> = (0..1000)
        .map(|n| raw(&format!(r#"{{"n": {n}, "s": "item"}}"#)))
        .collect();
    let items = refs(&items);
    pool.run_batch(&items).await; // start the process outside the timing
    let started = Instant::now();
    for _ in 0..100 {
        let results = pool.run_batch(&items).await;
        assert!(results.iter().all(Result::is_ok));
    }
    let rate = 100_000.0 / started.elapsed().as_secs_f64();
    println!(
        "--exec-lines throughput: {rate:.0} items/s (100,000 items, 1 process, batches of 1,000)"
    );
}

#[tokio::test]
async fn a_process_that_died_while_idle_is_replaced_without_blaming_an_item() {
    let pool = pool(1, LIMIT);
    let (pid, _) = pids(&pool, 1).await[0];
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    assert!(killed.unwrap().success());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (new_pid, count) = pids(&pool, 1).await[0];
    assert_ne!(new_pid, pid);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_cancelled_batch_does_not_spoil_the_next_one() {
    let pool = pool(1, LIMIT);
    let slow = [raw("1"), raw(r#""sleep""#), raw("3")];
    let slow = refs(&slow);
    let cancelled = tokio::time::timeout(Duration::from_millis(500), pool.run_batch(&slow));
    assert!(cancelled.await.is_err());
    let results = pool.run_batch(&[&*raw("1"), &*raw("2")]).await;
    assert_eq!(text(&results[0]), "2");
    assert_eq!(text(&results[1]), "4");
}
