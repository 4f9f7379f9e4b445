//! Connection arguments shared by every binary, and URL redaction for logs and errors.

use clap::Args;

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

    /// Redis URL, where job state and progress live.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

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
    /// Makes `--connect-timeout` the process's deadline for every step of reaching a service.
    pub fn apply_deadline(&self) {
        crate::deadline::set(self.connect_timeout);
    }
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
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(parse_prefix("taskq-test_1").is_ok());
        assert!(parse_prefix("").is_err());
        assert!(parse_prefix("a.b").is_err());
        assert!(parse_prefix("a b").is_err());
    }
}
