//! Image jobs' output: the PNG written band by band as tiles are recorded, holding only tiles that came
//! out of order, then renamed into place and handed to the producer through Redis when the job ends.
//!
//! Tiles are recorded in Redis like any chunk result before they are drawn, so a consumer that restarts
//! mid-image starts the PNG again from the tiles recorded so far; nothing is lost with its memory. Each
//! job's PNG is behind its own lock: it is opened once, tiles are drawn one at a time, and finishing
//! waits for the tiles being drawn, then draws from Redis any recorded tile not drawn yet.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use taskq_common::envelope::decode_payload;
use taskq_common::image_job::ImageOutput;
use taskq_common::job::JobId;
use taskq_common::payload::ResultPayload;
use taskq_common::store::{JobStore, StoreError};
use taskq_image::{Region, RowAssembler};
use tokio::sync::OwnedMutexGuard;

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
    slots: Mutex<HashMap<JobId, Slot>>,
}

/// One job's PNG, behind its lock.
type Slot = Arc<tokio::sync::Mutex<State>>;

/// Where a job's PNG is.
#[derive(Default)]
enum State {
    /// Not opened yet.
    #[default]
    Closed,
    /// Being written.
    Open(Box<Open>),
    /// Finished (or its job ended): late tiles are not drawn.
    Done,
}

/// One PNG being written.
struct Open {
    assembler: RowAssembler<File>,
    temporary: PathBuf,
    drawn: BTreeSet<u32>,
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
        if let Some(slot) = self.slots.lock().expect("not poisoned").remove(&job) {
            if let Ok(mut state) = slot.try_lock() {
                if let State::Open(open) = std::mem::replace(&mut *state, State::Done) {
                    let _ = std::fs::remove_file(&open.temporary);
                }
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
        let mut state = self.slot(job).lock_owned().await;
        if let State::Closed = *state {
            if store
                .job_state(job)
                .await?
                .is_none_or(|job| !job.status.is_active())
            {
                // The job ended already: this tile came late.
                *state = State::Done;
                return Ok(());
            }
            self.open(store, output_dir, job, &mut state).await?;
        }
        draw(state, vec![(tile, result)]).await
    }

    /// Finishes the job's PNG: every recorded tile drawn, the file synced and renamed to `<job>.png`.
    /// Returns its path.
    pub async fn finish(
        &self,
        store: &JobStore,
        output_dir: &Path,
        job: JobId,
    ) -> Result<PathBuf, ImageError> {
        let mut state = self.slot(job).lock_owned().await;
        if let State::Closed | State::Done = *state {
            self.open(store, output_dir, job, &mut state).await?;
        }
        let missing = match &*state {
            State::Open(open) => self.missing(job, open).await?,
            _ => Vec::new(),
        };
        if !missing.is_empty() {
            let recorded = store.chunk_results_of(job, &missing).await?;
            let tiles = missing
                .into_iter()
                .zip(recorded)
                .filter_map(|(tile, result)| result.map(|result| (tile, result)))
                .collect();
            state = draw_holding(state, tiles).await?;
        }
        let State::Open(open) = std::mem::replace(&mut *state, State::Done) else {
            return Err(ImageError::Io("the PNG was not open".into()));
        };
        let path = output_dir.join(format!("{job}.png"));
        let final_path = path.clone();
        let written = tokio::task::spawn_blocking(move || {
            let file = open
                .assembler
                .finish()
                .map_err(|e| ImageError::Unusable(e.to_string()));
            let synced =
                file.and_then(|file| file.sync_all().map_err(|e| ImageError::Io(e.to_string())));
            let renamed = synced.and_then(|()| {
                std::fs::rename(&open.temporary, &final_path)
                    .map_err(|e| ImageError::Io(e.to_string()))
            });
            if renamed.is_err() {
                let _ = std::fs::remove_file(&open.temporary);
            }
            renamed
        })
        .await
        .map_err(|e| ImageError::Io(e.to_string()))?;
        // Failed or not, this PNG is closed: trying again opens a new one from Redis.
        *state = if written.is_ok() {
            State::Done
        } else {
            State::Closed
        };
        written.map(|()| path)
    }

    /// The job's slot, made on first use.
    fn slot(&self, job: JobId) -> Slot {
        self.slots
            .lock()
            .expect("not poisoned")
            .entry(job)
            .or_default()
            .clone()
    }

    /// Opens the job's PNG into `state` and draws every tile recorded so far.
    async fn open(
        &self,
        store: &JobStore,
        output_dir: &Path,
        job: JobId,
        state: &mut OwnedMutexGuard<State>,
    ) -> Result<(), ImageError> {
        let geometry = self
            .geometry(store, job)
            .await?
            .ok_or_else(|| ImageError::Unusable(format!("job {job} is not an image job")))?;
        let temporary = output_dir.join(format!("{job}.png.tmp-{}", uuid::Uuid::new_v4().simple()));
        let file = File::create(&temporary).map_err(|e| ImageError::Io(e.to_string()))?;
        let assembler = RowAssembler::new(file, geometry.grid, geometry.format)
            .map_err(|e| ImageError::Io(e.to_string()))?;
        let tiles = geometry.grid.len() as u32;
        let recorded = store.chunk_results(job, 0..tiles).await?;
        **state = State::Open(Box::new(Open {
            assembler,
            temporary,
            drawn: BTreeSet::new(),
        }));
        let earlier: Vec<(u32, Vec<u8>)> = (0..tiles)
            .zip(recorded)
            .filter_map(|(tile, result)| result.map(|result| (tile, result)))
            .collect();
        if let State::Open(open) = &mut **state {
            draw_into(open, earlier)?;
        }
        Ok(())
    }

    /// Tiles of the job not drawn into `open` yet.
    async fn missing(&self, job: JobId, open: &Open) -> Result<Vec<u32>, ImageError> {
        let tiles = self
            .geometry
            .lock()
            .expect("not poisoned")
            .get(&job)
            .copied()
            .flatten()
            .map_or(0, |geometry| geometry.grid.len() as u32);
        Ok((0..tiles)
            .filter(|tile| !open.drawn.contains(tile))
            .collect())
    }
}

/// Draws tiles off the async threads (drawing compresses rows), holding the job's lock.
async fn draw(state: OwnedMutexGuard<State>, tiles: Vec<(u32, Vec<u8>)>) -> Result<(), ImageError> {
    draw_holding(state, tiles).await.map(|_| ())
}

/// Like [`draw`], handing the lock back.
async fn draw_holding(
    mut state: OwnedMutexGuard<State>,
    tiles: Vec<(u32, Vec<u8>)>,
) -> Result<OwnedMutexGuard<State>, ImageError> {
    tokio::task::spawn_blocking(move || {
        if let State::Open(open) = &mut *state {
            draw_into(open, tiles)?;
        }
        Ok(state)
    })
    .await
    .map_err(|e| ImageError::Io(e.to_string()))?
}

/// Draws tiles from their stored results into `open`.
fn draw_into(open: &mut Open, tiles: Vec<(u32, Vec<u8>)>) -> Result<(), ImageError> {
    for (tile, result) in tiles {
        if open.drawn.contains(&tile) {
            continue;
        }
        let region = tile_region(tile, &result)?;
        open.assembler
            .add(tile as usize, region)
            .map_err(|e| ImageError::Io(e.to_string()))?;
        open.drawn.insert(tile);
    }
    Ok(())
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
