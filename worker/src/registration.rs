//! This worker's entry in the registry: written once its broadcast queue is bound (so a producer that
//! sees the worker can reach it), rewritten whole every heartbeat interval (so it comes back after a Redis
//! restart), marked `stopping` once a stop is requested, and removed when the worker has stopped.

use std::sync::Arc;

use taskq_common::broadcast::Member;
use taskq_common::job::now_ms;
use taskq_common::registry::{
    KindInfo, Load, Registry, WorkerInfo, WorkerState, HEARTBEAT_INTERVAL,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cancel::Cancellations;
use crate::io_lane::IoLane;
use crate::kinds::Kinds;
use crate::pool::CpuPool;
use crate::settings::Settings;

/// What the registry says about this worker, and where its load is read from.
pub struct Registration {
    registry: Registry,
    template: WorkerInfo,
    kinds: Vec<KindInfo>,
    pool: Arc<CpuPool>,
    io: Arc<IoLane>,
    cancels: Arc<Cancellations>,
}

impl Registration {
    /// This run of the worker, under a fresh instance id.
    pub fn new(
        settings: &Settings,
        kinds: &Kinds,
        registry: Registry,
        pool: Arc<CpuPool>,
        io: Arc<IoLane>,
        cancels: Arc<Cancellations>,
    ) -> Self {
        let topology = settings.connection.topology();
        let template = WorkerInfo {
            worker_id: settings.worker_id.clone(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            host: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            cpu_threads: pool.threads() as u32,
            io_concurrency: io.concurrency() as u32,
            queues: kinds
                .names()
                .iter()
                .map(|kind| topology.task_queue(kind))
                .chain([topology.broadcast_queue(&settings.worker_id)])
                .collect(),
            kinds: kinds.names(),
            started_at_ms: now_ms(),
            heartbeat_at_ms: 0,
            state: WorkerState::Running,
            load: Load::default(),
        };
        Self {
            registry,
            template,
            kinds: kinds.iter().map(|kind| kind.info.clone()).collect(),
            pool,
            io,
            cancels,
        }
    }

    /// The registry this worker is in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &str {
        &self.template.worker_id
    }

    /// This run of the worker as a broadcast member.
    pub fn member(&self) -> Member {
        self.template.member()
    }

    /// Milliseconds since the worker started.
    pub fn uptime_ms(&self) -> u64 {
        now_ms().saturating_sub(self.template.started_at_ms)
    }

    /// In-flight work now.
    pub fn load(&self) -> Load {
        Load {
            cpu_busy: self.pool.busy() as u32,
            io_busy: self.io.busy() as u32,
            running_chunks: self.cancels.running_chunks(),
        }
    }

    /// Heartbeats while `ready` is true (a broker session is up and the broadcast queue bound, so a
    /// producer that sees this worker can reach it) until `finished` fires, then unregisters. Once
    /// `stopping` fires the entry says so, and producers no longer count this worker in.
    pub async fn run(
        &self,
        mut ready: watch::Receiver<bool>,
        stopping: CancellationToken,
        finished: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(HEARTBEAT_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut registered, mut stop_announced, mut kinds_declared) = (false, false, false);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                // At once, not at the next tick: producers stop counting this worker in.
                _ = stopping.cancelled(), if !stop_announced => stop_announced = true,
                // At once when a session comes up; while none is, the entry expires by itself.
                Ok(()) = ready.changed() => {}
                _ = finished.cancelled() => break,
            }
            if !*ready.borrow_and_update() {
                continue;
            }
            // Before the first heartbeat: whoever sees this worker serve a kind finds how it is declared.
            if !kinds_declared {
                match self.registry.declare_kinds(&self.kinds).await {
                    Ok(()) => kinds_declared = true,
                    Err(error) => {
                        tracing::warn!(
                            "{error}; declaring the task kinds again at the next heartbeat"
                        );
                        continue;
                    }
                }
            }
            let state = if stopping.is_cancelled() {
                WorkerState::Stopping
            } else {
                WorkerState::Running
            };
            let info = WorkerInfo {
                heartbeat_at_ms: now_ms(),
                state,
                load: self.load(),
                ..self.template.clone()
            };
            match self.registry.heartbeat(&info).await {
                Ok(previous) => {
                    crate::metrics::heartbeat();
                    let other = previous.filter(|p| p.instance != info.instance);
                    match other {
                        // Before the first write, that is this worker's previous run under the same id.
                        Some(other) if registered => tracing::error!(
                            other_instance = %other.instance,
                            other_host = %other.host,
                            other_pid = other.pid,
                            "another worker runs with this --worker-id: give each worker its own, or broadcast jobs and commands go wrong"
                        ),
                        _ if !registered => {
                            registered = true;
                            tracing::info!(instance = %info.instance, "registered");
                        }
                        _ => {}
                    }
                }
                Err(error) => tracing::warn!("{error}; heartbeat missed, retrying"),
            }
        }
        match self.registry.unregister(self.worker_id()).await {
            Ok(()) => tracing::info!("unregistered"),
            Err(error) => tracing::warn!("{error}; the registry entry expires by itself"),
        }
    }
}
