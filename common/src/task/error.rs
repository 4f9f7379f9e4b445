//! Why one item failed, and whether running it again may help.

/// Why a task failed for one item, and whether retrying the chunk later may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// What went wrong, for the item's output line.
    pub message: String,
    /// True when a later attempt may succeed: the worker retries the chunk after a delay.
    pub retry: bool,
}

impl TaskError {
    /// A failure that a later attempt may not repeat (a flaky dependency, a timeout).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: true,
        }
    }

    /// A failure every attempt would repeat (the input is invalid).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: false,
        }
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskError {}
