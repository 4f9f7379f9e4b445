//! What a chunk carries inside its message: items and outputs as JSON text.
//!
//! JSON is the one format every side speaks: a Rust task reads its typed input from it, a program run
//! with `worker --exec` reads it on stdin, the producer CLI takes items as JSON lines, and the consumer
//! writes each item's input and output as JSON without knowing the kind. Numbers keep every digit (an
//! `u128` output stays exact). The envelope around it stays MessagePack ([`crate::envelope`]).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::envelope::DecodeError;

/// The payload of a task message: a run of consecutive items of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskPayload {
    /// Position of the first item in the job's input.
    pub first_index: u64,
    /// The items, in input order, as one JSON array.
    #[serde(with = "serde_bytes")]
    pub items: Vec<u8>,
    /// Items that failed in an earlier stage of the job: `null` in `items`, never run, and reported
    /// failed with these messages, so later stages and the output show what is missing and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<ItemError>,
}

impl TaskPayload {
    /// A payload of typed items.
    pub fn of<T: Serialize>(first_index: u64, items: &[T]) -> Result<Self, serde_json::Error> {
        Ok(Self {
            first_index,
            items: serde_json::to_vec(items)?,
            missing: Vec::new(),
        })
    }

    /// A payload of items that are JSON texts already (one value each).
    pub fn of_json<S: AsRef<str>>(first_index: u64, items: &[S]) -> Self {
        let mut array =
            Vec::with_capacity(items.iter().map(|i| i.as_ref().len() + 1).sum::<usize>() + 2);
        array.push(b'[');
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                array.push(b',');
            }
            array.extend_from_slice(item.as_ref().as_bytes());
        }
        array.push(b']');
        Self {
            first_index,
            items: array,
            missing: Vec::new(),
        }
    }

    /// Each item's JSON text, in order.
    pub fn items(&self) -> Result<Vec<&RawValue>, DecodeError> {
        json_array(&self.items, "items")
    }
}

/// One item that failed, by its position in the chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemError {
    /// Position of the item in its chunk, from 0.
    pub offset: u32,
    /// Why it failed.
    pub message: String,
}

/// The payload of a result message: each item of a chunk with its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultPayload {
    /// Position of the first item in the job's input.
    pub first_index: u64,
    /// The inputs as they came (a JSON array), so the consumer writes self-describing lines.
    #[serde(with = "serde_bytes")]
    pub items: Vec<u8>,
    /// One output per item, as a JSON array; `null` where the item failed.
    #[serde(with = "serde_bytes")]
    pub outputs: Vec<u8>,
    /// The items that failed, in order.
    pub errors: Vec<ItemError>,
}

/// One item of a result, as the consumer writes it.
#[derive(Debug, Clone, Copy)]
pub struct ItemLine<'a> {
    /// Position in the job's input.
    pub index: u64,
    /// The input's JSON text.
    pub input: &'a RawValue,
    /// The output's JSON text, or why the item failed.
    pub outcome: Result<&'a RawValue, &'a str>,
}

impl ResultPayload {
    /// How many items failed.
    pub fn failed(&self) -> usize {
        self.errors.len()
    }

    /// Every item with its outcome, in order. Refuses a payload whose arrays do not match.
    pub fn lines(&self) -> Result<Vec<ItemLine<'_>>, DecodeError> {
        let inputs = json_array(&self.items, "items")?;
        let outputs = json_array(&self.outputs, "outputs")?;
        if inputs.len() != outputs.len() {
            return Err(DecodeError::Malformed(format!(
                "result payload has {} items but {} outputs",
                inputs.len(),
                outputs.len()
            )));
        }
        let mut errors = self.errors.iter().peekable();
        let mut lines = Vec::with_capacity(inputs.len());
        for (offset, (input, output)) in inputs.into_iter().zip(outputs).enumerate() {
            let failure = errors.next_if(|error| error.offset as usize == offset);
            lines.push(ItemLine {
                index: self.first_index + offset as u64,
                input,
                outcome: failure.map_or(Ok(output), |error| Err(error.message.as_str())),
            });
        }
        if let Some(stray) = errors.next() {
            return Err(DecodeError::Malformed(format!(
                "result payload names failed item {} out of order or past its {} items",
                stray.offset,
                lines.len()
            )));
        }
        Ok(lines)
    }
}

