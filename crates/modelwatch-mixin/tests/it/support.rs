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

/// The committed mixin directory.
pub fn mixin_dir() -> PathBuf {
    workspace_root().join("mixin")
}

/// Runs promtool with `args` in `dir`; returns success and the combined output, or
/// panics with a hint when promtool is missing.
pub fn promtool(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool: {e}\nhint: run `bash scripts/test.sh`, which installs it (Debian package prometheus)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A config whose windows shrink 60 times, as scenario runs use it.
pub fn scaled_config() -> modelwatch_mixin::MixinConfig {
    modelwatch_mixin::MixinConfig {
        time_scale: 1.0 / 60.0,
        ..modelwatch_mixin::MixinConfig::default()
    }
}
