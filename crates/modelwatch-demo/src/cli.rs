//! Module implementing `modelwatch demo`. See [`DemoArgs`] for details.

use crate::lab::{Lab, LabOptions};
use modelwatch_loadgen::{LoadConfig, Phase, Scenario};
use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// One command, the whole point: serve the bundled model, send it traffic, break
/// things on a timeline (a fraud wave, then a slow feature store), and watch the
/// status board and the alerts say so. Prometheus and Alertmanager join in when
/// Debian's packages are installed. Ctrl-C stops everything it started.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = modelwatch_duration::HELP)]
pub struct DemoArgs {
    /// How long the timeline runs (clean, fraud wave, recovery, slow store, recovery).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "6m",
        value_parser = modelwatch_loadgen::cli::parse_run_duration
    )]
    pub duration: Duration,

    /// Requests per second (more than 0, at most 1000000).
    #[arg(long, default_value = "200", value_parser = modelwatch_loadgen::cli::parse_rps)]
    pub rps: f64,

    /// Time compression of the rules' windows and `for:` durations (60: an hour of
    /// drift window becomes a minute); at least 1.
    #[arg(long, default_value = "60", value_parser = parse_speedup)]
    pub speedup: f64,

    /// Do not start Prometheus and Alertmanager even if installed.
    #[arg(long)]
    pub no_prometheus: bool,

    /// Time between status boards, at least 2s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_every)]
    pub every: Duration,
}

/// Without Prometheus, a board reads the server twice, this far apart.
const SCRAPE_INTERVAL: Duration = Duration::from_secs(2);

/// The shortest `--every`: one board takes [`SCRAPE_INTERVAL`] to read.
const MIN_EVERY: Duration = SCRAPE_INTERVAL;

fn parse_every(text: &str) -> Result<Duration, String> {
    modelwatch_duration::parse_at_least(
        text,
        MIN_EVERY,
        "one board reads the server twice, 2s apart, when Prometheus is not running",
    )
}

/// `--speedup` (demo's and drill's): at least 1.
pub(crate) fn parse_speedup(text: &str) -> Result<f64, String> {
    let hint = "hint: 1 runs the rules at their real windows, 60 turns an hour into a minute";
    let speedup: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number\n{hint}"))?;
    if !(speedup >= 1.0 && speedup.is_finite()) {
        return Err(format!("must be at least 1, got {speedup}\n{hint}"));
    }
    Ok(speedup)
}

/// The demo's timeline, as fractions of the run.
pub fn timeline() -> anyhow::Result<Scenario> {
    let incident = |name: &str| -> anyhow::Result<Phase> {
        let s = Scenario::named(name).map_err(anyhow::Error::msg)?;
        s.phases
            .last()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("scenario {name} has no phase"))
    };
    let clean = |start| Phase {
        name: "recovery",
        start_fraction: start,
        knobs: modelwatch_sim::TrafficKnobs::default(),
        faults: Some(serde_json::json!({})),
        command: None,
    };
    let mut wave = incident("score_drift")?;
    wave.start_fraction = 0.2;
    let mut slow = incident("slow_store")?;
    slow.start_fraction = 0.6;
    Ok(Scenario {
        name: "demo",
        description: "clean, a fraud wave (score drift), recovery, a slow feature store, recovery",
        expected_alert: None,
        phases: vec![
            Phase {
                name: "clean",
                ..clean(0.0)
            },
            wave,
            clean(0.45),
            slow,
            clean(0.85),
        ],
    })
}

