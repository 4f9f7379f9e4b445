//! Test harness: a [`Deployment`] is one isolated namespace (its own queue and key prefix) on the real
//! RabbitMQ and Redis, with helpers to start the real binaries in it and to look at the broker and store.
//! Dropping it kills its processes and deletes its queues and keys, so tests run in parallel on one broker.
//!
//! The binaries are the ones cargo built beside the test executable (`cargo build --workspace --bins`):
//! the stock `worker`, and `test-worker` (this package's), which also serves the test-only kinds.
//! Workers are started and then waited for until they are registered, so a test may submit at once: the
//! producer refuses a kind no live worker serves.
//! [`fixture`] is the local HTTP server download tests and the benchmark fetch from; [`sentinels`] a
//! private Redis master, replicas and sentinels for failover tests.

pub mod fixture;
pub mod sentinels;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use taskq_common::broker::{self, Outgoing, Publisher};
use taskq_common::envelope::{encode, TaskMessage};
use taskq_common::job::{now_ms, JobId, JobSpec};
use taskq_common::payload::TaskPayload;
use taskq_common::registry::{KindInfo, Registry};
use taskq_common::store::JobStore;
use taskq_common::topology::Topology;
use worker::http::{HttpClient, HttpSettings};
use worker::tasks::{Download, Square, SumSquares};

/// The stock worker binary.
pub const WORKER: &str = "worker";
/// The worker binary that also serves the test-only kinds.
pub const TEST_WORKER: &str = "test-worker";
/// The worker of examples/wordcount: a user's own kind (`wordcount`) beside the built-in `square`.
pub const WORDCOUNT_WORKER: &str = "wordcount-worker";
/// The kinds the stock `worker` serves.
pub const BUILTIN_KINDS: [&str; 4] = ["sum-squares", "square", "download", "image-blur"];
/// The kinds only `test-worker` serves.
pub const TEST_KINDS: [&str; 6] = [
    "test-abort",
    "test-flaky",
    "test-echo-after",
    "user-square",
    "test-sum",
    "test-negate",
];
/// How long a started worker may take to appear in the registry.
pub const REGISTRATION_LIMIT: Duration = Duration::from_secs(30);

