//! Flat-maps: the word-count spec (flat-map then reduce), lines renumbered as written, and outputs that
//! are not arrays failing their items.

use super::*;

/// The word count's texts (repeated) and the words each contributes, normalized.
const TEXTS: [(&str, &[&str]); 5] = [
    (
        "Hello, world! Hello again.",
        &["hello", "world", "hello", "again"],
    ),
    (
        "The cat; the HAT... the end",
        &["the", "cat", "the", "hat", "the", "end"],
    ),
    ("  spaced   out\t WORLD \n", &["spaced", "out", "world"]),
    ("Naïve café, CAFÉ!", &["naïve", "café", "café"]),
    (
        "It's 42 o'clock: it's TIME.",
        &["it's", "42", "o'clock", "it's", "time"],
    ),
];

/// How often [`TEXTS`] are repeated.
const REPEATS: usize = 40;

#[test]
fn the_wordcount_spec_counts_every_word_exactly_through_a_flat_map_and_a_reduce() {
    let mut deployment = Deployment::new("stagewords");
    deployment.start_workers(WORDCOUNT_WORKER, 2, &[]);
    deployment.start_consumer();
    let mut texts: Vec<&str> = Vec::new();
    for _ in 0..REPEATS {
        texts.extend(TEXTS.iter().map(|(text, _)| *text));
    }
    // A word with no letters, which normalize-word fails, and a text with no words at all.
    texts.insert(57, "...");
    texts.insert(101, "");
    let lines: String = texts
        .iter()
        .map(|text| format!("{}\n", json!(text)))
        .collect();
    let file = deployment.write_file("texts.jsonl", &lines);
    let spec = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/wordcount/wordcount.toml"
    );

    let summary = deployment
        .producer(&[
            "submit",
            "split-words",
            "--items-file",
            path_text(&file),
            "--spec",
            spec,
            "--wait",
        ])
        .json();

    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, words) in TEXTS {
        for word in words {
            *counts.entry(word).or_default() += REPEATS as u64;
        }
    }
    let words: usize = TEXTS.iter().map(|(_, words)| words.len()).sum::<usize>() * REPEATS;
    let expected = [json!({"index": 0, "input": null, "output": counts})];
    assert_output(
        &summary,
        "split-words -flat-map-> normalize-word -reduce-> count-words",
        &expected,
        0,
    );
    // 202 texts in chunks of 10 (the spec's chunk_size): 21 chunks, whose 21 leaves fold in 2 nodes
    // and the root.
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["split-words", "source", 21, 21, 202, 0]),
            json!(["normalize-word", "flat-map", 21, 21, words + 1, 1]),
            json!(["count-words", "reduce", 3, 3, 3, 0]),
        ]
    );
    assert_timestamps(&summary);
}

/// The texts of the flat-map job: text `i` has `i % 17` words (`W{i}x{k},`), so some have none.
fn numbered_texts(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            (0..i % 17)
                .map(|k| format!("W{i}x{k},"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn a_flat_map_renumbers_the_lines_and_carries_each_failure_to_its_place() {
    let mut deployment = Deployment::new("stageflat");
    deployment.start_workers(WORDCOUNT_WORKER, 2, &[]);
    deployment.start_consumer();
    let mut items: Vec<Value> = numbered_texts(150).into_iter().map(Value::from).collect();
    // Not a text: split-words fails it, and the flat-map carries it as one failed item.
    items.insert(5, json!(42));
    // A word normalize-word fails, in the last stage.
    items.insert(77, json!("... ok"));
    let lines: String = items.iter().map(|item| format!("{item}\n")).collect();
    let file = deployment.write_file("texts.jsonl", &lines);
    let spec = deployment.write_file(
        "words.toml",
        "[[stage]]\nkind = \"split-words\"\nchunk_size = 7\n\n[[stage]]\nkind = \"normalize-word\"\nafter = \"split-words\"\nedge = \"flat-map\"\n",
    );

    let summary = deployment
        .producer(&[
            "submit",
            "split-words",
            "--items-file",
            path_text(&file),
            "--spec",
            path_text(&spec),
            "--wait",
        ])
        .json();

    let mut expected: Vec<Value> = Vec::new();
    for item in &items {
        let index = expected.len();
        match item.as_str() {
            None => expected.push(failed_line(
                index,
                Value::Null,
                "stage 0 (split-words): input 42 is not a valid 'split-words' input: invalid type: integer `42`, expected a string",
            )),
            Some(text) => {
                for word in text.split_whitespace() {
                    let index = expected.len();
                    expected.push(if word == "..." {
                        failed_line(index, json!(word), "'...' has no letters or digits")
                    } else {
                        // normalize-word counts its word once: {"w5x0": 1}.
                        let normalized = word.trim_end_matches(',').to_lowercase();
                        ok_line(index, json!(word), json!({ normalized: 1 }))
                    });
                }
            }
        }
    }
    // 1,179 words, the word that fails and the item that was not a text.
    assert_eq!(expected.len(), 1182);
    assert_eq!(summary["status"], "completed", "{summary}");
    assert_eq!(
        (summary["items"].as_u64(), summary["failed"].as_u64()),
        (Some(1182), Some(2)),
        "{summary}"
    );
    assert_eq!(
        summary["pipeline"],
        "split-words -flat-map-> normalize-word"
    );
    assert!(
        summary.get("results").is_none(),
        "more than 1,000 lines are not inline: {}",
        summary["results"]
    );
    let written = output_lines(&summary);
    assert_eq!(written.len(), expected.len());
    for (line, expected) in written.iter().zip(&expected) {
        assert_eq!(line, expected);
    }
    // 152 items in chunks of 7.
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["split-words", "source", 22, 22, 152, 1]),
            json!(["normalize-word", "flat-map", 22, 22, 1182, 2]),
        ]
    );
    assert_timestamps(&summary);
    assert_last_unfinished(&summary);
}

#[test]
fn a_flat_map_over_outputs_that_are_not_arrays_fails_each_item_with_the_reason() {
    let mut deployment = Deployment::new("stagenotarray");
    deployment.start_test_worker(&[]);
    deployment.start_consumer();
    let spec = deployment.write_file(
        "flat.toml",
        &two_stages("square", "test-negate", "flat-map"),
    );

    let summary = deployment
        .producer(&[
            "submit",
            "square",
            "--values",
            "1..=4",
            "--chunk-size",
            "3",
            "--spec",
            path_text(&spec),
            "--wait",
        ])
        .json();

    let expected: Vec<Value> = (1..=4i64)
        .map(|x| {
            let index = (x - 1) as usize;
            let message = format!(
                "stage 0 (square): item {index} gave {}, but a flat-map stage follows, which needs a JSON array",
                x * x
            );
            failed_line(index, Value::Null, &message)
        })
        .collect();
    assert_output(&summary, "square -flat-map-> test-negate", &expected, 4);
    assert_eq!(
        stage_counts(&summary),
        [
            json!(["square", "source", 2, 2, 4, 0]),
            json!(["test-negate", "flat-map", 2, 2, 4, 4]),
        ]
    );
}
