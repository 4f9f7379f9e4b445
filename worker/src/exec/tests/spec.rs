use std::os::unix::fs::PermissionsExt;

use super::temp_dir;
use crate::exec::parse_exec;

#[test]
fn splits_the_command_honouring_quotes() {
    let spec = parse_exec(r#"wc=python3 -c 'print("a b")' "x y""#, "--exec").unwrap();
    assert_eq!(spec.name, "wc");
    assert_eq!(spec.argv, ["python3", "-c", r#"print("a b")"#, "x y"]);
}

#[test]
fn shell_syntax_is_not_interpreted() {
    let spec = parse_exec("wc=python3 $HOME;rm", "--exec").unwrap();
    assert_eq!(spec.argv, ["python3", "$HOME;rm"]);
}

#[test]
fn rejects_a_missing_equals_sign() {
    let err = parse_exec("python3", "--exec").unwrap_err();
    assert!(err.contains("expected NAME=COMMAND"), "{err}");
}

#[test]
fn rejects_an_empty_command() {
    for raw in ["wc=", "wc=   "] {
        let err = parse_exec(raw, "--exec").unwrap_err();
        assert!(err.starts_with("--exec wc: the command is empty"), "{err}");
    }
}

#[test]
fn rejects_unbalanced_quotes() {
    let err = parse_exec("wc=python3 'oops", "--exec").unwrap_err();
    assert!(err.contains("check its quotes"), "{err}");
}

#[test]
fn rejects_a_program_not_on_path() {
    let err = parse_exec("wc=pyton3 x.py", "--exec").unwrap_err();
    assert_eq!(
        err,
        "--exec wc: program 'pyton3' not found on PATH; give its full path"
    );
}

#[test]
fn rejects_a_missing_path() {
    let err = parse_exec("wc=/nonexistent/wc.py", "--exec").unwrap_err();
    assert!(
        err.starts_with("--exec wc: program '/nonexistent/wc.py' cannot be used"),
        "{err}"
    );
}

#[test]
fn rejects_a_file_that_is_not_executable() {
    let dir = temp_dir();
    let script = dir.join("wc.py");
    std::fs::write(&script, "print(1)\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = parse_exec(&format!("wc={}", script.display()), "--exec").unwrap_err();
    assert!(err.contains("is not executable"), "{err}");
    assert!(err.contains("chmod +x"), "{err}");

    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = parse_exec(&format!("wc={}", script.display()), "--exec").unwrap();
    assert_eq!(spec.argv, [script.display().to_string()]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn rejects_a_directory() {
    let err = parse_exec("wc=/tmp", "--exec").unwrap_err();
    assert!(err.contains("is not a file"), "{err}");
}
