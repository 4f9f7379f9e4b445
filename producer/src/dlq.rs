//! `producer dlq`: look at, run again, or drop what is in the dead-letter queue.
//!
//! Dead letters are read with `basic.get` and acknowledged only when a command is done with them; the
//! ones it leaves go back to the queue when its channel closes (a classic queue keeps their order and has
//! no delivery limit, see `topology`). Replaying resubmits dead chunks as a new job per original job,
//! keeping each chunk's item positions, so the new job's output lines carry the original indices: a job
//! that completed with failed items stays as it was, and the replay's output has what the retry gives.

use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueuePurgeOptions};
use lapin::{Channel, Connection};
use serde_json::json;
use taskq_common::broker::{self, header, Outgoing};
use taskq_common::envelope::{decode_payload, decode_task, encode, TaskMessage, WIRE_VERSION};
use taskq_common::job::{now_ms, JobId, JobSpec};
use taskq_common::payload::TaskPayload;
use taskq_common::task::validate_kind_name;
use taskq_common::topology::{
    Topology, ATTEMPTS_HEADER, REASON_HEADER, SOURCE_QUEUE_HEADER, WORKER_HEADER,
};

use crate::prepare::Prepared;
use crate::ProducerError;

/// A dead letter held by this command until it acknowledges it or closes its channel.
struct Letter {
    message: BasicGetMessage,
    /// The chunk, when the body is a task this build can run.
    task: Option<TaskMessage>,
}

impl Letter {
    fn job(&self) -> Option<JobId> {
        self.task.as_ref().map(|task| task.job_id)
    }

    fn describe(&self) -> serde_json::Value {
        let properties = &self.message.delivery.properties;
        let text = |name| header(properties, name);
        json!({
            "message_id": properties.message_id().as_ref().map(|id| id.to_string()),
            "kind": properties.kind().as_ref().map(|kind| kind.to_string()),
            "job_id": self.task.as_ref().map(|task| task.job_id.to_string()),
            "chunk": self.task.as_ref().map(|task| task.task_id),
            "reason": text(REASON_HEADER),
            "attempts": text(ATTEMPTS_HEADER).and_then(|a| a.parse::<u32>().ok()),
            "refused_by": text(WORKER_HEADER),
            "source_queue": text(SOURCE_QUEUE_HEADER),
            "replayable": self.task.is_some(),
        })
    }

    async fn ack(&self) -> Result<(), ProducerError> {
        self.message
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .map_err(broker::BrokerError::channel("acknowledging a dead letter"))?;
        Ok(())
    }
}

/// The dead-letter queue of one deployment, open for reading.
pub struct DeadLetters {
    connection: Connection,
    channel: Channel,
    queue: String,
}

impl DeadLetters {
    /// Connects and declares the topology (so a fresh deployment has an empty queue, not an error).
    pub async fn open(amqp_url: &str, topology: &Topology) -> Result<Self, ProducerError> {
        let connection = broker::connect(amqp_url, "producer dlq").await?;
        let channel = broker::open_channel(&connection).await?;
        topology.declare(&connection).await?;
        Ok(Self {
            connection,
            channel,
            queue: topology.dead_queue(),
        })
    }

    /// Takes up to `limit` dead letters (unacknowledged), oldest first, keeping those `wanted` selects.
    async fn take(
        &self,
        limit: usize,
        wanted: impl Fn(&Letter) -> bool,
    ) -> Result<Vec<Letter>, ProducerError> {
        let mut letters = Vec::new();
        while letters.len() < limit {
            let got = self
                .channel
                .basic_get(self.queue.as_str().into(), BasicGetOptions::default())
                .await
                .map_err(broker::BrokerError::channel(
                    "reading the dead-letter queue",
                ))?;
            let Some(message) = got else { break };
            let task = decode_task(&message.delivery.data).ok();
            let letter = Letter { message, task };
            if wanted(&letter) {
                letters.push(letter);
            }
        }
        Ok(letters)
    }

