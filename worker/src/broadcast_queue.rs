//! This worker's broadcast queue carries two things: chunks of broadcast jobs ([`crate::broadcast`]) and
//! the control plane's commands ([`crate::control`]), told apart by the message's AMQP type.

use std::sync::Arc;

use taskq_common::control::CONTROL_TYPE;
use taskq_common::settle::Received;

use crate::broadcast::{self, BroadcastLane};
use crate::control;

/// Handles one delivery from the broadcast queue.
pub async fn handle(lane: Arc<BroadcastLane>, delivery: Received) {
    let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
    if kind == Some(CONTROL_TYPE) {
        control::handle(&lane, delivery).await
    } else {
        broadcast::handle_chunk(lane, delivery).await
    }
}
