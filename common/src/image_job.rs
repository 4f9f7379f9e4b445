//! An image job (`image-blur`): its geometry in the job record, so the consumer can write the output
//! PNG as tiles arrive, and the finished PNG handed to the producer through Redis, so it reaches the
//! producer's `--output` wherever the consumer runs.

use std::io::{Read, Write};
use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use taskq_image::{PixelFormat, TileGrid};

use crate::job::JobId;
use crate::store::{command, JobStore, StoreError};

/// How long the finished PNG waits in Redis for the producer.
pub const PNG_RETENTION: Duration = Duration::from_secs(3600);

/// Bytes moved per Redis command when storing or fetching a PNG.
const PIECE: usize = 4 << 20;

/// What the consumer needs to put an image job's tiles together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImageOutput {
    /// The tiles (chunk n is tile n).
    pub grid: TileGrid,
    /// The pixels' format.
    pub format: PixelFormat,
}

impl ImageOutput {
    /// The job record's field holding it.
    pub const FIELD: &'static str = "image";

    /// The job record field for it.
    pub fn field(&self) -> (&'static str, String) {
        let json = serde_json::to_string(self).expect("image geometry encodes as JSON");
        (Self::FIELD, json)
    }
}

impl JobStore {
    /// The job's image geometry; `None` when it is not an image job.
    pub async fn image_output(&self, job: JobId) -> Result<Option<ImageOutput>, StoreError> {
        let raw: Option<String> = self
            .connection()
            .hget(self.topology().job_key(job), ImageOutput::FIELD)
            .await
            .map_err(command("reading the image geometry"))?;
        raw.map(|raw| {
            serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt {
                job,
                detail: format!("image geometry: {e}"),
            })
        })
        .transpose()
    }

    /// Stores the finished PNG from `file` for the producer, replacing an earlier copy at once: it is
    /// written beside the key and renamed into place, so a producer never reads half of it.
    pub async fn store_png(&self, job: JobId, mut file: impl Read) -> Result<u64, StoreError> {
        let final_key = self.topology().job_png_key(job);
        let key = format!("{final_key}:writing");
        let mut connection = self.connection();
        let _: () = connection
            .del(&key)
            .await
            .map_err(command("storing the output PNG"))?;
        let mut piece = vec![0; PIECE];
        let mut total = 0u64;
        loop {
            let read = file.read(&mut piece).map_err(|e| StoreError::Corrupt {
                job,
                detail: format!("reading the output PNG: {e}"),
            })?;
            if read == 0 {
                break;
            }
            let _: () = connection
                .append(&key, &piece[..read])
                .await
                .map_err(command("storing the output PNG"))?;
            total += read as u64;
        }
        let _: () = redis::pipe()
            .atomic()
            .expire(&key, PNG_RETENTION.as_secs() as i64)
            .rename(&key, &final_key)
            .query_async(&mut connection)
            .await
            .map_err(command("storing the output PNG"))?;
        Ok(total)
    }

    /// Writes the job's finished PNG to `out`; `None` when Redis holds none (expired, or not an image
    /// job).
    pub async fn fetch_png(
        &self,
        job: JobId,
        out: &mut impl Write,
    ) -> Result<Option<u64>, StoreError> {
        let key = self.topology().job_png_key(job);
        let mut connection = self.connection();
        let length: u64 = connection
            .strlen(&key)
            .await
            .map_err(command("fetching the output PNG"))?;
        if length == 0 {
            return Ok(None);
        }
        let mut start = 0u64;
        while start < length {
            let end = (start + PIECE as u64).min(length) - 1;
            let piece: Vec<u8> = connection
                .getrange(&key, start as isize, end as isize)
                .await
                .map_err(command("fetching the output PNG"))?;
            out.write_all(&piece).map_err(|e| StoreError::Corrupt {
                job,
                detail: format!("writing the output PNG: {e}"),
            })?;
            start = end + 1;
        }
        Ok(Some(length))
    }
}
