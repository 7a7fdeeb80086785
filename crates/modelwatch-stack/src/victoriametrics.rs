//! Module implementing the long-term store: Debian's single-node VictoriaMetrics and
//! `vmalert`, started on loopback like Prometheus. See [`start_victoria_metrics`]
//! and [`start_vmalert`] for details.
//!
//! VictoriaMetrics takes Prometheus' remote writes on `/api/v1/write`, imports
//! history on `/api/v1/import` (JSON lines) and `/api/v1/import/prometheus` (text
//! with timestamps), and answers the Prometheus query API under `/api/v1/`. `vmalert`
//! evaluates the mixin's recording rules and alerts against it and writes the results
//! back through remote write.

use crate::process::{Process, resolve_listen};
use crate::prometheus::{absolute, prom_duration};
use anyhow::Context as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Overrides the VictoriaMetrics binary (default [`VICTORIA_METRICS_BIN`]).
pub const VICTORIA_METRICS_BIN_VAR: &str = "MODELWATCH_VICTORIA_METRICS_BIN";
/// Overrides the vmalert binary (default [`VMALERT_BIN`]).
pub const VMALERT_BIN_VAR: &str = "MODELWATCH_VMALERT_BIN";
/// Where Debian's `victoria-metrics` package installs the single-node server.
pub const VICTORIA_METRICS_BIN: &str = "/usr/bin/victoria-metrics";
/// Where Debian's `victoria-metrics` package installs vmalert.
pub const VMALERT_BIN: &str = "/usr/bin/vmalert";
/// The storage directory inside [`VictoriaMetricsConfig::dir`].
pub const STORAGE_DIR: &str = "data";
/// The log file inside [`VictoriaMetricsConfig::dir`].
pub const LOG_FILE: &str = "victoria-metrics.log";
/// The log file inside [`VmalertConfig::dir`].
pub const VMALERT_LOG_FILE: &str = "vmalert.log";
const INSTALL_HINT: &str = "apt-get install -y victoria-metrics";

fn binary(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// The VictoriaMetrics binary: `$MODELWATCH_VICTORIA_METRICS_BIN` or Debian's.
pub fn victoria_metrics_bin() -> PathBuf {
    binary(VICTORIA_METRICS_BIN_VAR, VICTORIA_METRICS_BIN)
}

/// The vmalert binary: `$MODELWATCH_VMALERT_BIN` or Debian's.
pub fn vmalert_bin() -> PathBuf {
    binary(VMALERT_BIN_VAR, VMALERT_BIN)
}

/// Whether Debian's VictoriaMetrics and vmalert (or the overrides) are installed.
pub fn victoria_metrics_available() -> bool {
    victoria_metrics_bin().is_file() && vmalert_bin().is_file()
}

/// How [`start_victoria_metrics`] starts the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VictoriaMetricsConfig {
    /// Directory for the storage and the log; it must exist (the caller owns it).
    pub dir: PathBuf,
    /// HTTP listen address; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// `-retentionPeriod`: how long samples are kept, such as `13M`, `2y`, `400d`.
    /// Samples older than this are refused at import. Default `2y`.
    pub retention: String,
    /// `-dedup.minScrapeInterval`: keep one sample per series in each such interval
    /// (set it to the scrape interval when two Prometheus replicas write the same
    /// series); `None` keeps every sample.
    pub dedup_interval: Option<Duration>,
}

impl Default for VictoriaMetricsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("."),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            retention: "2y".into(),
            dedup_interval: None,
        }
    }
}

impl VictoriaMetricsConfig {
    /// The command-line flags (VictoriaMetrics has no config file).
    pub fn args(&self, dir: &Path, listen: SocketAddr) -> Vec<String> {
        let mut args = vec![
            format!("-storageDataPath={}", dir.join(STORAGE_DIR).display()),
            format!("-httpListenAddr={listen}"),
            format!("-retentionPeriod={}", self.retention),
            // Answer queries up to now: the default hides the last 30 s, which would
            // make a just-written sample look missing.
            "-search.latencyOffset=1s".into(),
        ];
        if let Some(interval) = self.dedup_interval {
            args.push(format!(
                "-dedup.minScrapeInterval={}",
                prom_duration(interval)
            ));
        }
        args
    }
}

