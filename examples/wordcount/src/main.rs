//! A worker of one's own: the `wordcount` kind of this crate, and the three stages of a word-count
//! pipeline (`wordcount.toml`), beside the built-in `square`, with every flag and environment variable
//! of the stock worker (`wordcount-worker --help`).

mod stages;
mod wordcount;

use std::process::ExitCode;

fn main() -> ExitCode {
    taskq::Worker::builder()
        .cpu_task(wordcount::WordCount { max_bytes: 1 << 20 })
        .cpu_task(stages::SplitWords)
        .cpu_task(stages::NormalizeWord)
        .cpu_task(stages::CountWords)
        .cpu_task(taskq::Square)
        .main()
}
