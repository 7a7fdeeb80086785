//! Module implementing the one-machine stack behind `modelwatch stack up|down|status`:
//! Debian's Prometheus and Alertmanager left running on loopback with the
//! generated rules, and a state file recording what was started. See [`up`],
//! [`down`] and [`status`] for details.

use crate::alertmanager::{self, AlertmanagerConfig, start_alertmanager};
use crate::env;
use crate::process::{STOP_TIMEOUT, probe_address, signal};
use crate::prometheus::{
    self, PrometheusConfig, ScrapeAuth, ScrapeJob, ScrapeTls, start_prometheus,
};
use anyhow::Context as _;
use rustix::process::Signal;
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Name of the state file inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// Prometheus' directory (config, rules, TSDB, log) inside the state directory.
pub const PROMETHEUS_DIR: &str = "prometheus";
/// Alertmanager's directory (config, storage, log) inside the state directory.
pub const ALERTMANAGER_DIR: &str = "alertmanager";
/// VictoriaMetrics' directory (storage, log) inside the state directory
/// (`--long-term`).
pub const VICTORIA_METRICS_DIR: &str = "victoria-metrics";
/// vmalert's directory (copied rules, log) inside the state directory (`--long-term`).
pub const VMALERT_DIR: &str = "vmalert";

/// The long-term store that `up` starts with `--long-term`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongTermOptions {
    /// VictoriaMetrics' listen address (port 0: a free port).
    pub listen: SocketAddr,
    /// vmalert's listen address (port 0: a free port).
    pub vmalert_listen: SocketAddr,
    /// VictoriaMetrics' `-retentionPeriod`, such as `2y`.
    pub retention: String,
}

/// What [`up`] starts.
#[derive(Debug, Clone, PartialEq)]
pub struct UpOptions {
    /// Where the state file and the servers' directories go.
    pub state_dir: PathBuf,
    /// The generated mixin (`modelwatch mixin --out DIR`); its
    /// `prometheus/rules.yaml` and `prometheus/alerts.yaml` are loaded.
    pub mixin_dir: PathBuf,
    /// The scrape job's name; the mixin's rules select `job="modelwatch"`.
    pub job: String,
    /// `host:port` of each modelwatch metrics listener to scrape.
    pub targets: Vec<String>,
    /// Prometheus' listen address (port 0: a free port).
    pub prometheus_listen: SocketAddr,
    /// Alertmanager's listen address (port 0: a free port).
    pub alertmanager_listen: SocketAddr,
    /// Scrape interval.
    pub scrape_interval: Duration,
    /// Rule evaluation interval.
    pub evaluation_interval: Duration,
    /// TSDB retention such as `15d`; `None` keeps Prometheus' default.
    pub retention: Option<String>,
    /// A webhook URL for Alertmanager's notifications.
    pub webhook: Option<String>,
    /// Scrape the targets over HTTPS (their `--metrics-web-config` has
    /// `tls_server_config`).
    pub scrape_tls: Option<ScrapeTls>,
    /// Scrape with these credentials (the web config has `basic_auth_users` or
    /// `bearer_auth_tokens`).
    pub scrape_auth: Option<ScrapeAuth>,
    /// Also start VictoriaMetrics (Prometheus remote-writes to it) and vmalert (the
    /// mixin's rules evaluated over its whole retention).
    pub long_term: Option<LongTermOptions>,
}

/// The state file: what [`up`] started, so that [`down`] and [`status`] find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackState {
    /// The Prometheus server.
    pub prometheus: RecordedProcess,
    /// The Alertmanager.
    pub alertmanager: RecordedProcess,
    /// The scrape job's name.
    pub job: String,
    /// The scraped targets.
    pub targets: Vec<String>,
    /// The mixin the rules came from.
    pub mixin_dir: PathBuf,
    /// VictoriaMetrics, with `--long-term`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victoria_metrics: Option<RecordedProcess>,
    /// vmalert, with `--long-term`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmalert: Option<RecordedProcess>,
}

