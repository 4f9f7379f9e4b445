//! The producer's side of the control plane: send a command to every live worker through the broadcast
//! exchange and collect the answers against the registry.
//!
//! The live workers are read from the registry first, so the command knows whom it waits for. It waits
//! until each of them has answered, or has disappeared from the registry (missing: its heartbeats
//! stopped), or, still heartbeating, has not answered within the timeout (alive but not answering). No
//! fixed wait decides who is gone: the registry does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::Connection;
use serde_json::{json, Value};
use taskq_common::broker::{self, BrokerError, Outgoing, Publisher};
use taskq_common::control::{
    Command, ControlMessage, ControlReply, JobCancelledNotice, CONTROL_TYPE, JOB_CANCELLED_TYPE,
};
use taskq_common::envelope::{self, WIRE_VERSION};
use taskq_common::job::{now_ms, JobId};
use taskq_common::registry::{Membership, Registry, WorkerInfo, WorkerState};
use taskq_common::store::JobStore;
use taskq_common::topology::Topology;
use tokio_util::sync::CancellationToken;

use crate::ProducerError;

/// How often the registry is read again while answers are awaited.
const RECHECK: Duration = Duration::from_millis(500);

/// A connection for control commands.
pub struct ControlPlane {
    connection: Connection,
    publisher: Publisher,
    registry: Registry,
    topology: Topology,
}

/// What came of a command.
#[derive(Debug, Default)]
pub struct Report {
    command: &'static str,
    command_id: String,
    asked: Vec<String>,
    answered: Vec<Value>,
    missing: Vec<Value>,
    not_answering: Vec<Value>,
    /// Workers that stop or stopped gracefully (not asked, or no longer answering).
    stopping: Vec<String>,
}

impl Report {
    /// Workers the command was sent to.
    pub fn asked(&self) -> usize {
        self.asked.len()
    }

    /// True if every worker asked answered and none is missing.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.not_answering.is_empty()
    }

    /// The error to exit with, unless every worker asked answered.
    pub fn incomplete(&self) -> Option<ProducerError> {
        (!self.is_complete()).then(|| ProducerError::Unanswered {
            command: self.command,
            missing: self.missing.len(),
            not_answering: self.not_answering.len(),
        })
    }

    /// The report as the JSON printed on stdout.
    pub fn to_json(&self) -> Value {
        json!({
            "command": self.command,
            "command_id": self.command_id,
            "asked": self.asked,
            "answered": self.answered,
            "missing": self.missing,
            "not_answering": self.not_answering,
            "stopping": self.stopping,
        })
    }

    fn missing(&mut self, worker_id: &str, last_heartbeat_ms: Option<u64>, when: &str) {
        let reason = match last_heartbeat_ms {
            Some(at) => format!("heartbeat stopped {} s ago{when}", seconds_since(at)),
            None => format!("heartbeat stopped{when}"),
        };
        progress(format_args!("  {worker_id}: missing ({reason})"));
        self.missing
            .push(json!({"worker_id": worker_id, "reason": reason}));
    }
}

fn seconds_since(at_ms: u64) -> u64 {
    (now_ms().saturating_sub(at_ms) + 500) / 1000
}

fn progress(line: std::fmt::Arguments<'_>) {
    eprintln!("{line}");
}

impl ControlPlane {
    /// Connects to the broker and declares the topology (the broadcast exchange with it).
    pub async fn connect(amqp_url: &str, store: &JobStore) -> Result<Self, BrokerError> {
        let connection = broker::connect(amqp_url, "producer control").await?;
        let publisher = Publisher::new(broker::open_channel(&connection).await?).await?;
        let topology = store.topology().clone();
        topology.declare(&connection).await?;
        Ok(Self {
            connection,
            publisher,
            registry: Registry::new(store),
            topology,
        })
    }

