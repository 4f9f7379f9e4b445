//! TEMPORARY until the exec module lands.
#![allow(missing_docs)]
use taskq_common::task::validate_kind_name;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    pub name: String,
    pub argv: Vec<String>,
}

pub fn parse_exec(raw: &str, flag: &str) -> Result<ExecSpec, String> {
    let (name, command) = raw
        .split_once('=')
        .ok_or_else(|| format!("{flag} '{raw}': use NAME=COMMAND"))?;
    validate_kind_name(name)?;
    let argv: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
    if argv.is_empty() {
        return Err(format!("{flag} {name}: no command"));
    }
    Ok(ExecSpec {
        name: name.to_owned(),
        argv,
    })
}

/// TEMPORARY
pub fn register(_kinds: &mut crate::kinds::Kinds, _settings: &crate::settings::Settings) -> Result<(), String> {
    Ok(())
}
