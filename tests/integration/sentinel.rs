//! Redis behind Sentinel: every process finds the master through the sentinels
//! (`redis+sentinel://...`), and the writes a failover must not lose are confirmed by a replica
//! (`WAIT`) before anyone acts on them. The failover itself is in the serial tests (`failover`).

use std::time::{Duration, Instant};

use taskq_tests::sentinels::{cli, SentinelCluster};
use taskq_tests::{assert_every_square_once, Deployment};

const ITEMS: u64 = 5_000;

/// `calls` of `command` in the server's `INFO commandstats`.
fn calls(port: u16, command: &str) -> u64 {
    cli(port, &["info", "commandstats"])
        .iter()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_job_through_sentinels_completes_exact_with_confirmed_writes() {
    // Declared first, so it outlives the deployment's clean-up.
    let cluster = SentinelCluster::start(1);
    let master = cluster.master_port().expect("the sentinels name a master");
    let mut deployment = Deployment::new("sentinel").with_redis_url(cluster.url());
    deployment.start(2, &[]);
    let values = format!("1..={ITEMS}");
    let run = deployment.producer(&[
        "submit",
        "square",
        "--values",
        &values,
        "--chunk-size",
        "100",
        "--wait",
    ]);
    assert_every_square_once(&run.json(), ITEMS, &deployment.all_logs());

    // The job's creation, each result message and the completion were confirmed by the replica.
    let chunks = ITEMS / 100;
    let waits = calls(master, "wait");
    assert!(
        waits >= 3,
        "expected WAITs for the job's creation, its results and its end; saw {waits}"
    );
    assert!(
        waits <= chunks + 2,
        "at most one WAIT per result message: {waits}"
    );
    // The job lives in the cluster, not the shared Redis: the replica holds its finished record.
    let key = format!(
        "{}:job:{}",
        deployment.prefix,
        run.json()["job_id"].as_str().unwrap()
    );
    let replica = cluster.replica_ports()[0];
    let deadline = Instant::now() + Duration::from_secs(10);
    while cli(replica, &["hget", &key, "status"]) != ["completed"] {
        assert!(Instant::now() < deadline, "the replica never got {key}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
