//! Module implementing `modelwatch loadgen`'s flags. See [`LoadgenArgs`] for details.

use crate::{LoadConfig, Scenario};
use std::time::Duration;

/// `--duration` (loadgen's and demo's): any duration above zero.
pub fn parse_run_duration(text: &str) -> Result<Duration, String> {
    modelwatch_duration::parse_at_least(
        text,
        Duration::from_millis(1),
        "a run sends for a while, such as 30s, 5m or 1h",
    )
}

/// The most requests per second a generator is asked for.
pub const MAX_RPS: f64 = 1_000_000.0;

/// `--rps` (loadgen's and demo's): more than zero, at most [`MAX_RPS`].
pub fn parse_rps(text: &str) -> Result<f64, String> {
    let rps: f64 = text.trim().parse().map_err(|_| {
        format!("{text:?} is not a number\nhint: requests per second, such as 200 or 0.5")
    })?;
    if !(rps > 0.0 && rps <= MAX_RPS) {
        return Err(format!(
            "must be more than 0 and at most {MAX_RPS}, got {rps}\nhint: requests per second, such as 200 or 0.5"
        ));
    }
    Ok(rps)
}

fn parse_concurrency(text: &str) -> Result<usize, String> {
    let hint = "hint: the most requests in flight at once, such as 256";
    match text.trim().parse::<usize>() {
        Ok(0) => Err(format!("must be at least 1, got 0\n{hint}")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a whole number\n{hint}")),
    }
}

/// Send simulator transactions to a server at a steady rate, optionally playing an
/// incident scenario, and print a summary table.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = modelwatch_duration::HELP)]
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

    /// Requests per second (more than 0, at most 1000000).
    #[arg(long, env = "MODELWATCH_RPS", default_value = "200", value_parser = parse_rps)]
    pub rps: f64,

    /// How long to send (500ms, 30s, 5m, 1h30m).
    #[arg(
        long,
        env = "MODELWATCH_DURATION",
        value_name = "DURATION",
        default_value = "30s",
        value_parser = parse_run_duration
    )]
    pub duration: Duration,

    /// Stop after this many requests, if sooner.
    #[arg(long, env = "MODELWATCH_REQUESTS")]
    pub requests: Option<u64>,

    /// Most requests in flight (at least 1); past it, requests are skipped and counted.
    #[arg(
        long,
        env = "MODELWATCH_CONCURRENCY",
        default_value_t = 256,
        value_parser = parse_concurrency
    )]
    pub concurrency: usize,

    /// Incident scenario: clean, score_drift, feature_drift, stale_features,
    /// null_burst, slow_store, error_burst, approval_shift, cache_collapse,
    /// store_down, concept_drift, label_delay (the last two need --label-delay).
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

    /// With `--scenario store_down`: the shell command that stops the real feature
    /// store when the incident starts (such as `kill -KILL <redis pid>`). Without
    /// it, the server's `store_down` fault stands in for the store.
    #[arg(long, value_name = "COMMAND", requires = "store_start_command")]
    pub store_stop_command: Option<String>,

    /// With `--scenario store_down`: the shell command that starts the store again
    /// (at 80% of the run).
    #[arg(long, value_name = "COMMAND", requires = "store_stop_command")]
    pub store_start_command: Option<String>,
    /// Send each answered prediction's ground truth to POST /v1/feedback this long
    /// after its answer (0s: at once). Without it, no label is sent.
    #[arg(long, env = "MODELWATCH_LABEL_DELAY", value_name = "DURATION", value_parser = parse_label_delay)]
    pub label_delay: Option<Duration>,

    /// Print the summary as JSON (with the latency quantiles in seconds).
    #[arg(long)]
    pub json: bool,

    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `modelwatch loadgen`.
pub async fn run(args: &LoadgenArgs) -> anyhow::Result<std::process::ExitCode> {
    let mut scenario = Scenario::named(&args.scenario).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        !scenario.needs_labels() || args.label_delay.is_some(),
        "scenario {} is an incident in the labels, and no label is sent\nhint: add --label-delay 2s (the labels follow the answers by that much)",
        scenario.name
    );
    if let (Some(stop), Some(start)) = (&args.store_stop_command, &args.store_start_command) {
        scenario = scenario.with_store_commands(stop, start);
    }
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
    let labels = args.label_delay.map(|delay| crate::LabelConfig { delay });
    let report = crate::run_with_labels(&config, &scenario, traffic, labels, |_, phase| {
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

/// Parses `--label-delay` (any duration, zero included).
pub fn parse_label_delay(text: &str) -> Result<Duration, String> {
    modelwatch_duration::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_takes_units_and_bare_seconds_but_not_zero() {
        assert_eq!(parse_run_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_run_duration("15"), Ok(Duration::from_secs(15)));
        let err = parse_run_duration("0s").unwrap_err();
        assert!(
            err.contains("at least 1ms") && err.contains("\nhint: "),
            "{err}"
        );
    }

    #[test]
    fn rps_and_concurrency_out_of_range_are_refused() {
        assert_eq!(parse_rps("0.5"), Ok(0.5));
        for bad in ["0", "-3", "NaN", "inf", "2000000", "fast"] {
            let err = parse_rps(bad).unwrap_err();
            assert!(err.contains("\nhint: "), "{bad}: {err}");
        }
        assert_eq!(parse_concurrency("1"), Ok(1));
        assert!(parse_concurrency("0").unwrap_err().contains("at least 1"));
        assert!(
            parse_concurrency("-1")
                .unwrap_err()
                .contains("whole number")
        );
    }
}
