//! Turning validated input into a job: its record and its task messages, all built before any connection
//! is opened, so bad input never leaves anything half-published.

use taskq_common::broker::Outgoing;
use taskq_common::envelope::{encode, TaskMessage, WIRE_VERSION};
use taskq_common::job::{now_ms, ChunkSize, JobId, JobSpec};
use taskq_common::tasks::{Download, Square, SumSquares, TaskKind, TaskPayload};
use taskq_common::topology::Topology;

use crate::cli::{SquareArgs, SubmitJob, SubmitOptions, SumSquaresArgs};
use crate::input::{parse_values, MAX_ITEMS};
use crate::urls::download_urls;

/// The largest n for sum-squares: its sum still fits in u128 (and the loop ends within hours).
pub const SUM_SQUARES_MAX_N: u64 = 1 << 40;

/// A job ready to publish.
#[derive(Debug)]
pub struct Prepared {
    /// What goes into Redis.
    pub spec: JobSpec,
    /// One message per chunk, in order.
    pub messages: Vec<Outgoing>,
}

/// Validates the user's input and builds the job. The error says what is wrong and what to do.
pub fn prepare(job: &SubmitJob, topology: &Topology) -> Result<Prepared, String> {
    match job {
        SubmitJob::SumSquares(args) => {
            let items = sum_squares_items(args)?;
            Ok(build::<SumSquares>(
                items,
                chunk_size(&args.options),
                topology,
            ))
        }
        SubmitJob::Square(args) => {
            let items = square_items(args)?;
            Ok(build::<Square>(items, chunk_size(&args.options), topology))
        }
        SubmitJob::Download(args) => {
            let urls = download_urls(args)?;
            Ok(build::<Download>(urls, chunk_size(&args.options), topology))
        }
    }
}

/// The submit options of any job.
pub fn options(job: &SubmitJob) -> &SubmitOptions {
    match job {
        SubmitJob::SumSquares(args) => &args.options,
        SubmitJob::Square(args) => &args.options,
        SubmitJob::Download(args) => &args.options,
    }
}

fn chunk_size(options: &SubmitOptions) -> Option<ChunkSize> {
    options.chunk_size
}

fn sum_squares_items(args: &SumSquaresArgs) -> Result<Vec<u64>, String> {
    let items = match (&args.values, args.from, args.count) {
        (Some(values), _, _) => parse_values::<u64>(values)?,
        (None, Some(from), Some(count)) => {
            if count == 0 || count > MAX_ITEMS {
                return Err(format!(
                    "--count {count} is out of range: use 1 to {MAX_ITEMS}"
                ));
            }
            let last = from
                .checked_add(count - 1)
                .ok_or_else(|| format!("--from {from} --count {count} goes past the largest n"))?;
            (from..=last).collect()
        }
        _ => return Err("give either --from N --count K, or --values".into()),
    };
    if let Some(too_big) = items.iter().find(|n| **n > SUM_SQUARES_MAX_N) {
        return Err(format!(
            "n = {too_big} is too large: sum-squares takes n up to {SUM_SQUARES_MAX_N} (2^40)"
        ));
    }
    Ok(items)
}

fn square_items(args: &SquareArgs) -> Result<Vec<i64>, String> {
    parse_values::<i64>(&args.values)
}

fn build<K: TaskKind>(
    items: Vec<K::Item>,
    chunk_size: Option<ChunkSize>,
    topology: &Topology,
) -> Prepared {
    let id = JobId::new();
    let per_chunk = chunk_size
        .or_else(|| ChunkSize::new(K::DEFAULT_CHUNK_SIZE))
        .map(ChunkSize::get)
        .unwrap_or(1);
    let total_items = items.len() as u64;
    let queue = topology.task_queue(K::LANE);
    let mut messages = Vec::with_capacity(items.len().div_ceil(per_chunk));
    let mut items = items.into_iter().peekable();
    let mut first_index = 0u64;
    while items.peek().is_some() {
        let chunk: Vec<K::Item> = items.by_ref().take(per_chunk).collect();
        let task_id = messages.len() as u32;
        let count = chunk.len() as u64;
        let task = TaskMessage {
            version: WIRE_VERSION,
            job_id: id,
            task_id,
            kind: K::NAME.to_owned(),
            attempt: 1,
            payload: encode(&TaskPayload {
                first_index,
                items: chunk,
            }),
        };
        messages.push(Outgoing {
            queue: queue.clone(),
            body: encode(&task),
            message_id: format!("{id}/{task_id}"),
            kind: K::NAME.to_owned(),
            ..Outgoing::default()
        });
        first_index += count;
    }
    let spec = JobSpec {
        id,
        kind: K::NAME.to_owned(),
        total_chunks: messages.len() as u32,
        total_items,
        submitted_at_ms: now_ms(),
    };
    Prepared { spec, messages }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use taskq_common::envelope::{decode_payload, decode_task};

    fn prepared(args: &[&str]) -> Result<Prepared, String> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        let Command::Submit { job } = cli.command else {
            panic!("not a submit")
        };
        prepare(&job, &Topology::new("t"))
    }

    #[test]
    fn square_is_chunked_like_pool_map() {
        let job = prepared(&[
            "producer",
            "submit",
            "square",
            "--values",
            "1..=14",
            "--chunk-size",
            "3",
        ])
        .unwrap();
        assert_eq!((job.spec.total_chunks, job.spec.total_items), (5, 14));
        let last = decode_task(&job.messages[4].body).unwrap();
        let payload: TaskPayload<i64> = decode_payload(&last.payload).unwrap();
        assert_eq!(
            (last.task_id, payload.first_index, payload.items),
            (4, 12, vec![13, 14])
        );
        assert_eq!(job.messages[4].queue, "t.tasks.cpu");
    }

    #[test]
    fn sum_squares_defaults_to_one_item_per_chunk() {
        let job = prepared(&[
            "producer",
            "submit",
            "sum-squares",
            "--from",
            "5000000",
            "--count",
            "20",
        ])
        .unwrap();
        assert_eq!((job.spec.total_chunks, job.spec.total_items), (20, 20));
    }

    #[test]
    fn downloads_go_to_the_io_queue_one_url_per_chunk() {
        let job = prepared(&[
            "producer",
            "submit",
            "download",
            "--url",
            "http://a.example/",
            "--url",
            "http://b.example/page",
        ])
        .unwrap();
        assert_eq!((job.spec.total_chunks, job.spec.total_items), (2, 2));
        assert_eq!(job.messages[1].queue, "t.tasks.io");
        let payload: TaskPayload<String> =
            decode_payload(&decode_task(&job.messages[1].body).unwrap().payload).unwrap();
        assert_eq!(
            (payload.first_index, payload.items),
            (1, vec!["http://b.example/page".to_owned()])
        );
        let error = prepared(&["producer", "submit", "download", "--url", "b@d"]).unwrap_err();
        assert!(error.contains("--url #1: 'b@d' is not a URL"), "{error}");
    }

    #[test]
    fn bad_input_is_refused_with_advice() {
        let error = prepared(&[
            "producer",
            "submit",
            "sum-squares",
            "--from",
            "1",
            "--count",
            "0",
        ])
        .unwrap_err();
        assert!(error.contains("use 1 to"), "{error}");
        let error = prepared(&[
            "producer",
            "submit",
            "sum-squares",
            "--values",
            "1,2199023255553",
        ])
        .unwrap_err();
        assert!(error.contains("too large"), "{error}");
    }
}
