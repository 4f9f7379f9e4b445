//! `producer workers`: the registry as JSON, the live workers with their load and the ones whose
//! heartbeats stopped lately without a graceful stop.

use serde_json::{json, Value};
use taskq_common::job::now_ms;
use taskq_common::registry::Membership;

/// The registry as the JSON `producer workers` prints.
pub fn membership_json(membership: &Membership) -> Value {
    let now = now_ms();
    let live: Vec<Value> = membership
        .live
        .iter()
        .map(|info| {
            let mut entry = serde_json::to_value(info).unwrap_or_default();
            entry["last_heartbeat_ms_ago"] = now.saturating_sub(info.heartbeat_at_ms).into();
            entry
        })
        .collect();
    let crashed: Vec<Value> = membership
        .crashed
        .iter()
        .map(|crashed| {
            json!({
                "worker_id": crashed.worker_id,
                "heartbeat_stopped_ms_ago": now.saturating_sub(crashed.last_heartbeat_ms),
            })
        })
        .collect();
    json!({"workers": live, "missing": crashed})
}
