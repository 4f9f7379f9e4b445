//! Which Redis failures mean "the master went away", and which commands may be sent again after one.
//!
//! Two kinds of failure send the Sentinel-backed connection to the sentinels for the current master:
//! - **Refused**: the server answered `READONLY` (it is a replica now: a failover demoted it),
//!   `MASTERDOWN` (a replica lost its master) or `LOADING` (it restarted and is reading its data). The
//!   command did not run, so any command is sent again, once the current master is found.
//! - **Lost**: the connection broke or the reply did not come. The command may or may not have run, so
//!   only a command that is safe to run twice is sent again ([`resend_safe`]); any other fails, and
//!   its caller does what it does when Redis fails (a delivery goes back to its queue, and the
//!   redelivery is recognised).
//!
//! Safe to run twice are reads; writes of absolute values (`SET` without `GET`, `HSET`, `DEL`,
//! `EXPIRE`, `ZADD`, `ZREM`, ...), whose second run writes the same; `PUBLISH`, whose second message
//! only makes a listener read the job's state once more; transactions made only of those; and the
//! scripts that record once by design ([`record_once_scripts`]), whose second run changes nothing
//! but a duplicate counter and answers exactly as a redelivered result would, which every caller
//! already handles. Not sent again after a lost reply: counters (`HINCRBY`), `SET ... GET` (its answer
//! would be its own write), `WAIT` (it must run on the connection that made the writes it confirms),
//! and the other scripts (a claim would count a run twice; a status change would answer "not changed").

use std::collections::HashSet;
use std::sync::LazyLock;

use redis::{Cmd, ErrorKind, Pipeline, RedisError, ServerErrorKind};

/// What a failed command tells about the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The server refused it without running it: it is not (or not yet) a usable master.
    Refused,
    /// The connection failed: the command may or may not have run.
    Lost,
    /// Anything else (a script error, a wrong type): the master is fine, the command is not.
    Other,
}

/// Classifies a failed command.
pub(crate) fn classify(error: &RedisError) -> Failure {
    let refusal = |kind: ServerErrorKind| {
        matches!(
            kind,
            ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown | ServerErrorKind::BusyLoading
        )
    };
    if let ErrorKind::Server(kind) = error.kind() {
        if refusal(kind) {
            return Failure::Refused;
        }
    }
    // A transaction refused on a replica reports EXECABORT, with READONLY among its commands' errors.
    let refused_inside = error
        .clone()
        .into_server_errors()
        .is_some_and(|errors| errors.iter().any(|(_, e)| e.kind().is_some_and(refusal)));
    if refused_inside {
        return Failure::Refused;
    }
    if error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error() {
        return Failure::Lost;
    }
    Failure::Other
}

/// Commands that leave the same state and answer however often they run.
const IDEMPOTENT: &[&str] = &[
    // Reads.
    "PING",
    "GET",
    "MGET",
    "EXISTS",
    "TYPE",
    "TTL",
    "PTTL",
    "HGET",
    "HMGET",
    "HGETALL",
    "HLEN",
    "HEXISTS",
    "SCAN",
    "HSCAN",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZSCORE",
    "ZCARD",
    "SMEMBERS",
    "LRANGE",
    // Writes of absolute values.
    "SET",
    "SETEX",
    "PSETEX",
    "MSET",
    "HSET",
    "HMSET",
    "HDEL",
    "DEL",
    "UNLINK",
    "EXPIRE",
    "PEXPIRE",
    "ZADD",
    "ZREM",
    "ZREMRANGEBYSCORE",
    "SADD",
    "SREM",
    "SCRIPT",
    "PUBLISH",
    // A transaction's frame: the transaction is as safe as the commands inside it.
    "MULTI",
    "EXEC",
];

/// The job store's scripts that record something once: run a second time they answer as for a
/// redelivery (recorded before) and change nothing else but a duplicate counter.
pub(crate) fn record_once_scripts() -> [&'static str; 4] {
    [
        super::scripts::RECORD_RESULT,
        crate::stage_store::RECORD_STAGE,
        crate::stage_store::RECORD_JOINED,
        crate::cancel::CLAIM_FINISH,
    ]
}

