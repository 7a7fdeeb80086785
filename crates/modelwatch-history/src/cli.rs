//! Module implementing `modelwatch history`. See [`HistoryArgs`] for details.

use crate::{Format, HistoryConfig, INCIDENTS, synthesize};
use anyhow::Context as _;
use modelwatch_duration::HumanDuration;
use modelwatch_sim::DAY_SECS;
use modelwatch_sim::population::PopulationArgs;
use std::io::Write as _;
use std::path::PathBuf;

/// Synthesize days of the bundled model's metrics (weekly and yearly seasonality, two
/// past incidents) and write them for a long-term store to import.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// Days of history, ending at --end.
    #[arg(long, env = "MODELWATCH_HISTORY_DAYS", default_value_t = 365)]
    pub days: u32,
    /// Time between two samples of a series (must divide a day). At most half the
    /// shortest window of the rules that read the history (the mixin's 1h), or a 1h
    /// rate has a single sample between two sample times and no value. A year at
    /// 30m is about 7.6 million samples; at 15s, 120 times more.
    #[arg(long, env = "MODELWATCH_HISTORY_STEP", default_value = "30m")]
    pub step: HumanDuration,
    /// Time of the last sample: RFC 3339 (2026-12-01T00:00:00Z) or Unix seconds;
    /// default now. Rounded down to a whole step.
    #[arg(long, env = "MODELWATCH_HISTORY_END")]
    pub end: Option<String>,
    /// Where to write; `-` for stdout.
    #[arg(long, env = "MODELWATCH_HISTORY_OUT")]
    pub out: PathBuf,
    /// openmetrics (for promtool tsdb create-blocks-from openmetrics, or
    /// VictoriaMetrics' /api/v1/import/prometheus) or vm-jsonl (VictoriaMetrics'
    /// /api/v1/import).
    #[arg(
        long,
        env = "MODELWATCH_HISTORY_FORMAT",
        value_enum,
        default_value = "openmetrics"
    )]
    pub format: Format,
    /// Transactions scored per day; each stands for --daily-predictions divided by
    /// this many real ones.
    #[arg(
        long,
        env = "MODELWATCH_HISTORY_SAMPLES_PER_DAY",
        default_value_t = 2_000
    )]
    pub samples_per_day: u32,
    /// Predictions a day in production (the counters' volume).
    #[arg(
        long,
        env = "MODELWATCH_HISTORY_DAILY_PREDICTIONS",
        default_value_t = 800_000
    )]
    pub daily_predictions: u64,
    /// Seed of the history's own random draws.
    #[arg(long, env = "MODELWATCH_HISTORY_SEED", default_value_t = 17)]
    pub seed: u64,
    /// The `job` label of every series.
    #[arg(long, env = "MODELWATCH_HISTORY_JOB", default_value = "modelwatch")]
    pub job: String,
    /// The `instance` label of every series.
    #[arg(long, env = "MODELWATCH_HISTORY_INSTANCE", default_value = "history:0")]
    pub instance: String,
    /// The simulated population (as given to `modelwatch serve`).
    #[command(flatten)]
    pub population: PopulationArgs,
}

/// Parses `--end`: RFC 3339 or Unix seconds.
pub fn parse_end(text: &str) -> anyhow::Result<i64> {
    if let Ok(seconds) = text.trim().parse::<i64>() {
        return Ok(seconds);
    }
    let t = time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            anyhow::anyhow!(
                "--end {text:?} is neither Unix seconds nor RFC 3339 ({e})\nhint: write it like 2026-12-01T00:00:00Z or 1764547200"
            )
        })?;
    Ok(t.unix_timestamp())
}

impl HistoryArgs {
    /// The synthesis settings these flags describe.
    pub fn config(&self) -> anyhow::Result<HistoryConfig> {
        let end = match &self.end {
            Some(text) => parse_end(text)?,
            None => time::OffsetDateTime::now_utc().unix_timestamp(),
        };
        let step = self.step.0;
        anyhow::ensure!(
            step.subsec_nanos() == 0 && step.as_secs() > 0,
            "--step {step:?} is not a whole number of seconds\nhint: use a step such as 15s, 1m, 5m or 1h"
        );
        Ok(HistoryConfig {
            days: self.days,
            step_seconds: step.as_secs() as i64,
            end,
            samples_per_day: self.samples_per_day,
            daily_predictions: self.daily_predictions,
            seed: self.seed,
            population: self.population.config(),
            job: self.job.clone(),
            instance: self.instance.clone(),
        })
    }
}

/// Runs `modelwatch history`: synthesizes, writes, and says what it wrote on stderr.
pub fn run(args: &HistoryArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let started = std::time::Instant::now();
    eprintln!(
        "synthesizing {} days every {} s ({} samples a series, {} scored transactions a day, each standing for {})",
        config.days,
        config.step_seconds,
        config.samples(),
        config.samples_per_day,
        config.weight()
    );
    for incident in INCIDENTS {
        let day = config.aligned_end() - incident.days_before_end * DAY_SECS;
        let when = time::OffsetDateTime::from_unix_timestamp(day)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| day.to_string());
        if incident.days_before_end < i64::from(config.days) {
            eprintln!(
                "incident {} from {when} for {} day(s): {}",
                incident.name, incident.days, incident.description
            );
        }
    }
    let bar = indicatif::ProgressBar::new(u64::from(config.days));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} days {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let history = synthesize(&config, |fraction| {
        bar.set_position((fraction * f64::from(config.days)).round() as u64);
    })?;
    bar.finish_and_clear();

    let mut out: Box<dyn std::io::Write> = if args.out.as_os_str() == "-" {
        Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
    } else {
        let file = std::fs::File::create(&args.out).with_context(|| {
            format!(
                "cannot create {}\nhint: check that its directory exists and is writable",
                args.out.display()
            )
        })?;
        Box::new(std::io::BufWriter::with_capacity(1 << 20, file))
    };
    crate::format::write(&history, args.format, &mut out)
        .and_then(|()| out.flush())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "wrote {} series x {} samples ({} transactions scored) to {} in {:.1} s",
        history.series_count(),
        history.timestamps.len(),
        history.scored,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
