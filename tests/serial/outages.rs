//! RabbitMQ or Redis restarted mid-job. These need the right to run `rabbitmqctl` and
//! `scripts/services.sh` (root, as in CI); the broker restarted is the one of
//! [`taskq_tests::chaos`] (another node with `TASKQ_TEST_RABBITMQ_NODE`).

use std::process::Command;
use std::time::Duration;

use taskq_common::job::JobId;
use taskq_tests::chaos::assert_every_square_once;
use taskq_tests::rabbitmq::restart_broker;
use taskq_tests::{eventually, Deployment};

use crate::one_at_a_time;
const ITEMS: u64 = 100_000;

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

fn connected_redis_clients() -> u64 {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "info", "clients"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("connected_clients:"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

fn services_script() -> String {
    format!("{}/../scripts/services.sh", env!("CARGO_MANIFEST_DIR"))
}

/// Starts 2 workers and a consumer, submits squares of 1..=ITEMS, and waits until a fifth is done.
async fn job_under_way(deployment: &mut Deployment) -> JobId {
    deployment.start(2, &[]);
    let job = deployment.submit_squares(ITEMS, 10);
    let store = deployment.store().await;
    eventually("a fifth of the job", Duration::from_secs(60), || async {
        let state = store.require_job(job).await.unwrap();
        (state.chunks_done >= (ITEMS / 10 / 5) as u32).then_some(())
    })
    .await;
    job
}

#[tokio::test]
async fn a_broker_restart_mid_job_is_survived_by_every_process() {
    let _alone = one_at_a_time().await;
    let mut deployment = Deployment::new("brokerrestart");
    let job = job_under_way(&mut deployment).await;
    // A waiting producer rides out the outage too.
    let waiting =
        deployment.producer_in_background(&["wait", &job.to_string(), "--timeout", "120"]);

    restart_broker(Duration::from_secs(2)).await;

    let waited = waiting.finish(Duration::from_secs(150));
    assert_every_square_once(&waited.json(), ITEMS, &deployment.all_logs());
    // The job may finish on whichever process came back first; every process must come back soon after
    // (a silent stall never would).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for process in 0..3 {
        let came_back =
            |log: &str| log.contains("reconnecting") && log.matches(" consuming").count() >= 2;
        while !came_back(&deployment.log(process)) {
            assert!(
                std::time::Instant::now() < deadline,
                "process {process} did not consume again within 30 s of the job's end:\n{}",
                deployment.log(process)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_redis_restart_mid_job_loses_nothing() {
    let _alone = one_at_a_time().await;
    let mut deployment = Deployment::new("redisrestart");
    let job = job_under_way(&mut deployment).await;
    let clients_before = connected_redis_clients();
    let waiting =
        deployment.producer_in_background(&["wait", &job.to_string(), "--timeout", "120"]);
    // The waiting producer must be connected before the outage: it fails fast if Redis is down at start.
    eventually(
        "the waiting producer to connect",
        Duration::from_secs(30),
        || async { (connected_redis_clients() > clients_before).then_some(()) },
    )
    .await;

    // A clean shutdown writes the append-only file; services.sh starts Redis again on the same file.
    run("redis-cli", &["-h", "127.0.0.1", "shutdown"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    run(&services_script(), &[]);

    let waited = waiting.finish(Duration::from_secs(150));
    assert_every_square_once(&waited.json(), ITEMS, &deployment.all_logs());
}
