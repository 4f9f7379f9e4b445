//! Unit tests of the typed CPU chunk runner: what a user's task sees and what the worker acts on.

use std::time::{Duration, Instant};

use taskq_common::envelope::decode_payload;
use taskq_common::job::JobId;
use taskq_common::payload::{ResultPayload, TaskPayload};
use taskq_common::task::{CpuTask, ItemContext, Task, TaskError};
use tokio_util::sync::CancellationToken;

use super::{ChunkRun, CpuChunk, TypedCpu};
use crate::kinds::output::fail_chunk;
use crate::pool::Items;
use crate::tasks::Square;

/// Fails its first `input` attempts with a transient error, panics on 99, and reports its index.
struct Flaky;

impl Task for Flaky {
    const NAME: &'static str = "flaky";
    type Input = u32;
    type Output = (u64, u32);
}

impl CpuTask for Flaky {
    fn run(&self, failing: u32, context: &ItemContext) -> Result<(u64, u32), TaskError> {
        match failing {
            99 => panic!("boom"),
            _ if context.attempt <= failing => Err(TaskError::transient(format!(
                "failure {} of {failing}",
                context.attempt
            ))),
            _ => Ok((context.index, context.attempt)),
        }
    }
}

fn run(attempt: u32) -> ChunkRun {
    ChunkRun {
        job: JobId::new(),
        attempt,
        deadline: Instant::now() + Duration::from_secs(60),
        time_limit: Duration::from_secs(60),
        cancel: CancellationToken::new(),
        items: Items::Sequential,
    }
}

fn lines(encoded: &[u8]) -> Vec<(u64, String, Result<String, String>)> {
    let result: ResultPayload = decode_payload(encoded).unwrap();
    let lines = result.lines().unwrap();
    lines
        .iter()
        .map(|line| {
            let outcome = line
                .outcome
                .map(|o| o.get().to_owned())
                .map_err(str::to_owned);
            (line.index, line.input.get().to_owned(), outcome)
        })
        .collect()
}

#[test]
fn items_run_in_order_exactly_and_an_input_of_the_wrong_type_fails_alone() {
    let payload = TaskPayload::of_json(10, &["3", "-9223372036854775808", "\"four\"", "4"]);
    let output = TypedCpu::new(Square).run(&payload, &run(1)).unwrap();
    assert_eq!(
        (output.items, output.failed, output.retry_reason),
        (4, 1, None)
    );
    let lines = lines(&output.payload);
    assert_eq!(lines[0], (10, "3".into(), Ok("9".into())));
    assert_eq!(
        lines[1].2,
        Ok("85070591730234615865843651857942052864".into())
    );
    let error = lines[2].2.clone().unwrap_err();
    assert!(
        error.contains("\"four\" is not a valid 'square' input"),
        "{error}"
    );
    assert_eq!(lines[3], (13, "4".into(), Ok("16".into())));
}

#[test]
fn a_transient_failure_or_a_panic_asks_for_a_retry_and_the_context_says_where_the_item_is() {
    let payload = TaskPayload::of(5, &[0u32, 2]).unwrap();
    let chunk = TypedCpu::new(Flaky);
    let first = chunk.run(&payload, &run(1)).unwrap();
    assert_eq!(first.failed, 1);
    assert_eq!(first.retry_reason.as_deref(), Some("failure 1 of 2"));
    let third = chunk.run(&payload, &run(3)).unwrap();
    assert_eq!((third.failed, third.retry_reason), (0, None));
    assert_eq!(lines(&third.payload)[1].2, Ok("[6,3]".into()));
    let panicked = chunk
        .run(&TaskPayload::of(0, &[99u32]).unwrap(), &run(1))
        .unwrap();
    assert_eq!(panicked.retry_reason.as_deref(), Some("panicked: boom"));
}

#[test]
fn a_cancelled_chunk_reports_nothing_and_items_past_the_deadline_fail_with_a_hint() {
    let payload = TaskPayload::of(0, &vec![1i64; 100]).unwrap();
    let cancelled = run(1);
    cancelled.cancel.cancel();
    assert!(TypedCpu::new(Square).run(&payload, &cancelled).is_err());
    let late = ChunkRun {
        deadline: Instant::now(),
        ..run(1)
    };
    let output = TypedCpu::new(Square).run(&payload, &late).unwrap();
    assert_eq!((output.failed, output.retry_reason), (100, None));
    assert!(lines(&output.payload)[0]
        .2
        .clone()
        .unwrap_err()
        .contains("--chunk-size"));
}

#[test]
fn spread_items_give_the_same_result_as_sequential_ones() {
    let payload = TaskPayload::of(0, &(1..=1000i64).collect::<Vec<_>>()).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let spread = ChunkRun {
        items: Items::Spread(std::sync::Arc::new(pool)),
        ..run(1)
    };
    let chunk = TypedCpu::new(Square);
    let (a, b) = (
        chunk.run(&payload, &run(1)).unwrap(),
        chunk.run(&payload, &spread).unwrap(),
    );
    assert_eq!(a.payload, b.payload);
}

#[test]
fn a_chunk_given_up_on_reports_every_item_failed_without_knowing_its_kind() {
    let task = taskq_common::envelope::encode(&TaskPayload::of_json(4, &["{\"a\":1}", "[2]"]));
    let output = fail_chunk(&task, "quarantined").unwrap();
    assert_eq!((output.items, output.failed), (2, 2));
    let lines = lines(&output.payload);
    assert_eq!(lines[1], (5, "[2]".into(), Err("quarantined".into())));
}
