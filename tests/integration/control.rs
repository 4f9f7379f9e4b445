//! The control plane against real workers: `workers` lists them, `ping` tells the answering from the
//! killed, `shutdown` stops one, then all, gracefully, and `cancel` drops a submitted job's queued chunks.

use std::time::Duration;

use serde_json::Value;
use taskq_common::job::{JobId, JobStatus};
use taskq_tests::{eventually, Deployment};

/// The `worker_id`s of a report's list, sorted.
fn ids(report: &Value, list: &str) -> Vec<String> {
    let mut ids: Vec<String> = report[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} in {report}"))
        .iter()
        .map(|entry| entry["worker_id"].as_str().expect("worker_id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn ping_reports_a_killed_worker_as_missing() {
    let mut deployment = Deployment::new("ping");
    let workers = deployment.start_registered_workers(&["w1", "w2", "w3"], &["--cpu-threads", "1"]);
    let listed = deployment.producer(&["workers"]).json();
    let live: Vec<&str> = listed["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["worker_id"].as_str().unwrap())
        .collect();
    assert_eq!(live, ["w1", "w2", "w3"]);
    assert_eq!(listed["workers"][0]["cpu_threads"].as_u64(), Some(1));
    assert_eq!(
        listed["workers"][0]["load"]["running_chunks"].as_u64(),
        Some(0)
    );

    let all = deployment.producer(&["ping"]).json();
    assert_eq!(ids(&all, "answered"), ["w1", "w2", "w3"]);
    assert_eq!(all["answered"][0]["reply"], "pong");

    deployment.kill(workers[2]);
    let run = deployment.producer(&["ping", "--timeout", "30"]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    let report = run.stdout_json();
    assert_eq!(ids(&report, "answered"), ["w1", "w2"], "{report}");
    assert_eq!(ids(&report, "missing"), ["w3"], "{report}");
    let reason = report["missing"][0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("heartbeat stopped "), "{reason}");
    assert!(
        report["not_answering"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert!(
        run.elapsed < Duration::from_secs(25),
        "missing is known from the registry, not from the answer timeout: {:?}",
        run.elapsed
    );
    // The survivors' heartbeats (several by now) all went through.
    let logs = deployment.all_logs();
    assert!(!logs.contains("heartbeat missed"), "{logs}");
}

#[tokio::test]
async fn shutdown_stops_the_named_worker_as_sigterm_does() {
    let mut deployment = Deployment::new("shutdown");
    let workers = deployment.start_registered_workers(&["w1", "w2"], &["--cpu-threads", "1"]);
    let unknown = deployment.producer(&["shutdown", "--worker", "nobody"]);
    assert_eq!(unknown.code(), Some(1));
    assert!(
        unknown.stderr().contains("'nobody' is not a live worker"),
        "{}",
        unknown.stderr()
    );

    let report = deployment.producer(&["shutdown", "--worker", "w1"]).json();
    assert_eq!(ids(&report, "answered"), ["w1"]);
    assert_eq!(report["answered"][0]["reply"], "shutting_down");
    let status = deployment.wait_for_exit(workers[0], Duration::from_secs(60));
    assert!(
        status.success(),
        "{status:?}\n{}",
        deployment.log(workers[0])
    );
    let log = deployment.log(workers[0]);
    assert!(
        log.contains("stop requested by `producer shutdown`"),
        "{log}"
    );
    assert!(log.contains("unregistered"), "{log}");
    assert!(deployment.is_running(workers[1]));
    assert_eq!(deployment.live_workers().await, ["w2"]);

    // Without --worker: every live worker.
    let report = deployment.producer(&["shutdown"]).json();
    assert_eq!(ids(&report, "answered"), ["w2"]);
    let status = deployment.wait_for_exit(workers[1], Duration::from_secs(60));
    assert!(
        status.success(),
        "{status:?}\n{}",
        deployment.log(workers[1])
    );
    assert!(deployment.live_workers().await.is_empty());
    let nobody = deployment.producer(&["ping"]);
    assert_eq!(nobody.code(), Some(1));
    assert!(
        nobody.stderr().contains("no live worker"),
        "{}",
        nobody.stderr()
    );
}

#[tokio::test]
async fn cancel_drops_the_queued_chunks_of_a_submitted_job() {
    let mut deployment = Deployment::new("cancelqueued");
    deployment.start_registered_workers(&["w1"], &["--cpu-threads", "1", "--prefetch", "1"]);
    deployment.start_consumer();
    // 200 chunks of 5 items of tens of milliseconds each: far more than runs before the cancel.
    let values = vec!["3000000"; 1000].join(",");
    let run = deployment.producer(&[
        "submit",
        "sum-squares",
        "--values",
        &values,
        "--chunk-size",
        "5",
    ]);
    let job: JobId = run.stdout().trim().parse().expect("job id");
    let store = deployment.store().await;
    eventually("a first result", Duration::from_secs(60), || async {
        (store.require_job(job).await.unwrap().chunks_done >= 1).then_some(())
    })
    .await;

    let report = deployment.producer(&["cancel", &job.to_string()]).json();
    assert_eq!(report["job_id"], job.to_string());
    assert_eq!(ids(&report, "answered"), ["w1"]);
    assert_eq!(report["answered"][0]["reply"], "cancelled");

    let waited = deployment.producer(&["wait", &job.to_string(), "--timeout", "60"]);
    assert_eq!(waited.code(), Some(1), "{}", waited.stderr());
    assert!(
        waited.stderr().contains("was cancelled"),
        "{}",
        waited.stderr()
    );
    let summary = waited.stdout_json();
    assert_eq!(summary["status"], "cancelled");
    let items = summary["items"].as_u64().unwrap();
    assert!((5..1000).contains(&items), "{summary}");
    assert_eq!(summary["items_submitted"].as_u64(), Some(1000));
    assert_eq!(
        taskq_tests::output_lines(&summary).len() as u64,
        items,
        "the output holds what the summary counts"
    );

    // The queued chunks are dropped, not run.
    let queue = deployment.topology().task_queue("sum-squares");
    eventually("the queue to drain", Duration::from_secs(60), || async {
        (deployment.queue_depth(&queue).await == 0).then_some(())
    })
    .await;
    let state = store.require_job(job).await.unwrap();
    assert_eq!(state.status, JobStatus::Cancelled);
    let again = deployment.producer(&["cancel", &job.to_string()]);
    assert_eq!(again.code(), Some(1));
    assert!(
        again.stderr().contains("already cancelled"),
        "{}",
        again.stderr()
    );
}
