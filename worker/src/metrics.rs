//! The worker's Prometheus metrics: one registry of typed handles, installed once per process when
//! `--metrics-addr` is given, and the one-line recording calls the handler, the lanes and the result
//! publisher make. Until [`install`] runs every call is a no-op, so a worker without the flag pays a
//! pointer check per event.
//!
//! A process-wide handle rather than one passed down: the events happen deep in the handler, the
//! result batcher and the prefetch controller, and threading a handle through each would touch every
//! constructor for no gain (a process serves one `/metrics`).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use taskq_common::metrics::MetricSet;
use taskq_common::task::Lane;

/// Upper bounds of the chunk run-time buckets, in seconds: from a tiny chunk's 100 µs to the default
/// chunk time limit (20 min).
const RUN_SECONDS_BUCKETS: [f64; 14] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 1200.0,
];

/// What became of one delivered chunk, as the `outcome` label of `taskq_worker_chunks_total`: the
/// handler's decision. When carrying it out fails (the dead-letter copy or the delayed retry is not
/// confirmed), the chunk goes back to its queue as it is and counts again when it is delivered again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Ran, every item succeeded, output passed on; acked.
    Ok,
    /// Ran to the end with failed items (counted in the job), output passed on; acked.
    Failed,
    /// An item asked for another attempt: republished with a delay.
    Retried,
    /// Copied to the dead-letter queue: retries ran out, quarantined, or it can never run.
    DeadLettered,
    /// Its job was cancelled: dropped without running.
    Cancelled,
    /// Its job had already ended (completed, so this is a duplicate, or failed): dropped.
    Dropped,
    /// Back to its queue untouched: the worker is stopping, its job was cancelled while it ran, or
    /// Redis or the broker failed for a moment.
    Requeued,
}

