//! The broadcast pattern with 3 workers: every worker receives the whole data set and runs its own share;
//! together they run every item exactly once, also when one of them is killed mid-job; and a job whose
//! members all stopped fails, saying so, instead of waiting forever.

use std::time::{Duration, Instant};

use serde_json::Value;
use taskq_common::job::JobId;
use taskq_tests::{eventually, output_lines, Deployment};
use worker::tasks::SumSquares;

const WORKERS: [&str; 3] = ["w1", "w2", "w3"];

/// A namespace with 3 registered workers (one CPU thread each: 3 workers on 2 cores) and a consumer.
async fn three_workers_and_a_consumer(test: &str) -> (Deployment, Vec<usize>) {
    let mut deployment = Deployment::new(test);
    let workers = deployment.start_registered_workers(&WORKERS, &["--cpu-threads", "1"]);
    deployment.start_consumer();
    (deployment, workers)
}

/// The chunks each worker says it owned when it left the job (from its "left broadcast job" log line).
async fn owned_per_worker(deployment: &Deployment, workers: &[usize]) -> Vec<u32> {
    eventually(
        "every worker to leave the finished job",
        Duration::from_secs(30),
        || async {
            workers
                .iter()
                .map(|worker| {
                    let log = deployment.log(*worker);
                    let line = log.lines().find(|l| l.contains("left broadcast job"))?;
                    let owned = line.split("owned ").nth(1)?.split(' ').next()?;
                    owned.parse().ok()
                })
                .collect::<Option<Vec<u32>>>()
        },
    )
    .await
}

/// Broadcasts sum-squares of `values`, 5 per chunk (tens of milliseconds per item: long enough to stop
/// workers mid-job), and waits until `progress` chunks have results; returns the job.
async fn broadcast_long_job(deployment: &Deployment, values: &[u64], progress: u32) -> JobId {
    let list = values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let run = deployment.producer(&[
        "broadcast",
        "sum-squares",
        "--values",
        &list,
        "--chunk-size",
        "5",
    ]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let job: JobId = run.stdout().trim().parse().expect("job id");
    let store = deployment.store().await;
    eventually("progress", Duration::from_secs(60), || async {
        (store.require_job(job).await.unwrap().chunks_done >= progress).then_some(())
    })
    .await;
    job
}

/// Asserts the output holds sum-squares of each of `values`, each exactly once, in order.
fn assert_sum_squares_once(summary: &Value, values: &[u64], logs: &str) {
    assert_eq!(summary["status"], "completed", "{summary}\n{logs}");
    assert_eq!(summary["items"].as_u64(), Some(values.len() as u64));
    assert_eq!(summary["failed"].as_u64(), Some(0));
    let lines = output_lines(summary);
    assert_eq!(lines.len(), values.len(), "every item exactly once");
    for (i, (line, n)) in lines.iter().zip(values).enumerate() {
        assert_eq!(line["index"].as_u64(), Some(i as u64));
        assert_eq!(line["input"].as_u64(), Some(*n));
        assert_eq!(
            line["output"].to_string(),
            SumSquares::closed_form(*n).to_string(),
            "item {i}"
        );
    }
}

#[tokio::test]
async fn a_broadcast_job_covers_every_item_exactly_once() {
    let (deployment, workers) = three_workers_and_a_consumer("broadcast").await;
    let run = deployment.producer(&[
        "broadcast",
        "square",
        "--values",
        "1..=3000",
        "--chunk-size",
        "10",
        "--wait",
    ]);
    assert!(
        run.stderr().contains("to 3 worker(s): w1, w2, w3"),
        "{}",
        run.stderr()
    );
    let summary = run.json();
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["duplicates_ignored"].as_u64(), Some(0));
    let lines = output_lines(&summary);
    assert_eq!(lines.len(), 3000);
    for (i, line) in lines.iter().enumerate() {
        let x = i as i64 + 1;
        assert_eq!(
            (line["input"].as_i64(), line["output"].as_i64()),
            (Some(x), Some(x * x)),
            "line {i}"
        );
    }
    // Each worker ran a share of its own, and the shares add up to the job: nothing twice, nothing left.
    let owned = owned_per_worker(&deployment, &workers).await;
    assert!(owned.iter().all(|n| *n > 0), "{owned:?}");
    assert_eq!(owned.iter().sum::<u32>(), 300, "{owned:?}");
}

