//! Multi-stage jobs: a chain of task kinds where each stage starts on its predecessor's chunk results as
//! soon as they are recorded, with no barrier between stages (except a `reduce`, which must see all).
//!
//! The worker that finishes a chunk of stage k publishes its follow-up for stage k+1 itself; the consumer
//! only consolidates the last stage. Follow-ups keep their parent's chunk number, so a chunk that runs
//! twice after a crash publishes a follow-up with the same identity, and each stage records a chunk once.
//!
//! - [`Plan`]: the stages of a job, validated, as stored in the job record.
//! - [`spec`]: the TOML job spec (`producer submit --spec`), with errors that name the line.
//! - [`tree`]: the shape of a reduce's tree of partial reduces.

mod chunk;
mod neighbourhood;
pub mod spec;
pub mod tree;

pub use chunk::{ChunkRef, StagedJob};
pub use neighbourhood::Neighbourhood;

use serde::{Deserialize, Serialize};

use crate::job::ChunkSize;
use crate::task::validate_kind_name;

/// How a stage takes its predecessor's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Edge {
    /// One item in, one out: each output of stage k is one item of stage k+1, in the same place.
    Map,
    /// One item in, zero or more out: each output of stage k must be a JSON array, whose elements
    /// become items of stage k+1.
    FlatMap,
    /// All outputs of stage k folded into one by the stage's kind: it takes an array of values and
    /// returns one value of the same type, so partial results fold again (a tree of partial reduces).
    /// The only barrier: the next stage sees one item once every chunk of stage k is folded.
    Reduce,
    /// Chunk n of stage k+1 starts once chunk n and its neighbours (see [`Neighbourhood`]) of stage k
    /// are done: a join, counted atomically. Its one item is `{"chunk": n, "parts": [{"chunk": m,
    /// "outputs": [..]}, ..]}`; only kinds that declare `neighbours` take it.
    Neighbours,
}

impl Edge {
    /// The name used in specs and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Map => "map",
            Self::FlatMap => "flat-map",
            Self::Reduce => "reduce",
            Self::Neighbours => "neighbours",
        }
    }

    /// Parses a name used in specs.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "map" => Ok(Self::Map),
            "flat-map" => Ok(Self::FlatMap),
            "reduce" => Ok(Self::Reduce),
            "neighbours" => Ok(Self::Neighbours),
            other => Err(format!(
                "unknown edge '{other}': use map, flat-map, reduce or neighbours"
            )),
        }
    }
}

/// One stage of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// The task kind that runs this stage.
    pub kind: String,
    /// How it takes the previous stage's outputs; `None` for the first stage, which takes the job's items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<Edge>,
    /// Items per chunk of the first stage (later stages keep their parent chunks); the kind's default
    /// when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<u32>,
    /// At most this many of the stage's chunks published and not yet finished; a worker about to publish
    /// one more waits (up to [`CAP_WAIT`]) for the stage to catch up. `None`: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<u32>,
    /// For a `neighbours` edge, which chunks are neighbours (the chunk before and after when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbourhood: Option<Neighbourhood>,
}

/// How long a worker holds a follow-up back for a stage at its cap before publishing anyway. A bound, so
/// a stage whose kind is also an earlier stage's (its chunks may sit behind the held ones in one queue)
/// cannot deadlock: the cap slows a fast stage, it never stops the job.
pub const CAP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The stages of a job, in order. Valid by construction: at least one stage, valid kind names, an edge on
/// every stage but the first, a reduce never first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Plan {
    stages: Vec<Stage>,
}

/// Most stages in one job.
pub const MAX_STAGES: usize = 32;

impl Plan {
    /// Checks `stages` and makes them a plan.
    pub fn new(stages: Vec<Stage>) -> Result<Self, String> {
        if stages.is_empty() {
            return Err("a job needs at least one stage".into());
        }
        if stages.len() > MAX_STAGES {
            return Err(format!(
                "{} stages is too many: a job has at most {MAX_STAGES}",
                stages.len()
            ));
        }
        for (number, stage) in stages.iter().enumerate() {
            validate_kind_name(&stage.kind).map_err(|e| format!("stage {number}: {e}"))?;
            match (number, stage.edge) {
                (0, Some(edge)) => {
                    return Err(format!(
                        "stage 0 ('{}') has edge '{}', but the first stage takes the job's items: remove its edge",
                        stage.kind,
                        edge.as_str()
                    ))
                }
                (n, None) if n > 0 => {
                    return Err(format!(
                        "stage {n} ('{}') needs an edge saying how it takes stage {}'s outputs: map, flat-map, reduce or neighbours",
                        stage.kind,
                        n - 1
                    ))
                }
                _ => {}
            }
            if let Some(size) = stage.chunk_size {
                if number > 0 {
                    return Err(format!(
                        "stage {number} ('{}') sets chunk_size, but only the first stage is cut into chunks (later stages keep their parent chunks)",
                        stage.kind
                    ));
                }
                ChunkSize::new(size).ok_or_else(|| {
                    format!(
                        "stage 0: chunk size {size} is out of range: use 1 to {}",
                        ChunkSize::MAX
                    )
                })?;
            }
            if stage.cap == Some(0) {
                return Err(format!(
                    "stage {number} ('{}'): a cap of 0 chunks in flight would never let it run; use 1 or more, or no cap",
                    stage.kind
                ));
            }
        }
        Ok(Self { stages })
    }

