//! Module implementing a Prometheus server started from Debian's package. See
//! [`PrometheusConfig`] and [`start_prometheus`] for details.

use crate::env;
use crate::process::{Process, resolve_listen};
use anyhow::Context as _;
use modelwatch_mixin::yaml::Yaml;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name of the config file written into [`PrometheusConfig::dir`].
pub const CONFIG_FILE: &str = "prometheus.yml";
/// Name of the log file written into [`PrometheusConfig::dir`].
pub const LOG_FILE: &str = "prometheus.log";
/// The TSDB directory inside [`PrometheusConfig::dir`].
pub const DATA_DIR: &str = "data";
/// The directory inside [`PrometheusConfig::dir`] that receives copies of the rule
/// files, so that the config never points outside its own directory.
pub const RULES_DIR: &str = "rules";

/// One scrape job: a `job` label and its static `host:port` targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeJob {
    /// The `job` label. The mixin's rules select `job="modelwatch"`.
    pub job: String,
    /// `host:port` of each target; `/metrics` is scraped over HTTP, or HTTPS with
    /// [`ScrapeJob::tls`].
    pub targets: Vec<String>,
    /// Scrape over HTTPS (`scheme: https` and `tls_config`), for a metrics listener
    /// whose `--metrics-web-config` has `tls_server_config`.
    pub tls: Option<ScrapeTls>,
    /// Credentials sent with every scrape (`basic_auth` or `authorization`), for a
    /// web config with `basic_auth_users` or `bearer_auth_tokens`.
    pub auth: Option<ScrapeAuth>,
}

/// How Prometheus checks the target's certificate (its `tls_config`). File paths
/// are written as given; pass absolute ones, since Prometheus resolves relative
/// paths against its config file's directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrapeTls {
    /// The CA that signed the target's certificate (`ca_file`); `None` trusts the
    /// system's CAs.
    pub ca_file: Option<PathBuf>,
    /// The name checked against the certificate (`server_name`), when the target's
    /// address is not among the certificate's names.
    pub server_name: Option<String>,
    /// Skip the certificate check (`insecure_skip_verify`). Only for a test
    /// certificate: the scrape is then encrypted but the target unauthenticated.
    pub insecure_skip_verify: bool,
    /// Client certificate and key (`cert_file`, `key_file`), for a web config with
    /// `client_auth_type: RequireAndVerifyClientCert`.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// The credentials Prometheus scrapes with, read from files so that no secret
/// sits in `prometheus.yml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrapeAuth {
    /// `basic_auth` with `username` and `password_file`.
    Basic {
        /// The user, a key of the web config's `basic_auth_users`.
        username: String,
        /// A file holding the password (its bcrypt hash is in the web config).
        password_file: PathBuf,
    },
    /// `authorization` of type Bearer with `credentials_file`.
    Bearer {
        /// A file holding the token (its SHA-256 is in the web config's
        /// `bearer_auth_tokens`).
        credentials_file: PathBuf,
    },
}

impl ScrapeJob {
    /// A job named `job` scraping `targets`.
    pub fn new(
        job: impl Into<String>,
        targets: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            job: job.into(),
            targets: targets.into_iter().map(Into::into).collect(),
            tls: None,
            auth: None,
        }
    }

    /// The same job scraped over HTTPS.
    pub fn with_tls(mut self, tls: ScrapeTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The same job scraped with credentials.
    pub fn with_auth(mut self, auth: ScrapeAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// The job's entry in `scrape_configs`.
    pub fn to_yaml(&self) -> Yaml {
        let path = |p: &Path| Yaml::str(p.to_string_lossy());
        let mut entries = vec![("job_name", Yaml::str(&self.job))];
        if let Some(tls) = &self.tls {
            entries.push(("scheme", Yaml::plain("https")));
            let mut config = Vec::new();
            if let Some(ca) = &tls.ca_file {
                config.push(("ca_file", path(ca)));
            }
            if let Some((cert, key)) = &tls.client_cert {
                config.push(("cert_file", path(cert)));
                config.push(("key_file", path(key)));
            }
            if let Some(name) = &tls.server_name {
                config.push(("server_name", Yaml::str(name)));
            }
            if tls.insecure_skip_verify {
                config.push(("insecure_skip_verify", Yaml::plain("true")));
            }
            if !config.is_empty() {
                entries.push(("tls_config", Yaml::map(config)));
            }
        }
        match &self.auth {
            None => {}
            Some(ScrapeAuth::Basic {
                username,
                password_file,
            }) => entries.push((
                "basic_auth",
                Yaml::map([
                    ("username", Yaml::str(username)),
                    ("password_file", path(password_file)),
                ]),
            )),
            Some(ScrapeAuth::Bearer { credentials_file }) => entries.push((
                "authorization",
                Yaml::map([
                    ("type", Yaml::plain("Bearer")),
                    ("credentials_file", path(credentials_file)),
                ]),
            )),
        }
        entries.push((
            "static_configs",
            Yaml::List(vec![Yaml::map([(
                "targets",
                Yaml::List(self.targets.iter().map(Yaml::str).collect()),
            )])]),
        ));
        Yaml::map(entries)
    }
}

/// What [`start_prometheus`] writes into `prometheus.yml` and passes as flags.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusConfig {
    /// Directory for the config, the copied rule files, the TSDB and the log. It
    /// must exist; the caller owns it (a temporary directory in tests).
    pub dir: PathBuf,
    /// Web listen address. Port 0 picks a free port on that IP. Default
    /// `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Global scrape interval (the scrape timeout equals it). Default 1 s.
    pub scrape_interval: Duration,
    /// Rule evaluation interval. Default 1 s.
    pub evaluation_interval: Duration,
    /// Static scrape jobs.
    pub scrape_jobs: Vec<ScrapeJob>,
    /// Rule files, copied into `dir/rules/` before the start.
    pub rule_files: Vec<PathBuf>,
    /// Alertmanagers (`host:port`) that receive firing alerts.
    pub alertmanagers: Vec<String>,
    /// Remote-write endpoints (full URLs, such as
    /// `http://127.0.0.1:9091/api/v1/write`).
    pub remote_write: Vec<String>,
    /// Accept remote writes on `/api/v1/write`
    /// (`--web.enable-remote-write-receiver`).
    pub remote_write_receiver: bool,
    /// TSDB retention (`--storage.tsdb.retention.time`), such as `15d`; `None`
    /// keeps Prometheus' default.
    pub retention: Option<String>,
    /// Labels added to every series leaving this server (remote write, alerts).
    pub external_labels: BTreeMap<String, String>,
}

