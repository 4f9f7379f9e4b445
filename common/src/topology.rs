//! Every queue and Redis key name, and the declaration of the queues. Names are built nowhere else.
//!
//! With prefix `taskq` the management UI shows:
//! - `taskq.tasks.<kind>`: one queue per task kind (`taskq.tasks.square`, `taskq.tasks.download`, a
//!   user's `taskq.tasks.wordcount`): chunks waiting for a worker that serves the kind. A worker consumes
//!   the queues of the kinds it registered and no other, so it never receives a kind it cannot run, and
//!   chunks of a kind no worker serves yet wait here, visible in the management UI;
//! - `taskq.results`: chunk results waiting for the consumer;
//! - `taskq.dead`: messages refused for good (undecodable, unknown kind, redelivered too often, failed
//!   after every retry), each with the reason in its `x-taskq-reason` header;
//! - `taskq.retry.1s` .. `taskq.retry.256s`: chunks waiting out a retry delay (their exchanges have the
//!   same names). Each message expires after its own jittered delay and the broker dead-letters it back to
//!   the task queue it came from, so a waiting retry costs no worker memory and survives worker restarts;
//! - `taskq.broadcast` (an exchange, fanout): broadcast jobs and control commands, to every worker;
//! - `taskq.broadcast.<worker-id>`: one worker's copy of them (classic, expires unused after 5 minutes).
//!
//! Task, result and retry queues are quorum queues: durable, replicated when the broker is a cluster, and
//! with a delivery limit so a message that keeps killing its consumer is dead-lettered instead of looping
//! forever. The dead-letter queue is a classic durable queue: `producer dlq list` returns what it reads,
//! and a quorum queue would count each look as a delivery (RabbitMQ 4 drops messages past 20).

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::broker::BrokerError;
use crate::job::JobId;

/// How often a task may be delivered before the broker dead-letters it (it kept killing workers).
pub const DELIVERY_LIMIT: i64 = 6;

/// The header that carries why a message was dead-lettered (for a failed task, its last error).
pub const REASON_HEADER: &str = "x-taskq-reason";

/// The header that carries how many times a dead-lettered task ran.
pub const ATTEMPTS_HEADER: &str = "x-taskq-attempts";

/// The header that names the worker that dead-lettered a message.
pub const WORKER_HEADER: &str = "x-taskq-refused-by";

/// The header that names the queue a dead-lettered message came from.
pub const SOURCE_QUEUE_HEADER: &str = "x-taskq-source-queue";

/// The retry delays the broker can hold a chunk for, shortest first. Retry `r` waits in level
/// `min(r - 1, last)`, for a jittered time between the level's delay and twice it (see
/// [`Topology::retry_exchange`]).
pub const RETRY_DELAYS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(4),
    Duration::from_secs(16),
    Duration::from_secs(64),
    Duration::from_secs(256),
];

