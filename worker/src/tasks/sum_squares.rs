//! `sum-squares`: the seed's loop, `sum(i*i for i in range(n))`, evaluated step by step.

use std::hint::black_box;

use taskq_common::tasks::SumSquares;

use super::{CpuTask, TaskError};

impl CpuTask for SumSquares {
    fn run(n: &u64, _attempt: u32) -> Result<u128, TaskError> {
        Ok(sum_of_squares_below(*n))
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
