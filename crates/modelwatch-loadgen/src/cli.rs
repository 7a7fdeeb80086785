//! Module implementing `modelwatch loadgen`'s flags. See [`LoadgenArgs`] for details.

use crate::{LoadConfig, Scenario};
use std::time::Duration;

/// Parses `500ms`, `30s`, `5m` or `1h` (the flag syntax of loadgen and demo).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(|| format!("{s:?} has no unit; write it like 500ms, 30s, 5m or 1h"))?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| format!("{s:?} does not start with a number"))?;
    let secs = match unit {
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?}; use ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Send simulator transactions to a server at a steady rate, optionally playing an
/// incident scenario, and print a summary table.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenArgs {
    /// Base URL of the prediction API.
    #[arg(
        long,
        env = "MODELWATCH_TARGET",
        default_value = "http://127.0.0.1:8080"
    )]
    pub target: String,

    /// Base URL of the server's metrics listener, where scenarios set faults (needs
    /// `serve --enable-fault-injection`).
    #[arg(
        long,
        env = "MODELWATCH_ADMIN",
        default_value = "http://127.0.0.1:9464"
    )]
    pub admin: String,

    /// Requests per second.
    #[arg(long, env = "MODELWATCH_RPS", default_value_t = 200.0)]
    pub rps: f64,

    /// How long to send (500ms, 30s, 5m, 1h).
    #[arg(long, env = "MODELWATCH_DURATION", default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Stop after this many requests, if sooner.
    #[arg(long, env = "MODELWATCH_REQUESTS")]
    pub requests: Option<u64>,

    /// Most requests in flight; past it, requests are skipped and counted.
    #[arg(long, env = "MODELWATCH_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,

    /// Incident scenario: clean, score_drift, feature_drift, stale_features,
    /// null_burst, slow_store, error_burst, approval_shift, cache_collapse.
    #[arg(long, env = "MODELWATCH_SCENARIO", default_value = "clean")]
    pub scenario: String,

    /// Random stream of the traffic (give parallel generators different streams).
    #[arg(long, env = "MODELWATCH_STREAM", default_value_t = 1)]
    pub stream: u64,

    /// The simulated population (the same values as the server's).
    #[command(flatten)]
    pub population: modelwatch_sim::population::PopulationArgs,

    /// Simulated seconds per real second (default: a simulated week per minute, so
    /// hours and weekdays keep their reference mix on short windows).
    #[arg(long, env = "MODELWATCH_SIM_SPEED", default_value_t = crate::DEFAULT_SIM_SPEED)]
    pub sim_speed: f64,

    /// Print the summary as JSON (with the latency quantiles in seconds).
    #[arg(long)]
    pub json: bool,

    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `modelwatch loadgen`.
pub async fn run(args: &LoadgenArgs) -> anyhow::Result<std::process::ExitCode> {
    let scenario = Scenario::named(&args.scenario).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        args.rps > 0.0 && args.rps <= 1_000_000.0,
        "--rps must be in (0, 1000000], got {}",
        args.rps
    );
    anyhow::ensure!(
        !args.duration.is_zero(),
        "--duration must be more than zero"
    );
    let config = LoadConfig {
        target: args.target.clone(),
        admin_target: scenario.injects_faults().then(|| args.admin.clone()),
        rps: args.rps,
        duration: args.duration,
        max_requests: args.requests,
        concurrency: args.concurrency,
        stream: args.stream,
        progress: !args.quiet && !args.json,
    };
    if !args.json {
        eprintln!(
            "loadgen: {} at {} req/s for {:?} against {} ({})",
            scenario.name, args.rps, args.duration, args.target, scenario.description
        );
    }
    let traffic = crate::traffic_at(
        args.population.config(),
        args.stream,
        args.rps,
        args.sim_speed,
    )?;
    let quiet = args.json || args.quiet;
    let report = crate::run(&config, &scenario, traffic, |_, phase| {
        if !quiet {
            eprintln!("phase: {}", phase.name);
        }
    })
    .await?;
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        for (key, q) in [
            ("p50_seconds", 0.5),
            ("p99_seconds", 0.99),
            ("max_seconds", 1.0),
        ] {
            value[key] = serde_json::json!(report.quantile_seconds(q));
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", report.table());
    }
    if report.ok() == 0 {
        eprintln!(
            "error: no request succeeded\nhint: is `modelwatch serve` running at {}?",
            args.target
        );
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(std::process::ExitCode::SUCCESS)
}