/// The names of one deployment's queues and keys, derived from its prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    /// The topology of the deployment that uses `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix of every name.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The queue a kind's chunks travel on (`kind` is a validated kind name).
    pub fn task_queue(&self, kind: &str) -> String {
        format!("{}.tasks.{kind}", self.prefix)
    }

    /// The queue chunk results travel on, to the consumer.
    pub fn results_queue(&self) -> String {
        format!("{}.results", self.prefix)
    }

    /// The dead-letter queue.
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// The fanout exchange a chunk is published to, with its task queue as routing key, to wait out a
    /// retry delay of `RETRY_DELAYS[level]`; its queue has the same name.
    pub fn retry_exchange(&self, level: usize) -> String {
        let delay = RETRY_DELAYS[level.min(RETRY_DELAYS.len() - 1)];
        format!("{}.retry.{}s", self.prefix, delay.as_secs())
    }

    /// Every queue but the kinds' own, in declaration order.
    pub fn queues(&self) -> Vec<String> {
        let mut queues = vec![self.dead_queue(), self.results_queue()];
        queues.extend(self.exchanges());
        queues
    }

    /// Every exchange other than the default one: the retry levels' (each has a queue of its name too).
    pub fn exchanges(&self) -> Vec<String> {
        (0..RETRY_DELAYS.len())
            .map(|level| self.retry_exchange(level))
            .collect()
    }

    /// The message publishing `task` to its kind's queue; its id names the chunk (`<job>/<chunk>`, or
    /// `<job>/<stage>:<level>.<chunk>` after the first stage), the same however often it is published.
    pub fn task_outgoing(&self, task: &crate::envelope::TaskMessage) -> crate::broker::Outgoing {
        let chunk = crate::stages::ChunkRef::of(task);
        crate::broker::Outgoing {
            queue: self.task_queue(&task.kind),
            body: crate::envelope::encode(task),
            message_id: format!("{}/{}", task.job_id, chunk.field()),
            kind: task.kind.clone(),
            ..Default::default()
        }
    }

    /// The Redis hash holding a job's record and progress counters.
    pub fn job_key(&self, job: JobId) -> String {
        format!("{}:job:{job}", self.prefix)
    }

    /// The Redis hash holding a job's chunk results until the consumer writes the output file.
    pub fn job_results_key(&self, job: JobId) -> String {
        format!("{}:job:{job}:results", self.prefix)
    }

    /// The Redis hash counting, per chunk, runs that started and have not finished.
    pub fn job_runs_key(&self, job: JobId) -> String {
        format!("{}:job:{job}:runs", self.prefix)
    }

    /// The Redis hash marking which chunks of a multi-stage job's earlier stages are done (their
    /// follow-ups published), by stage-qualified chunk: each counts once.
    pub fn job_done_key(&self, job: JobId) -> String {
        format!("{}:job:{job}:done", self.prefix)
    }

    /// The Redis hash of a reduce's partial results (and leaves) until the node above folds them.
    pub fn job_partials_key(&self, job: JobId) -> String {
        format!("{}:job:{job}:partials", self.prefix)
    }

    /// The Redis hash counting, per reduce node, its children recorded so far.
    pub fn job_groups_key(&self, job: JobId) -> String {
        format!("{}:job:{job}:groups", self.prefix)
    }

    /// The Redis string holding an image job's output PNG for the producer to fetch, for a while after
    /// the job ends (the consumer writes it; it may run on another machine).
    pub fn job_png_key(&self, job: JobId) -> String {
        format!("{}:job:{job}:png", self.prefix)
    }

    /// Every key a job uses only while it runs: deleted when it ends, whichever way.
    pub fn job_scratch_keys(&self, job: JobId) -> Vec<String> {
        vec![
            self.job_results_key(job),
            self.job_runs_key(job),
            self.job_done_key(job),
            self.job_partials_key(job),
            self.job_groups_key(job),
        ]
    }

    /// The Redis hash of every kind a worker ever served here, by name: its lane and declared options
    /// ([`crate::registry::KindInfo`]), so the producer knows a kind's chunk size and the consumer its
    /// aggregate without any of the kind's code.
    pub fn kinds_key(&self) -> String {
        format!("{}:kinds", self.prefix)
    }

    /// The Redis pub/sub channel on which a job's end (completed or failed) is announced, so a waiting
    /// producer learns of it at once instead of at its next poll.
    pub fn job_finished_channel(&self, job: JobId) -> String {
        format!("{}:job:{job}:finished", self.prefix)
    }

    /// The pattern of every job's [`Topology::job_finished_channel`], for one subscription to all.
    pub fn jobs_finished_pattern(&self) -> String {
        format!("{}:job:*:finished", self.prefix)
    }

    /// The job whose end a channel of [`Topology::jobs_finished_pattern`] announces.
    pub fn finished_job(&self, channel: &str) -> Option<JobId> {
        let rest = channel.strip_prefix(&format!("{}:job:", self.prefix))?;
        rest.strip_suffix(":finished")?.parse().ok()
    }

    /// The key written just before a `WAIT`, so the `WAIT` covers every earlier write (see
    /// [`crate::store::replication`]).
    pub fn replication_fence_key(&self) -> String {
        format!("{}:replication-fence", self.prefix)
    }

    /// A pattern matching every Redis key of this deployment.
    pub fn redis_pattern(&self) -> String {
        format!("{}:*", self.prefix)
    }

    /// Declares every shared queue and exchange (not the kinds' queues: see
    /// [`Topology::declare_kind`]). Idempotent: every binary calls it at start.
    pub async fn declare(&self, channel: &Channel) -> Result<(), BrokerError> {
        crate::broker::within("declaring the queues", self.declare_shared(channel)).await
    }

    async fn declare_shared(&self, channel: &Channel) -> Result<(), BrokerError> {
        let mut classic = FieldTable::default();
        classic.insert(ShortString::from("x-queue-type"), string("classic"));
        declare_queue(channel, &self.dead_queue(), classic).await?;
        declare_queue(channel, &self.results_queue(), self.dead_lettered()).await?;
        for level in 0..RETRY_DELAYS.len() {
            self.declare_retry_level(channel, &self.retry_exchange(level))
                .await?;
        }
        self.declare_broadcast_exchange(channel).await
    }

    /// Declares a kind's task queue (idempotent): the producer before publishing a job of it, and each
    /// worker for the kinds it serves.
    pub async fn declare_kind(&self, channel: &Channel, kind: &str) -> Result<(), BrokerError> {
        let queue = self.task_queue(kind);
        let declared = declare_queue(channel, &queue, self.dead_lettered());
        crate::broker::within("declaring a task queue", declared).await
    }

    /// Arguments of a quorum queue whose messages that keep killing their consumer, or that are
    /// rejected, go to the dead-letter queue.
    fn dead_lettered(&self) -> FieldTable {
        let mut args = quorum_args();
        args.insert(ShortString::from("x-dead-letter-exchange"), string(""));
        args.insert(
            ShortString::from("x-dead-letter-routing-key"),
            string(&self.dead_queue()),
        );
        args.insert(
            ShortString::from("x-delivery-limit"),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        args
    }

    /// A retry level: a fanout exchange and its queue, whose expired messages the broker dead-letters
    /// through the default exchange with their own routing key, which is their task queue. At-least-once
    /// dead-lettering (RabbitMQ 3.10 and later) keeps a message until its task queue confirmed it.
    async fn declare_retry_level(&self, channel: &Channel, name: &str) -> Result<(), BrokerError> {
        let mut args = quorum_args();
        args.insert(ShortString::from("x-dead-letter-exchange"), string(""));
        args.insert(
            ShortString::from("x-dead-letter-strategy"),
            string("at-least-once"),
        );
        args.insert(ShortString::from("x-overflow"), string("reject-publish"));
        declare_queue(channel, name, args).await?;
        declare_fanout(channel, name).await?;
        bind(channel, name, name).await
    }
}

