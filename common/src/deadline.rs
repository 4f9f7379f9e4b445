//! Deadlines on the way in: every connect, handshake, channel open, declare and consumer start, and
//! every publisher confirm, gives up after a bounded time, so a peer that accepts TCP and never answers
//! (a broker still starting, a half-dead node, a wrong port) is an error the caller retries with backoff,
//! never a wait without end.
//!
//! One limit per process, set once from `--connect-timeout` / `TASKQ_CONNECT_TIMEOUT` (5 s unless set);
//! a confirm may take [`confirm_limit`], longer, since a busy broker writes it to disk first.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The limit when none is set.
pub const DEFAULT: Duration = Duration::from_secs(5);

/// The shortest time a confirm may take before it counts as lost.
const CONFIRM_FLOOR: Duration = Duration::from_secs(30);

static LIMIT_MS: AtomicU64 = AtomicU64::new(DEFAULT.as_millis() as u64);

/// Sets the process's limit for each step of reaching a service.
pub fn set(limit: Duration) {
    LIMIT_MS.store(limit.as_millis().max(1) as u64, Ordering::Relaxed);
}

/// How long one step of reaching a service may take.
pub fn limit() -> Duration {
    Duration::from_millis(LIMIT_MS.load(Ordering::Relaxed))
}

/// How long a published message may wait for the broker's confirm.
pub fn confirm_limit() -> Duration {
    (limit() * 6).max(CONFIRM_FLOOR)
}

/// Runs `step` with `limit`; `None` if it did not finish in time.
pub async fn within<T>(limit: Duration, step: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, step).await.ok()
}

/// Parses a limit in seconds (decimals allowed), as `--connect-timeout` takes it.
pub fn parse_seconds(raw: &str) -> Result<Duration, String> {
    let seconds: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("'{raw}' is not a number of seconds"))?;
    if !(0.1..=600.0).contains(&seconds) {
        return Err(format!(
            "{seconds} s is out of range: use 0.1 to 600 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_step_that_never_ends_is_given_up() {
        let never = std::future::pending::<()>();
        assert_eq!(within(Duration::from_secs(5), never).await, None);
        assert_eq!(within(Duration::from_secs(5), async { 7 }).await, Some(7));
    }

    #[test]
    fn limits_parse_with_advice() {
        assert_eq!(parse_seconds("2.5").unwrap(), Duration::from_millis(2500));
        assert!(parse_seconds("0").unwrap_err().contains("0.1 to 600"));
        assert!(parse_seconds("soon").unwrap_err().contains("seconds"));
    }
}
