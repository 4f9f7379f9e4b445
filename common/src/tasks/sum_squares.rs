//! `sum-squares`: for each n, `sum(i*i for i in range(n))`, the seed course's CPU-bound workload.

use super::{Lane, TaskKind, Total};

/// Marker type for the `sum-squares` kind. Inputs are `n`, outputs the exact sum (it exceeds u64).
pub struct SumSquares;

impl TaskKind for SumSquares {
    const NAME: &'static str = "sum-squares";
    const LANE: Lane = Lane::Cpu;
    // Each item is millions of steps of work, so one per message spreads them over all workers.
    const DEFAULT_CHUNK_SIZE: u32 = 1;
    type Item = u64;
    type Output = u128;
    type Aggregate = Total<u128>;

    fn fold(aggregate: &mut Self::Aggregate, output: &u128) {
        aggregate.total += output;
    }
}

impl SumSquares {
    /// The closed form n(n-1)(2n-1)/6, for checking results; never used to compute them.
    pub fn closed_form(n: u64) -> u128 {
        let n = u128::from(n);
        if n == 0 {
            return 0;
        }
        n * (n - 1) * (2 * n - 1) / 6
    }
}
