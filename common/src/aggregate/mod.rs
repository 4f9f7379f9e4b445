//! Job aggregates: a task kind declares named folds (sum, count, min, max, mean,
//! percentile) that the consumer, knowing nothing of the kind's types, runs over
//! the JSON outputs of a job's successful items.
//!
//! Integers are exact at any size (i128, promoted to `num_bigint::BigInt` on overflow); a
//! number with '.', 'e' or 'E' is a float. Non-numeric values are ignored by
//! every fold but `Count`, and unparseable JSON is ignored.

use serde::{Deserialize, Serialize};

mod fold;
pub use fold::Folder;

/// What the consumer folds a job's outputs into: named fields, in order. Empty: no aggregate (shown as null).
///
/// JSON form: `{"fields":[{"name":"total","fold":"sum"},{"name":"p50_ms","fold":{"percentile":50},"of":"/elapsed_ms"}]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// The fields of the summary's "aggregate" object, in order.
    pub fields: Vec<AggregateField>,
}

/// One named fold of an [`Aggregate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateField {
    /// The field's name in the summary's "aggregate" object.
    pub name: String,
    /// How the values are folded.
    pub fold: Fold,
    /// A JSON pointer (RFC 6901, e.g. "/bytes") into each output; None folds the output itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<String>,
}

/// How an [`AggregateField`]'s values are folded. JSON: `"sum"`, `"count"`, `"min"`,
/// `"max"`, `"mean"`, `{"percentile":50}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fold {
    /// Exact sum of integers (any size); 0 with no values. From the first float value
    /// on, the sum is an f64 (the exact integer sum so far is rounded to f64); a float
    /// sum that is not finite shows as null.
    Sum,
    /// How many outputs had the value: pointer present and not null; without a pointer, every output.
    Count,
    /// Smallest numeric value (integers compared exactly); null with no values.
    Min,
    /// Largest numeric value (integers compared exactly); null with no values.
    Max,
    /// Sum / count as a float; null with no values.
    Mean,
    /// Nearest-rank percentile (1..=100): the smallest value with at least p% of the values at or below it.
    Percentile(u8),
}

impl Aggregate {
    /// No aggregate: no fields.
    pub fn none() -> Self {
        Self::default()
    }

    /// One field `name`: the sum of the outputs themselves.
    pub fn sum(name: impl Into<String>) -> Self {
        Self::none().with(name, Fold::Sum, None)
    }

