//! Progress bars on stderr while waiting for a job: one bar of items for a job of one stage, one bar of
//! chunks per stage for a job of several, so a slow stage shows itself.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use taskq_common::job::JobState;
use taskq_common::stage_store::StageProgress;

/// The bars of one job.
pub struct Bars {
    bars: Vec<ProgressBar>,
    // Kept alive so the bars of several stages draw together.
    _group: MultiProgress,
}

impl Bars {
    /// Bars for `state`'s job: per stage when `stages` is given.
    pub fn new(state: &JobState, stages: Option<&StageProgress>) -> Self {
        let group = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let bars = match stages {
            None => vec![group.add(bar(
                state.spec.total_items,
                "items",
                format!("{} {}", state.spec.kind, state.spec.id),
            ))],
            Some(progress) => progress
                .stages
                .iter()
                .enumerate()
                .map(|(number, stage)| {
                    let label = format!("stage {number} {} ({})", stage.kind, stage.edge);
                    group.add(bar(u64::from(stage.chunks), "chunks", label))
                })
                .collect(),
        };
        Self {
            bars,
            _group: group,
        }
    }

    /// Moves the bars to `state` (and each stage's progress).
    pub fn update(&self, state: &JobState, stages: Option<&StageProgress>) {
        match stages {
            None => {
                if let Some(bar) = self.bars.first() {
                    bar.set_position(state.items_done);
                }
            }
            Some(progress) => {
                for (bar, stage) in self.bars.iter().zip(&progress.stages) {
                    bar.set_position(u64::from(stage.chunks_done));
                }
            }
        }
    }

    /// Removes the bars.
    pub fn clear(&self) {
        for bar in &self.bars {
            bar.finish_and_clear();
        }
    }
}

fn bar(length: u64, unit: &str, label: String) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::hidden());
    let template = format!(
        "{{spinner}} {{msg}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})"
    );
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(label);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
