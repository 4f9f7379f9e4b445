//! The separable convolution every blur runs: horizontal into f32 rows, then vertical, then round.
//!
//! Exactness across tiles rests on one property: the value of an output pixel depends only on its
//! place in the image, never on the tile around it. Clamping happens in image coordinates, and each
//! output sample is `0 + w[0]*s[0] + w[1]*s[1] + ...` in that order, first along the row, then down
//! the column. Blocks of lanes, tiles and bands change which samples share a loop, never that
//! sequence, and Rust neither reorders float additions nor fuses them, so every tiling agrees.
//! The final rounding uses only exact operations, so it cannot differ either.

use crate::grid::Rect;
use crate::pixels::Region;

/// Output samples computed together, their running sums kept in registers across all taps.
const LANES: usize = 16;

/// Blurs the pixels of `out` into `dest` (row-major samples of `out`, in `input`'s format).
///
/// `image` is the rectangle pixels are clamped to; `input` must cover `out` grown by the radius
/// (`weights.len() / 2`) and clipped to `image`, and `out` must lie inside `image`. Callers check.
pub(crate) fn convolve(weights: &[f32], input: &Region, image: Rect, out: Rect, dest: &mut [u8]) {
    let taps = weights.len();
    let radius = (taps / 2) as u32;
    let channels = usize::from(input.format.channels());
    let floats = out.width as usize * channels;
    let sources = SourceColumns::new(input, image, out, radius);
    let mut padded = Vec::with_capacity((out.width as usize + taps) * channels);
    let mut ring = vec![vec![0f32; floats]; taps];
    let mut slots = vec![0usize; taps];
    let (top, end) = (image.y, image.bottom());
    let mut next_source = out.y.saturating_sub(radius).max(top);
    let max = f32::from(input.format.max_sample());
    let row_bytes = floats * input.format.sample_bytes();

    for (y, dest_row) in (out.y..out.bottom()).zip(dest.chunks_exact_mut(row_bytes)) {
        let window_end = (y + radius + 1).min(end);
        while next_source < window_end {
            sources.gather(input, next_source, &mut padded);
            let slot = &mut ring[next_source as usize % taps];
            horizontal(weights, channels, &padded, slot);
            next_source += 1;
        }
        for (k, slot) in slots.iter_mut().enumerate() {
            let wanted = i64::from(y) - i64::from(radius) + k as i64;
            *slot = wanted.clamp(i64::from(top), i64::from(end) - 1) as usize % taps;
        }
        vertical(weights, &ring, &slots, max, dest_row);
    }
}

/// The input columns the horizontal pass reads for one output row, clamped to the image:
/// `left` copies of the image's left edge pixel, a contiguous run, `right` copies of the right edge.
struct SourceColumns {
    left: usize,
    /// Byte range of the run within an input row.
    run: std::ops::Range<usize>,
    right: usize,
    /// Byte offsets of the edge pixels within an input row.
    edges: (usize, usize),
    pixel_bytes: usize,
    sample_bytes: usize,
}

impl SourceColumns {
    fn new(input: &Region, image: Rect, out: Rect, radius: u32) -> SourceColumns {
        let pixel_bytes = input.format.pixel_bytes();
        let offset = |x: i64| (x - i64::from(input.rect.x)) as usize * pixel_bytes;
        let (first, last) = (i64::from(image.x), i64::from(image.right()) - 1);
        let start = i64::from(out.x) - i64::from(radius);
        let end = i64::from(out.right()) + i64::from(radius); // exclusive
        let (run_start, run_end) = (start.max(first), end.min(last + 1));
        SourceColumns {
            left: (run_start - start) as usize,
            run: offset(run_start)..offset(run_end),
            right: (end - run_end) as usize,
            // Only used when clamping happens, and then the run starts or ends at the image edge.
            edges: (offset(run_start), offset(run_end - 1)),
            pixel_bytes,
            sample_bytes: input.format.sample_bytes(),
        }
    }

    /// Row `y` of the input as f32 samples, one pixel per padded position.
    fn gather(&self, input: &Region, y: u32, padded: &mut Vec<f32>) {
        let row = input.row(y);
        padded.clear();
        let pixel = |at: usize| &row[at..at + self.pixel_bytes];
        for _ in 0..self.left {
            self.convert(pixel(self.edges.0), padded);
        }
        self.convert(&row[self.run.clone()], padded);
        for _ in 0..self.right {
            self.convert(pixel(self.edges.1), padded);
        }
    }

