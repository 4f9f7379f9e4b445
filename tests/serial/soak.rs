//! Soak: round after round, the consumer is killed (SIGKILL) and started again, workers are killed and
//! started again, and about 2 s later the broker restarts, all under jobs that keep running. After every
//! round the broker itself must report the consumer back on the results queue, and each worker on the
//! task queue, within [`BACK_WITHIN`]; every job must end exact. The time the consumer took to be back is
//! printed per round, with the maximum and the median.
//!
//! Needs the right to restart the broker (see [`taskq_tests::rabbitmq`]: another node than CI's with
//! `TASKQ_TEST_RABBITMQ_NODE` and `TASKQ_TEST_AMQP_URL`). `TASKQ_SOAK_ROUNDS` changes the number of
//! rounds (20); randomness is seeded (`TASKQ_CHAOS_SEED` to replay).

use std::time::{Duration, Instant};

use rand::Rng;
use taskq_common::job::JobId;
use taskq_common::store::JobStore;
use taskq_tests::chaos::{assert_every_square_once, kill_and_restart_one, seeded};
use taskq_tests::rabbitmq::{restart_broker, until_consumed};
use taskq_tests::{Deployment, WORKER};

use crate::one_at_a_time;

/// How soon after the broker is up again every process must consume again.
const BACK_WITHIN: Duration = Duration::from_secs(30);
/// Items of each job, in chunks of [`CHUNK`]: 10,000 chunks, several seconds of work even without
/// outages.
const ITEMS: u64 = 100_000;
/// Jobs kept unfinished at the start of a round (the later one waits behind the earlier in the queue);
/// one more is submitted just before the broker restart if both have ended by then.
const IN_FLIGHT: usize = 2;
/// Items per chunk: small, so results flow all the time.
const CHUNK: u32 = 10;
/// Workers.
const WORKERS: usize = 2;

fn rounds() -> u32 {
    std::env::var("TASKQ_SOAK_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(20)
}

/// The jobs submitted so far, the last [`IN_FLIGHT`] perhaps still running.
struct Jobs {
    store: JobStore,
    submitted: Vec<JobId>,
}

impl Jobs {
    /// How many of the jobs submitted still run.
    async fn running(&self) -> usize {
        let mut running = 0;
        for &job in self.submitted.iter().rev().take(IN_FLIGHT) {
            let state = self.store.require_job(job).await.expect("job state");
            running += usize::from(!state.status.is_final());
        }
        running
    }

    /// Submits jobs until at least `wanted` run.
    async fn keep_running(&mut self, deployment: &Deployment, wanted: usize) {
        for _ in self.running().await..wanted {
            let job = deployment.submit_squares(ITEMS, CHUNK);
            self.submitted.push(job);
        }
    }
}

#[tokio::test]
async fn consumer_workers_and_broker_restarted_twenty_times_come_back_every_time() {
    let _alone = one_at_a_time().await;
    let (seed, mut rng) = seeded();
    let started = Instant::now();
    let mut deployment = Deployment::new("soak");
    let mut workers = deployment.start_workers(WORKER, WORKERS, &[]);
    let mut consumer = deployment.start_consumer();
    let topology = deployment.topology();
    let (results, tasks) = (topology.results_queue(), topology.task_queue("square"));
    let mut jobs = Jobs {
        store: deployment.store().await,
        submitted: Vec::new(),
    };
    let mut back = Vec::new();
    for round in 1..=rounds() {
        let context = |what: String| format!("seed {seed}, round {round}: {what}");
        // Every worker is back in the registry too, so the producer takes a job of its kind.
        deployment.wait_until_registered(&workers);
        jobs.keep_running(&deployment, IN_FLIGHT).await;
        deployment.kill(consumer);
        consumer = deployment.restart(consumer);
        // About 2 s until the broker restarts, with a worker killed and started again now and then.
        let broker_restarts_at =
            Instant::now() + Duration::from_millis(rng.random_range(1500..2500));
        while Instant::now() < broker_restarts_at {
            tokio::time::sleep(Duration::from_millis(rng.random_range(300..900))).await;
            kill_and_restart_one(&mut deployment, &mut workers, &mut rng);
        }
        // On a fast machine both jobs may have ended by now: the broker restarts under a running job.
        jobs.keep_running(&deployment, 1).await;
        let restarting = Instant::now();
        restart_broker(Duration::from_millis(500)).await;
        let restart_took = restarting.elapsed();
        let consumer_back = until_consumed(&results, 1, BACK_WITHIN).await;
        let workers_back = until_consumed(&tasks, WORKERS as u32, BACK_WITHIN).await;
        for outcome in [&consumer_back, &workers_back] {
            if let Err(why) = outcome {
                panic!("{}\n{}", context(why.clone()), deployment.all_logs());
            }
        }
        let took = consumer_back.expect("checked above");
        eprintln!(
            "round {round}: broker restarted in {:.1} s, consumer back {:.2} s after it ({:.0} s in all)",
            restart_took.as_secs_f64(),
            took.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        back.push(took);
    }
    for (n, &job) in jobs.submitted.iter().enumerate() {
        let waited = deployment.producer(&["wait", &job.to_string(), "--timeout", "90"]);
        let context = format!("seed {seed}, job {n} of {}", jobs.submitted.len());
        assert!(
            waited.output.status.success(),
            "{context}: {}\n{}",
            waited.stderr(),
            deployment.all_logs()
        );
        assert_every_square_once(&waited.json(), ITEMS, &context);
    }
    back.sort();
    eprintln!(
        "soak: {} rounds, {} jobs exact; consumer back after the broker in {:.2} s at most, {:.2} s \
         median; {:.0} s in all",
        back.len(),
        jobs.submitted.len(),
        back.last().map_or(0.0, Duration::as_secs_f64),
        back[back.len() / 2].as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
