//! `square`: `x*x`, exact for every i64 because the output is i128.

use taskq_common::tasks::Square;

use super::{CpuTask, TaskError};

impl CpuTask for Square {
    fn run(x: &i64, _attempt: u32) -> Result<i128, TaskError> {
        let x = i128::from(*x);
        Ok(x * x)
    }
}
