//! Helpers shared by the integration tests.

use std::path::Path;

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
