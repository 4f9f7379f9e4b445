//! Issue #14's figure: what metrics cost. The chunk-size-1 scenario (20,000 one-item chunks, the most
//! events per second a worker sees) on two deployments side by side, one whose workers and consumer serve
//! `--metrics-addr` and are scraped every second as Prometheus would, one without; runs alternate (which
//! goes first alternates too) so the machine's drift falls on both alike.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskq_tests::prometheus::{http_get, metrics_address};
use taskq_tests::{Deployment, WORKER};

use crate::{Row, WORKERS};

/// Runs of each deployment.
const RUNS: usize = 5;
/// How often the scraper reads every endpoint (Prometheus's interval in the scrape test).
const SCRAPE_EVERY: Duration = Duration::from_secs(1);
/// The scraper stops by itself after this long, whatever happens to the benchmark.
const SCRAPE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// The chunk-size-1 job with and without metrics, alternating; the ratio of the medians.
pub fn with_and_without(rows: &mut Vec<Row>) {
    let mut plain = Deployment::new("bench-plain");
    plain.start(WORKERS, &[]);
    let mut metered = Deployment::new("bench-metrics");
    let on = ["--metrics-addr", "127.0.0.1:0"];
    let mut endpoints = metered.start_workers(WORKER, WORKERS, &on);
    endpoints.push(metered.start_consumer_with(&on));
    let addresses: Vec<String> = endpoints
        .iter()
        .map(|&index| metrics_address(&metered, index))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = std::thread::spawn({
        let stop = stop.clone();
        move || scrape_until(&addresses, &stop)
    });
    std::thread::sleep(Duration::from_secs(2));

    let mut with = Vec::new();
    let mut without = Vec::new();
    for round in 0..RUNS {
        let mut order = [(&metered, &mut with), (&plain, &mut without)];
        if round % 2 == 1 {
            order.reverse();
        }
        for (deployment, figures) in order {
            figures.push(one_item_chunks(deployment));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let scrapes = scraper.join().expect("scraper");

    let (with_median, without_median) = (median(&with), median(&without));
    let each = |figures: &[f64]| {
        figures
            .iter()
            .map(|f| format!("{f:.0}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    rows.push(Row {
        scenario: format!(
            "metrics cost: square 20,000 items, --chunk-size 1, {RUNS} runs each alternating, \
             with --metrics-addr (scraped every {}s) against without",
            SCRAPE_EVERY.as_secs()
        ),
        figure: format!(
            "with: median {with_median:.0} items/s ({}); without: median {without_median:.0} \
             items/s ({}); with/without = {:.3} ({:+.1}% cost); {scrapes} scrapes",
            each(&with),
            each(&without),
            with_median / without_median,
            (1.0 - with_median / without_median) * 100.0
        ),
        target: "< 3% cost".into(),
    });
}

/// Items per second of one chunk-size-1 job, submit to summary.
fn one_item_chunks(deployment: &Deployment) -> f64 {
    let run = deployment.producer(&[
        "submit",
        "square",
        "--values",
        "1..=20000",
        "--chunk-size",
        "1",
        "--wait",
    ]);
    let items = run.json()["items"].as_u64().unwrap_or(0) as f64;
    items / run.elapsed.as_secs_f64()
}

/// Reads every endpoint's `/metrics` each [`SCRAPE_EVERY`] until `stop` (or [`SCRAPE_LIMIT`]); returns
/// the number of successful scrapes. A failed scrape fails the benchmark: its figure would be wrong.
fn scrape_until(addresses: &[String], stop: &AtomicBool) -> usize {
    let started = Instant::now();
    let mut scrapes = 0;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < SCRAPE_LIMIT {
        for address in addresses {
            let body = http_get(address, "/metrics").unwrap_or_else(|e| panic!("scrape: {e}"));
            assert!(body.contains("taskq_"), "no metrics from {address}");
            scrapes += 1;
        }
        std::thread::sleep(SCRAPE_EVERY);
    }
    scrapes
}

fn median(figures: &[f64]) -> f64 {
    let mut sorted = figures.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
