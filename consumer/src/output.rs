//! Turning a job's stored chunk results into its output: one JSON line per item in input order
//! (`{"index":..,"input":..,"output":..}` or `"error"` instead of `"output"`), the kind's declared
//! aggregate, and (for small jobs) the lines inline in the summary. Needs no kind's code: inputs and
//! outputs are JSON texts, copied as they are.

use std::io::Write;

use serde_json::value::RawValue;
use taskq_common::aggregate::{Aggregate, Folder};
use taskq_common::envelope::{decode_payload, DecodeError};
use taskq_common::payload::{ItemLine, ResultPayload};

/// Jobs with at most this many items carry their results in the summary, so `producer wait` shows them.
pub const INLINE_RESULTS_MAX: u64 = 1000;

/// Items written from one chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Output lines.
    pub items: u64,
    /// Of those, lines with an error.
    pub failed: u64,
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

/// Writes a job's output chunk by chunk and folds its aggregate.
pub struct Consolidator {
    aggregate: Folder,
    inline: Option<Vec<serde_json::Value>>,
    /// The next line's index when lines are numbered as written (after a flat-map stage, items no
    /// longer match the job's input positions).
    renumbered: Option<u64>,
}

impl Consolidator {
    /// A consolidator folding `aggregate`, inlining the lines of jobs of at most
    /// [`INLINE_RESULTS_MAX`] items.
    pub fn new(aggregate: &Aggregate, total_items: u64) -> Self {
        Self {
            aggregate: aggregate.folder(),
            inline: (total_items <= INLINE_RESULTS_MAX).then(Vec::new),
            renumbered: None,
        }
    }

    /// Numbers lines in the order they are written instead of by their items' positions.
    pub fn renumbering(mut self) -> Self {
        self.renumbered = Some(0);
        self
    }

    /// Writes one chunk's lines (chunks must come in order).
    pub fn add_chunk(
        &mut self,
        encoded: &[u8],
        out: &mut dyn Write,
    ) -> Result<Written, OutputError> {
        let chunk: ResultPayload = decode_payload(encoded)?;
        let lines = chunk.lines()?;
        for line in &lines {
            if let Ok(output) = line.outcome {
                self.aggregate.add(output.get());
            }
            let mut written = Line::of(line);
            if let Some(next) = &mut self.renumbered {
                written.index = *next;
                *next += 1;
            }
            // A job whose stages multiply its items may pass the inline limit after all.
            if self
                .inline
                .as_ref()
                .is_some_and(|inline| inline.len() as u64 >= INLINE_RESULTS_MAX)
            {
                self.inline = None;
            }
            match &mut self.inline {
                Some(inline) => {
                    let text = serde_json::to_string(&written)?;
                    out.write_all(text.as_bytes())?;
                    inline.push(serde_json::from_str(&text)?);
                }
                None => serde_json::to_writer(&mut *out, &written)?,
            }
            out.write_all(b"\n")?;
        }
        Ok(Written {
            items: lines.len() as u64,
            failed: chunk.failed() as u64,
        })
    }

    /// The aggregate over every chunk added.
    pub fn aggregate(self) -> (serde_json::Value, Option<Vec<serde_json::Value>>) {
        (self.aggregate.finish(), self.inline)
    }
}

/// One output line: the input and output copied as their JSON texts, so every digit survives.
#[derive(serde::Serialize)]
struct Line<'a> {
    index: u64,
    input: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl<'a> Line<'a> {
    fn of(line: &ItemLine<'a>) -> Self {
        Self {
            index: line.index,
            input: line.input,
            output: line.outcome.ok(),
            error: line.outcome.err(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskq_common::aggregate::Fold;
    use taskq_common::envelope::encode;
    use taskq_common::payload::{ResultBuilder, TaskPayload};

    #[test]
    fn lines_keep_order_and_u128_precision_and_report_errors() {
        let big: u128 = 41_666_654_166_667_500_000;
        let task = TaskPayload::of(4, &[5_000_000u64, 7]).unwrap();
        let mut result = ResultBuilder::new(&task);
        result.ok(&big);
        result.failed("boom");
        let mut consolidator = Consolidator::new(&Aggregate::sum("total"), 3);
        let mut out = Vec::new();
        let written = consolidator
            .add_chunk(&encode(&result.finish()), &mut out)
            .unwrap();
        assert_eq!(
            written,
            Written {
                items: 2,
                failed: 1
            }
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "{{\"index\":4,\"input\":5000000,\"output\":{big}}}\n{{\"index\":5,\"input\":7,\"error\":\"boom\"}}\n"
            )
        );
        let (aggregate, inline) = consolidator.aggregate();
        assert_eq!(aggregate.to_string(), format!("{{\"total\":{big}}}"));
        assert_eq!(inline.unwrap().len(), 2);
    }

    #[test]
    fn any_json_passes_through_and_fields_fold_by_pointer() {
        let task = TaskPayload::of_json(0, &["{\"url\": \"http://a/x\"}", "\"http://b/\""]);
        let mut result = ResultBuilder::new(&task);
        result.ok_json("{\"bytes\":3,\"elapsed_ms\":12}");
        result.failed("HTTP 404 Not Found");
        let aggregate = Aggregate::none().with("ok", Fold::Count, None).with(
            "total_bytes",
            Fold::Sum,
            Some("/bytes"),
        );
        let mut consolidator = Consolidator::new(&aggregate, 2_000);
        let mut out = Vec::new();
        consolidator
            .add_chunk(&encode(&result.finish()), &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"index\":0,\"input\":{\"url\": \"http://a/x\"},\"output\":{\"bytes\":3,\"elapsed_ms\":12}}\n{\"index\":1,\"input\":\"http://b/\",\"error\":\"HTTP 404 Not Found\"}\n"
        );
        let (aggregate, inline) = consolidator.aggregate();
        assert_eq!(aggregate.to_string(), "{\"ok\":1,\"total_bytes\":3}");
        assert!(inline.is_none(), "too many items to inline");
    }
}
