//! The broker cancels a consumer (here its queue is deleted under it, as an operator may do; a broker
//! also cancels consumers when a queue goes away on a node): the worker and the consumer notice, log why,
//! declare the queue again and consume it again, and the next job completes.

use std::time::Duration;

use taskq_tests::chaos::assert_every_square_once;
use taskq_tests::rabbitmq::{delete_queue, until_consumed};
use taskq_tests::Deployment;

/// How long a process may take to consume again.
const BACK_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test]
async fn consumers_cancelled_by_the_broker_declare_again_and_consume_again() {
    let mut deployment = Deployment::new("brokercancel");
    deployment.start(1, &[]);
    let (worker, consumer) = (0, 1);
    let topology = deployment.topology();
    let (results, tasks) = (topology.results_queue(), topology.task_queue("square"));
    for queue in [&results, &tasks] {
        let consumed = until_consumed(queue, 1, BACK_WITHIN).await;
        consumed.unwrap_or_else(|why| panic!("{why}\n{}", deployment.all_logs()));
    }

    delete_queue(&results).await;
    delete_queue(&tasks).await;

    for queue in [&results, &tasks] {
        let back = until_consumed(queue, 1, BACK_WITHIN).await;
        back.unwrap_or_else(|why| panic!("{why}\n{}", deployment.all_logs()));
    }
    for (process, queue) in [(worker, &tasks), (consumer, &results)] {
        let log = deployment.log(process);
        let why = format!("RabbitMQ stopped delivering from '{queue}'");
        assert!(log.contains(&why), "process {process} says why:\n{log}");
    }
    let args = [
        "submit",
        "square",
        "--values",
        "1..=100",
        "--chunk-size",
        "7",
    ];
    let summary = deployment
        .producer(&[&args[..], &["--wait"]].concat())
        .json();
    assert_every_square_once(&summary, 100, &deployment.all_logs());
}
