//! Batched acks against the real broker: a `multiple` ack never covers a delivery that still runs, and
//! every finished delivery is settled.

use std::time::Duration;

use futures::FutureExt;
use taskq_common::broker;
use taskq_common::connection_watch::ConnectionWatch;
use taskq_common::consume::Consuming;
use taskq_tests::{amqp_url, eventually, Deployment};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn acks_in_batches_never_cover_a_delivery_still_running() {
    let deployment = Deployment::new("settle");
    deployment.declare().await;
    let queue = deployment.topology().task_queue("square");
    // Delivery 2 of 40 runs on "forever"; the others finish at once, most of them after it.
    let messages: Vec<_> = (0..40u8)
        .map(|i| deployment.raw_task("square", vec![i]))
        .collect();
    deployment.publish(&messages).await;

    let connection = broker::connect(&amqp_url(), "settle test")
        .await
        .expect("broker");
    let watch = ConnectionWatch::new(&connection);
    let (channel, consumer) = broker::consume(&connection, &queue, 64, "settle-test")
        .await
        .expect("consume");
    let consuming = Consuming {
        connection: Some(connection),
        channel,
        consumer,
        queue: queue.clone(),
        watch,
    };
    let (acked, mut acks) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let handle = move |delivery: taskq_common::settle::Received| {
        let acked = acked.clone();
        async move {
            if delivery.data == [1] {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            delivery.ack().await;
            let _ = acked.send(());
        }
        .boxed()
    };
    let running = {
        let stop = stop.clone();
        tokio::spawn(async move {
            consuming
                .run(
                    &stop,
                    Duration::from_millis(200),
                    futures::stream::pending(),
                    handle,
                )
                .await
        })
    };
    for _ in 0..39 {
        tokio::time::timeout(Duration::from_secs(30), acks.recv())
            .await
            .expect("39 deliveries acked in time");
    }
    // The loop stops; the held delivery is abandoned unacked and the connection closes.
    stop.cancel();
    running.await.unwrap().expect("clean stop");
    eventually(
        "the one unfinished delivery back in the queue, and only it",
        Duration::from_secs(10),
        || async { (deployment.queue_depth(&queue).await == 1).then_some(()) },
    )
    .await;
}
