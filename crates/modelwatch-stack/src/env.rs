//! Module naming every environment variable and default binary path the crate
//! reads. See [`prometheus_bin`] and [`alertmanager_bin`] for details.

use std::path::PathBuf;

/// Overrides the Prometheus server binary (default [`PROMETHEUS_BIN`]).
pub const PROMETHEUS_BIN_VAR: &str = "MODELWATCH_PROMETHEUS_BIN";
/// Overrides the Alertmanager binary (default [`ALERTMANAGER_BIN`]).
pub const ALERTMANAGER_BIN_VAR: &str = "MODELWATCH_ALERTMANAGER_BIN";
/// Overrides `promtool` (default [`PROMTOOL_BIN`]).
pub const PROMTOOL_BIN_VAR: &str = "MODELWATCH_PROMTOOL_BIN";
/// Overrides the directory of the local stack's state file (`modelwatch stack`).
pub const STACK_STATE_DIR_VAR: &str = "MODELWATCH_STACK_STATE_DIR";

/// Where Debian's `prometheus` package installs the server.
pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";
/// Where Debian's `prometheus-alertmanager` package installs Alertmanager (Debian
/// renames it: there is no `alertmanager` binary).
pub const ALERTMANAGER_BIN: &str = "/usr/bin/prometheus-alertmanager";
/// Where Debian's `prometheus` package installs `promtool`.
pub const PROMTOOL_BIN: &str = "/usr/bin/promtool";
/// Where Debian's `prometheus-alertmanager` package installs `amtool`.
pub const AMTOOL_BIN: &str = "/usr/bin/amtool";

/// The Prometheus binary to start: `$MODELWATCH_PROMETHEUS_BIN` or Debian's.
pub fn prometheus_bin() -> PathBuf {
    from_env(PROMETHEUS_BIN_VAR, PROMETHEUS_BIN)
}

/// The Alertmanager binary to start: `$MODELWATCH_ALERTMANAGER_BIN` or Debian's.
pub fn alertmanager_bin() -> PathBuf {
    from_env(ALERTMANAGER_BIN_VAR, ALERTMANAGER_BIN)
}

/// The promtool binary: `$MODELWATCH_PROMTOOL_BIN` or Debian's.
pub fn promtool_bin() -> PathBuf {
    from_env(PROMTOOL_BIN_VAR, PROMTOOL_BIN)
}

fn from_env(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}
