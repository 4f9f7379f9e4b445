//! Redis behind Sentinel loses its master mid-job: the master is killed with SIGKILL while workers and
//! the consumer are busy, the sentinels promote a replica, every process finds it through the
//! sentinels, and the job still ends exact: every item once. Writes the consumer acted on were
//! confirmed by a replica (`WAIT`), so none was lost with the master.

use std::time::{Duration, Instant};

use taskq_tests::sentinels::SentinelCluster;
use taskq_tests::{assert_every_square_once, eventually, Deployment};

use crate::one_at_a_time;

/// Enough small chunks that the job runs for several seconds.
const ITEMS: u64 = 200_000;
const CHUNK: u32 = 50;

/// The `waited_ms` of each "Redis master changed" line in `log`.
fn failover_pauses(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|line| line.contains("Redis master changed"))
        .filter_map(|line| {
            let rest = &line[line.find("waited_ms=")? + "waited_ms=".len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[tokio::test]
async fn a_master_killed_mid_job_fails_over_and_the_job_ends_exact() {
    let _alone = one_at_a_time().await;
    // Two replicas: after the failover the new master still has one to confirm writes (WAIT 1).
    let mut cluster = SentinelCluster::start(2);
    let mut deployment = Deployment::new("failover").with_redis_url(cluster.url());
    deployment.start(2, &[]);
    let job = deployment.submit_squares(ITEMS, CHUNK);
    let chunks = (ITEMS / u64::from(CHUNK)) as u32;
    let store = deployment.store().await;
    eventually("a tenth of the job", Duration::from_secs(60), || async {
        let state = store.require_job(job).await.unwrap();
        (state.chunks_done >= chunks / 10).then_some(())
    })
    .await;
    let before = store.require_job(job).await.unwrap().chunks_done;
    assert!(
        before < chunks,
        "the job ended before the master was killed"
    );

    let killed_at = Instant::now();
    let old = cluster.kill_master();
    let new = cluster.wait_for_promotion(old, 1, Duration::from_secs(60));
    let promoted_after = killed_at.elapsed();
    eprintln!("master :{old} killed with {before}/{chunks} chunks done; :{new} promoted after {promoted_after:?}");

    let waited = deployment.producer(&["wait", &job.to_string(), "--timeout", "110"]);
    let logs = format!("{}\n{}", deployment.all_logs(), cluster.logs());
    let summary = waited.json();
    assert_every_square_once(&summary, ITEMS, &logs);
    eprintln!(
        "job ended {:?} after the kill; {} duplicate results ignored",
        killed_at.elapsed(),
        summary["duplicates_ignored"]
    );
    // Every process (two workers, the consumer) lost the master and found the promoted one.
    for process in 0..3 {
        let pauses = failover_pauses(&deployment.log(process));
        assert!(
            !pauses.is_empty(),
            "process {process} never logged the failover:\n{}",
            deployment.log(process)
        );
        let requeued = deployment.log(process).matches("back to the queue").count();
        eprintln!("process {process} waited {pauses:?} ms for the new master; {requeued} message(s) requeued");
    }
}
