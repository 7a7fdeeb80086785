//! Module implementing drills: one scenario played against one lab, with every alert
//! that went pending or fired and the detection delay of the scenario's alert. See
//! [`run`] for the library function and [`DrillArgs`] for `modelwatch drill`.
//!
//! The scenario drills of the test suite and the false-alarm drill run through
//! [`run`]; `modelwatch drill` is the same run for an operator who wants to see how
//! a mixin config behaves at their own traffic rate before trusting its pages.

use crate::lab::{LAB_SIM_SPEED, Lab, LabOptions};
use modelwatch_loadgen::{LabelConfig, LoadConfig, Scenario};
use modelwatch_mixin::MixinConfig;
use modelwatch_status::Verdict;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long a drill lets traffic flow before Prometheus starts, as a server in
/// production is scraped once it serves.
pub const PROMETHEUS_DELAY: Duration = Duration::from_secs(2);

/// The compressed label delay of `modelwatch drill` for the scenarios that need
/// labels: two minutes (two seconds of wall time at `--speedup 60`).
pub const DEFAULT_LABEL_DELAY: Duration = Duration::from_secs(120);

/// How often a drill reads the alerts.
const POLL: Duration = Duration::from_secs(1);

/// The simulated card history that drill traffic is drawn from. Build it once and
/// share it between drills that run at once.
#[derive(Debug)]
pub struct Traffic {
    /// The simulator of the default population (the one the bundled model and its
    /// reference come from).
    pub simulator: modelwatch_sim::Simulator,
    /// Its generated history.
    pub history: modelwatch_sim::History,
}

impl Traffic {
    /// Simulates the history of `population`.
    pub fn new(population: modelwatch_sim::SimConfig) -> anyhow::Result<Self> {
        let simulator = modelwatch_sim::Simulator::new(population)?;
        let history = simulator.generate();
        Ok(Self { simulator, history })
    }
}

/// One drill: a scenario, its traffic, and the lab it runs in.
#[derive(Debug, Clone)]
pub struct DrillPlan {
    /// The scenario (`clean` included).
    pub scenario: Scenario,
    /// Requests per second.
    pub rps: f64,
    /// Wall-clock length of the traffic.
    pub run: Duration,
    /// The lab: binary, time scale, mixin config, store template.
    pub lab: LabOptions,
    /// The traffic stream (a seed): drills at once use different streams.
    pub stream: u64,
    /// Read the status verdict when the expected alert fires (or at the end of a
    /// scenario without one).
    pub read_status: bool,
    /// Send each answer's label this long (wall clock) after it, from the
    /// simulator's ground truth and the scenario's label mode. Scenarios whose
    /// incident is in the labels need it ([`Scenario::needs_labels`]).
    pub labels: Option<LabelConfig>,
}

/// When one alert went pending and fired, in wall-clock time since traffic started.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AlertTimes {
    /// First poll that saw it pending.
    pub first_pending: Option<Duration>,
    /// First poll that saw it firing.
    pub first_firing: Option<Duration>,
    /// First poll after the warm-up that saw it pending.
    pub pending_after_warm_up: Option<Duration>,
    /// Polls that saw it pending or firing.
    pub polls_active: u64,
}

/// What a drill saw.
#[derive(Debug, Clone)]
pub struct DrillReport {
    /// The scenario's name.
    pub scenario: &'static str,
    /// The alert the scenario must raise, if any.
    pub expected: Option<&'static str>,
    /// Requests per second asked for.
    pub rps: f64,
    /// Wall-clock length of the run.
    pub run: Duration,
    /// The mixin's time scale (1/60: an hour becomes a minute).
    pub time_scale: f64,
    /// When the incident started (wall clock since traffic started).
    pub incident_at: Option<Duration>,
    /// Until when windows are still filling: Prometheus' start plus the scaled drift
    /// window. Pending alerts before it are start-up effects.
    pub warm_up: Duration,
    /// Every alert that went pending or fired, by `alertname`.
    pub alerts: BTreeMap<String, AlertTimes>,
    /// First firing of the expected alert after the incident started.
    pub detection: Option<Duration>,
    /// The status verdict, read when the expected alert fired (or at the end).
    pub verdict: Option<Verdict>,
    /// Requests answered successfully.
    pub ok: u64,
    /// Requests sent.
    pub sent: u64,
}