impl Default for PrometheusConfig {
    /// A fast-evaluating test server on a free loopback port, in the current
    /// directory, with no jobs and no rules.
    fn default() -> Self {
        Self {
            dir: PathBuf::from("."),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            scrape_interval: Duration::from_secs(1),
            evaluation_interval: Duration::from_secs(1),
            scrape_jobs: Vec::new(),
            rule_files: Vec::new(),
            alertmanagers: Vec::new(),
            remote_write: Vec::new(),
            remote_write_receiver: false,
            retention: None,
            external_labels: BTreeMap::new(),
        }
    }
}

impl PrometheusConfig {
    /// The text of `prometheus.yml`, with `rule_files` naming the given paths.
    pub fn to_yaml(&self, rule_files: &[PathBuf]) -> String {
        let interval = prom_duration(self.scrape_interval);
        let mut global = vec![
            ("scrape_interval", Yaml::plain(&interval)),
            ("scrape_timeout", Yaml::plain(&interval)),
            (
                "evaluation_interval",
                Yaml::plain(prom_duration(self.evaluation_interval)),
            ),
        ];
        if !self.external_labels.is_empty() {
            let labels: Vec<(String, String)> = self
                .external_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            global.push(("external_labels", Yaml::string_map(&labels)));
        }
        let mut top = vec![("global", Yaml::map(global))];
        if !rule_files.is_empty() {
            top.push((
                "rule_files",
                Yaml::List(
                    rule_files
                        .iter()
                        .map(|p| Yaml::str(p.to_string_lossy()))
                        .collect(),
                ),
            ));
        }
        if !self.alertmanagers.is_empty() {
            top.push((
                "alerting",
                Yaml::map([(
                    "alertmanagers",
                    Yaml::List(vec![Yaml::map([(
                        "static_configs",
                        Yaml::List(vec![Yaml::map([(
                            "targets",
                            Yaml::List(self.alertmanagers.iter().map(Yaml::str).collect()),
                        )])]),
                    )])]),
                )]),
            ));
        }
        if !self.remote_write.is_empty() {
            top.push((
                "remote_write",
                Yaml::List(
                    self.remote_write
                        .iter()
                        .map(|url| Yaml::map([("url", Yaml::str(url))]))
                        .collect(),
                ),
            ));
        }
        top.push((
            "scrape_configs",
            Yaml::List(self.scrape_jobs.iter().map(ScrapeJob::to_yaml).collect()),
        ));
        format!(
            "# Written by modelwatch-stack; rewritten at every start.\n{}",
            Yaml::map(top).to_document()
        )
    }
}

