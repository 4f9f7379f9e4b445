//! Lane isolation, both ways: a worker whose cores are all busy with CPU chunks still downloads at full
//! speed, and a flood of slow downloads does not hold CPU chunks back. Assertions compare the two jobs
//! (which finished first, and by how much), not wall-clock budgets.

use std::time::Duration;

use taskq_common::job::{JobId, JobStatus};
use taskq_tests::fixture::FixtureServer;
use taskq_tests::{eventually, Deployment};

use crate::one_at_a_time;

fn submit(deployment: &Deployment, args: &[&str]) -> JobId {
    let run = deployment.producer(args);
    assert!(run.output.status.success(), "{}", run.stderr());
    run.stdout().trim().parse().expect("a job id")
}

fn urls_file(
    deployment: &Deployment,
    site: &FixtureServer,
    count: usize,
    latency_ms: u64,
) -> String {
    let urls: Vec<String> = (0..count)
        .map(|i| site.url(&format!("/page/{i}?latency_ms={latency_ms}")))
        .collect();
    let path = deployment
        .dir
        .path()
        .join(format!("urls-{count}-{latency_ms}.txt"));
    std::fs::write(&path, urls.join("\n")).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_complete_at_full_speed_while_every_core_computes() {
    let _alone = one_at_a_time().await;
    let site = FixtureServer::start();
    let mut deployment = Deployment::new("lane-cpu-busy");
    // One worker, both CPU threads of this 2-core machine busy with one ~3 s chunk each.
    deployment.start(1, &["--cpu-threads", "2"]);
    let cpu_job = submit(
        &deployment,
        &["submit", "sum-squares", "--values", "300000000,300000000"],
    );
    let cpu_queue = deployment.topology().task_queue("sum-squares");
    eventually(
        "the worker to take both CPU chunks",
        Duration::from_secs(30),
        || async { (deployment.queue_depth(&cpu_queue).await == 0).then_some(()) },
    )
    .await;

    const URLS: u64 = 40;
    const LATENCY_MS: u64 = 200;
    let file = urls_file(&deployment, &site, URLS as usize, LATENCY_MS);
    let downloads = deployment
        .producer(&["submit", "download", "--urls-file", &file, "--wait"])
        .json();
    let store = deployment.store().await;
    let cpu_state = store.require_job(cpu_job).await.unwrap();
    assert_eq!(
        cpu_state.status,
        JobStatus::Running,
        "the downloads must finish while the CPU chunks still compute: {downloads}"
    );
    assert_eq!(
        downloads["aggregate"]["ok"].as_u64(),
        Some(URLS),
        "{downloads}"
    );

    let cpu = deployment.producer(&["wait", &cpu_job.to_string()]).json();
    let download_ms = downloads["elapsed_ms"].as_u64().unwrap();
    let cpu_ms = cpu["elapsed_ms"].as_u64().unwrap();
    assert!(
        download_ms * 2 < cpu_ms,
        "downloads took {download_ms} ms, the CPU job {cpu_ms} ms"
    );
    // Full speed: the 40 waits overlapped instead of queueing behind busy cores or each other.
    assert!(
        download_ms < URLS * LATENCY_MS / 4,
        "40 x {LATENCY_MS} ms downloads took {download_ms} ms on a busy worker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_slow_downloads_does_not_delay_cpu_chunks() {
    let _alone = one_at_a_time().await;
    let site = FixtureServer::start();
    let mut deployment = Deployment::new("lane-flood");
    deployment.start(1, &[]);
    let file = urls_file(&deployment, &site, 200, 2000);
    let flood = submit(&deployment, &["submit", "download", "--urls-file", &file]);
    let io_queue = deployment.topology().task_queue("download");
    eventually(
        "the worker to take a full I/O prefetch",
        Duration::from_secs(30),
        || async { (deployment.queue_depth(&io_queue).await <= 200 - 64).then_some(()) },
    )
    .await;

    let cpu = deployment
        .producer(&[
            "submit",
            "sum-squares",
            "--values",
            "1000000,1000001,1000002,1000003",
            "--wait",
        ])
        .json();
    let store = deployment.store().await;
    let flood_state = store.require_job(flood).await.unwrap();
    assert_eq!(
        flood_state.status,
        JobStatus::Running,
        "the CPU job must finish while the flood still downloads: {cpu}"
    );
    assert!(
        deployment.queue_depth(&io_queue).await > 0,
        "downloads were still waiting in their queue when the CPU job completed"
    );
    let flood = deployment.producer(&["wait", &flood.to_string()]).json();
    assert_eq!(
        flood["aggregate"]["ok"].as_u64(),
        Some(200),
        "{}",
        flood["aggregate"]
    );
    let cpu_ms = cpu["elapsed_ms"].as_u64().unwrap();
    let flood_ms = flood["elapsed_ms"].as_u64().unwrap();
    assert!(
        cpu_ms * 4 < flood_ms,
        "the CPU job took {cpu_ms} ms beside a flood that took {flood_ms} ms"
    );
}