#[tokio::test]
async fn a_worker_killed_mid_job_still_gives_exactly_once() {
    let (mut deployment, workers) = three_workers_and_a_consumer("broadcastkill").await;
    // 600 items, 120 chunks: kill a worker once a tenth is done.
    let values: Vec<u64> = (3_000_000..3_000_600).collect();
    let job = broadcast_long_job(&deployment, &values, 12).await;
    deployment.kill(workers[1]);
    let store = deployment.store().await;
    let at_kill = store.require_job(job).await.unwrap();
    assert!(
        !at_kill.status.is_final() && at_kill.chunks_done < 120,
        "the job must still run when the worker dies: {at_kill:?}"
    );

    let waited = deployment.producer(&["wait", &job.to_string(), "--timeout", "150"]);
    let logs = deployment.all_logs();
    assert!(
        waited.output.status.success(),
        "{}\n{logs}",
        waited.stderr()
    );
    assert_sum_squares_once(&waited.json(), &values, &logs);
    let survivors = [deployment.log(workers[0]), deployment.log(workers[2])];
    assert!(
        survivors
            .iter()
            .any(|log| log.contains("took over chunks of stopped members")
                && log.contains("from=w2")),
        "a survivor took over w2's share:\n{logs}"
    );
}

#[tokio::test]
async fn a_job_whose_members_all_stopped_fails_saying_so() {
    let mut deployment = Deployment::new("broadcastorphan");
    let workers = deployment.start_registered_workers(&["w1", "w2"], &["--cpu-threads", "1"]);
    deployment.start_consumer();
    // 2,000 items, 400 chunks: far from done when both members stop.
    let values: Vec<u64> = (3_000_000..3_002_000).collect();
    let job = broadcast_long_job(&deployment, &values, 4).await;
    deployment.kill(workers[0]);
    let status = deployment.terminate(workers[1]);
    assert!(status.success(), "w2 stops gracefully: {status:?}");
    let stopped = Instant::now();
    let at_stop = deployment.store().await.require_job(job).await.unwrap();
    assert!(!at_stop.status.is_final(), "{at_stop:?}");

    // Nobody holds the rest of the job: the consumer fails it, and the wait ends with the reason.
    let waited = deployment.producer(&["wait", &job.to_string(), "--timeout", "90"]);
    let logs = deployment.all_logs();
    assert_eq!(
        waited.code(),
        Some(1),
        "{}
{logs}",
        waited.stderr()
    );
    let state = waited.stdout_json();
    assert_eq!(state["status"], "failed", "{state}");
    let error = state["error"].as_str().expect("a reason");
    for expected in [
        "every member of this broadcast job stopped before it finished: ",
        "w1 (last heartbeat ",
        "w2 (unregistered: it stopped)",
        &format!("of {} chunks have results", values.len() / 5),
        "Nothing was taken over: broadcast the job again",
    ] {
        assert!(error.contains(expected), "'{error}' lacks '{expected}'");
    }
    assert!(
        waited
            .stderr()
            .contains(&format!("job {job} failed: every member")),
        "{}",
        waited.stderr()
    );
    // The registry forgets a killed worker's entry after 6 s; then two checks 6 s apart.
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_secs(40),
        "failed {took:?} after the last member stopped"
    );
    eprintln!("failed {took:?} after the last member stopped");
}

#[test]
fn a_broadcast_without_live_workers_fails_and_says_why() {
    let deployment = Deployment::new("broadcastnone");
    let run = deployment.producer(&["broadcast", "square", "--values", "1..=3"]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert!(
        run.stderr().contains("no live worker is registered"),
        "{}",
        run.stderr()
    );
    let too_big = deployment.producer(&[
        "broadcast",
        "square",
        "--values",
        "1..=100001",
        "--chunk-size",
        "1",
    ]);
    assert_eq!(too_big.code(), Some(2), "{}", too_big.stderr());
    assert!(
        too_big.stderr().contains("a broadcast job may have"),
        "{}",
        too_big.stderr()
    );
}
