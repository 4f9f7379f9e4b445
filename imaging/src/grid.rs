//! Where the tiles are: an image cut into a grid of rectangles, and which tiles a halo reaches.
//!
//! Every other module speaks in these terms (a tile index, its [`Rect`], the rect grown by the blur
//! radius), so the arithmetic of cutting lives here once and the tests of the flow can trust it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What was wrong with a tile size or a grid, and what to give instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GridError {
    /// The tile-size text was not `T` or `WxH` with positive whole numbers.
    #[error(
        "tile size {text:?} is not valid ({reason}): give a size in pixels like `256` (square) or `WxH` like `4096x1`"
    )]
    BadTileSize {
        /// The text as given.
        text: String,
        /// Which part was wrong.
        reason: &'static str,
    },
    /// A dimension of the image or the tile was zero.
    #[error("{what} is 0 pixels: every image and tile dimension must be at least 1")]
    ZeroSize {
        /// Which dimension was zero.
        what: &'static str,
    },
    /// A tile index beyond the grid.
    #[error("tile {index} does not exist: the grid has {len} tiles (0..{len})")]
    NoSuchTile {
        /// The index asked for.
        index: usize,
        /// How many tiles the grid has.
        len: usize,
    },
}

/// A rectangle of pixels in image coordinates; `x + width` and `y + height` are exclusive ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Columns covered.
    pub width: u32,
    /// Rows covered.
    pub height: u32,
}

impl Rect {
    /// A rectangle from its corner and size.
    pub const fn new(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    /// One past the rightmost column (saturating, so a rect off the wire cannot overflow).
    pub const fn right(&self) -> u32 {
        self.x.saturating_add(self.width)
    }

    /// One past the bottom row (saturating, so a rect off the wire cannot overflow).
    pub const fn bottom(&self) -> u32 {
        self.y.saturating_add(self.height)
    }

    /// How many pixels the rectangle covers.
    pub const fn pixels(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// True when the rectangle covers no pixel.
    pub const fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// The rectangle grown by `radius` on every side, clipped to an image of `width` x `height`.
    ///
    /// ```
    /// # use taskq_image::Rect;
    /// assert_eq!(Rect::new(4, 0, 4, 4).expand(3, 10, 10), Rect::new(1, 0, 9, 7));
    /// ```
    pub fn expand(&self, radius: u32, width: u32, height: u32) -> Rect {
        let x = self.x.saturating_sub(radius);
        let y = self.y.saturating_sub(radius);
        let right = self.right().saturating_add(radius).min(width);
        let bottom = self.bottom().saturating_add(radius).min(height);
        Rect::new(x, y, right.saturating_sub(x), bottom.saturating_sub(y))
    }

    /// The pixels both rectangles cover, if any.
    pub fn intersect(&self, other: &Rect) -> Option<Rect> {
        let x = self.x.max(other.x);
        let y = self.y.max(other.y);
        let right = self.right().min(other.right());
        let bottom = self.bottom().min(other.bottom());
        (x < right && y < bottom).then(|| Rect::new(x, y, right - x, bottom - y))
    }

    /// True when every pixel of `inner` is inside this rectangle.
    pub fn contains(&self, inner: &Rect) -> bool {
        inner.x >= self.x
            && inner.y >= self.y
            && inner.right() <= self.right()
            && inner.bottom() <= self.bottom()
    }
}

impl fmt::Display for Rect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{} at ({}, {})",
            self.width, self.height, self.x, self.y
        )
    }
}

/// The size of one tile, parsed from `T` (a square) or `WxH`; on the wire it is that text.
///
/// ```
/// # use taskq_image::TileSize;
/// let row: TileSize = "4096x1".parse().unwrap();
/// assert_eq!((row.width, row.height), (4096, 1));
/// assert_eq!("13".parse::<TileSize>().unwrap(), TileSize { width: 13, height: 13 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TileSize {
    /// Columns per tile (at least 1).
    pub width: u32,
    /// Rows per tile (at least 1).
    pub height: u32,
}

impl FromStr for TileSize {
    type Err = GridError;

    fn from_str(text: &str) -> Result<TileSize, GridError> {
        let bad = |reason| GridError::BadTileSize {
            text: text.to_owned(),
            reason,
        };
        let number = |part: &str| -> Result<u32, GridError> {
            let part = part.trim();
            if part.is_empty() {
                return Err(bad("a number is missing"));
            }
            match part.parse::<u32>() {
                Ok(0) => Err(bad("a tile dimension is 0")),
                Ok(n) => Ok(n),
                Err(_) => Err(bad("not a whole number of pixels")),
            }
        };
        let (width, height) = match text.split_once(['x', 'X']) {
            Some((w, h)) => (number(w)?, number(h)?),
            None => {
                let side = number(text)?;
                (side, side)
            }
        };
        Ok(TileSize { width, height })
    }
}

impl TryFrom<String> for TileSize {
    type Error = GridError;

    fn try_from(text: String) -> Result<TileSize, GridError> {
        text.parse()
    }
}

impl From<TileSize> for String {
    fn from(size: TileSize) -> String {
        size.to_string()
    }
}

