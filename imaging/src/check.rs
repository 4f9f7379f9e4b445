//! A PNG checked before any of it is sent: signature, every chunk whole with a good checksum, the
//! header first and the end marker last, and the image data inflated to exactly the bytes its rows
//! need (without unfiltering or keeping them). A truncated or damaged file, or image data cut short
//! inside well-formed chunks, is refused up front; the check costs an inflate, a fraction of decoding.

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
    let mut image = ImageData::default();
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
        match kind.as_str() {
            "IHDR" => image.header(body)?,
            "IDAT" => image.inflate(body)?,
            "IEND" => {
                image.finish()?;
                return Ok(offset);
            }
            _ => {}
        }
    }
}

/// The image data inflated as it is read, counting its bytes against what the header's rows need.
#[derive(Default)]
struct ImageData {
    expected: u64,
    inflater: Option<flate2::write::ZlibDecoder<Counter>>,
}

/// Counts bytes written and drops them.
#[derive(Default)]
struct Counter(u64);

impl io::Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0 += bytes.len() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ImageData {
    /// Reads the header: the inflated size of a non-interlaced image is a filter byte and the samples
    /// of each row (interlaced images are refused by the reader, so they are not counted here).
    fn header(&mut self, header: &[u8]) -> Result<(), StructureError> {
        let field = |at: usize| {
            u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        if header.len() < 13 {
            return Err(StructureError::Damaged(
                "its header chunk is too short".into(),
            ));
        }
        let (width, height) = (u64::from(field(0)), u64::from(field(4)));
        let (depth, colour, interlace) = (u64::from(header[8]), header[9], header[12]);
        let samples = match colour {
            0 | 3 => 1,
            4 => 2,
            2 => 3,
            6 => 4,
            other => {
                return Err(StructureError::Damaged(format!(
                    "its colour type {other} is not one PNG defines"
                )))
            }
        };
        self.expected = if interlace == 0 {
            height * (1 + (width * samples * depth).div_ceil(8))
        } else {
            0
        };
        self.inflater = Some(flate2::write::ZlibDecoder::new(Counter::default()));
        Ok(())
    }

    fn inflate(&mut self, compressed: &[u8]) -> Result<(), StructureError> {
        use io::Write;
        let inflater = self
            .inflater
            .as_mut()
            .ok_or_else(|| StructureError::Damaged("image data comes before its header".into()))?;
        inflater
            .write_all(compressed)
            .map_err(|e| StructureError::Damaged(format!("its image data does not inflate ({e})")))
    }

    fn finish(&mut self) -> Result<(), StructureError> {
        let Some(inflater) = self.inflater.take() else {
            return Err(StructureError::Damaged("it has no header".into()));
        };
        let inflated = inflater
            .finish()
            .map_err(|e| StructureError::Truncated(format!("its image data ends early ({e})")))?
            .0;
        if self.expected > 0 && inflated < self.expected {
            return Err(StructureError::Truncated(format!(
                "its image data holds {inflated} of the {} bytes its rows need",
                self.expected
            )));
        }
        Ok(())
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

    /// A 3x2 RGB PNG whose image data, well-formed and checksummed, holds only `rows` rows.
    fn png_with_rows(rows: usize) -> Vec<u8> {
        use std::io::Write;
        let chunk = |kind: &[u8], body: &[u8]| {
            let mut chunk = (body.len() as u32).to_be_bytes().to_vec();
            chunk.extend_from_slice(kind);
            chunk.extend_from_slice(body);
            let mut crc = crc32fast::Hasher::new();
            crc.update(kind);
            crc.update(body);
            chunk.extend_from_slice(&crc.finalize().to_be_bytes());
            chunk
        };
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&vec![0u8; rows * 10]).unwrap();
        let data = zlib.finish().unwrap();
        let mut png = SIGNATURE.to_vec();
        png.extend(chunk(b"IHDR", &[0, 0, 0, 3, 0, 0, 0, 2, 8, 2, 0, 0, 0]));
        png.extend(chunk(b"IDAT", &data));
        png.extend(chunk(b"IEND", &[]));
        png
    }

    #[test]
    fn image_data_cut_short_inside_good_chunks_is_refused() {
        assert!(check_png(png_with_rows(2).as_slice()).is_ok());
        let short = check_png(png_with_rows(1).as_slice())
            .unwrap_err()
            .to_string();
        assert!(
            short.contains("truncated") && short.contains("10 of the 20 bytes"),
            "{short}"
        );
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
