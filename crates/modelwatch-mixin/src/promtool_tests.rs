//! Module implementing the promtool unit tests. See [`test_files`] for details.

use crate::config::MixinConfig;
use crate::rules::RuleGroup;

/// The promtool test files: `(file name, text)`.
pub fn test_files(
    _config: &MixinConfig,
    _recording: &[RuleGroup],
    _alerting: &[RuleGroup],
) -> Result<Vec<(String, String)>, crate::Error> {
    Ok(Vec::new())
}
