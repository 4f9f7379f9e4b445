//! The promise: the tiled flow gives the whole-image blur byte for byte, for every tiling.

use taskq_image::{Blur, PixelFormat, TileSize};

use crate::harness::{assert_same_pixels, decode_png, encode_png, random_image, tiled_blur};

const FORMATS: [PixelFormat; 4] = [
    PixelFormat::RGB8,
    PixelFormat::RGBA8,
    PixelFormat::RGB16,
    PixelFormat::RGBA16,
];
const SIGMAS: [f32; 3] = [0.8, 2.0, 3.0];

/// Runs every format, sigma and pass count over one image and a list of tile sizes.
fn check(width: u32, height: u32, tiles: &[&str], passes: &[u32]) {
    for (f, format) in FORMATS.into_iter().enumerate() {
        let seed = u64::from(width) * 1000 + u64::from(height) * 10 + f as u64;
        let image = random_image(width, height, format, seed);
        let png = encode_png(&image);
        for sigma in SIGMAS {
            let blur = Blur::new(sigma).unwrap();
            for &passes in passes {
                let expected = blur.blur_image(&image, passes);
                for tile in tiles {
                    let size: TileSize = tile.parse().unwrap();
                    let out = decode_png(&tiled_blur(&png, size, &blur, passes, seed));
                    let what = format!(
                        "{width}x{height} {format}, sigma {sigma}, {passes} passes, tiles {tile}"
                    );
                    assert_same_pixels(&out, &expected, &what);
                }
            }
        }
    }
}

#[test]
fn row_prime_oversized_and_non_square_tiles_match_the_whole_image() {
    check(
        37,
        23,
        &["37x1", "7", "13", "100", "5x11", "16x3"],
        &[1, 2, 3],
    );
}

#[test]
fn one_pixel_tiles_match_on_a_tiny_image() {
    check(6, 5, &["1", "1x1", "2x1"], &[1, 2, 3]);
}

#[test]
fn a_larger_image_matches_with_tiles_smaller_than_the_radius() {
    check(97, 61, &["13", "4x9", "97x1"], &[1, 3]);
}

#[test]
fn grey_formats_match_too() {
    for format in [
        PixelFormat::GREY8,
        PixelFormat::GREY_ALPHA8,
        PixelFormat::new(1, 16).unwrap(),
    ] {
        let image = random_image(29, 31, format, 7);
        let png = encode_png(&image);
        let blur = Blur::new(2.0).unwrap();
        let out = decode_png(&tiled_blur(&png, "6x4".parse().unwrap(), &blur, 2, 7));
        assert_same_pixels(&out, &blur.blur_image(&image, 2), &format.to_string());
    }
}

#[test]
fn the_parallel_reference_is_the_serial_one() {
    for format in FORMATS {
        let image = random_image(53, 47, format, 11);
        let blur = Blur::new(2.0).unwrap();
        let serial = blur.blur_image(&image, 2);
        for threads in [0, 2, 3, 5, 47, 100] {
            let parallel = blur.blur_image_parallel(&image, 2, threads);
            assert_same_pixels(
                &parallel,
                &serial,
                &format!("{format} on {threads} threads"),
            );
        }
    }
}

#[test]
fn the_blur_changes_the_image() {
    // Guards the comparisons above against a blur that does nothing.
    let image = random_image(37, 23, PixelFormat::RGB8, 1);
    let blurred = Blur::new(2.0).unwrap().blur_image(&image, 1);
    let changed = image
        .data()
        .iter()
        .zip(blurred.data())
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        changed > image.data().len() * 9 / 10,
        "only {changed} samples changed"
    );
}
