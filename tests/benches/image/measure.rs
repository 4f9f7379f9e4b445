//! Measuring a process from outside: wall time, output, and (through `/usr/bin/time`, when installed)
//! peak memory and CPU; a running process's CPU and peak memory read from /proc; the services' processes.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::text;

/// A finished process: wall time, output, and what `/usr/bin/time` said of it.
pub struct Measured {
    /// From start to exit.
    pub wall: Duration,
    /// Exited 0 within its limit.
    pub success: bool,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Its stderr (without `/usr/bin/time`'s own note of a failed status).
    pub stderr: String,
    /// Stderr lines with when they arrived from the start.
    pub stderr_lines: Vec<(Duration, String)>,
    /// Peak resident memory in kB and user + system CPU seconds.
    pub usage: Option<(u64, f64)>,
}

impl Measured {
    /// CPU and peak memory, for the table.
    pub fn resources(&self) -> String {
        match self.usage {
            Some((peak, cpu)) => format!("{cpu:.1} s CPU, {:.0} MB", peak as f64 / 1024.0),
            None => "(no /usr/bin/time)".into(),
        }
    }
}

/// A running process, under `/usr/bin/time` when it is installed (for its peak memory and CPU).
pub struct Timed {
    child: Child,
    /// When it was started.
    pub started: Instant,
    usage_file: Option<tempfile::NamedTempFile>,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<Vec<(Duration, String)>>,
}

impl Timed {
    /// Starts `program` with `args` and extra `env`, its output captured.
    pub fn start(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Timed {
        let usage_file = Path::new("/usr/bin/time")
            .exists()
            .then(|| tempfile::NamedTempFile::new().expect("temp file"));
        let mut command = match &usage_file {
            Some(file) => {
                let mut command = Command::new("/usr/bin/time");
                command
                    .args(["-f", "%M %U %S", "-o", text(file.path())])
                    .arg(program);
                command
            }
            None => Command::new(program),
        };
        command
            .args(args)
            .env_remove("TASKQ_LOG_FORMAT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        let stderr = std::thread::spawn(move || {
            BufReader::new(err)
                .lines()
                .map_while(Result::ok)
                .map(|line| (started.elapsed(), line))
                .collect()
        });
        Timed {
            child,
            started,
            usage_file,
            stdout,
            stderr,
        }
    }

    /// True while it runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the end, killing the process (and what `/usr/bin/time` started) after `limit`.
    pub fn finish(mut self, limit: Duration) -> Measured {
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break Some(status);
            }
            if self.started.elapsed() > limit {
                kill_children(self.child.id());
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let wall = self.started.elapsed();
        let stdout = self.stdout.join().unwrap_or_default();
        let stderr_lines = self.stderr.join().unwrap_or_default();
        let usage = self.usage_file.as_ref().and_then(|file| {
            let text = std::fs::read_to_string(file.path()).ok()?;
            let fields: Vec<&str> = text.lines().last()?.split_whitespace().collect();
            let number = |i: usize| fields.get(i)?.parse::<f64>().ok();
            Some((number(0)? as u64, number(1)? + number(2)?))
        });
        let stderr: Vec<&str> = stderr_lines
            .iter()
            .map(|(_, line)| line.as_str())
            // `/usr/bin/time` reports a failed command's status on the command's stderr.
            .filter(|line| !line.starts_with("Command exited with non-zero status"))
            .collect();
        Measured {
            wall,
            success: status.is_some_and(|status| status.success()),
            stdout,
            stderr: stderr.join("\n"),
            stderr_lines,
            usage,
        }
    }
}

/// Kills the direct children of `pid` (the command `/usr/bin/time` runs).
fn kill_children(pid: u32) {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for child in children.split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", child]).status();
    }
}

/// User + system CPU seconds a process has used so far (0 if it is gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name in parentheses: state is the first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux unless told otherwise).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A process's peak resident memory (VmHWM) in kB.
pub fn peak_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// RabbitMQ's and Redis's processes on this machine, by command name (read from /proc).
pub fn service_pids() -> Vec<(String, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let name = match comm.trim() {
            "beam.smp" => "RabbitMQ",
            "redis-server" => "Redis",
            _ => continue,
        };
        found.push((name.to_owned(), pid));
    }
    found.sort();
    found
}
