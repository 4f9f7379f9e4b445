//! Tests for the exec module. They run real programs (python3, cat).

mod lines;
mod once;
mod spec;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::value::RawValue;

/// argv running inline Python code (no shell involved).
fn py(code: &str) -> Vec<String> {
    vec!["python3".into(), "-c".into(), code.into()]
}

/// A RawValue from JSON text, which the test knows is valid.
fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("test JSON is valid")
}

/// A fresh empty directory for one test (no tempfile crate in this workspace).
fn temp_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("exec-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
