//! Carrying out the control plane's commands (`ping`, `cancel`, `shutdown`) and answering them on the
//! producer's reply queue. A shutdown is answered first, then the worker stops exactly as on SIGTERM.

use std::time::Duration;

use taskq_common::broker::Outgoing;
use taskq_common::control::{Command, ControlMessage, ControlReply, Outcome, REPLY_TYPE};
use taskq_common::envelope::{self, WIRE_VERSION};
use taskq_common::job::now_ms;
use taskq_common::settle::Received;
use tracing::Instrument;

use crate::broadcast::BroadcastLane;
use crate::handler;

/// How long a cancel waits for the job's running chunks to reach an item boundary before answering.
pub const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// Handles one control message to the end (acked, or dead-lettered if unreadable).
pub async fn handle(lane: &BroadcastLane, delivery: Received) {
    let message: ControlMessage = match envelope::decode(&delivery.data) {
        Ok(message) => message,
        Err(reason) => {
            let reason = reason.to_string();
            return handler::refuse(&lane.chunks, &delivery, &reason, None).await;
        }
    };
    let span = tracing::info_span!(
        "control",
        command = message.command.name(),
        id = %message.command_id
    );
    let acted = carry_out(lane, &message).instrument(span).await;
    delivery.ack().await;
    // `acted` is false for an expired command: a stale `shutdown` left in this worker's queue must not
    // stop a worker restarted under the same id.
    if acted && matches!(message.command, Command::Shutdown { .. }) {
        tracing::info!("stop requested by `producer shutdown`: finishing in-flight work");
        lane.broadcast.shutdown.cancel();
    }
}

/// Carries out a command addressed to this worker and answers it; false if it was not for this worker
/// or arrived after its sender stopped waiting.
async fn carry_out(lane: &BroadcastLane, message: &ControlMessage) -> bool {
    let registration = &lane.broadcast.registration;
    if !message.command.addresses(registration.worker_id()) {
        return false;
    }
    if now_ms() > message.expires_at_ms {
        tracing::info!("command arrived after its sender stopped waiting; ignored");
        return false;
    }
    let outcome = match &message.command {
        Command::Ping => Outcome::Pong {
            load: registration.load(),
            uptime_ms: registration.uptime_ms(),
        },
        Command::Cancel { job } => {
            let stopped = lane
                .broadcast
                .cancels
                .cancel_and_wait(*job, CANCEL_WAIT)
                .await;
            tracing::info!(
                %job,
                stopped_chunks = stopped.chunks,
                still_running = stopped.still_running,
                "job cancelled"
            );
            Outcome::Cancelled {
                stopped_chunks: stopped.chunks,
                still_running: stopped.still_running,
                stopped_at_ms: stopped.at_ms,
            }
        }
        Command::Shutdown { .. } => Outcome::ShuttingDown,
    };
    let reply = ControlReply {
        version: WIRE_VERSION,
        command_id: message.command_id.clone(),
        worker_id: registration.worker_id().to_owned(),
        instance: registration.member().instance,
        outcome,
    };
    let outgoing = Outgoing {
        queue: message.reply_to.clone(),
        body: envelope::encode(&reply),
        message_id: message.command_id.clone(),
        kind: REPLY_TYPE.to_owned(),
        ..Outgoing::default()
    };
    match lane.chunks.publisher.publish(&outgoing).await {
        Ok(()) => tracing::info!("answered"),
        // The producer gave up (its reply queue is gone): nobody is left to tell.
        Err(error) => tracing::warn!("answer not delivered: {error}"),
    }
    true
}