/// Builds a [`ResultPayload`] item by item.
#[derive(Debug)]
pub struct ResultBuilder {
    first_index: u64,
    items: Vec<u8>,
    outputs: Vec<u8>,
    errors: Vec<ItemError>,
    count: u32,
}

impl ResultBuilder {
    /// A result for the items of `task`, whose inputs it echoes.
    pub fn new(task: &TaskPayload) -> Self {
        Self::with_inputs(task.first_index, task.items.clone())
    }

    /// A result for inputs given as a JSON array.
    pub fn with_inputs(first_index: u64, items: Vec<u8>) -> Self {
        Self {
            first_index,
            items,
            outputs: b"[".to_vec(),
            errors: Vec::new(),
            count: 0,
        }
    }

    fn separator(&mut self) {
        if self.count > 0 {
            self.outputs.push(b',');
        }
        self.count += 1;
    }

    /// The next item succeeded with a JSON text (one valid JSON value).
    pub fn ok_json(&mut self, output: &str) {
        self.separator();
        self.outputs.extend_from_slice(output.trim().as_bytes());
    }

    /// The next item succeeded with `output`; an output that does not encode as JSON fails the item.
    pub fn ok<T: Serialize>(&mut self, output: &T) {
        match serde_json::to_string(output) {
            Ok(json) => self.ok_json(&json),
            Err(error) => self.failed(format!("the output does not encode as JSON: {error}")),
        }
    }

    /// The next item failed.
    pub fn failed(&mut self, message: impl Into<String>) {
        let offset = self.count;
        self.separator();
        self.outputs.extend_from_slice(b"null");
        self.errors.push(ItemError {
            offset,
            message: message.into(),
        });
    }

    /// The finished payload.
    pub fn finish(mut self) -> ResultPayload {
        self.outputs.push(b']');
        ResultPayload {
            first_index: self.first_index,
            items: self.items,
            outputs: self.outputs,
            errors: self.errors,
        }
    }
}

/// The elements of a JSON array, each as its own text.
fn json_array<'a>(bytes: &'a [u8], what: &str) -> Result<Vec<&'a RawValue>, DecodeError> {
    serde_json::from_slice(bytes).map_err(|error| {
        DecodeError::Malformed(format!("payload {what} are not a JSON array: {error}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_items_round_trip_exactly_and_outputs_pair_with_their_inputs() {
        let task = TaskPayload::of(4, &[5_000_000u64, 7, 8]).unwrap();
        let items: Vec<&str> = task.items().unwrap().iter().map(|i| i.get()).collect();
        assert_eq!(items, ["5000000", "7", "8"]);
        let big = u128::from(u64::MAX) * 1000;
        let mut result = ResultBuilder::new(&task);
        result.ok(&big);
        result.failed("boom");
        result.ok_json(" {\"a\": null} ");
        let result = result.finish();
        assert_eq!(result.failed(), 1);
        let lines = result.lines().unwrap();
        assert_eq!(lines[0].index, 4);
        assert_eq!(lines[0].outcome.unwrap().get(), big.to_string());
        assert_eq!(lines[1].outcome.unwrap_err(), "boom");
        assert_eq!(lines[2].outcome.unwrap().get(), "{\"a\": null}");
        let back: u128 = serde_json::from_str(lines[0].outcome.unwrap().get()).unwrap();
        assert_eq!(back, big);
    }

    #[test]
    fn json_items_join_into_one_array() {
        let task = TaskPayload::of_json(0, &["{\"x\":1}", "\"s\"", "[1,2]"]);
        assert_eq!(task.items, b"[{\"x\":1},\"s\",[1,2]]");
        assert_eq!(task.items().unwrap().len(), 3);
    }

    #[test]
    fn mismatched_arrays_are_refused() {
        let result = ResultPayload {
            first_index: 0,
            items: b"[1,2]".to_vec(),
            outputs: b"[1]".to_vec(),
            errors: vec![],
        };
        assert!(result.lines().is_err());
        let stray = ResultPayload {
            outputs: b"[1,2]".to_vec(),
            errors: vec![ItemError {
                offset: 5,
                message: "x".into(),
            }],
            ..result
        };
        assert!(stray.lines().is_err());
    }
}
