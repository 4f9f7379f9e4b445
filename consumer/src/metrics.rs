//! The consumer's Prometheus metrics: one registry of typed handles, installed once per process when
//! `--metrics-addr` is given, and the one-line recording calls the result handler and job finishing
//! make. Until [`install`] runs every call is a no-op.
//!
//! A process-wide handle, like the worker's: the events happen inside the handlers, which share a
//! context per connection, and a process serves one `/metrics`.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use taskq_common::metrics::MetricSet;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Every metric the consumer exports; cloning shares the values.
#[derive(Clone, Default)]
struct ConsumerMetrics {
    recorded: Family<KindLabels, Counter>,
    duplicates: Counter,
    jobs_finished: Family<OutcomeLabels, Counter>,
    reconnects: Counter,
}

static METRICS: OnceLock<ConsumerMetrics> = OnceLock::new();

impl MetricSet for ConsumerMetrics {
    fn register(&self, registry: &mut Registry) {
        let metrics = self.clone();
        registry.register(
            "taskq_consumer_results_recorded",
            "Chunk results recorded in Redis for the first time, by kind",
            metrics.recorded,
        );
        registry.register(
            "taskq_consumer_duplicate_results",
            "Chunk results ignored because the chunk was already recorded (a redelivery)",
            metrics.duplicates,
        );
        registry.register(
            "taskq_consumer_jobs_finished",
            "Jobs whose output this consumer wrote, by outcome (completed, cancelled, failed)",
            metrics.jobs_finished,
        );
        registry.register(
            "taskq_consumer_broker_reconnects",
            "Broker connections lost and opened again",
            metrics.reconnects,
        );
    }
}

/// Starts recording and returns a registry holding every consumer metric, for the `/metrics` endpoint.
pub fn install() -> Registry {
    taskq_common::metrics::install(&METRICS, ConsumerMetrics::default)
}

/// Counts a result of `kind` recorded for the first time.
pub fn recorded(kind: &str) {
    if let Some(metrics) = METRICS.get() {
        let labels = KindLabels {
            kind: kind.to_owned(),
        };
        metrics.recorded.get_or_create(&labels).inc();
    }
}

/// Counts a duplicate result, ignored. Not by kind: duplicates are rare, and an unlabelled counter is
/// always exported (at 0), so a dashboard or alert on it never sees a missing series.
pub fn duplicate() {
    if let Some(metrics) = METRICS.get() {
        metrics.duplicates.inc();
    }
}

/// Counts a job finished with `outcome` (its status: completed, cancelled, failed).
pub fn job_finished(outcome: &'static str) {
    if let Some(metrics) = METRICS.get() {
        metrics
            .jobs_finished
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}

/// Counts a broker connection lost (the consumer reconnects).
pub fn reconnecting() {
    if let Some(metrics) = METRICS.get() {
        metrics.reconnects.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_events_appear_in_the_exposition_under_their_names() {
        let registry = install();
        recorded("square");
        recorded("square");
        duplicate();
        job_finished("completed");
        reconnecting();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"taskq_consumer_results_recorded_total{kind="square"} 2"#,
            "taskq_consumer_duplicate_results_total 1",
            r#"taskq_consumer_jobs_finished_total{outcome="completed"} 1"#,
            "taskq_consumer_broker_reconnects_total 1",
        ] {
            assert!(text.contains(line), "missing {line} in:\n{text}");
        }
    }
}
