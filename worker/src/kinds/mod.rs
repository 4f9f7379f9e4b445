//! The kinds a worker serves: each registered task behind one chunk runner, by wire name.
//!
//! A typed task ([`taskq_common::task::CpuTask`] or [`taskq_common::task::IoTask`]) is wrapped in an
//! adapter that decodes each item's JSON into its input, runs it, and encodes its output
//! ([`cpu`], [`io`]); programs run with `--exec` plug in as chunk runners of their own (`crate::exec`).
//! The handler finds a delivery's runner here by the message's kind.

pub mod cpu;
pub mod io;
pub mod output;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use taskq_common::registry::KindInfo;
use taskq_common::task::{validate_kind_name, CpuTask, IoTask, Lane, TaskOptions};

use self::cpu::{CpuChunk, TypedCpu};
use self::io::{IoChunk, TypedIo};

/// How a kind's chunks run.
#[derive(Clone)]
pub enum Runner {
    /// On the CPU pool.
    Cpu(Arc<dyn CpuChunk>),
    /// On the I/O lane.
    Io(Arc<dyn IoChunk>),
}

/// One kind this worker serves.
#[derive(Clone)]
pub struct Kind {
    /// How it is declared to the producer and consumer.
    pub info: KindInfo,
    /// Retries after transient failures, if the kind sets its own.
    pub max_retries: Option<u32>,
    /// Its time limit, if it sets its own (per chunk on the CPU lane, per item on the I/O lane).
    pub time_limit: Option<Duration>,
    /// Its results carry no inputs.
    pub omit_inputs: bool,
    /// What runs its chunks.
    pub runner: Runner,
}

/// Why a kind cannot be registered.
#[derive(Debug, thiserror::Error)]
pub enum KindError {
    /// The name is not a valid kind name.
    #[error("{0}")]
    InvalidName(String),
    /// Two registrations under one name.
    #[error("task kind '{0}' is registered twice: each kind needs a name of its own")]
    Duplicate(String),
    /// The declared aggregate is inconsistent.
    #[error("task kind '{kind}': {reason}")]
    Aggregate {
        /// The kind.
        kind: String,
        /// What is wrong with its aggregate.
        reason: String,
    },
}

/// Every kind a worker serves, by name.
#[derive(Clone, Default)]
pub struct Kinds {
    by_name: BTreeMap<String, Kind>,
}

impl Kinds {
    /// Registers a CPU task.
    pub fn add_cpu<T: CpuTask>(&mut self, task: T) -> Result<(), KindError> {
        let options = task.options();
        let runner = Runner::Cpu(Arc::new(TypedCpu::new(task)));
        self.add(T::NAME, Lane::Cpu, options, runner, None)
    }

    /// Registers an I/O task.
    pub fn add_io<T: IoTask>(&mut self, task: T) -> Result<(), KindError> {
        let options = task.options();
        let time_limit = options.time_limit;
        let runner = Runner::Io(Arc::new(TypedIo::new(task, time_limit)));
        self.add(T::NAME, Lane::Io, options, runner, None)
    }

    /// Registers a chunk runner under `name` (for kinds that are not Rust types, such as programs).
    pub fn add(
        &mut self,
        name: &str,
        lane: Lane,
        options: TaskOptions,
        runner: Runner,
        description: Option<String>,
    ) -> Result<(), KindError> {
        validate_kind_name(name).map_err(KindError::InvalidName)?;
        options
            .aggregate
            .validate()
            .map_err(|reason| KindError::Aggregate {
                kind: name.to_owned(),
                reason,
            })?;
        if self.by_name.contains_key(name) {
            return Err(KindError::Duplicate(name.to_owned()));
        }
        let kind = Kind {
            info: KindInfo {
                name: name.to_owned(),
                lane,
                chunk_size: options.chunk_size,
                aggregate: options.aggregate,
                description,
                neighbours: options.neighbours,
            },
            max_retries: options.max_retries,
            time_limit: options.time_limit,
            omit_inputs: options.omit_inputs,
            runner,
        };
        self.by_name.insert(name.to_owned(), kind);
        Ok(())
    }

    /// The kind named `name`, if served here.
    pub fn get(&self, name: &str) -> Option<&Kind> {
        self.by_name.get(name)
    }

    /// Every kind, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Kind> {
        self.by_name.values()
    }

    /// The kinds' names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// True when no kind is registered.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{Square, SumSquares};
    use taskq_common::aggregate::{Aggregate, Fold};

    #[test]
    fn kinds_register_once_under_valid_names_with_their_declared_options() {
        let mut kinds = Kinds::default();
        kinds.add_cpu(SumSquares).unwrap();
        kinds.add_cpu(Square).unwrap();
        assert_eq!(kinds.names(), ["square", "sum-squares"]);
        let square = kinds.get("square").unwrap();
        assert_eq!(
            (square.info.lane, square.info.chunk_size),
            (Lane::Cpu, Some(1000))
        );
        assert_eq!(square.info.aggregate, Aggregate::sum("total"));
        let twice = kinds.add_cpu(Square).unwrap_err();
        assert!(twice.to_string().contains("registered twice"), "{twice}");
        let runner = kinds.get("square").unwrap().runner.clone();
        let bad_name = kinds.add(
            "Bad Name",
            Lane::Cpu,
            TaskOptions::default(),
            runner.clone(),
            None,
        );
        assert!(bad_name.unwrap_err().to_string().contains("lowercase"));
        let clashing = Aggregate::sum("x").with("x", Fold::Count, None);
        let options = TaskOptions::default().aggregate(clashing);
        let bad_aggregate = kinds
            .add("fine", Lane::Cpu, options, runner, None)
            .unwrap_err();
        assert!(
            bad_aggregate.to_string().starts_with("task kind 'fine'"),
            "{bad_aggregate}"
        );
    }
}
