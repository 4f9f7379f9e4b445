//! The stop signal: the first SIGINT or SIGTERM asks for a graceful stop, a second one exits at once.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Exit code after a forced stop (128 + SIGINT), the shell's convention.
pub const FORCED_EXIT_CODE: i32 = 130;

/// Returns a token cancelled on the first SIGINT or SIGTERM; the second signal exits the process.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            return;
        };
        for seen in 0.. {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            if seen == 0 {
                tracing::info!(
                    "stop requested: finishing in-flight work (signal again to exit at once)"
                );
                cancel.cancel();
            } else {
                tracing::warn!("second stop signal: exiting now; unacknowledged messages return to their queue");
                std::process::exit(FORCED_EXIT_CODE);
            }
        }
    });
    token
}
