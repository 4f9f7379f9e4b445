//! Issue #11's figures: what bringing your own work costs. A warm client's round trip for a one-item job
//! (beside the CLI's), programs served with `--exec-lines` and `--exec`, and a user's task against the
//! same built-in kind through the same path. Every figure is measured in this run, side by side.

use std::time::{Duration, Instant};

use producer::{Client, Items, JobInput, JobOptions};
use taskq_tests::{amqp_url, redis_url, Deployment, TEST_WORKER};
use tokio_util::sync::CancellationToken;

use crate::{Row, WORKERS};

/// Round trips measured after the warm-up.
const ROUND_TRIPS: usize = 300;
/// Round trips before measuring (connections, declared queue, caches).
const WARM_UP: usize = 20;
/// CLI round trips, each a process start.
const CLI_ROUND_TRIPS: usize = 30;

/// Submit-to-summary of a one-item `square` job, from a warm client and from the CLI, idle workers.
pub fn round_trips(deployment: &Deployment, rows: &mut Vec<Row>) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mut warm = runtime.block_on(async {
        let client = Client::connect(&amqp_url(), &redis_url(), &deployment.prefix)
            .await
            .expect("client");
        let mut times = Vec::with_capacity(ROUND_TRIPS);
        for round in 0..WARM_UP + ROUND_TRIPS {
            let started = Instant::now();
            let job = client
                .submit::<worker::tasks::Square>(&[7])
                .await
                .expect("submit");
            let state = job.wait().await.expect("wait");
            assert_eq!(state.items_done, 1, "the job ran");
            if round >= WARM_UP {
                times.push(started.elapsed());
            }
        }
        client.close().await;
        times
    });
    let mut cli: Vec<Duration> = (0..CLI_ROUND_TRIPS)
        .map(|_| {
            let run = deployment.producer(&["submit", "square", "--values", "7", "--wait"]);
            assert_eq!(run.json()["items"], 1, "{}", run.stderr());
            run.elapsed
        })
        .collect();
    rows.push(Row {
        scenario: format!("one-item job, warm client (Client::submit + wait), {ROUND_TRIPS} round trips"),
        figure: format!(
            "p50 {} ms, p99 {} ms (CLI `submit --wait`, {CLI_ROUND_TRIPS} runs: p50 {} ms, p99 {} ms; Celery 5.7 prefork here: p50 2.8, p99 7.7)",
            millis(percentile(&mut warm, 50)),
            millis(percentile(&mut warm, 99)),
            millis(percentile(&mut cli, 50)),
            millis(percentile(&mut cli, 99)),
        ),
        target: "p50 <= 1.5 ms".into(),
    });
}

/// A trivial Python program served with `--exec-lines` (100,000 items, chunks of 1,000) and with
/// `--exec` (2,000 items, a process each), 2 workers.
pub fn programs(rows: &mut Vec<Row>) {
    let mut deployment = Deployment::new("bench-exec");
    let echo_lines = deployment.write_file(
        "echo_lines.py",
        "import json, sys\nfor line in sys.stdin:\n    print(json.dumps(json.loads(line)), flush=True)\n",
    );
    let echo_once = deployment.write_file(
        "echo_once.py",
        "import json, sys\nprint(json.dumps(json.load(sys.stdin)))\n",
    );
    let lines = format!("echo-lines=python3 {}", echo_lines.display());
    let once = format!("echo-once=python3 {}", echo_once.display());
    deployment.start(WORKERS, &["--exec-lines", &lines, "--exec", &once]);
    let many = items_file(&deployment, "many.jsonl", 100_000);
    let few = items_file(&deployment, "few.jsonl", 2_000);
    let lines_rate = median_rate(
        &deployment,
        &["echo-lines", "--items-file", &many, "--chunk-size", "1000"],
        3,
    );
    rows.push(Row {
        scenario: "--exec-lines, trivial Python (json.loads/dumps per line), 100,000 items, chunks of 1,000, 2 workers, 3 runs".into(),
        figure: format!("median {lines_rate:.0} items/s ({:.1}x target)", lines_rate / 50_000.0),
        target: ">= 50,000 items/s".into(),
    });
    let once_rate = median_rate(
        &deployment,
        &["echo-once", "--items-file", &few, "--chunk-size", "10"],
        1,
    );
    rows.push(Row {
        scenario:
            "--exec, the same program started once per item, 2,000 items, chunks of 10, 2 workers"
                .into(),
        figure: format!("{once_rate:.0} items/s"),
        target: "-".into(),
    });
}

