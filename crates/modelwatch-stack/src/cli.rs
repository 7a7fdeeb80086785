//! Module implementing `modelwatch stack`. See [`StackArgs`] and [`run`] for
//! details.

use crate::env::STACK_STATE_DIR_VAR;
use crate::k8s;
use crate::local::{self, Stopped, UpOptions};
use crate::prometheus::{ScrapeAuth, ScrapeTls};
use anyhow::Context as _;
use modelwatch_mixin::PromDuration;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Run the monitoring stack on this machine (Debian's prometheus and
/// prometheus-alertmanager on loopback, no containers), or generate the
/// Kubernetes objects that carry the mixin.
#[derive(Debug, Clone, clap::Args)]
pub struct StackArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: StackCommand,
}

/// The `modelwatch stack` subcommands.
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, clap::Subcommand)]
pub enum StackCommand {
    /// Start Prometheus (with the mixin's rules and alerts) and Alertmanager on
    /// loopback, scraping local modelwatch servers, and leave them running
    Up(UpArgs),
    /// Stop the servers that `up` started, by their recorded process ids
    Down(DownArgs),
    /// Say what runs: exit 0 when both servers run and are ready, 1 when not, 3 when
    /// no stack was started
    Status(StateDirArg),
    /// Write deploy/kubernetes/generated/ (PrometheusRule, dashboard ConfigMap) from
    /// the mixin, or check that it is up to date
    K8sManifests(K8sManifestsArgs),
}

/// Where the state file lives.
#[derive(Debug, Clone, clap::Args)]
pub struct StateDirArg {
    /// Directory of the state file and the servers' data. Default:
    /// $XDG_STATE_HOME/modelwatch/stack or ~/.local/state/modelwatch/stack
    #[arg(long, env = STACK_STATE_DIR_VAR, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl StateDirArg {
    /// The given directory or [`local::default_state_dir`].
    pub fn resolve(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(local::default_state_dir)
    }
}

/// `modelwatch stack up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub state: StateDirArg,

    /// A modelwatch metrics listener to scrape (repeatable, or comma-separated)
    #[arg(
        long = "target",
        env = "MODELWATCH_STACK_TARGETS",
        value_name = "HOST:PORT",
        value_delimiter = ',',
        default_value = "127.0.0.1:9464"
    )]
    pub targets: Vec<String>,

    /// The generated mixin whose prometheus/rules.yaml and prometheus/alerts.yaml
    /// are loaded
    #[arg(
        long,
        env = "MODELWATCH_STACK_MIXIN_DIR",
        value_name = "DIR",
        default_value = "mixin"
    )]
    pub mixin_dir: PathBuf,

    /// Scrape job name; the generated rules select job="modelwatch"
    #[arg(long, env = "MODELWATCH_STACK_JOB", default_value = "modelwatch")]
    pub job: String,

    /// Prometheus' listen address (port 0: any free port)
    #[arg(
        long,
        env = "MODELWATCH_STACK_PROMETHEUS_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub prometheus_listen: SocketAddr,

    /// Alertmanager's listen address (port 0: any free port)
    #[arg(
        long,
        env = "MODELWATCH_STACK_ALERTMANAGER_LISTEN",
        default_value = "127.0.0.1:9093"
    )]
    pub alertmanager_listen: SocketAddr,

    /// Scrape interval
    #[arg(long, env = "MODELWATCH_STACK_SCRAPE_INTERVAL", default_value = "15s", value_parser = PromDuration::parse)]
    pub scrape_interval: PromDuration,

    /// Rule evaluation interval
    #[arg(long, env = "MODELWATCH_STACK_EVALUATION_INTERVAL", default_value = "15s", value_parser = PromDuration::parse)]
    pub evaluation_interval: PromDuration,

    /// TSDB retention, such as 15d (default: Prometheus' own)
    #[arg(long, env = "MODELWATCH_STACK_RETENTION")]
    pub retention: Option<String>,

    /// Webhook URL that receives Alertmanager's notifications
    #[arg(long, env = "MODELWATCH_STACK_WEBHOOK", value_name = "URL")]
    pub webhook: Option<String>,

    /// Where `modelwatch ui`, the model-health page on this Prometheus, listens
    #[arg(
        long,
        env = "MODELWATCH_STACK_PAGE_LISTEN",
        default_value = "127.0.0.1:9470"
    )]
    pub page_listen: SocketAddr,

    /// Do not start the model-health page
    #[arg(long)]
    pub no_page: bool,

    /// Also start VictoriaMetrics (Prometheus remote-writes to it) and vmalert (the
    /// mixin's rules over the whole retention): long retention on one machine
    #[arg(long, env = "MODELWATCH_STACK_LONG_TERM")]
    pub long_term: bool,

    /// VictoriaMetrics' listen address, with --long-term (port 0: any free port)
    #[arg(
        long,
        env = "MODELWATCH_STACK_VICTORIA_METRICS_LISTEN",
        default_value = "127.0.0.1:8428"
    )]
    pub victoria_metrics_listen: SocketAddr,

    /// vmalert's listen address, with --long-term (port 0: any free port)
    #[arg(
        long,
        env = "MODELWATCH_STACK_VMALERT_LISTEN",
        default_value = "127.0.0.1:8880"
    )]
    pub vmalert_listen: SocketAddr,

    /// VictoriaMetrics' retention, with --long-term, such as 2y or 400d
    #[arg(
        long,
        env = "MODELWATCH_STACK_LONG_TERM_RETENTION",
        default_value = "2y"
    )]
    pub long_term_retention: String,

    /// How Prometheus reaches targets secured by `modelwatch serve
    /// --metrics-web-config` (HTTPS, credentials)
    #[command(flatten)]
    pub scrape: ScrapeSecurityArgs,
}