/// The broker the tests use (`TASKQ_TEST_AMQP_URL`, default local guest).
pub fn amqp_url() -> String {
    std::env::var("TASKQ_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The Redis the tests use (`TASKQ_TEST_REDIS_URL`, default local).
pub fn redis_url() -> String {
    std::env::var("TASKQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Where cargo put the binaries: beside the test executable's `deps` folder.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// One isolated namespace on the real broker and store.
pub struct Deployment {
    /// The queue and key prefix.
    pub prefix: String,
    /// Where processes write their logs and the consumer its output.
    pub dir: tempfile::TempDir,
    amqp_url: String,
    redis_url: String,
    processes: Vec<Process>,
    /// Kinds whose queues a test declared, beyond the known ones: deleted with the namespace.
    kinds: Mutex<BTreeSet<String>>,
}

struct Process {
    binary: String,
    args: Vec<String>,
    log_name: String,
    child: Child,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Deployment {
    /// A fresh namespace named after the test.
    pub fn new(test: &str) -> Self {
        Self::with_amqp_url(test, amqp_url())
    }

    /// A fresh namespace whose processes use `amqp_url` (for example with a short heartbeat).
    pub fn with_amqp_url(test: &str, amqp_url: String) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("t-{test}-{}-{n}", std::process::id());
        Self {
            prefix,
            dir: tempfile::tempdir().expect("temp dir"),
            amqp_url,
            redis_url: redis_url(),
            processes: Vec::new(),
            kinds: Mutex::default(),
        }
    }

    /// The same namespace with its processes, and the harness's own store, on the Redis at `url` (for
    /// example a `redis+sentinel://` URL of a [`sentinels::SentinelCluster`]).
    pub fn with_redis_url(mut self, url: String) -> Self {
        self.redis_url = url;
        self
    }

    /// The Redis URL of this namespace's processes.
    pub fn redis_url(&self) -> &str {
        &self.redis_url
    }

    /// The deployment's queue names.
    pub fn topology(&self) -> Topology {
        Topology::new(self.prefix.clone())
    }

    /// The consumer's output directory.
    pub fn output_dir(&self) -> PathBuf {
        self.dir.path().join("output")
    }

    fn command(&self, binary_name: &str) -> Command {
        let mut command = Command::new(binary(binary_name));
        command
            .env("AMQP_URL", &self.amqp_url)
            .env("REDIS_URL", &self.redis_url)
            .env("TASKQ_PREFIX", &self.prefix)
            .env("TASKQ_OUTPUT_DIR", self.output_dir())
            .env_remove("TASKQ_LOG_FORMAT")
            .env("RUST_LOG", "info");
        command
    }

    fn spawn(&mut self, binary_name: &str, args: &[&str]) -> usize {
        let index = self.processes.len();
        let log_name = format!("{binary_name}-{index}.log");
        let log = std::fs::File::create(self.dir.path().join(&log_name)).expect("log file");
        let child = self
            .command(binary_name)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary_name}: {e}"));
        let args = args.iter().map(|a| a.to_string()).collect();
        self.processes.push(Process {
            binary: binary_name.to_owned(),
            args,
            log_name,
            child,
        });
        index
    }

    /// Kills a process with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill(&mut self, index: usize) {
        let child = &mut self.processes[index].child;
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts a new process like the one at `index` (same binary and arguments); returns its index.
    /// Does not wait for a worker to register: tests restart workers that may die again at once (a
    /// poison chunk) or are killed again soon (chaos), and the ones they replace are registered already.
    pub fn restart(&mut self, index: usize) -> usize {
        let (binary, args) = (
            self.processes[index].binary.clone(),
            self.processes[index].args.clone(),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.spawn(&binary, &args)
    }

    /// True while the process runs.
    pub fn is_running(&mut self, index: usize) -> bool {
        matches!(self.processes[index].child.try_wait(), Ok(None))
    }

    /// Starts a stock worker and waits until it is registered; returns its process index.
    pub fn start_worker(&mut self, args: &[&str]) -> usize {
        self.start_workers(WORKER, 1, args)[0]
    }

    /// Starts a test worker (built-in and test-only kinds) and waits until it is registered; returns its
    /// process index.
    pub fn start_test_worker(&mut self, args: &[&str]) -> usize {
        self.start_workers(TEST_WORKER, 1, args)[0]
    }

    /// Starts a stock worker without waiting for it to register: for workers that are not meant to
    /// (for example pointed at a broker that is down); returns its process index.
    pub fn start_worker_without_waiting(&mut self, args: &[&str]) -> usize {
        self.spawn(WORKER, args)
    }

    /// Starts `count` workers of `binary` ([`WORKER`] or [`TEST_WORKER`]) with `args`, then waits until
    /// every one is registered (see [`Deployment::wait_until_registered`]); returns their indexes.
    pub fn start_workers(&mut self, binary: &str, count: usize, args: &[&str]) -> Vec<usize> {
        let indexes: Vec<usize> = (0..count).map(|_| self.spawn(binary, args)).collect();
        self.wait_until_registered(&indexes);
        indexes
    }

    /// Waits (at most [`REGISTRATION_LIMIT`]) until each started worker at `indexes` has a live registry
    /// entry with its pid and at least one kind: it then consumes its kinds' queues, and the producer
    /// accepts jobs of them. Fails with the logs if one exits first or takes longer.
    pub fn wait_until_registered(&mut self, indexes: &[usize]) {
        let topology = self.topology();
        let processes = &mut self.processes;
        let url = &self.redis_url;
        let waited = block_on(async move {
            let store = JobStore::connect(url, topology)
                .await
                .map_err(|e| format!("cannot reach Redis: {e}"))?;
            let registry = Registry::new(&store);
            let deadline = Instant::now() + REGISTRATION_LIMIT;
            let mut waiting = indexes.to_vec();
            loop {
                let membership = registry
                    .membership()
                    .await
                    .map_err(|e| format!("cannot read the registry: {e}"))?;
                waiting.retain(|index| {
                    let pid = processes[*index].child.id();
                    let registered = |w: &taskq_common::registry::WorkerInfo| {
                        w.pid == pid && !w.kinds.is_empty()
                    };
                    !membership.live.iter().any(registered)
                });
                if waiting.is_empty() {
                    return Ok(());
                }
                for index in &waiting {
                    if let Ok(Some(status)) = processes[*index].child.try_wait() {
                        return Err(format!(
                            "process {index} exited ({status}) before it registered"
                        ));
                    }
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "processes {waiting:?} did not register within {REGISTRATION_LIMIT:?}"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        if let Err(why) = waited {
            panic!("{why}\n{}", self.all_logs());
        }
    }

    /// Starts the consumer; returns its process index.
    pub fn start_consumer(&mut self) -> usize {
        self.start_consumer_with(&[])
    }

    /// Starts the consumer with `args`; returns its process index.
    pub fn start_consumer_with(&mut self, args: &[&str]) -> usize {
        self.spawn("consumer", args)
    }

    /// Starts `workers` stock workers with `args`, waits until they are registered, then starts one
    /// consumer.
    pub fn start(&mut self, workers: usize, args: &[&str]) {
        self.start_workers(WORKER, workers, args);
        self.start_consumer();
    }

    /// The OS pid of a started process.
    pub fn pid(&self, index: usize) -> u32 {
        self.processes[index].child.id()
    }

    /// Everything a started process logged so far.
    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(&self.processes[index].log_name))
            .unwrap_or_default()
    }

    /// All logs, for failure messages.
    pub fn all_logs(&self) -> String {
        (0..self.processes.len())
            .map(|i| format!("--- {} ---\n{}", self.processes[i].log_name, self.log(i)))
            .collect()
    }

    /// Runs the producer to completion with `args` (a 60 s limit), in this namespace.
    pub fn producer(&self, args: &[&str]) -> Run {
        self.run_with(self.command("producer").args(args))
    }

    /// Runs the producer with extra environment (for example another broker URL).
    pub fn producer_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.command("producer");
        command.args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        self.run_with(&mut command)
    }

    /// Runs the producer with `stdin` as its standard input (for `--urls-file -`).
    pub fn producer_stdin(&self, args: &[&str], stdin: &str) -> Run {
        Background::start_with_input(self.command("producer").args(args), Some(stdin))
            .finish(Duration::from_secs(120))
    }

    fn run_with(&self, command: &mut Command) -> Run {
        Background::start(command).finish(Duration::from_secs(120))
    }

    /// Starts the producer with `args` and returns without waiting for it.
    pub fn producer_in_background(&self, args: &[&str]) -> Background {
        Background::start(self.command("producer").args(args))
    }

    /// A job store on this namespace.
    pub async fn store(&self) -> JobStore {
        JobStore::connect(&self.redis_url, self.topology())
            .await
            .expect("redis")
    }

    /// Records a job in Redis as `producer submit` would, for tests that publish its messages by hand.
    pub async fn create_job(&self, kind: &str, total_chunks: u32, total_items: u64) -> JobId {
        let id = JobId::new();
        let spec = JobSpec {
            id,
            kind: kind.into(),
            total_chunks,
            total_items,
            submitted_at_ms: now_ms(),
        };
        self.store()
            .await
            .create_job(&spec)
            .await
            .expect("create job");
        id
    }

    /// Records in the registry how the built-in kinds are declared, as a worker does when it starts: for
    /// tests that run a consumer without any worker (the consumer folds a job's aggregate as its kind
    /// declares it). Derived from the kinds themselves, so it cannot drift from what workers declare.
    pub async fn record_builtin_kinds(&self) {
        let http = HttpClient::new(HttpSettings {
            timeout: Duration::from_secs(1),
            max_body_bytes: 1,
            max_redirects: 0,
            retries: 0,
            rules: Default::default(),
        })
        .expect("HTTP client");
        let infos: Vec<KindInfo> = worker::Worker::builder()
            .cpu_task(SumSquares)
            .cpu_task(Square)
            .io_task(Download::new(http))
            .declarations();
        Registry::new(&self.store().await)
            .declare_kinds(&infos)
            .await
            .expect("declare kinds");
    }

    /// Publishes hand-made messages (each to its own queue) with confirms.
    pub async fn publish(&self, messages: &[Outgoing]) {
        let connection = broker::connect(&amqp_url(), "test").await.expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        let publisher = Publisher::new(channel).await.expect("confirm mode");
        for message in messages {
            publisher.publish(message).await.expect("publish");
        }
        let _ = connection.close(200, "done".into()).await;
    }

    /// A task message for `kind`'s queue, built by hand: `kind`, wire `version` and `payload` as given.
    /// (To publish it to another kind's queue, replace its `queue`.)
    pub fn task(
        &self,
        job: JobId,
        chunk: u32,
        kind: &str,
        version: u16,
        payload: Vec<u8>,
    ) -> Outgoing {
        let body = encode(&TaskMessage {
            version,
            job_id: job,
            task_id: chunk,
            kind: kind.into(),
            attempt: 1,
            stage: 0,
            level: 0,
            payload,
        });
        self.raw_task(kind, body)
    }

    /// A message for `kind`'s queue with any body.
    pub fn raw_task(&self, kind: &str, body: Vec<u8>) -> Outgoing {
        Outgoing {
            queue: self.topology().task_queue(kind),
            body,
            message_id: "hand-made".into(),
            kind: kind.into(),
            ..Outgoing::default()
        }
    }

    /// Submits `square` over 1..=items without waiting; returns the job id.
    pub fn submit_squares(&self, items: u64, chunk_size: u32) -> JobId {
        let values = format!("1..={items}");
        let chunk = chunk_size.to_string();
        let run = self.producer(&[
            "submit",
            "square",
            "--values",
            &values,
            "--chunk-size",
            &chunk,
        ]);
        assert!(run.output.status.success(), "{}", run.stderr());
        run.stdout().trim().parse().expect("job id")
    }

    /// Declares this namespace's shared queues and the built-in kinds' queues (as the binaries do at
    /// start), for tests that publish by hand or look at queues before any worker runs.
    pub async fn declare(&self) {
        self.declare_kinds(&BUILTIN_KINDS).await;
    }

    /// Declares this namespace's shared queues and the queues of `kinds`, which the namespace's cleanup
    /// then deletes too.
    pub async fn declare_kinds(&self, kinds: &[&str]) {
        self.kinds
            .lock()
            .expect("kinds")
            .extend(kinds.iter().map(|kind| kind.to_string()));
        let connection = broker::connect(&amqp_url(), "test").await.expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        let topology = self.topology();
        topology.declare(&channel).await.expect("declare");
        for kind in kinds {
            topology
                .declare_kind(&channel, kind)
                .await
                .expect("declare kind");
        }
        let _ = connection.close(200, "done".into()).await;
    }

    /// Ready messages in a queue.
    pub async fn queue_depth(&self, queue: &str) -> u32 {
        let connection = broker::connect(&amqp_url(), "test").await.expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        let options = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let queue = channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .expect("queue");
        let _ = connection.close(200, "done".into()).await;
        queue.message_count()
    }

    /// A queue's ready messages and consumers as the broker reports them, or `None` if the queue does
    /// not exist (a passive declare is refused).
    pub async fn queue_stats(&self, queue: &str) -> Option<QueueStats> {
        let connection = broker::connect(&amqp_url(), "test").await.expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        let options = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let declared = channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await;
        let _ = connection.close(200, "done".into()).await;
        declared.ok().map(|queue| QueueStats {
            messages: queue.message_count(),
            consumers: queue.consumer_count(),
        })
    }

    /// Writes `contents` to a file named `name` in the deployment's directory; returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
        path
    }

    /// Takes every message out of the dead-letter queue, returning each one's reason header.
    pub async fn drain_dead_letters(&self) -> Vec<String> {
        let connection = broker::connect(&amqp_url(), "test").await.expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        let mut reasons = Vec::new();
        while let Some(message) = channel
            .basic_get(
                self.topology().dead_queue().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get")
        {
            let reason = broker::header(
                &message.delivery.properties,
                taskq_common::topology::REASON_HEADER,
            );
            reasons.push(reason.unwrap_or_else(|| "<no reason header>".into()));
        }
        let _ = connection.close(200, "done".into()).await;
        reasons
    }

    /// Stops a process with SIGTERM and waits (bounded) for it to exit; returns its exit status.
    pub fn terminate(&mut self, index: usize) -> std::process::ExitStatus {
        let pid = self.pid(index).to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.wait_for_exit(index, Duration::from_secs(60))
    }

    /// Waits (bounded by `limit`) for a process to exit by itself; returns its exit status.
    pub fn wait_for_exit(&mut self, index: usize, limit: Duration) -> std::process::ExitStatus {
        let child = &mut self.processes[index].child;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process {index} did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts one stock worker per id (`--worker-id`, then `args`) and waits until all are registered,
    /// so a broadcast job or a command counts them in; returns their process indexes.
    pub fn start_registered_workers(&mut self, ids: &[&str], args: &[&str]) -> Vec<usize> {
        let indexes: Vec<usize> = ids
            .iter()
            .map(|id| {
                let mut all = vec!["--worker-id", id];
                all.extend_from_slice(args);
                self.spawn(WORKER, &all)
            })
            .collect();
        self.wait_until_registered(&indexes);
        indexes
    }

    /// The ids of the workers with a live registry entry, sorted.
    pub async fn live_workers(&self) -> Vec<String> {
        let membership = Registry::new(&self.store().await)
            .membership()
            .await
            .expect("registry");
        membership.live.into_iter().map(|w| w.worker_id).collect()
    }

    async fn clean_up(prefix: String, redis_url: String, mut kinds: BTreeSet<String>) {
        let topology = Topology::new(prefix);
        let store = JobStore::connect(&redis_url, topology.clone()).await.ok();
        // Workers killed without a graceful stop leave their broadcast queue; the registry knows them.
        let mut queues = topology.queues();
        kinds.extend(
            BUILTIN_KINDS
                .iter()
                .chain(&TEST_KINDS)
                .map(|k| k.to_string()),
        );
        if let Some(store) = &store {
            let registry = Registry::new(store);
            if let Ok(membership) = registry.membership().await {
                let workers = membership.live.into_iter().map(|w| w.worker_id);
                let ids = workers.chain(membership.crashed.into_iter().map(|w| w.worker_id));
                queues.extend(ids.map(|id| topology.broadcast_queue(&id)));
            }
            // Every kind a worker served here (an --exec program, say) declared its queue.
            if let Ok(declared) = registry.kinds().await {
                kinds.extend(declared.into_iter().map(|kind| kind.name));
            }
        }
        queues.extend(kinds.iter().map(|kind| topology.task_queue(kind)));
        if let Ok(connection) = broker::connect(&amqp_url(), "test cleanup").await {
            if let Ok(channel) = connection.create_channel().await {
                for queue in queues {
                    let _ = channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                let broadcast = topology.broadcast_exchange();
                for exchange in topology.exchanges().into_iter().chain([broadcast]) {
                    let _ = channel
                        .exchange_delete(exchange.as_str().into(), Default::default())
                        .await;
                }
            }
            let _ = connection.close(200, "done".into()).await;
        }
        if let Some(store) = store {
            let _ = store.delete_everything().await;
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for process in &mut self.processes {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        if std::thread::panicking() && std::env::var_os("TASKQ_TEST_KEEP").is_some() {
            let placeholder = tempfile::tempdir().expect("temp dir");
            let kept = std::mem::replace(&mut self.dir, placeholder).keep();
            eprintln!(
                "kept namespace {} and logs in {}",
                self.prefix,
                kept.display()
            );
            return;
        }
        let (prefix, redis_url) = (self.prefix.clone(), self.redis_url.clone());
        let kinds = std::mem::take(&mut *self.kinds.lock().unwrap_or_else(|e| e.into_inner()));
        // Drop cannot await; clean up on a runtime of our own, on a thread of our own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(Self::clean_up(prefix, redis_url, kinds));
            }
        })
        .join();
    }
}

/// What the broker says about a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Ready messages.
    pub messages: u32,
    /// Consumers subscribed to it.
    pub consumers: u32,
}

/// A finished producer run.
pub struct Run {
    /// Exit status and captured output.
    pub output: Output,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// Stdout as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Stderr as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The exit code (`None` if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// Parses stdout as JSON, whatever the exit status (commands print their report either way).
    pub fn stdout_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout()).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\nstdout: {}\nstderr: {}",
                self.stdout(),
                self.stderr()
            )
        })
    }

    /// Asserts success and parses stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        assert!(
            self.output.status.success(),
            "producer failed ({:?}):\nstdout: {}\nstderr: {}",
            self.code(),
            self.stdout(),
            self.stderr()
        );
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout()))
    }
}

