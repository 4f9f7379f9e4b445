//! `user-square`: the built-in `square` written again as a user would, in a crate of its own, for the
//! benchmark's check that a user's task runs as fast as the same built-in kind (the API costs nothing).

use taskq_common::aggregate::Aggregate;
use taskq_common::task::{CpuTask, ItemContext, Task, TaskError, TaskOptions};

/// `x*x` for each x, exact in i128.
pub struct UserSquare;

impl Task for UserSquare {
    const NAME: &'static str = "user-square";
    type Input = i64;
    type Output = i128;

    fn options(&self) -> TaskOptions {
        TaskOptions::default()
            .chunk_size(1000)
            .aggregate(Aggregate::sum("total"))
    }
}

impl CpuTask for UserSquare {
    fn run(&self, x: i64, _: &ItemContext) -> Result<i128, TaskError> {
        Ok(i128::from(x) * i128::from(x))
    }
}
