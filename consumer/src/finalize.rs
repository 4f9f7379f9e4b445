//! Finishing a job: once every chunk has a result (completed), or once it was cancelled (with the chunks
//! recorded so far). Writes `<job>.jsonl` and `<job>.summary.json` atomically (temporary file, then
//! rename), then marks the job completed or cancelled with its summary.
//!
//! Finishing twice the same way is harmless (same content, atomic renames), which is what lets the
//! consumer finish a job again after a crash between writing the files and marking the job. A job is
//! never finished both ways: the first to start claims how it ends (see [`taskq_common::cancel`]).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use taskq_common::aggregate::Aggregate;
use taskq_common::cancel::Finish;
use taskq_common::job::{now_ms, JobId, JobState, JobStatus};
use taskq_common::registry::Registry;
use taskq_common::stage_store::StageProgress;
use taskq_common::store::{JobStore, StoreError};

use crate::images::{ImageError, Images};
use crate::output::{Consolidator, OutputError, Written};

/// Chunk results fetched from Redis per round trip.
const FETCH_BATCH: u32 = 256;

/// Why a job could not be finished.
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    /// Redis failed; the result message is redelivered and finishing is tried again.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job can never be finished; it is marked failed with this reason.
    #[error("{0}")]
    Unfinishable(String),
    /// The job ends the other way (completed while being cancelled, or the reverse), or already ended.
    #[error("{0}")]
    Ended(String),
    /// Writing the files failed (disk full, permissions); tried again on redelivery.
    #[error("writing the output of job {job} failed: {source}")]
    Output {
        /// The job.
        job: JobId,
        /// Why.
        source: OutputError,
    },
}

/// Writes a job's output and marks it `how` it ends. Returns the summary.
pub async fn finalize(
    store: &JobStore,
    output_dir: &Path,
    images: &Images,
    job: JobId,
    how: Finish,
) -> Result<serde_json::Value, FinalizeError> {
    if !store.claim_finish(job, how).await? {
        return Err(FinalizeError::Ended(format!(
            "job {job} already ends another way; left alone"
        )));
    }
    let state = store.require_job(job).await?;
    match (how, state.status) {
        (Finish::Cancel, JobStatus::Cancelled) => {
            // The notice came again after the output was written: the stored summary is the answer.
            return Ok(state.summary.unwrap_or_default());
        }
        (Finish::Cancel, JobStatus::Cancelling) | (Finish::Complete, _) => {}
        (Finish::Cancel, other) => {
            return Err(FinalizeError::Ended(format!(
                "job {job} is {}, not being cancelled",
                other.as_str()
            )))
        }
    }
    if how == Finish::Complete && images.geometry(store, job).await?.is_some() {
        return finalize_image(store, output_dir, images, &state).await;
    }
    let chunks = stored_chunks(store, &state, how).await?;
    let aggregate = declared_aggregate(store, &state.spec.kind).await?;
    let stages = store.stage_progress(job).await?;
    let output_dir = output_dir.to_owned();
    let renumber = stages
        .as_ref()
        .is_some_and(|staged| staged.plan.renumbers());
    let summary = tokio::task::spawn_blocking(move || {
        // A later stage may change the number of items: inline what comes, up to the limit.
        let expected_lines = if stages.is_some() {
            0
        } else {
            state.spec.total_items
        };
        let consolidator = Consolidator::new(&aggregate, expected_lines);
        let consolidator = if renumber {
            consolidator.renumbering()
        } else {
            consolidator
        };
        write_files(&output_dir, &state, &chunks, consolidator, stages, how)
    })
    .await
    .map_err(|e| FinalizeError::Unfinishable(format!("writing the output panicked: {e}")))??;
    match how {
        Finish::Complete => store.complete(job, &summary).await?,
        Finish::Cancel => store.finish_cancelled(job, &summary).await?,
    }
    Ok(summary)
}

/// Finishes an image job: its PNG completed and renamed into place, handed to the producer through
/// Redis, and the job marked completed with a summary naming the file.
async fn finalize_image(
    store: &JobStore,
    output_dir: &Path,
    images: &Images,
    state: &JobState,
) -> Result<serde_json::Value, FinalizeError> {
    let job = state.spec.id;
    let path = images
        .finish(store, output_dir, job)
        .await
        .map_err(|error| match error {
            ImageError::Store(error) => FinalizeError::Store(error),
            ImageError::Unusable(reason) => {
                FinalizeError::Unfinishable(format!("the output PNG cannot be completed: {reason}"))
            }
            ImageError::Io(reason) => FinalizeError::Output {
                job,
                source: OutputError::Io(std::io::Error::other(reason)),
            },
        })?;
    let file = std::fs::File::open(&path).map_err(|source| FinalizeError::Output {
        job,
        source: source.into(),
    })?;
    let bytes = store.store_png(job, file).await?;
    let elapsed_ms = now_ms().saturating_sub(state.spec.submitted_at_ms).max(1);
    let mut summary = serde_json::json!({
        "job_id": job.to_string(),
        "kind": state.spec.kind,
        "status": JobStatus::Completed.as_str(),
        "items": state.items_done,
        "failed": state.items_failed,
        "chunks": state.spec.total_chunks,
        "duplicates_ignored": state.duplicates,
        "elapsed_ms": elapsed_ms,
        "output": absolute(&path).display().to_string(),
        "png_bytes": bytes,
    });
    if let Some(staged) = store.stage_progress(job).await? {
        add_stages(&mut summary, &staged);
    }
    store.complete(job, &summary).await?;
    Ok(summary)
}

