//! Connection arguments shared by every binary, and URL redaction for logs and errors.

use clap::Args;

use crate::store::sentinel_url::{is_sentinel_url, SentinelUrl};

/// Where the broker and the job store are, and which namespace this deployment uses on them.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// RabbitMQ URL, or several nodes of one cluster separated by commas: each process tries them in
    /// its own shuffled order (so load spreads) and fails over to the next when its node goes. Add
    /// `?heartbeat=N` to change the heartbeat interval (seconds).
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,

    /// Redis URL, where job state and progress live: `redis://[[user]:password@]host:port[/db]`, or,
    /// to follow the master through failovers, its Sentinel form
    /// `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<master-name>[/<db>]` listing
    /// the sentinels (port 26379 by default). The password is the master's and is sent to the
    /// sentinels too; add `?sentinel_password=...` if theirs differs (empty: they take none).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379", value_parser = parse_redis_url)]
    pub redis_url: String,

    /// Replicas that must confirm (Redis `WAIT`) the writes a failover must not lose (recorded
    /// results before they are acked, a new job before its chunks are published, a job's end) before
    /// the process acts on them; fewer within --connect-timeout counts as a failed write, made again
    /// later. Default: 1 with a `redis+sentinel://` URL, 0 (no `WAIT`) with a plain one.
    #[arg(long, env = "TASKQ_REDIS_MIN_REPLICAS", value_name = "N")]
    pub redis_min_replicas: Option<u32>,

    /// Name prefix of every queue and Redis key, so several deployments (or test runs) share one broker.
    #[arg(long, env = "TASKQ_PREFIX", default_value = "taskq", value_parser = parse_prefix)]
    pub prefix: String,

    /// Seconds each step of reaching RabbitMQ or Redis may take (TCP connect, AMQP handshake, channel
    /// open, declare, consumer start), after which the attempt fails and is retried with backoff; a
    /// publisher confirm may take 6 times as long (at least 30 s).
    #[arg(
        long,
        env = "TASKQ_CONNECT_TIMEOUT",
        default_value = "5",
        value_name = "SECONDS",
        value_parser = crate::deadline::parse_seconds
    )]
    pub connect_timeout: std::time::Duration,
}

impl ConnectionArgs {
    /// Makes `--connect-timeout` the process's deadline for every step of reaching a service, and
    /// `--redis-min-replicas` the replicas its job stores ask to confirm writes.
    pub fn apply(&self) {
        crate::deadline::set(self.connect_timeout);
        crate::store::replication::set_min_replicas(self.redis_min_replicas);
    }
}

/// Checks a `redis+sentinel://` URL's form at once (a plain URL is checked when it is opened).
fn parse_redis_url(raw: &str) -> Result<String, String> {
    if is_sentinel_url(raw) {
        SentinelUrl::parse(raw).map_err(|e| e.to_string())?;
    }
    Ok(raw.to_owned())
}

/// Accepts prefixes that are safe in queue names and Redis keys: letters, digits, `-` and `_`.
fn parse_prefix(raw: &str) -> Result<String, String> {
    let valid = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "'{raw}' is not a usable prefix: use 1 to 64 letters, digits, '-' or '_'"
        ))
    }
}

/// Returns `url` with any password replaced by `***`, for logs and error messages.
///
/// A string that does not parse as a URL is returned as `<unparseable url>` rather than echoed,
/// since it might hold a password in a shape we do not recognise.
pub fn redact_url(url: &str) -> String {
    if is_sentinel_url(url) {
        return crate::store::sentinel_url::redact(url);
    }
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_passwords_only() {
        assert_eq!(
            redact_url("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("not a url :secret@"), "<unparseable url>");
        assert_eq!(
            redact_url("redis+sentinel://:secret@s1:26379,s2:26379/taskq"),
            "redis+sentinel://:***@s1:26379,s2:26379/taskq/0"
        );
    }

    #[test]
    fn sentinel_urls_are_checked_when_parsed() {
        assert!(parse_redis_url("redis+sentinel://s1,s2/taskq").is_ok());
        assert!(parse_redis_url("redis+sentinel://s1,s2")
            .unwrap_err()
            .contains("no master name"));
        assert!(parse_redis_url("redis://127.0.0.1:6379").is_ok());
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(parse_prefix("taskq-test_1").is_ok());
        assert!(parse_prefix("").is_err());
        assert!(parse_prefix("a.b").is_err());
        assert!(parse_prefix("a b").is_err());
    }
}