impl StackState {
    /// Every recorded server with its name, the long-term ones included.
    pub fn processes(&self) -> Vec<(&'static str, &RecordedProcess)> {
        let mut out = vec![
            ("prometheus", &self.prometheus),
            ("alertmanager", &self.alertmanager),
        ];
        if let Some(vm) = &self.victoria_metrics {
            out.push(("victoria-metrics", vm));
        }
        if let Some(vmalert) = &self.vmalert {
            out.push(("vmalert", vmalert));
        }
        out
    }
}

/// One server that [`up`] started and left running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedProcess {
    /// Its process id.
    pub pid: u32,
    /// The base URL of its web API.
    pub url: String,
    /// The binary it was started from (`argv[0]`).
    pub binary: PathBuf,
    /// Its config file (VictoriaMetrics: its storage directory; vmalert: its first
    /// rule file); its command line names it, which tells it apart from an
    /// unrelated process that reused the id.
    pub config: PathBuf,
    /// Its log file.
    pub log: PathBuf,
}

impl RecordedProcess {
    /// Whether the recorded process id still belongs to the process that was
    /// started: alive (not a zombie) and with the recorded binary and config on its
    /// command line (`/proc/<pid>/cmdline`).
    pub fn is_running(&self) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", self.pid)) else {
            return false;
        };
        // A zombie's command line is empty.
        let mut args = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned());
        let binary = args.next().unwrap_or_default();
        let config_flag = format!("--config.file={}", self.config.display());
        // VictoriaMetrics and vmalert have no config file: their storage directory or
        // rule file names them.
        let vm_flags = [
            format!("-storageDataPath={}", self.config.display()),
            format!("-rule={}", self.config.display()),
        ];
        binary == self.binary.to_string_lossy()
            && args.any(|a| a == config_flag || vm_flags.contains(&a))
    }

    /// Whether its `/-/ready` endpoint answers 200.
    pub fn is_ready(&self) -> bool {
        self.url
            .strip_prefix("http://")
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .is_some_and(|a| crate::process::http_ok(a, "/-/ready"))
    }
}

/// The default state directory: `$XDG_STATE_HOME/modelwatch/stack`, else
/// `~/.local/state/modelwatch/stack`.
pub fn default_state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .unwrap_or_else(|| std::env::temp_dir().join("modelwatch-state"));
    base.join("modelwatch").join("stack")
}

