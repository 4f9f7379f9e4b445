//! The raw ceiling of one quorum queue (issue #13 item 6, issue #15 item 2): how many messages a second
//! one queue takes and gives when nothing else happens per message. One Raft leader serves each quorum
//! queue, so this bounds what any number of workers can get through one task queue (docs/scaling.md).
//!
//! A private queue declared exactly as a kind's task queue is; persistent messages published with
//! confirms, at most [`CONFIRM_WINDOW`] unconfirmed as the producer does; consumed with manual acks at a
//! prefetch of [`PREFETCH`], each delivery on a task of its own and acked through the workers' own
//! [`Settler`] (acks batched with `multiple`). Three phases per message size: publishing into the empty
//! queue, consuming what it holds, and both at once. The end-to-end one-item-chunk figure is reported as a
//! share of the both-at-once rate at 100 B when both groups run ([`share_row`]).

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::StreamExt;
use lapin::options::{BasicCancelOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::Connection;
use taskq_common::broker::{self, Outgoing, Publisher};
use taskq_common::envelope::{encode, TaskMessage};
use taskq_common::job::JobId;
use taskq_common::payload::TaskPayload;
use taskq_common::settle::Settler;
use taskq_common::topology::Topology;
use taskq_tests::amqp_url;
use tokio_util::task::TaskTracker;

use crate::Row;

/// Unconfirmed publishes at once: the producer's window when it publishes a job's chunks.
const CONFIRM_WINDOW: usize = 1024;
/// Unacknowledged deliveries at once: the workers' adaptive prefetch at its cap on this 2-core machine
/// (32 per pool thread), where one-item chunks put it.
const PREFETCH: u16 = 64;
/// How long one phase may take before the benchmark gives up on it.
const PHASE_LIMIT: Duration = Duration::from_secs(180);
/// The kind the private queue is declared for (it only names the queue).
const KIND: &str = "ceiling";

/// A message size and how many messages of it each phase moves.
struct Load {
    body: usize,
    count: usize,
}

/// 100 B is about a one-item chunk's task message; 10 KB a chunk of a few hundred numbers.
const LOADS: [Load; 2] = [
    Load {
        body: 100,
        count: 50_000,
    },
    Load {
        body: 10_000,
        count: 10_000,
    },
];

/// Messages a second through one queue for one message size.
struct Ceiling {
    load: &'static Load,
    publish: f64,
    consume: f64,
    both: f64,
}

/// Measures every [`LOADS`] entry, adds a row for each, and returns the both-at-once rate of the
/// smallest messages (messages/s), the figure end-to-end one-item chunks compare with.
pub fn one_quorum_queue(rows: &mut Vec<Row>) -> f64 {
    let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_average = load_average.split(' ').next().unwrap_or("?").to_owned();
    let prefix = format!("bench-ceiling-{}", std::process::id());
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let ceilings = runtime
        .block_on(measure_and_clean_up(&prefix))
        .unwrap_or_else(|error| panic!("queue ceiling: {error:#}"));
    for ceiling in &ceilings {
        rows.push(row(ceiling, &load_average));
    }
    ceilings[0].both
}

/// The row comparing end-to-end one-item chunks (items/s) with the queue's raw ceiling (messages/s).
pub fn share_row(one_item_chunks: f64, ceiling: f64) -> Row {
    Row {
        scenario: "`square --chunk-size 1` end to end, as a share of one quorum queue's raw ceiling (100 B, publish and consume at once)".into(),
        figure: format!(
            "{one_item_chunks:.0} items/s of {ceiling:.0} messages/s = {:.0}%",
            100.0 * one_item_chunks / ceiling
        ),
        target: "-".into(),
    }
}

fn row(ceiling: &Ceiling, load_average: &str) -> Row {
    let Load { body, count } = *ceiling.load;
    let rate = |per_sec: f64| {
        format!(
            "{per_sec:.0} msg/s ({:.1} MB/s)",
            per_sec * body as f64 / 1e6
        )
    };
    Row {
        scenario: format!(
            "one quorum queue, {count} x {body} B persistent (a one-item `square` chunk is {} B): confirms (window {CONFIRM_WINDOW}), manual acks (prefetch {PREFETCH})",
            one_item_chunk_bytes()
        ),
        figure: format!(
            "publish only {}; consume only {}; both at once {} (load average {load_average} at start)",
            rate(ceiling.publish),
            rate(ceiling.consume),
            rate(ceiling.both)
        ),
        target: "- (the raw ceiling)".into(),
    }
}

/// The size of a real one-item chunk's task message, so the 100 B load can be judged against it.
fn one_item_chunk_bytes() -> usize {
    let payload = TaskPayload::of(17, &[17u64]).expect("one number encodes");
    encode(&TaskMessage::new(JobId::new(), (0, 0, 17), "square", &payload)).len()
}

/// Declares the private queue, measures, and deletes the queue whatever the outcome.
async fn measure_and_clean_up(prefix: &str) -> anyhow::Result<Vec<Ceiling>> {
    let topology = Topology::new(prefix);
    let queue = topology.task_queue(KIND);
    let publishing = broker::connect(&amqp_url(), "bench-ceiling-publisher").await?;
    let consuming = broker::connect(&amqp_url(), "bench-ceiling-consumer").await?;
    let publisher = Publisher::new(broker::open_channel(&publishing).await?).await?;
    let measured = measure_all(&topology, &publisher, &consuming).await;
    let deleted = broker::within("deleting the queue", async {
        publisher
            .channel()
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .map_err(broker::BrokerError::channel("deleting the queue"))
    })
    .await;
    let _ = publishing.close(200, "done".into()).await;
    let _ = consuming.close(200, "done".into()).await;
    let ceilings = measured?;
    deleted.with_context(|| format!("deleting {queue}: delete it in the management UI"))?;
    Ok(ceilings)
}

/// Declares the queue as a kind's task queue is declared, then measures every load in turn.
async fn measure_all(
    topology: &Topology,
    publisher: &Publisher,
    consuming: &Connection,
) -> anyhow::Result<Vec<Ceiling>> {
    topology.declare_kind(publisher.channel(), KIND).await?;
    let queue = topology.task_queue(KIND);
    let mut ceilings = Vec::new();
    for load in &LOADS {
        ceilings.push(measure(publisher, consuming, &queue, load).await?);
    }
    Ok(ceilings)
}

/// The three phases for one message size, each checked by the queue's depth after it.
async fn measure(
    publisher: &Publisher,
    consuming: &Connection,
    queue: &str,
    load: &'static Load,
) -> anyhow::Result<Ceiling> {
    let body = vec![b'x'; load.body];
    let count = load.count;
    let per_sec = |elapsed: Duration| count as f64 / elapsed.as_secs_f64();

    let published_alone = phase("publishing", publish(publisher, queue, &body, count)).await?;
    expect_depth(publisher, queue, count).await?;
    let consumed_alone = phase("consuming", consume(consuming, queue, count)).await?;
    expect_depth(publisher, queue, 0).await?;
    let started = Instant::now();
    let (published, consumed) = phase("publishing and consuming at once", async {
        Ok(tokio::join!(
            publish(publisher, queue, &body, count),
            consume(consuming, queue, count)
        ))
    })
    .await?;
    published?;
    consumed?;
    let both = started.elapsed();
    expect_depth(publisher, queue, 0).await?;
    Ok(Ceiling {
        load,
        publish: per_sec(published_alone),
        consume: per_sec(consumed_alone),
        both: per_sec(both),
    })
}

/// Runs one phase within [`PHASE_LIMIT`].
async fn phase<T>(
    name: &str,
    step: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(PHASE_LIMIT, step)
        .await
        .with_context(|| format!("{name} did not finish within {PHASE_LIMIT:?}"))?
}

/// Publishes `count` persistent messages of `body` with confirms; the time until the last is confirmed.
async fn publish(
    publisher: &Publisher,
    queue: &str,
    body: &[u8],
    count: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let messages = (0..count).map(|n| Outgoing {
        queue: queue.to_owned(),
        body: body.to_vec(),
        message_id: format!("ceiling/{n}"),
        kind: KIND.to_owned(),
        ..Default::default()
    });
    publisher
        .publish_all(messages, CONFIRM_WINDOW, || {})
        .await?;
    Ok(started.elapsed())
}

/// Consumes `count` deliveries, acking each from a task of its own as a worker does; the time until the
/// last ack is written.
async fn consume(connection: &Connection, queue: &str, count: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let (channel, mut consumer) = broker::consume(connection, queue, PREFETCH, "ceiling").await?;
    let settler = Settler::new(channel.clone());
    let acks = TaskTracker::new();
    for received in 0..count {
        let delivery = match consumer.next().await {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => bail!("consuming failed after {received} deliveries: {error}"),
            None => bail!("the consumer ended after {received} of {count} deliveries"),
        };
        let delivery = settler.receive(delivery);
        acks.spawn(async move { delivery.ack().await });
    }
    acks.close();
    acks.wait().await;
    let elapsed = started.elapsed();
    let cancel = channel.basic_cancel(consumer.tag().as_str().into(), BasicCancelOptions::default());
    broker::within("cancelling the consumer", async {
        cancel
            .await
            .map_err(broker::BrokerError::channel("cancelling the consumer"))
    })
    .await?;
    let _ = channel.close(200, "done".into()).await;
    Ok(elapsed)
}

/// Fails unless `queue` holds exactly `expected` ready messages: every publish arrived, every
/// delivery was taken.
async fn expect_depth(publisher: &Publisher, queue: &str, expected: usize) -> anyhow::Result<()> {
    let declared = broker::within("reading the queue's depth", async {
        publisher
            .channel()
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(broker::BrokerError::channel("reading the queue's depth"))
    })
    .await?;
    let depth = declared.message_count() as usize;
    if depth != expected {
        bail!("{queue} holds {depth} messages, expected {expected}");
    }
    Ok(())
}
