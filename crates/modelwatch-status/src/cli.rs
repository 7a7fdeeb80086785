//! Module implementing `modelwatch status`'s flags. See [`StatusArgs`] for details.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Tell in 10 seconds whether the model is healthy: HEALTHY (exit 0), DEGRADED (1) or
/// UNHEALTHY (2), with the key numbers and the reasons. Exit 3 when the source cannot
/// be read.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Prometheus base URL: reads the recording rules and the firing alerts.
    #[arg(long, env = "MODELWATCH_PROMETHEUS", conflicts_with = "metrics")]
    pub prometheus: Option<String>,

    /// A server's metrics URL, without Prometheus: two scrapes a few seconds apart.
    #[arg(long, env = "MODELWATCH_METRICS_URL")]
    pub metrics: Option<String>,

    /// Seconds between the two scrapes with --metrics.
    #[arg(long, default_value_t = 3.0)]
    pub interval: f64,

    /// Only this model (the `model` label).
    #[arg(long, env = "MODELWATCH_STATUS_MODEL")]
    pub model: Option<String>,

    /// Mixin config whose thresholds to judge by (default: the mixin's defaults).
    #[arg(long, env = "MODELWATCH_MIXIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// Refresh every N seconds until interrupted.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "5")]
    pub watch: Option<f64>,
}

/// Reads once with these settings.
pub async fn read(
    args: &StatusArgs,
    config: &modelwatch_mixin::MixinConfig,
) -> anyhow::Result<crate::Report> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    match (&args.prometheus, &args.metrics) {
        (Some(p), _) => {
            crate::source::from_prometheus(&client, p, args.model.as_deref(), config).await
        }
        (None, Some(m)) => {
            crate::source::from_metrics(
                &client,
                m,
                Duration::from_secs_f64(args.interval.clamp(0.5, 8.0)),
                config,
            )
            .await
        }
        (None, None) => anyhow::bail!(
            "nothing to read\nhint: pass --prometheus http://127.0.0.1:9090 or --metrics http://127.0.0.1:9464/metrics"
        ),
    }
}

/// Runs `modelwatch status`.
pub async fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            modelwatch_mixin::MixinConfig::from_toml(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => modelwatch_mixin::MixinConfig::default(),
    };
    loop {
        let report = match read(args, &config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e:#}");
                if args.watch.is_none() {
                    return Ok(ExitCode::from(3));
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            if args.watch.is_some() {
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", report.render());
        }
        match args.watch {
            None => return Ok(ExitCode::from(report.verdict.exit_code())),
            Some(seconds) => tokio::time::sleep(Duration::from_secs_f64(seconds.max(1.0))).await,
        }
    }
}
