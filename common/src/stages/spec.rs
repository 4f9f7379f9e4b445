//! The job spec: a TOML file naming a job's stages (`producer submit --spec pipeline.toml`).
//!
//! ```toml
//! [[stage]]
//! name = "words"          # optional; defaults to the kind
//! kind = "split-words"
//! chunk_size = 1          # first stage only
//!
//! [[stage]]
//! kind = "count-words"
//! after = "words"         # every stage but the first names the stage it follows
//! edge = "reduce"         # map (default), flat-map, reduce or neighbours
//! cap = 64                # optional: chunks of this stage in flight at most
//! # reach = 2             # neighbours only: how many chunks before and after are neighbours (1)
//! ```
//!
//! Stages may be listed in any order; they must form one chain. Every mistake names its line.

use std::collections::HashMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::{Edge, Neighbourhood, Plan, Stage};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    stage: Vec<Spanned<StageEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageEntry {
    name: Option<Spanned<String>>,
    kind: Spanned<String>,
    after: Option<Spanned<String>>,
    edge: Option<Spanned<String>>,
    chunk_size: Option<Spanned<u32>>,
    cap: Option<Spanned<u32>>,
    reach: Option<u32>,
}

/// Parses a spec's text into a plan; errors name the line (of `path`, for the message).
pub fn parse(path: &str, text: &str) -> Result<Plan, String> {
    let at = |span: Range<usize>| format!("{path}:{}", line_of(text, span.start));
    let file: SpecFile = toml::from_str(text).map_err(|error| match error.span() {
        Some(span) => format!("{}: {}", at(span), error.message()),
        None => format!("{path}: {}", error.message()),
    })?;
    if file.stage.is_empty() {
        return Err(format!(
            "{path}: no [[stage]] tables: a spec names at least one stage"
        ));
    }
    let entries: Vec<(Range<usize>, StageEntry)> = file
        .stage
        .into_iter()
        .map(|entry| (entry.span(), entry.into_inner()))
        .collect();
    let order = chain(&entries, &at)?;
    let mut stages = Vec::with_capacity(order.len());
    for (number, &position) in order.iter().enumerate() {
        let (span, entry) = &entries[position];
        let edge = match (&entry.after, &entry.edge) {
            (None, Some(edge)) => {
                return Err(format!(
                    "{}: the first stage takes the job's items and has no edge; remove `edge`",
                    at(edge.span())
                ))
            }
            (None, None) => None,
            (Some(_), None) => Some(Edge::Map),
            (Some(_), Some(edge)) => {
                Some(Edge::parse(edge.get_ref()).map_err(|e| format!("{}: {e}", at(edge.span())))?)
            }
        };
        let neighbourhood = match (edge, entry.reach) {
            (Some(Edge::Neighbours), reach) => Some(Neighbourhood {
                reach_x: reach.unwrap_or(1),
                ..Neighbourhood::default()
            }),
            (_, Some(_)) => {
                return Err(format!(
                    "{}: `reach` is for a stage with edge = \"neighbours\"",
                    at(span.clone())
                ))
            }
            (_, None) => None,
        };
        // A mistake in a key is named at the key's line, any other at the stage's.
        let place = match (&entry.chunk_size, &entry.cap) {
            (Some(size), _) if number > 0 => at(size.span()),
            (_, Some(cap)) if *cap.get_ref() == 0 => at(cap.span()),
            (Some(size), _) => at(size.span()),
            _ => at(span.clone()),
        };
        let stage = Stage {
            kind: entry.kind.get_ref().clone(),
            edge,
            chunk_size: entry.chunk_size.as_ref().map(|size| *size.get_ref()),
            cap: entry.cap.as_ref().map(|cap| *cap.get_ref()),
            neighbourhood,
        };
        stages.push(stage);
        // The plan's messages already name the stage ("stage 1 ('kind') ...").
        Plan::new(stages.clone()).map_err(|e| format!("{place}: {e}"))?;
    }
    Plan::new(stages).map_err(|e| format!("{path}: {e}"))
}