/// How long a worker's broadcast queue survives unused (no consumer): a dead worker's queue and the
/// messages in it go away by themselves, while a worker that reconnects within this time loses nothing.
pub const BROADCAST_QUEUE_EXPIRES: Duration = Duration::from_secs(300);

/// The broadcast pattern and the control plane: an exchange that copies every message to every worker,
/// and the worker registry in Redis.
impl Topology {
    /// The fanout exchange that carries broadcast jobs and control commands to every worker.
    pub fn broadcast_exchange(&self) -> String {
        format!("{}.broadcast", self.prefix)
    }

    /// A worker's own queue, bound to the broadcast exchange.
    pub fn broadcast_queue(&self, worker_id: &str) -> String {
        format!("{}.broadcast.{worker_id}", self.prefix)
    }

    /// The Redis key of a worker's registry entry; it expires when the worker's heartbeats stop.
    pub fn worker_key(&self, worker_id: &str) -> String {
        format!("{}:worker:{worker_id}", self.prefix)
    }

    /// The Redis sorted set of registered worker ids, scored by their last heartbeat (ms since the epoch).
    pub fn workers_key(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    /// The Redis key holding the members a broadcast job was shared among at submit.
    pub fn job_members_key(&self, job: JobId) -> String {
        format!("{}:job:{job}:members", self.prefix)
    }

    /// The Redis set of broadcast jobs that may still be running, which the consumer watches for jobs
    /// whose members all stopped.
    pub fn broadcast_jobs_key(&self) -> String {
        format!("{}:broadcast-jobs", self.prefix)
    }

    async fn declare_broadcast_exchange(&self, channel: &Channel) -> Result<(), BrokerError> {
        declare_fanout(channel, &self.broadcast_exchange()).await
    }

    /// Declares a worker's broadcast queue and binds it to the broadcast exchange. Not exclusive, so a
    /// worker that reconnects finds the messages sent meanwhile; it expires once unused for
    /// [`BROADCAST_QUEUE_EXPIRES`].
    pub async fn declare_broadcast_queue(
        &self,
        channel: &Channel,
        worker_id: &str,
    ) -> Result<String, BrokerError> {
        let queue = self.broadcast_queue(worker_id);
        let mut args = FieldTable::default();
        args.insert(ShortString::from("x-queue-type"), string("classic"));
        args.insert(
            ShortString::from("x-expires"),
            AMQPValue::LongLongInt(BROADCAST_QUEUE_EXPIRES.as_millis() as i64),
        );
        crate::broker::within("declaring the broadcast queue", async {
            declare_queue(channel, &queue, args).await?;
            bind(channel, &queue, &self.broadcast_exchange()).await
        })
        .await?;
        Ok(queue)
    }
}

/// Declares a durable fanout exchange (idempotent).
async fn declare_fanout(channel: &Channel, name: &str) -> Result<(), BrokerError> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let fanout = ExchangeKind::Fanout;
    channel
        .exchange_declare(name.into(), fanout, options, FieldTable::default())
        .await
        .map_err(declare_error(name))
}

