//! While every core is busy with long chunks, the AMQP heartbeat keeps flowing: no connection reset and
//! no redelivery, even with chunks longer than twice the heartbeat interval.

use taskq_tests::{amqp_url, Deployment};

const HEARTBEAT_SECS: u64 = 1;

#[test]
fn long_chunks_on_busy_cores_keep_the_connection() {
    let _alone = crate::ONE_AT_A_TIME.blocking_lock();
    let url = format!("{}?heartbeat={HEARTBEAT_SECS}", amqp_url());
    let mut deployment = Deployment::with_amqp_url("heartbeat", url);
    // One worker, both cores busy: two chunks of one long item each.
    deployment.start(1, &["--cpu-threads", "2"]);
    // About 3.5 s per item on this machine's cores: the worker is registered before the submit, so the
    // job's time is compute alone, and it must outlast two heartbeat intervals with a margin.
    let n = 600_000_000u64;
    let run = deployment.producer(&[
        "submit",
        "sum-squares",
        "--values",
        &format!("{n},{n}"),
        "--wait",
    ]);
    let summary = run.json();

    let expected = worker::tasks::SumSquares::closed_form(n).to_string();
    assert_eq!(summary["results"][0]["output"].to_string(), expected);
    assert_eq!(summary["results"][1]["output"].to_string(), expected);
    assert!(
        summary["elapsed_ms"].as_u64().unwrap() > 2 * 1000 * HEARTBEAT_SECS,
        "the chunks must outlast two heartbeat intervals for this test to mean anything: {summary}"
    );
    assert_eq!(summary["duplicates_ignored"].as_u64(), Some(0));
    let log = deployment.log(0);
    for sign_of_trouble in [
        "redelivered",
        "reconnecting",
        "connection failed",
        "missed heartbeats",
    ] {
        assert!(
            !log.contains(sign_of_trouble),
            "worker log shows '{sign_of_trouble}':\n{log}"
        );
    }
}
