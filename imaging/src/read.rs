//! The producer's side: decode a PNG row by row and hand out each tile, with its halo, as soon as
//! the rows it needs are in, keeping only one band of rows in memory.
//!
//! A band is `tile_height + 2 * radius` rows at most: the rows of one row of tiles plus the halo
//! above and below. Rows above the next band's halo are dropped as soon as a band is handed out.

use std::collections::VecDeque;
use std::io::{self, Chain, Cursor, Read};

use png::{BitDepth, ColorType, Transformations};
use serde::{Deserialize, Serialize};

use crate::forward::ForwardOnly;
use crate::grid::{GridError, Rect, TileGrid, TileSize};
use crate::pixels::{PixelFormat, Region};

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// What went wrong reading a PNG into tiles, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The input could not be read at all.
    #[error("could not read the image: {0}; check that the file or stream is readable")]
    Io(#[source] io::Error),
    /// The input does not start with the PNG signature.
    #[error(
        "the input is not a PNG file ({found}); give a PNG image (convert other formats first)"
    )]
    NotPng {
        /// What the input starts with.
        found: String,
    },
    /// The header chunks before the image data are damaged or cut short.
    #[error(
        "the PNG header could not be read ({0}); the file is damaged or truncated, re-export it"
    )]
    Header(#[source] png::DecodingError),
    /// Adam7 interlacing spreads every tile over the whole file.
    #[error(
        "the PNG is interlaced (Adam7), so its rows cannot be streamed into tiles; re-save it without interlacing (e.g. `magick in.png -interlace none out.png`)"
    )]
    Interlaced,
    /// A colour type the blur has no meaning for.
    #[error(
        "unsupported PNG colour type {color:?} at {bits:?} bits; use grey, grey+alpha, RGB or RGBA at 8 or 16 bits"
    )]
    Unsupported {
        /// The decoded colour type.
        color: ColorType,
        /// The decoded bit depth.
        bits: BitDepth,
    },
    /// The image or tile size makes no grid.
    #[error(transparent)]
    Grid(#[from] GridError),
    /// The data ends before the last row.
    #[error(
        "the PNG ends early, after {rows_read} of its {height} rows were decoded: the file is truncated; copy or export it again"
    )]
    Truncated {
        /// Rows decoded before the end.
        rows_read: u32,
        /// Rows the header promised.
        height: u32,
    },
    /// The image data is damaged.
    #[error(
        "the PNG image data is damaged ({source}), found after {rows_read} of its {height} rows were decoded; export it again"
    )]
    Corrupt {
        /// Rows decoded before the damage.
        rows_read: u32,
        /// Rows the header promised.
        height: u32,
        /// What the decoder found.
        source: png::DecodingError,
    },
}

/// One tile as the producer publishes it: where it is, and its pixels grown by the halo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileInput {
    /// The tile's index in the grid.
    pub index: usize,
    /// The tile's own pixels (what the worker outputs).
    pub rect: Rect,
    /// The tile's rect expanded by the halo radius, clipped to the image.
    pub region: Region,
}

type Source<R> = ForwardOnly<Chain<Cursor<[u8; 8]>, R>>;

/// Streams the tiles of a PNG in index order, each as soon as its rows are decoded.
///
/// ```no_run
/// # use taskq_image::{Blur, TileReader};
/// let blur = Blur::new(3.0).unwrap();
/// let file = std::fs::File::open("in.png").unwrap();
/// let mut tiles = TileReader::new(file, "512".parse().unwrap(), blur.radius()).unwrap();
/// let grid = tiles.grid();
/// for tile in &mut tiles {
///     let tile = tile.unwrap();
///     let out = blur.apply(&tile.region, grid.width(), grid.height(), tile.rect).unwrap();
///     // publish `out`...
/// }
/// ```
pub struct TileReader<R: Read> {
    png: png::Reader<Source<R>>,
    grid: TileGrid,
    format: PixelFormat,
    radius: u32,
    /// Decoded rows `band_top..rows_read`.
    band: VecDeque<Vec<u8>>,
    band_top: u32,
    rows_read: u32,
    next_tile: usize,
    max_rows_held: usize,
    spare: Vec<Vec<u8>>,
}

impl<R: Read> TileReader<R> {
    /// Reads the PNG header from `reader` and prepares tiles of `tile` with a halo of `radius`.
    pub fn new(mut reader: R, tile: TileSize, radius: u32) -> Result<TileReader<R>, ReadError> {
        let signature = read_signature(&mut reader)?;
        let source = ForwardOnly::new(Cursor::new(signature).chain(reader));
        // Tiles must be exact, so damage must not pass silently: check zlib's checksum too.
        let mut options = png::DecodeOptions::default();
        options.set_ignore_adler32(false);
        let mut decoder = png::Decoder::new_with_options(source, options);
        // Palettes and 1-4 bit greys become 8-bit samples; a tRNS chunk becomes an alpha channel.
        decoder.set_transformations(Transformations::EXPAND);
        let png = decoder.read_info().map_err(ReadError::Header)?;
        let info = png.info();
        if info.interlaced {
            return Err(ReadError::Interlaced);
        }
        let grid = TileGrid::new(info.width, info.height, tile)?;
        let format = format_of(png.output_color_type())?;
        Ok(TileReader {
            png,
            grid,
            format,
            radius,
            band: VecDeque::new(),
            band_top: 0,
            rows_read: 0,
            next_tile: 0,
            max_rows_held: 0,
            spare: Vec::new(),
        })
    }

