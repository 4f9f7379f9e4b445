//! Building a tile's input for the next pass from the previous pass's outputs of its neighbours.
//!
//! Pass k+1 of tile t needs the pass-k pixels of t's rect grown by the radius; those pixels were
//! produced as separate tiles, possibly by different workers. This module copies just the needed
//! part of each and refuses, naming the pixel and its tile, when something is missing.

use crate::grid::{GridError, Rect, TileGrid};
use crate::pixels::{PixelFormat, Region};

/// What was wrong with the parts given to [`assemble`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    /// The tile index is not in the grid.
    #[error(transparent)]
    Grid(#[from] GridError),
    /// No parts at all.
    #[error(
        "no previous-pass tiles were given for tile {tile}: pass the outputs of its neighbourhood"
    )]
    NoParts {
        /// The tile being assembled.
        tile: usize,
    },
    /// Parts in different pixel formats.
    #[error(
        "part {part} is {found} but the first part is {expected}: every tile of an image has one format"
    )]
    MixedFormats {
        /// Position of the odd part in the slice.
        part: usize,
        /// Format of the first part.
        expected: PixelFormat,
        /// Format of the odd part.
        found: PixelFormat,
    },
    /// A needed pixel is in none of the parts.
    #[error(
        "tile {tile} needs {needed} from the previous pass but pixel ({x}, {y}) of tile {owner} is in none of the parts: pass the previous-pass outputs of every tile in grid.neighbourhood({tile}, radius)"
    )]
    Missing {
        /// The tile being assembled.
        tile: usize,
        /// The pixels it needs.
        needed: Rect,
        /// Column of the first missing pixel.
        x: u32,
        /// Row of the first missing pixel.
        y: u32,
        /// The tile that pixel belongs to.
        owner: usize,
    },
}

/// Tile `tile_index`'s input for the next pass: its rect grown by `radius` (clipped to the image),
/// copied from `parts`, the previous pass's outputs of the tiles in its neighbourhood.
///
/// Parts may come in any order and may cover more than is needed; only what is needed is copied.
///
/// ```
/// # use taskq_image::{assemble, Blur, PixelFormat, Rect, Region, TileGrid};
/// let grid = TileGrid::new(20, 20, "8".parse().unwrap()).unwrap();
/// let image = Region::zeroed(grid.image(), PixelFormat::RGB8);
/// let parts: Vec<Region> = grid.neighbourhood(4, 2).unwrap().into_iter()
///     .map(|t| image.crop(grid.tile(t).unwrap()).unwrap())
///     .collect();
/// let input = assemble(&grid, 4, 2, &parts).unwrap();
/// assert_eq!(input.rect(), Rect::new(6, 6, 12, 12));
/// ```
pub fn assemble(
    grid: &TileGrid,
    tile_index: usize,
    radius: u32,
    parts: &[Region],
) -> Result<Region, AssembleError> {
    let needed = grid
        .tile(tile_index)?
        .expand(radius, grid.width(), grid.height());
    let format = parts
        .first()
        .ok_or(AssembleError::NoParts { tile: tile_index })?
        .format;
    let mut result = Region::zeroed(needed, format);
    let mut covered = vec![false; needed.pixels()];
    for (i, part) in parts.iter().enumerate() {
        if part.format != format {
            return Err(AssembleError::MixedFormats {
                part: i,
                expected: format,
                found: part.format,
            });
        }
        let Some(common) = part.rect.intersect(&needed) else {
            continue;
        };
        for y in common.y..common.bottom() {
            let dest = result.span_mut(common.x, y, common.width);
            dest.copy_from_slice(part.span(common.x, y, common.width));
            let start =
                (y - needed.y) as usize * needed.width as usize + (common.x - needed.x) as usize;
            covered[start..start + common.width as usize].fill(true);
        }
    }
    match covered.iter().position(|&c| !c) {
        None => Ok(result),
        Some(at) => {
            let x = needed.x + (at % needed.width as usize) as u32;
            let y = needed.y + (at / needed.width as usize) as u32;
            let owner = (y / grid.tile_height()) as usize * grid.cols() as usize
                + (x / grid.tile_width()) as usize;
            Err(AssembleError::Missing {
                tile: tile_index,
                needed,
                x,
                y,
                owner,
            })
        }
    }
}
