//! Image jobs' output: the PNG written band by band as tiles are recorded, holding only tiles that came
//! out of order, then renamed into place and handed to the producer through Redis when the job ends.
//!
//! Tiles are recorded in Redis like any chunk result before they are drawn, so a consumer that restarts
//! mid-image starts the PNG again from the tiles recorded so far; nothing is lost with its memory.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use taskq_common::envelope::decode_payload;
use taskq_common::image_job::ImageOutput;
use taskq_common::job::JobId;
use taskq_common::payload::ResultPayload;
use taskq_common::store::{JobStore, StoreError};
use taskq_image::{Region, RowAssembler};

/// Why an image's PNG could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Redis failed; tried again later.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A tile failed or does not fit: the image cannot be completed.
    #[error("{0}")]
    Unusable(String),
    /// Writing the file failed (disk full, permissions); tried again later.
    #[error("writing the PNG failed: {0}")]
    Io(String),
}

/// The PNGs being written, by job.
#[derive(Default)]
pub struct Images {
    geometry: Mutex<HashMap<JobId, Option<ImageOutput>>>,
    open: Mutex<HashMap<JobId, Arc<Mutex<Open>>>>,
}

/// One PNG being written.
struct Open {
    assembler: RowAssembler<File>,
    temporary: PathBuf,
}

/// The blurred tile of an `image-blur` output (other fields are for the next pass).
#[derive(serde::Deserialize)]
struct TileOutput {
    region: Region,
}

impl Images {
    /// The job's geometry when it is an image job (read once per job).
    pub async fn geometry(
        &self,
        store: &JobStore,
        job: JobId,
    ) -> Result<Option<ImageOutput>, StoreError> {
        if let Some(known) = self.geometry.lock().expect("not poisoned").get(&job) {
            return Ok(*known);
        }
        let geometry = store.image_output(job).await?;
        self.geometry
            .lock()
            .expect("not poisoned")
            .insert(job, geometry);
        Ok(geometry)
    }

    /// Forgets a job that ended (what is known of it, and its PNG if one was left open).
    pub fn forget(&self, job: JobId) {
        self.geometry.lock().expect("not poisoned").remove(&job);
        if let Some(open) = self.open.lock().expect("not poisoned").remove(&job) {
            if let Ok(open) = open.lock() {
                let _ = std::fs::remove_file(&open.temporary);
            }
        }
    }

    /// Draws a recorded tile (opening the PNG, with every tile recorded so far, if it is not open).
    pub async fn add(
        &self,
        store: &JobStore,
        output_dir: &Path,
        job: JobId,
        tile: u32,
        result: Vec<u8>,
    ) -> Result<(), ImageError> {
        let open = self.open(store, output_dir, job).await?;
        draw(open, vec![(tile, result)]).await
    }

    /// Finishes the job's PNG: every tile drawn, the file synced and renamed to `<job>.png`. Returns its
    /// path.
    pub async fn finish(
        &self,
        store: &JobStore,
        output_dir: &Path,
        job: JobId,
    ) -> Result<PathBuf, ImageError> {
        let open = self.open(store, output_dir, job).await?;
        self.open.lock().expect("not poisoned").remove(&job);
        self.geometry.lock().expect("not poisoned").remove(&job);
        let Ok(open) = Arc::try_unwrap(open) else {
            return Err(ImageError::Io(
                "the PNG is still being drawn; finishing later".into(),
            ));
        };
        let Open {
            assembler,
            temporary,
        } = open.into_inner().expect("not poisoned");
        let path = output_dir.join(format!("{job}.png"));
        let final_path = path.clone();
        tokio::task::spawn_blocking(move || {
            let file = assembler
                .finish()
                .map_err(|e| ImageError::Unusable(e.to_string()))?;
            file.sync_all().map_err(|e| ImageError::Io(e.to_string()))?;
            std::fs::rename(&temporary, &final_path).map_err(|e| ImageError::Io(e.to_string()))
        })
        .await
        .map_err(|e| ImageError::Io(e.to_string()))??;
        Ok(path)
    }

    /// The job's open PNG, opened and filled with the tiles recorded so far if it was not.
    async fn open(
        &self,
        store: &JobStore,
        output_dir: &Path,
        job: JobId,
    ) -> Result<Arc<Mutex<Open>>, ImageError> {
        if let Some(open) = self.open.lock().expect("not poisoned").get(&job) {
            return Ok(open.clone());
        }
        let geometry = self
            .geometry(store, job)
            .await?
            .ok_or_else(|| ImageError::Unusable(format!("job {job} is not an image job")))?;
        let temporary = output_dir.join(format!("{job}.png.tmp-{}", uuid::Uuid::new_v4().simple()));
        let file = File::create(&temporary).map_err(|e| ImageError::Io(e.to_string()))?;
        let assembler = RowAssembler::new(file, geometry.grid, geometry.format)
            .map_err(|e| ImageError::Io(e.to_string()))?;
        let open = Arc::new(Mutex::new(Open {
            assembler,
            temporary,
        }));
        let tiles = geometry.grid.len() as u32;
        let recorded = store.chunk_results(job, 0..tiles).await?;
        let earlier: Vec<(u32, Vec<u8>)> = (0..tiles)
            .zip(recorded)
            .filter_map(|(tile, result)| result.map(|result| (tile, result)))
            .collect();
        draw(open.clone(), earlier).await?;
        let mut opened = self.open.lock().expect("not poisoned");
        Ok(opened.entry(job).or_insert(open).clone())
    }
}

/// Draws tiles from their stored results, off the async threads (drawing compresses rows).
async fn draw(open: Arc<Mutex<Open>>, tiles: Vec<(u32, Vec<u8>)>) -> Result<(), ImageError> {
    tokio::task::spawn_blocking(move || {
        let mut open = open.lock().expect("not poisoned");
        for (tile, result) in tiles {
            let region = tile_region(tile, &result)?;
            open.assembler
                .add(tile as usize, region)
                .map_err(|e| ImageError::Io(e.to_string()))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| ImageError::Io(e.to_string()))?
}

/// The pixels of tile `tile` from its stored result.
fn tile_region(tile: u32, result: &[u8]) -> Result<Region, ImageError> {
    let unusable = |why: String| ImageError::Unusable(format!("tile {tile}: {why}"));
    let payload: ResultPayload = decode_payload(result).map_err(|e| unusable(e.to_string()))?;
    let lines = payload.lines().map_err(|e| unusable(e.to_string()))?;
    let line = lines
        .first()
        .ok_or_else(|| unusable("its result holds no item".into()))?;
    let output = line
        .outcome
        .map_err(|reason| unusable(format!("it failed: {reason}")))?;
    let tile: TileOutput = serde_json::from_str(output.get())
        .map_err(|e| unusable(format!("not a blurred tile: {e}")))?;
    Ok(tile.region)
}