/// Binds `queue` to `exchange` (idempotent).
async fn bind(channel: &Channel, queue: &str, exchange: &str) -> Result<(), BrokerError> {
    let (options, args) = (QueueBindOptions::default(), FieldTable::default());
    channel
        .queue_bind(queue.into(), exchange.into(), "".into(), options, args)
        .await
        .map_err(declare_error(queue))
}

/// The error for a queue or exchange `name` that could not be declared or bound.
fn declare_error(name: &str) -> impl FnOnce(lapin::Error) -> BrokerError + '_ {
    move |source| BrokerError::Declare {
        queue: name.to_owned(),
        source,
    }
}

fn string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-queue-type"), string("quorum"));
    args
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> Result<(), BrokerError> {
    channel
        .queue_declare(name.into(), QueueDeclareOptions::durable(), args)
        .await
        .map(|_| ())
        .map_err(declare_error(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_say_what_they_hold() {
        let topology = Topology::new("demo");
        assert_eq!(topology.task_queue("square"), "demo.tasks.square");
        assert!(topology.queues().contains(&"demo.results".to_owned()));
        assert_eq!(topology.kinds_key(), "demo:kinds");
        let job = JobId::new();
        let finished = topology.job_finished_channel(job);
        assert_eq!(topology.finished_job(&finished), Some(job));
        assert_eq!(topology.jobs_finished_pattern(), "demo:job:*:finished");
        assert_eq!(topology.finished_job("other:job:x:finished"), None);
        assert_eq!(topology.results_queue(), "demo.results");
        assert_eq!(topology.dead_queue(), "demo.dead");
        assert_eq!(topology.retry_exchange(0), "demo.retry.1s");
        assert_eq!(topology.retry_exchange(99), "demo.retry.256s");
        let job = JobId::new();
        assert_eq!(topology.job_key(job), format!("demo:job:{job}"));
        assert!(topology
            .job_results_key(job)
            .starts_with(&topology.job_key(job)));
    }

    #[test]
    fn broadcast_names_carry_the_prefix() {
        let topology = Topology::new("demo");
        assert_eq!(topology.broadcast_exchange(), "demo.broadcast");
        assert_eq!(topology.broadcast_queue("w1"), "demo.broadcast.w1");
        assert_eq!(topology.worker_key("w1"), "demo:worker:w1");
        assert_eq!(topology.workers_key(), "demo:workers");
        let job = JobId::new();
        assert_eq!(
            topology.job_members_key(job),
            format!("demo:job:{job}:members")
        );
    }
}
