//! Module implementing an Alertmanager started from Debian's package. See
//! [`AlertmanagerConfig`] and [`start_alertmanager`] for details.

use crate::env;
use crate::process::{Process, resolve_listen};
use crate::prometheus::absolute;
use anyhow::Context as _;
use modelwatch_mixin::yaml::Yaml;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Name of the config file written into [`AlertmanagerConfig::dir`].
pub const CONFIG_FILE: &str = "alertmanager.yml";
/// Name of the log file written into [`AlertmanagerConfig::dir`].
pub const LOG_FILE: &str = "alertmanager.log";
/// The storage directory (silences, notification log) inside
/// [`AlertmanagerConfig::dir`].
pub const DATA_DIR: &str = "data";
/// The one receiver every alert is routed to.
pub const RECEIVER: &str = "modelwatch";

/// What [`start_alertmanager`] writes into `alertmanager.yml` and passes as flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerConfig {
    /// Directory for the config, the storage and the log. It must exist.
    pub dir: PathBuf,
    /// Web listen address. Port 0 picks a free port on that IP. Default
    /// `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// A webhook URL that receives every notification; `None` routes alerts to a
    /// receiver without integrations (they are still listed by the API and UI).
    pub webhook: Option<String>,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("."),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            webhook: None,
        }
    }
}

impl AlertmanagerConfig {
    /// The text of `alertmanager.yml`: one route to one receiver, grouped by alert
    /// and model, with a 1 s group wait so that a new alert is notified at once.
    pub fn to_yaml(&self) -> String {
        let mut receiver = vec![("name", Yaml::str(RECEIVER))];
        if let Some(url) = &self.webhook {
            receiver.push((
                "webhook_configs",
                Yaml::List(vec![Yaml::map([
                    ("url", Yaml::str(url)),
                    ("send_resolved", Yaml::plain("true")),
                ])]),
            ));
        }
        let config = Yaml::map([
            (
                "route",
                Yaml::map([
                    ("receiver", Yaml::str(RECEIVER)),
                    (
                        "group_by",
                        Yaml::List(vec![Yaml::str("alertname"), Yaml::str("model")]),
                    ),
                    ("group_wait", Yaml::plain("1s")),
                    ("group_interval", Yaml::plain("5s")),
                    ("repeat_interval", Yaml::plain("1h")),
                ]),
            ),
            ("receivers", Yaml::List(vec![Yaml::map(receiver)])),
        ]);
        format!(
            "# Written by modelwatch-stack; rewritten at every start.\n{}",
            config.to_document()
        )
    }
}

/// Writes `alertmanager.yml` into `config.dir`, starts Alertmanager
/// (`$MODELWATCH_ALERTMANAGER_BIN`, default `/usr/bin/prometheus-alertmanager`)
/// with clustering off, its storage in `dir/data` and its log in
/// `dir/alertmanager.log`, and waits until `/-/ready` answers.
pub fn start_alertmanager(config: &AlertmanagerConfig) -> anyhow::Result<Process> {
    let dir = absolute(&config.dir)?;
    let config_path = dir.join(CONFIG_FILE);
    std::fs::write(&config_path, config.to_yaml())
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let listen = resolve_listen(config.listen)?;
    let args = vec![
        format!("--config.file={}", config_path.display()),
        format!("--storage.path={}", dir.join(DATA_DIR).display()),
        format!("--web.listen-address={listen}"),
        // An empty address turns the gossip cluster off: one standalone instance.
        "--cluster.listen-address=".to_string(),
    ];
    Process::spawn(
        "alertmanager",
        &env::alertmanager_bin(),
        &args,
        listen,
        &dir,
        dir.join(LOG_FILE),
        &format!(
            "apt-get install -y prometheus-alertmanager (or set {} to the binary)",
            env::ALERTMANAGER_BIN_VAR
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_everything_to_one_receiver() {
        let without = AlertmanagerConfig::default().to_yaml();
        assert!(without.contains("receiver: \"modelwatch\""), "{without}");
        assert!(!without.contains("webhook_configs"), "{without}");
        let with = AlertmanagerConfig {
            webhook: Some("http://127.0.0.1:5001/hook".into()),
            ..Default::default()
        }
        .to_yaml();
        assert!(
            with.contains("url: \"http://127.0.0.1:5001/hook\""),
            "{with}"
        );
    }
}
