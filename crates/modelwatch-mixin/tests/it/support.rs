//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// The committed mixin directory.
pub fn mixin_dir() -> PathBuf {
    modelwatch_testkit::workspace_root().join("mixin")
}

/// A config whose windows shrink 60 times, as scenario runs use it.
pub fn scaled_config() -> modelwatch_mixin::MixinConfig {
    modelwatch_mixin::MixinConfig {
        time_scale: 1.0 / 60.0,
        ..modelwatch_mixin::MixinConfig::default()
    }
}
