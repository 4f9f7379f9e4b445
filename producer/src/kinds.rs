//! `producer kinds`: every kind the workers declared, and the live workers serving each.

use serde_json::json;
use taskq_common::registry::Registry;
use taskq_common::store::StoreError;

/// The kinds as JSON: name, lane, default chunk size, aggregate, description, and the live workers
/// (running ones) serving each. Kinds served by a live worker but not declared yet are listed too.
pub async fn kinds_json(registry: &Registry) -> Result<serde_json::Value, StoreError> {
    let declared = registry.kinds().await?;
    let membership = registry.membership().await?;
    let mut names: Vec<String> = declared.iter().map(|kind| kind.name.clone()).collect();
    names.extend(membership.served_kinds());
    names.sort();
    names.dedup();
    let kinds: Vec<serde_json::Value> = names
        .iter()
        .map(|name| {
            let workers: Vec<&str> = membership
                .serving(name)
                .map(|info| info.worker_id.as_str())
                .collect();
            let mut entry = json!({ "name": name, "workers": workers });
            if let Some(kind) = declared.iter().find(|kind| &kind.name == name) {
                entry["lane"] = json!(kind.lane);
                entry["chunk_size"] = json!(kind.chunk_size);
                entry["aggregate"] = json!(kind.aggregate);
                if let Some(description) = &kind.description {
                    entry["description"] = json!(description);
                }
            }
            entry
        })
        .collect();
    Ok(json!(kinds))
}
