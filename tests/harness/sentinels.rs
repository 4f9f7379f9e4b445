//! A private Redis behind Sentinel for failover tests: a master (append-only file on), its replicas and
//! three sentinels, each a `redis-server` process on a free 127.0.0.1 port with its files in a
//! directory of its own, all killed when the [`SentinelCluster`] is dropped. The shared Redis on 6379
//! is never touched. The sentinels notice a dead master within [`DOWN_AFTER`] and promote a replica.
//!
//! Commands go through `redis-cli` (installed with `redis-server`), which prints one reply element a
//! line when its output is not a terminal.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the sentinels wait before they hold a silent master down.
pub const DOWN_AFTER: Duration = Duration::from_millis(1000);

/// The name the sentinels monitor the master under.
pub const MASTER_NAME: &str = "taskq-test";

/// How long the cluster may take to start (replicas in sync, sentinels aware of each other).
const START_LIMIT: Duration = Duration::from_secs(30);

/// A master, its replicas and three sentinels.
pub struct SentinelCluster {
    dir: tempfile::TempDir,
    /// The first master, until it is killed.
    master: Option<Server>,
    replicas: Vec<Server>,
    sentinels: Vec<Server>,
}

struct Server {
    port: u16,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SentinelCluster {
    /// Starts a master with `replicas` replicas and three sentinels (quorum 2), and waits until the
    /// replicas are in sync and every sentinel knows the replicas and the other sentinels.
    pub fn start(replicas: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ports = free_ports(1 + replicas + 3).into_iter();
        let master_port = ports.next().expect("a port");
        let master = start_server(dir.path(), "master", master_port, &[]);
        let master_address = master_port.to_string();
        let replicas = (0..replicas)
            .map(|i| {
                let port = ports.next().expect("a port");
                let follow = ["--replicaof", "127.0.0.1", &master_address];
                start_server(dir.path(), &format!("replica-{i}"), port, &follow)
            })
            .collect();
        let sentinels = ports
            .enumerate()
            .map(|(i, port)| start_sentinel(dir.path(), i, port, master_port))
            .collect();
        let cluster = Self {
            dir,
            master: Some(master),
            replicas,
            sentinels,
        };
        cluster.wait_until_ready();
        cluster
    }

    /// The `redis+sentinel://` URL of the cluster.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// The ports of the replicas started with the cluster.
    pub fn replica_ports(&self) -> Vec<u16> {
        self.replicas.iter().map(|replica| replica.port).collect()
    }

    /// The master's port as the first sentinel that answers names it.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|sentinel| {
            let reply = cli(
                sentinel.port,
                &["sentinel", "get-master-addr-by-name", MASTER_NAME],
            );
            reply.get(1)?.parse().ok()
        })
    }

    /// Kills the first master with SIGKILL (no chance to write or hand over anything); returns its port.
    pub fn kill_master(&mut self) -> u16 {
        let master = self.master.take().expect("the master runs");
        let port = master.port;
        drop(master);
        port
    }

    /// Waits (at most `limit`) until the sentinels name a master other than `old_port` that answers as
    /// master and has `replicas` replicas connected; returns its port.
    pub fn wait_for_promotion(&self, old_port: u16, replicas: usize, limit: Duration) -> u16 {
        self.wait("a replica to be promoted", limit, || {
            let port = self.master_port().filter(|port| *port != old_port)?;
            let role = cli(port, &["role"]);
            let connected = role.get(2..).map_or(0, |rest| rest.len() / 3);
            (role.first()? == "master" && connected >= replicas).then_some(port)
        })
    }

    fn wait_until_ready(&self) {
        let master = self.master.as_ref().expect("the master runs").port;
        self.wait("the replicas to sync", START_LIMIT, || {
            let synced = |replica: &Server| {
                let info = cli(replica.port, &["info", "replication"]).join("\n");
                info.contains("master_link_status:up")
            };
            self.replicas.iter().all(synced).then_some(())
        });
        let expect = (
            self.replicas.len().to_string(),
            (self.sentinels.len() - 1).to_string(),
        );
        self.wait("the sentinels to know each other", START_LIMIT, || {
            let knows_all = |sentinel: &Server| {
                let fields = cli(sentinel.port, &["sentinel", "master", MASTER_NAME]);
                let field = |name: &str| {
                    let at = fields.iter().position(|f| f == name)?;
                    fields.get(at + 1).cloned()
                };
                field("port") == Some(master.to_string())
                    && field("num-slaves") == Some(expect.0.clone())
                    && field("num-other-sentinels") == Some(expect.1.clone())
            };
            self.sentinels.iter().all(knows_all).then_some(())
        });
    }

    /// Polls `check` every 50 ms until it returns `Some`, failing with the servers' logs after `limit`.
    fn wait<T>(&self, what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every server's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
            .unwrap_or_default();
        names.retain(|path| path.extension().is_some_and(|ext| ext == "log"));
        names.sort();
        names
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                format!("--- {} ---\n{text}", path.display())
            })
            .collect()
    }
}

/// `count` distinct ports free on 127.0.0.1 right now.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("address").port())
        .collect()
}

fn spawn(args: &[String]) -> Child {
    Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}): install it (scripts/services.sh does)")
        })
}

fn start_server(dir: &Path, name: &str, port: u16, extra: &[&str]) -> Server {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).expect("data dir");
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--dir",
        &data.display().to_string(),
        "--logfile",
        &dir.join(format!("{name}.log")).display().to_string(),
        "--appendonly",
        "yes",
        "--save",
        "",
        // A replica resynchronising after the failover need not wait for others to join it.
        "--repl-diskless-sync-delay",
        "0",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    args.extend(extra.iter().map(|arg| arg.to_string()));
    Server {
        port,
        child: spawn(&args),
    }
}

fn start_sentinel(dir: &Path, index: usize, port: u16, master_port: u16) -> Server {
    let name = format!("sentinel-{index}");
    let config = dir.join(format!("{name}.conf"));
    let down_after = DOWN_AFTER.as_millis();
    let text = format!(
        "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {log}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} {down_after}\n\
         sentinel failover-timeout {MASTER_NAME} 5000\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = dir.display(),
        log = dir.join(format!("{name}.log")).display(),
    );
    // The sentinel rewrites its configuration as it learns, so it gets a file of its own.
    std::fs::write(&config, text).expect("sentinel config");
    Server {
        port,
        child: spawn(&[config.display().to_string(), "--sentinel".into()]),
    }
}

/// Runs `redis-cli -p port args...` and returns its reply, one element a line (empty if it failed).
pub fn cli(port: u16, args: &[&str]) -> Vec<String> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output();
    match output {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}