/// A duration as Prometheus writes it: whole seconds as `15s`, otherwise
/// milliseconds (`1500ms`).
pub fn prom_duration(duration: Duration) -> String {
    let ms = duration.as_millis().max(1);
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Writes `prometheus.yml` into `config.dir` (rule files copied into
/// `dir/rules/`), starts Prometheus (`$MODELWATCH_PROMETHEUS_BIN`, default
/// `/usr/bin/prometheus`) with its TSDB in `dir/data` and its log in
/// `dir/prometheus.log`, and waits until `/-/ready` answers.
pub fn start_prometheus(config: &PrometheusConfig) -> anyhow::Result<Process> {
    let dir = absolute(&config.dir)?;
    let rules = copy_rule_files(&dir, &config.rule_files)?;
    let config_path = dir.join(CONFIG_FILE);
    std::fs::write(&config_path, config.to_yaml(&rules))
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let listen = resolve_listen(config.listen)?;
    let mut args = vec![
        format!("--config.file={}", config_path.display()),
        format!("--storage.tsdb.path={}", dir.join(DATA_DIR).display()),
        format!("--web.listen-address={listen}"),
        // The first rule evaluation can run before the notifier has discovered the
        // Alertmanagers; that notification is dropped, and by default the alert is
        // resent only a minute later. Resending every evaluation closes the gap
        // (Alertmanager deduplicates).
        format!(
            "--rules.alert.resend-delay={}",
            prom_duration(config.evaluation_interval)
        ),
    ];
    if let Some(retention) = &config.retention {
        args.push(format!("--storage.tsdb.retention.time={retention}"));
    }
    if config.remote_write_receiver {
        args.push("--web.enable-remote-write-receiver".into());
    }
    Process::spawn(
        "prometheus",
        &env::prometheus_bin(),
        &args,
        listen,
        &dir,
        dir.join(LOG_FILE),
        &format!(
            "apt-get install -y prometheus (or set {} to the server binary)",
            env::PROMETHEUS_BIN_VAR
        ),
    )
}

/// Copies each rule file into `dir/rules/` under a numbered name that keeps the
/// original file name, and returns the copies' paths.
fn copy_rule_files(dir: &Path, files: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let rules_dir = dir.join(RULES_DIR);
    if files.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(&rules_dir)
        .with_context(|| format!("cannot create {}", rules_dir.display()))?;
    files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            let name = file
                .file_name()
                .map_or_else(|| "rules.yaml".into(), |n| n.to_string_lossy().into_owned());
            let to = rules_dir.join(format!("{i:02}-{name}"));
            std::fs::copy(file, &to).with_context(|| {
                format!(
                    "cannot copy the rule file {} to {}",
                    file.display(),
                    to.display()
                )
            })?;
            Ok(to)
        })
        .collect()
}

/// `path` made absolute against the current directory; it must be a directory.
pub(crate) fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    let path =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    anyhow::ensure!(
        path.is_dir(),
        "{} is not a directory\nhint: create it first",
        path.display()
    );
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_in_prometheus_units() {
        assert_eq!(prom_duration(Duration::from_secs(15)), "15s");
        assert_eq!(prom_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(prom_duration(Duration::ZERO), "1ms");
    }

    #[test]
    fn a_secured_job_scrapes_over_https_with_credentials_from_files() {
        let job = ScrapeJob::new("modelwatch", ["127.0.0.1:9464"])
            .with_tls(ScrapeTls {
                ca_file: Some("/etc/modelwatch/ca.crt".into()),
                server_name: Some("modelwatch.local".into()),
                ..ScrapeTls::default()
            })
            .with_auth(ScrapeAuth::Basic {
                username: "prometheus".into(),
                password_file: "/etc/modelwatch/password".into(),
            });
        let text = Yaml::List(vec![job.to_yaml()]).to_document();
        for expected in [
            "scheme: https",
            "ca_file: \"/etc/modelwatch/ca.crt\"",
            "server_name: \"modelwatch.local\"",
            "username: \"prometheus\"",
            "password_file: \"/etc/modelwatch/password\"",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from\n{text}");
        }
        assert!(!text.contains("insecure_skip_verify"), "{text}");
        let bearer =
            ScrapeJob::new("modelwatch", ["127.0.0.1:9464"]).with_auth(ScrapeAuth::Bearer {
                credentials_file: "/etc/modelwatch/token".into(),
            });
        let text = Yaml::List(vec![bearer.to_yaml()]).to_document();
        assert!(
            text.contains("type: Bearer")
                && text.contains("credentials_file: \"/etc/modelwatch/token\""),
            "{text}"
        );
        assert!(
            !text.contains("scheme"),
            "plain HTTP stays the default: {text}"
        );
    }

    #[test]
    fn config_lists_jobs_rules_alertmanagers_and_remote_write() {
        let config = PrometheusConfig {
            scrape_interval: Duration::from_secs(5),
            scrape_jobs: vec![ScrapeJob::new("modelwatch", ["127.0.0.1:9464"])],
            alertmanagers: vec!["127.0.0.1:9093".into()],
            remote_write: vec!["http://127.0.0.1:9091/api/v1/write".into()],
            external_labels: BTreeMap::from([("cluster".into(), "local".into())]),
            ..Default::default()
        };
        let text = config.to_yaml(&[PathBuf::from("/tmp/x/rules/00-rules.yaml")]);
        for expected in [
            "scrape_interval: 5s",
            "scrape_timeout: 5s",
            "evaluation_interval: 1s",
            "cluster: \"local\"",
            "- \"/tmp/x/rules/00-rules.yaml\"",
            "- \"127.0.0.1:9093\"",
            "url: \"http://127.0.0.1:9091/api/v1/write\"",
            "job_name: \"modelwatch\"",
            "- \"127.0.0.1:9464\"",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from\n{text}");
        }
    }
}