/// The aggregate the kind's workers declared; none if no worker ever declared the kind here.
async fn declared_aggregate(store: &JobStore, kind: &str) -> Result<Aggregate, FinalizeError> {
    let declared = Registry::new(store).kind(kind).await?;
    Ok(declared.map(|info| info.aggregate).unwrap_or_default())
}

/// The stored chunk results in order: all of them to complete a job, those recorded to cancel it.
async fn stored_chunks(
    store: &JobStore,
    state: &JobState,
    how: Finish,
) -> Result<Vec<Vec<u8>>, FinalizeError> {
    let (job, total) = (state.spec.id, state.spec.total_chunks);
    let mut chunks = Vec::with_capacity(total as usize);
    let mut start = 0;
    while start < total {
        let end = (start + FETCH_BATCH).min(total);
        let results = store.chunk_results(job, start..end).await?;
        for (offset, chunk) in results.into_iter().enumerate() {
            match (chunk, how) {
                (Some(chunk), _) => chunks.push(chunk),
                (None, Finish::Cancel) => {}
                (None, Finish::Complete) => return Err(FinalizeError::Unfinishable(format!(
                    "the stored result of chunk {} is missing from Redis (was Redis restarted without persistence?): resubmit the job",
                    start as usize + offset
                ))),
            }
        }
        start = end;
    }
    Ok(chunks)
}

fn write_files(
    output_dir: &Path,
    state: &JobState,
    chunks: &[Vec<u8>],
    mut consolidator: Consolidator,
    stages: Option<StageProgress>,
    how: Finish,
) -> Result<serde_json::Value, FinalizeError> {
    let job = state.spec.id;
    let output_error = |source: OutputError| FinalizeError::Output { job, source };
    let output_path = output_dir.join(format!("{job}.jsonl"));
    let mut written = Written::default();
    write_atomically(&output_path, |out| {
        for chunk in chunks {
            let chunk = consolidator.add_chunk(chunk, out)?;
            written.items += chunk.items;
            written.failed += chunk.failed;
        }
        Ok(())
    })
    .map_err(output_error)?;

    let (aggregate, inline) = consolidator.aggregate();
    let elapsed_ms = now_ms().saturating_sub(state.spec.submitted_at_ms).max(1);
    let items = written.items;
    let status = match how {
        Finish::Complete => JobStatus::Completed,
        Finish::Cancel => JobStatus::Cancelled,
    };
    let mut summary = serde_json::json!({
        "job_id": job.to_string(),
        "kind": state.spec.kind,
        "status": status.as_str(),
        "items": items,
        "failed": written.failed,
        "chunks": state.spec.total_chunks,
        "duplicates_ignored": state.duplicates,
        "elapsed_ms": elapsed_ms,
        "items_per_sec": (items as f64 * 1000.0 / elapsed_ms as f64).round(),
        "output": absolute(&output_path).display().to_string(),
        "aggregate": aggregate,
    });
    if how == Finish::Cancel {
        // What the output holds of what was submitted.
        summary["chunks_done"] = chunks.len().into();
        summary["items_submitted"] = state.spec.total_items.into();
    }
    if let Some(staged) = &stages {
        add_stages(&mut summary, staged);
    }
    if let Some(results) = inline {
        summary["results"] = serde_json::Value::Array(results);
    }
    let summary_path = output_dir.join(format!("{job}.summary.json"));
    write_atomically(&summary_path, |out| {
        serde_json::to_writer_pretty(&mut *out, &summary)?;
        out.write_all(b"\n")?;
        Ok(())
    })
    .map_err(output_error)?;
    Ok(summary)
}

/// Adds a multi-stage job's pipeline and each stage's progress to its summary.
fn add_stages(summary: &mut serde_json::Value, staged: &StageProgress) {
    summary["pipeline"] = staged.plan.describe().into();
    // Plain numbers and strings: they always encode.
    summary["stages"] = serde_json::json!(staged.stages);
}

/// Writes through `fill` into a unique temporary file beside `path`, then renames it into place.
fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), OutputError>,
) -> Result<(), OutputError> {
    let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&temporary)?);
        fill(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&temporary, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}
