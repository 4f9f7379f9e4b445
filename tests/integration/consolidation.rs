//! The consumer counts each chunk once: a result delivered twice changes nothing but the duplicate count.
//! No worker runs: the results are made by hand, and the `square` kind's declaration (its aggregate) is
//! recorded in the registry as a worker would.

use taskq_common::broker::Outgoing;
use taskq_common::envelope::{encode, ResultBatch, ResultMessage, RESULT_BATCH_TYPE, WIRE_VERSION};
use taskq_common::job::JobId;
use taskq_common::payload::ResultBuilder;
use taskq_tests::Deployment;

fn result(job: JobId, chunk: u32, x: i64) -> Outgoing {
    let message = result_message(job, chunk, x);
    Outgoing {
        queue: String::new(),
        body: encode(&message),
        message_id: format!("{job}/{chunk}"),
        kind: "square".into(),
        ..Outgoing::default()
    }
}

fn result_message(job: JobId, chunk: u32, x: i64) -> ResultMessage {
    let inputs = serde_json::to_vec(&[x]).expect("JSON");
    let mut payload = ResultBuilder::with_inputs(u64::from(chunk), inputs);
    payload.ok(&i128::from(x * x));
    ResultMessage {
        version: WIRE_VERSION,
        job_id: job,
        task_id: chunk,
        kind: "square".into(),
        attempt: 1,
        stage: 0,
        level: 0,
        worker_id: "test".into(),
        items: 1,
        failed: 0,
        payload: encode(&payload.finish()),
    }
}

/// A worker's batch of results, as `worker::results` publishes it.
fn batch(queue: &str, results: Vec<ResultMessage>) -> Outgoing {
    Outgoing {
        queue: queue.to_owned(),
        body: encode(&ResultBatch {
            version: WIRE_VERSION,
            results,
        }),
        message_id: "batch".into(),
        kind: RESULT_BATCH_TYPE.into(),
        ..Outgoing::default()
    }
}

#[tokio::test]
async fn a_result_delivered_twice_is_counted_once() {
    let mut deployment = Deployment::new("dupes");
    deployment.declare().await;
    deployment.record_builtin_kinds().await;
    let job = deployment.create_job("square", 3, 3).await;
    let queue = deployment.topology().results_queue();
    let to_results = |chunk, x| Outgoing {
        queue: queue.clone(),
        ..result(job, chunk, x)
    };
    // Chunk 1 twice (a worker died after publishing, before acking), in between the others.
    deployment
        .publish(&[
            to_results(1, 20),
            to_results(0, 10),
            to_results(1, 20),
            to_results(2, 30),
        ])
        .await;
    // One message at a time, in queue order: the duplicate is recorded before the last chunk completes
    // the job, so the summary counts it (with more in flight, it may be counted just after).
    deployment.start_consumer_with(&["--prefetch", "1"]);
    let summary = deployment.producer(&["wait", &job.to_string()]).json();
    assert_eq!(summary["items"].as_u64(), Some(3));
    assert_eq!(summary["duplicates_ignored"].as_u64(), Some(1));
    assert_eq!(summary["aggregate"]["total"].as_i64(), Some(1400));
    let lines = std::fs::read_to_string(summary["output"].as_str().unwrap()).unwrap();
    assert_eq!(
        lines,
        "{\"index\":0,\"input\":10,\"output\":100}\n{\"index\":1,\"input\":20,\"output\":400}\n{\"index\":2,\"input\":30,\"output\":900}\n"
    );

    // A late duplicate after completion changes nothing either.
    deployment.publish(&[to_results(2, 30)]).await;
    let store = deployment.store().await;
    let state = taskq_tests::eventually(
        "the late duplicate to be counted",
        std::time::Duration::from_secs(10),
        || async {
            let state = store.require_job(job).await.unwrap();
            (state.duplicates == 2).then_some(state)
        },
    )
    .await;
    assert_eq!((state.items_done, state.chunks_done), (3, 3));
}

#[tokio::test]
async fn batched_results_count_per_chunk_and_an_unknown_job_sends_its_batch_to_the_dead_letters() {
    let mut deployment = Deployment::new("batches");
    deployment.declare().await;
    deployment.record_builtin_kinds().await;
    let job = deployment.create_job("square", 4, 4).await;
    let stranger = JobId::new();
    let queue = deployment.topology().results_queue();
    deployment
        .publish(&[
            batch(
                &queue,
                vec![result_message(job, 1, 20), result_message(job, 0, 10)],
            ),
            // Chunk 1 again (a redelivered batch overlaps), and a result of a job Redis does not know.
            batch(
                &queue,
                vec![
                    result_message(job, 2, 30),
                    result_message(stranger, 0, 5),
                    result_message(job, 1, 20),
                ],
            ),
            // A single result, as older workers send them.
            Outgoing {
                queue: queue.clone(),
                ..result(job, 3, 40)
            },
        ])
        .await;
    // One message at a time, so the duplicate is counted before the single result completes the job.
    deployment.start_consumer_with(&["--prefetch", "1"]);
    let summary = deployment.producer(&["wait", &job.to_string()]).json();
    assert_eq!(summary["items"].as_u64(), Some(4));
    assert_eq!(summary["duplicates_ignored"].as_u64(), Some(1));
    assert_eq!(summary["aggregate"]["total"].as_i64(), Some(3000));
    let dead = deployment.drain_dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].contains(&format!(
            "result for job {stranger}, which Redis does not know"
        )),
        "{dead:?}"
    );
    assert_eq!(deployment.queue_depth(&queue).await, 0);
}