/// The scrape security flags of `modelwatch stack up`: they match a target's
/// `--metrics-web-config` (see docs/metrics-security.md).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ScrapeSecurityArgs {
    /// Scrape over HTTPS, trusting this CA for the targets' certificates (the web
    /// config has tls_server_config)
    #[arg(long, env = "MODELWATCH_STACK_SCRAPE_CA_FILE", value_name = "FILE")]
    pub scrape_ca_file: Option<PathBuf>,

    /// Name to check in the targets' certificates when their address is not among
    /// its names (implies HTTPS)
    #[arg(long, env = "MODELWATCH_STACK_SCRAPE_SERVER_NAME", value_name = "NAME")]
    pub scrape_server_name: Option<String>,

    /// Scrape over HTTPS without checking the certificate: for a test certificate
    /// only, since anyone could then pose as the target
    #[arg(long, env = "MODELWATCH_STACK_SCRAPE_INSECURE_SKIP_VERIFY")]
    pub scrape_insecure_skip_verify: bool,

    /// Client certificate for targets whose web config requires one
    /// (client_auth_type: RequireAndVerifyClientCert); needs --scrape-key-file
    #[arg(
        long,
        env = "MODELWATCH_STACK_SCRAPE_CERT_FILE",
        value_name = "FILE",
        requires = "scrape_key_file"
    )]
    pub scrape_cert_file: Option<PathBuf>,

    /// The client certificate's private key
    #[arg(
        long,
        env = "MODELWATCH_STACK_SCRAPE_KEY_FILE",
        value_name = "FILE",
        requires = "scrape_cert_file"
    )]
    pub scrape_key_file: Option<PathBuf>,

    /// Basic auth user (a key of the web config's basic_auth_users); needs
    /// --scrape-password-file
    #[arg(
        long,
        env = "MODELWATCH_STACK_SCRAPE_USERNAME",
        value_name = "USER",
        requires = "scrape_password_file"
    )]
    pub scrape_username: Option<String>,

    /// File holding the basic auth password
    #[arg(
        long,
        env = "MODELWATCH_STACK_SCRAPE_PASSWORD_FILE",
        value_name = "FILE",
        requires = "scrape_username"
    )]
    pub scrape_password_file: Option<PathBuf>,

    /// File holding a bearer token (its SHA-256 is in the web config's
    /// bearer_auth_tokens)
    #[arg(
        long,
        env = "MODELWATCH_STACK_SCRAPE_BEARER_TOKEN_FILE",
        value_name = "FILE",
        conflicts_with = "scrape_username"
    )]
    pub scrape_bearer_token_file: Option<PathBuf>,
}

