//! The built-in task kinds, written with the same API a user's task uses (one file each):
//! - [`SumSquares`] (`sum-squares`, CPU): the seed course's `sum(i*i for i in range(n))`;
//! - [`Square`] (`square`, CPU): `x*x` mapped over a list, like `pool.map(square, data, chunksize)`;
//! - [`Download`] (`download`, I/O): fetch a URL through the worker's HTTP client;
//! - [`ImageBlur`] (`image-blur`, CPU): one tile of a large image, blurred exactly.
//!
//! The stock `worker` binary registers the four; a user's worker registers whichever it wants beside
//! its own.

mod download;
mod image_blur;
mod square;
mod sum_squares;

pub use download::{Download, DownloadOutput};
pub use image_blur::{BlurTile, BlurredTile, ImageBlur, JoinedPart};
pub use square::Square;
pub use sum_squares::{sum_of_squares_below, SumSquares};