impl ChunkOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Retried => "retried",
            Self::DeadLettered => "dead_lettered",
            Self::Cancelled => "cancelled",
            Self::Dropped => "dropped",
            Self::Requeued => "requeued",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChunkLabels {
    kind: String,
    stage: u16,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    kind: String,
    lane: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabels {
    lane: &'static str,
}

/// Every metric the worker exports; cloning shares the values.
#[derive(Clone)]
struct WorkerMetrics {
    chunks: Family<ChunkLabels, Counter>,
    items: Family<ChunkLabels, Counter>,
    run_seconds: Family<RunLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<LaneLabels, Gauge>,
    prefetch: Family<LaneLabels, Gauge>,
    result_batch_size: Histogram,
    reconnects: Counter,
    heartbeat: Gauge,
}

static METRICS: OnceLock<WorkerMetrics> = OnceLock::new();

fn run_histogram() -> Histogram {
    Histogram::new(RUN_SECONDS_BUCKETS)
}

impl WorkerMetrics {
    fn new() -> Self {
        Self {
            chunks: Family::default(),
            items: Family::default(),
            run_seconds: Family::new_with_constructor(run_histogram),
            in_flight: Family::default(),
            prefetch: Family::default(),
            // 1, 2, 4, ... 256 results: a batch holds at most 256 (`results::MAX_RESULTS`).
            result_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            reconnects: Counter::default(),
            heartbeat: Gauge::default(),
        }
    }
}

impl MetricSet for WorkerMetrics {
    fn register(&self, registry: &mut Registry) {
        let metrics = self.clone();
        registry.register(
            "taskq_worker_chunks",
            "Chunk deliveries by kind, stage and what became of them",
            metrics.chunks,
        );
        registry.register(
            "taskq_worker_items",
            "Items of finished chunks by kind, stage and outcome (ok and failed are what jobs count; \
             retried ones run again)",
            metrics.items,
        );
        registry.register_with_unit(
            "taskq_worker_chunk_run",
            "Time running a chunk's items (CPU: on a pool thread; I/O: until its last item ended)",
            Unit::Seconds,
            metrics.run_seconds,
        );
        registry.register(
            "taskq_worker_chunks_in_flight",
            "Chunks delivered to this worker and not yet settled, by lane",
            metrics.in_flight,
        );
        registry.register(
            "taskq_worker_prefetch",
            "Unacknowledged chunks each consumer of the lane may hold (the CPU lane's adapts)",
            metrics.prefetch,
        );
        registry.register(
            "taskq_worker_result_batch_size",
            "Results per published result message",
            metrics.result_batch_size,
        );
        registry.register(
            "taskq_worker_broker_reconnects",
            "Broker connections lost and opened again",
            metrics.reconnects,
        );
        registry.register_with_unit(
            "taskq_worker_last_heartbeat_timestamp",
            "When this worker last renewed its registry entry in Redis (Unix time)",
            Unit::Seconds,
            metrics.heartbeat,
        );
    }
}

/// Starts recording and returns a registry holding every worker metric, for the `/metrics` endpoint.
pub fn install() -> Registry {
    taskq_common::metrics::install(&METRICS, WorkerMetrics::new)
}

/// Counts one chunk delivery of `kind` at `stage` by what became of it.
pub fn chunk_settled(kind: &str, stage: u16, outcome: ChunkOutcome) {
    if let Some(metrics) = METRICS.get() {
        let labels = ChunkLabels {
            kind: kind.to_owned(),
            stage,
            outcome: outcome.as_str(),
        };
        metrics.chunks.get_or_create(&labels).inc();
    }
}

/// Counts the items of a chunk that ran: `ok` and `failed` once passed on, or all as `retried`.
pub fn items(kind: &str, stage: u16, counts: ItemCounts) {
    let Some(metrics) = METRICS.get() else {
        return;
    };
    let ItemCounts {
        ok,
        failed,
        retried,
    } = counts;
    for (outcome, count) in [("ok", ok), ("failed", failed), ("retried", retried)] {
        if count > 0 {
            let labels = ChunkLabels {
                kind: kind.to_owned(),
                stage,
                outcome,
            };
            metrics
                .items
                .get_or_create(&labels)
                .inc_by(u64::from(count));
        }
    }
}

/// Item counts of one chunk, by outcome.
#[derive(Debug, Clone, Copy, Default)]
pub struct ItemCounts {
    /// Succeeded.
    pub ok: u32,
    /// Failed for good (counted in the job's summary).
    pub failed: u32,
    /// Will run again with the chunk's next attempt.
    pub retried: u32,
}

/// Records how long a chunk of `kind` ran on `lane`.
pub fn chunk_ran(kind: &str, lane: Lane, took: Duration) {
    if let Some(metrics) = METRICS.get() {
        let labels = RunLabels {
            kind: kind.to_owned(),
            lane: lane.as_str(),
        };
        metrics
            .run_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

/// Counts a chunk of `lane` as in flight until the guard is dropped.
pub fn in_flight(lane: Lane) -> InFlight {
    let gauge = METRICS.get().map(|metrics| {
        let gauge = metrics.in_flight.get_or_create_owned(&LaneLabels {
            lane: lane.as_str(),
        });
        gauge.inc();
        gauge
    });
    InFlight { gauge }
}

/// A chunk in flight; dropping it counts the chunk settled.
pub struct InFlight {
    gauge: Option<Gauge>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(gauge) = &self.gauge {
            gauge.dec();
        }
    }
}

/// Records the prefetch now in force on `lane`.
pub fn prefetch(lane: Lane, prefetch: u16) {
    if let Some(metrics) = METRICS.get() {
        let labels = LaneLabels {
            lane: lane.as_str(),
        };
        metrics
            .prefetch
            .get_or_create(&labels)
            .set(i64::from(prefetch));
    }
}

/// Records the number of results one published message carried.
pub fn result_batch(results: usize) {
    if let Some(metrics) = METRICS.get() {
        metrics.result_batch_size.observe(results as f64);
    }
}

/// Counts a broker connection lost (the worker reconnects).
pub fn reconnecting() {
    if let Some(metrics) = METRICS.get() {
        metrics.reconnects.inc();
    }
}

/// Records a heartbeat renewed now.
pub fn heartbeat() {
    if let Some(metrics) = METRICS.get() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        metrics.heartbeat.set(now.as_secs() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_events_appear_in_the_exposition_under_their_names() {
        let registry = install();
        let kind = "metrics-test-kind";
        chunk_settled(kind, 0, ChunkOutcome::Ok);
        chunk_settled(kind, 0, ChunkOutcome::Ok);
        chunk_settled(kind, 1, ChunkOutcome::DeadLettered);
        let counts = ItemCounts {
            ok: 7,
            failed: 3,
            retried: 0,
        };
        items(kind, 0, counts);
        chunk_ran(kind, Lane::Io, Duration::from_millis(3));
        let held = in_flight(Lane::Io);
        prefetch(Lane::Io, 64);
        result_batch(5);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"taskq_worker_chunks_total{kind="metrics-test-kind",stage="0",outcome="ok"} 2"#,
            r#"taskq_worker_chunks_total{kind="metrics-test-kind",stage="1",outcome="dead_lettered"} 1"#,
            r#"taskq_worker_items_total{kind="metrics-test-kind",stage="0",outcome="ok"} 7"#,
            r#"taskq_worker_items_total{kind="metrics-test-kind",stage="0",outcome="failed"} 3"#,
            r#"taskq_worker_chunk_run_seconds_count{kind="metrics-test-kind",lane="io"} 1"#,
            r#"taskq_worker_prefetch{lane="io"} 64"#,
            "taskq_worker_broker_reconnects_total 0",
        ] {
            assert!(text.contains(line), "missing {line} in:\n{text}");
        }
        let never =
            r#"taskq_worker_items_total{kind="metrics-test-kind",stage="0",outcome="retried"}"#;
        assert!(!text.contains(never), "no series for what never happened");
        assert!(text.contains("taskq_worker_chunks_in_flight{lane=\"io\"}"));
        drop(held);
    }
}
