//! The client API (`producer::Client`) used from a program, against a running worker and consumer:
//! typed submits and exact typed outputs, several jobs through one long-lived client, chunk sizes chosen
//! per job, and a kind no live worker serves refused before anything is sent.

use producer::prepare::{Items, JobInput};
use producer::{outputs, Client, JobOptions, ProducerError};
use serde_json::value::RawValue;
use taskq_common::job::{ChunkSize, JobStatus};
use taskq_common::task::Task;
use taskq_tests::{amqp_url, redis_url, Deployment};
use tokio_util::sync::CancellationToken;
use worker::tasks::Square;

/// A typed kind that no worker serves.
struct Unserved;

impl Task for Unserved {
    const NAME: &'static str = "nobody-serves-this";
    type Input = u32;
    type Output = u32;
}

/// The kinds the one stock worker of these tests serves, as the refusal names them.
fn stock_kinds() -> Vec<String> {
    ["download", "image-blur", "square", "sum-squares"]
        .map(String::from)
        .to_vec()
}

/// A client on the deployment's namespace.
async fn client(deployment: &Deployment) -> Client {
    Client::connect(&amqp_url(), &redis_url(), &deployment.prefix)
        .await
        .expect("client connects")
}

/// Submits `items` as a `square` job with `options`, waits, and returns the typed outputs.
async fn squares(
    client: &Client,
    items: &[i64],
    options: &JobOptions,
) -> Vec<Result<i128, String>> {
    let job = client
        .submit_with::<Square>(items, options)
        .await
        .expect("submit");
    let state = job.wait().await.expect("wait");
    assert_eq!(state.status, JobStatus::Completed, "{state:?}");
    assert_eq!(state.spec.id, job.id());
    outputs::<i128>(&state).expect("outputs")
}

#[tokio::test]
async fn a_typed_submit_waits_for_exact_typed_outputs() {
    let mut deployment = Deployment::new("client");
    deployment.start(1, &[]);
    let client = client(&deployment).await;

    let job = client.submit::<Square>(&[1, 2, 3]).await.expect("submit");
    let state = job.wait().await.expect("wait");

    assert_eq!(
        outputs::<i128>(&state).expect("outputs"),
        [Ok(1), Ok(4), Ok(9)]
    );
    assert_eq!((state.items_done, state.items_failed), (3, 0));
    let summary = state.summary.as_ref().expect("summary");
    assert_eq!(summary["aggregate"]["total"].as_i64(), Some(14));
    // The finished job reads the same through status.
    assert_eq!(job.status().await.expect("status").summary, state.summary);
    client.close().await;
}

#[tokio::test]
async fn one_client_submits_several_jobs_with_their_own_chunk_sizes() {
    let mut deployment = Deployment::new("clientmany");
    deployment.start(1, &[]);
    let client = client(&deployment).await;
    let default = JobOptions::default();
    let per_item = JobOptions {
        chunk_size: ChunkSize::new(1),
        ..JobOptions::default()
    };

    let first = squares(&client, &[4, 5], &default).await;
    let second = squares(&client, &[-6, 0], &per_item).await;
    let third = squares(&client, &[i64::MAX, i64::MIN], &per_item).await;

    assert_eq!(first, [Ok(16), Ok(25)]);
    assert_eq!(second, [Ok(36), Ok(0)]);
    let (max, min) = (i128::from(i64::MAX), i128::from(i64::MIN));
    assert_eq!(third, [Ok(max * max), Ok(min * min)]);
    // Two at once through the same client.
    let (a, b) = tokio::join!(
        squares(&client, &[7], &per_item),
        squares(&client, &[8, 9, 10], &default)
    );
    assert_eq!((a, b), (vec![Ok(49)], vec![Ok(64), Ok(81), Ok(100)]));
    let jobs = deployment.store().await.job_ids().await.expect("job ids");
    assert_eq!(jobs.len(), 5, "five jobs: {jobs:?}");
    client.close().await;
}

#[tokio::test]
async fn a_kind_no_live_worker_serves_is_refused_naming_the_served_ones() {
    let mut deployment = Deployment::new("clientunserved");
    deployment.start(1, &[]);
    let client = client(&deployment).await;

    let typed = client.submit::<Unserved>(&[1, 2]).await.err();
    assert!(
        matches!(&typed, Some(ProducerError::Unserved { kind, served })
            if kind == "nobody-serves-this" && *served == stock_kinds()),
        "{typed:?}"
    );
    let input = JobInput {
        kind: "nosuch".into(),
        items: Items::Json(vec![RawValue::from_string("1".into()).expect("JSON")]),
    };
    let untyped = client
        .submit_input(&input, &JobOptions::default(), &CancellationToken::new())
        .await
        .err();
    assert!(
        matches!(&untyped, Some(ProducerError::Unserved { kind, served })
            if kind == "nosuch" && *served == stock_kinds()),
        "{untyped:?}"
    );
    assert_eq!(typed.map(|e| e.exit_code()), Some(2));
    let jobs = deployment.store().await.job_ids().await.expect("job ids");
    assert!(jobs.is_empty(), "nothing recorded: {jobs:?}");
    for kind in ["nobody-serves-this", "nosuch"] {
        let queue = deployment.topology().task_queue(kind);
        assert_eq!(
            deployment.queue_stats(&queue).await,
            None,
            "{queue} declared"
        );
    }

    // The same client still submits a served kind afterwards.
    let job = client.submit::<Square>(&[12]).await.expect("submit");
    let state = job.wait().await.expect("wait");
    assert_eq!(outputs::<i128>(&state).expect("outputs"), [Ok(144)]);
    client.close().await;
}