    /// Sends `command` to every live worker it addresses and collects the answers (see the module docs).
    pub async fn send(
        &self,
        command: Command,
        timeout: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Report, ProducerError> {
        let membership = self.registry.membership().await?;
        let mut report = Report {
            command: command.name(),
            command_id: uuid::Uuid::new_v4().to_string(),
            stopping: membership
                .live
                .iter()
                .filter(|info| info.state == WorkerState::Stopping)
                .map(|info| info.worker_id.clone())
                .collect(),
            ..Report::default()
        };
        if command == Command::Ping {
            // A ping is a health check: workers that vanished lately without a graceful stop count too.
            for crashed in &membership.crashed {
                let last = Some(crashed.last_heartbeat_ms);
                report.missing(&crashed.worker_id, last, ", before this ping");
            }
        }
        let mut pending: BTreeMap<String, WorkerInfo> = membership
            .running()
            .filter(|info| command.addresses(&info.worker_id))
            .map(|info| (info.worker_id.clone(), info.clone()))
            .collect();
        report.asked = pending.keys().cloned().collect();
        if pending.is_empty() {
            return Ok(report);
        }

        let channel = broker::open_channel(&self.connection).await?;
        let reply_queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(BrokerError::channel("declaring the reply queue"))?;
        let mut replies = channel
            .basic_consume(
                reply_queue.name().clone(),
                "producer-control".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(BrokerError::channel("consuming answers"))?;

        let started = Instant::now();
        let message = ControlMessage {
            version: WIRE_VERSION,
            command_id: report.command_id.clone(),
            command: command.clone(),
            reply_to: reply_queue.name().to_string(),
            expires_at_ms: now_ms() + timeout.as_millis() as u64,
        };
        let exchange = self.topology.broadcast_exchange();
        let outgoing = Outgoing {
            // A fanout exchange ignores the routing key; the exchange's name makes errors say where.
            queue: exchange.clone(),
            exchange,
            body: envelope::encode(&message),
            message_id: report.command_id.clone(),
            kind: CONTROL_TYPE.to_owned(),
            ..Outgoing::default()
        };
        self.publisher.publish(&outgoing).await?;
        progress(format_args!(
            "{}: asked {} worker(s): {}",
            report.command,
            pending.len(),
            report.asked.join(", ")
        ));

        let deadline = tokio::time::Instant::now() + timeout;
        let mut recheck = tokio::time::interval(RECHECK);
        let mut latest = membership;
        let mut seen_gone = BTreeSet::new();
        while !pending.is_empty() {
            tokio::select! {
                delivery = replies.next() => {
                    let delivery = match delivery {
                        Some(Ok(delivery)) => delivery,
                        Some(Err(source)) => return Err(BrokerError::channel("receiving answers")(source).into()),
                        None => return Err(BrokerError::ConsumerEnded { queue: reply_queue.name().to_string() }.into()),
                    };
                    let Ok(reply) = envelope::decode::<ControlReply>(&delivery.data) else {
                        continue;
                    };
                    let asked = pending.get(&reply.worker_id).is_some_and(|info| info.instance == reply.instance);
                    if reply.command_id == report.command_id && asked {
                        pending.remove(&reply.worker_id);
                        let in_ms = started.elapsed().as_millis() as u64;
                        progress(format_args!("  {}: answered in {in_ms} ms", reply.worker_id));
                        let mut answer = json!({"worker_id": reply.worker_id, "in_ms": in_ms});
                        if let (Some(fields), Ok(Value::Object(outcome))) = (answer.as_object_mut(), serde_json::to_value(&reply.outcome)) {
                            fields.extend(outcome);
                        }
                        report.answered.push(answer);
                    }
                }
                _ = recheck.tick() => match self.registry.membership().await {
                    Ok(now) => {
                        latest = now;
                        gone(&mut pending, &latest, &mut report, &mut seen_gone);
                    }
                    Err(error) => tracing::warn!("{error}; checking the registry again shortly"),
                },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.cancelled() => return Err(ProducerError::ControlInterrupted { command: report.command }),
            }
        }
        // Out of time: a worker that the last check found gone is gone, answer or not.
        gone(&mut pending, &latest, &mut report, &mut seen_gone);
        for worker_id in pending.into_keys() {
            let last = latest
                .last_heartbeat_ms(&worker_id)
                .map(|at| format!("last heartbeat {} s ago", seconds_since(at)))
                .unwrap_or_else(|| "heartbeating".into());
            let reason = format!(
                "alive ({last}) but no answer within {} s",
                timeout.as_secs()
            );
            progress(format_args!("  {worker_id}: {reason}"));
            report
                .not_answering
                .push(json!({"worker_id": worker_id, "reason": reason}));
        }
        let _ = channel.close(200, "done".into()).await;
        Ok(report)
    }

    /// Tells the consumer that `job` was cancelled, so it writes what the job has.
    pub async fn notify_consumer(&self, job: JobId) -> Result<(), BrokerError> {
        let notice = JobCancelledNotice {
            version: WIRE_VERSION,
            job_id: job,
        };
        self.publisher
            .publish(&Outgoing {
                queue: self.topology.results_queue(),
                body: envelope::encode(&notice),
                message_id: format!("{job}/cancelled"),
                kind: JOB_CANCELLED_TYPE.to_owned(),
                ..Outgoing::default()
            })
            .await
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// Moves pending workers that will not answer out of `pending`: to `stopping` if they stop (or stopped)
/// gracefully, to `missing` if their heartbeats stopped (entry expired, or the worker restarted as another
/// run). A worker counts as gone only when two checks in a row find it so (`seen_gone` remembers the
/// first): a worker answers a `shutdown` and unregisters a few milliseconds later, and its answer, which
/// travels through the broker, may reach us after the registry already shows it gone.
fn gone(
    pending: &mut BTreeMap<String, WorkerInfo>,
    now: &Membership,
    report: &mut Report,
    seen_gone: &mut BTreeSet<String>,
) {
    let asked: Vec<WorkerInfo> = pending.values().cloned().collect();
    for info in asked {
        let id = &info.worker_id;
        let entry = now.live.iter().find(|live| &live.worker_id == id);
        let same_run = entry.filter(|live| live.instance == info.instance);
        let crashed = now.crashed.iter().any(|crashed| &crashed.worker_id == id);
        match same_run.map(|live| live.state) {
            Some(WorkerState::Running) => {
                seen_gone.remove(id);
                continue;
            }
            _ if seen_gone.insert(id.clone()) => continue,
            Some(WorkerState::Stopping) => {
                progress(format_args!(
                    "  {id}: stopping gracefully; no answer expected"
                ));
                report.stopping.push(id.clone());
            }
            None if entry.is_none() && !crashed => {
                progress(format_args!(
                    "  {id}: stopped gracefully; no answer expected"
                ));
                report.stopping.push(id.clone());
            }
            None if entry.is_some() => {
                let last = Some(info.heartbeat_at_ms);
                report.missing(id, last, " (it restarted since, as another run)");
            }
            None => report.missing(id, now.last_heartbeat_ms(id), ""),
        }
        pending.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskq_common::registry::Load;

    fn running(worker_id: &str) -> WorkerInfo {
        WorkerInfo {
            worker_id: worker_id.into(),
            instance: format!("{worker_id}-run-1"),
            host: "host".into(),
            pid: 1,
            version: "test".into(),
            cpu_threads: 1,
            io_concurrency: 1,
            queues: Vec::new(),
            kinds: Vec::new(),
            started_at_ms: 0,
            heartbeat_at_ms: 0,
            state: WorkerState::Running,
            load: Load::default(),
        }
    }

    #[test]
    fn a_worker_counts_as_gone_only_when_two_checks_in_a_row_find_it_gone() {
        let mut pending = BTreeMap::from([("w1".to_owned(), running("w1"))]);
        let mut report = Report::default();
        let mut seen_gone = BTreeSet::new();
        let unregistered = Membership::default();
        let alive = Membership {
            live: vec![running("w1")],
            ..Membership::default()
        };

        gone(&mut pending, &unregistered, &mut report, &mut seen_gone);
        assert!(pending.contains_key("w1"), "its answer may be on the way");
        gone(&mut pending, &alive, &mut report, &mut seen_gone);
        gone(&mut pending, &unregistered, &mut report, &mut seen_gone);
        assert!(
            pending.contains_key("w1"),
            "seen running in between: the count starts again"
        );
        gone(&mut pending, &unregistered, &mut report, &mut seen_gone);
        assert!(pending.is_empty());
        assert_eq!(report.stopping, ["w1"]);
        assert!(report.missing.is_empty());
    }
}