    /// A chain of kinds where every later stage maps its predecessor's outputs (`--then KIND`).
    pub fn chain(first: &str, then: &[String]) -> Result<Self, String> {
        let stage = |kind: &str, edge| Stage {
            kind: kind.to_owned(),
            edge,
            chunk_size: None,
            cap: None,
            neighbourhood: None,
        };
        let mut stages = vec![stage(first, None)];
        stages.extend(then.iter().map(|kind| stage(kind, Some(Edge::Map))));
        Self::new(stages)
    }

    /// Reads a plan stored in a job record.
    pub fn from_json(raw: &str) -> Result<Self, String> {
        let stages: Vec<Stage> =
            serde_json::from_str(raw).map_err(|e| format!("stored stages: {e}"))?;
        Self::new(stages)
    }

    /// The plan as stored in a job record.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.stages).expect("stages encode as JSON")
    }

    /// The stages, in order.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Stage `number`.
    pub fn stage(&self, number: u16) -> Option<&Stage> {
        self.stages.get(usize::from(number))
    }

    /// The number of the last stage, whose results the consumer consolidates.
    pub fn last(&self) -> u16 {
        (self.stages.len() - 1) as u16
    }

    /// True for a job of one stage: its chunks' results go straight to the consumer.
    pub fn is_single(&self) -> bool {
        self.stages.len() == 1
    }

    /// The kind whose outputs the job's output holds.
    pub fn last_kind(&self) -> &str {
        &self.stages[self.stages.len() - 1].kind
    }

    /// Chunks each stage runs when the first has `source_chunks`: a map or flat-map runs one per
    /// chunk of its predecessor, a reduce one per node of its tree (see [`tree`]).
    pub fn chunks_per_stage(&self, source_chunks: u32) -> Vec<u32> {
        let mut chunks = Vec::with_capacity(self.stages.len());
        let mut outputs = source_chunks;
        for stage in &self.stages {
            if stage.edge == Some(Edge::Reduce) {
                chunks.push(tree::Tree::new(outputs).nodes());
                outputs = 1;
            } else {
                chunks.push(outputs);
            }
        }
        chunks
    }

    /// Results the consumer waits for: one per chunk of the last stage, or one if any stage reduces.
    pub fn results(&self, source_chunks: u32) -> u32 {
        let reduces = self
            .stages
            .iter()
            .any(|stage| stage.edge == Some(Edge::Reduce));
        if reduces {
            1
        } else {
            source_chunks
        }
    }

    /// True when some stage after the first is a flat-map: the output's items are numbered in the
    /// order they are written, not by the job's input positions.
    pub fn renumbers(&self) -> bool {
        self.stages
            .iter()
            .any(|stage| stage.edge == Some(Edge::FlatMap))
    }

    /// A short description, like `split -flat-map-> count -reduce-> total`.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for stage in &self.stages {
            if let Some(edge) = stage.edge {
                text.push_str(&format!(" -{}-> ", edge.as_str()));
            }
            text.push_str(&stage.kind);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(kind: &str, edge: Option<Edge>) -> Stage {
        Stage {
            kind: kind.into(),
            edge,
            chunk_size: None,
            cap: None,
            neighbourhood: None,
        }
    }

    #[test]
    fn a_chain_maps_and_keeps_its_chunk_counts() {
        let plan = Plan::chain("square", &["square".into(), "negate".into()]).unwrap();
        assert_eq!(plan.last(), 2);
        assert_eq!(plan.last_kind(), "negate");
        assert_eq!(plan.chunks_per_stage(7), vec![7, 7, 7]);
        assert_eq!(plan.results(7), 7);
        assert_eq!(plan.describe(), "square -map-> square -map-> negate");
        assert_eq!(Plan::from_json(&plan.to_json()).unwrap(), plan);
    }

    #[test]
    fn a_reduce_ends_in_one_chunk() {
        let plan = Plan::new(vec![
            stage("split", None),
            stage("count", Some(Edge::Reduce)),
            stage("format", Some(Edge::Map)),
        ])
        .unwrap();
        // 40 leaves fold in 3 nodes, then the root: 4 reduce chunks; the stage after sees one.
        assert_eq!(plan.chunks_per_stage(40), vec![40, 4, 1]);
        assert_eq!(plan.results(40), 1);
        assert!(!plan.renumbers());
    }

    #[test]
    fn bad_plans_say_what_to_change() {
        let first_with_edge = Plan::new(vec![stage("a", Some(Edge::Map))]).unwrap_err();
        assert!(
            first_with_edge.contains("remove its edge"),
            "{first_with_edge}"
        );
        let no_edge = Plan::new(vec![stage("a", None), stage("b", None)]).unwrap_err();
        assert!(no_edge.contains("needs an edge"), "{no_edge}");
        let bad_kind = Plan::chain("a", &["Not A Kind".into()]).unwrap_err();
        assert!(bad_kind.contains("stage 1"), "{bad_kind}");
        let mut capped = stage("b", Some(Edge::Map));
        capped.cap = Some(0);
        assert!(Plan::new(vec![stage("a", None), capped])
            .unwrap_err()
            .contains("cap of 0"));
        assert!(Plan::new(vec![]).is_err());
        assert!(Edge::parse("join")
            .unwrap_err()
            .contains("reduce or neighbours"));
    }
}
