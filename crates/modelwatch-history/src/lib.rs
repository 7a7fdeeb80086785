//! A year (or any number of days) of modelwatch's own metrics, synthesized, in the
//! import formats of long-term stores. See [`synthesize`] for details.
//!
//! The series are the ones `modelwatch serve` exposes for the bundled fraud model,
//! recorded through the same library calls (`modelwatch::Metrics` and
//! `modelwatch::DriftMetrics` on a manual clock) and encoded by the same exposition
//! code, so names, labels, bins and buckets cannot differ from a live server's. The
//! traffic is the simulator's (population, fraud patterns, time of day); each sampled
//! transaction is featurised from the simulator's feature snapshot and scored by the
//! bundled model. On top of that this crate adds what a year has and a test run has
//! not: weekly and yearly seasonality and two past incidents (see [`Incident`]).
//!
//! A sampled transaction stands for [`HistoryConfig::weight`] real ones: every counter
//! and histogram value is multiplied by it, so the volume is that of production
//! (`daily_predictions`) while only `samples_per_day` transactions are scored.
//!
//! ```no_run
//! use modelwatch_history::{HistoryConfig, synthesize};
//!
//! let config = HistoryConfig { days: 14, ..HistoryConfig::default() };
//! let history = synthesize(&config, |_| {})?;
//! let mut out = Vec::new();
//! modelwatch_history::format::write(&history, modelwatch_history::Format::VmJsonl, &mut out)?;
//! assert!(!out.is_empty());
//! # Ok::<(), anyhow::Error>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cli;
pub mod format;
pub mod season;

pub use format::Format;
pub use season::{INCIDENTS, Incident};

use anyhow::Context as _;
use modelwatch::schema::{self, Kind, MetricDef};
use modelwatch::{
    Buckets, CacheOperation, Decision, DriftConfig, DriftMetrics, ManualClock, Metrics,
    MetricsConfig, ModelSpec, Stage, Status, StoreErrorKind,
};
use modelwatch_sim::{DAY_SECS, FEATURES, FeatureBuilder, Simulator};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::sync::Arc;

/// The families a history holds. The per-replica sliding-window gauges
/// (`model_score_psi`, `model_approval_ratio`, ...), in-flight requests, batch sizes,
/// feature ages and process metrics are left out: they describe one process at one
/// moment, no rule compares them across weeks, and a live server supplies them.
pub const FAMILIES: &[MetricDef] = &[
    schema::REQUESTS_TOTAL,
    schema::REQUEST_DURATION_SECONDS,
    schema::STAGE_DURATION_SECONDS,
    schema::PREDICTION_SCORE,
    schema::FEATURE_CACHE_OPERATIONS_TOTAL,
    schema::FEATURE_STORE_ERRORS_TOTAL,
    schema::SCORE_BIN_TOTAL,
    schema::REFERENCE_SCORE_RATIO,
    schema::FEATURE_BIN_TOTAL,
    schema::REFERENCE_FEATURE_RATIO,
    schema::FEATURE_MISSING_TOTAL,
    schema::FEATURE_OUT_OF_RANGE_TOTAL,
    schema::INFO,
];

/// Most values (series times samples) one history may hold in memory.
pub const MAX_VALUES: usize = 150_000_000;

/// What to synthesize.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryConfig {
    /// Days of history, ending at [`HistoryConfig::end`].
    pub days: u32,
    /// Seconds between two samples of a series (divides a day).
    pub step_seconds: i64,
    /// Unix seconds of the last sample; rounded down to a whole step.
    pub end: i64,
    /// Transactions scored per day (before seasonality).
    pub samples_per_day: u32,
    /// Predictions a day in production: sets [`HistoryConfig::weight`].
    pub daily_predictions: u64,
    /// Seed of the history's own random draws (thinning, latencies, errors).
    pub seed: u64,
    /// The simulated population, as `modelwatch serve` seeds it.
    pub population: modelwatch_sim::SimConfig,
    /// The `job` label of every series (the mixin's rules select `job="modelwatch"`).
    pub job: String,
    /// The `instance` label of every series.
    pub instance: String,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            days: 365,
            step_seconds: 1800,
            end: 0,
            samples_per_day: 2_000,
            daily_predictions: 800_000,
            seed: 17,
            population: modelwatch_sim::population::PopulationArgs::default().config(),
            job: "modelwatch".into(),
            instance: "history:0".into(),
        }
    }
}

