//! Module implementing the lookup of the Python virtual environment in which tests
//! run the Python clients users already have (Triton's `tritonclient`). See
//! [`python`] for details.
//!
//! The test script creates the environment (`python3 -m venv .venv`) and
//! installs each test's pinned requirements file into it.

use std::path::PathBuf;
use std::process::Command;

/// Overrides the virtual environment's directory (default [`DEFAULT_VENV`] under the
/// workspace root).
pub const TEST_VENV_VAR: &str = "MODELWATCH_TEST_VENV";
/// Set (to anything but empty) where no virtual environment can be had: the tests
/// that need one then skip, saying so, instead of failing.
pub const NO_TEST_VENV_VAR: &str = "MODELWATCH_NO_TEST_VENV";
/// The virtual environment's directory, relative to the workspace root.
pub const DEFAULT_VENV: &str = ".venv";

/// The virtual environment's directory: `$MODELWATCH_TEST_VENV` or
/// `<workspace>/.venv`.
pub fn venv_dir() -> PathBuf {
    std::env::var_os(TEST_VENV_VAR)
        .filter(|v| !v.is_empty())
        .map_or_else(|| crate::workspace_root().join(DEFAULT_VENV), PathBuf::from)
}

/// The interpreter of the test virtual environment, checked to import every one of
/// `modules`; `requirements` (relative to the workspace root) is the file that
/// installs them, named in the hint.
///
/// Returns `None`, after printing why to stderr, only when `MODELWATCH_NO_TEST_VENV`
/// is set. Otherwise a missing environment or module is a test failure with a hint
/// that says how to make it.
pub fn python(test: &str, modules: &[&str], requirements: &str) -> Option<PathBuf> {
    if std::env::var_os(NO_TEST_VENV_VAR).is_some_and(|v| !v.is_empty()) {
        eprintln!(
            "skipping {test}: {NO_TEST_VENV_VAR} is set (no Python virtual environment with {})",
            modules.join(", ")
        );
        return None;
    }
    let dir = venv_dir();
    let python = dir.join("bin").join("python");
    let hint = format!(
        "hint: python3 -m venv {dir} && {dir}/bin/pip install -r {requirements} \
         (or set {NO_TEST_VENV_VAR}=1 to skip this test)",
        dir = dir.display()
    );
    assert!(
        python.exists(),
        "{test} needs a Python virtual environment at {} ({TEST_VENV_VAR} moves it)\n{hint}",
        dir.display()
    );
    let imports = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let out = Command::new(&python)
        .args(["-c", &imports])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}\n{hint}", python.display()));
    assert!(
        out.status.success(),
        "{test}: {} cannot import {}:\n{}\n{hint}",
        python.display(),
        modules.join(", "),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(python)
}
