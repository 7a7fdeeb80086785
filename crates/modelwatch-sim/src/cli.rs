//! `modelwatch simulate`: writes a labelled, featurised transaction history as CSV.
//!
//! The CSV columns are `tx_id`, `customer_id`, `terminal_id`, `timestamp` (Unix
//! seconds, UTC), the [`FEATURES`] in order, `is_fraud` (0/1) and `split` (`train`, or
//! `holdout` for the last `--holdout-days` days). Floats are written in their shortest
//! form that reads back to the same `f32`, so a reader gets exactly the model input.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{DAY_SECS, FEATURES, FeatureBuilder, FraudScenario, SimConfig, Simulator};

/// Options of `modelwatch simulate`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct SimulateArgs {
    /// Seed of every random draw: the same seed and sizes always give the same file
    #[arg(long, env = "MODELWATCH_SIM_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Number of customers (cards)
    #[arg(long, env = "MODELWATCH_SIM_CUSTOMERS", default_value_t = 5_000)]
    pub customers: usize,
    /// Number of payment terminals
    #[arg(long, env = "MODELWATCH_SIM_TERMINALS", default_value_t = 10_000)]
    pub terminals: usize,
    /// Number of simulated days, starting 2026-01-01 (UTC)
    #[arg(long, env = "MODELWATCH_SIM_DAYS", default_value_t = 120)]
    pub days: u32,
    /// The last this many days are marked `holdout` in the `split` column, the rest `train`
    #[arg(long, env = "MODELWATCH_SIM_HOLDOUT_DAYS", default_value_t = 14)]
    pub holdout_days: u32,
    /// Output CSV file, or `-` for standard output
    #[arg(long, env = "MODELWATCH_SIM_OUT")]
    pub out: PathBuf,
}

impl SimulateArgs {
    /// The simulator configuration these options describe.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            customers: self.customers,
            terminals: self.terminals,
            days: self.days,
            ..SimConfig::default()
        }
    }
}

/// The CSV header: id columns, timestamp, the features in order, label and split.
pub fn csv_header() -> Vec<&'static str> {
    let mut header = vec!["tx_id", "customer_id", "terminal_id", "timestamp"];
    header.extend(FEATURES.iter().map(|f| f.name));
    header.extend(["is_fraud", "split"]);
    header
}

