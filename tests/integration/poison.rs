//! Messages a worker can never process go to the dead-letter queue with the reason in a header, the
//! worker survives, and other work keeps flowing.

use std::time::{Duration, Instant};

use taskq_common::broker::Outgoing;
use taskq_common::envelope::WIRE_VERSION;
use taskq_common::job::JobId;
use taskq_tests::{eventually, payload, Deployment, TEST_WORKER};

/// The queue every hand-made message of the first test goes to: one the stock worker consumes.
const SQUARE: &str = "square";

/// The test worker's kind that aborts its worker (see tests/bin/test_kinds/abort.rs).
const ABORT: &str = "test-abort";

/// Chunk 0 of `job`, of `kind`, published to the `square` queue whatever its kind.
fn task(
    deployment: &Deployment,
    job: JobId,
    kind: &str,
    version: u16,
    payload: Vec<u8>,
) -> Outgoing {
    Outgoing {
        queue: deployment.topology().task_queue(SQUARE),
        ..deployment.task(job, 0, kind, version, payload)
    }
}

fn raw(deployment: &Deployment, body: Vec<u8>) -> Outgoing {
    deployment.raw_task(SQUARE, body)
}

fn items<T: serde::Serialize>(items: Vec<T>) -> Vec<u8> {
    payload(0, items)
}

#[tokio::test]
async fn undecodable_messages_are_dead_lettered_with_the_reason() {
    let mut deployment = Deployment::new("poison");
    deployment.declare().await;
    let job = deployment.create_job("square", 1, 1).await;
    deployment
        .publish(&[
            raw(&deployment, b"\xc1 not msgpack".to_vec()),
            task(
                &deployment,
                job,
                "mine-bitcoin",
                WIRE_VERSION,
                items(vec![3i64]),
            ),
            task(
                &deployment,
                job,
                "square",
                WIRE_VERSION + 1,
                items(vec![3i64]),
            ),
            // Not a payload at all (an item that does not fit the kind would fail alone instead).
            task(
                &deployment,
                job,
                "square",
                WIRE_VERSION,
                b"\xc1 not a payload".to_vec(),
            ),
            task(
                &deployment,
                JobId::new(),
                "square",
                WIRE_VERSION,
                items(vec![3i64]),
            ),
        ])
        .await;

    deployment.start(1, &["--cpu-threads", "1"]);
    let dead = deployment.topology().dead_queue();
    eventually("5 dead letters", Duration::from_secs(30), || async {
        (deployment.queue_depth(&dead).await == 5).then_some(())
    })
    .await;
    let reasons = deployment.drain_dead_letters().await;
    // A kind the worker does not serve, in a queue it consumes, is refused; the list it serves also
    // shows that the stock worker serves no test-only kind.
    let expected = [
        "malformed message".to_owned(),
        "malformed message: payload".to_owned(),
        "this worker does not serve task kind 'mine-bitcoin' (it serves download, image-blur, square, sum-squares)"
            .to_owned(),
        format!("unsupported wire version {}", WIRE_VERSION + 1),
        "which Redis does not know".to_owned(),
    ];
    assert_eq!(reasons.len(), expected.len(), "{reasons:?}");
    for fragment in &expected {
        assert!(
            reasons.iter().any(|r| r.contains(fragment.as_str())),
            "no reason contains '{fragment}': {reasons:?}"
        );
    }
    let queue = deployment.topology().task_queue(SQUARE);
    assert_eq!(
        deployment.queue_depth(&queue).await,
        0,
        "nothing left to redeliver"
    );

    // The worker survived all of it and keeps working.
    let summary = deployment
        .producer(&["submit", "square", "--values", "1..=5", "--wait"])
        .json();
    assert_eq!(summary["aggregate"]["total"].as_i64(), Some(55));
    assert!(
        !deployment.log(0).contains("panicked at"),
        "{}",
        deployment.all_logs()
    );
}

#[tokio::test]
async fn a_chunk_that_kills_its_worker_is_quarantined_while_other_work_flows() {
    let mut deployment = Deployment::new("abort");
    deployment.declare_kinds(&[ABORT]).await;
    let job = deployment.create_job(ABORT, 1, 1).await;
    // Registered before the chunk arrives: a worker that dies at once could never register.
    let started = deployment.start_workers(TEST_WORKER, 2, &["--cpu-threads", "1"]);
    let mut workers = [started[0], started[1]];
    deployment.start_consumer();
    deployment
        .publish(&[deployment.task(job, 0, ABORT, WIRE_VERSION, items(vec![1u8]))])
        .await;
    let other_work = deployment.producer_in_background(&[
        "submit",
        "square",
        "--values",
        "1..=2000",
        "--chunk-size",
        "10",
        "--wait",
    ]);

    let dead = deployment.topology().dead_queue();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut deaths = 0;
    loop {
        for worker in &mut workers {
            if !deployment.is_running(*worker) {
                deaths += 1;
                *worker = deployment.restart(*worker);
            }
        }
        if deployment.queue_depth(&dead).await > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not quarantined after {deaths} deaths:\n{}",
            deployment.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    deaths += workers
        .iter()
        .filter(|w| !deployment.is_running(**w))
        .count();
    let reasons = deployment.drain_dead_letters().await;
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("started 6 times without finishing"),
        "{reasons:?}"
    );
    assert_eq!(deaths, 5, "one death per run before the quarantine");
    // The job is not left hanging: its item counts as failed, with the reason.
    let poisoned = deployment
        .producer(&["wait", &job.to_string(), "--timeout", "30"])
        .json();
    assert_eq!(
        (poisoned["items"].as_u64(), poisoned["failed"].as_u64()),
        (Some(1), Some(1))
    );
    let error = poisoned["results"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("started 6 times without finishing"),
        "{poisoned}"
    );

    let summary = other_work.finish(Duration::from_secs(60)).json();
    assert_eq!(summary["items"].as_u64(), Some(2000));
    assert_eq!(
        summary["aggregate"]["total"].as_i64(),
        Some((1..=2000i64).map(|x| x * x).sum())
    );
}
