//! Shared helpers: seeded images, PNG bytes in memory, and the whole tiled flow as the queue runs it.

use std::io::Cursor;

use taskq_image::{
    assemble, Blur, PixelFormat, Rect, Region, RowAssembler, TileGrid, TileReader, TileSize,
};

/// SplitMix64: a few lines of seeded randomness, so every run sees the same images.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// An image of noise: every byte random, the hardest case for exactness at tile seams.
pub fn random_image(width: u32, height: u32, format: PixelFormat, seed: u64) -> Region {
    let mut rng = Rng::new(seed);
    let len = width as usize * height as usize * format.pixel_bytes();
    let data = (0..len).map(|_| rng.next_u64() as u8).collect();
    Region::new(Rect::new(0, 0, width, height), format, data).unwrap()
}

/// The image as PNG bytes, written by the png crate directly (not by the code under test).
pub fn encode_png(image: &Region) -> Vec<u8> {
    let mut bytes = Vec::new();
    let rect = image.rect();
    let mut encoder = png::Encoder::new(&mut bytes, rect.width, rect.height);
    let format = image.format();
    encoder.set_color(match format.channels() {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        _ => png::ColorType::Rgba,
    });
    encoder.set_depth(match format.bit_depth() {
        8 => png::BitDepth::Eight,
        _ => png::BitDepth::Sixteen,
    });
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(image.data()).unwrap();
    writer.finish().unwrap();
    bytes
}

/// PNG bytes back to a region, with the png crate's whole-frame decoder.
pub fn decode_png(bytes: &[u8]) -> Region {
    let decoder = png::Decoder::new(Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut data = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut data).unwrap();
    let channels = info.color_type.samples() as u8;
    let format = PixelFormat::new(channels, info.bit_depth as u8).unwrap();
    Region::new(Rect::new(0, 0, info.width, info.height), format, data).unwrap()
}

/// The queue's flow, in one process: read tiles with halos, blur each, rebuild each later pass
/// from the previous pass's neighbours, deliver outputs shuffled and partly twice, write the PNG.
pub fn tiled_blur(png: &[u8], tile: TileSize, blur: &Blur, passes: u32, seed: u64) -> Vec<u8> {
    let radius = blur.radius();
    let mut reader = TileReader::new(png, tile, radius).unwrap();
    let grid = reader.grid();
    let format = reader.format();
    let (w, h) = (grid.width(), grid.height());
    let mut outputs: Vec<Region> = Vec::with_capacity(grid.len());
    for (expected, input) in (&mut reader).enumerate() {
        let input = input.unwrap();
        assert_eq!(input.index, expected, "tiles come in index order");
        assert_eq!(input.region.rect(), input.rect.expand(radius, w, h));
        outputs.push(blur.apply(&input.region, w, h, input.rect).unwrap());
    }
    assert_eq!(outputs.len(), grid.len());
    for _ in 1..passes {
        outputs = (0..grid.len())
            .map(|t| next_pass(&grid, t, blur, &outputs))
            .collect();
    }
    deliver(grid, format, outputs, seed)
}

fn next_pass(grid: &TileGrid, t: usize, blur: &Blur, previous: &[Region]) -> Region {
    let parts: Vec<Region> = grid
        .neighbourhood(t, blur.radius())
        .unwrap()
        .into_iter()
        .map(|n| previous[n].clone())
        .collect();
    let input = assemble(grid, t, blur.radius(), &parts).unwrap();
    let out = grid.tile(t).unwrap();
    blur.apply(&input, grid.width(), grid.height(), out)
        .unwrap()
}

/// Hands the tiles to a RowAssembler in a seeded shuffled order, repeating some.
fn deliver(grid: TileGrid, format: PixelFormat, outputs: Vec<Region>, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut order: Vec<usize> = (0..outputs.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut assembler = RowAssembler::new(Vec::new(), grid, format).unwrap();
    let mut delivered = vec![false; outputs.len()];
    for (n, &t) in order.iter().enumerate() {
        assert!(
            assembler.add(t, outputs[t].clone()).unwrap(),
            "tile {t} is new"
        );
        delivered[t] = true;
        if n.is_multiple_of(3) {
            let again = order[rng.below(n + 1)];
            assert!(
                !assembler.add(again, outputs[again].clone()).unwrap(),
                "tile {again} is a repeat"
            );
        }
    }
    assert_eq!(assembler.held_tiles(), 0);
    assembler.finish().unwrap()
}

/// Panics naming the first differing sample, which says far more than two long byte vectors.
pub fn assert_same_pixels(actual: &Region, expected: &Region, what: &str) {
    assert_eq!(actual.rect(), expected.rect(), "{what}: rect");
    assert_eq!(actual.format(), expected.format(), "{what}: format");
    if actual.data() == expected.data() {
        return;
    }
    let rect = expected.rect();
    for y in rect.y..rect.bottom() {
        for x in rect.x..rect.right() {
            for c in 0..expected.format().channels() {
                let (a, e) = (actual.sample(x, y, c), expected.sample(x, y, c));
                assert_eq!(a, e, "{what}: pixel ({x}, {y}) channel {c}");
            }
        }
    }
    unreachable!("the data differed but no sample did");
}