/// A producer run going on in the background.
pub struct Background {
    pid: u32,
    started: Instant,
    output: std::sync::mpsc::Receiver<std::io::Result<Output>>,
}

impl Background {
    fn start(command: &mut Command) -> Self {
        Self::start_with_input(command, None)
    }

    fn start_with_input(command: &mut Command, stdin: Option<&str>) -> Self {
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start producer");
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            let text = text.to_owned();
            // On a thread of its own: a producer that stops reading must not block the test.
            std::thread::spawn(move || {
                let _ = pipe.write_all(text.as_bytes());
            });
        }
        let pid = child.id();
        // Collect output on another thread so a full pipe can never block the child while we wait.
        let (sender, output) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(child.wait_with_output());
        });
        Self {
            pid,
            started: Instant::now(),
            output,
        }
    }

    /// Sends a signal (for example `-INT`, as Ctrl-C does) to the process.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, &self.pid.to_string()])
            .status();
    }

    /// Waits for the run to end, killing it and failing after `limit`.
    pub fn finish(self, limit: Duration) -> Run {
        match self.output.recv_timeout(limit) {
            Ok(output) => Run {
                output: output.expect("producer output"),
                elapsed: self.started.elapsed(),
            },
            Err(_) => {
                self.signal("-KILL");
                let output = self
                    .output
                    .recv()
                    .expect("producer output")
                    .expect("producer output");
                panic!(
                    "producer did not finish within {limit:?}\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
}

/// The output file's lines of a completed job, parsed.
pub fn output_lines(summary: &serde_json::Value) -> Vec<serde_json::Value> {
    let path = summary["output"].as_str().expect("output path");
    std::fs::read_to_string(path)
        .expect("output file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect()
}

/// Asserts the job completed with `items` items, none failed, and its output file has exactly `items`
/// lines, each of which `check_line(index, line)` asserts is right.
pub fn assert_every_item_once(
    summary: &serde_json::Value,
    items: u64,
    context: &str,
    mut check_line: impl FnMut(usize, &str),
) {
    assert_eq!(summary["status"], "completed", "{context}: {summary}");
    assert_eq!(summary["items"].as_u64(), Some(items), "{context}");
    assert_eq!(summary["failed"].as_u64(), Some(0), "{context}");
    let text =
        std::fs::read_to_string(summary["output"].as_str().expect("output")).expect("output file");
    let mut count = 0u64;
    for (i, line) in text.lines().enumerate() {
        check_line(i, line);
        count += 1;
    }
    assert_eq!(count, items, "{context}: every item exactly once");
}

/// Asserts the output file holds x*x for x = 1..=items, each exactly once, in order.
pub fn assert_every_square_once(summary: &serde_json::Value, items: u64, context: &str) {
    assert_every_item_once(summary, items, context, |i, line| {
        let x = i as i128 + 1;
        let expected = format!("{{\"index\":{i},\"input\":{x},\"output\":{}}}", x * x);
        assert_eq!(line, expected, "{context}: line {i}");
    });
}

/// An encoded chunk payload of `items` (as JSON, the way the producer sends them), starting at input
/// position `first_index`.
pub fn payload<T: serde::Serialize>(first_index: u64, items: Vec<T>) -> Vec<u8> {
    encode(&TaskPayload::of(first_index, &items).expect("items encode as JSON"))
}

/// Runs `future` to its end on a runtime of its own, on a thread of its own, and returns its output: the
/// harness's process helpers are synchronous (they block, like [`Deployment::producer`]) yet are called
/// from async tests too, where blocking on the test's own runtime would panic. A panic in `future`
/// propagates.
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime")
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Polls `check` every 50 ms until it returns `Some`, failing with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
