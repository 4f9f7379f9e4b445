//! Redis behind Sentinel: every process finds the master through the sentinels
//! (`redis+sentinel://...`), and the writes a failover must not lose are confirmed by a replica
//! (`WAIT`) before anyone acts on them. The failover itself is in the serial tests (`failover`).

use std::time::{Duration, Instant};

use taskq_tests::sentinels::SentinelCluster;
use taskq_tests::{assert_every_square_once, Deployment};

const ITEMS: u64 = 5_000;

/// `calls` of `command` in the server's `INFO commandstats`.
fn calls(cluster: &SentinelCluster, port: u16, command: &str) -> u64 {
    cluster
        .cli(port, &["info", "commandstats"])
        .iter()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_job_through_sentinels_completes_exact_with_confirmed_writes() {
    // Declared first, so it outlives the deployment's clean-up. A password on the servers and the
    // sentinels alike, as in the compose deployment: the URL's password goes to both.
    let cluster = SentinelCluster::start_with_password(1, "s3cret");
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
    let logs = format!("{}{}", deployment.all_logs(), run.stderr());
    assert!(!logs.contains("s3cret"), "a password in the logs:\n{logs}");

    // The job's creation, each result message and the completion were confirmed by the replica.
    let chunks = ITEMS / 100;
    let waits = calls(&cluster, master, "wait");
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
    while cluster.cli(replica, &["hget", &key, "status"]) != ["completed"] {
        assert!(Instant::now() < deadline, "the replica never got {key}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
