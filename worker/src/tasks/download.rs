//! `download`: GET one URL through the worker's HTTP client, retrying transient failures (refused,
//! timeout, 5xx) with exponential backoff and jitter up to `--download-retries` times.

use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use taskq_common::config::redact_url;
use taskq_common::tasks::{Download, DownloadOutput};

use super::IoTask;
use crate::io_lane::IoLane;

/// The first retry waits about this long; each next one twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl IoTask for Download {
    async fn run(url: &String, lane: &IoLane) -> Result<DownloadOutput, String> {
        let started = Instant::now();
        let mut attempts = 0u32;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(FIRST_BACKOFF)
            .with_max_delay(MAX_BACKOFF)
            .with_max_times(lane.http.settings().retries)
            .with_jitter();
        let fetched = (|| {
            attempts += 1;
            lane.http.fetch(url)
        })
        .retry(backoff)
        .when(|error| error.is_transient())
        .notify(|error, delay| {
            tracing::info!(url = %redact_url(url), %error, retry_in = ?delay, "download failed; retrying");
        })
        .await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match fetched {
            Ok(fetched) => Ok(DownloadOutput {
                final_url: fetched.final_url,
                status: fetched.status,
                bytes: fetched.bytes,
                sha256: fetched.sha256,
                elapsed_ms,
                attempts,
            }),
            Err(error) if error.is_transient() => Err(format!(
                "{error} (gave up after {attempts} attempt{}; --download-retries sets the retries)",
                if attempts == 1 { "" } else { "s" }
            )),
            Err(error) => Err(format!("{error} (not retried: retrying cannot help)")),
        }
    }
}
