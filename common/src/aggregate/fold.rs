//! The consumer's side of [`Aggregate`](super::Aggregate): folding outputs into the summary.

use std::cmp::Ordering;
use std::str::FromStr;

use num_bigint::BigInt;
use serde_json::{Number, Value};

use super::{AggregateField, Fold};

/// Folds a job's successful outputs into the summary's "aggregate" value (see [`Aggregate::folder`](super::Aggregate::folder)).
#[derive(Debug)]
pub struct Folder {
    slots: Vec<Slot>,
}

#[derive(Debug)]
struct Slot {
    name: String,
    of: Option<String>,
    state: State,
}

impl Folder {
    pub(super) fn new(fields: &[AggregateField]) -> Folder {
        let slots = fields.iter().map(|f| Slot {
            name: f.name.clone(),
            of: f.of.clone(),
            state: State::new(f.fold),
        });
        Folder {
            slots: slots.collect(),
        }
    }

    /// Folds one successful output, given as its JSON text. The text is parsed into a
    /// `Value` only when a field has a pointer; a bare number is parsed directly.
    pub fn add(&mut self, output_json: &str) {
        let mut root: Option<Option<Num>> = None;
        let mut doc: Option<Option<Value>> = None;
        for slot in &mut self.slots {
            match &slot.of {
                None => {
                    let num = root.get_or_insert_with(|| Num::parse(output_json));
                    slot.state.add(true, num.as_ref());
                }
                Some(ptr) => {
                    let doc = doc.get_or_insert_with(|| serde_json::from_str(output_json).ok());
                    let value = doc.as_ref().and_then(|d| d.pointer(ptr));
                    let value = value.filter(|v| !v.is_null());
                    let num = value
                        .and_then(Value::as_number)
                        .and_then(|n| Num::parse(n.as_str()));
                    slot.state.add(value.is_some(), num.as_ref());
                }
            }
        }
    }

    /// The JSON object `{name: value, ...}` in declaration order; `Value::Null` without fields.
    pub fn finish(self) -> Value {
        if self.slots.is_empty() {
            return Value::Null;
        }
        Value::Object(
            self.slots
                .into_iter()
                .map(|s| (s.name, s.state.finish()))
                .collect(),
        )
    }
}

/// A numeric value: exact integer (small or big) or float.
#[derive(Debug, Clone, PartialEq)]
enum Num {
    Int(i128),
    Big(BigInt),
    Float(f64),
}

impl Num {
    /// Parses JSON number text (surrounding whitespace allowed); None for anything else.
    fn parse(text: &str) -> Option<Num> {
        let text = text.trim();
        let bytes = text.as_bytes();
        let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
        if !digits.first().is_some_and(u8::is_ascii_digit) {
            return None;
        }
        if !digits.iter().all(u8::is_ascii_digit) {
            return text.parse().ok().map(Num::Float);
        }
        if digits.len() <= 38 {
            // At most 38 digits: below 10^38 < i128::MAX, so no overflow.
            let m = digits
                .iter()
                .fold(0i128, |m, d| m * 10 + i128::from(d - b'0'));
            return Some(Num::Int(if digits.len() < bytes.len() { -m } else { m }));
        }
        match text.parse() {
            Ok(i) => Some(Num::Int(i)),
            Err(_) => BigInt::from_str(text).ok().map(Num::Big),
        }
    }

    fn to_f64(&self) -> f64 {
        match self {
            Num::Int(i) => *i as f64,
            Num::Big(b) => b.to_string().parse().unwrap_or(f64::NAN),
            Num::Float(f) => *f,
        }
    }

    /// Exact comparison of integers; anything with a float compares as f64.
    fn cmp(&self, other: &Num) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(b),
            (Num::Big(a), Num::Big(b)) => a.cmp(b),
            (Num::Int(a), Num::Big(b)) => BigInt::from(*a).cmp(b),
            (Num::Big(a), Num::Int(b)) => a.cmp(&BigInt::from(*b)),
            _ => self.to_f64().total_cmp(&other.to_f64()),
        }
    }

    /// Adds `x` in place: i128 while it fits, then BigInt; f64 from the first float on
    /// (the exact integer part is then rounded to f64).
    fn add(&mut self, x: &Num) {
        match (&mut *self, x) {
            (Num::Float(a), x) => *a += x.to_f64(),
            (a, Num::Float(b)) => *self = Num::Float(a.to_f64() + b),
            (Num::Int(a), Num::Int(b)) => match a.checked_add(*b) {
                Some(s) => *a = s,
                None => *self = Num::Big(BigInt::from(*a) + *b),
            },
            (Num::Int(a), Num::Big(b)) => *self = Num::Big(b + *a),
            (Num::Big(a), Num::Int(b)) => *a += *b,
            (Num::Big(a), Num::Big(b)) => *a += b,
        }
    }

    /// An exact JSON integer, or a float (null if not finite).
    fn to_json(&self) -> Value {
        let number = match self {
            Num::Int(i) => Number::from_str(&i.to_string()).ok(),
            Num::Big(b) => Number::from_str(&b.to_string()).ok(),
            Num::Float(f) => Number::from_f64(*f),
        };
        number.map_or(Value::Null, Value::Number)
    }
}

