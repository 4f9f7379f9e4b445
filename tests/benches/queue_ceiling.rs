//! The raw ceiling of one quorum queue (issue #13 item 6, issue #15 item 2): how many messages a second
//! one queue takes and gives when nothing else happens per message. One Raft leader serves each quorum
//! queue, so this bounds what any number of workers can get through one task queue (docs/scaling.md).
//!
//! A private queue declared exactly as a kind's task queue is; persistent messages published with
//! confirms, at most [`CONFIRM_WINDOW`] unconfirmed as the producer does; consumed with manual acks at a
//! prefetch of [`PREFETCH`], each delivery on a task of its own and acked through the workers' own
//! `Settler` (acks batched with `multiple`). Three phases per message size: publishing into the empty
//! queue, consuming what it holds, and both at once. The end-to-end one-item-chunk figure is reported as a
//! share of the both-at-once rate at 100 B when both groups run ([`share_row`]).

use anyhow::Context as _;
use lapin::options::QueueDeleteOptions;
use lapin::Connection;
use taskq_common::broker::{self, Publisher};
use taskq_common::envelope::{encode, TaskMessage};
use taskq_common::job::JobId;
use taskq_common::payload::TaskPayload;
use taskq_common::topology::Topology;
use taskq_tests::amqp_url;

use crate::Row;
use phases::{consume, expect_depth, publish, timed, Phase};

mod phases;

/// Unconfirmed publishes at once: the producer's window when it publishes a job's chunks.
const CONFIRM_WINDOW: usize = 1024;
/// Unacknowledged deliveries at once: the workers' adaptive prefetch at its cap on this 2-core machine
/// (32 per pool thread), where one-item chunks put it.
const PREFETCH: u16 = 64;
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

/// One message size through one queue: publishing alone, consuming alone, both at once.
struct Ceiling {
    load: &'static Load,
    publish: Phase,
    consume: Phase,
    both: Phase,
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
    ceilings[0].both.per_sec
}

/// The row comparing end-to-end one-item chunks (items/s) with the queue's raw ceiling (messages/s).
pub fn share_row(one_item_chunks: f64, ceiling: f64) -> Row {
    let payload = TaskPayload::of(17, &[17u64]).expect("one number encodes");
    let chunk_bytes = encode(&TaskMessage::new(
        JobId::new(),
        (0, 0, 17),
        "square",
        &payload,
    ))
    .len();
    Row {
        scenario: format!("`square --chunk-size 1` end to end (a one-item chunk's task message is {chunk_bytes} B), as a share of one quorum queue's raw ceiling (100 B, publish and consume at once)"),
        figure: format!(
            "{one_item_chunks:.0} items/s of {ceiling:.0} messages/s = {:.0}%",
            100.0 * one_item_chunks / ceiling
        ),
        target: "-".into(),
    }
}

fn row(ceiling: &Ceiling, load_average: &str) -> Row {
    let Load { body, count } = *ceiling.load;
    let shown = |phase: &Phase| {
        let broker = phase
            .broker_us
            .map(|us| format!(", broker CPU {us:.0} us/msg"))
            .unwrap_or_default();
        format!(
            "{:.0} msg/s ({:.1} MB/s{broker})",
            phase.per_sec,
            phase.per_sec * body as f64 / 1e6
        )
    };
    Row {
        scenario: format!(
            "one quorum queue, {count} x {body} B persistent: confirms (window {CONFIRM_WINDOW}), manual acks (prefetch {PREFETCH})"
        ),
        figure: format!(
            "publish only {}; consume only {}; both at once {} (load average {load_average} at start)",
            shown(&ceiling.publish),
            shown(&ceiling.consume),
            shown(&ceiling.both)
        ),
        target: "- (the raw ceiling)".into(),
    }
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
    topology.declare_kind(consuming, KIND).await?;
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
    let publish_alone = timed("publishing", count, publish(publisher, queue, &body, count)).await?;
    expect_depth(publisher, queue, count).await?;
    let consume_alone = timed("consuming", count, consume(consuming, queue, count)).await?;
    expect_depth(publisher, queue, 0).await?;
    let both = timed("publishing and consuming at once", count, async {
        let (published, consumed) = tokio::join!(
            publish(publisher, queue, &body, count),
            consume(consuming, queue, count)
        );
        published.and(consumed)
    })
    .await?;
    expect_depth(publisher, queue, 0).await?;
    Ok(Ceiling {
        load,
        publish: publish_alone,
        consume: consume_alone,
        both,
    })
}
