//! The steps of one measurement: a timed phase (wall time, and the local broker's CPU time when it runs
//! on this machine), publishing with confirms, consuming with acks, and checking the queue's depth.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::StreamExt;
use lapin::options::{BasicCancelOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::Connection;
use taskq_common::broker::{self, BrokerError, Outgoing, Publisher};
use taskq_common::settle::Settler;
use tokio_util::task::TaskTracker;

use super::{CONFIRM_WINDOW, KIND, PREFETCH};

/// How long one phase may take before the benchmark gives up on it.
const PHASE_LIMIT: Duration = Duration::from_secs(180);

/// One phase's figures for `count` messages.
pub struct Phase {
    /// Messages a second.
    pub per_sec: f64,
    /// The broker's CPU time per message, in microseconds; `None` when the broker is not local.
    pub broker_us: Option<f64>,
}

/// Runs one phase that moves `count` messages, within a time limit, and measures it.
pub async fn timed(
    name: &str,
    count: usize,
    step: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<Phase> {
    let cpu_before = broker_cpu();
    let started = Instant::now();
    tokio::time::timeout(PHASE_LIMIT, step)
        .await
        .with_context(|| format!("{name} did not finish within {PHASE_LIMIT:?}"))??;
    let elapsed = started.elapsed();
    let broker_us = cpu_before
        .zip(broker_cpu())
        .map(|(before, after)| (after - before).as_secs_f64() * 1e6 / count as f64);
    Ok(Phase {
        per_sec: count as f64 / elapsed.as_secs_f64(),
        broker_us,
    })
}

/// Publishes `count` persistent messages of `body` with confirms, until the last is confirmed.
pub async fn publish(
    publisher: &Publisher,
    queue: &str,
    body: &[u8],
    count: usize,
) -> anyhow::Result<()> {
    let messages = (0..count).map(|n| Outgoing {
        queue: queue.to_owned(),
        body: body.to_vec(),
        message_id: format!("ceiling/{n}"),
        kind: KIND.to_owned(),
        ..Default::default()
    });
    Ok(publisher
        .publish_all(messages, CONFIRM_WINDOW, || {})
        .await?)
}

/// Consumes `count` deliveries, each acked from a task of its own as a worker does, until the last ack
/// is written; then cancels the consumer.
pub async fn consume(connection: &Connection, queue: &str, count: usize) -> anyhow::Result<()> {
    let (channel, mut consumer) = broker::consume(connection, queue, PREFETCH, "ceiling").await?;
    let settler = Settler::new(channel.clone());
    let acks = TaskTracker::new();
    for received in 0..count {
        let delivery = match consumer.next().await {
            Some(Ok(delivery)) => settler.receive(delivery),
            Some(Err(error)) => bail!("consuming failed after {received} deliveries: {error}"),
            None => bail!("the consumer ended after {received} of {count} deliveries"),
        };
        acks.spawn(async move { delivery.ack().await });
    }
    acks.close();
    acks.wait().await;
    let cancel = channel.basic_cancel(
        consumer.tag().as_str().into(),
        BasicCancelOptions::default(),
    );
    broker::within("cancelling the consumer", async {
        cancel
            .await
            .map_err(BrokerError::channel("cancelling the consumer"))
    })
    .await?;
    let _ = channel.close(200, "done".into()).await;
    Ok(())
}

/// Fails unless `queue` holds exactly `expected` ready messages: every publish arrived, every
/// delivery was taken.
pub async fn expect_depth(
    publisher: &Publisher,
    queue: &str,
    expected: usize,
) -> anyhow::Result<()> {
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
            .map_err(BrokerError::channel("reading the queue's depth"))
    })
    .await?;
    let depth = declared.message_count() as usize;
    if depth != expected {
        bail!("{queue} holds {depth} messages, expected {expected}");
    }
    Ok(())
}

/// The CPU time the local RabbitMQ (its oldest `beam.smp` process) has used so far; `None` when none
/// runs on this machine, or the figures cannot be read.
fn broker_cpu() -> Option<Duration> {
    let pgrep = Command::new("pgrep")
        .args(["-o", "-f", "beam.smp"])
        .output()
        .ok()?;
    let pid = String::from_utf8(pgrep.stdout).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).ok()?;
    // After the command name in parentheses, fields start at the third: utime is the 14th, stime the 15th.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let ticks: u64 = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
}

/// Clock ticks a second in /proc's CPU times (`getconf CLK_TCK`, 100 on Linux unless it says otherwise).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}
