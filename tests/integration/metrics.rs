//! Metrics: a real Prometheus scrapes a worker, the consumer and RabbitMQ while a job runs, and the numbers
//! read back through its query API are the job's; the deploy files (scrape config, alert rules and their
//! unit tests, the Grafana dashboard) are checked against the same processes. And a taken metrics address
//! stops a worker or consumer at start with exit code 2.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use taskq_tests::prometheus::{self, http_get, metrics_address, promtool, Prometheus};
use taskq_tests::Deployment;

/// How long a number may take to reach Prometheus (scrapes every second; RabbitMQ refreshes its queue
/// figures every 5 s).
const SCRAPED: Duration = Duration::from_secs(30);

/// The repository's `deploy/` directory.
fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// RabbitMQ's Prometheus endpoint (`TASKQ_TEST_RABBITMQ_METRICS`, default the local broker's plugin).
fn rabbitmq_metrics() -> String {
    std::env::var("TASKQ_TEST_RABBITMQ_METRICS").unwrap_or_else(|_| "127.0.0.1:15692".into())
}

/// deploy/prometheus/prometheus.yml's jobs, with this test's targets and a 1 s interval, and its alerts.
fn scrape_config(worker: &str, consumer: &str, rabbitmq: &str) -> String {
    let alerts = deploy_dir().join("prometheus/alerts.yml");
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: ["{alerts}"]
scrape_configs:
  - job_name: taskq-worker
    static_configs: [{{targets: ["{worker}"]}}]
  - job_name: taskq-consumer
    static_configs: [{{targets: ["{consumer}"]}}]
  - job_name: rabbitmq
    metrics_path: /metrics/detailed
    params:
      family: [queue_coarse_metrics, queue_consumer_count]
    static_configs: [{{targets: ["{rabbitmq}"]}}]
"#,
        alerts = alerts.display()
    )
}

/// The metric families a `/metrics` exposition declares (`# TYPE name ...`).
fn families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Every `taskq_...` metric name in `text`, as its family (without `_total`, `_bucket`, `_sum`, `_count`).
fn taskq_families_named_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("taskq_worker_") || word.starts_with("taskq_consumer_"))
        .map(|name| {
            let family = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            family.to_owned()
        })
        .collect()
}

#[test]
fn prometheus_scrapes_the_job_s_numbers_from_worker_consumer_and_rabbitmq() {
    if !prometheus::require("the scrape test") {
        return;
    }
    let deploy = deploy_dir().join("prometheus");
    promtool(&deploy, &["check", "config", "prometheus.yml"]);
    promtool(&deploy, &["check", "rules", "alerts.yml"]);
    promtool(&deploy, &["test", "rules", "alerts.test.yml"]);

    let mut deployment = Deployment::new("scrape");
    let worker = deployment.start_worker(&["--metrics-addr", "127.0.0.1:0"]);
    let consumer = deployment.start_consumer_with(&["--metrics-addr", "127.0.0.1:0"]);
    let (worker_at, consumer_at) = (
        metrics_address(&deployment, worker),
        metrics_address(&deployment, consumer),
    );
    let config = scrape_config(&worker_at, &consumer_at, &rabbitmq_metrics());
    let prometheus = Prometheus::start(deployment.dir.path(), &config);

    // 300 items in 30 chunks of 10.
    let summary = deployment
        .producer(&[
            "submit",
            "square",
            "--values",
            "1..=300",
            "--chunk-size",
            "10",
            "--wait",
        ])
        .json();
    assert_eq!(
        (summary["items"].as_u64(), summary["chunks"].as_u64()),
        (Some(300), Some(30))
    );
    let wait = |promql: &str, expected: f64| prometheus.wait_for_value(promql, expected, SCRAPED);
    wait(
        r#"sum by (kind) (taskq_worker_items_total{job="taskq-worker",outcome="ok"})"#,
        300.0,
    );
    wait(
        r#"sum(taskq_worker_items_total{job="taskq-worker",outcome!="ok"}) or vector(0)"#,
        0.0,
    );
    wait(
        r#"sum by (kind) (taskq_worker_chunks_total{job="taskq-worker",outcome="ok"})"#,
        30.0,
    );
    wait(
        r#"sum(taskq_worker_chunk_run_seconds_count{job="taskq-worker",kind="square",lane="cpu"})"#,
        30.0,
    );
    wait(
        r#"sum(taskq_worker_result_batch_size_sum{job="taskq-worker"})"#,
        30.0,
    );
    wait(
        r#"sum by (kind) (taskq_consumer_results_recorded_total{job="taskq-consumer"})"#,
        30.0,
    );
    wait(
        r#"sum(taskq_consumer_jobs_finished_total{job="taskq-consumer",outcome="completed"})"#,
        1.0,
    );
    wait(r#"taskq_worker_chunks_in_flight{lane="cpu"}"#, 0.0);

    // RabbitMQ's per-queue figures: this namespace's task queue, consumed by the one worker, now empty.
    let queue = deployment.topology().task_queue("square");
    wait(
        &format!(r#"rabbitmq_detailed_queue_consumers{{job="rabbitmq",queue="{queue}"}}"#),
        1.0,
    );
    wait(
        &format!(r#"rabbitmq_detailed_queue_messages_ready{{job="rabbitmq",queue="{queue}"}}"#),
        0.0,
    );

    // The dashboard and the alerts name only metrics the binaries declare, and every dashboard query
    // and alert rule evaluates against the real series.
    let declared: BTreeSet<String> = [&worker_at, &consumer_at]
        .iter()
        .flat_map(|at| families(&http_get(at, "/metrics").expect("scrape /metrics")))
        .collect();
    let dashboard_text =
        std::fs::read_to_string(deploy_dir().join("grafana/taskq.json")).expect("dashboard");
    let alerts_text = std::fs::read_to_string(deploy.join("alerts.yml")).expect("alerts");
    let named = taskq_families_named_in(&(dashboard_text.clone() + &alerts_text));
    let undeclared: Vec<_> = named.difference(&declared).collect();
    assert!(
        undeclared.is_empty(),
        "the dashboard or alerts use metrics no binary declares: {undeclared:?} (declared: {declared:?})"
    );
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard_text).expect("JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let exprs: Vec<String> = panels
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 10, "dashboard queries: {exprs:?}");
    for expr in &exprs {
        if let Err(error) = prometheus.query(expr) {
            panic!("dashboard query `{expr}` fails: {error}");
        }
    }
    let rules = prometheus.api("/api/v1/rules").expect("rules");
    let rules: Vec<&serde_json::Value> = rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(rules.len(), 8, "alert rules loaded: {rules:?}");
    // Rules are evaluated every second: by now each has been, against the series scraped above.
    for rule in rules {
        assert_eq!(
            rule["health"], "ok",
            "alert rule not evaluated cleanly: {rule}"
        );
    }
}

#[test]
fn a_taken_metrics_address_stops_worker_and_consumer_with_exit_code_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = taken.local_addr().expect("address").to_string();
    let mut deployment = Deployment::new("metrics-taken");
    let worker = deployment.start_worker_without_waiting(&["--metrics-addr", &address]);
    let consumer = deployment.start_consumer_with(&["--metrics-addr", &address]);
    for index in [worker, consumer] {
        let status = deployment.wait_for_exit(index, Duration::from_secs(30));
        let log = deployment.log(index);
        assert_eq!(status.code(), Some(2), "{log}");
        assert!(
            log.contains(&format!("--metrics-addr {address}: cannot listen there")),
            "{log}"
        );
    }
}
