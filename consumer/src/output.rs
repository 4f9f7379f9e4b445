//! Turning a job's stored chunk results into its output: one JSON line per item in input order, the
//! kind's aggregate, and (for small jobs) the results inline in the summary.

use std::io::Write;

use serde::Serialize;
use taskq_common::envelope::{decode_payload, DecodeError};
use taskq_common::tasks::{
    Download, ResultPayload, Square, SumSquares, TaskKind, TestAbort, TestFlaky,
};

/// Jobs with at most this many items carry their results in the summary, so `producer wait` shows them.
pub const INLINE_RESULTS_MAX: u64 = 1000;

/// One output line.
#[derive(Serialize)]
struct Line<'a, I, O> {
    index: u64,
    input: &'a I,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a O>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// Items written from one chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Output lines.
    pub items: u64,
    /// Of those, lines with an error.
    pub failed: u64,
}

/// Writes a job's output chunk by chunk and folds its aggregate.
pub trait Consolidator: Send {
    /// Writes one chunk's lines (chunks must come in order).
    fn add_chunk(&mut self, encoded: &[u8], out: &mut dyn Write) -> Result<Written, OutputError>;
    /// The aggregate over every chunk added.
    fn aggregate(&self) -> serde_json::Value;
    /// The lines as JSON values, if the job is small enough to inline them.
    fn take_inline(&mut self) -> Option<Vec<serde_json::Value>>;
}

/// Why output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A stored result did not decode.
    #[error("a stored chunk result is unreadable: {0}")]
    Decode(#[from] DecodeError),
    /// Writing failed.
    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),
    /// JSON encoding failed.
    #[error("cannot encode an output line: {0}")]
    Json(#[from] serde_json::Error),
}

struct Typed<K: TaskKind> {
    aggregate: K::Aggregate,
    inline: Option<Vec<serde_json::Value>>,
}

impl<K: TaskKind> Consolidator for Typed<K> {
    fn add_chunk(&mut self, encoded: &[u8], out: &mut dyn Write) -> Result<Written, OutputError> {
        let chunk: ResultPayload<K::Item, K::Output> = decode_payload(encoded)?;
        let written = Written {
            items: chunk.items.len() as u64,
            failed: chunk.failed() as u64,
        };
        for (offset, (input, outcome)) in chunk.items.iter().zip(&chunk.outcomes).enumerate() {
            let line = Line {
                index: chunk.first_index + offset as u64,
                input,
                output: outcome.as_ref().ok(),
                error: outcome.as_ref().err().map(String::as_str),
            };
            K::fold_outcome(&mut self.aggregate, outcome);
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
            if let Some(inline) = &mut self.inline {
                inline.push(serde_json::to_value(&line)?);
            }
        }
        Ok(written)
    }

    fn aggregate(&self) -> serde_json::Value {
        serde_json::to_value(&self.aggregate).unwrap_or(serde_json::Value::Null)
    }

    fn take_inline(&mut self) -> Option<Vec<serde_json::Value>> {
        self.inline.take()
    }
}

/// The consolidator for a kind, or `None` for a kind this build does not know.
pub fn consolidator(kind: &str, total_items: u64) -> Option<Box<dyn Consolidator>> {
    fn typed<K: TaskKind>(total_items: u64) -> Box<dyn Consolidator> {
        let inline = (total_items <= INLINE_RESULTS_MAX).then(Vec::new);
        Box::new(Typed::<K> {
            aggregate: Default::default(),
            inline,
        })
    }
    match kind {
        SumSquares::NAME => Some(typed::<SumSquares>(total_items)),
        Square::NAME => Some(typed::<Square>(total_items)),
        TestAbort::NAME => Some(typed::<TestAbort>(total_items)),
        TestFlaky::NAME => Some(typed::<TestFlaky>(total_items)),
        Download::NAME => Some(typed::<Download>(total_items)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskq_common::envelope::encode;

    #[test]
    fn lines_keep_order_and_u128_precision_and_report_errors() {
        let mut consolidator = consolidator(SumSquares::NAME, 3).unwrap();
        let big = SumSquares::closed_form(5_000_000);
        let chunk = ResultPayload::<u64, u128> {
            first_index: 4,
            items: vec![5_000_000, 7],
            outcomes: vec![Ok(big), Err("boom".into())],
        };
        let mut out = Vec::new();
        let written = consolidator.add_chunk(&encode(&chunk), &mut out).unwrap();
        assert_eq!(
            written,
            Written {
                items: 2,
                failed: 1
            }
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"index\":4,\"input\":5000000,\"output\":{big}}}\n{{\"index\":5,\"input\":7,\"error\":\"boom\"}}\n"
            )
        );
        assert_eq!(
            consolidator.aggregate().to_string(),
            format!("{{\"total\":{big}}}")
        );
        assert_eq!(consolidator.take_inline().unwrap().len(), 2);
    }

    #[test]
    fn downloads_write_their_fields_and_count_failures_in_the_aggregate() {
        use taskq_common::tasks::DownloadOutput;
        let mut consolidator = consolidator(Download::NAME, 2).unwrap();
        let chunk = ResultPayload::<String, DownloadOutput> {
            first_index: 0,
            items: vec!["http://a/x".into(), "http://b/".into()],
            outcomes: vec![
                Ok(DownloadOutput {
                    final_url: "http://a/y".into(),
                    status: 200,
                    bytes: 3,
                    sha256: "abc".into(),
                    elapsed_ms: 12,
                    attempts: 1,
                }),
                Err("HTTP 404 Not Found".into()),
            ],
        };
        let mut out = Vec::new();
        consolidator.add_chunk(&encode(&chunk), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"index\":0,\"input\":\"http://a/x\",\"output\":{\"final_url\":\"http://a/y\",\"status\":200,\"bytes\":3,\"sha256\":\"abc\",\"elapsed_ms\":12,\"attempts\":1}}\n{\"index\":1,\"input\":\"http://b/\",\"error\":\"HTTP 404 Not Found\"}\n"
        );
        assert_eq!(
            consolidator.aggregate().to_string(),
            "{\"count\":2,\"ok\":1,\"failed\":1,\"total_bytes\":3,\"p50_ms\":12,\"p99_ms\":12}"
        );
    }
}