/// The running state of one field.
#[derive(Debug)]
enum State {
    Sum(Num),
    Count(u64),
    /// Keeps the value `Less` (min) or `Greater` (max) than all others.
    Extreme(Ordering, Option<Num>),
    Mean(Num, u64),
    Percentile(u8, Values),
}

/// Percentile values: exact while all are i128 integers, else f64.
#[derive(Debug)]
enum Values {
    Exact(Vec<i128>),
    Float(Vec<f64>),
}

impl State {
    fn new(fold: Fold) -> State {
        match fold {
            Fold::Sum => State::Sum(Num::Int(0)),
            Fold::Count => State::Count(0),
            Fold::Min => State::Extreme(Ordering::Less, None),
            Fold::Max => State::Extreme(Ordering::Greater, None),
            Fold::Mean => State::Mean(Num::Int(0), 0),
            Fold::Percentile(p) => State::Percentile(p, Values::Exact(Vec::new())),
        }
    }

    /// `present`: the output had the value (for Count); `num`: its numeric value, if any.
    fn add(&mut self, present: bool, num: Option<&Num>) {
        if let State::Count(n) = self {
            *n += u64::from(present);
            return;
        }
        let Some(x) = num else { return };
        match self {
            State::Count(_) => {}
            State::Sum(sum) => sum.add(x),
            State::Mean(sum, n) => {
                sum.add(x);
                *n += 1;
            }
            State::Extreme(keep, best) => {
                if best.as_ref().is_none_or(|b| x.cmp(b) == *keep) {
                    *best = Some(x.clone());
                }
            }
            State::Percentile(_, values) => {
                if let (Values::Exact(v), Num::Int(i)) = (&mut *values, x) {
                    return v.push(*i);
                }
                if let Values::Exact(v) = values {
                    *values = Values::Float(v.iter().map(|&i| i as f64).collect());
                }
                if let Values::Float(v) = values {
                    v.push(x.to_f64());
                }
            }
        }
    }

