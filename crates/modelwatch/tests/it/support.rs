//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

/// Compares `actual` with the committed file at `path`, or rewrites the file when
/// `MODELWATCH_BLESS=1`.
pub fn assert_matches_file(path: &Path, actual: &str) {
    if std::env::var_os("MODELWATCH_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("file has a parent")).expect("create dir");
        std::fs::write(path, actual).expect("write blessed file");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("{}: {e}\nhint: run `MODELWATCH_BLESS=1 cargo test -p modelwatch --test it` to create it", path.display())
    });
    assert!(
        expected == actual,
        "{} is stale.\nhint: run `MODELWATCH_BLESS=1 cargo test -p modelwatch --test it` and commit the result\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// Runs `promtool check metrics` on `exposition` and returns its combined output, or
/// panics with a hint when promtool is missing.
pub fn promtool_check_metrics(exposition: &str) -> (bool, String) {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool: {e}\nhint: `apt-get install -y prometheus` (bash .ci/run does it)")
        });
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
