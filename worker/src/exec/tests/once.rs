use std::time::{Duration, Instant};

use super::py;
use crate::exec::{run_once, MAX_OUTPUT_BYTES};

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn returns_the_json_the_program_prints() {
    let argv = py("import json, sys; print(json.dumps(json.load(sys.stdin) * 2))");
    let output = run_once(&argv, "21", LIMIT).await.unwrap();
    assert_eq!(output.get(), "42");
}

#[tokio::test]
async fn keeps_output_text_exact_and_allows_surrounding_whitespace() {
    let argv = py(r#"print('  {"b": 1.000000000000000000001, "a": [1, 2]}  \n')"#);
    let output = run_once(&argv, "null", LIMIT).await.unwrap();
    assert_eq!(
        output.get(),
        r#"{"b": 1.000000000000000000001, "a": [1, 2]}"#
    );
}

#[tokio::test]
async fn exit_75_is_a_transient_failure() {
    let argv = py("import sys; sys.stderr.write('database busy\\n'); sys.exit(75)");
    let failure = run_once(&argv, "1", LIMIT).await.unwrap_err();
    assert!(failure.transient);
    assert_eq!(
        failure.message,
        "exit 75 (temporary failure): database busy"
    );
}

#[tokio::test]
async fn other_exit_codes_are_permanent_with_the_end_of_stderr() {
    let code = "import sys; sys.stderr.write('x' * 5000 + 'the end'); sys.exit(3)";
    let failure = run_once(&py(code), "1", LIMIT).await.unwrap_err();
    assert!(!failure.transient);
    assert!(
        failure.message.starts_with("exit 3: …x"),
        "{}",
        &failure.message[..40]
    );
    assert!(failure.message.ends_with("the end"));
    assert!(failure.message.len() < 2100, "{}", failure.message.len());
}

#[tokio::test]
async fn empty_stderr_is_said_so() {
    let failure = run_once(&py("import sys; sys.exit(4)"), "1", LIMIT)
        .await
        .unwrap_err();
    assert_eq!(failure.message, "exit 4: (nothing on stderr)");
}

#[tokio::test]
async fn death_by_signal_is_permanent() {
    let argv = py("import os; os.kill(os.getpid(), 9)");
    let failure = run_once(&argv, "1", LIMIT).await.unwrap_err();
    assert!(!failure.transient);
    assert!(
        failure.message.starts_with("killed by signal 9"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn output_that_is_not_json_is_a_permanent_failure() {
    let argv = py("print('hello\\tworld ' * 100)");
    let failure = run_once(&argv, "1", LIMIT).await.unwrap_err();
    assert!(!failure.transient);
    let message = &failure.message;
    assert!(
        message.starts_with("the program printed output that is not JSON ("),
        "{message}"
    );
    assert!(
        message.contains(r#": "hello\tworld hello\tworld"#),
        "{message}"
    );
    assert!(message.contains("… (1201 bytes in all)"), "{message}");
    assert!(message.len() < 500, "{message}");
}

#[tokio::test]
async fn empty_output_is_not_json() {
    let failure = run_once(&py("pass"), "1", LIMIT).await.unwrap_err();
    assert!(
        failure.message.contains("not JSON (it is empty)"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn a_run_past_the_time_limit_is_killed() {
    let limit = Duration::from_secs(1);
    let started = Instant::now();
    let argv = py("import time; time.sleep(30)");
    let failure = run_once(&argv, "1", limit).await.unwrap_err();
    assert!(
        started.elapsed() < limit + Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(!failure.transient);
    assert_eq!(
        failure.message,
        "timed out after 1s (the per-item time limit, --exec-timeout)"
    );
}

/// A 1 MB item through programs that echo as they read: this deadlocks unless
/// stdout is read while stdin is still being written.
#[tokio::test]
async fn a_large_input_is_echoed_without_deadlock() {
    let input = format!("\"{}\"", "a".repeat(1 << 20));
    let cat = vec!["cat".to_owned()];
    assert_eq!(run_once(&cat, &input, LIMIT).await.unwrap().get(), input);
    let argv = py("import sys\nfor chunk in iter(lambda: sys.stdin.read(4096), ''):\n    sys.stdout.write(chunk); sys.stdout.flush()");
    assert_eq!(run_once(&argv, &input, LIMIT).await.unwrap().get(), input);
}

#[tokio::test]
async fn output_over_16_mib_is_refused() {
    let argv = py(&format!(
        "import sys; sys.stdout.write('1' * {})",
        MAX_OUTPUT_BYTES + 10
    ));
    let failure = run_once(&argv, "1", LIMIT).await.unwrap_err();
    assert!(!failure.transient);
    assert!(
        failure.message.starts_with("output larger than 16 MiB"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn a_program_that_does_not_read_stdin_is_fine() {
    let input = format!("\"{}\"", "a".repeat(1 << 20));
    let output = run_once(&py("print(7)"), &input, LIMIT).await.unwrap();
    assert_eq!(output.get(), "7");
}

#[tokio::test]
async fn a_program_that_cannot_start_is_a_permanent_failure() {
    let argv = vec!["/nonexistent/program".to_owned()];
    let failure = run_once(&argv, "1", LIMIT).await.unwrap_err();
    assert!(!failure.transient);
    assert!(
        failure
            .message
            .starts_with("could not start '/nonexistent/program': "),
        "{}",
        failure.message
    );
    let failure = run_once(&[], "1", LIMIT).await.unwrap_err();
    assert!(failure.message.contains("the command is empty"));
}
