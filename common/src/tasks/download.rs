//! `download`: fetch each URL and report what came back, the seed's I/O-bound workload. Runs on the I/O
//! lane, where waiting on the network overlaps in async tasks instead of holding threads.

use serde::{Deserialize, Serialize, Serializer};

use super::{ItemOutcome, Lane, TaskKind};

/// Marker type for the `download` kind. Inputs are URLs (validated by the producer: http or https).
pub struct Download;

impl TaskKind for Download {
    const NAME: &'static str = "download";
    const LANE: Lane = Lane::Io;
    // A download is mostly waiting; one URL per message spreads them over every worker's I/O slots.
    const DEFAULT_CHUNK_SIZE: u32 = 1;
    type Item = String;
    type Output = DownloadOutput;
    type Aggregate = DownloadStats;

    fn fold(aggregate: &mut DownloadStats, output: &DownloadOutput) {
        aggregate.ok += 1;
        aggregate.total_bytes += output.bytes;
        aggregate.latencies_ms.push(output.elapsed_ms);
    }

    fn fold_outcome(aggregate: &mut DownloadStats, outcome: &ItemOutcome<DownloadOutput>) {
        aggregate.count += 1;
        match outcome {
            Ok(output) => Self::fold(aggregate, output),
            Err(_) => aggregate.failed += 1,
        }
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

/// The aggregate of a download job: counts, bytes, and latency percentiles of the successful downloads.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DownloadStats {
    /// Items folded.
    pub count: u64,
    /// Items downloaded.
    pub ok: u64,
    /// Items that ended in an error.
    pub failed: u64,
    /// Body bytes of every successful download.
    pub total_bytes: u64,
    latencies_ms: Vec<u64>,
}

impl DownloadStats {
    /// The `percent`th percentile (nearest rank) of successful downloads' `elapsed_ms`, `None` without any.
    pub fn percentile_ms(&self, percent: u32) -> Option<u64> {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_unstable();
        nearest_rank(&sorted, percent)
    }
}

/// The nearest-rank percentile of sorted values: the smallest value with at least `percent`% at or below it.
fn nearest_rank(sorted: &[u64], percent: u32) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * percent.min(100) as usize)
        .div_ceil(100)
        .max(1);
    sorted.get(rank - 1).copied()
}

impl Serialize for DownloadStats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown {
            count: u64,
            ok: u64,
            failed: u64,
            total_bytes: u64,
            p50_ms: Option<u64>,
            p99_ms: Option<u64>,
        }
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_unstable();
        Shown {
            count: self.count,
            ok: self.ok,
            failed: self.failed,
            total_bytes: self.total_bytes,
            p50_ms: nearest_rank(&sorted, 50),
            p99_ms: nearest_rank(&sorted, 99),
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(bytes: u64, elapsed_ms: u64) -> ItemOutcome<DownloadOutput> {
        Ok(DownloadOutput {
            final_url: "http://a/".into(),
            status: 200,
            bytes,
            sha256: String::new(),
            elapsed_ms,
            attempts: 1,
        })
    }

    #[test]
    fn failures_are_counted_and_latencies_are_nearest_rank() {
        let mut stats = DownloadStats::default();
        for elapsed in 1..=100 {
            Download::fold_outcome(&mut stats, &ok(10, elapsed));
        }
        Download::fold_outcome(&mut stats, &Err("HTTP 404".into()));
        let shown = serde_json::to_value(&stats).unwrap();
        assert_eq!(
            shown,
            serde_json::json!({"count": 101, "ok": 100, "failed": 1, "total_bytes": 1000, "p50_ms": 50, "p99_ms": 99})
        );
        assert_eq!(nearest_rank(&[7], 99), Some(7));
        assert_eq!(nearest_rank(&[1, 2, 3], 50), Some(2));
        let empty = serde_json::to_value(DownloadStats::default()).unwrap();
        assert_eq!(empty["p50_ms"], serde_json::Value::Null);
    }
}