    fn finish(self) -> Value {
        match self {
            State::Sum(sum) => sum.to_json(),
            State::Count(n) => Value::from(n),
            State::Extreme(_, best) => best.map_or(Value::Null, |b| b.to_json()),
            State::Mean(_, 0) => Value::Null,
            State::Mean(sum, n) => Num::Float(sum.to_f64() / n as f64).to_json(),
            State::Percentile(p, values) => {
                let len = match &values {
                    Values::Exact(v) => v.len(),
                    Values::Float(v) => v.len(),
                };
                if len == 0 {
                    return Value::Null;
                }
                // Nearest rank: ceil(p/100 * len), 1-based.
                let idx = (usize::from(p.min(100)) * len).div_ceil(100).max(1) - 1;
                match values {
                    Values::Exact(mut v) => Num::Int(*v.select_nth_unstable(idx).1).to_json(),
                    Values::Float(mut v) => {
                        Num::Float(*v.select_nth_unstable_by(idx, f64::total_cmp).1).to_json()
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::aggregate::Aggregate;
    use serde_json::json;

    /// Folds `outputs` with `agg`'s fields.
    pub(in crate::aggregate) fn fold(agg: &Aggregate, outputs: &[&str]) -> Value {
        let mut folder = agg.folder();
        outputs.iter().for_each(|o| folder.add(o));
        folder.finish()
    }

    #[test]
    fn exact_sum_beyond_u64() {
        let mut folder = Aggregate::sum("total").folder();
        let mut expected: u128 = 0;
        for n in 5_000_000u128..=5_000_019 {
            let squares = n * (n - 1) * (2 * n - 1) / 6;
            assert!(squares > u128::from(u64::MAX));
            expected += squares;
            folder.add(&squares.to_string());
        }
        assert_eq!(folder.finish()["total"].to_string(), expected.to_string());
    }

    #[test]
    fn sum_overflowing_i128_is_exact() {
        let max = i128::MAX.to_string();
        let total = fold(&Aggregate::sum("t"), &[&max, &max, &max]);
        let expected = BigInt::from(i128::MAX) * 3u8;
        assert_eq!(total["t"].to_string(), expected.to_string());
        // Back down below i128, and a 45-digit input.
        let min = i128::MIN.to_string();
        let big = "123456789012345678901234567890123456789012345";
        let total = fold(&Aggregate::sum("t"), &[&max, &max, &min, &min, big, "-1"]);
        assert_eq!(
            total["t"].to_string(),
            "123456789012345678901234567890123456789012342"
        );
    }

    #[test]
    fn negative_numbers() {
        let agg = Aggregate::sum("s")
            .with("min", Fold::Min, None)
            .with("max", Fold::Max, None);
        let out = fold(&agg, &["-5", " 3\n", "-10", "-0"]);
        assert_eq!(out, json!({"s": -12, "min": -10, "max": 3}));
        let min = i128::MIN.to_string();
        assert_eq!(
            fold(&agg, &[&min, "-1"])["s"].to_string(),
            "-170141183460469231731687303715884105729"
        );
    }

    #[test]
    fn float_sum() {
        let out = fold(&Aggregate::sum("s"), &["1", "2.5", "1e1", "-0.5E0"]);
        assert_eq!(out["s"].as_f64(), Some(13.0));
        assert!(
            out["s"].to_string().contains('.'),
            "a float, not an integer: {out}"
        );
        let big = "1000000000000000000000000000000000000000000";
        assert_eq!(
            fold(&Aggregate::sum("s"), &[big, "0.5"])["s"].as_f64(),
            Some(1e42)
        );
    }

    #[test]
    fn pointer_folds_over_objects() {
        let agg = Aggregate::none()
            .with("ok", Fold::Count, None)
            .with("with_bytes", Fold::Count, Some("/bytes"))
            .with("total_bytes", Fold::Sum, Some("/bytes"))
            .with("min_ms", Fold::Min, Some("/elapsed_ms"))
            .with("max_ms", Fold::Max, Some("/elapsed_ms"))
            .with("mean_ms", Fold::Mean, Some("/elapsed_ms"))
            .with("p50_ms", Fold::Percentile(50), Some("/elapsed_ms"))
            .with("p100_ms", Fold::Percentile(100), Some("/elapsed_ms"));
        let outputs = [
            r#"{"bytes":3,"elapsed_ms":12}"#,
            r#"{"bytes":4,"elapsed_ms":2.5}"#,
            r#"{"bytes":null,"elapsed_ms":30}"#,
            r#"{"bytes":"many","elapsed_ms":"slow"}"#,
            r#"{"elapsed_ms":7}"#,
            r#"{"bytes":100000000000000000000000000000000000000000}"#,
            "not json",
        ];
        let out = fold(&agg, &outputs);
        let expected = json!({
            "ok": 7, "with_bytes": 4, "total_bytes": "see below",
            "min_ms": 2.5, "max_ms": 30, "mean_ms": 12.875, "p50_ms": 7.0, "p100_ms": 30.0,
        });
        assert_eq!(
            out.as_object().unwrap().keys().collect::<Vec<_>>(),
            expected.as_object().unwrap().keys().collect::<Vec<_>>()
        );
        assert_eq!(
            out["total_bytes"].to_string(),
            "100000000000000000000000000000000000000007"
        );
        for key in [
            "ok",
            "with_bytes",
            "min_ms",
            "max_ms",
            "mean_ms",
            "p50_ms",
            "p100_ms",
        ] {
            assert_eq!(out[key].as_f64(), expected[key].as_f64(), "{key}: {out}");
        }
    }

    /// `cargo test --release -- --ignored --nocapture` for the real figure.
    #[test]
    #[ignore = "timing; run with --ignored --nocapture"]
    fn timing_million_small_integer_sums() {
        let outputs: Vec<String> = (0..1_000_000u32)
            .map(|i| (i % 10_000).to_string())
            .collect();
        let mut folder = Aggregate::sum("total").folder();
        let start = std::time::Instant::now();
        outputs.iter().for_each(|o| folder.add(o));
        let elapsed = start.elapsed();
        assert_eq!(folder.finish()["total"], json!(4_999_500_000u64));
        println!("1,000,000 Sum adds: {elapsed:?}");
    }
}