impl HistoryConfig {
    /// Real predictions each sampled transaction stands for (at least 1).
    pub fn weight(&self) -> u64 {
        (self.daily_predictions / u64::from(self.samples_per_day.max(1))).max(1)
    }

    /// The last sample's time: [`HistoryConfig::end`] rounded down to a step.
    pub fn aligned_end(&self) -> i64 {
        self.end - self.end.rem_euclid(self.step_seconds.max(1))
    }

    /// The first sample's time.
    pub fn start(&self) -> i64 {
        self.aligned_end() - i64::from(self.days) * DAY_SECS
    }

    /// Samples per series.
    pub fn samples(&self) -> usize {
        (i64::from(self.days) * DAY_SECS / self.step_seconds.max(1)) as usize + 1
    }

    fn validate(&self) -> Result<(), HistoryError> {
        let bad = |m: String| Err(HistoryError::InvalidConfig(m));
        if self.days == 0 {
            return bad("--days must be at least 1".into());
        }
        if self.step_seconds <= 0 || DAY_SECS % self.step_seconds != 0 {
            return bad(format!(
                "a step of {} s does not divide a day\nhint: use a step such as 15s, 1m, 5m or 1h",
                self.step_seconds
            ));
        }
        if self.samples_per_day == 0 {
            return bad("--samples-per-day must be at least 1".into());
        }
        if self.end <= i64::from(self.days) * DAY_SECS {
            return bad(format!(
                "the history would start before 1970 (end {}, {} days)",
                self.end, self.days
            ));
        }
        Ok(())
    }
}

/// Why a history could not be synthesized.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A setting is out of range.
    #[error("{0}")]
    InvalidConfig(String),
}

/// One series of a history: its labels and one value per sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The family it belongs to.
    pub family: &'static MetricDef,
    /// The series name (`_bucket`, `_sum` or `_count` for histograms).
    pub name: String,
    /// Label pairs sorted by name, then `job` and `instance`.
    pub labels: Vec<(String, String)>,
    /// One value per [`History::timestamps`] entry.
    pub values: Vec<f64>,
}

impl Series {
    /// The value of label `name`, if the series has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A synthesized history: series on a common grid of timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The settings it was made with.
    pub config: HistoryConfig,
    /// Unix seconds of each sample, `start` to `end` every `step_seconds`.
    pub timestamps: Vec<i64>,
    /// Every series, in exposition order.
    pub series: Vec<Series>,
    /// The decision threshold of the model (approval is `score < threshold`).
    pub threshold: f64,
    /// Transactions scored, over the whole history.
    pub scored: u64,
}

impl History {
    /// The series of `family` (every one of its series names) whose labels include
    /// every pair of `matching`.
    pub fn select<'a>(
        &'a self,
        name: &'a str,
        matching: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Series> + 'a {
        self.series
            .iter()
            .filter(move |s| s.name == name && matching.iter().all(|(k, v)| s.label(k) == Some(*v)))
    }

    /// The index of the sample at `unix` seconds, if it is on the grid.
    pub fn index_of(&self, unix: i64) -> Option<usize> {
        let start = *self.timestamps.first()?;
        let step = self.config.step_seconds;
        if unix < start || (unix - start) % step != 0 {
            return None;
        }
        let i = ((unix - start) / step) as usize;
        (i < self.timestamps.len()).then_some(i)
    }

    /// The summed increase of the matching series from sample `from` to sample `to`.
    pub fn increase(&self, name: &str, matching: &[(&str, &str)], from: usize, to: usize) -> f64 {
        self.select(name, matching)
            .map(|s| s.values[to] - s.values[from])
            .sum()
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
}

/// Lognormal latency in seconds with the given median and shape.
fn lognormal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    // Box-Muller from two uniforms in (0, 1].
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median * (sigma * z).exp()
}

