//! Running an operator-configured external program as a task.
//!
//! Two ways to run a program, chosen per task kind on the worker's command line:
//!
//! * `--exec NAME=COMMAND` ([`run_once`]): one process per item. The item's JSON is
//!   written to the program's stdin, which is then closed; the program prints one JSON
//!   value on stdout and exits 0.
//! * `--exec-lines NAME=COMMAND` ([`LineProcesses`]): long-lived processes that read
//!   one JSON item per line on stdin and print one JSON output per line on stdout, in
//!   order. Much cheaper per item, since no process is started per item.
//!
//! In both, exit code 75 (`EX_TEMPFAIL` from sysexits.h) means "temporary failure,
//! retry later"; anything else that goes wrong fails the item permanently, with the
//! end of the program's stderr in the message so the operator can see why.
//!
//! COMMAND is split into words with shell quoting rules ([`parse_exec`]) but never run
//! through a shell, so item data can never be interpreted as shell syntax.

mod kinds;
mod line_process;
mod lines;
mod once;
mod outcome;
mod spec;

#[cfg(test)]
mod tests;

pub use kinds::{register, ExecSettings};
pub use lines::LineProcesses;
pub use once::{run_once, MAX_OUTPUT_BYTES};
pub use outcome::{ItemFailure, EX_TEMPFAIL, STDERR_TAIL_BYTES};
pub use spec::{parse_exec, ExecSpec};
