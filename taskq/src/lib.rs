//! taskq as a library: everything a user needs to write a task, run a worker that serves it, and submit
//! jobs from a program, behind one dependency line (`taskq = ...` in `Cargo.toml`).
//!
//! A task is a type (one file in your crate):
//!
//! ```ignore
//! use taskq::{CpuTask, ItemContext, Task, TaskError};
//!
//! /// Counts the words of a text.
//! pub struct WordCount;
//!
//! impl Task for WordCount {
//!     const NAME: &'static str = "wordcount";
//!     type Input = String;
//!     type Output = u64;
//! }
//!
//! impl CpuTask for WordCount {
//!     fn run(&self, text: String, _: &ItemContext) -> Result<u64, TaskError> {
//!         Ok(text.split_whitespace().count() as u64)
//!     }
//! }
//! ```
//!
//! A worker serves it (with every flag of the stock `worker`: `--help`), and any program submits to it:
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     taskq::Worker::builder().cpu_task(WordCount).main()
//! }
//!
//! let client = taskq::Client::connect(amqp_url, redis_url, "taskq").await?;
//! let job = client.submit::<WordCount>(&["a b".into(), "c".into()]).await?;
//! let counts: Vec<Result<u64, String>> = taskq::outputs(&job.wait().await?)?;
//! ```
//!
//! `examples/wordcount` in the repository is a complete worker; the producer CLI submits to any kind
//! with JSON items (`producer submit wordcount --items-file texts.jsonl`).

pub use producer::{outputs, Client, Job, JobOptions, ProducerError};
pub use taskq_common::aggregate::{Aggregate, Fold};
pub use taskq_common::job::{ChunkSize, JobId, JobState, JobStatus};
pub use taskq_common::task::{CpuTask, IoTask, ItemContext, Lane, Task, TaskError, TaskOptions};
pub use worker::tasks::{Download, DownloadOutput, Square, SumSquares};
pub use worker::{Settings, Worker, WorkerArgs, WorkerBuilder, WorkerError};
