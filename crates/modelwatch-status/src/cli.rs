//! Module implementing `modelwatch status`'s flags. See [`StatusArgs`] for details.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Tell in 10 seconds whether the model is healthy: HEALTHY (exit 0), DEGRADED (1) or
/// UNHEALTHY (2), with the key numbers and the reasons. Exit 3 when it cannot judge:
/// a usage error, an unreadable or invalid config, a source it cannot read.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = modelwatch_duration::HELP)]
pub struct StatusArgs {
    /// Prometheus base URL: reads the recording rules and the firing alerts.
    #[arg(long, env = "MODELWATCH_PROMETHEUS", conflicts_with = "metrics")]
    pub prometheus: Option<String>,

    /// A server's metrics URL, without Prometheus: two scrapes a few seconds apart.
    #[arg(long, env = "MODELWATCH_METRICS_URL")]
    pub metrics: Option<String>,

    /// Time between the two scrapes with --metrics, from 500ms to 8s.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_interval)]
    pub interval: Duration,

    /// Only this model (the `model` label).
    #[arg(long, env = "MODELWATCH_STATUS_MODEL")]
    pub model: Option<String>,

    /// Mixin config whose thresholds to judge by (default: the mixin's defaults).
    #[arg(long, env = "MODELWATCH_MIXIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// Refresh every DURATION (at least 1s; 5s when given alone) until interrupted.
    #[arg(
        long,
        value_name = "DURATION",
        num_args = 0..=1,
        default_missing_value = "5s",
        value_parser = parse_watch
    )]
    pub watch: Option<Duration>,
}

/// The shortest `--interval`: below it, two scrapes see too few requests for a rate.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// The longest `--interval`: both scrapes fit in the 10-second verdict.
pub const MAX_INTERVAL: Duration = Duration::from_secs(8);

/// The shortest `--watch` period.
pub const MIN_WATCH: Duration = Duration::from_secs(1);

fn parse_interval(text: &str) -> Result<Duration, String> {
    modelwatch_duration::parse_between(
        text,
        MIN_INTERVAL,
        MAX_INTERVAL,
        "the two scrapes must see some traffic and fit in the 10-second verdict; for longer windows read Prometheus with --prometheus URL",
    )
}

fn parse_watch(text: &str) -> Result<Duration, String> {
    modelwatch_duration::parse_at_least(
        text,
        MIN_WATCH,
        "each refresh reads the source again; once a second is the most it refreshes",
    )
}

/// Reads the mixin config the thresholds come from: `path`, or the defaults.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<modelwatch_mixin::MixinConfig> {
    let Some(path) = path else {
        return Ok(modelwatch_mixin::MixinConfig::default());
    };
    let hint = "hint: --config takes the mixin's TOML settings (`modelwatch mixin --print-default-config` prints them); leave it out to judge by the defaults";
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read mixin config {}: {e}\n{hint}", path.display()))?;
    modelwatch_mixin::MixinConfig::from_toml(&text)
        .map_err(|e| anyhow::anyhow!("mixin config {} is invalid: {e}\n{hint}", path.display()))
}

/// Reads once with these settings. An error means the source could not be read; its
/// message ends in a `hint:` line.
pub async fn read(
    args: &StatusArgs,
    config: &modelwatch_mixin::MixinConfig,
) -> anyhow::Result<crate::Report> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot set up the HTTP client: {e}\nhint: this is a bug; please report it"
            )
        })?;
    match (&args.prometheus, &args.metrics) {
        (Some(p), _) => {
            crate::source::from_prometheus(&client, p, args.model.as_deref(), config).await
        }
        (None, Some(m)) => {
            crate::source::from_metrics(&client, m, args.model.as_deref(), args.interval, config)
                .await
        }
        (None, None) => anyhow::bail!(
            "nothing to read\nhint: pass --prometheus http://127.0.0.1:9090 or --metrics http://127.0.0.1:9464/metrics"
        ),
    }
}

/// Runs `modelwatch status` and returns the verdict's exit code. An error means it
/// cannot judge: the caller prints it and exits [`crate::CANNOT_JUDGE`]. With
/// `--watch`, a failed read is printed and tried again at the next refresh.
pub async fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args.config.as_deref())?;
    loop {
        match read(args, &config).await {
            Ok(report) => {
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    if args.watch.is_some() {
                        print!("\x1b[2J\x1b[H");
                    }
                    print!("{}", report.render());
                }
                if args.watch.is_none() {
                    return Ok(ExitCode::from(report.verdict.exit_code()));
                }
            }
            Err(e) if args.watch.is_some() => eprintln!("error: {e:#}"),
            Err(e) => return Err(e),
        }
        if let Some(period) = args.watch {
            tokio::time::sleep(period).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        status: StatusArgs,
    }

    fn parse(args: &[&str]) -> Result<StatusArgs, String> {
        Cli::try_parse_from(std::iter::once("status").chain(args.iter().copied()))
            .map(|c| c.status)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn durations_take_units_and_bare_seconds() {
        let a = parse(&["--interval", "1500ms", "--watch", "1m"]).unwrap();
        assert_eq!(a.interval, Duration::from_millis(1500));
        assert_eq!(a.watch, Some(Duration::from_secs(60)));
        let a = parse(&["--interval", "2", "--watch"]).unwrap();
        assert_eq!(a.interval, Duration::from_secs(2));
        assert_eq!(a.watch, Some(Duration::from_secs(5)));
        assert_eq!(parse(&[]).unwrap().interval, Duration::from_secs(3));
    }

    #[test]
    fn out_of_range_durations_are_refused_not_clamped() {
        for (flag, value, says) in [
            ("--interval", "20s", "must be from 500ms to 8s, got 20s"),
            ("--interval", "0.1", "must be from 500ms to 8s, got 100ms"),
            ("--watch", "200ms", "must be at least 1s, got 200ms"),
        ] {
            let err = parse(&[flag, value]).unwrap_err();
            assert!(err.contains(says) && err.contains("\nhint: "), "{err}");
        }
    }
}
