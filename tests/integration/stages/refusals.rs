//! Bad specs and unserved stage kinds: refused with their line, exit 2, nothing recorded or published.

use super::*;

/// Asserts a producer run was refused with exit 2, printing nothing on stdout; returns its stderr.
fn refused(run: &Run, what: &str) -> String {
    assert_eq!(
        run.code(),
        Some(2),
        "{what}: refused with exit 2\nstdout: {}\nstderr: {}",
        run.stdout(),
        run.stderr()
    );
    assert_eq!(run.stdout(), "", "{what}: no job id");
    run.stderr()
}

/// Asserts the namespace holds no job and `kinds`' queues hold nothing (or do not exist).
async fn assert_nothing_submitted(deployment: &Deployment, kinds: &[&str]) {
    let jobs = deployment.store().await.job_ids().await.expect("job ids");
    assert!(jobs.is_empty(), "no job was recorded: {jobs:?}");
    for kind in kinds {
        let queue = deployment.topology().task_queue(kind);
        let depth = deployment.queue_stats(&queue).await.map(|s| s.messages);
        assert!(
            matches!(depth, None | Some(0)),
            "nothing published to {queue}: {depth:?}"
        );
    }
}

/// Bad specs: the mistake, the line the error must name, and a part of the message.
const BAD_SPECS: [(&str, &str, usize, &str); 6] = [
    (
        "cycle",
        "[[stage]]\nkind = \"square\"\n\n[[stage]]\nname = \"a\"\nkind = \"test-negate\"\nafter = \"b\"\n\n[[stage]]\nname = \"b\"\nkind = \"test-negate\"\nafter = \"a\"\n",
        4,
        "cycle",
    ),
    (
        "no_first_stage",
        "[[stage]]\nkind = \"square\"\nafter = \"test-negate\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"square\"\n",
        1,
        "cycle",
    ),
    (
        "unknown_after",
        "[[stage]]\nkind = \"square\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"sqare\"\n",
        6,
        "no stage is named 'sqare'",
    ),
    (
        "unknown_edge",
        "[[stage]]\nkind = \"square\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"square\"\nedge = \"join\"\n",
        7,
        "unknown edge 'join'",
    ),
    (
        "typo",
        "[[stage]]\nkind = \"square\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"square\"\nedeg = \"map\"\n",
        7,
        "edeg",
    ),
    (
        "branch",
        "[[stage]]\nkind = \"square\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"square\"\n\n[[stage]]\nname = \"again\"\nkind = \"test-negate\"\nafter = \"square\"\n",
        11,
        "two stages follow 'square'",
    ),
];

/// Submits square over 1..=5 with the spec `text` (no worker is needed: `--allow-unserved`).
fn submit_spec(deployment: &Deployment, name: &str, text: &str) -> (Run, String) {
    let path = deployment.write_file(&format!("{name}.toml"), text);
    let path = path_text(&path).to_owned();
    let run = deployment.producer(&[
        "submit",
        "square",
        "--allow-unserved",
        "--values",
        "1..=5",
        "--spec",
        &path,
    ]);
    (run, path)
}

#[tokio::test]
async fn bad_specs_are_refused_naming_their_line_and_nothing_is_submitted() {
    // No worker: anything published would stay in its queue.
    let deployment = Deployment::new("stagebadspec");
    for (name, text, line, message) in BAD_SPECS {
        let (run, path) = submit_spec(&deployment, name, text);
        let stderr = refused(&run, name);
        let at = format!("error: {path}:{line}: ");
        assert!(
            stderr.starts_with(&at),
            "{name}: names line {line} ({at}):\n{stderr}"
        );
        assert!(
            stderr.contains(message),
            "{name}: says '{message}':\n{stderr}"
        );
        assert_nothing_submitted(&deployment, &["square", "test-negate"]).await;
    }

    let mismatch = "[[stage]]\nkind = \"sum-squares\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"sum-squares\"\n";
    let (run, _) = submit_spec(&deployment, "mismatch", mismatch);
    let stderr = refused(&run, "mismatch");
    assert!(
        stderr.contains(
            "the spec's first stage runs 'sum-squares', but the items were given for 'square'"
        ),
        "{stderr}"
    );
    assert_nothing_submitted(&deployment, &["square", "sum-squares", "test-negate"]).await;
}

#[tokio::test]
async fn a_chunk_size_on_a_later_stage_is_refused_naming_its_line() {
    let deployment = Deployment::new("stagebadchunk");
    let text = "[[stage]]\nkind = \"square\"\n\n[[stage]]\nkind = \"test-negate\"\nafter = \"square\"\nchunk_size = 5\n";
    let (run, path) = submit_spec(&deployment, "chunk_size", text);
    let stderr = refused(&run, "chunk_size");
    assert!(stderr.contains("sets chunk_size"), "{stderr}");
    assert_nothing_submitted(&deployment, &["square", "test-negate"]).await;
    // The mistake is `chunk_size = 5`, on line 7.
    let at = format!("error: {path}:7: ");
    assert!(stderr.starts_with(&at), "names line 7 ({at}):\n{stderr}");
}

#[tokio::test]
async fn a_stage_kind_no_live_worker_serves_is_refused_naming_the_served_kinds() {
    let mut deployment = Deployment::new("stageunserved");
    deployment.start_test_worker(&[]);
    // Whatever the test worker serves, as `producer kinds` lists it.
    let kinds = deployment.producer(&["kinds"]).json();
    let mut served: Vec<&str> = kinds
        .as_array()
        .expect("kinds array")
        .iter()
        .filter(|kind| kind["workers"].as_array().is_some_and(|w| !w.is_empty()))
        .map(|kind| kind["name"].as_str().expect("a name"))
        .collect();
    served.sort_unstable();
    assert!(served.contains(&"test-negate"), "{kinds}");
    let served = format!("served now: {}", served.join(", "));

    let then = deployment.producer(&[
        "submit",
        "square",
        "--values",
        "1..=5",
        "--then",
        "test-negate",
        "--then",
        "no-such-kind",
    ]);
    let stderr = refused(&then, "--then");
    let expected = format!("no live worker serves task kind 'no-such-kind' ({served})");
    assert!(stderr.contains(&expected), "{stderr}");
    assert_nothing_submitted(&deployment, &["no-such-kind"]).await;

    let spec = deployment.write_file(
        "unserved.toml",
        &two_stages("square", "no-such-kind", "map"),
    );
    let run = deployment.producer(&[
        "submit",
        "square",
        "--values",
        "1..=5",
        "--spec",
        path_text(&spec),
    ]);
    let stderr = refused(&run, "--spec");
    assert!(stderr.contains(&expected), "{stderr}");
    assert_nothing_submitted(&deployment, &["no-such-kind"]).await;
}
