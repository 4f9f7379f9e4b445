//! `square`: `x*x` mapped over a list, the seed's `pool.map(square, dataset, chunksize)`. Exact for every
//! i64, because the output is i128.

use taskq_common::aggregate::Aggregate;
use taskq_common::task::{CpuTask, ItemContext, Task, TaskError, TaskOptions};

/// The `square` kind.
pub struct Square;

impl Task for Square {
    const NAME: &'static str = "square";
    type Input = i64;
    type Output = i128;

    fn options(&self) -> TaskOptions {
        // Squaring is nanoseconds of work; large chunks amortise the per-message cost.
        TaskOptions::default()
            .chunk_size(1000)
            .aggregate(Aggregate::sum("total"))
    }
}

impl CpuTask for Square {
    fn run(&self, x: i64, _: &ItemContext) -> Result<i128, TaskError> {
        let x = i128::from(x);
        Ok(x * x)
    }
}
