//! Images cut into tiles with halos, blurred exactly, and put back together row by row.
//!
//! The "large image blurred in tiles" workload of the task queue, as a pure library (no network,
//! no async). The data flow, one module per step:
//!
//! ```text
//! PNG bytes --read::TileReader--> TileInput { index, rect, region = rect + halo }   (producer)
//!        --Blur::apply--> tile output (rect only)                                    (worker)
//!        [pass k+1: assemble(grid, t, radius, pass-k outputs of grid.neighbourhood(t, radius))]
//!        --write::RowAssembler::add (any order)--> PNG bytes, band by band           (consumer)
//! ```
//!
//! - `grid`: [`TileGrid`], [`Rect`], [`TileSize`]: where the tiles are and what a halo reaches.
//! - `pixels`: [`PixelFormat`] and [`Region`], a rectangle of samples in PNG byte order;
//!   `wire` gives a region its JSON shape (samples as base64).
//! - `blur`: [`Blur`], the per-tile filter and the whole-image reference; `kernel` and
//!   `convolve` hold its weights and its arithmetic.
//! - `assemble`: a tile's next-pass input from its neighbours' outputs.
//! - `check`: a PNG's chunks and checksums, so a damaged file is refused before anything is sent.
//! - `read` / `write`: streaming PNG in and out with bounded memory (`forward` adapts a plain
//!   reader to the decoder).
//!
//! The promise: for any tile size and any number of passes, the tiled result is byte-for-byte the
//! result of [`Blur::blur_image`] on the whole image.

mod assemble;
mod blur;
mod check;
mod convolve;
mod forward;
mod grid;
mod kernel;
mod pixels;
mod read;
mod wire;
mod write;

pub use assemble::{assemble, AssembleError};
pub use blur::{Blur, BlurError, MAX_SIGMA};
pub use check::{check_png, StructureError};
pub use grid::{GridError, Rect, TileGrid, TileSize};
pub use pixels::{PixelError, PixelFormat, Region};
pub use read::{ReadError, TileInput, TileReader};
pub use write::{RowAssembler, WriteError};
