//! The Gaussian blur a worker runs on one tile, and the whole-image reference it must match.
//!
//! [`Blur::apply`] checks its arguments (they come off the wire) and hands the arithmetic to
//! `convolve`, which every entry point here shares: the tiled, whole-image and banded-parallel
//! results are equal because they run the same per-pixel sums.

use crate::convolve::convolve;
use crate::grid::Rect;
use crate::kernel::gaussian_weights;
use crate::pixels::Region;

/// The largest sigma accepted: a radius of 150 pixels already reads 301 rows per output row.
pub const MAX_SIGMA: f32 = 50.0;

/// What was wrong with a blur or its arguments.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BlurError {
    /// Sigma not a number in `(0, MAX_SIGMA]`.
    #[error(
        "blur sigma {sigma} is out of range: give a number greater than 0 and at most {MAX_SIGMA}"
    )]
    Sigma {
        /// The sigma given.
        sigma: f32,
    },
    /// The output rectangle is empty or not inside the image.
    #[error(
        "cannot blur {out} of a {width}x{height} image: the output must be a non-empty rectangle inside the image"
    )]
    BadOutput {
        /// The output asked for.
        out: Rect,
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
    },
    /// The input lacks pixels the output needs.
    #[error(
        "the input region covers {have} but blurring {out} needs {needed} (the output grown by the radius {radius}, clipped to the image): send the tile with its halo"
    )]
    MissingHalo {
        /// The output asked for.
        out: Rect,
        /// The pixels it needs.
        needed: Rect,
        /// The pixels the input has.
        have: Rect,
        /// The blur radius.
        radius: u32,
    },
}

/// A Gaussian blur of a given sigma: separable, edges clamped, results rounded to whole samples.
///
/// ```
/// # use taskq_image::{Blur, PixelFormat, Rect, Region};
/// let blur = Blur::new(3.0).unwrap();
/// assert_eq!(blur.radius(), 9);
/// let image = Region::zeroed(Rect::new(0, 0, 64, 48), PixelFormat::RGB8);
/// // One tile with its halo, blurred alone, equals the same pixels of the whole-image blur.
/// let tile = Rect::new(16, 16, 16, 16);
/// let input = image.crop(tile.expand(blur.radius(), 64, 48)).unwrap();
/// let out = blur.apply(&input, 64, 48, tile).unwrap();
/// assert_eq!(out, blur.blur_image(&image, 1).crop(tile).unwrap());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Blur {
    sigma: f32,
    radius: u32,
    weights: Vec<f32>,
}

impl Blur {
    /// A blur of standard deviation `sigma` pixels, `0 < sigma <= MAX_SIGMA`.
    pub fn new(sigma: f32) -> Result<Blur, BlurError> {
        if !(sigma > 0.0 && sigma <= MAX_SIGMA) {
            return Err(BlurError::Sigma { sigma });
        }
        let radius = (3.0 * sigma).ceil() as u32;
        Ok(Blur {
            sigma,
            radius,
            weights: gaussian_weights(sigma, radius),
        })
    }

    /// The standard deviation in pixels.
    pub fn sigma(&self) -> f32 {
        self.sigma
    }

    /// How far a pixel's influence reaches: `ceil(3 * sigma)`; the halo a tile needs per pass.
    pub fn radius(&self) -> u32 {
        self.radius
    }

    /// The kernel weights over `-radius..=radius`, normalized.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Blurs the pixels `out` of an image of `image_width` x `image_height`.
    ///
    /// `input` must cover `out.expand(self.radius(), image_width, image_height)`; it may cover
    /// more. Edges are clamped in image coordinates, so a border tile replicates the true border.
    pub fn apply(
        &self,
        input: &Region,
        image_width: u32,
        image_height: u32,
        out: Rect,
    ) -> Result<Region, BlurError> {
        let image = Rect::new(0, 0, image_width, image_height);
        if out.is_empty() || !image.contains(&out) {
            return Err(BlurError::BadOutput {
                out,
                width: image_width,
                height: image_height,
            });
        }
        let needed = out.expand(self.radius, image_width, image_height);
        if !input.rect.contains(&needed) {
            return Err(BlurError::MissingHalo {
                out,
                needed,
                have: input.rect,
                radius: self.radius,
            });
        }
        let mut result = Region::zeroed(out, input.format);
        convolve(&self.weights, input, image, out, &mut result.data);
        Ok(result)
    }

    /// The reference: `whole` taken as the entire image, blurred `passes` times, each pass rounded.
    pub fn blur_image(&self, whole: &Region, passes: u32) -> Region {
        self.blur_image_parallel(whole, passes, 1)
    }

    /// [`Blur::blur_image`] on `threads` threads (0: one per CPU), each taking a band of rows.
    ///
    /// The bytes are identical to the single-threaded result for any number of threads.
    pub fn blur_image_parallel(&self, whole: &Region, passes: u32, threads: usize) -> Region {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let mut current = whole.clone();
        for _ in 0..passes {
            current = self.one_pass(&current, threads);
        }
        current
    }

    fn one_pass(&self, image: &Region, threads: usize) -> Region {
        let rect = image.rect;
        let mut result = Region::zeroed(rect, image.format);
        if rect.is_empty() {
            return result;
        }
        let row_bytes = result.row_bytes();
        let band_height = rect
            .height
            .div_ceil(threads.clamp(1, rect.height as usize) as u32);
        let bands = result.data.chunks_mut(band_height as usize * row_bytes);
        let mut work = bands.enumerate().map(|(i, dest)| {
            let y = rect.y + i as u32 * band_height;
            let band = Rect::new(rect.x, y, rect.width, (dest.len() / row_bytes) as u32);
            (band, dest)
        });
        let own = work.next();
        std::thread::scope(|scope| {
            for (band, dest) in work {
                scope.spawn(move || convolve(&self.weights, image, rect, band, dest));
            }
            // The calling thread takes the first band rather than waiting idle.
            if let Some((band, dest)) = own {
                convolve(&self.weights, image, rect, band, dest);
            }
        });
        result
    }
}