    /// Closes the channel; dead letters not acknowledged go back to the queue.
    pub async fn close(self) {
        let _ = self.channel.close(200, "done".into()).await;
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// `dlq list`: describes up to `limit` dead letters (of `job`, if given) and leaves them in the queue.
pub async fn list(
    letters: DeadLetters,
    job: Option<JobId>,
    limit: usize,
) -> Result<serde_json::Value, ProducerError> {
    let taken = letters
        .take(limit, |l| job.is_none() || l.job() == job)
        .await?;
    let described: Vec<_> = taken.iter().map(Letter::describe).collect();
    letters.close().await;
    Ok(serde_json::Value::Array(described))
}

/// `dlq purge`: deletes every dead letter, or with `job` only that job's; returns how many.
pub async fn purge(letters: DeadLetters, job: Option<JobId>) -> Result<u64, ProducerError> {
    let purged = match job {
        None => u64::from(
            letters
                .channel
                .queue_purge(letters.queue.as_str().into(), QueuePurgeOptions::default())
                .await
                .map_err(broker::BrokerError::channel(
                    "purging the dead-letter queue",
                ))?,
        ),
        Some(job) => {
            let taken = letters.take(usize::MAX, |l| l.job() == Some(job)).await?;
            for letter in &taken {
                letter.ack().await?;
            }
            taken.len() as u64
        }
    };
    letters.close().await;
    Ok(purged)
}

/// Dead chunks of one original job, ready to run again as a new job.
pub struct Replay {
    /// The job the chunks came from.
    pub original: JobId,
    /// The new job.
    pub prepared: Prepared,
    /// The dead letters it replays, still in the queue until acknowledged.
    pub letters: TakenLetters,
}

/// Dead letters this command holds.
pub struct TakenLetters(Vec<Letter>);

impl TakenLetters {
    /// Removes them from the dead-letter queue: call once their replay is enqueued.
    pub async fn acknowledge(&self) -> Result<(), ProducerError> {
        for letter in &self.0 {
            letter.ack().await?;
        }
        Ok(())
    }
}

/// `dlq replay`: takes the replayable dead letters (of `job`, if given) and groups them into
/// one new job per original job. Letters that are not tasks this build can run stay in the queue. The
/// caller acknowledges each replay's letters once its job is enqueued, then [`DeadLetters::close`]s.
pub async fn replays(
    letters: &DeadLetters,
    job: Option<JobId>,
    topology: &Topology,
) -> Result<Vec<Replay>, ProducerError> {
    let taken = letters
        .take(usize::MAX, |l| {
            l.task.is_some() && (job.is_none() || l.job() == job)
        })
        .await?;
    // Grouped by original job, in the order their first dead letter arrived.
    let mut by_job: Vec<(JobId, Vec<Letter>)> = Vec::new();
    for letter in taken {
        let Some(original) = letter.job() else {
            continue;
        };
        match by_job.iter_mut().find(|(job, _)| *job == original) {
            Some((_, letters)) => letters.push(letter),
            None => by_job.push((original, vec![letter])),
        }
    }
    let mut replays = Vec::with_capacity(by_job.len());
    for (original, mut letters) in by_job {
        letters.sort_by_key(|l| l.task.as_ref().map(|task| task.task_id));
        let prepared = replay_job(&letters, topology).map_err(ProducerError::Input)?;
        replays.push(Replay {
            original,
            prepared,
            letters: TakenLetters(letters),
        });
    }
    Ok(replays)
}

fn replay_job(letters: &[Letter], topology: &Topology) -> Result<Prepared, String> {
    let id = JobId::new();
    let tasks: Vec<&TaskMessage> = letters.iter().filter_map(|l| l.task.as_ref()).collect();
    let kind = tasks
        .first()
        .map(|task| task.kind.clone())
        .unwrap_or_default();
    validate_kind_name(&kind)?;
    let mut total_items = 0u64;
    let mut messages = Vec::with_capacity(tasks.len());
    for (task_id, task) in tasks.iter().enumerate() {
        let count = decode_payload::<TaskPayload>(&task.payload)
            .and_then(|payload| payload.items().map(|items| items.len()))
            .map_err(|error| {
                format!(
                    "dead chunk {}/{} cannot be replayed: {error}; `producer dlq purge --job {}` drops it",
                    task.job_id, task.task_id, task.job_id
                )
            })?;
        total_items += count as u64;
        let task_id = task_id as u32;
        let replayed = TaskMessage {
            version: WIRE_VERSION,
            job_id: id,
            task_id,
            attempt: 1,
            // A dead chunk of a later stage runs again as a job of its own kind alone.
            stage: 0,
            level: 0,
            ..(*task).clone()
        };
        messages.push(Outgoing {
            queue: topology.task_queue(&kind),
            body: encode(&replayed),
            message_id: format!("{id}/{task_id}"),
            kind: kind.clone(),
            ..Outgoing::default()
        });
    }
    let spec = JobSpec {
        id,
        kind,
        total_chunks: messages.len() as u32,
        total_items,
        submitted_at_ms: now_ms(),
    };
    Ok(Prepared {
        spec,
        messages,
        plan: None,
    })
}