/// Median seconds and shape of each stage's latency: what the bundled model measures
/// here under steady load (a few ms end to end).
const STAGE_LATENCY: [(Stage, f64, f64); 4] = [
    (Stage::Queue, 0.0012, 0.5),
    (Stage::FeatureFetch, 0.0006, 0.8),
    (Stage::Inference, 0.00008, 0.3),
    (Stage::Postprocess, 0.00001, 0.3),
];

/// What the registry holds at one moment, plus the request-duration histogram (the
/// library measures that one from a real clock, so the history keeps it itself).
struct Recorder {
    registry: modelwatch::prometheus_client::registry::Registry,
    /// Each exposition series (the line up to its value) seen so far: its index in
    /// `series`, or `None` for a series the history leaves out.
    index: HashMap<String, Option<usize>>,
    series: Vec<Series>,
    request_buckets: Vec<u64>,
    request_sum: f64,
    request_count: u64,
    spec: ModelSpec,
    /// Snapshots taken so far.
    taken: usize,
}

impl Recorder {
    /// Appends the current value of every kept series, scaled by `weight` for counters
    /// and histograms.
    fn snapshot(&mut self, config: &HistoryConfig, weight: f64) -> anyhow::Result<()> {
        let mut text = String::new();
        modelwatch::Format::PrometheusText
            .encode(&self.registry, &mut text)
            .context("cannot encode the registry")?;
        let name = schema::REQUEST_DURATION_SECONDS.name;
        // The registry's copy is never observed (see above); ours replaces it.
        let mut lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty() && !l.starts_with(name))
            .collect();
        let labels = format!(
            "{}=\"{}\",{}=\"{}\"",
            schema::label::MODEL,
            format::escape(&self.spec.name),
            schema::label::VERSION,
            format::escape(&self.spec.version)
        );
        let mut ours = Vec::new();
        let mut cumulative = 0;
        let bounds = modelwatch::buckets::LATENCY_SECONDS;
        for (i, count) in self.request_buckets.iter().enumerate() {
            cumulative += count;
            let le = bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            ours.push(format!(
                "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            ));
        }
        ours.push(format!("{name}_sum{{{labels}}} {}", self.request_sum));
        ours.push(format!("{name}_count{{{labels}}} {}", self.request_count));
        lines.extend(ours.iter().map(String::as_str));

        for line in lines {
            let (head, value) = line
                .rsplit_once(' ')
                .with_context(|| format!("internal error: no value in {line:?}"))?;
            let index = match self.index.get(head) {
                Some(index) => *index,
                None => self.add_series(line, head, config)?,
            };
            let Some(index) = index else {
                continue;
            };
            let value: f64 = value
                .parse()
                .with_context(|| format!("internal error: bad value in {line:?}"))?;
            let series = &mut self.series[index];
            let scaled = match series.family.kind {
                Kind::Counter | Kind::Histogram => value * weight,
                Kind::Gauge | Kind::Info => value,
            };
            if series.values.is_empty() && self.taken > 0 {
                // A series that appears late (its first observation) was 0 before:
                // counters and buckets start at 0, gauges are padded with their value.
                let before = match series.family.kind {
                    Kind::Counter | Kind::Histogram => 0.0,
                    Kind::Gauge | Kind::Info => scaled,
                };
                series.values.resize(self.taken, before);
            }
            series.values.push(scaled);
        }
        self.taken += 1;
        Ok(())
    }

    /// Records a series seen for the first time (its labels read by the status
    /// command's exposition parser): its index, or `None` when the history leaves its
    /// family out.
    fn add_series(
        &mut self,
        line: &str,
        head: &str,
        config: &HistoryConfig,
    ) -> anyhow::Result<Option<usize>> {
        let sample = modelwatch_status::scrape::parse(line)
            .pop()
            .with_context(|| format!("internal error: cannot parse {line:?}"))?;
        let kept = schema::find(&sample.name).filter(|family| {
            FAMILIES.contains(family)
                && !(family.kind == Kind::Histogram && sample.name == family.name)
        });
        let index = kept.map(|family| {
            let mut labels: Vec<(String, String)> = sample.labels.into_iter().collect();
            labels.push(("job".into(), config.job.clone()));
            labels.push(("instance".into(), config.instance.clone()));
            self.series.push(Series {
                family,
                name: sample.name,
                labels,
                values: Vec::with_capacity(config.samples()),
            });
            self.series.len() - 1
        });
        self.index.insert(head.to_string(), index);
        Ok(index)
    }
}

/// Synthesizes a history. `progress` is called with the fraction done (0 to 1) after
/// each day.
///
/// # Errors
/// [`HistoryError::InvalidConfig`] for settings out of range, or when the bundled model
/// or the simulator cannot be loaded.
pub fn synthesize(
    config: &HistoryConfig,
    mut progress: impl FnMut(f64),
) -> anyhow::Result<History> {
    config.validate()?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let loaded = modelwatch_server::load::load_model(None, dir.path())?;
    let model = loaded
        .model
        .clone()
        .context("the bundled model has an ONNX graph")?;
    let card = &loaded.card;
    let threshold = card
        .threshold()
        .context("the bundled model is not a binary classifier: a history needs a threshold")?;
    let order: Vec<usize> = card
        .features
        .iter()
        .map(|f| {
            FEATURES
                .iter()
                .position(|d| d.name == f.name)
                .with_context(|| format!("the simulator cannot compute feature {:?}", f.name))
        })
        .collect::<anyhow::Result<_>>()?;

    let simulator = Simulator::new(config.population.clone())?;
    let population = simulator.generate();
    let snapshot = FeatureBuilder::new(&population).snapshot(population.end_timestamp());

    let start = config.start();
    let end = config.aligned_end();
    let clock = Arc::new(ManualClock::new(start));
    let mut registry = modelwatch::prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(
        &mut registry,
        &MetricsConfig {
            buckets: Buckets::default().with_score_threshold(threshold),
            ..MetricsConfig::default()
        },
    )?;
    let spec = ModelSpec {
        name: card.name.clone(),
        version: card.version.clone(),
        framework: card.framework.clone(),
        training_date: card.training_date.clone(),
        architecture: card.architecture.clone(),
        decisions: modelwatch_server::features::decision_names(card)?,
    };
    let handle = metrics.model(&spec);
    let drift_metrics =
        DriftMetrics::register_with_clock(&mut registry, &DriftConfig::default(), clock.clone())?;
    let drift = drift_metrics.model(&handle, &loaded.reference)?;

    let samples = config.samples();
    let mut recorder = Recorder {
        registry,
        index: HashMap::new(),
        series: Vec::new(),
        request_buckets: vec![0; modelwatch::buckets::LATENCY_SECONDS.len() + 1],
        request_sum: 0.0,
        request_count: 0,
        spec,
        taken: 0,
    };
    let weight = config.weight() as f64;
    recorder.snapshot(config, weight)?;
    let values = recorder.series.len() * samples;
    if values > MAX_VALUES {
        return Err(HistoryError::InvalidConfig(format!(
            "{} series times {samples} samples is {values} values, more than {MAX_VALUES} fit in memory\nhint: raise --step or lower --days",
            recorder.series.len()
        ))
        .into());
    }

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let rate = f64::from(config.samples_per_day) * season::VOLUME_MAX / DAY_SECS as f64;
    let mut traffic = simulator
        .traffic(&population, start)
        .with_rate(rate)
        .with_stream(config.seed);
    let mut timestamps = vec![start];
    let mut next_sample = start + config.step_seconds;
    let mut pending = None;
    let mut row = vec![0f32; card.features.len()];
    let mut scored = 0u64;
    let days = i64::from(config.days);
    for day in 0..days {
        let day_start = start + day * DAY_SECS;
        let day_end = day_start + DAY_SECS;
        let knobs = season::knobs_for_day(day_start, end);
        traffic.set_knobs(knobs);
        let mut txs = Vec::new();
        if let Some(tx) = pending.take() {
            txs.push(tx);
        }
        loop {
            let tx = traffic.next().context("the traffic generator ended")?;
            if tx.timestamp >= day_end {
                pending = Some(tx);
                break;
            }
            if tx.timestamp >= day_start {
                txs.push(tx);
            }
        }
        txs.sort_by_key(|t| t.timestamp);
        let error_rate = season::error_rate_for_day(day_start, end);
        for tx in txs {
            while tx.timestamp >= next_sample && next_sample <= end {
                clock.set(next_sample);
                recorder.snapshot(config, weight)?;
                timestamps.push(next_sample);
                next_sample += config.step_seconds;
            }
            if !rng.random_bool((season::volume(tx.timestamp) / season::VOLUME_MAX).min(1.0)) {
                continue;
            }
            clock.set(tx.timestamp);
            if rng.random_bool(error_rate) {
                handle.store_error(StoreErrorKind::Unavailable);
                handle.count_request(Status::Error, Decision::None);
                continue;
            }
            let Some(features) =
                snapshot.row(tx.customer_id, tx.terminal_id, tx.amount, tx.timestamp)
            else {
                continue;
            };
            for (slot, &i) in row.iter_mut().zip(&order) {
                *slot = features[i];
            }
            let score = f64::from(model.predict_one(&row)?);
            let decision = Decision::for_score(score, threshold);
            let approved = decision == Decision::Below;
            handle.cache(if rng.random_bool(0.93) {
                CacheOperation::Hit
            } else {
                CacheOperation::Miss
            });
            let mut total = 0.0;
            for (stage, median, sigma) in STAGE_LATENCY {
                let seconds = lognormal(&mut rng, median, sigma);
                handle.observe_stage(stage, seconds);
                total += seconds;
            }
            let bounds = modelwatch::buckets::LATENCY_SECONDS;
            recorder.request_buckets[bounds.partition_point(|b| *b < total)] += 1;
            recorder.request_sum += total;
            recorder.request_count += 1;
            handle.observe_score(score);
            handle.count_request(Status::Success, decision);
            drift.record_prediction(tx.timestamp, score, approved, &row, &[]);
            scored += 1;
        }
        while next_sample <= day_end.min(end) {
            clock.set(next_sample);
            recorder.snapshot(config, weight)?;
            timestamps.push(next_sample);
            next_sample += config.step_seconds;
        }
        progress((day + 1) as f64 / days as f64);
    }
    let series = std::mem::take(&mut recorder.series);
    anyhow::ensure!(
        series.iter().all(|s| s.values.len() == timestamps.len()),
        "internal error: a series gained or lost samples"
    );
    Ok(History {
        config: config.clone(),
        timestamps,
        series,
        threshold,
        scored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_that_does_not_divide_a_day_is_refused_with_a_hint() {
        let config = HistoryConfig {
            step_seconds: 7,
            end: 1_800_000_000,
            ..HistoryConfig::default()
        };
        let err = config.validate().expect_err("refused").to_string();
        assert!(err.contains("hint:"), "{err}");
    }

    #[test]
    fn counters_never_decrease_and_count_every_scored_transaction() {
        let config = HistoryConfig {
            days: 3,
            samples_per_day: 200,
            end: 1_796_256_000, // 2026-12-03T00:00:00Z
            ..HistoryConfig::default()
        };
        let history = synthesize(&config, |_| {}).expect("synthesizes");
        assert_eq!(history.timestamps.len(), config.samples());
        assert!(history.scored > 0);
        for s in &history.series {
            assert_eq!(s.values.len(), history.timestamps.len(), "{}", s.name);
            if matches!(s.family.kind, Kind::Counter | Kind::Histogram) {
                assert!(
                    s.values.windows(2).all(|w| w[0] <= w[1]),
                    "{} {:?} decreases",
                    s.name,
                    s.labels
                );
            }
        }
        let last = history.timestamps.len() - 1;
        let counted = history.scored as f64 * config.weight() as f64;
        let requests = history.increase(
            schema::REQUESTS_TOTAL.name,
            &[(schema::label::STATUS, "success")],
            0,
            last,
        );
        assert_eq!(requests, counted);
        let binned = history.increase(schema::SCORE_BIN_TOTAL.name, &[], 0, last);
        assert_eq!(binned, counted);
    }
}