static RECORD_ONCE_HASHES: LazyLock<HashSet<String>> = LazyLock::new(|| {
    record_once_scripts()
        .into_iter()
        .map(|source| redis::Script::new(source).get_hash().to_owned())
        .collect()
});

/// True when `command` may be sent again after a reply that never came.
pub(crate) fn resend_safe(command: &Cmd) -> bool {
    let mut args = command.args_iter().filter_map(|arg| match arg {
        redis::Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let Some(name) = args
        .next()
        .map(|n| String::from_utf8_lossy(n).to_ascii_uppercase())
    else {
        return false;
    };
    match name.as_str() {
        "EVALSHA" => args
            .next()
            .is_some_and(|hash| RECORD_ONCE_HASHES.contains(&*String::from_utf8_lossy(hash))),
        // `SET key value GET` answers with the value before it: a second run would answer its own.
        "SET" => !args.any(|arg| arg.eq_ignore_ascii_case(b"GET")),
        // With INCR, ZADD adds to the score instead of setting it.
        "ZADD" => !args.any(|arg| arg.eq_ignore_ascii_case(b"INCR")),
        name => IDEMPOTENT.contains(&name),
    }
}

/// True when every command of `pipeline` may be sent again after a reply that never came.
pub(crate) fn pipeline_resend_safe(pipeline: &Pipeline) -> bool {
    pipeline.cmd_iter().all(resend_safe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_absolute_writes_are_sent_again_counters_are_not() {
        assert!(resend_safe(redis::cmd("hgetall").arg("k")));
        assert!(resend_safe(
            redis::cmd("SET").arg("k").arg("v").arg("PX").arg(5)
        ));
        assert!(!resend_safe(redis::cmd("SET").arg("k").arg("v").arg("GET")));
        assert!(!resend_safe(redis::cmd("HINCRBY").arg("k").arg("f").arg(1)));
        assert!(!resend_safe(
            redis::cmd("ZADD").arg("k").arg("INCR").arg(1).arg("m")
        ));
        assert!(!resend_safe(redis::cmd("WAIT").arg(1).arg(100)));
        assert!(!resend_safe(&redis::cmd("")));
    }

    #[test]
    fn only_record_once_scripts_are_sent_again() {
        let evalsha = |source: &str| {
            let mut command = redis::cmd("EVALSHA");
            command.arg(redis::Script::new(source).get_hash()).arg(0);
            command
        };
        assert!(resend_safe(&evalsha(super::super::scripts::RECORD_RESULT)));
        assert!(resend_safe(&evalsha(crate::cancel::CLAIM_FINISH)));
        assert!(!resend_safe(&evalsha(super::super::scripts::CLAIM_RUN)));
        assert!(!resend_safe(&evalsha(super::super::scripts::SET_STATUS_IF)));
    }

    #[test]
    fn a_transaction_is_as_safe_as_its_commands() {
        let mut safe = redis::pipe();
        safe.atomic()
            .hset("k", "f", "v")
            .expire("k", 5)
            .publish("c", "m");
        assert!(pipeline_resend_safe(&safe));
        let mut counting = redis::pipe();
        counting.atomic().hset("k", "f", "v").hincr("k", "n", 1);
        assert!(!pipeline_resend_safe(&counting));
    }

    #[test]
    fn refusals_and_lost_connections_are_told_apart() {
        let server = |code: &str| {
            redis::RedisError::from((
                redis::ErrorKind::Server(match code {
                    "READONLY" => ServerErrorKind::ReadOnly,
                    "LOADING" => ServerErrorKind::BusyLoading,
                    _ => ServerErrorKind::ResponseError,
                }),
                "test",
            ))
        };
        assert_eq!(classify(&server("READONLY")), Failure::Refused);
        assert_eq!(classify(&server("LOADING")), Failure::Refused);
        assert_eq!(classify(&server("ERR")), Failure::Other);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify(&RedisError::from(reset)), Failure::Lost);
    }
}
