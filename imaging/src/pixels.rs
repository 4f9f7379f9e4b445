//! Pixels in memory: the sample layout of an image and a rectangle of its pixels.
//!
//! A [`Region`] keeps its samples exactly as a PNG row stores them (interleaved channels, 16-bit
//! samples big-endian), so rows move between the decoder, the wire and the encoder without
//! conversion; only the blur turns them into numbers.

use serde::{Deserialize, Serialize};

use crate::grid::Rect;

/// What was wrong with a pixel format or a region's samples.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PixelError {
    /// Channels other than 1-4 or a depth other than 8 or 16.
    #[error(
        "unsupported pixel format: {channels} channels of {bit_depth} bits; use 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) channels of 8 or 16 bits"
    )]
    BadFormat {
        /// Channels asked for.
        channels: u8,
        /// Bits per sample asked for.
        bit_depth: u8,
    },
    /// The sample bytes do not fill the rectangle exactly.
    #[error(
        "a {rect} region of {format} needs {expected} bytes of samples but {actual} were given; send whole rows of samples"
    )]
    WrongLength {
        /// The region's rectangle.
        rect: Rect,
        /// The region's format.
        format: PixelFormat,
        /// Bytes the rectangle needs.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// A crop reaching outside the region.
    #[error("cannot crop {wanted} out of a region covering {have}: the crop must lie inside it")]
    CropOutside {
        /// The rectangle asked for.
        wanted: Rect,
        /// The region's rectangle.
        have: Rect,
    },
    /// The pixel data on the wire was not base64.
    #[error(
        "region samples are not valid base64 ({0}); encode the sample bytes with standard base64"
    )]
    Base64(String),
}

/// How a pixel is laid out: 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) channels of 8 or 16 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "FormatFields", into = "FormatFields")]
pub struct PixelFormat {
    fields: FormatFields,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct FormatFields {
    channels: u8,
    bit_depth: u8,
}

impl TryFrom<FormatFields> for PixelFormat {
    type Error = PixelError;

    fn try_from(f: FormatFields) -> Result<PixelFormat, PixelError> {
        PixelFormat::new(f.channels, f.bit_depth)
    }
}

impl From<PixelFormat> for FormatFields {
    fn from(format: PixelFormat) -> FormatFields {
        format.fields
    }
}

impl PixelFormat {
    /// 8-bit RGB.
    pub const RGB8: PixelFormat = PixelFormat::known(3, 8);
    /// 8-bit RGB with alpha.
    pub const RGBA8: PixelFormat = PixelFormat::known(4, 8);
    /// 16-bit RGB.
    pub const RGB16: PixelFormat = PixelFormat::known(3, 16);
    /// 16-bit RGB with alpha.
    pub const RGBA16: PixelFormat = PixelFormat::known(4, 16);
    /// 8-bit grey.
    pub const GREY8: PixelFormat = PixelFormat::known(1, 8);
    /// 8-bit grey with alpha.
    pub const GREY_ALPHA8: PixelFormat = PixelFormat::known(2, 8);

    const fn known(channels: u8, bit_depth: u8) -> PixelFormat {
        PixelFormat {
            fields: FormatFields {
                channels,
                bit_depth,
            },
        }
    }

    /// A format of `channels` (1-4) samples of `bit_depth` (8 or 16) bits.
    pub fn new(channels: u8, bit_depth: u8) -> Result<PixelFormat, PixelError> {
        if (1..=4).contains(&channels) && matches!(bit_depth, 8 | 16) {
            Ok(PixelFormat::known(channels, bit_depth))
        } else {
            Err(PixelError::BadFormat {
                channels,
                bit_depth,
            })
        }
    }

    /// Samples per pixel.
    pub fn channels(&self) -> u8 {
        self.fields.channels
    }

    /// Bits per sample: 8 or 16.
    pub fn bit_depth(&self) -> u8 {
        self.fields.bit_depth
    }

    /// Bytes per sample: 1 or 2.
    pub fn sample_bytes(&self) -> usize {
        usize::from(self.bit_depth() / 8)
    }

    /// Bytes per pixel.
    pub fn pixel_bytes(&self) -> usize {
        usize::from(self.channels()) * self.sample_bytes()
    }