    fn convert(&self, bytes: &[u8], padded: &mut Vec<f32>) {
        if self.sample_bytes == 1 {
            padded.extend(bytes.iter().map(|&s| f32::from(s)));
        } else {
            let samples = bytes.chunks_exact(2);
            padded.extend(samples.map(|s| f32::from(u16::from_be_bytes([s[0], s[1]]))));
        }
    }
}

/// One row along x: `dest[i] = sum_k weights[k] * padded[i + k * channels]`, summed in k order.
fn horizontal(weights: &[f32], channels: usize, padded: &[f32], dest: &mut [f32]) {
    let len = dest.len();
    let mut blocks = dest.chunks_exact_mut(LANES);
    for (b, block) in blocks.by_ref().enumerate() {
        let mut acc = [0f32; LANES];
        for (k, &w) in weights.iter().enumerate() {
            let from = b * LANES + k * channels;
            let src: &[f32; LANES] = padded[from..from + LANES].try_into().unwrap();
            for (a, &s) in acc.iter_mut().zip(src) {
                *a += w * s;
            }
        }
        block.copy_from_slice(&acc);
    }
    let done = len - blocks.into_remainder().len();
    for (i, d) in dest.iter_mut().enumerate().skip(done) {
        let mut a = 0f32;
        for (k, &w) in weights.iter().enumerate() {
            a += w * padded[i + k * channels];
        }
        *d = a;
    }
}

/// One row down y: `sum_k weights[k] * ring[slots[k]][i]`, summed in k order, rounded into `dest`.
fn vertical(weights: &[f32], ring: &[Vec<f32>], slots: &[usize], max: f32, dest: &mut [u8]) {
    let floats = ring[0].len();
    let bytes = dest.len() / floats.max(1);
    let mut i = 0;
    while i < floats {
        let lanes = LANES.min(floats - i);
        let mut acc = [0f32; LANES];
        if lanes == LANES {
            for (&w, &slot) in weights.iter().zip(slots) {
                let src: &[f32; LANES] = ring[slot][i..i + LANES].try_into().unwrap();
                for (a, &s) in acc.iter_mut().zip(src) {
                    *a += w * s;
                }
            }
        } else {
            for (&w, &slot) in weights.iter().zip(slots) {
                for (a, &s) in acc.iter_mut().zip(&ring[slot][i..i + lanes]) {
                    *a += w * s;
                }
            }
        }
        store(
            &acc[..lanes],
            max,
            &mut dest[i * bytes..(i + lanes) * bytes],
        );
        i += lanes;
    }
}

/// Rounds (half away from zero) and clamps each value into a sample of `dest`'s width.
fn store(acc: &[f32], max: f32, dest: &mut [u8]) {
    if max <= 255.0 {
        for (d, &v) in dest.iter_mut().zip(acc) {
            *d = round_sample(v, max) as u8;
        }
    } else {
        for (d, &v) in dest.chunks_exact_mut(2).zip(acc) {
            d.copy_from_slice(&(round_sample(v, max) as u16).to_be_bytes());
        }
    }
}

/// `v.round().clamp(0, max)` without a call into the maths library: after clamping, `v - trunc(v)`
/// is exact in f32 (`max` is below 2^24), so comparing it with one half rounds exactly as
/// `f32::round` does, half away from zero.
fn round_sample(v: f32, max: f32) -> u32 {
    let v = v.clamp(0.0, max);
    let whole = v as u32;
    whole + u32::from(v - whole as f32 >= 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_f32_round_half_away_from_zero_then_clamped() {
        let specials = [
            0.5, 1.5, 2.5, 0.49999997, 254.5, 254.49998, 255.4, 255.6, 65534.5, 65535.5,
        ];
        let mut values: Vec<f32> = specials.to_vec();
        values.extend((0..300_000).map(|i| i as f32 * 0.2183));
        values.extend([-0.0, -0.4, -0.6, -3.0, 1e9, f32::MIN_POSITIVE]);
        for max in [255.0, 65535.0] {
            for &v in &values {
                let expected = v.round().clamp(0.0, max) as u32;
                assert_eq!(round_sample(v, max), expected, "{v} up to {max}");
            }
        }
    }
}
