//! Task kinds: for each, its wire name, its lane, and the types of its inputs, outputs and aggregate.
//!
//! This is the contract between producer (which builds inputs), worker (which runs them, see the
//! worker's `tasks` module) and consumer (which writes outputs and folds the aggregate). Adding a kind
//! means one file here, one in the worker, and a line in [`KINDS`].

mod download;
mod square;
mod sum_squares;
mod test_abort;
mod test_flaky;

pub use download::{Download, DownloadOutput, DownloadStats};
pub use square::Square;
pub use sum_squares::SumSquares;
pub use test_abort::TestAbort;
pub use test_flaky::TestFlaky;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Which worker lane, and so which queue, runs a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// CPU-bound: runs on the worker's thread pool.
    Cpu,
    /// I/O-bound: runs as async tasks on the worker's runtime, with its own queue and prefetch, so waiting
    /// on the network never holds a CPU thread and CPU chunks never wait behind downloads.
    Io,
}

/// A kind of task, as a type. Implemented by zero-sized marker types.
pub trait TaskKind: Send + Sync + 'static {
    /// The name that travels on the wire and that users type.
    const NAME: &'static str;
    /// The lane (queue) this kind's chunks travel on.
    const LANE: Lane;
    /// Items per message when the user does not choose.
    const DEFAULT_CHUNK_SIZE: u32;
    /// One input item.
    type Item: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The result of one item.
    type Output: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What the consumer folds all outputs into (for example their total).
    type Aggregate: Default + Serialize + Send;

    /// Adds one item's output to the aggregate.
    fn fold(aggregate: &mut Self::Aggregate, output: &Self::Output);

    /// Adds one item's outcome to the aggregate. By default failures are left out (they are counted in
    /// the job's summary); kinds whose aggregate counts failures too override it.
    fn fold_outcome(aggregate: &mut Self::Aggregate, outcome: &ItemOutcome<Self::Output>) {
        if let Ok(output) = outcome {
            Self::fold(aggregate, output);
        }
    }
}

/// Every task kind this build knows, by wire name and lane.
pub const KINDS: &[(&str, Lane)] = &[
    (SumSquares::NAME, SumSquares::LANE),
    (Square::NAME, Square::LANE),
    (TestAbort::NAME, TestAbort::LANE),
    (TestFlaky::NAME, TestFlaky::LANE),
    (Download::NAME, Download::LANE),
];

/// Kinds that exist only to test failure handling: workers run them only with `--enable-test-kinds`.
pub const TEST_ONLY_KINDS: &[&str] = &[TestAbort::NAME, TestFlaky::NAME];

/// The lane of a kind, or `None` for a kind this build does not know.
pub fn lane_of(kind: &str) -> Option<Lane> {
    KINDS
        .iter()
        .find(|(name, _)| *name == kind)
        .map(|(_, lane)| *lane)
}

/// The payload of a task message: a run of consecutive items of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskPayload<I> {
    /// Position of the first item in the job's input.
    pub first_index: u64,
    /// The items, in input order.
    pub items: Vec<I>,
}

/// What happened to one item: its output, or the error its task returned.
pub type ItemOutcome<O> = Result<O, String>;

/// The payload of a result message: each item of a chunk with its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultPayload<I, O> {
    /// Position of the first item in the job's input.
    pub first_index: u64,
    /// The inputs, echoed so the consumer can write self-describing output lines.
    pub items: Vec<I>,
    /// One outcome per item, in the same order.
    pub outcomes: Vec<ItemOutcome<O>>,
}

impl<I, O> ResultPayload<I, O> {
    /// How many items failed.
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.is_err()).count()
    }
}

/// The total of all outputs: the aggregate of the numeric kinds.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Total<T> {
    /// Sum of every successful item's output.
    pub total: T,
}
