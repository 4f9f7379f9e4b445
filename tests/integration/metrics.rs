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
    let endpoints = [
        metrics_address(&deployment, worker),
        metrics_address(&deployment, consumer),
    ];
    let config = scrape_config(&endpoints[0], &endpoints[1], &rabbitmq_metrics());
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
    job_numbers_reach_prometheus(&prometheus, 300, 30);
    let queue = deployment.topology().task_queue("square");
    queue_figures_reach_prometheus(&prometheus, &queue);
    dashboard_and_alerts_match(&prometheus, &endpoints);
}

/// The worker's and the consumer's counts of a finished job of `items` in `chunks`, as Prometheus read
/// them.
fn job_numbers_reach_prometheus(prometheus: &Prometheus, items: u32, chunks: u32) {
    let wait = |promql: &str, expected: u32| {
        prometheus.wait_for_value(promql, f64::from(expected), SCRAPED)
    };
    // Each query has one selector; these restrict it to the worker's or the consumer's scrape job.
    let worker = |query: &str| query.replace("{", r#"{job="taskq-worker","#);
    wait(
        &worker(r#"sum by (kind) (taskq_worker_items_total{outcome="ok"})"#),
        items,
    );
    wait(
        &worker(r#"sum(taskq_worker_items_total{outcome!="ok"}) or vector(0)"#),
        0,
    );
    wait(
        &worker(r#"sum by (kind) (taskq_worker_chunks_total{outcome="ok"})"#),
        chunks,
    );
    let runs = r#"sum(taskq_worker_chunk_run_seconds_count{kind="square",lane="cpu"})"#;
    wait(&worker(runs), chunks);
    // Every chunk's result went out in some result message exactly once.
    wait(
        &worker(r#"sum(taskq_worker_result_batch_size_sum{})"#),
        chunks,
    );
    wait(&worker(r#"taskq_worker_chunks_in_flight{lane="cpu"}"#), 0);
    let consumer = |query: &str| query.replace("{", r#"{job="taskq-consumer","#);
    let recorded = r#"sum by (kind) (taskq_consumer_results_recorded_total{})"#;
    wait(&consumer(recorded), chunks);
    let completed = r#"sum(taskq_consumer_jobs_finished_total{outcome="completed"})"#;
    wait(&consumer(completed), 1);
}

/// RabbitMQ's per-queue figures for `queue`: consumed by the one worker, and empty once the job is done.
fn queue_figures_reach_prometheus(prometheus: &Prometheus, queue: &str) {
    for (metric, expected) in [("consumers", 1.0), ("messages_ready", 0.0)] {
        let promql =
            format!(r#"rabbitmq_detailed_queue_{metric}{{job="rabbitmq",queue="{queue}"}}"#);
        prometheus.wait_for_value(&promql, expected, SCRAPED);
    }
}

/// The dashboard and the alerts name only metrics the binaries at `endpoints` declare, every dashboard
/// query evaluates, and every alert rule evaluates cleanly against the real series.
fn dashboard_and_alerts_match(prometheus: &Prometheus, endpoints: &[String]) {
    let declared: BTreeSet<String> = endpoints
        .iter()
        .flat_map(|at| families(&http_get(at, "/metrics").expect("scrape /metrics")))
        .collect();
    let read = |path: &str| std::fs::read_to_string(deploy_dir().join(path)).expect(path);
    let dashboard_text = read("grafana/taskq.json");
    let named = taskq_families_named_in(&(dashboard_text.clone() + &read("prometheus/alerts.yml")));
    let undeclared: Vec<_> = named.difference(&declared).collect();
    assert!(
        undeclared.is_empty(),
        "the dashboard or alerts use metrics no binary declares: {undeclared:?} (declared: {declared:?})"
    );
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard_text).expect("JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
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
    rules_evaluate_cleanly(prometheus, 8);
}

/// Waits (bounded) until Prometheus has loaded `count` alert rules and evaluated each without error.
fn rules_evaluate_cleanly(prometheus: &Prometheus, count: usize) {
    let deadline = std::time::Instant::now() + SCRAPED;
    loop {
        let groups = prometheus.api("/api/v1/rules").expect("rules")["groups"].clone();
        let rules: Vec<serde_json::Value> = groups
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let healthy = rules.iter().filter(|rule| rule["health"] == "ok").count();
        if rules.len() == count && healthy == count {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{healthy} of {} alert rules evaluate cleanly, {count} expected: {rules:#?}",
            rules.len()
        );
        std::thread::sleep(Duration::from_millis(250));
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
