//! `sum-squares`: for each n, `sum(i*i for i in range(n))`, the seed course's CPU-bound workload,
//! evaluated step by step. Outputs exceed u64, so they are u128.

use std::hint::black_box;

use taskq_common::aggregate::Aggregate;
use taskq_common::task::{CpuTask, ItemContext, Task, TaskError, TaskOptions};

/// The largest n: its sum still fits in u128 (and the loop ends within hours).
pub const SUM_SQUARES_MAX_N: u64 = 1 << 40;

/// The `sum-squares` kind.
pub struct SumSquares;

impl Task for SumSquares {
    const NAME: &'static str = "sum-squares";
    type Input = u64;
    type Output = u128;

    fn options(&self) -> TaskOptions {
        // Each item is millions of steps of work, so one per message spreads them over all workers.
        TaskOptions::default()
            .chunk_size(1)
            .aggregate(Aggregate::sum("total"))
    }
}

impl CpuTask for SumSquares {
    fn run(&self, n: u64, _: &ItemContext) -> Result<u128, TaskError> {
        if n > SUM_SQUARES_MAX_N {
            return Err(TaskError::permanent(format!(
                "n = {n} is too large: sum-squares takes n up to {SUM_SQUARES_MAX_N} (2^40)"
            )));
        }
        Ok(sum_of_squares_below(n))
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

/// `sum(i*i for i in range(n))`. `black_box` keeps the compiler from replacing the loop with the closed
/// form, so the work (and its time) grows with n as in the seed; the benchmark shows it.
pub fn sum_of_squares_below(n: u64) -> u128 {
    let mut total: u128 = 0;
    for i in 0..n {
        let i = u128::from(black_box(i));
        total += i * i;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_closed_form() {
        for n in [0, 1, 2, 3, 10, 12_345, 5_000_000] {
            assert_eq!(
                sum_of_squares_below(n),
                SumSquares::closed_form(n),
                "n = {n}"
            );
        }
        assert!(sum_of_squares_below(5_000_000) > u128::from(u64::MAX));
    }
}
