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
    let (mut warm, mut submits) = runtime.block_on(async {
        let client = Client::connect(&amqp_url(), &redis_url(), &deployment.prefix)
            .await
            .expect("client");
        let mut times = Vec::with_capacity(ROUND_TRIPS);
        let mut submits = Vec::with_capacity(ROUND_TRIPS);
        for round in 0..WARM_UP + ROUND_TRIPS {
            let started = Instant::now();
            let job = client
                .submit::<worker::tasks::Square>(&[7])
                .await
                .expect("submit");
            let submitted = started.elapsed();
            let state = job.wait().await.expect("wait");
            assert_eq!(state.items_done, 1, "the job ran");
            if round >= WARM_UP {
                times.push(started.elapsed());
                submits.push(submitted);
            }
        }
        client.close().await;
        (times, submits)
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
            "p50 {} ms, p99 {} ms (of which submit returned: p50 {} ms, p99 {} ms) (CLI `submit --wait`, {CLI_ROUND_TRIPS} runs: p50 {} ms, p99 {} ms; Celery 5.7 prefork here: p50 2.8, p99 7.7)",
            millis(percentile(&mut warm, 50)),
            millis(percentile(&mut warm, 99)),
            millis(percentile(&mut submits, 50)),
            millis(percentile(&mut submits, 99)),
            millis(percentile(&mut cli, 50)),
            millis(percentile(&mut cli, 99)),
        ),
        target: "p50 <= 1.5 ms".into(),
    });
}

/// A trivial Python program served with `--exec-lines` (100,000 items, chunks of 1,000) and with
/// `--exec` (a process per item), 2 workers; `cat` with `--exec` beside it, which is the cost of a process
/// start without Python's.
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
    deployment.start(
        WORKERS,
        &[
            "--exec-lines",
            &lines,
            "--exec",
            &once,
            "--exec",
            "echo-cat=cat",
        ],
    );
    let many = items_file(&deployment, "many.jsonl", 100_000);
    let few = items_file(&deployment, "few.jsonl", 2_000);
    let fewer = items_file(&deployment, "fewer.jsonl", 500);
    let lines_runs = rates(
        &deployment,
        &["echo-lines", "--items-file", &many, "--chunk-size", "1000"],
        3,
    );
    rows.push(Row {
        scenario: "--exec-lines, trivial Python (json.loads/dumps per line), 100,000 items, chunks of 1,000, 2 workers, 3 runs".into(),
        figure: match &lines_runs {
            Ok(runs) => {
                let median = median(&mut runs.clone());
                format!(
                    "median {median:.0} items/s ({:.1}x target); runs: {}",
                    median / 50_000.0,
                    list(runs)
                )
            }
            Err(why) => why.clone(),
        },
        target: ">= 50,000 items/s".into(),
    });
    // A Python start is tens of milliseconds of CPU here, so these stay small to bound the time.
    let ten = rates(
        &deployment,
        &["echo-once", "--items-file", &few, "--chunk-size", "10"],
        1,
    );
    let one = rates(&deployment, &["echo-once", "--items-file", &fewer], 1);
    let cat = rates(
        &deployment,
        &["echo-cat", "--items-file", &few, "--chunk-size", "10"],
        1,
    );
    rows.push(Row {
        scenario: "--exec, a process per item, 2 workers, one run each: the same Python program; `cat`"
            .into(),
        figure: format!(
            "Python: 2,000 items in chunks of 10: {}; 500 items at the default chunk size (1): {}; `cat`, 2,000 items in chunks of 10: {}",
            single(&ten),
            single(&one),
            single(&cat)
        ),
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
        // Which goes first alternates too, so neither always runs on the other's heels.
        for round in 0..3 {
            if round % 2 == 0 {
                builtin.push(client_rate(&client, "square").await);
                user.push(client_rate(&client, "user-square").await);
            } else {
                user.push(client_rate(&client, "user-square").await);
                builtin.push(client_rate(&client, "square").await);
            }
        }
        client.close().await;
        (builtin, user)
    });
    let (builtin_median, user_median) = (median(&mut builtin), median(&mut user));
    rows.push(Row {
        scenario: "a user's task against the same built-in kind: square vs user-square, 1,000,000 items, client submit, alternating (A B, B A, A B), 3 runs each".into(),
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

/// Items/s of each of `runs` runs of `producer submit ARGS --wait`, or why there are none: a run that
/// fails or takes over 5 minutes ends the scenario, not the benchmark.
fn rates(deployment: &Deployment, args: &[&str], runs: usize) -> Result<Vec<f64>, String> {
    let mut full = vec!["submit"];
    full.extend_from_slice(args);
    full.push("--wait");
    (0..runs)
        .map(|_| {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                deployment
                    .producer_in_background(&full)
                    .finish(Duration::from_secs(300))
            }))
            .map_err(|_| "did not finish within 300 s".to_owned())?;
            let summary = run.json();
            if summary["failed"] != 0 {
                return Err(format!("items failed: {summary}"));
            }
            Ok(summary["items"].as_f64().unwrap_or(0.0) / run.elapsed.as_secs_f64())
        })
        .collect()
}

/// The one run of [`rates`], as items/s or why not.
fn single(rates: &Result<Vec<f64>, String>) -> String {
    match rates {
        Ok(runs) => format!("{:.0} items/s", runs[0]),
        Err(why) => why.clone(),
    }
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