/// Reads the state file in `state_dir`; `None` when there is none.
pub fn read_state(state_dir: &Path) -> anyhow::Result<Option<StackState>> {
    let path = state_dir.join(STATE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a modelwatch stack state file\nhint: remove it if no stack runs",
                path.display()
            )
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Starts Alertmanager, then Prometheus with the mixin's rules, scraping the
/// targets and alerting to that Alertmanager; records both in the state file and
/// leaves them running. Fails, starting nothing, when a stack from this state
/// directory still runs.
pub fn up(options: &UpOptions) -> anyhow::Result<StackState> {
    anyhow::ensure!(!options.targets.is_empty(), "no target to scrape");
    if let Some(state) = read_state(&options.state_dir)? {
        if state.processes().iter().any(|(_, p)| p.is_running()) {
            anyhow::bail!(
                "a stack from {} is already running (prometheus {}, alertmanager {})\nhint: `modelwatch stack down` first, or pass another --state-dir",
                options.state_dir.display(),
                state.prometheus.url,
                state.alertmanager.url
            );
        }
    }
    let rules = [modelwatch_mixin::RULES_PATH, modelwatch_mixin::ALERTS_PATH]
        .map(|r| options.mixin_dir.join(r));
    for rule in &rules {
        anyhow::ensure!(
            rule.is_file(),
            "{} is missing\nhint: pass --mixin-dir with the generated mixin, or run `modelwatch mixin --out {}`",
            rule.display(),
            options.mixin_dir.display()
        );
    }
    for (name, flag, listen) in [
        (
            "prometheus",
            "--prometheus-listen",
            options.prometheus_listen,
        ),
        (
            "alertmanager",
            "--alertmanager-listen",
            options.alertmanager_listen,
        ),
    ] {
        if listen.port() != 0 && TcpListener::bind(listen).is_err() {
            anyhow::bail!(
                "{listen} is in use, so {name} cannot listen there\nhint: pass {flag} 127.0.0.1:0 for a free port, or stop what listens there"
            );
        }
    }
    let prometheus_dir = create_dir(&options.state_dir.join(PROMETHEUS_DIR))?;
    let alertmanager_dir = create_dir(&options.state_dir.join(ALERTMANAGER_DIR))?;

    let long_term = match &options.long_term {
        Some(lt) => Some(start_long_term(options, lt, &rules)?),
        None => None,
    };
    let alertmanager = start_alertmanager(&AlertmanagerConfig {
        dir: alertmanager_dir.clone(),
        listen: options.alertmanager_listen,
        webhook: options.webhook.clone(),
    })?;
    let prometheus = start_prometheus(&PrometheusConfig {
        dir: prometheus_dir.clone(),
        listen: options.prometheus_listen,
        scrape_interval: options.scrape_interval,
        evaluation_interval: options.evaluation_interval,
        scrape_jobs: vec![ScrapeJob {
            tls: options.scrape_tls.clone(),
            auth: options.scrape_auth.clone(),
            ..ScrapeJob::new(&options.job, &options.targets)
        }],
        rule_files: rules.to_vec(),
        alertmanagers: vec![probe_address(alertmanager.address()).to_string()],
        retention: options.retention.clone(),
        remote_write: long_term
            .iter()
            .map(|(vm, _)| format!("{}/api/v1/write", vm.url()))
            .collect(),
        ..PrometheusConfig::default()
    })?;
    let state = StackState {
        prometheus: RecordedProcess {
            pid: prometheus.pid(),
            url: prometheus.url(),
            binary: env::prometheus_bin(),
            config: prometheus_dir.join(prometheus::CONFIG_FILE),
            log: prometheus.log().to_path_buf(),
        },
        alertmanager: RecordedProcess {
            pid: alertmanager.pid(),
            url: alertmanager.url(),
            binary: env::alertmanager_bin(),
            config: alertmanager_dir.join(alertmanager::CONFIG_FILE),
            log: alertmanager.log().to_path_buf(),
        },
        job: options.job.clone(),
        targets: options.targets.clone(),
        mixin_dir: std::path::absolute(&options.mixin_dir)?,
        victoria_metrics: long_term.as_ref().map(|(vm, _)| RecordedProcess {
            pid: vm.pid(),
            url: vm.url(),
            binary: crate::victoriametrics::victoria_metrics_bin(),
            config: vm.dir().join(crate::victoriametrics::STORAGE_DIR),
            log: vm.log().to_path_buf(),
        }),
        vmalert: long_term.as_ref().map(|(_, alert)| RecordedProcess {
            pid: alert.pid(),
            url: alert.url(),
            binary: crate::victoriametrics::vmalert_bin(),
            config: alert.dir().join("rules").join(format!(
                "00-{}",
                rules[0]
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            )),
            log: alert.log().to_path_buf(),
        }),
    };
    let path = options.state_dir.join(STATE_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(&state)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    // Only once the state is on disk: if anything above failed, the handles'
    // drops stopped both servers.
    prometheus.detach();
    alertmanager.detach();
    if let Some((vm, alert)) = long_term {
        alert.detach();
        vm.detach();
    }
    Ok(state)
}

/// Starts VictoriaMetrics and vmalert (with the mixin's rules) for `up --long-term`.
fn start_long_term(
    options: &UpOptions,
    long_term: &LongTermOptions,
    rules: &[PathBuf],
) -> anyhow::Result<(crate::Process, crate::Process)> {
    use crate::victoriametrics::{VictoriaMetricsConfig, VmalertConfig};
    let vm = crate::start_victoria_metrics(&VictoriaMetricsConfig {
        dir: create_dir(&options.state_dir.join(VICTORIA_METRICS_DIR))?,
        listen: long_term.listen,
        retention: long_term.retention.clone(),
        dedup_interval: None,
    })?;
    let alert = crate::start_vmalert(&VmalertConfig {
        dir: create_dir(&options.state_dir.join(VMALERT_DIR))?,
        listen: long_term.vmalert_listen,
        datasource: vm.url(),
        remote_write: vm.url(),
        rule_files: rules.to_vec(),
        evaluation_interval: options.evaluation_interval,
        ..VmalertConfig::default()
    })?;
    Ok((vm, alert))
}

/// What [`down`] did to one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was running and has been stopped.
    Stopped,
    /// It had already exited, or its process id now belongs to another process,
    /// which was left alone.
    NotRunning,
}

/// Stops the servers recorded in `state_dir` (SIGTERM by their recorded process
/// ids after checking they are still the processes that were started, SIGKILL
/// after a bounded wait) and removes the state file; with `purge`, their
/// directories too. `None` when no state file exists.
pub fn down(state_dir: &Path, purge: bool) -> anyhow::Result<Option<(StackState, [Stopped; 2])>> {
    let Some(state) = read_state(state_dir)? else {
        return Ok(None);
    };
    // vmalert first and VictoriaMetrics last, so that the last remote writes of
    // vmalert and Prometheus still land.
    if let Some(vmalert) = &state.vmalert {
        stop_recorded(vmalert);
    }
    let outcome = [
        stop_recorded(&state.prometheus),
        stop_recorded(&state.alertmanager),
    ];
    if let Some(vm) = &state.victoria_metrics {
        stop_recorded(vm);
    }
    anyhow::ensure!(
        !state.processes().iter().any(|(_, p)| p.is_running()),
        "a server survived SIGKILL; the state file {} is kept",
        state_dir.join(STATE_FILE).display()
    );
    let path = state_dir.join(STATE_FILE);
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    if purge {
        for dir in [
            PROMETHEUS_DIR,
            ALERTMANAGER_DIR,
            VICTORIA_METRICS_DIR,
            VMALERT_DIR,
        ] {
            let dir = state_dir.join(dir);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot remove {}", dir.display()))?;
            }
        }
    }
    Ok(Some((state, outcome)))
}

