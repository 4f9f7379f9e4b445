//! `square`: `x*x` mapped over a list, the seed's `pool.map(square, dataset, chunksize)`.

use super::{Lane, TaskKind, Total};

/// Marker type for the `square` kind. Outputs are i128 so that every i64 input squares exactly.
pub struct Square;

impl TaskKind for Square {
    const NAME: &'static str = "square";
    const LANE: Lane = Lane::Cpu;
    // Squaring is nanoseconds of work; large chunks amortise the per-message cost.
    const DEFAULT_CHUNK_SIZE: u32 = 1000;
    type Item = i64;
    type Output = i128;
    type Aggregate = Total<i128>;

    fn fold(aggregate: &mut Self::Aggregate, output: &i128) {
        aggregate.total += output;
    }
}
