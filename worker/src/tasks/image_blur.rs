//! `image-blur`: one tile of a large image blurred with a Gaussian (the seed course's mix-and-match
//! example). A tile arrives with a halo of its neighbours' pixels as wide as the filter's radius, or,
//! in a later pass, as the previous pass's outputs of its neighbourhood, which it puts together itself;
//! either way the result is byte for byte the whole-image filter's (see `taskq_image`).

use serde::{Deserialize, Serialize};
use taskq_common::task::{CpuTask, ItemContext, Task, TaskError, TaskOptions};
use taskq_image::{assemble, Blur, Rect, Region, TileGrid};

/// The `image-blur` kind.
pub struct ImageBlur;

/// One tile to blur: either `grid`, `sigma`, `index` and `region` (a tile with its halo, as the producer
/// cut it), or `chunk` and `parts` (a later pass: the previous pass's outputs of the tile's
/// neighbourhood, as the `neighbours` edge delivers them). A struct of optional fields rather than an
/// untagged enum: serde cannot buffer exact numbers through an untagged enum.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BlurTile {
    /// The whole image's tiles (edges clamp at the image's borders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<TileGrid>,
    /// The filter's standard deviation in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f32>,
    /// The tile's number in the grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The tile and its halo, clipped to the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// A later pass: the tile's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<usize>,
    /// A later pass: the previous pass's outputs of every tile whose pixels the halo reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<JoinedPart>>,
}

/// One neighbour's outputs, as the `neighbours` edge delivers them (a tile is a chunk of one item).
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinedPart {
    /// The neighbour's tile number.
    pub chunk: usize,
    /// Its outputs: the one blurred tile.
    pub outputs: Vec<BlurredTile>,
}

/// A blurred tile: the pixels of its own rectangle, and what the next pass needs to know.
#[derive(Debug, Serialize, Deserialize)]
pub struct BlurredTile {
    /// The whole image's tiles.
    pub grid: TileGrid,
    /// The filter's standard deviation.
    pub sigma: f32,
    /// The tile's number.
    pub index: usize,
    /// The blurred pixels of the tile's rectangle.
    pub region: Region,
}

impl Task for ImageBlur {
    const NAME: &'static str = "image-blur";
    type Input = BlurTile;
    type Output = BlurredTile;

    fn options(&self) -> TaskOptions {
        // A tile is a lot of work (and bytes): one per message spreads them over all workers, and its
        // result carries the blurred pixels alone, not the input's again.
        TaskOptions::default()
            .chunk_size(1)
            .neighbours()
            .omit_inputs()
    }
}

impl CpuTask for ImageBlur {
    fn run(&self, tile: BlurTile, _: &ItemContext) -> Result<BlurredTile, TaskError> {
        let (grid, sigma, index, input) = match tile {
            BlurTile {
                grid: Some(grid),
                sigma: Some(sigma),
                index: Some(index),
                region: Some(region),
                ..
            } => (grid, sigma, index, region),
            BlurTile {
                chunk: Some(chunk),
                parts: Some(parts),
                ..
            } => joined_input(chunk, parts)?,
            _ => {
                return Err(TaskError::permanent(
                    "a tile needs grid, sigma, index and region (a cut tile), or chunk and parts (a later pass)",
                ))
            }
        };
        let blur = Blur::new(sigma).map_err(|e| TaskError::permanent(e.to_string()))?;
        let rect: Rect = grid
            .tile(index)
            .map_err(|e| TaskError::permanent(e.to_string()))?;
        let region = blur
            .apply(&input, grid.width(), grid.height(), rect)
            .map_err(|e| TaskError::permanent(e.to_string()))?;
        Ok(BlurredTile {
            grid,
            sigma,
            index,
            region,
        })
    }
}

/// A later pass's input: the tile and its halo put together from its neighbours' outputs.
fn joined_input(
    chunk: usize,
    parts: Vec<JoinedPart>,
) -> Result<(TileGrid, f32, usize, Region), TaskError> {
    let tiles: Vec<BlurredTile> = parts.into_iter().flat_map(|part| part.outputs).collect();
    let first = tiles.first().ok_or_else(|| {
        TaskError::permanent(format!("tile {chunk} came with no neighbours' outputs"))
    })?;
    let (grid, sigma) = (first.grid, first.sigma);
    let blur = Blur::new(sigma).map_err(|e| TaskError::permanent(e.to_string()))?;
    let regions: Vec<Region> = tiles.into_iter().map(|tile| tile.region).collect();
    let input = assemble(&grid, chunk, blur.radius(), &regions)
        .map_err(|e| TaskError::permanent(e.to_string()))?;
    Ok((grid, sigma, chunk, input))
}
