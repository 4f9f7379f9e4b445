//! `download`: GET one URL through the worker's HTTP client, retrying transient failures (refused,
//! timeout, 5xx) with exponential backoff and jitter up to `--download-retries` times. Runs on the I/O
//! lane, where waiting on the network overlaps in async tasks instead of holding threads.

use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use serde::{Deserialize, Serialize};
use taskq_common::aggregate::{Aggregate, Fold};
use taskq_common::config::redact_url;
use taskq_common::task::{IoTask, ItemContext, Task, TaskError, TaskOptions};

use crate::http::HttpClient;

/// The first retry waits about this long; each next one twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The `download` kind: inputs are URLs (http or https), outputs what came back.
pub struct Download {
    http: HttpClient,
}

impl Download {
    /// Downloads through `http` (its connection pool and limits are shared by every item).
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }
}

/// What one successful download returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadOutput {
    /// The URL the body came from, after redirects.
    pub final_url: String,
    /// The HTTP status of the final response (always 2xx: other statuses are item errors).
    pub status: u16,
    /// Body length in bytes.
    pub bytes: u64,
    /// SHA-256 of the body, lowercase hex.
    pub sha256: String,
    /// Milliseconds from the first request to the last body byte, retries included.
    pub elapsed_ms: u64,
    /// Requests it took (1 unless transient failures were retried).
    pub attempts: u32,
}

impl Task for Download {
    const NAME: &'static str = "download";
    type Input = String;
    type Output = DownloadOutput;

    fn options(&self) -> TaskOptions {
        // A download is mostly waiting; one URL per message spreads them over every worker's I/O slots.
        let aggregate = Aggregate::none()
            .with("ok", Fold::Count, None)
            .with("total_bytes", Fold::Sum, Some("/bytes"))
            .with("p50_ms", Fold::Percentile(50), Some("/elapsed_ms"))
            .with("p99_ms", Fold::Percentile(99), Some("/elapsed_ms"));
        TaskOptions::default().chunk_size(1).aggregate(aggregate)
    }
}

impl IoTask for Download {
    async fn run(&self, url: String, _: &ItemContext) -> Result<DownloadOutput, TaskError> {
        let started = Instant::now();
        let mut attempts = 0u32;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(FIRST_BACKOFF)
            .with_max_delay(MAX_BACKOFF)
            .with_max_times(self.http.settings().retries)
            .with_jitter();
        let fetched = (|| {
            attempts += 1;
            self.http.fetch(&url)
        })
        .retry(backoff)
        .when(|error| error.is_transient())
        .notify(|error, delay| {
            tracing::info!(url = %redact_url(&url), %error, retry_in = ?delay, "download failed; retrying");
        })
        .await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        // The retries happen here, with backoff; a failure after them is the item's for good.
        match fetched {
            Ok(fetched) => Ok(DownloadOutput {
                final_url: fetched.final_url,
                status: fetched.status,
                bytes: fetched.bytes,
                sha256: fetched.sha256,
                elapsed_ms,
                attempts,
            }),
            Err(error) if error.is_transient() => Err(TaskError::permanent(format!(
                "{error} (gave up after {attempts} attempt{}; --download-retries sets the retries)",
                if attempts == 1 { "" } else { "s" }
            ))),
            Err(error) => Err(TaskError::permanent(format!(
                "{error} (not retried: retrying cannot help)"
            ))),
        }
    }
}
