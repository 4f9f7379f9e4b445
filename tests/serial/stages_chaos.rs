//! Multi-stage jobs while workers are killed with SIGKILL at random and restarted: a chunk of any stage
//! may run twice (its worker died after publishing the follow-up but before the ack), so each stage must
//! record a chunk once, and nothing may be lost, counted twice or dead-lettered. One test chains three
//! map stages, the other ends in a reduce whose tree nodes die too. Randomness is seeded
//! (`TASKQ_CHAOS_SEED` to replay); the seed is printed and in every failure message. Every loop is
//! bounded in count and time.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskq_common::job::JobId;
use taskq_tests::chaos::{kill_workers_at_random, seeded, Kills};
use taskq_tests::{output_lines, Deployment, TEST_WORKER};

use crate::one_at_a_time;

/// How workers are killed: at most 8 times in 60 s, every 150 to 500 ms.
fn kills() -> Kills {
    Kills {
        most: 8,
        lasting: Duration::from_secs(60),
        pause_ms: 150..500,
    }
}

/// What `sum-squares` computes for n: the sum of i² for i in 0..n, n(n-1)(2n-1)/6.
fn sum_of_squares_below(n: u64) -> i128 {
    let n = i128::from(n);
    n * (n - 1) * (2 * n - 1) / 6
}

/// Submits `args` (a job without `--wait`) and returns its id.
fn submit(deployment: &Deployment, args: &[&str]) -> JobId {
    let run = deployment.producer(args);
    assert!(run.output.status.success(), "{}", run.stderr());
    run.stdout().trim().parse().expect("a job id")
}

/// Waits for the job and returns its summary, failing with the seed, the job's state, the stage
/// queues and the dead letters if it does not complete.
async fn finished(deployment: &Deployment, job: JobId, kinds: &[&str], context: &str) -> Value {
    let waited = deployment.producer(&["wait", &job.to_string(), "--timeout", "90"]);
    if !waited.output.status.success() {
        let store = deployment.store().await;
        let state = store.require_job(job).await;
        let progress = store.stage_progress(job).await;
        let topology = deployment.topology();
        let mut queues = Vec::new();
        for queue in kinds
            .iter()
            .map(|kind| topology.task_queue(kind))
            .chain(topology.queues())
        {
            let stats = deployment.queue_stats(&queue).await;
            queues.push(format!("{queue}: {stats:?}"));
        }
        panic!(
            "{context}: {}\nstate: {state:?}\nstages: {progress:?}\nqueues: {queues:?}\ndead letters: {:?}\n{}",
            waited.stderr(),
            deployment.drain_dead_letters().await,
            deployment.all_logs()
        );
    }
    waited.json()
}

/// Asserts every stage recorded each of its chunks once (`chunks_done == chunks`) with the items given,
/// and none failed.
fn assert_every_stage_once(summary: &Value, expected: &[(&str, &str, u64, u64)], context: &str) {
    let stages: Vec<Value> = summary["stages"]
        .as_array()
        .unwrap_or_else(|| panic!("{context}: stages in {summary}"))
        .iter()
        .map(|s| {
            json!([
                s["kind"],
                s["edge"],
                s["chunks"],
                s["chunks_done"],
                s["items"]
            ])
        })
        .collect();
    let expected: Vec<Value> = expected
        .iter()
        .map(|(kind, edge, chunks, items)| json!([kind, edge, chunks, chunks, items]))
        .collect();
    assert_eq!(stages, expected, "{context}: {summary}");
    for stage in summary["stages"].as_array().expect("stages") {
        assert_eq!(stage["failed"], 0, "{context}: {summary}");
    }
}