impl fmt::Display for TileSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// An image of `width` x `height` cut into tiles, numbered row-major from the top-left.
///
/// Tiles on the right and bottom edges are clipped; a tile larger than the image makes one tile.
///
/// ```
/// # use taskq_image::{Rect, TileGrid};
/// let grid = TileGrid::new(10, 7, "4".parse().unwrap()).unwrap();
/// assert_eq!((grid.cols(), grid.rows(), grid.len()), (3, 2, 6));
/// assert_eq!(grid.tile(5).unwrap(), Rect::new(8, 4, 2, 3));
/// assert_eq!(grid.neighbourhood(0, 1).unwrap(), vec![0, 1, 3, 4]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "GridFields", into = "GridFields")]
pub struct TileGrid {
    fields: GridFields,
}

/// The grid as it travels: plain numbers, checked again on arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct GridFields {
    width: u32,
    height: u32,
    tile_width: u32,
    tile_height: u32,
}

impl TryFrom<GridFields> for TileGrid {
    type Error = GridError;

    fn try_from(f: GridFields) -> Result<TileGrid, GridError> {
        let tile = TileSize {
            width: f.tile_width,
            height: f.tile_height,
        };
        TileGrid::new(f.width, f.height, tile)
    }
}

impl From<TileGrid> for GridFields {
    fn from(grid: TileGrid) -> GridFields {
        grid.fields
    }
}

impl TileGrid {
    /// A grid over an image of `width` x `height`; every dimension must be at least 1.
    pub fn new(width: u32, height: u32, tile: TileSize) -> Result<TileGrid, GridError> {
        for (value, what) in [
            (width, "the image width"),
            (height, "the image height"),
            (tile.width, "the tile width"),
            (tile.height, "the tile height"),
        ] {
            if value == 0 {
                return Err(GridError::ZeroSize { what });
            }
        }
        let fields = GridFields {
            width,
            height,
            tile_width: tile.width.min(width),
            tile_height: tile.height.min(height),
        };
        Ok(TileGrid { fields })
    }

    /// Image width in pixels.
    pub fn width(&self) -> u32 {
        self.fields.width
    }

    /// Image height in pixels.
    pub fn height(&self) -> u32 {
        self.fields.height
    }

    /// Tile width (already reduced to the image width when the tile was wider).
    pub fn tile_width(&self) -> u32 {
        self.fields.tile_width
    }

    /// Tile height (already reduced to the image height when the tile was taller).
    pub fn tile_height(&self) -> u32 {
        self.fields.tile_height
    }

    /// The whole image as a rectangle.
    pub fn image(&self) -> Rect {
        Rect::new(0, 0, self.width(), self.height())
    }

    /// Tiles per row of tiles.
    pub fn cols(&self) -> u32 {
        self.width().div_ceil(self.tile_width())
    }

    /// Rows of tiles ("bands").
    pub fn rows(&self) -> u32 {
        self.height().div_ceil(self.tile_height())
    }

    /// How many tiles the grid has.
    pub fn len(&self) -> usize {
        self.cols() as usize * self.rows() as usize
    }

    /// Always false: a valid grid has at least one tile.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The band (row of tiles) that tile `index` belongs to; `index` must exist.
    pub fn band_of(&self, index: usize) -> u32 {
        (index / self.cols() as usize) as u32
    }

    /// The tile indices of band `band`, left to right.
    pub fn band_tiles(&self, band: u32) -> std::ops::Range<usize> {
        let cols = self.cols() as usize;
        let first = band as usize * cols;
        first..first + cols
    }

    /// The pixels of tile `index`, clipped to the image.
    pub fn tile(&self, index: usize) -> Result<Rect, GridError> {
        self.check(index)?;
        Ok(self.rect_of(index))
    }

    /// The indices of every tile whose pixels lie within `radius` of tile `index`, itself included,
    /// in row-major order: the tiles whose outputs the next pass of a blur of that radius reads.
    pub fn neighbourhood(&self, index: usize, radius: u32) -> Result<Vec<usize>, GridError> {
        let halo = self
            .tile(index)?
            .expand(radius, self.width(), self.height());
        let (tw, th) = (self.tile_width(), self.tile_height());
        let cols = (halo.x / tw)..=((halo.right() - 1) / tw);
        let rows = (halo.y / th)..=((halo.bottom() - 1) / th);
        let stride = self.cols() as usize;
        Ok(rows
            .flat_map(|row| {
                cols.clone()
                    .map(move |col| row as usize * stride + col as usize)
            })
            .collect())
    }

    fn check(&self, index: usize) -> Result<(), GridError> {
        let len = self.len();
        if index < len {
            Ok(())
        } else {
            Err(GridError::NoSuchTile { index, len })
        }
    }

    /// The rect of a tile already known to exist.
    pub(crate) fn rect_of(&self, index: usize) -> Rect {
        let cols = self.cols() as usize;
        let (col, row) = ((index % cols) as u32, (index / cols) as u32);
        let (x, y) = (col * self.tile_width(), row * self.tile_height());
        let width = self.tile_width().min(self.width() - x);
        let height = self.tile_height().min(self.height() - y);
        Rect::new(x, y, width, height)
    }
}
