//! The committed `mixin/` is what the generator produces, and promtool accepts it.

use crate::support::{mixin_dir, promtool};
use modelwatch_mixin::{MixinConfig, check, generate, write};

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
    let (ok, out) = promtool(
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
