//! Nothing lost, nothing counted twice, while processes really die: workers killed with SIGKILL at random
//! moments (serving a built-in kind, or a user's own: `wordcount-worker`), the consumer killed mid-job, a
//! worker stopped with SIGTERM, the producer interrupted while submitting. Randomness is seeded (`TASKQ_CHAOS_SEED` to replay); the seed is printed and in every
//! failure message. Every loop is bounded in count and time.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use taskq_common::job::{JobId, JobStatus};
use taskq_tests::{
    assert_every_item_once, assert_every_square_once, eventually, Deployment, WORDCOUNT_WORKER,
};

use crate::one_at_a_time;

fn seed() -> u64 {
    let seed = std::env::var("TASKQ_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("chaos seed: {seed} (replay with TASKQ_CHAOS_SEED={seed})");
    seed
}

/// What a stalled job of `kind` looks like: its state, the queues, and the dead letters' reasons.
async fn diagnose(deployment: &Deployment, job: JobId, kind: &str) -> String {
    let state = deployment.store().await.require_job(job).await;
    let topology = deployment.topology();
    let mut depths = Vec::new();
    for queue in [topology.task_queue(kind)]
        .into_iter()
        .chain(topology.queues())
    {
        depths.push(format!("{queue}: {}", deployment.queue_depth(&queue).await));
    }
    let dead = deployment.drain_dead_letters().await;
    format!("state: {state:?}\nready messages: {depths:?}\ndead letters: {dead:?}")
}

fn redeliveries(deployment: &Deployment, processes: usize) -> usize {
    (0..processes)
        .map(|i| deployment.log(i).matches("redelivered chunk").count())
        .sum()
}

#[tokio::test]
async fn workers_killed_at_random_lose_nothing_and_count_nothing_twice() {
    let _alone = one_at_a_time().await;
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut deployment = Deployment::new("killworkers");
    let mut workers = [deployment.start_worker(&[]), deployment.start_worker(&[])];
    deployment.start_consumer();
    let items = 100_000;
    let job = deployment.submit_squares(items, 10);
    let store = deployment.store().await;

    let started = Instant::now();
    let mut kills = 0;
    while kills < 30 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..400))).await;
        if store.require_job(job).await.unwrap().status.is_final() {
            break;
        }
        let victim = rng.random_range(0..workers.len());
        deployment.kill(workers[victim]);
        workers[victim] = deployment.restart(workers[victim]);
        kills += 1;
    }
    let waited = deployment.producer(&["wait", &job.to_string(), "--timeout", "90"]);
    if !waited.output.status.success() {
        panic!(
            "seed {seed}, {kills} kills: {}\n{}",
            waited.stderr(),
            diagnose(&deployment, job, "square").await
        );
    }
    let summary = waited.json();
    let context = format!("seed {seed}, {kills} kills\n{}", deployment.all_logs());
    assert!(
        kills >= 1,
        "the job ended before the first kill: make it longer ({context})"
    );
    assert_every_square_once(&summary, items, &context);
    eprintln!(
        "survived {kills} worker kills; {} chunks redelivered, {} duplicate results ignored, 0 lost, in {:.1} s",
        redeliveries(&deployment, workers.iter().max().unwrap() + 1),
        summary["duplicates_ignored"],
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn a_consumer_killed_mid_job_resumes_exactly() {
    let _alone = one_at_a_time().await;
    let mut deployment = Deployment::new("killconsumer");
    deployment.start_worker(&[]);
    deployment.start_worker(&[]);
    let mut consumer = deployment.start_consumer();
    let items = 100_000;
    let job = deployment.submit_squares(items, 10);
    let store = deployment.store().await;

    for fraction in [0.2, 0.6] {
        let target = (10_000.0 * fraction) as u32;
        eventually(
            "progress before the kill",
            Duration::from_secs(60),
            || async {
                let state = store.require_job(job).await.unwrap();
                (state.chunks_done >= target || state.status.is_final()).then_some(())
            },
        )
        .await;
        deployment.kill(consumer);
        tokio::time::sleep(Duration::from_millis(300)).await;
        consumer = deployment.restart(consumer);
    }
    let summary = deployment
        .producer(&["wait", &job.to_string(), "--timeout", "90"])
        .json();
    assert_every_square_once(&summary, items, &deployment.all_logs());
}

#[tokio::test]
async fn sigterm_finishes_running_chunks_returns_the_rest_and_exits_zero() {
    let _alone = one_at_a_time().await;
    let mut deployment = Deployment::new("sigterm");
    let worker = deployment.start_worker(&["--cpu-threads", "2"]);
    deployment.start_consumer();
    // Twelve chunks of one heavy item each (a fraction of a second apiece in the test profile).
    let n = 30_000_000u64;
    let values = vec![n.to_string(); 12].join(",");
    let run = deployment.producer(&["submit", "sum-squares", "--values", &values]);
    let job: JobId = run.stdout().trim().parse().expect("job id");
    let store = deployment.store().await;
    eventually("a first result", Duration::from_secs(60), || async {
        (store.require_job(job).await.unwrap().chunks_done >= 1).then_some(())
    })
    .await;

    let status = deployment.terminate(worker);
    assert!(
        status.success(),
        "worker exit status {status:?}\n{}",
        deployment.log(worker)
    );
    let done_at_stop = store.require_job(job).await.unwrap().chunks_done;
    assert!(
        done_at_stop < 12,
        "the job must still have work left when the worker stops"
    );
    let queue = deployment.topology().task_queue("sum-squares");
    assert_eq!(
        deployment.queue_depth(&queue).await,
        12 - done_at_stop,
        "unstarted chunks went back"
    );

    deployment.start_worker(&["--cpu-threads", "2"]);
    let summary = deployment
        .producer(&["wait", &job.to_string(), "--timeout", "90"])
        .json();
    let expected = worker::tasks::SumSquares::closed_form(n).to_string();
    for line in summary["results"].as_array().unwrap() {
        assert_eq!(line["output"].to_string(), expected);
    }
    assert_eq!(summary["items"].as_u64(), Some(12));
    assert_eq!(
        summary["duplicates_ignored"].as_u64(),
        Some(0),
        "a graceful stop redelivers nothing"
    );
}

#[tokio::test]
async fn ctrl_c_during_submit_fails_the_job_and_workers_drop_its_chunks() {
    let _alone = one_at_a_time().await;
    let mut deployment = Deployment::new("ctrlc");
    let store = deployment.store().await;
    // No worker yet: the submit must be told to enqueue anyway.
    let submit = deployment.producer_in_background(&[
        "submit",
        "square",
        "--allow-unserved",
        "--values",
        "1..=2000000",
        "--chunk-size",
        "1",
        "--wait",
    ]);
    let job = eventually("the job record", Duration::from_secs(60), || async {
        store.job_ids().await.unwrap().first().copied()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    submit.signal("-INT");
    let run = submit.finish(Duration::from_secs(30));
    assert_eq!(run.code(), Some(130), "{}", run.stderr());
    assert!(
        run.stderr().contains("interrupted while submitting"),
        "{}",
        run.stderr()
    );

    let state = store.require_job(job).await.unwrap();
    assert_eq!(state.status, JobStatus::Failed);
    assert!(state.error.unwrap().contains("interrupted"));
    let waited = deployment.producer(&["wait", &job.to_string()]);
    assert_eq!(waited.code(), Some(1), "a failed job does not wait forever");
    assert!(waited.stderr().contains("failed"), "{}", waited.stderr());

    // Whatever was published is dropped by workers, not computed.
    let queue = deployment.topology().task_queue("square");
    let published = deployment.queue_depth(&queue).await;
    assert!(
        published > 0 && published < 2_000_000,
        "a part was published: {published}"
    );
    deployment.start_worker(&[]);
    eventually("the queue to drain", Duration::from_secs(120), || async {
        (deployment.queue_depth(&queue).await == 0).then_some(())
    })
    .await;
    assert_eq!(
        store.require_job(job).await.unwrap().chunks_done,
        0,
        "no chunk of the failed job ran"
    );
}

#[tokio::test]
async fn job_state_wiped_from_redis_mid_job_fails_loudly_never_silently() {
    let _alone = one_at_a_time().await;
    let mut deployment = Deployment::new("wiped");
    deployment.start(2, &[]);
    let job = deployment.submit_squares(100_000, 10);
    let store = deployment.store().await;
    eventually("progress", Duration::from_secs(60), || async {
        (store.require_job(job).await.unwrap().chunks_done >= 100).then_some(())
    })
    .await;
    let waiting = deployment.producer_in_background(&["wait", &job.to_string(), "--timeout", "60"]);
    store.delete_everything().await.unwrap();

    let run = waiting.finish(Duration::from_secs(90));
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert!(
        run.stderr().contains("is unknown to Redis"),
        "says what happened: {}",
        run.stderr()
    );
    assert!(
        run.stdout().is_empty(),
        "no summary for a job that cannot be trusted: {}",
        run.stdout()
    );
    // The chunks and results still in flight are set aside with the reason, not counted anywhere.
    let dead = deployment.topology().dead_queue();
    eventually("dead letters", Duration::from_secs(60), || async {
        (deployment.queue_depth(&dead).await > 0).then_some(())
    })
    .await;
    let reasons = deployment.drain_dead_letters().await;
    assert!(
        reasons.iter().all(|r| r.contains("Redis does not know")),
        "{reasons:?}"
    );
    assert!(
        std::fs::read_dir(deployment.output_dir())
            .unwrap()
            .next()
            .is_none(),
        "no output written"
    );
}

/// The chaos test's wordcount texts: text `i` has `i % 17` words, separated by varied whitespace.
fn chaos_texts(count: u64) -> Vec<(String, u64)> {
    let separators = [" ", "  ", "\t", " \n "];
    (0..count)
        .map(|i| {
            let words = i % 17;
            let text: String = (0..words)
                .map(|k| format!("w{i}x{k}{}", separators[(k % 4) as usize]))
                .collect();
            (text, words)
        })
        .collect()
}

/// Asserts the output file holds each text's word count exactly once, in order, and the aggregate the
/// `wordcount` kind declares (total and longest) is exact.
fn assert_every_count_once(summary: &Value, texts: &[(String, u64)], context: &str) {
    assert_every_item_once(summary, texts.len() as u64, context, |i, line| {
        let line: Value = serde_json::from_str(line).expect("JSON line");
        let (input, words) = &texts[i];
        let expected = serde_json::json!({"index": i, "input": input, "output": words});
        assert_eq!(line, expected, "{context}: line {i}");
    });
    let total: u64 = texts.iter().map(|(_, words)| words).sum();
    let longest = texts.iter().map(|(_, words)| *words).max();
    assert_eq!(
        summary["aggregate"],
        serde_json::json!({"words": total, "longest": longest}),
        "{context}"
    );
}

#[tokio::test]
async fn the_chaos_test_is_still_exact_with_a_user_task() {
    let _alone = one_at_a_time().await;
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut deployment = Deployment::new("killwordcount");
    let mut workers = deployment.start_workers(WORDCOUNT_WORKER, 3, &[]);
    deployment.start_consumer();
    let texts = chaos_texts(100_000);
    let lines: String = texts
        .iter()
        .map(|(text, _)| format!("{}\n", serde_json::json!(text)))
        .collect();
    let file = deployment.write_file("texts.jsonl", &lines);
    let run = deployment.producer(&[
        "submit",
        "wordcount",
        "--items-file",
        file.to_str().expect("UTF-8 path"),
        "--chunk-size",
        "10",
    ]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let job: JobId = run.stdout().trim().parse().expect("job id");
    let store = deployment.store().await;

    let started = Instant::now();
    let mut kills = 0;
    while kills < 30 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..300))).await;
        if store.require_job(job).await.unwrap().status.is_final() {
            break;
        }
        let victim = rng.random_range(0..workers.len());
        deployment.kill(workers[victim]);
        workers[victim] = deployment.restart(workers[victim]);
        kills += 1;
    }
    let waited = deployment.producer(&["wait", &job.to_string(), "--timeout", "90"]);
    if !waited.output.status.success() {
        panic!(
            "seed {seed}, {kills} kills: {}\n{}",
            waited.stderr(),
            diagnose(&deployment, job, "wordcount").await
        );
    }
    let summary = waited.json();
    let context = format!("seed {seed}, {kills} kills\n{}", deployment.all_logs());
    assert!(
        kills >= 1,
        "the job ended before the first kill: make it longer ({context})"
    );
    assert_every_count_once(&summary, &texts, &context);
    eprintln!(
        "survived {kills} wordcount-worker kills; {} chunks redelivered, {} duplicate results ignored, 0 lost, in {:.1} s",
        redeliveries(&deployment, workers.iter().max().unwrap() + 1),
        summary["duplicates_ignored"],
        started.elapsed().as_secs_f64()
    );
}
