//! The filter itself, checked against facts about a Gaussian rather than against its own code.

use taskq_image::{Blur, PixelFormat, Rect, Region};

use crate::harness::random_image;

fn constant(width: u32, height: u32, format: PixelFormat, value: u16) -> Region {
    let mut data = Vec::new();
    for _ in 0..width as usize * height as usize * usize::from(format.channels()) {
        match format.sample_bytes() {
            1 => data.push(value as u8),
            _ => data.extend_from_slice(&value.to_be_bytes()),
        }
    }
    Region::new(Rect::new(0, 0, width, height), format, data).unwrap()
}

#[test]
fn a_constant_image_stays_constant() {
    for format in [PixelFormat::RGB8, PixelFormat::RGBA16] {
        for value in [0, 1, 77, format.max_sample()] {
            let image = constant(19, 11, format, value);
            for sigma in [0.5, 3.0, 10.0] {
                let out = Blur::new(sigma).unwrap().blur_image(&image, 2);
                assert_eq!(out, image, "{format} of {value}, sigma {sigma}");
            }
        }
    }
}

#[test]
fn a_bright_pixel_spreads_symmetrically_and_keeps_its_energy() {
    let n = 31;
    let mut image = Region::zeroed(Rect::new(0, 0, n, n), PixelFormat::RGB16);
    let mut data = image.data().to_vec();
    let centre = (15 * n as usize + 15) * 6;
    data[centre..centre + 2].copy_from_slice(&u16::MAX.to_be_bytes());
    image = Region::new(image.rect(), image.format(), data).unwrap();

    let out = Blur::new(2.0).unwrap().blur_image(&image, 1);
    let mut sum = 0u64;
    for y in 0..n {
        for x in 0..n {
            let v = out.sample(x, y, 0);
            sum += u64::from(v);
            assert_eq!(v, out.sample(n - 1 - x, y, 0), "mirror in x at ({x}, {y})");
            assert_eq!(v, out.sample(x, n - 1 - y, 0), "mirror in y at ({x}, {y})");
            assert_eq!(v, out.sample(y, x, 0), "transpose at ({x}, {y})");
            assert_eq!(
                (out.sample(x, y, 1), out.sample(x, y, 2)),
                (0, 0),
                "other channels"
            );
            let outside = x.abs_diff(15) > 6 || y.abs_diff(15) > 6;
            if outside {
                assert_eq!(v, 0, "beyond the radius at ({x}, {y})");
            }
        }
    }
    // Each of the 13x13 samples within the radius is rounded by at most one half.
    let tolerance = 13 * 13 / 2;
    assert!(sum.abs_diff(65535) <= tolerance, "energy {sum} vs 65535");
    // The peak is the product of two centre weights of a sigma-2 Gaussian: 65535 * w0^2.
    let w0 = 1.0
        / (-6..=6)
            .map(|d: i32| (-f64::from(d * d) / 8.0).exp())
            .sum::<f64>();
    assert_eq!(
        f64::from(out.sample(15, 15, 0)),
        (65535.0 * w0 * w0).round()
    );
}

/// The blur written the slow, obvious way: a 2-D sum over the square, edges clamped, in f64.
fn naive(image: &Region, sigma: f64, x: u32, y: u32, c: u8) -> f64 {
    let r = (3.0 * sigma).ceil() as i64;
    let rect = image.rect();
    let (mut sum, mut weights) = (0.0, 0.0);
    for dy in -r..=r {
        for dx in -r..=r {
            let w = (-((dx * dx + dy * dy) as f64) / (2.0 * sigma * sigma)).exp();
            let sx = (i64::from(x) + dx).clamp(0, i64::from(rect.width) - 1) as u32;
            let sy = (i64::from(y) + dy).clamp(0, i64::from(rect.height) - 1) as u32;
            sum += w * f64::from(image.sample(sx, sy, c));
            weights += w;
        }
    }
    sum / weights
}

#[test]
fn every_pixel_is_within_rounding_of_a_direct_2d_convolution() {
    for (format, sigma) in [(PixelFormat::RGB8, 1.5), (PixelFormat::RGBA16, 3.0)] {
        let image = random_image(23, 17, format, 5);
        let out = Blur::new(sigma as f32).unwrap().blur_image(&image, 1);
        let (mut exact, mut total) = (0, 0);
        for y in 0..17 {
            for x in 0..23 {
                for c in 0..format.channels() {
                    let want = naive(&image, sigma, x, y, c);
                    let got = f64::from(out.sample(x, y, c));
                    // f32 sums differ from f64 in the last bits, which can tip a rounding.
                    let slack = 1e-5 * f64::from(format.max_sample());
                    let off = (got - want).abs();
                    assert!(off <= 0.5 + slack, "({x},{y},{c}) {got} vs {want}");
                    exact += usize::from(got == want.round());
                    total += 1;
                }
            }
        }
        assert!(
            exact * 100 >= total * 99,
            "{format}: only {exact} of {total} match exactly"
        );
    }
}

#[test]
fn sigma_sets_the_radius() {
    for (sigma, radius) in [
        (0.1, 1),
        (0.8, 3),
        (1.0, 3),
        (2.0, 6),
        (3.0, 9),
        (50.0, 150),
    ] {
        assert_eq!(Blur::new(sigma).unwrap().radius(), radius, "sigma {sigma}");
    }
    let weights = Blur::new(3.0).unwrap().weights().to_vec();
    assert_eq!(weights.len(), 19);
    assert!((weights.iter().sum::<f32>() - 1.0).abs() < 1e-6);
}
