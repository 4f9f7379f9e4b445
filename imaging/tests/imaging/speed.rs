//! Timings for the record, not assertions: run with `cargo test -p taskq-image --release -- --ignored --nocapture`.

use std::time::Instant;

use taskq_image::{Blur, PixelFormat, TileGrid};

use crate::harness::random_image;

#[test]
#[ignore = "a timing on a 4096x4096 image; run in release with --ignored --nocapture"]
fn time_the_reference_blur_on_4096_squared_rgb8() {
    let image = random_image(4096, 4096, PixelFormat::RGB8, 42);
    let blur = Blur::new(3.0).unwrap();

    let start = Instant::now();
    let serial = blur.blur_image(&image, 1);
    let serial_time = start.elapsed();

    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let start = Instant::now();
    let parallel = blur.blur_image_parallel(&image, 1, 0);
    let parallel_time = start.elapsed();
    assert!(serial.data() == parallel.data());

    let grid = TileGrid::new(4096, 4096, "512".parse().unwrap()).unwrap();
    let start = Instant::now();
    for t in 0..grid.len() {
        let rect = grid.tile(t).unwrap();
        let input = image.crop(rect.expand(blur.radius(), 4096, 4096)).unwrap();
        let out = blur.apply(&input, 4096, 4096, rect).unwrap();
        assert!(out.data() == serial.crop(rect).unwrap().data());
    }
    let tiled_time = start.elapsed();

    eprintln!("4096x4096 RGB8, sigma 3 (radius 9), one pass:");
    eprintln!("  blur_image                    {serial_time:?}");
    eprintln!("  blur_image_parallel ({threads} threads) {parallel_time:?}");
    eprintln!("  64 tiles of 512 via apply, one thread, incl. crop and compare {tiled_time:?}");
}
