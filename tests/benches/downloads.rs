//! The seed's I/O-bound workload: 160 URLs alternating between two fixture sites that each answer after
//! 100 ms, downloaded by 2 workers. Wall time against the ideal, 100 ms x ceil(160 / total concurrency),
//! and against downloading them one after another (measured on a sample with the worker's own client).

use std::time::{Duration, Instant};

use taskq_tests::fixture::FixtureServer;
use taskq_tests::Deployment;

use crate::{Row, WORKERS};

const URLS: usize = 160;
const LATENCY_MS: u64 = 100;
/// URLs fetched one after another to measure the sequential cost per URL.
const SEQUENTIAL_SAMPLE: usize = 20;

pub fn seed_downloads(rows: &mut Vec<Row>) {
    let sites = [FixtureServer::start(), FixtureServer::start()];
    let urls: Vec<String> = (0..URLS)
        .map(|i| sites[i % 2].url(&format!("/page/{i}?latency_ms={LATENCY_MS}&size=16384")))
        .collect();
    let sequential = sequential_per_url(&urls[..SEQUENTIAL_SAMPLE]);
    let sequential_total = sequential * URLS as u32;
    for io_concurrency in [64usize, 8] {
        let total = WORKERS * io_concurrency;
        let ideal = Duration::from_millis(LATENCY_MS * URLS.div_ceil(total) as u64);
        let mut deployment = Deployment::new("bench-dl");
        deployment.start(WORKERS, &["--io-concurrency", &io_concurrency.to_string()]);
        std::thread::sleep(Duration::from_secs(2));
        let file = deployment.dir.path().join("sites.txt");
        std::fs::write(&file, urls.join("\n")).expect("urls file");
        let args = [
            "submit",
            "download",
            "--urls-file",
            file.to_str().unwrap(),
            "--wait",
        ];
        let runs: Vec<(Duration, Duration)> = (0..3)
            .map(|_| {
                let run = deployment.producer(&args);
                let summary = run.json();
                assert_eq!(
                    summary["aggregate"]["ok"].as_u64(),
                    Some(URLS as u64),
                    "{summary}"
                );
                let job = Duration::from_millis(summary["elapsed_ms"].as_u64().unwrap_or(0));
                (run.elapsed, job)
            })
            .collect();
        let shown = runs
            .iter()
            .map(|(wall, job)| {
                format!(
                    "{:.3} s ({:.2}x; job {:.3} s, {:.2}x)",
                    wall.as_secs_f64(),
                    ratio(*wall, ideal),
                    job.as_secs_f64(),
                    ratio(*job, ideal)
                )
            })
            .collect::<Vec<_>>()
            .join(" / ");
        let best = runs.iter().map(|(wall, _)| *wall).min().unwrap_or_default();
        rows.push(Row {
            scenario: format!(
                "seed downloads: {URLS} URLs, 2 sites x {LATENCY_MS} ms, {WORKERS} workers x --io-concurrency {io_concurrency}, submit to summary (3 runs)"
            ),
            figure: format!(
                "{shown}; ideal {:.3} s; one after another {:.1} s ({:.0}x the best run)",
                ideal.as_secs_f64(),
                sequential_total.as_secs_f64(),
                ratio(sequential_total, best)
            ),
            target: "<= 1.5x ideal".into(),
        });
    }
}

/// Mean time per URL fetched one after another with the worker's HTTP client (connections reused).
fn sequential_per_url(urls: &[String]) -> Duration {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = worker::http::HttpClient::new(worker::http::HttpSettings {
        timeout: Duration::from_secs(10),
        max_body_bytes: 1 << 20,
        max_redirects: 0,
        retries: 0,
        rules: Default::default(),
    })
    .expect("client");
    runtime.block_on(async {
        let started = Instant::now();
        for url in urls {
            client.fetch(url).await.expect("sequential download");
        }
        started.elapsed() / urls.len() as u32
    })
}

fn ratio(measured: Duration, ideal: Duration) -> f64 {
    measured.as_secs_f64() / ideal.as_secs_f64()
}
