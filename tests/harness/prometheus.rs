//! Prometheus for the scrape test: a server of the test's own (its own loopback port, configuration and
//! storage directory, killed on drop), queried through its HTTP API; `promtool` for the deploy files; and
//! a plain HTTP GET for loopback servers, the `/metrics` endpoints included.
//!
//! Prometheus comes from Debian's `prometheus` package (`scripts/services.sh` installs it). A machine
//! without it fails the test in CI and skips it elsewhere, saying so ([`require`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Deployment;

/// How long one HTTP request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Prometheus may take to start.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long a started process may take to log its metrics address.
const ADDRESS_LIMIT: Duration = Duration::from_secs(30);

/// Whether Prometheus and promtool are installed. When they are not, CI (`CI` set) fails with what to
/// do, and elsewhere the test is skipped with a message on stderr.
pub fn require(test: &str) -> bool {
    let installed = ["prometheus", "promtool"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    let advice =
        "Prometheus is not installed: run scripts/services.sh (it installs Debian's `prometheus` \
                  package, which has promtool too) or `apt-get install prometheus`";
    if !installed && std::env::var_os("CI").is_some() {
        panic!("{test}: {advice}");
    }
    if !installed {
        eprintln!("SKIPPED {test}: {advice}");
    }
    installed
}

/// Runs promtool with `args` in `dir` and returns its output; fails the test with the output if promtool
/// fails.
pub fn promtool(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The address a process started with `--metrics-addr` serves its metrics on, read from its log
/// (`serving metrics at http://ADDRESS/metrics`): so port 0 works, and no port is picked and raced for.
pub fn metrics_address(deployment: &Deployment, index: usize) -> String {
    let deadline = Instant::now() + ADDRESS_LIMIT;
    loop {
        let log = deployment.log(index);
        let address = log
            .split("serving metrics at http://")
            .nth(1)
            .and_then(|rest| rest.split("/metrics").next());
        if let Some(address) = address {
            return address.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "process {index} logged no metrics address within {ADDRESS_LIMIT:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET http://{address}{path}` over HTTP/1.0 (no chunked bodies); the body of a 200 answer, or why not.
pub fn http_get(address: &str, path: &str) -> Result<String, String> {
    let socket: SocketAddr = address
        .to_socket_addrs()
        .map_err(|e| format!("{address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&socket, HTTP_TIMEOUT)
        .map_err(|e| format!("connect to {address}: {e}"))?;
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(HTTP_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send to {address}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("read from {address}: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{address}{path}: no HTTP answer: {answer}"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(body.to_owned())
    } else {
        Err(format!("{address}{path}: {status}: {body}"))
    }
}

/// `text` percent-encoded for a URL's query string.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// One sample of a query's answer: its labels and value.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The series' labels (`__name__` included when the query keeps it).
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// A Prometheus server of the test's own, killed on drop.
pub struct Prometheus {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML) on a free loopback port, keeping its configuration, data
    /// and log in `dir`; returns once it is ready.
    pub fn start(dir: &Path, config: &str) -> Self {
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write the Prometheus configuration");
        let log = dir.join("prometheus.log");
        let address = free_loopback_address();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("Prometheus log file"))
            .spawn()
            .expect("start prometheus");
        let mut prometheus = Self {
            child,
            address,
            log,
        };
        prometheus.wait_until_ready();
        prometheus
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + START_LIMIT;
        while http_get(&self.address, "/-/ready").is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready within {START_LIMIT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What Prometheus logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `data` of an API answer (`/api/v1/...`), or why there is none.
    pub fn api(&self, path_and_query: &str) -> Result<serde_json::Value, String> {
        let body = http_get(&self.address, path_and_query)?;
        let answer: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("not JSON ({e}): {body}"))?;
        match answer["status"].as_str() {
            Some("success") => Ok(answer["data"].clone()),
            _ => Err(format!("{path_and_query}: {answer}")),
        }
    }

    /// Evaluates `promql` now (an instant query).
    pub fn query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", url_encode(promql)))?;
        let samples = data["result"].as_array().cloned().unwrap_or_default();
        Ok(samples
            .iter()
            .map(|sample| Sample {
                labels: serde_json::from_value(sample["metric"].clone()).unwrap_or_default(),
                value: sample["value"][1]
                    .as_str()
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(f64::NAN),
            })
            .collect())
    }

    /// Waits (at most `limit`) until `promql` gives exactly one sample worth `expected`; fails with the
    /// last answer otherwise.
    pub fn wait_for_value(&self, promql: &str, expected: f64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let answer = self.query(promql);
            if let Ok([only]) = answer.as_deref() {
                if only.value == expected {
                    eprintln!("prometheus: {promql} = {expected}");
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "`{promql}` did not become {expected} within {limit:?}; last answer: {answer:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port free right now (bound, then released for the server to take).
fn free_loopback_address() -> String {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    probe.local_addr().expect("local address").to_string()
}