/// Starts VictoriaMetrics (`$MODELWATCH_VICTORIA_METRICS_BIN`, default
/// `/usr/bin/victoria-metrics`) with its storage in `dir/data` and its log in
/// `dir/victoria-metrics.log`, and waits until `/-/ready` answers. Its URL is the base
/// of both the Prometheus API (`/api/v1/query`) and remote write (`/api/v1/write`).
pub fn start_victoria_metrics(config: &VictoriaMetricsConfig) -> anyhow::Result<Process> {
    let dir = absolute(&config.dir)?;
    let listen = resolve_listen(config.listen)?;
    Process::spawn(
        "victoria-metrics",
        &victoria_metrics_bin(),
        &config.args(&dir, listen),
        listen,
        &dir,
        dir.join(LOG_FILE),
        &format!("{INSTALL_HINT} (or set {VICTORIA_METRICS_BIN_VAR})"),
    )
}

/// How [`start_vmalert`] starts vmalert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmalertConfig {
    /// Directory for the copied rule files and the log; it must exist.
    pub dir: PathBuf,
    /// HTTP listen address (its API: `/api/v1/rules`, `/api/v1/alerts`).
    pub listen: SocketAddr,
    /// Base URL of the store the rules read (`-datasource.url`).
    pub datasource: String,
    /// Base URL where recorded series and alert states are written
    /// (`-remoteWrite.url`); usually the same store.
    pub remote_write: String,
    /// Alertmanager URLs (`-notifier.url`). With none, vmalert still evaluates
    /// alerts, and notifications go to a closed port on loopback.
    pub notifiers: Vec<String>,
    /// Rule files (Prometheus format), copied into `dir/rules/`.
    pub rule_files: Vec<PathBuf>,
    /// `-evaluationInterval`.
    pub evaluation_interval: Duration,
    /// `-external.label` pairs added to alerts and recorded series.
    pub external_labels: Vec<(String, String)>,
}

impl Default for VmalertConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("."),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            datasource: String::new(),
            remote_write: String::new(),
            notifiers: Vec::new(),
            rule_files: Vec::new(),
            evaluation_interval: Duration::from_secs(15),
            external_labels: Vec::new(),
        }
    }
}

impl VmalertConfig {
    /// The command-line flags, with `rules` naming the copied rule files.
    pub fn args(&self, rules: &[PathBuf], listen: SocketAddr) -> Vec<String> {
        let mut args: Vec<String> = rules
            .iter()
            .map(|r| format!("-rule={}", r.display()))
            .collect();
        args.push(format!("-datasource.url={}", self.datasource));
        args.push(format!("-remoteWrite.url={}", self.remote_write));
        // Alert states survive a restart when they are read back from the store.
        args.push(format!("-remoteRead.url={}", self.datasource));
        args.push(format!("-httpListenAddr={listen}"));
        args.push(format!(
            "-evaluationInterval={}",
            prom_duration(self.evaluation_interval)
        ));
        if self.notifiers.is_empty() {
            // vmalert 1.79 needs a notifier when alerting rules are loaded.
            args.push("-notifier.url=http://127.0.0.1:1".into());
        }
        for url in &self.notifiers {
            args.push(format!("-notifier.url={url}"));
        }
        for (k, v) in &self.external_labels {
            args.push(format!("-external.label={k}={v}"));
        }
        args
    }
}

