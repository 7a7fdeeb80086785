//! The committed `mixin/` is what the generator produces, and promtool accepts it.

use crate::support::mixin_dir;
use modelwatch_mixin::{MixinConfig, check, generate, write};
use modelwatch_testkit::promtool;

/// `MODELWATCH_BLESS=1` rewrites `mixin/` instead of comparing.
#[test]
fn committed_mixin_is_up_to_date() {
    let files = generate(&MixinConfig::default()).expect("the default config generates");
    let dir = mixin_dir();
    if std::env::var_os("MODELWATCH_BLESS").is_some_and(|v| v == "1") {
        write(&dir, &files).expect("write mixin/");
        return;
    }
    if let Err(stale) = check(&dir, &files) {
        panic!(
            "{stale}\nhint: run `cargo run -p modelwatch-cli -- mixin` (or `MODELWATCH_BLESS=1 cargo test -p modelwatch-mixin --test it`) and commit mixin/"
        );
    }
}

#[test]
fn promtool_checks_the_rule_files() {
    let dir = mixin_dir();
    let (ok, out) = promtool::run(
        &dir,
        &[
            "check",
            "rules",
            "prometheus/rules.yaml",
            "prometheus/alerts.yaml",
        ],
    );
    assert!(ok, "promtool check rules failed:\n{out}");
}

#[test]
fn promtool_unit_tests_pass() {
    let dir = mixin_dir();
    let mut files: Vec<String> = std::fs::read_dir(dir.join("tests"))
        .expect("mixin/tests")
        .map(|e| format!("tests/{}", e.expect("entry").file_name().to_string_lossy()))
        .filter(|f| f.ends_with("-test.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(String::as_str));
    let (ok, out) = promtool::run(&dir, &args);
    assert!(ok, "promtool test rules failed:\n{out}");
}

/// Scenario runs shrink every window: the shrunk mixin must pass its own tests too.
#[test]
fn a_time_scaled_mixin_passes_promtool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = generate(&crate::support::scaled_config()).expect("generates");
    write(dir.path(), &files).expect("write");
    let rules = files
        .iter()
        .find(|f| f.path == modelwatch_mixin::RULES_PATH)
        .expect("rules");
    assert!(rules.contents.contains("[5s]"), "5m scales to 5s");
    assert!(rules.contents.contains("offset 168m"), "7d scales to 168m");
    let (ok, out) = promtool::run(
        dir.path(),
        &[
            "check",
            "rules",
            "prometheus/rules.yaml",
            "prometheus/alerts.yaml",
        ],
    );
    assert!(ok, "{out}");
    let tests: Vec<&str> = files
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| p.starts_with("tests/"))
        .collect();
    let mut args = vec!["test", "rules"];
    args.extend(tests);
    let (ok, out) = promtool::run(dir.path(), &args);
    assert!(ok, "promtool test rules failed on the scaled mixin:\n{out}");
}