    /// The largest sample value: 255 or 65535.
    pub fn max_sample(&self) -> u16 {
        if self.bit_depth() == 8 {
            255
        } else {
            u16::MAX
        }
    }
}

impl std::fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = ["grey", "grey+alpha", "RGB", "RGBA"][usize::from(self.channels()) - 1];
        write!(f, "{name} {}-bit", self.bit_depth())
    }
}

/// A rectangle of pixels of one image: its place in the image, its format and its samples.
///
/// Samples are row-major, channels interleaved, 16-bit samples big-endian, as in a PNG row. On the
/// wire (serde) the samples are one base64 string:
/// `{"rect":{"x":0,"y":0,"width":2,"height":1},"format":{"channels":3,"bit_depth":8},"data":"AAECAwQF"}`.
///
/// ```
/// # use taskq_image::{PixelFormat, Rect, Region};
/// let region = Region::new(Rect::new(0, 0, 2, 1), PixelFormat::RGB8, vec![0, 1, 2, 3, 4, 5]).unwrap();
/// assert_eq!(region.sample(1, 0, 2), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub(crate) rect: Rect,
    pub(crate) format: PixelFormat,
    pub(crate) data: Vec<u8>,
}

impl Region {
    /// A region from its samples; they must fill `rect` exactly.
    pub fn new(rect: Rect, format: PixelFormat, data: Vec<u8>) -> Result<Region, PixelError> {
        let expected = rect.pixels().saturating_mul(format.pixel_bytes());
        if data.len() != expected {
            return Err(PixelError::WrongLength {
                rect,
                format,
                expected,
                actual: data.len(),
            });
        }
        Ok(Region { rect, format, data })
    }

    /// A region of `rect` with every sample 0.
    pub fn zeroed(rect: Rect, format: PixelFormat) -> Region {
        let data = vec![0; rect.pixels() * format.pixel_bytes()];
        Region { rect, format, data }
    }

    /// Where the region lies in the image.
    pub fn rect(&self) -> Rect {
        self.rect
    }

    /// The layout of its pixels.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// The sample bytes, row-major.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The sample bytes, taken out.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// Bytes in one row of the region.
    pub fn row_bytes(&self) -> usize {
        self.rect.width as usize * self.format.pixel_bytes()
    }

    /// Row `y` in image coordinates; `y` must lie within the region.
    pub fn row(&self, y: u32) -> &[u8] {
        let len = self.row_bytes();
        let start = (y - self.rect.y) as usize * len;
        &self.data[start..start + len]
    }

    /// The bytes of columns `x..x + width` of row `y`, both in image coordinates, inside the region.
    pub(crate) fn span(&self, x: u32, y: u32, width: u32) -> &[u8] {
        let px = self.format.pixel_bytes();
        let start = (x - self.rect.x) as usize * px;
        &self.row(y)[start..start + width as usize * px]
    }

    /// Mutable bytes of columns `x..x + width` of row `y`, in image coordinates, inside the region.
    pub(crate) fn span_mut(&mut self, x: u32, y: u32, width: u32) -> &mut [u8] {
        let px = self.format.pixel_bytes();
        let row = self.row_bytes();
        let start = (y - self.rect.y) as usize * row + (x - self.rect.x) as usize * px;
        &mut self.data[start..start + width as usize * px]
    }

    /// Sample `channel` of the pixel at (`x`, `y`) in image coordinates, inside the region.
    pub fn sample(&self, x: u32, y: u32, channel: u8) -> u16 {
        let bytes = self.format.sample_bytes();
        let at = usize::from(channel) * bytes;
        let pixel = &self.span(x, y, 1)[at..at + bytes];
        match pixel {
            [v] => u16::from(*v),
            [hi, lo] => u16::from_be_bytes([*hi, *lo]),
            _ => unreachable!("samples are 1 or 2 bytes"),
        }
    }

    /// The pixels of `rect` (image coordinates), which must lie inside this region.
    pub fn crop(&self, rect: Rect) -> Result<Region, PixelError> {
        if !self.rect.contains(&rect) {
            return Err(PixelError::CropOutside {
                wanted: rect,
                have: self.rect,
            });
        }
        let mut data = Vec::with_capacity(rect.pixels() * self.format.pixel_bytes());
        for y in rect.y..rect.bottom() {
            data.extend_from_slice(self.span(rect.x, y, rect.width));
        }
        Ok(Region {
            rect,
            format: self.format,
            data,
        })
    }
}
