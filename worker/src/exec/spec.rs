//! Parsing and checking `NAME=COMMAND` as given to `worker --exec` or
//! `--exec-lines`. Everything is checked up front so that a typo makes the
//! worker refuse to start, instead of failing every item later.

use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use taskq_common::task::validate_kind_name;

/// One configured program: the task kind it serves and the command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// The task kind whose items this program runs.
    pub name: String,
    /// The program and its arguments; `argv[0]` is kept as given (a path or a
    /// name looked up on `PATH`) and is known to exist and be executable.
    pub argv: Vec<String>,
}

/// Parses `NAME=COMMAND`, splitting COMMAND into words with shell quoting rules
/// (it is never run through a shell) and checking that the program exists and
/// is executable. `flag` (e.g. `--exec`) is named in error messages.
pub fn parse_exec(raw: &str, flag: &str) -> Result<ExecSpec, String> {
    let Some((name, command)) = raw.split_once('=') else {
        return Err(format!(
            "{flag} {raw:?}: expected NAME=COMMAND, e.g. {flag} 'wc=python3 /opt/wc.py'"
        ));
    };
    validate_kind_name(name).map_err(|e| format!("{flag} {raw:?}: {e}"))?;
    let argv = split_command(command).map_err(|e| format!("{flag} {name}: {e}"))?;
    find_program(&argv[0]).map_err(|e| format!("{flag} {name}: {e}"))?;
    Ok(ExecSpec {
        name: name.to_owned(),
        argv,
    })
}

/// Splits COMMAND into argv; an empty result is an error since there is
/// nothing to run.
fn split_command(command: &str) -> Result<Vec<String>, String> {
    let argv = shell_words::split(command).map_err(|e| {
        format!("cannot split the command {command:?} into words ({e}); check its quotes")
    })?;
    if argv.is_empty() {
        return Err("the command is empty; give the program to run after '=', \
                    e.g. wc=/usr/bin/wc"
            .to_owned());
    }
    Ok(argv)
}

/// Finds the program the way the OS will when it is started: a name with a
/// '/' is a path, anything else is looked up on `PATH`.
fn find_program(program: &str) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return check_executable(&path).map(|()| path);
    }
    let Some(search) = env::var_os("PATH") else {
        return Err(format!(
            "program '{program}' not found: PATH is not set; give its full path"
        ));
    };
    let mut not_executable = None;
    for dir in env::split_paths(&search).filter(|d| !d.as_os_str().is_empty()) {
        let candidate = dir.join(program);
        match check_executable(&candidate) {
            Ok(()) => return Ok(candidate),
            // Remember it: "found but not executable" is more useful than "not found".
            Err(e) if candidate.is_file() => not_executable = not_executable.or(Some(e)),
            Err(_) => {}
        }
    }
    Err(not_executable
        .unwrap_or_else(|| format!("program '{program}' not found on PATH; give its full path")))
}

/// Checks that `path` is a regular file with an execute bit set.
fn check_executable(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta = fs::metadata(path)
        .map_err(|e| format!("program '{shown}' cannot be used ({e}); check the path"))?;
    if !meta.is_file() {
        return Err(format!(
            "program '{shown}' is not a file; give the program's path"
        ));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "program '{shown}' is not executable; run chmod +x on it, or put its \
             interpreter first (e.g. python3 {shown})"
        ));
    }
    Ok(())
}
