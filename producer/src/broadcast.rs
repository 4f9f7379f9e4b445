//! Submitting a broadcast job: the live workers become its members (recorded before anything is sent),
//! and every chunk goes through the broadcast exchange to all of them, all or nothing as for `submit`.

use taskq_common::broadcast::{Member, MAX_BROADCAST_CHUNKS};
use taskq_common::broker::Publisher;
use taskq_common::job::JobId;
use taskq_common::registry::{Membership, WorkerInfo};
use taskq_common::store::JobStore;
use tokio_util::sync::CancellationToken;

use crate::prepare::Prepared;
use crate::submit;
use crate::ProducerError;

/// Checks what can be checked before connecting: the size. The error says what to do.
pub fn validate(prepared: &Prepared) -> Result<(), String> {
    let chunks = prepared.spec.total_chunks;
    if chunks > MAX_BROADCAST_CHUNKS {
        return Err(format!(
            "{chunks} chunks are more than the {MAX_BROADCAST_CHUNKS} a broadcast job may have (every worker holds all of them): raise --chunk-size, or use `submit`"
        ));
    }
    Ok(())
}

/// Shares a prepared job among the live workers that serve its kind and publishes it; returns its id
/// once every chunk is confirmed.
pub async fn publish(
    publisher: &Publisher,
    store: &JobStore,
    membership: &Membership,
    mut prepared: Prepared,
    shutdown: &CancellationToken,
) -> Result<JobId, ProducerError> {
    let kind = prepared.spec.kind.clone();
    let members: Vec<Member> = membership.serving(&kind).map(WorkerInfo::member).collect();
    if members.is_empty() && membership.running().next().is_none() {
        return Err(ProducerError::NoWorkers {
            prefix: store.topology().prefix().to_owned(),
        });
    }
    if members.is_empty() {
        return Err(ProducerError::Unserved {
            kind,
            served: membership.served_kinds(),
        });
    }
    let job = prepared.spec.id;
    let names: Vec<&str> = members.iter().map(|m| m.worker_id.as_str()).collect();
    eprintln!(
        "broadcasting job {job} ({} chunks) to {} worker(s): {}",
        prepared.spec.total_chunks,
        members.len(),
        names.join(", ")
    );
    store.record_members(job, &members).await?;
    let exchange = store.topology().broadcast_exchange();
    for message in &mut prepared.messages {
        message.exchange.clone_from(&exchange);
        // A fanout exchange ignores the routing key; the exchange's name makes errors say where it went.
        message.queue.clone_from(&exchange);
    }
    submit::publish(publisher, store, prepared, shutdown).await
}