/// The entries' positions in chain order: the one with no `after` first, then each one's follower.
fn chain(
    entries: &[(Range<usize>, StageEntry)],
    at: &dyn Fn(Range<usize>) -> String,
) -> Result<Vec<usize>, String> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (position, (span, entry)) in entries.iter().enumerate() {
        let name = entry
            .name
            .as_ref()
            .unwrap_or(&entry.kind)
            .get_ref()
            .as_str();
        if let Some(&earlier) = names.get(name) {
            return Err(format!(
                "{}: a second stage named '{name}' (the first is at {}): give one a `name`",
                at(span.clone()),
                at(entries[earlier].0.clone())
            ));
        }
        names.insert(name, position);
    }
    let mut follower: HashMap<usize, usize> = HashMap::new();
    let mut heads = Vec::new();
    for (position, (_, entry)) in entries.iter().enumerate() {
        let Some(after) = &entry.after else {
            heads.push(position);
            continue;
        };
        let Some(&before) = names.get(after.get_ref().as_str()) else {
            let known: Vec<&str> = names.keys().copied().collect();
            return Err(format!(
                "{}: no stage is named '{}' (stages: {})",
                at(after.span()),
                after.get_ref(),
                known.join(", ")
            ));
        };
        if let Some(other) = follower.insert(before, position) {
            return Err(format!(
                "{}: two stages follow '{}' (the other is at {}): a job is one chain of stages",
                at(after.span()),
                after.get_ref(),
                at(entries[other].0.clone())
            ));
        }
    }
    let head = match heads.as_slice() {
        [head] => *head,
        [] => {
            return Err(format!(
                "{}: every stage names one it follows, so they form a cycle: the first stage has no `after`",
                at(entries[0].0.clone())
            ))
        }
        [first, second, ..] => {
            return Err(format!(
                "{}: a second stage with no `after` (the first is at {}): only the first stage has none",
                at(entries[*second].0.clone()),
                at(entries[*first].0.clone())
            ))
        }
    };
    let mut order = vec![head];
    while let Some(&next) = follower.get(order.last().expect("never empty")) {
        order.push(next);
    }
    if let Some(stranded) = (0..entries.len()).find(|position| !order.contains(position)) {
        return Err(format!(
            "{}: this stage is on a cycle of `after`s that never reaches the first stage",
            at(entries[stranded].0.clone())
        ));
    }
    Ok(order)
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_in_any_order_form_their_chain() {
        let text = r#"
[[stage]]
kind = "count-words"
after = "words"
edge = "reduce"

[[stage]]
name = "words"
kind = "split-words"
chunk_size = 1
"#;
        let plan = parse("wc.toml", text).unwrap();
        assert_eq!(plan.describe(), "split-words -reduce-> count-words");
        assert_eq!(plan.stages()[0].chunk_size, Some(1));
    }

    #[test]
    fn a_follower_maps_by_default_and_keeps_its_cap() {
        let text = "[[stage]]\nkind = \"a\"\n[[stage]]\nkind = \"b\"\nafter = \"a\"\ncap = 4\n";
        let plan = parse("p.toml", text).unwrap();
        assert_eq!(plan.stages()[1].edge, Some(Edge::Map));
        assert_eq!(plan.stages()[1].cap, Some(4));
    }

    fn error(text: &str) -> String {
        parse("p.toml", text).unwrap_err()
    }

    #[test]
    fn a_cycle_is_named_with_its_line() {
        let text =
            "[[stage]]\nkind = \"a\"\nafter = \"b\"\n\n[[stage]]\nkind = \"b\"\nafter = \"a\"\n";
        let message = error(text);
        assert!(
            message.starts_with("p.toml:1:") && message.contains("cycle"),
            "{message}"
        );
        let stranded = "[[stage]]\nkind = \"a\"\n[[stage]]\nkind = \"b\"\nafter = \"c\"\n[[stage]]\nkind = \"c\"\nafter = \"b\"\n";
        let message = error(stranded);
        assert!(
            message.starts_with("p.toml:3:") && message.contains("cycle"),
            "{message}"
        );
    }

    #[test]
    fn mistakes_name_their_line() {
        let unknown = error("[[stage]]\nkind = \"a\"\n[[stage]]\nkind = \"b\"\nafter = \"zzz\"\n");
        assert!(
            unknown.starts_with("p.toml:5:") && unknown.contains("'zzz'"),
            "{unknown}"
        );
        let bad_edge = error(
            "[[stage]]\nkind = \"a\"\n[[stage]]\nkind = \"b\"\nafter = \"a\"\nedge = \"join\"\n",
        );
        assert!(
            bad_edge.starts_with("p.toml:6:") && bad_edge.contains("flat-map"),
            "{bad_edge}"
        );
        let typo = error("[[stage]]\nkind = \"a\"\nchunk_sise = 3\n");
        assert!(
            typo.starts_with("p.toml:3:") && typo.contains("chunk_sise"),
            "{typo}"
        );
        let late_size = error(
            "[[stage]]\nkind = \"a\"\n[[stage]]\nkind = \"b\"\nafter = \"a\"\nchunk_size = 5\n",
        );
        assert!(
            late_size.starts_with("p.toml:6: stage 1 ('b') sets chunk_size"),
            "{late_size}"
        );
        let bad_kind = error("[[stage]]\nkind = \"A B\"\n");
        assert!(
            bad_kind.starts_with("p.toml:1:") && bad_kind.contains("stage 0"),
            "{bad_kind}"
        );
        let branch = error(
            "[[stage]]\nkind = \"a\"\n[[stage]]\nkind = \"b\"\nafter = \"a\"\n[[stage]]\nkind = \"c\"\nafter = \"a\"\n",
        );
        assert!(branch.contains("two stages follow 'a'"), "{branch}");
        let two_heads = error("[[stage]]\nkind = \"a\"\n[[stage]]\nkind = \"b\"\n");
        assert!(two_heads.starts_with("p.toml:3:"), "{two_heads}");
        assert!(error("").contains("no [[stage]]") || error("").contains("missing"));
        let not_toml = error("[[stage]\nkind = 1");
        assert!(not_toml.starts_with("p.toml:1"), "{not_toml}");
    }
}