    /// Adds a field `name` folding with `fold` the value at pointer `of` (None: the output itself).
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, fold: Fold, of: Option<&str>) -> Self {
        let (name, of) = (name.into(), of.map(str::to_owned));
        self.fields.push(AggregateField { name, fold, of });
        self
    }

    /// Whether there are no fields (no aggregate).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Checks that names are non-empty and unique, pointers are empty or start with '/',
    /// and percentiles are in 1..=100.
    pub fn validate(&self) -> Result<(), String> {
        for (i, field) in self.fields.iter().enumerate() {
            let name = &field.name;
            if name.is_empty() {
                return Err(format!("aggregate field {i} has an empty name"));
            }
            if self.fields[..i].iter().any(|f| f.name == *name) {
                return Err(format!("aggregate field name {name:?} is used twice"));
            }
            if let Some(p) = field
                .of
                .as_deref()
                .filter(|p| !p.is_empty() && !p.starts_with('/'))
            {
                return Err(format!(
                    "aggregate field {name:?}: pointer {p:?} must start with '/'"
                ));
            }
            if let Fold::Percentile(p) = field.fold {
                if !(1..=100).contains(&p) {
                    return Err(format!(
                        "aggregate field {name:?}: percentile {p} not in 1..=100"
                    ));
                }
            }
        }
        Ok(())
    }

    /// A fresh folder for one job's outputs.
    pub fn folder(&self) -> Folder {
        Folder::new(&self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::fold::tests::fold;
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn serde_form_and_round_trip() {
        let agg = Aggregate::sum("total").with("p50_ms", Fold::Percentile(50), Some("/elapsed_ms"));
        let text = serde_json::to_string(&agg).unwrap();
        assert_eq!(
            text,
            r#"{"fields":[{"name":"total","fold":"sum"},{"name":"p50_ms","fold":{"percentile":50},"of":"/elapsed_ms"}]}"#
        );
        assert_eq!(serde_json::from_str::<Aggregate>(&text).unwrap(), agg);
        assert_eq!(
            serde_json::to_string(&Aggregate::none()).unwrap(),
            r#"{"fields":[]}"#
        );
        for (fold, json) in [
            (Fold::Count, r#""count""#),
            (Fold::Min, r#""min""#),
            (Fold::Max, r#""max""#),
            (Fold::Mean, r#""mean""#),
        ] {
            assert_eq!(serde_json::to_string(&fold).unwrap(), json);
        }
    }

    #[test]
    fn validate_errors() {
        let ok = Aggregate::sum("a")
            .with("b", Fold::Percentile(100), Some(""))
            .with("c", Fold::Min, Some("/x/0"));
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(Aggregate::none().validate(), Ok(()));
        let bad = [
            (Aggregate::sum(""), "empty name"),
            (
                Aggregate::sum("a").with("a", Fold::Count, None),
                "used twice",
            ),
            (
                Aggregate::none().with("a", Fold::Sum, Some("bytes")),
                "must start with '/'",
            ),
            (
                Aggregate::none().with("a", Fold::Percentile(0), None),
                "not in 1..=100",
            ),
            (
                Aggregate::none().with("a", Fold::Percentile(101), None),
                "not in 1..=100",
            ),
        ];
        for (agg, message) in bad {
            let err = agg.validate().unwrap_err();
            assert!(err.contains(message), "{err:?} lacks {message:?}");
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let agg = Aggregate::none()
            .with("p1", Fold::Percentile(1), None)
            .with("p50", Fold::Percentile(50), None)
            .with("p99", Fold::Percentile(99), None)
            .with("p100", Fold::Percentile(100), None);
        let outputs: Vec<String> = (1..=100)
            .map(|i| ((i * 37) % 100 + 1).to_string())
            .collect();
        let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
        assert_eq!(
            fold(&agg, &outputs),
            json!({"p1": 1, "p50": 50, "p99": 99, "p100": 100})
        );
        // Five values: p50 is the 3rd, p99 the 5th; exact beyond f64 precision.
        let outputs = ["9007199254740993", "5", "1", "3", "2"];
        let out = fold(&agg, &outputs);
        assert_eq!(
            out,
            json!({"p1": 1, "p50": 3, "p99": 9007199254740993i64, "p100": 9007199254740993i64})
        );
        assert_eq!(fold(&agg, &["1.5", "3", "2"])["p50"].as_f64(), Some(2.0));
    }

    #[test]
    fn empty_folds() {
        assert_eq!(Aggregate::none().folder().finish(), Value::Null);
        let agg = Aggregate::sum("s")
            .with("n", Fold::Count, Some("/x"))
            .with("min", Fold::Min, None)
            .with("max", Fold::Max, None)
            .with("mean", Fold::Mean, None)
            .with("p", Fold::Percentile(90), None);
        let expected = json!({"s": 0, "n": 0, "min": null, "max": null, "mean": null, "p": null});
        assert_eq!(fold(&agg, &[]), expected);
        // Only non-numeric outputs: the same, but a count without a pointer counts them.
        let agg = agg.with("outputs", Fold::Count, None);
        let out = fold(&agg, &[r#""12""#, "{}", "null", "[1]", "true", "{bad"]);
        assert_eq!(out["outputs"], json!(6));
        assert_eq!(out["s"], json!(0));
        assert_eq!(out["p"], Value::Null);
    }
}
