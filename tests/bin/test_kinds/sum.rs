//! `test-sum`: folds an array of integers into their exact sum, as a reduce stage needs (it takes what
//! it returns, so partial sums fold again); `test-negate`: -x, a map stage after it.

use taskq_common::task::{CpuTask, ItemContext, Task, TaskError};

/// The sum of integers, exact in i128.
pub struct TestSum;

impl Task for TestSum {
    const NAME: &'static str = "test-sum";
    type Input = Vec<i128>;
    type Output = i128;
}

impl CpuTask for TestSum {
    fn run(&self, values: Vec<i128>, _: &ItemContext) -> Result<i128, TaskError> {
        values
            .iter()
            .try_fold(0i128, |sum, value| sum.checked_add(*value))
            .ok_or_else(|| TaskError::permanent("the sum overflows i128"))
    }
}

/// -x; fails for 169 (13 squared), so tests see a failure in one stage travel on to the next.
pub struct TestNegate;

impl Task for TestNegate {
    const NAME: &'static str = "test-negate";
    type Input = i128;
    type Output = i128;
}

impl CpuTask for TestNegate {
    fn run(&self, x: i128, _: &ItemContext) -> Result<i128, TaskError> {
        if x == 169 {
            return Err(TaskError::permanent("169 is unlucky"));
        }
        Ok(-x)
    }
}
