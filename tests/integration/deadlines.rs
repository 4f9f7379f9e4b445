//! Nothing waits forever on the way in: pointed at a port that accepts TCP and never answers (a broker
//! still starting, a wrong port), the producer fails within its deadline with a clear error, and
//! workers and consumers keep retrying and say so. A comma-separated `AMQP_URL` fails over past a node
//! that is down.

use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use taskq_tests::{amqp_url, Deployment};

/// A port on 127.0.0.1 that accepts connections and never says a word; its URL with `scheme`.
struct Silent {
    port: u16,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Silent {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                keep.lock().expect("not poisoned").push(stream);
            }
        });
        Self { port, _held: held }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

#[test]
fn the_producer_gives_up_on_a_silent_broker_or_redis_within_its_deadline() {
    let silent = Silent::start();
    let deployment = Deployment::new("silent-producer");
    let args = ["submit", "square", "--values", "1..=3", "--allow-unserved"];
    let deadline = [("TASKQ_CONNECT_TIMEOUT", "1")];

    let started = Instant::now();
    let broker = deployment.producer_env(&args, &[deadline[0], ("AMQP_URL", &silent.url("amqp"))]);
    let took = started.elapsed();
    assert_eq!(broker.code(), Some(1), "{}", broker.stderr());
    assert!(
        broker.stderr().contains("no AMQP handshake within 1s"),
        "the error says what happened: {}",
        broker.stderr()
    );
    assert!(took < Duration::from_secs(10), "gave up in {took:?}");

    let started = Instant::now();
    let redis_url = format!("redis://127.0.0.1:{}", silent.port);
    let redis = deployment.producer_env(&args, &[deadline[0], ("REDIS_URL", &redis_url)]);
    let took = started.elapsed();
    assert_eq!(redis.code(), Some(1), "{}", redis.stderr());
    assert!(
        redis.stderr().contains("does not answer as Redis"),
        "{}",
        redis.stderr()
    );
    assert!(took < Duration::from_secs(10), "gave up in {took:?}");
}

#[test]
fn workers_and_consumers_keep_retrying_a_silent_broker_and_say_so() {
    let silent = Silent::start();
    let mut deployment = Deployment::with_amqp_url("silent-services", silent.url("amqp"));
    let worker = deployment.start_worker_without_waiting(&["--connect-timeout", "0.5"]);
    let consumer = deployment.start_consumer_with(&["--connect-timeout", "0.5"]);
    let retried = |deployment: &Deployment, index: usize| {
        deployment
            .log(index)
            .matches("no AMQP handshake within 500ms")
            .count()
            >= 2
    };
    let limit = Instant::now() + Duration::from_secs(30);
    while !(retried(&deployment, worker) && retried(&deployment, consumer)) {
        assert!(
            Instant::now() < limit,
            "worker and consumer retried twice within 30 s:\n{}\n{}",
            deployment.log(worker),
            deployment.log(consumer)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(deployment.is_running(worker), "{}", deployment.log(worker));
    assert!(
        deployment.is_running(consumer),
        "{}",
        deployment.log(consumer)
    );
}

#[test]
fn a_list_of_broker_nodes_fails_over_past_one_that_is_down() {
    let down = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        listener.local_addr().expect("local address").port()
    };
    let nodes = format!("amqp://guest:guest@127.0.0.1:{down}/%2f, {}", amqp_url());
    let mut deployment = Deployment::with_amqp_url("node-list", nodes);
    deployment.start(2, &[]);
    let run = deployment.producer(&[
        "submit",
        "square",
        "--values",
        "1..=50",
        "--chunk-size",
        "7",
        "--wait",
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let summary = run.stdout_json();
    let total: i128 = (1..=50i128).map(|x| x * x).sum();
    assert_eq!(
        summary["aggregate"]["total"],
        total.to_string().parse::<serde_json::Value>().unwrap()
    );
    assert_eq!(summary["items"], 50);
}
