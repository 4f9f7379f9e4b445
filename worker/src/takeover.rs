//! The takeover check, every heartbeat interval while a connection is up: for each broadcast job this
//! worker takes part in, forget it once it ended; otherwise compare its members with the registry, and when
//! members stopped, run the chunks this worker now owns that have no recorded result yet.
//!
//! A taken-over chunk is published again to this worker's own broadcast queue, so it runs through the same
//! path as every chunk (status check, pool or I/O lane, confirmed result, ack) and survives a reconnect.
//! A chunk whose stopped owner published its result just before stopping may run twice; the consumer
//! records each chunk once, so that costs time, never correctness.

use std::time::Instant;

use taskq_common::broker::Outgoing;
use taskq_common::job::JobId;
use taskq_common::registry::{Membership, HEARTBEAT_INTERVAL};
use taskq_common::store::StoreError;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::broadcast::BroadcastLane;

/// Header marking a chunk published again by a member that took it over.
const TAKEOVER_HEADER: &str = "x-taskq-taken-over-from";

/// Unconfirmed hand-overs in flight at most.
const CONFIRM_WINDOW: usize = 256;

/// Checks every heartbeat interval until `stop` fires.
pub async fn run(lane: &BroadcastLane, stop: &CancellationToken) {
    let mut ticks = tokio::time::interval(HEARTBEAT_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => check(lane).await,
        }
    }
}

async fn check(lane: &BroadcastLane) {
    let jobs = lane.broadcast.shares().jobs();
    if jobs.is_empty() {
        return;
    }
    let membership = match lane.broadcast.registration.registry().membership().await {
        Ok(membership) => membership,
        Err(error) => return tracing::warn!("{error}; broadcast members not checked this time"),
    };
    for job in jobs {
        let span = tracing::info_span!("broadcast", %job);
        if let Err(error) = check_job(lane, job, &membership).instrument(span).await {
            tracing::warn!(%job, "{error}; broadcast members checked again shortly");
        }
    }
}

async fn check_job(
    lane: &BroadcastLane,
    job: JobId,
    membership: &Membership,
) -> Result<(), StoreError> {
    let broadcast = &lane.broadcast;
    let state = broadcast.store.job_state(job).await?;
    let status = state.map(|state| state.status);
    if !status.is_some_and(|status| status.is_active()) {
        if let Some(report) = broadcast.shares().forget(job) {
            let status = status.map_or("unknown", |status| status.as_str());
            tracing::info!(
                status,
                members = report.members,
                total_chunks = report.total_chunks,
                owned = report.owned,
                taken_over = report.taken_over,
                stopped = ?report.stopped,
                "left broadcast job: owned {} of {} chunks",
                report.owned,
                report.total_chunks
            );
        }
        return Ok(());
    }
    let (stopped, orphans) = {
        let mut shares = broadcast.shares();
        let stopped = shares.check_members(job, Instant::now(), |m| membership.is_alive(m));
        (stopped, shares.orphans(job))
    };
    for member in &stopped {
        let last = membership
            .last_heartbeat_ms(member)
            .map(|at| format!("{} ms ago", taskq_common::job::now_ms().saturating_sub(at)))
            .unwrap_or_else(|| "unknown".into());
        tracing::warn!(%member, last_heartbeat = %last, "broadcast member stopped heartbeating: taking over its unfinished chunks");
    }
    if orphans.is_empty() {
        return Ok(());
    }
    let recorded = broadcast.store.recorded(job, &orphans).await?;
    let (mut done, mut todo) = (Vec::new(), Vec::new());
    for (chunk, recorded) in orphans.into_iter().zip(recorded) {
        if recorded {
            done.push(chunk);
        } else {
            todo.push(chunk);
        }
    }
    let (chunks, kind, from) = {
        let mut shares = broadcast.shares();
        let chunks = shares.take_over(job, &done, &todo);
        (chunks, shares.kind(job), shares.stopped(job).join(","))
    };
    if chunks.is_empty() {
        return Ok(());
    }
    let messages: Vec<Outgoing> = chunks
        .iter()
        .map(|(chunk, body)| Outgoing {
            queue: lane.queue.clone(),
            body: body.clone(),
            message_id: format!("{job}/{chunk}"),
            kind: kind.clone().unwrap_or_default(),
            headers: vec![(TAKEOVER_HEADER.to_owned(), from.clone())],
            ..Outgoing::default()
        })
        .collect();
    let count = chunks.len();
    let publisher = &lane.chunks.publisher;
    match publisher.publish_all(messages, CONFIRM_WINDOW, || {}).await {
        Ok(()) => tracing::info!(
            chunks = count,
            already_done = done.len(),
            from = %from,
            "took over chunks of stopped members"
        ),
        Err(error) => {
            tracing::warn!("{error}; taking over again at the next check");
            broadcast.shares().hold_again(job, chunks);
        }
    }
    Ok(())
}
