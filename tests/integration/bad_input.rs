//! Bad input: each is a clear error and a non-zero exit, and nothing is half-published. No worker runs
//! here, so every submit passes `--allow-unserved`: these tests are about the input and the services,
//! not about whether a kind is served.

use taskq_tests::Deployment;

/// Asserts the run failed with `code` and said `expected`, and that the namespace holds no job.
async fn assert_refused(
    deployment: &Deployment,
    args: &[&str],
    env: &[(&str, &str)],
    code: i32,
    expected: &str,
) {
    let run = deployment.producer_env(args, env);
    assert_eq!(
        run.code(),
        Some(code),
        "{args:?}\nstdout: {}\nstderr: {}",
        run.stdout(),
        run.stderr()
    );
    assert!(
        run.stderr().contains(expected),
        "{args:?}: stderr lacks '{expected}':\n{}",
        run.stderr()
    );
    assert!(
        run.stdout().is_empty(),
        "nothing on stdout: {}",
        run.stdout()
    );
    let store = deployment.store().await;
    assert_eq!(
        store.delete_everything().await.unwrap(),
        0,
        "a job was recorded in Redis"
    );
}

#[tokio::test]
async fn malformed_ranges_are_refused_before_connecting() {
    let deployment = Deployment::new("badrange");
    let submit = |values| vec!["submit", "square", "--allow-unserved", "--values", values];
    assert_refused(
        &deployment,
        &submit("1..=x"),
        &[],
        2,
        "'x' in '1..=x' is not a valid value",
    )
    .await;
    assert_refused(&deployment, &submit("9..=1"), &[], 2, "is empty").await;
    assert_refused(
        &deployment,
        &[
            "submit",
            "sum-squares",
            "--allow-unserved",
            "--from",
            "5",
            "--count",
            "0",
        ],
        &[],
        2,
        "use 1 to",
    )
    .await;
}

#[tokio::test]
async fn zero_chunk_size_is_refused() {
    let deployment = Deployment::new("zerochunk");
    let args = [
        "submit",
        "square",
        "--allow-unserved",
        "--values",
        "1..=14",
        "--chunk-size",
        "0",
    ];
    assert_refused(
        &deployment,
        &args,
        &[],
        2,
        "chunk size 0 is out of range: use 1 to",
    )
    .await;
}

#[tokio::test]
async fn unreachable_broker_is_named_without_its_password() {
    let deployment = Deployment::new("nobroker");
    let args = [
        "submit",
        "square",
        "--allow-unserved",
        "--values",
        "1..=14",
        "--wait",
    ];
    let env = [("AMQP_URL", "amqp://guest:hunter2@127.0.0.1:1/%2f")];
    assert_refused(
        &deployment,
        &args,
        &env,
        1,
        "cannot reach RabbitMQ at amqp://guest:***@127.0.0.1:1",
    )
    .await;
    let run = deployment.producer_env(&args, &env);
    assert!(
        !run.stderr().contains("hunter2"),
        "password leaked: {}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("AMQP_URL"),
        "says what to do: {}",
        run.stderr()
    );
}

#[tokio::test]
async fn unreachable_redis_is_named() {
    let deployment = Deployment::new("noredis");
    let args = ["submit", "square", "--allow-unserved", "--values", "1..=14"];
    let env = [("REDIS_URL", "redis://:hunter2@127.0.0.1:1")];
    assert_refused(
        &deployment,
        &args,
        &env,
        1,
        "cannot reach Redis at redis://:***@127.0.0.1:1",
    )
    .await;
    deployment.declare().await;
    let queue = deployment.topology().task_queue("square");
    assert_eq!(
        deployment.queue_depth(&queue).await,
        0,
        "nothing was published"
    );
}

#[test]
fn unknown_jobs_are_explained() {
    let deployment = Deployment::new("nojob");
    let run = deployment.producer(&["status", "00000000-0000-4000-8000-000000000000"]);
    assert_eq!(run.code(), Some(1));
    assert!(
        run.stderr().contains("is unknown to Redis under prefix"),
        "{}",
        run.stderr()
    );
    let run = deployment.producer(&["status", "not-a-job"]);
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr().contains("is not a job id"), "{}", run.stderr());
}
