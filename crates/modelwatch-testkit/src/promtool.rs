//! Module implementing calls of `promtool` (Debian's `prometheus` package, or the
//! binary `MODELWATCH_PROMTOOL_BIN` names). See [`run`] and [`check_metrics`].

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

const HINT: &str = "hint: `apt-get install -y prometheus` (bash scripts/test.sh does it)";

/// Runs `promtool args` in `dir`; returns whether it succeeded and its stdout and
/// stderr together. Panics with a hint when promtool cannot be started.
pub fn run(dir: &Path, args: &[&str]) -> (bool, String) {
    run_with_input(dir, args, "")
}

/// [`run`] with `stdin` as promtool's input.
pub fn run_with_input(dir: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    let binary = modelwatch_stack::env::promtool_bin();
    let mut child = Command::new(&binary)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}\n{HINT}", binary.display()));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `promtool check metrics` on `exposition`: whether it passed, and its findings
/// (empty when there are none).
pub fn check_metrics(exposition: &str) -> (bool, String) {
    run_with_input(&std::env::temp_dir(), &["check", "metrics"], exposition)
}