fn stop_recorded(process: &RecordedProcess) -> Stopped {
    if !process.is_running() {
        reap(process.pid);
        return Stopped::NotRunning;
    }
    let _ = signal(process.pid, Signal::TERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while process.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if process.is_running() {
        let _ = signal(process.pid, Signal::KILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while process.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    reap(process.pid);
    Stopped::Stopped
}

/// Collects the exit status if the process is our own child (when `up` and `down`
/// ran in one process, as in tests); otherwise init does, and this is a no-op.
fn reap(pid: u32) {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    // Its command line empties while it is still exiting (VictoriaMetrics takes a
    // moment to release its memory), so its exit status may not be there yet.
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Ok(None) = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG) {
        if Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What runs from the state in `state_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackStatus {
    /// The state file's content.
    pub state: StackState,
    /// Prometheus runs (the recorded process, alive).
    pub prometheus_running: bool,
    /// Prometheus answers `/-/ready`.
    pub prometheus_ready: bool,
    /// Alertmanager runs.
    pub alertmanager_running: bool,
    /// Alertmanager answers `/-/ready`.
    pub alertmanager_ready: bool,
}

impl StackStatus {
    /// Both servers run and are ready.
    pub fn healthy(&self) -> bool {
        self.prometheus_running
            && self.prometheus_ready
            && self.alertmanager_running
            && self.alertmanager_ready
    }
}

/// Checks the servers recorded in `state_dir`; `None` when no state file exists.
pub fn status(state_dir: &Path) -> anyhow::Result<Option<StackStatus>> {
    let Some(state) = read_state(state_dir)? else {
        return Ok(None);
    };
    let prometheus_running = state.prometheus.is_running();
    let alertmanager_running = state.alertmanager.is_running();
    Ok(Some(StackStatus {
        prometheus_ready: prometheus_running && state.prometheus.is_ready(),
        alertmanager_ready: alertmanager_running && state.alertmanager.is_ready(),
        prometheus_running,
        alertmanager_running,
        state,
    }))
}

fn create_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(std::path::absolute(dir)?)
}
