//! `producer cancel` stops a running CPU-bound broadcast job promptly: rayon work cannot be interrupted,
//! so each running chunk stops at its next item boundary, and every worker answers once its chunks of the
//! job have stopped. Measured: how long after the command the last item finished. Serial, because it is
//! a timing: 3 workers on the machine's cores to themselves.

use std::collections::BTreeSet;
use std::time::Duration;

use taskq_common::job::{now_ms, JobId};
use taskq_tests::{eventually, output_lines, Deployment};
use worker::tasks::SumSquares;

use crate::one_at_a_time;

/// Items in the job; each takes tens of milliseconds, so the job would take over a minute.
const ITEMS: u64 = 3000;
/// Items per chunk: a chunk runs for seconds, so cancelling must stop chunks in the middle.
const CHUNK: &str = "50";
/// Longest accepted time from the command to the last item finishing.
const PROMPT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn cancel_stops_a_running_cpu_bound_job_promptly() {
    let _alone = one_at_a_time().await;
    let mut deployment = Deployment::new("cancel");
    deployment.start_registered_workers(&["w1", "w2", "w3"], &["--cpu-threads", "1"]);
    deployment.start_consumer();
    let n = 3_000_000u64;
    let values = vec![n.to_string(); ITEMS as usize].join(",");
    let run = deployment.producer(&[
        "broadcast",
        "sum-squares",
        "--values",
        &values,
        "--chunk-size",
        CHUNK,
    ]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let job: JobId = run.stdout().trim().parse().expect("job id");
    let store = deployment.store().await;
    let started = std::time::Instant::now();
    eventually(
        "a first finished chunk",
        Duration::from_secs(60),
        || async { (store.require_job(job).await.unwrap().chunks_done >= 1).then_some(()) },
    )
    .await;
    let per_item = started.elapsed() / 50;

    let commanded_at = now_ms();
    let cancel = deployment.producer(&["cancel", &job.to_string()]);
    let report = cancel.json();
    let answers = report["answered"].as_array().expect("answers");
    assert_eq!(answers.len(), 3, "{report}");
    let mut stopped_chunks = 0;
    let mut last_stop = 0;
    for answer in answers {
        assert_eq!(answer["reply"], "cancelled", "{report}");
        assert_eq!(answer["still_running"].as_u64(), Some(0), "{report}");
        stopped_chunks += answer["stopped_chunks"].as_u64().unwrap();
        last_stop = last_stop.max(answer["stopped_at_ms"].as_u64().unwrap());
    }
    let latency = Duration::from_millis(last_stop.saturating_sub(commanded_at));
    let done_at_cancel = store.require_job(job).await.unwrap().items_done;
    eprintln!(
        "cancel: last item finished {latency:?} after the command; {stopped_chunks} running chunks stopped mid-way; \
         {done_at_cancel} of {ITEMS} items done (about {per_item:?} per item: the rest would take {:?} more)",
        per_item * (ITEMS - done_at_cancel) as u32 / 3
    );
    assert!(
        stopped_chunks >= 1,
        "chunks were running when the cancel came: {report}"
    );
    assert!(
        latency < PROMPT,
        "the last item finished {latency:?} after the command"
    );
    assert!(
        done_at_cancel < ITEMS / 4,
        "the job was far from done: {done_at_cancel}"
    );

    let waited = deployment.producer(&["wait", &job.to_string(), "--timeout", "60"]);
    assert_eq!(waited.code(), Some(1), "{}", waited.stderr());
    let summary = waited.stdout_json();
    assert_eq!(summary["status"], "cancelled", "{summary}");
    let lines = output_lines(&summary);
    assert_eq!(summary["items"].as_u64(), Some(lines.len() as u64));
    assert!(
        lines.len() >= 50 && (lines.len() as u64) < ITEMS,
        "{summary}"
    );
    let expected = SumSquares::closed_form(n).to_string();
    let mut seen = BTreeSet::new();
    for line in &lines {
        assert!(
            seen.insert(line["index"].as_u64().unwrap()),
            "an item twice: {line}"
        );
        assert_eq!(line["output"].to_string(), expected, "{line}");
    }
    assert_eq!(
        seen.len() % 50,
        0,
        "only whole chunks: a cancelled chunk reports nothing"
    );
}