    /// The grid of tiles over this image.
    pub fn grid(&self) -> TileGrid {
        self.grid
    }

    /// The pixel format of the decoded samples.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Rows decoded so far.
    pub fn rows_read(&self) -> u32 {
        self.rows_read
    }

    /// The most rows held at once so far; never more than `tile_height + 2 * radius`.
    pub fn max_rows_held(&self) -> usize {
        self.max_rows_held
    }

    /// The next tile in index order, `None` after the last; an error ends the stream.
    pub fn next_tile(&mut self) -> Result<Option<TileInput>, ReadError> {
        if self.next_tile >= self.grid.len() {
            return Ok(None);
        }
        let index = self.next_tile;
        let rect = self.grid.rect_of(index);
        let halo = rect.expand(self.radius, self.grid.width(), self.grid.height());
        while self.rows_read < halo.bottom() {
            if let Err(e) = self.read_row() {
                self.next_tile = self.grid.len();
                return Err(e);
            }
        }
        let mut region = Region::zeroed(halo, self.format);
        let px = self.format.pixel_bytes();
        let (from, to) = (halo.x as usize * px, halo.right() as usize * px);
        for y in halo.y..halo.bottom() {
            let row = &self.band[(y - self.band_top) as usize];
            region
                .span_mut(halo.x, y, halo.width)
                .copy_from_slice(&row[from..to]);
        }
        self.next_tile += 1;
        if self.next_tile.is_multiple_of(self.grid.cols() as usize) {
            self.drop_rows_above(rect.bottom().saturating_sub(self.radius));
        }
        Ok(Some(TileInput {
            index,
            rect,
            region,
        }))
    }

    fn read_row(&mut self) -> Result<(), ReadError> {
        let row = match self.png.next_row() {
            Ok(Some(row)) => row,
            Ok(None) => return Err(self.truncated()),
            Err(e) => return Err(self.decoding_error(e)),
        };
        let mut copy = self.spare.pop().unwrap_or_default();
        copy.clear();
        copy.extend_from_slice(row.data());
        self.band.push_back(copy);
        self.rows_read += 1;
        self.max_rows_held = self.max_rows_held.max(self.band.len());
        if self.rows_read == self.grid.height() {
            // Checksums are verified at the end of the data: the last band waits for them.
            self.png.finish().map_err(|e| self.decoding_error(e))?;
        }
        Ok(())
    }

    fn truncated(&self) -> ReadError {
        ReadError::Truncated {
            rows_read: self.rows_read,
            height: self.grid.height(),
        }
    }

    fn decoding_error(&self, error: png::DecodingError) -> ReadError {
        match error {
            png::DecodingError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.truncated()
            }
            png::DecodingError::IoError(e) => ReadError::Io(e),
            source => ReadError::Corrupt {
                rows_read: self.rows_read,
                height: self.grid.height(),
                source,
            },
        }
    }

    fn drop_rows_above(&mut self, keep_from: u32) {
        while self.band_top < keep_from {
            if let Some(row) = self.band.pop_front() {
                self.spare.push(row);
            }
            self.band_top += 1;
        }
    }
}

impl<R: Read> Iterator for TileReader<R> {
    type Item = Result<TileInput, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_tile().transpose()
    }
}

/// The first eight bytes, which must be the PNG signature.
fn read_signature(reader: &mut impl Read) -> Result<[u8; 8], ReadError> {
    let mut signature = [0u8; 8];
    let mut got = 0;
    while got < signature.len() {
        match reader.read(&mut signature[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    if got == signature.len() && signature == SIGNATURE {
        return Ok(signature);
    }
    let found = match got {
        0 => "it is empty".to_owned(),
        n => {
            let start: String = signature[..n].escape_ascii().to_string();
            format!("it starts with \"{start}\"")
        }
    };
    Err(ReadError::NotPng { found })
}

fn format_of((color, bits): (ColorType, BitDepth)) -> Result<PixelFormat, ReadError> {
    let channels = match color {
        ColorType::Grayscale => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb => 3,
        ColorType::Rgba => 4,
        ColorType::Indexed => return Err(ReadError::Unsupported { color, bits }),
    };
    let depth = match bits {
        BitDepth::Eight => 8,
        BitDepth::Sixteen => 16,
        _ => return Err(ReadError::Unsupported { color, bits }),
    };
    PixelFormat::new(channels, depth).map_err(|_| ReadError::Unsupported { color, bits })
}
