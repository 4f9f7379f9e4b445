//! The task API: how a kind of work is written, by this project and by its users alike.
//!
//! A task is a type. Its [`Task::NAME`] travels on the wire, its input and output are serde types, and it
//! runs either on a worker's CPU pool ([`CpuTask`], synchronous) or on its I/O lane ([`IoTask`], async).
//! `run` takes `&self`, so a task can hold configuration, a client or a model. Register any number of
//! them in a worker (`worker::Worker::builder()`), and submit jobs of them from the producer CLI (JSON
//! items) or from a program (`producer::Client`).
//!
//! ```ignore
//! use serde::{Deserialize, Serialize};
//! use taskq::{CpuTask, ItemContext, Task, TaskError, TaskOptions, Aggregate};
//!
//! /// Counts the words of a text.
//! pub struct WordCount;
//!
//! impl Task for WordCount {
//!     const NAME: &'static str = "wordcount";
//!     type Input = String;
//!     type Output = u64;
//!     fn options(&self) -> TaskOptions {
//!         TaskOptions::default().chunk_size(100).aggregate(Aggregate::sum("words"))
//!     }
//! }
//!
//! impl CpuTask for WordCount {
//!     fn run(&self, text: String, _: &ItemContext) -> Result<u64, TaskError> {
//!         Ok(text.split_whitespace().count() as u64)
//!     }
//! }
//! ```

mod error;
mod name;
mod options;

pub use error::TaskError;
pub use name::{validate_kind_name, KIND_NAME_MAX};
pub use options::TaskOptions;

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::job::JobId;

/// Which worker lane, and so which kind of concurrency, runs a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// CPU-bound: items run synchronously on the worker's thread pool, as many at once as it has threads.
    Cpu,
    /// I/O-bound: items run as async tasks on the worker's runtime, up to `--io-concurrency` at once, so
    /// waiting on the network never holds a thread.
    Io,
}

impl Lane {
    /// The lane's name as users see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Io => "io",
        }
    }
}

/// What every task kind declares: its wire name, its input and output, and optional defaults.
pub trait Task: Send + Sync + 'static {
    /// The kind's name on the wire and on the command line: `[a-z0-9][a-z0-9._-]*`, at most 64
    /// characters (see [`validate_kind_name`]). Workers refuse to register another name.
    const NAME: &'static str;
    /// One input item. Submitted from the CLI as one JSON value.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The result of one item, written by the consumer as JSON.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// Per-kind defaults: chunk size, retries, time limit and the job's aggregate.
    fn options(&self) -> TaskOptions {
        TaskOptions::default()
    }
}

/// A CPU-bound task: a synchronous function of one item, run on the worker's thread pool.
pub trait CpuTask: Task {
    /// Computes one item. An `Err` is that item's failure and says whether a later attempt may succeed
    /// (the chunk is then retried after a delay); a panic counts as a transient failure.
    fn run(&self, input: Self::Input, context: &ItemContext) -> Result<Self::Output, TaskError>;
}

/// An I/O-bound task: an async function of one item, run on the worker's I/O lane.
pub trait IoTask: Task {
    /// Processes one item. Like [`CpuTask::run`], an `Err` says whether a retry may help.
    fn run(
        &self,
        input: Self::Input,
        context: &ItemContext,
    ) -> impl Future<Output = Result<Self::Output, TaskError>> + Send;
}

/// Where an item stands in its job, for tasks that want to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemContext {
    /// The job the item belongs to.
    pub job: JobId,
    /// The item's position in the job's input, from 0.
    pub index: u64,
    /// Which run of its chunk this is: 1 for the first, one more for each retry.
    pub attempt: u32,
}
