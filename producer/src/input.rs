//! Parsing what users type for a job's items: a range (`1..=14`, `1..15`) or a list (`1,2,3`).
//! Every mistake is reported with what was wrong and what to type instead, before anything is sent.

use std::fmt::Display;
use std::str::FromStr;

/// The most items one job may have; beyond that, split the work into several jobs.
pub const MAX_ITEMS: u64 = 50_000_000;

/// Parses `A..=B`, `A..B` or `A,B,C` into the items, in order.
pub fn parse_values<T>(raw: &str) -> Result<Vec<T>, String>
where
    T: FromStr + Copy + Into<i128> + TryFrom<i128>,
    <T as FromStr>::Err: Display,
{
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("no values given: use a range like 1..=14 or a list like 1,2,3".into());
    }
    if let Some((start, end)) = raw.split_once("..") {
        let (end, inclusive) = match end.strip_prefix('=') {
            Some(end) => (end, true),
            None => (end, false),
        };
        let start: T = parse_one(start, raw)?;
        let end: T = parse_one(end, raw)?;
        let (start, end) = (start.into(), end.into());
        let last = if inclusive { end } else { end - 1 };
        if last < start {
            return Err(format!(
                "the range '{raw}' is empty: its end must be after its start"
            ));
        }
        let count = last - start + 1;
        if count > i128::from(MAX_ITEMS) {
            return Err(format!(
                "the range '{raw}' has {count} items, more than the {MAX_ITEMS} one job may have: split it into several jobs"
            ));
        }
        return Ok((start..=last)
            .map(|value| T::try_from(value).ok().expect("inside a range of T"))
            .collect());
    }
    let values: Vec<T> = raw
        .split(',')
        .map(|part| parse_one(part, raw))
        .collect::<Result<_, _>>()?;
    if values.len() as u64 > MAX_ITEMS {
        return Err(format!(
            "{} values are more than the {MAX_ITEMS} one job may have",
            values.len()
        ));
    }
    Ok(values)
}

fn parse_one<T>(part: &str, whole: &str) -> Result<T, String>
where
    T: FromStr,
    <T as FromStr>::Err: Display,
{
    let part = part.trim();
    part.parse().map_err(|e| {
        format!("'{part}' in '{whole}' is not a valid value ({e}): use a range like 1..=14 or a list like 1,2,3")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_lists() {
        assert_eq!(parse_values::<i64>("1..=4").unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(parse_values::<i64>("1..4").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_values::<i64>("-2..=0").unwrap(), vec![-2, -1, 0]);
        assert_eq!(parse_values::<u64>(" 5, 3 ,9").unwrap(), vec![5, 3, 9]);
    }

    #[test]
    fn mistakes_are_explained() {
        for (raw, expected) in [
            ("1..=x", "'x' in '1..=x' is not a valid value"),
            ("5..=1", "is empty"),
            ("1,,2", "'' in '1,,2'"),
            ("", "no values given"),
            ("0..=99999999999", "split it into several jobs"),
        ] {
            let error = parse_values::<i64>(raw).unwrap_err();
            assert!(error.contains(expected), "{raw}: {error}");
        }
        assert!(parse_values::<u64>("-1..=3")
            .unwrap_err()
            .contains("not a valid value"));
    }
}