impl ScrapeSecurityArgs {
    /// The scrape job's TLS and credentials; file names made absolute, since
    /// Prometheus reads them from its own directory.
    pub fn resolve(&self) -> anyhow::Result<(Option<ScrapeTls>, Option<ScrapeAuth>)> {
        let file = |path: &PathBuf, flag: &str| -> anyhow::Result<PathBuf> {
            anyhow::ensure!(
                path.is_file(),
                "{flag} {}: no such file\nhint: give the file Prometheus should read it from",
                path.display()
            );
            Ok(std::path::absolute(path)?)
        };
        let client_cert = match (&self.scrape_cert_file, &self.scrape_key_file) {
            (Some(cert), Some(key)) => Some((
                file(cert, "--scrape-cert-file")?,
                file(key, "--scrape-key-file")?,
            )),
            _ => None,
        };
        let ca_file = self
            .scrape_ca_file
            .as_ref()
            .map(|p| file(p, "--scrape-ca-file"))
            .transpose()?;
        let https = ca_file.is_some()
            || client_cert.is_some()
            || self.scrape_server_name.is_some()
            || self.scrape_insecure_skip_verify;
        let tls = https.then(|| ScrapeTls {
            ca_file,
            server_name: self.scrape_server_name.clone(),
            insecure_skip_verify: self.scrape_insecure_skip_verify,
            client_cert,
        });
        let auth = match (
            &self.scrape_username,
            &self.scrape_password_file,
            &self.scrape_bearer_token_file,
        ) {
            (Some(username), Some(password), _) => Some(ScrapeAuth::Basic {
                username: username.clone(),
                password_file: file(password, "--scrape-password-file")?,
            }),
            (_, _, Some(token)) => Some(ScrapeAuth::Bearer {
                credentials_file: file(token, "--scrape-bearer-token-file")?,
            }),
            _ => None,
        };
        Ok((tls, auth))
    }
}

impl UpArgs {
    /// The settings of [`local::up`].
    pub fn options(&self) -> anyhow::Result<UpOptions> {
        let (scrape_tls, scrape_auth) = self.scrape.resolve()?;
        Ok(UpOptions {
            state_dir: self.state.resolve(),
            mixin_dir: self.mixin_dir.clone(),
            job: self.job.clone(),
            targets: self.targets.clone(),
            prometheus_listen: self.prometheus_listen,
            alertmanager_listen: self.alertmanager_listen,
            scrape_interval: Duration::from_secs(self.scrape_interval.as_secs()),
            evaluation_interval: Duration::from_secs(self.evaluation_interval.as_secs()),
            retention: self.retention.clone(),
            webhook: self.webhook.clone(),
            scrape_tls,
            scrape_auth,
            long_term: self.long_term.then(|| local::LongTermOptions {
                listen: self.victoria_metrics_listen,
                vmalert_listen: self.vmalert_listen,
                retention: self.long_term_retention.clone(),
            }),
        })
    }
}

/// `modelwatch stack down`.
#[derive(Debug, Clone, clap::Args)]
pub struct DownArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub state: StateDirArg,

    /// Also delete the servers' directories (TSDB, silences, logs)
    #[arg(long)]
    pub purge: bool,
}

/// `modelwatch stack k8s-manifests`.
#[derive(Debug, Clone, clap::Args)]
pub struct K8sManifestsArgs {
    /// The generated mixin to read
    #[arg(long, value_name = "DIR", default_value = "mixin")]
    pub mixin_dir: PathBuf,

    /// Directory the objects are written to (or checked against)
    #[arg(long, value_name = "DIR", default_value = k8s::GENERATED_DIR)]
    pub out: PathBuf,

    /// Write nothing; exit non-zero when the files in --out are stale
    #[arg(long)]
    pub check: bool,
}

