//! Programs as task kinds, no Rust: the stock worker serving a kind with `--exec` (a process per item)
//! and `--exec-lines` (long-lived processes, one item per line), with small Python programs written to
//! the deployment's directory. Outputs are exact (integers beyond u64 included); exit 75 is retried;
//! a crash, a timeout or output that is not JSON fails only its item, with the reason; a missing program
//! stops the worker at start; an item never reaches a shell.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use taskq_tests::{output_lines, Deployment};

/// Writes a Python program to the deployment's directory; returns the command running it.
fn python(deployment: &Deployment, name: &str, source: &str) -> String {
    let path = deployment.write_file(name, source);
    format!("python3 {}", path.to_str().expect("UTF-8 path"))
}

/// Submits `items` (a JSON array) as a job of `kind` with `extra` flags, waits, and returns the summary.
fn submit(deployment: &Deployment, kind: &str, items: &str, extra: &[&str]) -> Value {
    let mut args = vec!["submit", kind, "--items", items, "--wait"];
    args.extend_from_slice(extra);
    let run = deployment.producer(&args);
    assert!(
        run.output.status.success(),
        "producer failed ({:?}):\nstdout: {}\nstderr: {}\n{}",
        run.code(),
        run.stdout(),
        run.stderr(),
        deployment.all_logs()
    );
    run.json()
}

/// Each output line as its output (`Ok`, the JSON text) or its error (`Err`), in input order, after
/// checking the lines' indexes.
fn results(summary: &Value) -> Vec<Result<String, String>> {
    output_lines(summary)
        .iter()
        .enumerate()
        .map(|(i, line)| {
            assert_eq!(line["index"].as_u64(), Some(i as u64), "{line}");
            match line.get("error") {
                Some(error) => Err(error.as_str().expect("error text").to_owned()),
                None => Ok(line["output"].to_string()),
            }
        })
        .collect()
}

/// Asserts the summary counts `items` items of which `failed` failed.
fn assert_counts(summary: &Value, items: u64, failed: u64) {
    assert_eq!(
        (summary["items"].as_u64(), summary["failed"].as_u64()),
        (Some(items), Some(failed)),
        "{summary}"
    );
}

/// Outputs n, its square and its item's JSON as Python read it: exact integers of any size.
const SQUARE_OBJECT: &str = r#"
import json, sys
n = json.load(sys.stdin)
print(json.dumps({"n": n, "square": n * n, "odd": n % 2 == 1}))
"#;