#[tokio::test]
async fn workers_killed_during_a_three_stage_job_lose_nothing_and_count_nothing_twice() {
    let _alone = one_at_a_time().await;
    let (seed, mut rng) = seeded();
    let mut deployment = Deployment::new("stagechaos");
    let mut workers = deployment.start_workers(TEST_WORKER, 3, &[]);
    deployment.start_consumer();
    // One heavy item per chunk (tens of ms each), so kills land in every stage.
    let (from, count) = (3_000_000u64, 240u64);
    let job = submit(
        &deployment,
        &[
            "submit",
            "sum-squares",
            "--from",
            &from.to_string(),
            "--count",
            &count.to_string(),
            "--chunk-size",
            "1",
            "--then",
            "test-negate",
            "--then",
            "test-negate",
        ],
    );

    let started = Instant::now();
    let kills =
        kill_workers_at_random(&mut deployment, &mut workers, job, &mut rng, &kills()).await;
    let context = format!("seed {seed}, {kills} kills");
    let kinds = ["sum-squares", "test-negate"];
    let summary = finished(&deployment, job, &kinds, &context).await;
    let context = format!("{context}\n{}", deployment.all_logs());
    assert!(
        kills >= 1,
        "the job ended before the first kill: make it longer ({context})"
    );
    assert_eq!(summary["status"], "completed", "{context}");
    assert_eq!(
        (summary["items"].as_u64(), summary["failed"].as_u64()),
        (Some(count), Some(0)),
        "{context}"
    );
    let lines = output_lines(&summary);
    assert_eq!(lines.len() as u64, count, "{context}: every item once");
    for (i, line) in lines.iter().enumerate() {
        let sum = sum_of_squares_below(from + i as u64);
        let expected = json!({"index": i, "input": -sum, "output": sum});
        assert_eq!(line, &expected, "{context}: line {i}");
    }
    assert_every_stage_once(
        &summary,
        &[
            ("sum-squares", "source", count, count),
            ("test-negate", "map", count, count),
            ("test-negate", "map", count, count),
        ],
        &context,
    );
    let dead = deployment.drain_dead_letters().await;
    assert!(dead.is_empty(), "{context}: dead letters {dead:?}");
    eprintln!(
        "three stages survived {kills} worker kills; {} duplicate results ignored, 0 lost, in {:.1} s",
        summary["duplicates_ignored"],
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn workers_killed_during_a_map_and_reduce_job_fold_every_value_once() {
    let _alone = one_at_a_time().await;
    let (seed, mut rng) = seeded();
    let mut deployment = Deployment::new("stagechaosreduce");
    let mut workers = deployment.start_workers(TEST_WORKER, 3, &[]);
    deployment.start_consumer();
    let spec = deployment.write_file(
        "pipeline.toml",
        "[[stage]]\nkind = \"sum-squares\"\nchunk_size = 1\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"sum-squares\"\n\n[[stage]]\nkind = \"test-sum\"\nafter = \"test-negate\"\nedge = \"reduce\"\n",
    );
    let (from, count) = (3_000_000u64, 240u64);
    let job = submit(
        &deployment,
        &[
            "submit",
            "sum-squares",
            "--from",
            &from.to_string(),
            "--count",
            &count.to_string(),
            "--spec",
            spec.to_str().expect("UTF-8 path"),
        ],
    );

    let started = Instant::now();
    let kills =
        kill_workers_at_random(&mut deployment, &mut workers, job, &mut rng, &kills()).await;
    let context = format!("seed {seed}, {kills} kills");
    let kinds = ["sum-squares", "test-negate", "test-sum"];
    let summary = finished(&deployment, job, &kinds, &context).await;
    let context = format!("{context}\n{}", deployment.all_logs());
    assert!(
        kills >= 1,
        "the job ended before the first kill: make it longer ({context})"
    );
    let total: i128 = (from..from + count).map(sum_of_squares_below).sum();
    assert_eq!(summary["status"], "completed", "{context}");
    assert_eq!(
        output_lines(&summary),
        [json!({"index": 0, "input": null, "output": -total})],
        "{context}"
    );
    assert_eq!(summary["failed"].as_u64(), Some(0), "{context}");
    // 240 leaves fold in 15 nodes of 16, then the root.
    assert_every_stage_once(
        &summary,
        &[
            ("sum-squares", "source", count, count),
            ("test-negate", "map", count, count),
            ("test-sum", "reduce", 16, 16),
        ],
        &context,
    );
    let dead = deployment.drain_dead_letters().await;
    assert!(dead.is_empty(), "{context}: dead letters {dead:?}");
    eprintln!(
        "map and reduce survived {kills} worker kills; {} duplicate results ignored, 0 lost, in {:.1} s",
        summary["duplicates_ignored"],
        started.elapsed().as_secs_f64()
    );
}
