//! `square`: `x*x`, exact for every i64 because the output is i128.

use taskq_common::tasks::Square;

use super::CpuTask;

impl CpuTask for Square {
    fn run(x: &i64) -> Result<i128, String> {
        let x = i128::from(*x);
        Ok(x * x)
    }
}