#[test]
fn exec_runs_a_program_per_item_with_exact_json_outputs() {
    let mut deployment = Deployment::new("execok");
    let exec = format!("sq={}", python(&deployment, "sq.py", SQUARE_OBJECT));
    deployment.start(1, &["--exec", &exec]);

    let summary = submit(&deployment, "sq", "[3, -4, 100000000000000000000, 0]", &[]);

    assert_counts(&summary, 4, 0);
    assert_eq!(summary["chunks"].as_u64(), Some(4), "one item per chunk");
    let big_square = format!("1{}", "0".repeat(40));
    let expected = [
        r#"{"n":3,"square":9,"odd":true}"#.to_owned(),
        r#"{"n":-4,"square":16,"odd":false}"#.to_owned(),
        format!(r#"{{"n":100000000000000000000,"square":{big_square},"odd":false}}"#),
        r#"{"n":0,"square":0,"odd":false}"#.to_owned(),
    ];
    let outputs: Vec<Result<String, String>> = expected.into_iter().map(Ok).collect();
    assert_eq!(results(&summary), outputs);
}

/// Exits 75 (temporary failure) the first time it sees an item, succeeds from the second: it counts
/// its runs per item in a file of the directory given as its argument.
const FAILS_ONCE: &str = r#"
import json, os, sys
n = json.load(sys.stdin)
path = os.path.join(sys.argv[1], str(n))
runs = int(open(path).read()) + 1 if os.path.exists(path) else 1
open(path, "w").write(str(runs))
if runs == 1:
    sys.stderr.write("not yet\n")
    sys.exit(75)
print(json.dumps({"n": n, "double": 2 * n}))
"#;

#[test]
fn exec_exit_75_is_retried_until_the_item_succeeds() {
    let mut deployment = Deployment::new("exec75");
    let runs = deployment.dir.path().join("runs");
    std::fs::create_dir(&runs).expect("runs dir");
    let command = python(&deployment, "flaky.py", FAILS_ONCE);
    let exec = format!("flaky={command} {}", runs.to_str().expect("UTF-8 path"));
    deployment.start(1, &["--exec", &exec, "--max-retries", "2"]);

    let summary = submit(&deployment, "flaky", "[1, 2, 3]", &["--chunk-size", "1"]);

    assert_counts(&summary, 3, 0);
    let expected: Vec<Result<String, String>> = (1..=3)
        .map(|n| Ok(format!(r#"{{"n":{n},"double":{}}}"#, 2 * n)))
        .collect();
    assert_eq!(results(&summary), expected);
    // Each item really ran twice: the failed run, then the retry.
    for n in 1..=3 {
        let count = std::fs::read_to_string(runs.join(n.to_string())).expect("run count");
        assert_eq!(count, "2", "runs of item {n}");
    }
    let logs = deployment.all_logs();
    assert_eq!(
        logs.matches("task failed; retrying later").count(),
        3,
        "{logs}"
    );
}

/// Adds one to its item, except for 7: then it explains on stderr and exits 3.
const CRASHES_ON_SEVEN: &str = r#"
import json, sys
n = json.load(sys.stdin)
if n == 7:
    sys.stderr.write("boom on item 7\n")
    sys.exit(3)
print(n + 1)
"#;

#[test]
fn exec_a_crash_fails_only_its_item_with_the_exit_code_and_stderr() {
    let mut deployment = Deployment::new("execcrash");
    let exec = format!("inc={}", python(&deployment, "inc.py", CRASHES_ON_SEVEN));
    deployment.start(1, &["--exec", &exec]);

    let summary = submit(&deployment, "inc", "[5, 6, 7, 8]", &["--chunk-size", "4"]);

    assert_counts(&summary, 4, 1);
    assert_eq!(
        results(&summary),
        [
            Ok("6".to_owned()),
            Ok("7".to_owned()),
            Err("exit 3: boom on item 7".to_owned()),
            Ok("9".to_owned()),
        ]
    );
    let logs = deployment.all_logs();
    assert!(
        !logs.contains("retrying later"),
        "a crash is not retried: {logs}"
    );
}

/// Echoes its item, except "slow": then it sleeps 30 s first.
const SLOW_ON_SLOW: &str = r#"
import json, sys, time
item = json.load(sys.stdin)
if item == "slow":
    time.sleep(30)
print(json.dumps(item))
"#;

#[test]
fn exec_an_item_past_the_time_limit_fails_alone_and_the_job_ends_soon() {
    let mut deployment = Deployment::new("exectimeout");
    let exec = format!("nap={}", python(&deployment, "nap.py", SLOW_ON_SLOW));
    deployment.start(1, &["--exec", &exec, "--exec-timeout", "1"]);

    let run = deployment.producer(&[
        "submit",
        "nap",
        "--items",
        r#"["a", "slow", "b"]"#,
        "--wait",
    ]);
    let summary = run.json();

    assert_counts(&summary, 3, 1);
    assert_eq!(
        results(&summary),
        [
            Ok("\"a\"".to_owned()),
            Err("timed out after 1s (the per-item time limit, --exec-timeout)".to_owned()),
            Ok("\"b\"".to_owned()),
        ]
    );
    assert!(
        run.elapsed < Duration::from_secs(15),
        "the 30 s sleeper was stopped: the job took {:?}",
        run.elapsed
    );
}

/// Prints text that is not JSON for "bad", its item otherwise.
const NOT_JSON_ON_BAD: &str = r#"
import json, sys
item = json.load(sys.stdin)
print("hello, not json" if item == "bad" else json.dumps(item))
"#;

#[test]
fn exec_output_that_is_not_json_fails_its_item_quoting_it() {
    let mut deployment = Deployment::new("execnotjson");
    let exec = format!("talk={}", python(&deployment, "talk.py", NOT_JSON_ON_BAD));
    deployment.start(1, &["--exec", &exec]);

    let summary = submit(&deployment, "talk", r#"["good", "bad"]"#, &[]);

    assert_counts(&summary, 2, 1);
    assert_eq!(
        results(&summary),
        [
            Ok("\"good\"".to_owned()),
            Err(
                "the program printed output that is not JSON (expected value at line 1 column 1): \
                 \"hello, not json\\n\"; it must print one JSON value per item on stdout \
                 (log to stderr instead)"
                    .to_owned()
            ),
        ]
    );
}

/// examples/exec-lines/upper.py, the README's line program.
fn upper_py() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/exec-lines/upper.py");
    let path = path.canonicalize().expect("examples/exec-lines/upper.py");
    path.to_str().expect("UTF-8 path").to_owned()
}

#[test]
fn exec_lines_runs_the_example_program_over_a_thousand_items() {
    let mut deployment = Deployment::new("execlines");
    let exec = format!("upper=python3 {}", upper_py());
    deployment.start(1, &["--exec-lines", &exec]);
    let texts: Vec<String> = (0..1000).map(|i| format!("item {i} café")).collect();
    let file = deployment.write_file(
        "texts.jsonl",
        &texts
            .iter()
            .map(|t| format!("{}\n", json!(t)))
            .collect::<String>(),
    );

    let run = deployment.producer(&[
        "submit",
        "upper",
        "--items-file",
        file.to_str().expect("UTF-8 path"),
        "--chunk-size",
        "100",
        "--wait",
    ]);
    let summary = run.json();

    assert_counts(&summary, 1000, 0);
    assert_eq!(summary["chunks"].as_u64(), Some(10));
    let lines = output_lines(&summary);
    assert_eq!(lines.len(), 1000);
    for (i, (line, text)) in lines.iter().zip(&texts).enumerate() {
        let expected = json!({
            "index": i,
            "input": text,
            "output": {"upper": text.to_uppercase(), "length": text.chars().count()},
        });
        assert_eq!(line, &expected, "line {i}");
    }
}

/// A line program echoing each item in an object, that exits 4 (explaining on stderr) when it reads
/// "die".
const LINES_DIE_ON_DIE: &str = r#"
import json, sys
for line in sys.stdin:
    item = json.loads(line)
    if item == "die":
        sys.stderr.write("dying on die\n")
        sys.exit(4)
    print(json.dumps({"echo": item}), flush=True)
"#;

#[test]
fn exec_lines_a_crash_fails_its_item_and_a_restarted_process_runs_the_rest() {
    let mut deployment = Deployment::new("execlinescrash");
    let exec = format!("echo={}", python(&deployment, "die.py", LINES_DIE_ON_DIE));
    deployment.start(1, &["--exec-lines", &exec, "--cpu-threads", "1"]);

    // One chunk: the items after "die" can only be answered by a new process.
    let items = r#"["a", "b", "die", "c", "d"]"#;
    let summary = submit(&deployment, "echo", items, &["--chunk-size", "5"]);

    assert_counts(&summary, 5, 1);
    let echo = |item: &str| Ok(format!(r#"{{"echo":"{item}"}}"#));
    assert_eq!(
        results(&summary),
        [
            echo("a"),
            echo("b"),
            Err("the program exited (exit 4) while running this item: dying on die".to_owned()),
            echo("c"),
            echo("d"),
        ]
    );
    // The restarted process serves the next job too.
    let again = submit(&deployment, "echo", r#"["e"]"#, &[]);
    assert_eq!(results(&again), [echo("e")]);
}

#[test]
fn a_missing_program_stops_the_worker_at_start_naming_it() {
    for flag in ["--exec", "--exec-lines"] {
        let mut deployment = Deployment::new("execmissing");
        let worker = deployment.start_worker_without_waiting(&[flag, "x=/no/such/program"]);
        let status = deployment.wait_for_exit(worker, Duration::from_secs(10));
        let log = deployment.log(worker);
        assert_eq!(status.code(), Some(2), "{flag}: exit 2\n{log}");
        assert!(
            log.contains(&format!(
                "{flag} x: program '/no/such/program' cannot be used"
            )),
            "{flag}: names the program\n{log}"
        );
    }
}

/// A command echoing its stdin: no shell anywhere.
const ECHO: &str = r#"python3 -c "import sys; sys.stdout.write(sys.stdin.read())""#;

#[test]
fn an_item_never_reaches_a_shell() {
    let mut deployment = Deployment::new("execinject");
    deployment.start(1, &["--exec", &format!("echo={ECHO}")]);
    let pwned = std::env::temp_dir().join(format!("taskq-pwned-{}", deployment.prefix));
    let pwned_path = pwned.to_str().expect("UTF-8 path");
    let items: Vec<String> = [";", "&&", "|", "$(", "`"]
        .iter()
        .map(|shell| format!("{shell} touch {pwned_path}"))
        .collect();

    let summary = submit(&deployment, "echo", &json!(items).to_string(), &[]);

    assert_counts(&summary, 5, 0);
    let expected: Vec<Result<String, String>> = items
        .iter()
        .map(|item| Ok(json!(item).to_string()))
        .collect();
    assert_eq!(results(&summary), expected);
    assert!(!pwned.exists(), "{} was created", pwned.display());
}