/// A user's `square` (test-worker's `user-square`) against the built-in one, 1,000,000 items each through
/// the same client path, runs alternating, 2 workers.
pub fn user_task_against_builtin(rows: &mut Vec<Row>) {
    let mut deployment = Deployment::new("bench-user");
    deployment.start_workers(TEST_WORKER, WORKERS, &[]);
    deployment.start_consumer();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (mut builtin, mut user) = runtime.block_on(async {
        let client = Client::connect(&amqp_url(), &redis_url(), &deployment.prefix)
            .await
            .expect("client");
        let (mut builtin, mut user) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            builtin.push(client_rate(&client, "square").await);
            user.push(client_rate(&client, "user-square").await);
        }
        client.close().await;
        (builtin, user)
    });
    let (builtin_median, user_median) = (median(&mut builtin), median(&mut user));
    rows.push(Row {
        scenario: "a user's task against the same built-in kind: square vs user-square, 1,000,000 items, client submit, alternating, 3 runs each".into(),
        figure: format!(
            "median {builtin_median:.0} vs {user_median:.0} items/s (user/built-in {:.2}); runs: {} vs {}",
            user_median / builtin_median,
            list(&builtin),
            list(&user)
        ),
        target: "same within noise".into(),
    });
}

/// Items/s of one million integers of `kind`, submit to completed state.
async fn client_rate(client: &Client, kind: &str) -> f64 {
    let input = JobInput {
        kind: kind.into(),
        items: Items::Integers((1..=1_000_000).collect()),
    };
    let started = Instant::now();
    let never = CancellationToken::new();
    let job = client
        .submit_input(&input, &JobOptions::default(), &never)
        .await
        .expect("submit");
    let state = job.wait().await.expect("wait");
    assert_eq!(state.items_done, 1_000_000);
    1_000_000.0 / started.elapsed().as_secs_f64()
}

/// Median items/s over `runs` runs of `producer submit ARGS --wait`.
fn median_rate(deployment: &Deployment, args: &[&str], runs: usize) -> f64 {
    let mut rates: Vec<f64> = (0..runs)
        .map(|_| {
            let mut full = vec!["submit"];
            full.extend_from_slice(args);
            full.push("--wait");
            let run = deployment.producer(&full);
            let summary = run.json();
            assert_eq!(summary["failed"], 0, "{summary}");
            summary["items"].as_f64().unwrap_or(0.0) / run.elapsed.as_secs_f64()
        })
        .collect();
    median(&mut rates)
}

/// A JSON-lines file of `count` small objects; returns its path.
fn items_file(deployment: &Deployment, name: &str, count: usize) -> String {
    let lines: String = (0..count)
        .map(|i| format!("{{\"id\":{i},\"text\":\"item {i}\"}}\n"))
        .collect();
    deployment.write_file(name, &lines).display().to_string()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(times: &mut [Duration], percent: usize) -> Duration {
    times.sort();
    let rank = (times.len() * percent).div_ceil(100).max(1);
    times[rank - 1]
}

fn millis(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1e3)
}

fn list(rates: &[f64]) -> String {
    rates
        .iter()
        .map(|rate| format!("{rate:.0}"))
        .collect::<Vec<_>>()
        .join("/")
}
