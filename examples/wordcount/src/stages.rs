//! Word count in three stages (see `wordcount.toml`): `split-words` turns each text into its words (a
//! flat-map follows it, so each word becomes an item), `normalize-word` lowercases a word, trims its
//! punctuation and counts it once (`{"word": 1}`), and `count-words` adds counts up (a reduce: it folds
//! its own outputs again, up a tree, so it takes what it returns).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use taskq::{CpuTask, ItemContext, Task, TaskError, TaskOptions};

/// Splits a text into its words, at whitespace.
pub struct SplitWords;

impl Task for SplitWords {
    const NAME: &'static str = "split-words";
    type Input = String;
    type Output = Vec<String>;

    fn options(&self) -> TaskOptions {
        TaskOptions::default().chunk_size(10)
    }
}

impl CpuTask for SplitWords {
    fn run(&self, text: String, _: &ItemContext) -> Result<Vec<String>, TaskError> {
        Ok(text.split_whitespace().map(str::to_owned).collect())
    }
}

/// A word counted once, in lowercase without the punctuation around it ("Hello," counts as "hello").
pub struct NormalizeWord;

impl Task for NormalizeWord {
    const NAME: &'static str = "normalize-word";
    type Input = String;
    type Output = Counts;
}

impl CpuTask for NormalizeWord {
    fn run(&self, word: String, _: &ItemContext) -> Result<Counts, TaskError> {
        let trimmed = word.trim_matches(|c: char| !c.is_alphanumeric());
        if trimmed.is_empty() {
            return Err(TaskError::permanent(format!(
                "'{word}' has no letters or digits"
            )));
        }
        Ok(Counts(BTreeMap::from([(trimmed.to_lowercase(), 1)])))
    }
}

/// Adds counts up.
pub struct CountWords;

/// Each word and how often it occurs.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct Counts(BTreeMap<String, u64>);

impl Task for CountWords {
    const NAME: &'static str = "count-words";
    type Input = Vec<Counts>;
    type Output = Counts;
}

impl CpuTask for CountWords {
    fn run(&self, partials: Vec<Counts>, _: &ItemContext) -> Result<Counts, TaskError> {
        let mut counts = BTreeMap::new();
        for Counts(partial) in partials {
            for (word, n) in partial {
                *counts.entry(word).or_insert(0) += n;
            }
        }
        Ok(Counts(counts))
    }
}