/// Runs `modelwatch demo`.
pub async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let binary = std::env::current_exe()?;
    let mut options = LabOptions::new(binary, 1.0 / args.speedup);
    options.with_prometheus = !args.no_prometheus;
    if options.with_prometheus && !modelwatch_stack::available() {
        eprintln!(
            "note: prometheus and prometheus-alertmanager are not installed; the board reads the server directly\nhint: apt-get install -y prometheus prometheus-alertmanager to see the alerts fire"
        );
    }
    let opts = options.clone();
    let lab =
        tokio::task::spawn_blocking(move || Lab::start(&opts, |step| eprintln!("demo: {step}")))
            .await??;
    eprintln!("demo: API        {}/v1/predict", lab.api);
    eprintln!("demo: metrics    {}/metrics", lab.metrics);
    if let Some(url) = lab.prometheus_url() {
        eprintln!("demo: prometheus {url}  (alerts: {url}/alerts)");
    }
    if let Some(am) = &lab.alertmanager {
        eprintln!("demo: alertmanager {}", am.url());
    }
    let listen = modelwatch_ui::cli::DEFAULT_LISTEN.parse()?;
    eprintln!(
        "demo: page       {}  (open it in a browser)",
        crate::page::start(&lab, listen).await?
    );
    let scenario = timeline()?;
    let config = LoadConfig {
        target: lab.api.clone(),
        admin_target: Some(lab.metrics.clone()),
        rps: args.rps,
        duration: args.duration,
        max_requests: None,
        concurrency: 256,
        stream: 7,
        progress: false,
    };
    let traffic = modelwatch_loadgen::traffic_at(
        options.population.config(),
        config.stream,
        config.rps,
        crate::lab::LAB_SIM_SPEED,
    )?;
    let phase = std::sync::Arc::new(std::sync::Mutex::new(String::from("clean")));
    let phase_for_load = phase.clone();
    let started = Instant::now();
    let load = tokio::spawn(async move {
        modelwatch_loadgen::run(&config, &scenario, traffic, move |_, p| {
            if let Ok(mut current) = phase_for_load.lock() {
                *current = p.name.to_string();
            }
        })
        .await
    });
    let status_args = modelwatch_status::cli::StatusArgs {
        prometheus: lab.prometheus_url(),
        metrics: lab
            .prometheus_url()
            .is_none()
            .then(|| format!("{}/metrics", lab.metrics)),
        interval: SCRAPE_INTERVAL,
        model: None,
        config: None,
        json: false,
        watch: None,
    };
    let mut first_fired: BTreeMap<String, Duration> = BTreeMap::new();
    let tty = std::io::stdout().is_terminal();
    let mut ticker = tokio::time::interval(args.every);
    let outcome = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\ndemo: interrupted; stopping everything it started");
                break None;
            }
            _ = ticker.tick() => {
                if load.is_finished() {
                    break Some(load.await);
                }
                let report = modelwatch_status::cli::read(&status_args, &lab.mixin).await;
                let elapsed = started.elapsed();
                let current = phase.lock().map(|p| p.clone()).unwrap_or_default();
                if tty {
                    print!("\x1b[2J\x1b[H");
                }
                println!("── modelwatch demo · {:>4.0} s of {:.0} s · phase: {current}", elapsed.as_secs_f64(), args.duration.as_secs_f64());
                match report {
                    Ok(report) => {
                        print!("{}", report.render());
                        for alert in &report.firing {
                            first_fired.entry(alert.name.clone()).or_insert(elapsed);
                        }
                        if !report.firing.is_empty() {
                            println!("firing alerts:");
                            for a in &report.firing {
                                println!("  {} ({}) {}", a.name, a.severity, a.labels.join(" "));
                            }
                        }
                    }
                    Err(e) => println!("status unavailable: {e:#}"),
                }
            }
        }
    };
    let code = match outcome {
        Some(Ok(Ok(load_report))) => {
            println!("\n── load summary");
            print!("{}", load_report.table());
            if lab.prometheus_url().is_some() {
                println!("\n── alerts that fired (first seen, seconds into the run)");
                if first_fired.is_empty() {
                    println!("  none");
                }
                for (name, at) in &first_fired {
                    println!("  {name:<40} {:>6.0} s", at.as_secs_f64());
                }
            }
            ExitCode::SUCCESS
        }
        Some(Ok(Err(e))) => return Err(e),
        Some(Err(e)) => anyhow::bail!("load task failed: {e}"),
        None => ExitCode::from(130),
    };
    drop(lab);
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_starts_clean_and_ends_in_recovery() {
        let t = timeline().unwrap();
        assert_eq!(t.phase_at_fraction(0.0).unwrap().1.name, "clean");
        assert_eq!(t.phase_at_fraction(0.3).unwrap().1.name, "score_drift");
        assert_eq!(t.phase_at_fraction(0.7).unwrap().1.name, "slow_store");
        assert_eq!(t.phase_at_fraction(0.99).unwrap().1.name, "recovery");
        assert!(t.injects_faults());
    }

    #[test]
    fn every_and_speedup_below_their_floor_are_refused() {
        assert_eq!(parse_every("20"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_every("2s"), Ok(MIN_EVERY));
        let err = parse_every("1500ms").unwrap_err();
        assert!(
            err.contains("at least 2s, got 1s 500ms") && err.contains("\nhint: "),
            "{err}"
        );
        assert_eq!(parse_speedup("1"), Ok(1.0));
        for bad in ["0.5", "NaN", "inf", "x"] {
            assert!(
                parse_speedup(bad).unwrap_err().contains("\nhint: "),
                "{bad}"
            );
        }
    }
}
