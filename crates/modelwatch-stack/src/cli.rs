//! Module implementing `modelwatch stack`. See [`StackArgs`] and [`run`] for
//! details.

use crate::env::STACK_STATE_DIR_VAR;
use crate::k8s;
use crate::local::{self, Stopped, UpOptions};
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
}

impl UpArgs {
    /// The settings of [`local::up`].
    pub fn options(&self) -> UpOptions {
        UpOptions {
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
        }
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
            let options = up.options();
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
            match local::down(&dir, down.purge)? {
                None => eprintln!("no local stack recorded in {}", dir.display()),
                Some((state, outcome)) => {
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
            Ok(if status.healthy() {
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
