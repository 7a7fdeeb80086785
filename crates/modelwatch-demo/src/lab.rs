//! Module implementing the lab: server, Prometheus and Alertmanager for one drill.
//! See [`Lab`] for details.

use anyhow::Context as _;
use modelwatch_mixin::MixinConfig;
use modelwatch_sim::population::PopulationArgs;
use modelwatch_stack::{AlertmanagerConfig, Process, PrometheusConfig, ScrapeJob};
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Simulated seconds per real second of lab traffic: a simulated week every 10
/// seconds, so the lab's one-minute drift window holds six whole weeks and the
/// weekly and daily cycles of `is_weekend` and `hour` match the reference.
pub const LAB_SIM_SPEED: f64 = 7.0 * 86_400.0 / 10.0;

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The `modelwatch` binary that runs `serve`.
    pub binary: PathBuf,
    /// Multiplies every window and `for:` of the mixin (1/60: an hour becomes a
    /// minute).
    pub time_scale: f64,
    /// The simulated population. Keep the default, the one the bundled model and its
    /// reference were built from: another size shifts the count features (a smaller
    /// population has busier terminals) and reads as feature drift.
    pub population: PopulationArgs,
    /// Start Prometheus and Alertmanager too (when installed).
    pub with_prometheus: bool,
    /// Start Alertmanager with Prometheus (scenario tests read alerts from
    /// Prometheus and leave it out).
    pub with_alertmanager: bool,
    /// Extra `serve` flags.
    pub serve_args: Vec<String>,
    /// A feature store already seeded with `population`, copied into the lab instead
    /// of seeding a new one (saves the seeding when many labs start at once).
    pub store_template: Option<PathBuf>,
    /// A mixin config to use instead of the lab's own ([`LabOptions::mixin_config`]);
    /// its `time_scale` is replaced by the lab's.
    pub mixin: Option<MixinConfig>,
}

impl LabOptions {
    /// Settings for a drill at `time_scale` with the given binary.
    pub fn new(binary: PathBuf, time_scale: f64) -> Self {
        Self {
            binary,
            time_scale,
            population: PopulationArgs::default(),
            with_prometheus: true,
            with_alertmanager: true,
            serve_args: Vec::new(),
            store_template: None,
            mixin: None,
        }
    }

    /// The mixin config of a lab: [`LabOptions::mixin`] if set, otherwise the
    /// defaults with the cache floor fitted to the lab's short cache TTL; scaled in
    /// time either way.
    pub fn mixin_config(&self) -> MixinConfig {
        if let Some(mixin) = &self.mixin {
            return MixinConfig {
                time_scale: self.time_scale,
                ..mixin.clone()
            };
        }
        let mut config = MixinConfig {
            time_scale: self.time_scale,
            ..MixinConfig::default()
        };
        // The lab's cache TTL is scaled down with time: at 100 req/s over 15,000
        // customers and terminals a healthy cache hits about one lookup in four, far
        // from the production default floor of 0.9. A collapse takes it to zero.
        config.serving.cache_hit_ratio_min = 0.1;
        // A week of history does not exist in a lab: compare with 40 minutes ago
        // (40 s at 1/60), which a run's clean baseline covers.
        config.drift.comparison_offset = modelwatch_mixin::PromDuration::from_secs(2400);
        // Thresholds are not scaled with time: a feature group is stale in a lab after
        // a minute (the server refreshes every 2 s and caches for 40 s).
        config.features.max_age_default = modelwatch_mixin::PromDuration::from_secs(60);
        config
    }

    /// Server flags that scale the server's own clocks like the mixin's.
    fn scaled_serve_args(&self) -> Vec<String> {
        let seconds = |s: f64| {
            format!(
                "{}ms",
                ((s * self.time_scale) * 1e3).round().max(1000.0) as u64
            )
        };
        vec![
            "--drift-window".into(),
            format!("{}s", ((3600.0 * self.time_scale).round() as u64).max(60)),
            "--cache-ttl".into(),
            seconds(2400.0),
            "--refresh-interval".into(),
            seconds(120.0),
        ]
    }
}

