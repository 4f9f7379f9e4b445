//! The deployment manifests against the code: KEDA scales the workers on each kind's queue, so every kind
//! the stock worker serves needs a trigger on `<TASKQ_PREFIX>.tasks.<kind>` in deploy/kubernetes/keda.yaml
//! (a kind without one never gets a worker started for it when the workers are scaled to zero).

use std::collections::BTreeSet;
use std::path::Path;

use clap::Parser;
use taskq_common::topology::Topology;
use worker::stock::StockArgs;

#[derive(Parser)]
struct Stock {
    #[command(flatten)]
    args: StockArgs,
}

fn manifest(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/kubernetes")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The values of `key: value` lines, also as a list's first entry (`- key: value`); comments skipped.
fn values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.trim().trim_start_matches("- "))
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .map(|value| value.trim().trim_matches('"').to_owned())
        .collect()
}

#[test]
fn keda_scales_on_every_builtin_kinds_queue() {
    let prefix = values(&manifest("config.yaml"), "TASKQ_PREFIX");
    assert_eq!(
        prefix.len(),
        1,
        "one TASKQ_PREFIX in config.yaml: {prefix:?}"
    );
    let topology = Topology::new(prefix[0].clone());
    let (builder, _) = Stock::parse_from(["worker"])
        .args
        .into_builder()
        .expect("the stock worker's defaults are valid");
    let expected: BTreeSet<String> = builder
        .declarations()
        .iter()
        .map(|kind| topology.task_queue(&kind.name))
        .collect();
    assert_eq!(expected.len(), 4, "{expected:?}");
    let keda = manifest("keda.yaml");
    let triggers: Vec<String> = values(&keda, "queueName");
    let unique: BTreeSet<String> = triggers.iter().cloned().collect();
    assert_eq!(
        triggers.len(),
        unique.len(),
        "a queue with two triggers: {triggers:?}"
    );
    assert_eq!(
        unique, expected,
        "keda.yaml's triggers against the stock worker's kinds"
    );
    assert_eq!(
        values(&keda, "type")
            .iter()
            .filter(|t| *t == "rabbitmq")
            .count(),
        expected.len(),
        "one rabbitmq trigger per queue"
    );
}
