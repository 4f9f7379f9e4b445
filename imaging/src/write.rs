//! The consumer's side: take blurred tiles in any order and stream the PNG out band by band.
//!
//! A PNG is written top to bottom, so a band (row of tiles) can be written once all its tiles are
//! in, and the bands before it are written. Only tiles of bands that cannot be written yet are held;
//! a tile delivered twice (the queue redelivers) is recognised and ignored.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use png::{BitDepth, ColorType};

use crate::grid::{GridError, Rect, TileGrid};
use crate::pixels::{PixelFormat, Region};

/// What went wrong assembling the output PNG, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The tile index is not in the grid.
    #[error(transparent)]
    Grid(#[from] GridError),
    /// A tile whose pixels are not exactly its grid rectangle.
    #[error("tile {index} covers {found} but the grid puts it at {expected}: send the tile's own pixels, without halo")]
    WrongRect {
        /// The tile index.
        index: usize,
        /// The grid's rectangle for it.
        expected: Rect,
        /// The rectangle received.
        found: Rect,
    },
    /// A tile in another pixel format than the image.
    #[error("tile {index} is {found} but the output image is {expected}")]
    WrongFormat {
        /// The tile index.
        index: usize,
        /// The output's format.
        expected: PixelFormat,
        /// The tile's format.
        found: PixelFormat,
    },
    /// `finish` with tiles never delivered.
    #[error(
        "the image is incomplete: {count} tiles never arrived (first: {first:?}); run the missing tiles before finishing"
    )]
    Missing {
        /// How many tiles are missing.
        count: usize,
        /// The lowest missing indices, at most ten.
        first: Vec<usize>,
    },
    /// The PNG encoder or the underlying writer failed.
    #[error("could not write the PNG: {0}; check the destination (disk space, closed pipe)")]
    Encode(#[from] png::EncodingError),
    /// Writing rows to the encoder failed.
    #[error("could not write PNG rows: {0}; check the destination (disk space, closed pipe)")]
    Io(#[from] io::Error),
}

/// Writes a PNG from tiles delivered in any order, streaming each band out as soon as it is whole.
///
/// The writer is owned (a `File`, a `Vec<u8>`, a pipe) because the PNG encoder keeps it for the
/// whole image; [`RowAssembler::finish`] hands it back.
///
/// ```
/// # use taskq_image::{PixelFormat, Region, RowAssembler, TileGrid};
/// let grid = TileGrid::new(4, 4, "2".parse().unwrap()).unwrap();
/// let mut out = RowAssembler::new(Vec::new(), grid, PixelFormat::RGB8).unwrap();
/// for index in [3, 1, 0, 2, 2] {
///     out.add(index, Region::zeroed(grid.tile(index).unwrap(), PixelFormat::RGB8)).unwrap();
/// }
/// let png: Vec<u8> = out.finish().unwrap();
/// ```
pub struct RowAssembler<W: Write + 'static> {
    png: png::StreamWriter<'static, Shared<W>>,
    /// The same writer, to hand back once the encoder is done with it.
    writer: Shared<W>,
    grid: TileGrid,
    format: PixelFormat,
    held: BTreeMap<usize, Region>,
    next_band: u32,
    row: Vec<u8>,
}

impl<W: Write + 'static> RowAssembler<W> {
    /// Writes the PNG header for `grid`'s image in `format` to `writer`.
    pub fn new(
        writer: W,
        grid: TileGrid,
        format: PixelFormat,
    ) -> Result<RowAssembler<W>, WriteError> {
        let writer = Shared(Arc::new(Mutex::new(writer)));
        let mut encoder = png::Encoder::new(writer.clone(), grid.width(), grid.height());
        encoder.set_color(match format.channels() {
            1 => ColorType::Grayscale,
            2 => ColorType::GrayscaleAlpha,
            3 => ColorType::Rgb,
            _ => ColorType::Rgba,
        });
        encoder.set_depth(if format.bit_depth() == 8 {
            BitDepth::Eight
        } else {
            BitDepth::Sixteen
        });
        let png = encoder.write_header()?.into_stream_writer()?;
        Ok(RowAssembler {
            png,
            writer,
            grid,
            format,
            held: BTreeMap::new(),
            next_band: 0,
            row: Vec::with_capacity(grid.width() as usize * format.pixel_bytes()),
        })
    }

    /// Accepts tile `index`; false if it was already received (it is then ignored).
    ///
    /// Every band that is complete, in order from the top, is written and its tiles dropped.
    pub fn add(&mut self, index: usize, region: Region) -> Result<bool, WriteError> {
        let expected = self.grid.tile(index)?;
        if region.rect != expected {
            return Err(WriteError::WrongRect {
                index,
                expected,
                found: region.rect,
            });
        }
        if region.format != self.format {
            return Err(WriteError::WrongFormat {
                index,
                expected: self.format,
                found: region.format,
            });
        }
        if self.grid.band_of(index) < self.next_band || self.held.contains_key(&index) {
            return Ok(false);
        }
        self.held.insert(index, region);
        while self.next_band < self.grid.rows() && self.band_complete(self.next_band) {
            self.write_band(self.next_band)?;
            self.next_band += 1;
        }
        Ok(true)
    }

    /// Tiles received but not yet written (their band, or one above it, is incomplete).
    pub fn held_tiles(&self) -> usize {
        self.held.len()
    }

    /// Bands (rows of tiles) written so far.
    pub fn bands_written(&self) -> u32 {
        self.next_band
    }

    /// Ends the PNG and returns the writer; an error names the tiles that never arrived.
    pub fn finish(self) -> Result<W, WriteError> {
        if self.next_band < self.grid.rows() {
            let first_missing = self.grid.band_tiles(self.next_band).start;
            let missing: Vec<usize> = (first_missing..self.grid.len())
                .filter(|i| !self.held.contains_key(i))
                .collect();
            return Err(WriteError::Missing {
                count: missing.len(),
                first: missing.into_iter().take(10).collect(),
            });
        }
        self.png.finish()?;
        let shared = self.writer.0;
        let writer = Arc::try_unwrap(shared)
            .unwrap_or_else(|_| unreachable!("the encoder, the only other owner, is finished"));
        Ok(writer.into_inner().unwrap_or_else(PoisonError::into_inner))
    }

    fn band_complete(&self, band: u32) -> bool {
        let tiles = self.grid.band_tiles(band);
        let wanted = tiles.len();
        self.held.range(tiles).count() == wanted
    }

    fn write_band(&mut self, band: u32) -> Result<(), WriteError> {
        let tiles: Vec<Region> = self
            .grid
            .band_tiles(band)
            .filter_map(|i| self.held.remove(&i))
            .collect();
        let rect = tiles[0].rect;
        for y in rect.y..rect.bottom() {
            self.row.clear();
            for tile in &tiles {
                self.row.extend_from_slice(tile.row(y));
            }
            self.png.write_all(&self.row)?;
        }
        Ok(())
    }
}

/// The output writer, shared with the encoder, because png's streaming writer needs to own a
/// `'static` writer and never gives it back.
struct Shared<W>(Arc<Mutex<W>>);

impl<W> Clone for Shared<W> {
    fn clone(&self) -> Shared<W> {
        Shared(Arc::clone(&self.0))
    }
}

impl<W: Write> Write for Shared<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}
