//! From what the user typed to a job: its items validated before any connection (so bad input never
//! leaves anything half-published), then its record and task messages once the kind's chunk size is
//! known.

use serde::Serialize;
use taskq_common::broker::Outgoing;
use taskq_common::envelope::TaskMessage;
use taskq_common::job::{now_ms, JobId, JobSpec};
use taskq_common::payload::TaskPayload;
use taskq_common::stages::{spec, Plan};
use taskq_common::topology::Topology;

use crate::cli::{JsonJobArgs, SquareArgs, SubmitJob, SubmitOptions, SumSquaresArgs};
use crate::input::{parse_values, MAX_ITEMS};
use crate::items::{self, JsonItem};
use crate::urls::download_urls;

/// The largest n for sum-squares: its sum still fits in u128 (and the loop ends within hours).
pub const SUM_SQUARES_MAX_N: u64 = 1 << 40;

/// A job ready to publish.
#[derive(Debug)]
pub struct Prepared {
    /// What goes into Redis.
    pub spec: JobSpec,
    /// One message per chunk (of the first stage), in order.
    pub messages: Vec<Outgoing>,
    /// The job's stages, when it has several.
    pub plan: Option<Plan>,
}

impl Prepared {
    /// Makes the job one of several stages: its record names the last stage's kind (whose outputs the
    /// job's output holds) and the results the consumer waits for.
    pub fn with_plan(mut self, plan: Plan) -> Self {
        let source_chunks = self.messages.len() as u32;
        self.spec.kind = plan.last_kind().to_owned();
        self.spec.total_chunks = plan.results(source_chunks);
        self.plan = Some(plan);
        self
    }
}

/// The stages `options` ask for (`--then` or `--spec`) for a job of `kind`; `None` for one stage.
pub fn plan(kind: &str, options: &SubmitOptions) -> Result<Option<Plan>, String> {
    if let Some(path) = &options.spec {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the job spec {}: {e}", path.display()))?;
        let plan = spec::parse(&path.display().to_string(), &text)?;
        let first = &plan.stages()[0].kind;
        if first != kind {
            return Err(format!(
                "the spec's first stage runs '{first}', but the items were given for '{kind}': submit them as `producer submit {first} ...`"
            ));
        }
        return Ok(Some(plan));
    }
    if options.then.is_empty() {
        return Ok(None);
    }
    Plan::chain(kind, &options.then).map(Some)
}

/// A job's kind and validated items.
#[derive(Debug)]
pub struct JobInput {
    /// The kind's name.
    pub kind: String,
    /// The items.
    pub items: Items,
}

/// Validated items, typed where the producer knows the kind, JSON otherwise.
#[derive(Debug)]
pub enum Items {
    /// Non-negative integers (`sum-squares`).
    Counts(Vec<u64>),
    /// Integers (`square`).
    Integers(Vec<i64>),
    /// Texts (`download`'s URLs).
    Texts(Vec<String>),
    /// Any JSON values (any kind).
    Json(Vec<JsonItem>),
}

impl Items {
    /// How many items.
    pub fn len(&self) -> usize {
        match self {
            Self::Counts(items) => items.len(),
            Self::Integers(items) => items.len(),
            Self::Texts(items) => items.len(),
            Self::Json(items) => items.len(),
        }
    }

    /// True without items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Validates the user's input; the error says what is wrong and what to do.
pub fn parse(job: &SubmitJob) -> Result<(JobInput, SubmitOptions), String> {
    let (kind, items, options) = match job {
        SubmitJob::SumSquares(args) => (
            "sum-squares",
            Items::Counts(sum_squares_items(args)?),
            &args.options,
        ),
        SubmitJob::Square(args) => (
            "square",
            Items::Integers(square_items(args)?),
            &args.options,
        ),
        SubmitJob::Download(args) => (
            "download",
            Items::Texts(download_urls(args)?),
            &args.options,
        ),
        SubmitJob::Other(raw) => return json_job(raw),
        SubmitJob::ImageBlur(_) => {
            return Err(
                "an image job is read from its PNG as it is submitted: use `producer submit image-blur`"
                    .into(),
            )
        }
    };
    let input = JobInput {
        kind: kind.to_owned(),
        items,
    };
    Ok((input, options.clone()))
}

fn json_job(raw: &[String]) -> Result<(JobInput, SubmitOptions), String> {
    let args = JsonJobArgs::try_parse_from_args(raw)?;
    let items = match (&args.items, &args.items_file) {
        (Some(array), _) => items::from_array(array)?,
        (None, Some(path)) => items::from_file(path)?,
        (None, None) => return Err("give the items with --items-file PATH or --items JSON".into()),
    };
    let input = JobInput {
        kind: args.kind,
        items: Items::Json(items),
    };
    Ok((input, args.options))
}

impl JsonJobArgs {
    /// Parses `KIND --items...`; `--help` prints the help and exits.
    fn try_parse_from_args(raw: &[String]) -> Result<Self, String> {
        use clap::Parser;
        Self::try_parse_from(raw).map_err(|error| match error.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                error.exit()
            }
            _ => error
                .to_string()
                .trim_start_matches("error: ")
                .trim()
                .to_owned(),
        })
    }
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

