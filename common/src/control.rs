//! The control plane's messages, versioned like the rest of the wire format (see [`crate::envelope`]):
//! commands the producer sends through the broadcast exchange to every worker, each worker's reply to the
//! producer's own reply queue, and the notice that tells the consumer to write a cancelled job's output.
//!
//! They travel beside broadcast chunks and results; the AMQP `type` property tells them apart.

use serde::{Deserialize, Serialize};

use crate::job::JobId;
use crate::registry::Load;

/// AMQP `type` of a [`ControlMessage`] on the broadcast exchange (chunks carry their task kind).
pub const CONTROL_TYPE: &str = "taskq-control";

/// AMQP `type` of a [`ControlReply`].
pub const REPLY_TYPE: &str = "taskq-control-reply";

/// AMQP `type` of a [`JobCancelledNotice`] on the results queue (results carry their task kind).
pub const JOB_CANCELLED_TYPE: &str = "taskq-job-cancelled";

/// What the producer asks the workers to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Answer, with the current load.
    Ping,
    /// Stop running the job's chunks at the next item boundary (the job is already marked cancelling, so
    /// its queued chunks are dropped when they come up).
    Cancel {
        /// The job.
        job: JobId,
    },
    /// Stop gracefully, exactly as on SIGTERM; only the named worker, or every worker.
    Shutdown {
        /// The worker that should stop; `None` for all.
        worker: Option<String>,
    },
}

impl Command {
    /// The command's name, as typed on the producer's command line.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Cancel { .. } => "cancel",
            Self::Shutdown { .. } => "shutdown",
        }
    }

    /// True if the worker `worker_id` should carry it out (and answer).
    pub fn addresses(&self, worker_id: &str) -> bool {
        match self {
            Self::Shutdown {
                worker: Some(target),
            } => target == worker_id,
            _ => true,
        }
    }
}

/// A command for every worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlMessage {
    /// Wire format version, [`crate::envelope::WIRE_VERSION`].
    pub version: u16,
    /// Unique per command; replies carry it back.
    pub command_id: String,
    /// What to do.
    pub command: Command,
    /// The queue replies go to (through the default exchange).
    pub reply_to: String,
    /// After this (ms since the Unix epoch) nobody waits for an answer: a worker that receives the
    /// command later (it was disconnected) ignores it.
    pub expires_at_ms: u64,
}

/// What a worker did about a command. Tagged with `reply`, so it reads well as JSON too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Outcome {
    /// Answer to a ping.
    Pong {
        /// In-flight work now.
        load: Load,
        /// Milliseconds since the worker started.
        uptime_ms: u64,
    },
    /// The job's running chunks were told to stop.
    Cancelled {
        /// Chunks of the job that were running and stopped before this reply.
        stopped_chunks: u32,
        /// Chunks still running when the worker stopped waiting for them (an item longer than its wait).
        still_running: u32,
        /// When the last of them stopped (or the cancel arrived, if none ran), ms since the Unix epoch.
        stopped_at_ms: u64,
    },
    /// The worker stops now, as on SIGTERM.
    ShuttingDown,
}

/// A worker's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlReply {
    /// Wire format version, [`crate::envelope::WIRE_VERSION`].
    pub version: u16,
    /// The command answered.
    pub command_id: String,
    /// Who answers.
    pub worker_id: String,
    /// Which run of that worker.
    pub instance: String,
    /// What it did.
    pub outcome: Outcome,
}

/// Tells the consumer that a job was cancelled and every live worker stopped it: write what it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCancelledNotice {
    /// Wire format version, [`crate::envelope::WIRE_VERSION`].
    pub version: u16,
    /// The job.
    pub job_id: JobId,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{decode, encode, WIRE_VERSION};

    #[test]
    fn commands_and_replies_round_trip() {
        let job = JobId::new();
        let message = ControlMessage {
            version: WIRE_VERSION,
            command_id: "c1".into(),
            command: Command::Cancel { job },
            reply_to: "amq.gen-1".into(),
            expires_at_ms: 9,
        };
        assert_eq!(
            decode::<ControlMessage>(&encode(&message)).unwrap(),
            message
        );
        let reply = ControlReply {
            version: WIRE_VERSION,
            command_id: "c1".into(),
            worker_id: "w".into(),
            instance: "i".into(),
            outcome: Outcome::Cancelled {
                stopped_chunks: 2,
                still_running: 0,
                stopped_at_ms: 7,
            },
        };
        assert_eq!(decode::<ControlReply>(&encode(&reply)).unwrap(), reply);
        let pong = ControlReply {
            outcome: Outcome::Pong {
                load: Load {
                    cpu_busy: 1,
                    io_busy: 2,
                    running_chunks: 3,
                },
                uptime_ms: 4,
            },
            ..reply
        };
        assert_eq!(decode::<ControlReply>(&encode(&pong)).unwrap(), pong);
        assert_eq!(
            serde_json::to_value(&pong.outcome).unwrap()["reply"],
            "pong"
        );
    }

    #[test]
    fn a_targeted_shutdown_addresses_one_worker() {
        let one = Command::Shutdown {
            worker: Some("w2".into()),
        };
        assert!(one.addresses("w2") && !one.addresses("w1"));
        assert!(Command::Shutdown { worker: None }.addresses("w1"));
        assert!(Command::Ping.addresses("w1"));
    }
}