/// Runs `modelwatch stack`. Messages for people go to stderr; `up` prints the URLs
/// on stdout.
pub fn run(args: &StackArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        StackCommand::Up(up) => {
            let options = up.options()?;
            let state = local::up(&options)?;
            println!(
                "prometheus    {}  (pid {})",
                state.prometheus.url, state.prometheus.pid
            );
            println!(
                "alertmanager  {}  (pid {})",
                state.alertmanager.url, state.alertmanager.pid
            );
            println!(
                "scraping      {} (job {})",
                state.targets.join(", "),
                state.job
            );
            for (name, process) in state.processes().into_iter().skip(2) {
                println!("{name:<13} {}  (pid {})", process.url, process.pid);
            }
            if !up.no_page {
                // The stack is up either way: a page that cannot start is reported,
                // and does not fail `up` with Prometheus left running.
                match crate::page::start_page(
                    &options.state_dir,
                    &state.prometheus.url,
                    up.page_listen,
                    options.scrape_interval,
                ) {
                    Ok(url) => println!("page          {url}  (the model-health dashboard, live)"),
                    Err(e) => eprintln!("the page did not start: {e:#}"),
                }
            }
            eprintln!(
                "state in {}; logs in its prometheus/ and alertmanager/ directories",
                options.state_dir.display()
            );
            eprintln!(
                "hint: `modelwatch status --prometheus {}` for the verdict, `modelwatch stack down` to stop",
                state.prometheus.url
            );
            Ok(ExitCode::SUCCESS)
        }
        StackCommand::Down(down) => {
            let dir = down.state.resolve();
            if let Some(pid) = crate::page::stop_page(&dir) {
                eprintln!("stopped the page (pid {pid})");
            }
            match local::down(&dir, down.purge)? {
                None => eprintln!("no local stack recorded in {}", dir.display()),
                Some((state, outcome)) => {
                    for (name, process) in state.processes().into_iter().skip(2) {
                        eprintln!("stopped {name} (pid {})", process.pid);
                    }
                    for (name, process, stopped) in [
                        ("prometheus", &state.prometheus, outcome[0]),
                        ("alertmanager", &state.alertmanager, outcome[1]),
                    ] {
                        match stopped {
                            Stopped::Stopped => eprintln!("stopped {name} (pid {})", process.pid),
                            Stopped::NotRunning => {
                                eprintln!("{name} (pid {}) was not running", process.pid);
                            }
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StackCommand::Status(state_dir) => {
            let dir = state_dir.resolve();
            let Some(status) = local::status(&dir)? else {
                println!("no local stack (no state file in {})", dir.display());
                return Ok(ExitCode::from(3));
            };
            let word = |running: bool, ready: bool| match (running, ready) {
                (true, true) => "ready",
                (true, false) => "running, not ready",
                (false, _) => "not running",
            };
            let state = &status.state;
            println!(
                "prometheus    {:<20} {}  (pid {})",
                word(status.prometheus_running, status.prometheus_ready),
                state.prometheus.url,
                state.prometheus.pid
            );
            println!(
                "alertmanager  {:<20} {}  (pid {})",
                word(status.alertmanager_running, status.alertmanager_ready),
                state.alertmanager.url,
                state.alertmanager.pid
            );
            println!(
                "scraping      {} (job {})",
                state.targets.join(", "),
                state.job
            );
            let mut long_term_ok = true;
            for (name, process) in state.processes().into_iter().skip(2) {
                let (running, ready) = (process.is_running(), process.is_ready());
                long_term_ok &= running && ready;
                println!(
                    "{name:<13} {:<20} {}  (pid {})",
                    word(running, ready),
                    process.url,
                    process.pid
                );
            }
            Ok(if status.healthy() && long_term_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        StackCommand::K8sManifests(k) => {
            let files = k8s::kubernetes_manifests(&k.mixin_dir)?;
            if k.check {
                return Ok(match modelwatch_mixin::check(&k.out, &files) {
                    Ok(()) => {
                        eprintln!(
                            "{} generated objects in {} are up to date",
                            files.len(),
                            k.out.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(stale) => {
                        eprintln!("error: {stale}");
                        eprintln!(
                            "hint: run `modelwatch stack k8s-manifests` and commit the result"
                        );
                        ExitCode::FAILURE
                    }
                });
            }
            modelwatch_mixin::write(&k.out, &files)
                .with_context(|| format!("cannot write into {}", k.out.display()))?;
            eprintln!("wrote {} objects to {}", files.len(), k.out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;
    use std::path::Path;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: StackCommand,
    }

    fn up(args: &[&str]) -> Result<UpArgs, clap::Error> {
        let mut all = vec!["stack", "up"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all)?.command {
            StackCommand::Up(up) => Ok(up),
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn scrape_flags_make_an_https_job_with_file_credentials() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.crt");
        let password = dir.path().join("password");
        std::fs::write(&ca, "pem").expect("write");
        std::fs::write(&password, "secret").expect("write");
        let (ca, password) = (
            ca.to_str().expect("UTF-8"),
            password.to_str().expect("UTF-8"),
        );
        let options = up(&[
            "--scrape-ca-file",
            ca,
            "--scrape-username",
            "prometheus",
            "--scrape-password-file",
            password,
        ])
        .expect("valid flags")
        .options()
        .expect("files exist");
        let tls = options.scrape_tls.expect("https");
        assert_eq!(tls.ca_file.as_deref(), Some(Path::new(ca)));
        assert!(!tls.insecure_skip_verify);
        assert_eq!(
            options.scrape_auth,
            Some(ScrapeAuth::Basic {
                username: "prometheus".into(),
                password_file: password.into(),
            })
        );

        let plain = up(&[]).expect("no flags").options().expect("options");
        assert!(plain.scrape_tls.is_none() && plain.scrape_auth.is_none());
    }

    #[test]
    fn incomplete_or_missing_credentials_are_refused() {
        let error = up(&["--scrape-username", "prometheus"]).expect_err("no password file");
        assert!(
            error.to_string().contains("--scrape-password-file"),
            "{error}"
        );
        let error = up(&["--scrape-bearer-token-file", "/nonexistent/token"])
            .expect("parses")
            .options()
            .expect_err("no such file");
        assert!(
            error.to_string().contains("/nonexistent/token") && error.to_string().contains("hint:"),
            "{error}"
        );
    }
}