/// Cuts the items into chunks of `per_chunk` and builds the job's record and messages.
pub fn build(input: &JobInput, per_chunk: usize, topology: &Topology) -> Prepared {
    let kind = &input.kind;
    match &input.items {
        Items::Counts(items) => build_typed(kind, items, per_chunk, topology),
        Items::Integers(items) => build_typed(kind, items, per_chunk, topology),
        Items::Texts(items) => build_typed(kind, items, per_chunk, topology),
        Items::Json(items) => build_typed(kind, items, per_chunk, topology),
    }
}

fn build_typed<T: Serialize>(
    kind: &str,
    items: &[T],
    per_chunk: usize,
    topology: &Topology,
) -> Prepared {
    let id = JobId::new();
    let per_chunk = per_chunk.max(1);
    let mut messages = Vec::with_capacity(items.len().div_ceil(per_chunk));
    for (task_id, chunk) in items.chunks(per_chunk).enumerate() {
        let task_id = task_id as u32;
        let first_index = (task_id as usize * per_chunk) as u64;
        // Items that came as JSON or as plain values always encode.
        let payload = TaskPayload::of(first_index, chunk).expect("items encode as JSON");
        let task = TaskMessage::new(id, (0, 0, task_id), kind, &payload);
        messages.push(topology.task_outgoing(&task));
    }
    let spec = JobSpec {
        id,
        kind: kind.to_owned(),
        total_chunks: messages.len() as u32,
        total_items: items.len() as u64,
        submitted_at_ms: now_ms(),
    };
    Prepared {
        spec,
        messages,
        plan: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use taskq_common::envelope::{decode_payload, decode_task};

    fn prepared(args: &[&str], per_chunk: usize) -> Result<Prepared, String> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        let Command::Submit { job } = cli.command else {
            panic!("not a submit")
        };
        let (input, _) = parse(&job)?;
        Ok(build(&input, per_chunk, &Topology::new("t")))
    }

    fn items_of(message: &Outgoing) -> (u64, String) {
        let task = decode_task(&message.body).unwrap();
        let payload: TaskPayload = decode_payload(&task.payload).unwrap();
        (
            payload.first_index,
            String::from_utf8(payload.items).unwrap(),
        )
    }

    #[test]
    fn square_is_chunked_like_pool_map() {
        let job = prepared(&["producer", "submit", "square", "--values", "1..=14"], 3).unwrap();
        assert_eq!((job.spec.total_chunks, job.spec.total_items), (5, 14));
        assert_eq!(items_of(&job.messages[4]), (12, "[13,14]".to_owned()));
        assert_eq!(job.messages[4].queue, "t.tasks.square");
    }

    #[test]
    fn any_kind_takes_json_items_and_keeps_them_as_written() {
        let job = prepared(
            &[
                "producer",
                "submit",
                "wordcount",
                "--items",
                "[\"a b\", {\"text\": \"c\"}, 3]",
            ],
            2,
        )
        .unwrap();
        assert_eq!(job.spec.kind, "wordcount");
        assert_eq!(job.messages[0].queue, "t.tasks.wordcount");
        assert_eq!(
            items_of(&job.messages[0]),
            (0, "[\"a b\",{\"text\": \"c\"}]".to_owned())
        );
        assert_eq!(items_of(&job.messages[1]), (2, "[3]".to_owned()));
        let error =
            prepared(&["producer", "submit", "Word Count", "--items", "[1]"], 1).unwrap_err();
        assert!(error.contains("lowercase"), "{error}");
        let error = prepared(&["producer", "submit", "wordcount"], 1).unwrap_err();
        assert!(error.contains("--items"), "{error}");
    }

    #[test]
    fn downloads_go_to_their_queue_one_url_per_chunk() {
        let job = prepared(
            &[
                "producer",
                "submit",
                "download",
                "--url",
                "http://a.example/",
                "--url",
                "http://b.example/page",
            ],
            1,
        )
        .unwrap();
        assert_eq!((job.spec.total_chunks, job.spec.total_items), (2, 2));
        assert_eq!(job.messages[1].queue, "t.tasks.download");
        assert_eq!(
            items_of(&job.messages[1]),
            (1, "[\"http://b.example/page\"]".to_owned())
        );
        let error = prepared(&["producer", "submit", "download", "--url", "b@d"], 1).unwrap_err();
        assert!(error.contains("--url #1: 'b@d' is not a URL"), "{error}");
    }

    #[test]
    fn bad_input_is_refused_with_advice() {
        let args = [
            "producer",
            "submit",
            "sum-squares",
            "--from",
            "1",
            "--count",
            "0",
        ];
        let error = prepared(&args, 1).unwrap_err();
        assert!(error.contains("use 1 to"), "{error}");
        let args = [
            "producer",
            "submit",
            "sum-squares",
            "--values",
            "1,2199023255553",
        ];
        let error = prepared(&args, 1).unwrap_err();
        assert!(error.contains("too large"), "{error}");
    }
}
