//! A PNG's structure checked without decoding it: signature, every chunk whole with a good checksum,
//! the header first and the end marker last. A truncated or damaged file is refused before any tile
//! is sent, and the check only reads the bytes (no inflating), so it costs little next to decoding.

use std::io::{self, Read};

/// What is wrong with a PNG's structure.
#[derive(Debug, thiserror::Error)]
pub enum StructureError {
    /// The file could not be read.
    #[error("could not read the image: {0}; check that the file is readable")]
    Io(#[from] io::Error),
    /// It does not start with the PNG signature.
    #[error("the input is not a PNG file (it does not start with the PNG signature); give a PNG image (convert other formats first)")]
    NotPng,
    /// It ends inside a chunk, or without the end marker.
    #[error("the PNG is truncated: {0}; copy or export it again")]
    Truncated(String),
    /// A chunk's checksum does not match, or the chunks are out of order.
    #[error("the PNG is damaged: {0}; copy or export it again")]
    Damaged(String),
}

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// Reads a whole PNG and checks its chunks; returns its size in bytes.
pub fn check_png(mut reader: impl Read) -> Result<u64, StructureError> {
    let mut signature = [0u8; 8];
    if !read_full(&mut reader, &mut signature)? || signature != SIGNATURE {
        return Err(StructureError::NotPng);
    }
    let mut offset = 8u64;
    let mut first = true;
    let mut data = Vec::new();
    loop {
        let mut head = [0u8; 8];
        if !read_full(&mut reader, &mut head)? {
            return Err(StructureError::Truncated(format!(
                "it ends at byte {offset} without its end marker (IEND)"
            )));
        }
        let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = String::from_utf8_lossy(&head[4..8]).into_owned();
        if first && kind != "IHDR" {
            return Err(StructureError::Damaged(format!(
                "its first chunk is {kind}, not the header IHDR"
            )));
        }
        first = false;
        data.resize(length + 4, 0);
        if !read_full(&mut reader, &mut data)? {
            return Err(StructureError::Truncated(format!(
                "it ends inside its {kind} chunk that starts at byte {offset}"
            )));
        }
        let (body, crc) = data.split_at(length);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&head[4..8]);
        hasher.update(body);
        if hasher.finalize().to_be_bytes() != crc {
            return Err(StructureError::Damaged(format!(
                "the checksum of its {kind} chunk at byte {offset} does not match"
            )));
        }
        offset += 12 + length as u64;
        if kind == "IEND" {
            return Ok(offset);
        }
    }
}

/// Fills `buffer`; false if the input ended first.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => return Ok(false),
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_png() -> Vec<u8> {
        let mut bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut bytes, 3, 2);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&[7; 18]).unwrap();
        }
        bytes
    }

    #[test]
    fn a_whole_png_passes_and_its_size_is_counted() {
        let png = tiny_png();
        assert_eq!(check_png(png.as_slice()).unwrap(), png.len() as u64);
    }

    #[test]
    fn truncation_damage_and_other_files_are_named() {
        let png = tiny_png();
        let cut = check_png(&png[..png.len() - 5]).unwrap_err().to_string();
        assert!(cut.contains("truncated") && cut.contains("IEND"), "{cut}");
        let no_end = check_png(&png[..png.len() - 12]).unwrap_err().to_string();
        assert!(no_end.contains("without its end marker"), "{no_end}");
        let mut damaged = png.clone();
        damaged[40] ^= 0xff;
        let message = check_png(damaged.as_slice()).unwrap_err().to_string();
        assert!(
            message.contains("damaged") && message.contains("checksum"),
            "{message}"
        );
        let text = check_png(&b"hello, not an image"[..])
            .unwrap_err()
            .to_string();
        assert!(text.contains("not a PNG"), "{text}");
    }
}
