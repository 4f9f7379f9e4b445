//! Every queue and Redis key name, and the declaration of the queues. Names are built nowhere else.
//!
//! With prefix `taskq` the management UI shows:
//! - `taskq.tasks.cpu`: chunks waiting for a worker's thread pool;
//! - `taskq.tasks.io`: chunks waiting for a worker's I/O lane (downloads);
//! - `taskq.results`: chunk results waiting for the consumer;
//! - `taskq.dead`: messages refused for good (undecodable, unknown kind, redelivered too often),
//!   each with the reason in its `x-taskq-reason` header.
//!
//! All are quorum queues: durable, replicated when the broker is a cluster, and with a delivery limit
//! so a message that keeps killing its consumer is dead-lettered instead of looping forever.

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::Channel;

use crate::broker::BrokerError;
use crate::job::JobId;
use crate::tasks::Lane;

/// How often a task may be delivered before the broker dead-letters it (it kept killing workers).
pub const DELIVERY_LIMIT: i64 = 6;

/// The header that carries why a message was dead-lettered.
pub const REASON_HEADER: &str = "x-taskq-reason";

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

    /// The queue a lane's tasks travel on.
    pub fn task_queue(&self, lane: Lane) -> String {
        match lane {
            Lane::Cpu => format!("{}.tasks.cpu", self.prefix),
            Lane::Io => format!("{}.tasks.io", self.prefix),
        }
    }

    /// The queue chunk results travel on, to the consumer.
    pub fn results_queue(&self) -> String {
        format!("{}.results", self.prefix)
    }

    /// The dead-letter queue.
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// Every queue, in declaration order.
    pub fn queues(&self) -> Vec<String> {
        vec![
            self.dead_queue(),
            self.task_queue(Lane::Cpu),
            self.task_queue(Lane::Io),
            self.results_queue(),
        ]
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

    /// A pattern matching every Redis key of this deployment.
    pub fn redis_pattern(&self) -> String {
        format!("{}:*", self.prefix)
    }

    /// Declares every queue. Idempotent: every binary calls it at start.
    pub async fn declare(&self, channel: &Channel) -> Result<(), BrokerError> {
        declare_queue(channel, &self.dead_queue(), quorum_args()).await?;
        let mut to_dead = quorum_args();
        to_dead.insert(ShortString::from("x-dead-letter-exchange"), string(""));
        to_dead.insert(
            ShortString::from("x-dead-letter-routing-key"),
            string(&self.dead_queue()),
        );
        to_dead.insert(
            ShortString::from("x-delivery-limit"),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        declare_queue(channel, &self.task_queue(Lane::Cpu), to_dead.clone()).await?;
        declare_queue(channel, &self.task_queue(Lane::Io), to_dead.clone()).await?;
        declare_queue(channel, &self.results_queue(), to_dead).await
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
        .map_err(|source| BrokerError::Declare {
            queue: name.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_say_what_they_hold() {
        let topology = Topology::new("demo");
        assert_eq!(topology.task_queue(Lane::Cpu), "demo.tasks.cpu");
        assert_eq!(topology.task_queue(Lane::Io), "demo.tasks.io");
        assert!(topology.queues().contains(&"demo.tasks.io".to_owned()));
        assert_eq!(topology.results_queue(), "demo.results");
        assert_eq!(topology.dead_queue(), "demo.dead");
        let job = JobId::new();
        assert_eq!(topology.job_key(job), format!("demo:job:{job}"));
        assert!(topology
            .job_results_key(job)
            .starts_with(&topology.job_key(job)));
    }
}
