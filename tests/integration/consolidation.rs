//! The consumer counts each chunk once: a result delivered twice changes nothing but the duplicate count.

use taskq_common::broker::Outgoing;
use taskq_common::envelope::{encode, ResultMessage, WIRE_VERSION};
use taskq_common::job::JobId;
use taskq_common::tasks::ResultPayload;
use taskq_tests::Deployment;

fn result(job: JobId, chunk: u32, x: i64) -> Outgoing {
    let payload = ResultPayload {
        first_index: u64::from(chunk),
        items: vec![x],
        outcomes: vec![Ok(i128::from(x * x))],
    };
    let message = ResultMessage {
        version: WIRE_VERSION,
        job_id: job,
        task_id: chunk,
        kind: "square".into(),
        attempt: 1,
        worker_id: "test".into(),
        items: 1,
        failed: 0,
        payload: encode(&payload),
    };
    Outgoing {
        queue: String::new(),
        body: encode(&message),
        message_id: format!("{job}/{chunk}"),
        kind: "square".into(),
        ..Outgoing::default()
    }
}

#[tokio::test]
async fn a_result_delivered_twice_is_counted_once() {
    let mut deployment = Deployment::new("dupes");
    deployment.declare().await;
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
    deployment.start_consumer();
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
