//! A kind's own defaults, declared by its task and published by the workers that serve it.

use std::time::Duration;

use crate::aggregate::Aggregate;

/// A kind's defaults. Each is optional: unset ones fall back to the producer's and worker's settings.
///
/// ```ignore
/// TaskOptions::default()
///     .chunk_size(1000)
///     .max_retries(5)
///     .time_limit(Duration::from_secs(60))
///     .aggregate(Aggregate::sum("total"))
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskOptions {
    /// Items per chunk when the submitter does not choose (`--chunk-size`); 1 when unset.
    pub chunk_size: Option<u32>,
    /// Retries of a chunk after transient failures; the worker's `--max-retries` when unset.
    pub max_retries: Option<u32>,
    /// For CPU tasks, how long a chunk may run before its items not yet started fail (the worker's
    /// `--chunk-time-limit` when unset); for I/O tasks, how long one item may run before it fails.
    pub time_limit: Option<Duration>,
    /// What the consumer folds the job's outputs into; none when empty.
    pub aggregate: Aggregate,
    /// The kind takes a `neighbours` edge: its input may be `{"chunk": n, "parts": [{"chunk": m,
    /// "output": ..}, ..]}`, the previous stage's outputs of chunk n and its neighbours, which it puts
    /// together itself (an image tile and the borders of the tiles around it).
    pub neighbours: bool,
    /// Results carry `null` instead of each item's input: for kinds whose inputs are large (an image
    /// tile with its halo), so results do not carry them back.
    pub omit_inputs: bool,
}

impl TaskOptions {
    /// Sets the default chunk size.
    pub fn chunk_size(mut self, items: u32) -> Self {
        self.chunk_size = Some(items);
        self
    }

    /// Sets the retries after transient failures.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// Sets the time limit (per chunk on the CPU lane, per item on the I/O lane).
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = Some(limit);
        self
    }

    /// Declares that the kind takes a `neighbours` edge (see [`TaskOptions::neighbours`]).
    pub fn neighbours(mut self) -> Self {
        self.neighbours = true;
        self
    }

    /// Leaves inputs out of results (see [`TaskOptions::omit_inputs`]).
    pub fn omit_inputs(mut self) -> Self {
        self.omit_inputs = true;
        self
    }

    /// Sets the job's aggregate.
    pub fn aggregate(mut self, aggregate: Aggregate) -> Self {
        self.aggregate = aggregate;
        self
    }
}