/// Runs the simulation and writes the CSV, with progress and a summary on stderr.
pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    if args.holdout_days >= args.days {
        bail!(
            "--holdout-days ({}) must be smaller than --days ({})",
            args.holdout_days,
            args.days
        );
    }
    let started = Instant::now();
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner.set_message("simulating transactions");
    let sim = Simulator::new(args.config())?;
    let history = sim.generate();
    spinner.set_message("computing features");
    let rows = FeatureBuilder::new(&history).rows();
    spinner.finish_and_clear();

    let holdout_from = history.end_timestamp() - i64::from(args.holdout_days) * DAY_SECS;
    let to_stdout = args.out.as_os_str() == "-";
    let sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        let file = std::fs::File::create(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        Box::new(file)
    };
    let mut writer = csv::WriterBuilder::new()
        .buffer_capacity(1 << 20)
        .from_writer(sink);
    writer.write_record(csv_header())?;

    let bar = ProgressBar::with_draw_target(
        Some(history.transactions.len() as u64),
        ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        ProgressStyle::with_template("writing {bar:40} {human_pos}/{human_len} rows ({eta})")
            .context("progress template")?,
    );
    let mut field = String::new();
    let (mut holdout_rows, mut holdout_frauds) = (0usize, 0usize);
    for (i, (tx, row)) in history.transactions.iter().zip(&rows).enumerate() {
        let mut put = |writer: &mut csv::Writer<_>, value: std::fmt::Arguments<'_>| {
            field.clear();
            field
                .write_fmt(value)
                .expect("formatting into a String cannot fail");
            writer.write_field(&field)
        };
        put(&mut writer, format_args!("{}", tx.tx_id))?;
        put(&mut writer, format_args!("{}", tx.customer_id))?;
        put(&mut writer, format_args!("{}", tx.terminal_id))?;
        put(&mut writer, format_args!("{}", tx.timestamp))?;
        for v in row {
            put(&mut writer, format_args!("{v}"))?;
        }
        put(&mut writer, format_args!("{}", u8::from(tx.is_fraud)))?;
        let holdout = tx.timestamp >= holdout_from;
        writer.write_field(if holdout { "holdout" } else { "train" })?;
        writer.write_record(None::<&[u8]>)?;
        if holdout {
            holdout_rows += 1;
            holdout_frauds += usize::from(tx.is_fraud);
        }
        if i % 65_536 == 0 {
            bar.set_position(i as u64);
        }
    }
    writer.flush()?;
    bar.finish_and_clear();

    let total = history.transactions.len();
    let frauds = history.fraud_count();
    let counts = history.scenario_counts();
    let pct = |n: usize, d: usize| 100.0 * n as f64 / d.max(1) as f64;
    let train_rows = total - holdout_rows;
    eprintln!(
        "simulate: {total} rows ({train_rows} train, {holdout_rows} holdout), \
         {frauds} fraud ({:.3}%; train {:.3}%, holdout {:.3}%) in {:.1}s",
        pct(frauds, total),
        pct(frauds - holdout_frauds, train_rows),
        pct(holdout_frauds, holdout_rows),
        started.elapsed().as_secs_f64(),
    );
    eprintln!(
        "simulate: by pattern: {} {}, {} {}, {} {}; written to {}",
        FraudScenario::HighAmount.name(),
        counts[1],
        FraudScenario::CompromisedTerminal.name(),
        counts[2],
        FraudScenario::CompromisedCustomer.name(),
        counts[3],
        if to_stdout {
            "standard output".to_owned()
        } else {
            args.out.display().to_string()
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(out: PathBuf) -> SimulateArgs {
        SimulateArgs {
            seed: 8,
            customers: 150,
            terminals: 300,
            days: 40,
            holdout_days: 7,
            out,
        }
    }

    #[test]
    fn csv_header_lists_the_features_in_order() {
        let header = csv_header();
        let names: Vec<_> = FEATURES.iter().map(|f| f.name).collect();
        assert_eq!(&header[4..4 + names.len()], names.as_slice());
        assert_eq!(header.len(), names.len() + 6);
    }

    #[test]
    fn run_writes_a_reproducible_csv() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        run(&args(a.clone()))?;
        run(&args(b.clone()))?;
        let text = std::fs::read_to_string(&a)?;
        assert_eq!(text, std::fs::read_to_string(&b)?);

        let mut reader = csv::Reader::from_path(&a)?;
        let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
        assert_eq!(header, csv_header());
        let (mut train, mut holdout, mut last_ts) = (0, 0, i64::MIN);
        let holdout_from = crate::DEFAULT_START_UNIX + 33 * DAY_SECS;
        for record in reader.records() {
            let record = record?;
            assert_eq!(record.len(), header.len());
            let ts: i64 = record[3].parse()?;
            assert!(ts >= last_ts);
            last_ts = ts;
            match &record[header.len() - 1] {
                "train" => {
                    train += 1;
                    assert!(ts < holdout_from);
                }
                "holdout" => {
                    holdout += 1;
                    assert!(ts >= holdout_from);
                }
                other => panic!("bad split {other}"),
            }
            for v in record.iter().skip(4).take(FEATURES.len()) {
                let _: f32 = v.parse()?;
            }
        }
        assert!(train > 0 && holdout > 0);
        Ok(())
    }

    #[test]
    fn holdout_must_be_shorter_than_the_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = args(dir.path().join("x.csv"));
        a.holdout_days = 40;
        assert!(run(&a).is_err());
    }
}