/// A running lab.
#[derive(Debug)]
pub struct Lab {
    /// The temporary directory everything lives in (removed on drop).
    pub dir: tempfile::TempDir,
    /// The server process.
    pub server: Child,
    /// `http://127.0.0.1:<port>` of the API.
    pub api: String,
    /// `http://127.0.0.1:<port>` of the metrics listener.
    pub metrics: String,
    /// Prometheus, when started.
    pub prometheus: Option<Process>,
    /// Alertmanager, when started.
    pub alertmanager: Option<Process>,
    /// The mixin config the rules were generated with.
    pub mixin: MixinConfig,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Lab {
    /// Starts the server (seeding its store), then Prometheus and Alertmanager when
    /// asked and installed. `progress` receives one line per step.
    pub fn start(options: &LabOptions, mut progress: impl FnMut(&str)) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("modelwatch-lab-")
            .tempdir()?;
        let (api_port, metrics_port) = (free_port()?, free_port()?);
        if let Some(template) = &options.store_template {
            std::fs::create_dir_all(dir.path().join("data"))?;
            std::fs::copy(template, dir.path().join("data").join("features.sqlite")).with_context(
                || format!("cannot copy the store template {}", template.display()),
            )?;
        }
        let p = &options.population;
        progress(
            "starting modelwatch serve (the first start seeds the feature store from the simulator)",
        );
        let mut server = Command::new(&options.binary)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{api_port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--enable-fault-injection")
            .args(["--sim-seed", &p.sim_seed.to_string()])
            .args(["--sim-customers", &p.sim_customers.to_string()])
            .args(["--sim-terminals", &p.sim_terminals.to_string()])
            .args(["--sim-days", &p.sim_days.to_string()])
            .args(options.scaled_serve_args())
            .args(&options.serve_args)
            .env("MODELWATCH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", options.binary.display()))?;
        let stderr = server.stderr.take().context("server stderr")?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut log = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.starts_with("modelwatch serve:") => break,
                Ok(line) => log.push(line),
                Err(_) => {}
            }
            if let Some(status) = server.try_wait()? {
                anyhow::bail!("modelwatch serve exited with {status}:\n{}", log.join("\n"));
            }
            if Instant::now() > deadline {
                let _ = server.kill();
                anyhow::bail!(
                    "modelwatch serve was not ready within 300 s:\n{}",
                    log.join("\n")
                );
            }
        }
        // Keep draining the server's stderr so it never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        let api = format!("http://127.0.0.1:{api_port}");
        let metrics = format!("http://127.0.0.1:{metrics_port}");
        let mixin = options.mixin_config();
        let mut lab = Lab {
            dir,
            server,
            api,
            metrics,
            prometheus: None,
            alertmanager: None,
            mixin,
        };
        if options.with_prometheus && modelwatch_stack::available() {
            lab.start_prometheus(options.with_alertmanager, &mut progress)?;
        }
        Ok(lab)
    }

    /// Starts Prometheus (and Alertmanager if asked) for this lab's server, with the
    /// lab's mixin. Scenario drills call it once traffic flows, so that a quiet
    /// start-up is never mistaken for an outage.
    pub fn start_prometheus(
        &mut self,
        with_alertmanager: bool,
        progress: &mut impl FnMut(&str),
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            modelwatch_stack::available(),
            "prometheus or prometheus-alertmanager is not installed\nhint: apt-get install -y prometheus prometheus-alertmanager"
        );
        let metrics_port = self
            .metrics
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_string();
        let mixin_dir = self.dir.path().join("mixin");
        let files = modelwatch_mixin::generate(&self.mixin)?;
        modelwatch_mixin::write(&mixin_dir, &files)?;
        let alertmanager = if with_alertmanager {
            let am_dir = self.dir.path().join("alertmanager");
            std::fs::create_dir_all(&am_dir)?;
            progress("starting prometheus-alertmanager");
            Some(modelwatch_stack::start_alertmanager(&AlertmanagerConfig {
                dir: am_dir,
                ..AlertmanagerConfig::default()
            })?)
        } else {
            None
        };
        let prom_dir = self.dir.path().join("prometheus");
        std::fs::create_dir_all(&prom_dir)?;
        progress("starting prometheus with the generated rules and alerts");
        let selector_job = job_from_selector(&self.mixin.selector);
        let prometheus = modelwatch_stack::start_prometheus(&PrometheusConfig {
            dir: prom_dir,
            scrape_jobs: vec![ScrapeJob::new(
                selector_job,
                [format!("127.0.0.1:{metrics_port}")],
            )],
            rule_files: vec![
                mixin_dir.join(modelwatch_mixin::RULES_PATH),
                mixin_dir.join(modelwatch_mixin::ALERTS_PATH),
            ],
            alertmanagers: alertmanager
                .iter()
                .map(|a| a.address().to_string())
                .collect(),
            ..PrometheusConfig::default()
        })?;
        self.alertmanager = alertmanager;
        self.prometheus = Some(prometheus);
        Ok(())
    }

    /// Prometheus' URL, when it runs.
    pub fn prometheus_url(&self) -> Option<String> {
        self.prometheus.as_ref().map(Process::url)
    }
}

/// The `job` a selector such as `job="modelwatch"` matches, so that the lab's scrape
/// job is selected by the generated rules.
fn job_from_selector(selector: &str) -> String {
    selector
        .split(',')
        .find_map(|m| {
            let (k, v) = m.split_once('=')?;
            (k.trim() == "job").then(|| v.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "modelwatch".to_string())
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Stop by our own process id: SIGTERM (graceful drain), then SIGKILL.
        let _ = modelwatch_stack::process::signal(
            self.server.id(),
            modelwatch_stack::process::Signal::TERM,
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.server.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_comes_from_the_selector() {
        assert_eq!(job_from_selector(r#"job="modelwatch""#), "modelwatch");
        assert_eq!(
            job_from_selector(r#"namespace="x", job="fraud-api""#),
            "fraud-api"
        );
        assert_eq!(job_from_selector(""), "modelwatch");
    }
}
