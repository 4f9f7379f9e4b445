//! Test pictures for the image tests: seeded pixels, PNGs written and decoded with the `png` crate
//! directly (not with the code under test), chunk surgery for damaged files, and a pixel comparison that
//! names the first difference instead of printing megabytes.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use taskq_image::{PixelFormat, Rect, Region};
use taskq_tests::Deployment;

/// The seed of every test image's pixels.
pub const SEED: u64 = 0x5eed_b1a5;

/// A seeded SplitMix64: the same numbers on every platform and in every version (unlike `rand`'s).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A `width` x `height` image of `format` whose every sample byte is pseudo-random (seeded).
pub fn noise_image(width: u32, height: u32, format: PixelFormat, seed: u64) -> Region {
    let mut noise = Noise(seed);
    let length = width as usize * height as usize * format.pixel_bytes();
    let data = (0..length).map(|_| noise.next() as u8).collect();
    Region::new(Rect::new(0, 0, width, height), format, data).expect("samples fill the image")
}

fn color_type(format: PixelFormat) -> png::ColorType {
    match format.channels() {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        _ => png::ColorType::Rgba,
    }
}

/// Encodes `image` (the whole picture) as a non-interlaced PNG.
pub fn png_bytes(image: &Region) -> Vec<u8> {
    let rect = image.rect();
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, rect.width, rect.height);
    encoder.set_color(color_type(image.format()));
    encoder.set_depth(if image.format().bit_depth() == 8 {
        png::BitDepth::Eight
    } else {
        png::BitDepth::Sixteen
    });
    let mut writer = encoder.write_header().expect("PNG header");
    writer.write_image_data(image.data()).expect("PNG data");
    writer.finish().expect("PNG end");
    bytes
}

/// Writes `image` as a PNG named `name` in the deployment's directory; returns its path.
pub fn write_png(deployment: &Deployment, name: &str, image: &Region) -> PathBuf {
    write_file(deployment, name, &png_bytes(image))
}

/// Writes `bytes` to a file named `name` in the deployment's directory; returns its path.
pub fn write_file(deployment: &Deployment, name: &str, bytes: &[u8]) -> PathBuf {
    let path = deployment.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
    path
}

/// Decodes a PNG exactly as stored (no transformations): its samples in PNG byte order.
pub fn read_png(path: &Path) -> Region {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{} is a PNG: {e}", path.display()));
    let mut data = vec![0; reader.output_buffer_size().expect("a buffer size")];
    let info = reader.next_frame(&mut data).expect("PNG pixels");
    data.truncate(info.buffer_size());
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("{} has colour type {other:?}", path.display()),
    };
    let format = PixelFormat::new(channels, info.bit_depth as u8).expect("a supported format");
    Region::new(Rect::new(0, 0, info.width, info.height), format, data).expect("whole rows")
}

/// Asserts two images are the same pixels; on failure names the first differing sample and how many
/// differ.
pub fn assert_same_pixels(got: &Region, want: &Region, case: &str) {
    assert_eq!(
        (got.rect(), got.format()),
        (want.rect(), want.format()),
        "{case}: size and format"
    );
    let mut differing = got
        .data()
        .iter()
        .zip(want.data())
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(at, _)| at);
    if let Some(first) = differing.next() {
        let pixel = first / want.format().pixel_bytes();
        let width = want.rect().width as usize;
        panic!(
            "{case}: {} of {} sample bytes differ; the first at pixel ({}, {}): got {} want {}",
            1 + differing.count(),
            want.data().len(),
            pixel % width,
            pixel / width,
            got.data()[first],
            want.data()[first]
        );
    }
}

/// A PNG's chunks after the signature: (type, body).
pub fn chunks(png: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut chunks = Vec::new();
    let mut at = 8;
    while at + 8 <= png.len() {
        let length = u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes")) as usize;
        let kind: [u8; 4] = png[at + 4..at + 8].try_into().expect("4 bytes");
        chunks.push((kind, png[at + 8..at + 8 + length].to_vec()));
        at += 12 + length;
    }
    chunks
}

/// A PNG made of `chunks`, each with a correct checksum.
pub fn assemble_png(chunks: &[([u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut png = vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    for (kind, body) in chunks {
        png.extend_from_slice(&(body.len() as u32).to_be_bytes());
        png.extend_from_slice(kind);
        png.extend_from_slice(body);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(body);
        png.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    png
}

/// Where the body of the first chunk of type `kind` starts in a PNG.
pub fn body_offset(png: &[u8], kind: &[u8; 4]) -> usize {
    png.windows(4).position(|w| w == kind).expect("the chunk") + 4
}
