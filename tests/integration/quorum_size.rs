//! The replication factor of quorum queues: created as `--quorum-size` (or `TASKQ_QUORUM_SIZE`) says,
//! and a queue that exists with another one is kept as it is, and works, without stopping anyone.

use taskq_common::broker;
use taskq_common::declare::QUORUM_SIZE_ARG;
use taskq_tests::chaos::assert_every_square_once;
use taskq_tests::rabbitmq::queue_arguments;
use taskq_tests::{amqp_url, Deployment};

/// What the warning about a kept queue says.
const KEPT: &str = "keeps its current members";

#[tokio::test]
async fn quorum_queues_are_created_with_the_replication_factor_asked_for() {
    let mut deployment = Deployment::new("quorumsize");
    deployment.start_worker(&["--quorum-size", "3"]);
    let topology = deployment.topology();
    for queue in [topology.task_queue("square"), topology.results_queue()] {
        let arguments = queue_arguments(&queue);
        assert_eq!(arguments[QUORUM_SIZE_ARG], 3, "{queue}: {arguments}");
        assert_eq!(arguments["x-queue-type"], "quorum", "{queue}: {arguments}");
    }
    assert_eq!(
        queue_arguments(&topology.dead_queue())[QUORUM_SIZE_ARG],
        serde_json::Value::Null,
        "the dead-letter queue is classic"
    );
    assert!(!deployment.log(0).contains(KEPT), "{}", deployment.log(0));
}

#[tokio::test]
async fn a_queue_created_with_another_replication_factor_is_kept_and_works() {
    let mut deployment = Deployment::new("quorumkept");
    // As an older deployment, or one with another --quorum-size, left them.
    let earlier = deployment.topology().with_quorum_size(3);
    let connection = broker::connect(&amqp_url(), "test").await.expect("broker");
    earlier.declare(&connection).await.expect("declare");
    earlier
        .declare_kind(&connection, "square")
        .await
        .expect("declare square");
    let _ = connection.close(200, "done".into()).await;

    deployment.start(1, &[]);
    let args = [
        "submit",
        "square",
        "--values",
        "1..=50",
        "--chunk-size",
        "4",
        "--wait",
    ];
    let run = deployment.producer_env(&args, &[("TASKQ_QUORUM_SIZE", "2")]);
    assert_every_square_once(&run.json(), 50, &deployment.all_logs());

    for process in [0, 1] {
        let log = deployment.log(process);
        assert_eq!(log.matches(KEPT).count(), 1, "said once:\n{log}");
        assert!(log.contains("rabbitmq-queues grow"), "says how:\n{log}");
    }
    let topology = deployment.topology();
    for queue in [topology.task_queue("square"), topology.results_queue()] {
        let arguments = queue_arguments(&queue);
        assert_eq!(arguments[QUORUM_SIZE_ARG], 3, "kept: {queue}: {arguments}");
    }
}