/// Copies the rule files into `dir/rules/`, starts vmalert
/// (`$MODELWATCH_VMALERT_BIN`, default `/usr/bin/vmalert`) with its log in
/// `dir/vmalert.log`, and waits until `/-/ready` answers. vmalert refuses to start
/// when a rule does not parse as MetricsQL, and the error carries its log.
pub fn start_vmalert(config: &VmalertConfig) -> anyhow::Result<Process> {
    anyhow::ensure!(
        !config.datasource.is_empty() && !config.remote_write.is_empty(),
        "vmalert needs a datasource and a remote-write URL\nhint: pass the VictoriaMetrics URL for both"
    );
    let dir = absolute(&config.dir)?;
    let rules_dir = dir.join("rules");
    std::fs::create_dir_all(&rules_dir)
        .with_context(|| format!("cannot create {}", rules_dir.display()))?;
    let mut rules = Vec::new();
    for (i, file) in config.rule_files.iter().enumerate() {
        let name = file
            .file_name()
            .map_or_else(|| "rules.yaml".into(), |n| n.to_string_lossy().into_owned());
        let to = rules_dir.join(format!("{i:02}-{name}"));
        std::fs::copy(file, &to)
            .with_context(|| format!("cannot copy the rule file {}", file.display()))?;
        rules.push(to);
    }
    let listen = resolve_listen(config.listen)?;
    Process::spawn(
        "vmalert",
        &vmalert_bin(),
        &config.args(&rules, listen),
        listen,
        &dir,
        dir.join(VMALERT_LOG_FILE),
        &format!("{INSTALL_HINT} (or set {VMALERT_BIN_VAR})"),
    )
}

/// One rule as vmalert's `/api/v1/rules` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleHealth {
    /// The group it belongs to.
    pub group: String,
    /// The recorded series or the alert name.
    pub name: String,
    /// `recording` or `alerting`.
    pub kind: String,
    /// `ok`, `err` or empty before the first evaluation.
    pub health: String,
    /// The last evaluation's error; empty when it succeeded.
    pub last_error: String,
    /// Evaluations so far (vmalert's `lastEvaluation` is set once this is non-zero).
    pub evaluated: bool,
}

/// Reads every rule's health from vmalert's `/api/v1/rules`.
pub async fn vmalert_rules(
    client: &reqwest::Client,
    base_url: &str,
) -> anyhow::Result<Vec<RuleHealth>> {
    let body: serde_json::Value = client
        .get(format!("{base_url}/api/v1/rules"))
        .send()
        .await
        .with_context(|| format!("cannot reach vmalert at {base_url}"))?
        .error_for_status()?
        .json()
        .await?;
    let mut out = Vec::new();
    for group in body["data"]["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let text = |k: &str| rule[k].as_str().unwrap_or_default().to_string();
            let last = text("lastEvaluation");
            out.push(RuleHealth {
                group: group["name"].as_str().unwrap_or_default().to_string(),
                name: text("name"),
                kind: text("type"),
                health: text("health"),
                last_error: text("lastError"),
                evaluated: !last.is_empty() && !last.starts_with("0001-"),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_name_storage_retention_rules_and_targets() {
        let vm = VictoriaMetricsConfig {
            dedup_interval: Some(Duration::from_secs(15)),
            ..Default::default()
        };
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 8428));
        let args = vm.args(Path::new("/tmp/vm"), listen);
        for expected in [
            "-storageDataPath=/tmp/vm/data",
            "-httpListenAddr=127.0.0.1:8428",
            "-retentionPeriod=2y",
            "-dedup.minScrapeInterval=15s",
        ] {
            assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
        }
        let alert = VmalertConfig {
            datasource: "http://127.0.0.1:8428".into(),
            remote_write: "http://127.0.0.1:8428".into(),
            ..Default::default()
        };
        let args = alert.args(&[PathBuf::from("/r/00-rules.yaml")], listen);
        assert_eq!(args[0], "-rule=/r/00-rules.yaml");
        assert!(
            args.iter()
                .any(|a| a == "-remoteWrite.url=http://127.0.0.1:8428")
        );
        assert!(args.iter().any(|a| a.starts_with("-notifier.url=")));
    }
}
