//! How a [`Region`] travels inside JSON: its samples as one base64 string, checked on arrival.
//!
//! A list of numbers would cost three or four characters a sample; base64 costs 1.33 bytes, and the
//! length check on arrival turns a damaged message into a clear error instead of a wrong image.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::grid::Rect;
use crate::pixels::{PixelError, PixelFormat, Region};

#[derive(Serialize)]
struct WireOut<'a> {
    rect: Rect,
    format: PixelFormat,
    data: &'a str,
}

#[derive(Deserialize)]
struct WireIn {
    rect: Rect,
    format: PixelFormat,
    data: String,
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let data = STANDARD.encode(&self.data);
        WireOut {
            rect: self.rect,
            format: self.format,
            data: &data,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Region, D::Error> {
        let wire = WireIn::deserialize(deserializer)?;
        let data = STANDARD
            .decode(wire.data.as_bytes())
            .map_err(|e| serde::de::Error::custom(PixelError::Base64(e.to_string())))?;
        Region::new(wire.rect, wire.format, data).map_err(serde::de::Error::custom)
    }
}