impl DrillReport {
    /// Alerts that fired before the incident started (all of them when the scenario
    /// has no incident): false alarms.
    pub fn false_alarms(&self) -> Vec<&str> {
        let before = self.incident_at.unwrap_or(Duration::MAX);
        self.alerts
            .iter()
            .filter(|(_, t)| t.first_firing.is_some_and(|f| f < before))
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Alerts other than the expected one that were pending after the warm-up.
    pub fn pending_after_warm_up(&self) -> Vec<&str> {
        self.alerts
            .iter()
            .filter(|(n, t)| Some(n.as_str()) != self.expected && t.pending_after_warm_up.is_some())
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Whether the drill went as the scenario says: its alert fired (if it has
    /// one) and nothing fired before the incident.
    pub fn as_expected(&self) -> bool {
        self.false_alarms().is_empty() && (self.expected.is_none() || self.detection.is_some())
    }

    /// `d` in wall seconds and in the compressed time it stands for.
    fn both(&self, d: Duration) -> String {
        format!(
            "{:.0} s ({})",
            d.as_secs_f64(),
            compressed(d.as_secs_f64() / self.time_scale)
        )
    }

    /// The report as a table.
    pub fn table(&self) -> String {
        let opt = |d: Option<Duration>| d.map(|d| self.both(d)).unwrap_or_else(|| "-".into());
        let mut out = format!(
            "scenario {} at {} req/s for {} (time scale 1/{}), warm-up until {}\n\
             requests: {} sent, {} answered\n\n",
            self.scenario,
            self.rps,
            self.both(self.run),
            modelwatch_mixin::num(1.0 / self.time_scale),
            self.both(self.warm_up),
            self.sent,
            self.ok
        );
        out.push_str(
            "| alert | first pending | first fired | pending after warm-up |\n|---|---|---|---|\n",
        );
        if self.alerts.is_empty() {
            out.push_str("| (none) | - | - | - |\n");
        }
        for (name, t) in &self.alerts {
            out.push_str(&format!(
                "| {name} | {} | {} | {} |\n",
                opt(t.first_pending),
                opt(t.first_firing),
                opt(t.pending_after_warm_up)
            ));
        }
        out.push('\n');
        match (self.expected, self.detection) {
            (Some(alert), Some(d)) => out.push_str(&format!(
                "expected alert {alert}: fired {} after the incident started\n",
                self.both(d)
            )),
            (Some(alert), None) => {
                out.push_str(&format!("expected alert {alert}: never fired\n"));
            }
            (None, _) => out.push_str("expected alert: none (clean traffic)\n"),
        }
        let false_alarms = self.false_alarms();
        out.push_str(&format!(
            "false alarms: {}\n",
            if false_alarms.is_empty() {
                "none".to_string()
            } else {
                false_alarms.join(", ")
            }
        ));
        if let Some(v) = self.verdict {
            out.push_str(&format!("status verdict: {}\n", v.as_str()));
        }
        out
    }

    /// The report as JSON; durations in wall seconds.
    pub fn json(&self) -> serde_json::Value {
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        let alerts: serde_json::Map<String, serde_json::Value> = self
            .alerts
            .iter()
            .map(|(n, t)| {
                (
                    n.clone(),
                    serde_json::json!({
                        "first_pending_seconds": secs(t.first_pending),
                        "first_firing_seconds": secs(t.first_firing),
                        "pending_after_warm_up_seconds": secs(t.pending_after_warm_up),
                        "polls_active": t.polls_active,
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "scenario": self.scenario,
            "expected_alert": self.expected,
            "rps": self.rps,
            "run_seconds": self.run.as_secs_f64(),
            "time_scale": self.time_scale,
            "incident_at_seconds": secs(self.incident_at),
            "warm_up_seconds": self.warm_up.as_secs_f64(),
            "requests_sent": self.sent,
            "requests_ok": self.ok,
            "alerts": alerts,
            "detection_delay_seconds": secs(self.detection),
            "false_alarms": self.false_alarms(),
            "pending_after_warm_up": self.pending_after_warm_up(),
            "status_verdict": self.verdict.map(Verdict::as_str),
            "as_expected": self.as_expected(),
        })
    }
}

/// `90m` as `1h30m`, for compressed times.
fn compressed(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// The warm-up of a drill with `mixin`: Prometheus starts, then the drift window
/// (the longest window the clean-traffic alerts read) fills once.
pub fn warm_up(mixin: &MixinConfig) -> Duration {
    PROMETHEUS_DELAY + Duration::from_secs(mixin.scaled(mixin.drift.window).as_secs())
}

/// Plays `plan` in a new lab with `traffic`, reading every alert each second.
pub async fn run(
    plan: &DrillPlan,
    traffic: &Traffic,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<DrillReport> {
    let scenario = &plan.scenario;
    anyhow::ensure!(
        !scenario.needs_labels() || plan.labels.is_some(),
        "scenario {} is an incident in the labels, and the drill sends none",
        scenario.name
    );
    let opts = plan.lab.clone();
    progress("starting the lab");
    let mut lab = tokio::task::spawn_blocking(move || Lab::start(&opts, |_| {})).await??;
    let config = LoadConfig {
        target: lab.api.clone(),
        admin_target: Some(lab.metrics.clone()),
        rps: plan.rps,
        duration: plan.run,
        max_requests: None,
        concurrency: 128,
        stream: plan.stream,
        progress: false,
    };
    let stream = traffic
        .simulator
        .traffic(&traffic.history, traffic.history.end_timestamp())
        .with_stream(plan.stream)
        .with_rate(plan.rps / LAB_SIM_SPEED);
    let started = Instant::now();
    let incident_at = scenario.incident_start(plan.run);
    let load = {
        let scenario = scenario.clone();
        let labels = plan.labels;
        tokio::spawn(async move {
            modelwatch_loadgen::run_with_labels(&config, &scenario, stream, labels, |_, _| {}).await
        })
    };
    tokio::time::sleep(PROMETHEUS_DELAY).await;
    progress("starting prometheus with the mixin");
    lab.start_prometheus(false, &mut |_| {})?;
    let prometheus = lab
        .prometheus_url()
        .ok_or_else(|| anyhow::anyhow!("prometheus did not start"))?;
    let client = modelwatch_stack::http_client()?;
    let status_args = modelwatch_status::cli::StatusArgs {
        prometheus: Some(prometheus.clone()),
        metrics: None,
        interval: Duration::from_secs(2),
        model: None,
        config: None,
        json: false,
        watch: None,
    };
    let warm = warm_up(&lab.mixin);
    let mut report = DrillReport {
        scenario: scenario.name,
        expected: scenario.expected_alert,
        rps: plan.rps,
        run: plan.run,
        time_scale: lab.mixin.time_scale,
        incident_at,
        warm_up: warm,
        alerts: BTreeMap::new(),
        detection: None,
        verdict: None,
        ok: 0,
        sent: 0,
    };
    // A 2 s range catches an alert that was pending for a single evaluation between
    // two polls (a resolved alert's series ends with a staleness marker).
    let query = "max_over_time(ALERTS[2s])";
    let mut next_progress = Duration::ZERO;
    while !load.is_finished() {
        tokio::time::sleep(POLL).await;
        let elapsed = started.elapsed();
        if elapsed >= next_progress {
            progress(&format!(
                "{:.0} s of {:.0} s, {} alert(s) seen",
                elapsed.as_secs_f64(),
                plan.run.as_secs_f64(),
                report.alerts.len()
            ));
            next_progress = elapsed + Duration::from_secs(60);
        }
        let samples = modelwatch_stack::query(&client, &prometheus, query).await?;
        for sample in samples {
            let (Some(name), Some(state)) = (
                sample.labels.get("alertname"),
                sample.labels.get("alertstate"),
            ) else {
                continue;
            };
            let times = report.alerts.entry(name.clone()).or_default();
            times.polls_active += 1;
            match state.as_str() {
                "pending" => {
                    times.first_pending.get_or_insert(elapsed);
                    if elapsed >= warm {
                        times.pending_after_warm_up.get_or_insert(elapsed);
                    }
                }
                "firing" => {
                    times.first_firing.get_or_insert(elapsed);
                    let is_expected = Some(name.as_str()) == scenario.expected_alert;
                    if is_expected
                        && report.detection.is_none()
                        && incident_at.is_some_and(|at| elapsed >= at)
                    {
                        report.detection =
                            Some(elapsed.saturating_sub(incident_at.unwrap_or_default()));
                        if plan.read_status {
                            // Read the board while the incident is on.
                            report.verdict = Some(
                                modelwatch_status::cli::read(&status_args, &lab.mixin)
                                    .await?
                                    .verdict,
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let load_report = load.await??;
    report.ok = load_report.ok();
    report.sent = load_report.sent;
    anyhow::ensure!(report.ok > 0, "{}: no request succeeded", scenario.name);
    if plan.read_status && scenario.expected_alert.is_none() {
        report.verdict = Some(
            modelwatch_status::cli::read(&status_args, &lab.mixin)
                .await?
                .verdict,
        );
    }
    drop(lab);
    Ok(report)
}

/// Plays one scenario against a lab (a `modelwatch serve`, and Prometheus with the
/// generated mixin at a compressed time scale) and reports every alert that went
/// pending or fired, with its times, and how long the scenario's alert took to fire.
/// Run `clean` at your own traffic rate and mixin config to see whether the config
/// would have woken someone for nothing; run an incident to see how late it pages.
/// Exits 0 when the scenario's alert fired and nothing fired before the incident,
/// 1 otherwise.
#[derive(Debug, Clone, clap::Args)]
pub struct DrillArgs {
    /// The scenario: clean, or one of the incidents of `modelwatch loadgen --scenario`.
    #[arg(long, default_value = "clean")]
    pub scenario: String,

    /// Requests per second (more than 0, at most 1000000).
    #[arg(long, default_value = "50", value_parser = modelwatch_loadgen::cli::parse_rps)]
    pub rps: f64,

    /// Compressed length of the drill: `24h` at `--speedup 60` runs 24 minutes.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "150m",
        value_parser = modelwatch_loadgen::cli::parse_run_duration
    )]
    pub duration: Duration,

    /// Time compression of the rules' windows and `for:` durations (60: the 1 h drift
    /// window becomes a minute); at least 1.
    #[arg(long, default_value = "60", value_parser = crate::cli::parse_speedup)]
    pub speedup: f64,

    /// A mixin config (TOML, as `modelwatch mixin --config`); its `time_scale` is
    /// replaced by 1/--speedup. Without it, the lab's config: the defaults with a
    /// cache floor, comparison offset and feature age fitted to the lab.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// The traffic stream (a seed); change it to repeat a drill on other requests.
    #[arg(long, default_value_t = 1)]
    pub stream: u64,

    /// Send each answer's label this much compressed time later (`2h` at `--speedup
    /// 60` is 2 minutes), drawn from the simulator's ground truth. Default: `2m` for
    /// the scenarios whose incident is in the labels (concept_drift, label_delay),
    /// no labels for the others.
    #[arg(long, value_name = "DURATION", value_parser = modelwatch_loadgen::cli::parse_label_delay)]
    pub label_delay: Option<Duration>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `modelwatch drill`.
pub async fn run_cli(args: &DrillArgs) -> anyhow::Result<ExitCode> {
    // The error names the scenarios in its own hint line.
    let scenario = Scenario::named(&args.scenario).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        modelwatch_stack::available(),
        "a drill reads alerts from Prometheus, which is not installed\nhint: apt-get install -y prometheus"
    );
    let mut lab = LabOptions::new(std::env::current_exe()?, 1.0 / args.speedup);
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| {
            anyhow::anyhow!(
                "cannot read {}: {e}\nhint: `modelwatch mixin --print-default-config > mixin.toml` writes one to start from",
                path.display()
            )
        })?;
        lab.mixin = Some(MixinConfig::from_toml(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}\nhint: `modelwatch mixin --print-default-config` prints a valid config",
                path.display()
            )
        })?);
        // Validate the scaled config now rather than when Prometheus starts.
        modelwatch_mixin::generate(&lab.mixin_config())?;
    }
    lab.with_prometheus = false;
    let run = args.duration.div_f64(args.speedup);
    let label_delay = args
        .label_delay
        .or_else(|| scenario.needs_labels().then_some(DEFAULT_LABEL_DELAY));
    let plan = DrillPlan {
        labels: label_delay.map(|d| LabelConfig {
            delay: d.div_f64(args.speedup),
        }),
        scenario,
        rps: args.rps,
        run,
        lab,
        stream: args.stream,
        read_status: true,
    };
    eprintln!(
        "drill: {} at {} req/s for {} compressed, {:.0} s of wall time",
        plan.scenario.name,
        args.rps,
        compressed(args.duration.as_secs_f64()),
        run.as_secs_f64()
    );
    let population = modelwatch_sim::population::PopulationArgs::default().config();
    let traffic = tokio::task::spawn_blocking(move || Traffic::new(population)).await??;
    let report = run_drill(&plan, &traffic).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.table());
    }
    Ok(if report.as_expected() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn run_drill(plan: &DrillPlan, traffic: &Traffic) -> anyhow::Result<DrillReport> {
    run(plan, traffic, |line| eprintln!("drill: {line}")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_times_read_as_durations() {
        assert_eq!(compressed(45.0), "45s");
        assert_eq!(compressed(90.0), "1m30s");
        assert_eq!(compressed(3600.0), "1h");
        assert_eq!(compressed(86_400.0 + 1800.0), "24h30m");
    }

    #[test]
    fn false_alarms_are_firings_before_the_incident() {
        let mut report = DrillReport {
            scenario: "score_drift",
            expected: Some("A"),
            rps: 50.0,
            run: Duration::from_secs(100),
            time_scale: 1.0 / 60.0,
            incident_at: Some(Duration::from_secs(30)),
            warm_up: Duration::from_secs(62),
            alerts: BTreeMap::new(),
            detection: Some(Duration::from_secs(20)),
            verdict: None,
            ok: 1,
            sent: 1,
        };
        report.alerts.insert(
            "A".into(),
            AlertTimes {
                first_firing: Some(Duration::from_secs(50)),
                ..AlertTimes::default()
            },
        );
        report.alerts.insert(
            "B".into(),
            AlertTimes {
                first_pending: Some(Duration::from_secs(70)),
                pending_after_warm_up: Some(Duration::from_secs(70)),
                ..AlertTimes::default()
            },
        );
        assert!(report.as_expected());
        assert_eq!(report.pending_after_warm_up(), ["B"]);
        report.alerts.get_mut("B").unwrap().first_firing = Some(Duration::from_secs(10));
        assert_eq!(report.false_alarms(), ["B"]);
        assert!(!report.as_expected());
    }
}
