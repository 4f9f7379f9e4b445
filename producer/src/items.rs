//! Items of any kind as JSON, from the command line: `--items '[1, 2, 3]'` (one JSON array) or
//! `--items-file items.jsonl` (one JSON value per line; `-` reads stdin). Every mistake names where it
//! is (the file and line, or the array's position), before anything is sent.

use std::io::BufRead;
use std::path::Path;

use serde_json::value::RawValue;

use crate::input::MAX_ITEMS;

/// One item as JSON text, validated.
pub type JsonItem = Box<RawValue>;

/// Parses `--items`: a JSON array of items.
pub fn from_array(raw: &str) -> Result<Vec<JsonItem>, String> {
    let items: Vec<JsonItem> = serde_json::from_str(raw).map_err(|error| {
        format!(
            "--items is not a JSON array of items ({error}): give one like '[1, 2, 3]' or \
             '[{{\"path\": \"a.png\"}}]', or use --items-file with one JSON value per line"
        )
    })?;
    check_count(items.len())?;
    Ok(items)
}

/// Reads `--items-file`: one JSON value per line (blank lines are skipped); `-` reads stdin.
pub fn from_file(path: &Path) -> Result<Vec<JsonItem>, String> {
    let shown = path.display().to_string();
    if shown == "-" {
        return from_lines(std::io::stdin().lock(), "stdin");
    }
    let file = std::fs::File::open(path)
        .map_err(|error| format!("cannot read --items-file {shown}: {error}"))?;
    from_lines(std::io::BufReader::new(file), &shown)
}

/// Parses JSON lines from `reader`, naming `source` and the line number in errors.
pub fn from_lines(reader: impl BufRead, source: &str) -> Result<Vec<JsonItem>, String> {
    let mut items = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|error| format!("cannot read {source}: {error}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let item = RawValue::from_string(line.trim().to_owned()).map_err(|error| {
            format!(
                "{source} line {}: not a JSON value ({error}); each line must hold one item as \
                 JSON, for example 42, \"text\" or {{\"path\": \"a.png\"}}",
                number + 1
            )
        })?;
        items.push(item);
        check_count(items.len())?;
    }
    if items.is_empty() {
        return Err(format!(
            "{source} holds no items: give one JSON value per line"
        ));
    }
    Ok(items)
}

fn check_count(count: usize) -> Result<(), String> {
    if count as u64 > MAX_ITEMS {
        return Err(format!(
            "more than the {MAX_ITEMS} items one job may have: split the work into several jobs"
        ));
    }
    if count == 0 {
        return Err("no items given: a job needs at least one".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_arrays_keep_each_item_as_written() {
        let items = from_lines("1\n\n{\"a\": [1, 2]}\n\"x\"\n".as_bytes(), "f").unwrap();
        let texts: Vec<&str> = items.iter().map(|item| item.get()).collect();
        assert_eq!(texts, ["1", "{\"a\": [1, 2]}", "\"x\""]);
        let items = from_array("[3, {\"b\": null}]").unwrap();
        assert_eq!(items[1].get(), "{\"b\": null}");
    }

    #[test]
    fn bad_items_name_their_line() {
        let error = from_lines("1\n2\n{oops\n".as_bytes(), "items.jsonl").unwrap_err();
        assert!(
            error.starts_with("items.jsonl line 3: not a JSON value"),
            "{error}"
        );
        let error = from_lines("".as_bytes(), "items.jsonl").unwrap_err();
        assert!(error.contains("holds no items"), "{error}");
        let error = from_array("1, 2").unwrap_err();
        assert!(error.contains("not a JSON array"), "{error}");
        assert!(from_array("[]").unwrap_err().contains("no items"));
        let error = from_file(Path::new("/no/such/file.jsonl")).unwrap_err();
        assert!(error.contains("/no/such/file.jsonl"), "{error}");
    }
}
