//! Module implementing the drift, data quality and freshness families. See
//! [`DriftMetrics`] and [`DriftHandle`] for details.
//!
//! # What is exported
//!
//! For each model, from its [`ModelReference`]:
//! - counters `model_score_bin_total{model,version,bin}` and
//!   `model_feature_bin_total{model,feature,bin}` on the reference bins, summable
//!   across replicas, and the reference itself as gauges
//!   `model_reference_score_ratio` and `model_reference_feature_ratio`;
//! - counters `model_feature_missing_total` (NaN or absent values) and
//!   `model_feature_out_of_range_total` (outside the reference `[min, max]`; such a
//!   value is still counted in its outer bin);
//! - at scrape time, from a sliding window of this replica's predictions:
//!   `model_score_psi{window}`, `model_feature_psi{window}`,
//!   `model_approval_ratio{window}` and `model_feature_age_seconds`.
//!
//! Every counter and reference series is created at 0 when the model is declared,
//! so one replica exports exactly `2·S + F·(2·B + 2)` of them for a score with S bins
//! and F features of B bins, plus at most `F + 2 + G` window gauges with G feature
//! groups.
//!
//! # Empty windows
//!
//! A window gauge is computed only from data: with no prediction in the window,
//! `model_score_psi` and `model_approval_ratio` are absent (not NaN, not 0), and so
//! is `model_feature_psi` for a feature whose values were all missing. Alerts then
//! see "no data" rather than a false "no drift".
//!
//! # Feature age
//!
//! Each prediction passes the event timestamp of the values it used from each
//! feature group. The age of that group for that prediction is `now − timestamp`
//! (0 if the timestamp is in the future). `model_feature_age_seconds{feature_group}`
//! is the largest such age over the predictions of the freshness window (the last
//! [`DriftConfig::freshness_window`], 5 minutes by default, a whole number of slots):
//! "the oldest feature value a recent prediction used, as old as it was when used".
//! It is measured at prediction time, not at scrape time, so a healthy group does not
//! age between predictions, and it is absent when no prediction in the freshness
//! window used the group.
//!
//! # One window per model
//!
//! The window gauges are keyed by model (and version for the score), so the latest
//! [`DriftMetrics::model`] call for a model name takes over its window gauges; handles
//! from earlier calls keep counting in the counters. Dropping every clone of a handle
//! removes its window gauges; counters stay, as counters must. Record through one
//! handle per model at a time: while an old and a new handle both record, the new
//! handle's window sees the shared bin counters but only its own approvals.

use crate::drift::{
    DriftError, FeatureReference, ModelReference, ReferenceBins, bin_index, fractions, psi,
};
use crate::metrics::ModelHandle;
use crate::schema::label::{FEATURE, FEATURE_GROUP, MODEL, VERSION, WINDOW};
use crate::schema::{self, MetricDef};
use crate::window::{Clock, MAX_SLOTS, NO_AGE, SlidingWindow, SystemClock};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The event timestamp to pass for a feature group that a prediction did not use.
pub const NOT_USED: i64 = i64::MAX;

/// Settings for [`DriftMetrics`]: the sliding window and the cardinality limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftConfig {
    /// Length of the sliding window behind the per-replica gauges (the `window`
    /// label). A whole number of seconds and of slots.
    pub window: Duration,
    /// Slots the window is cut into (1 to 65,536); the window moves one slot at a time.
    pub slots: usize,
    /// How far back `model_feature_age_seconds` looks: a whole number of slots, at
    /// most the window.
    pub freshness_window: Duration,
    /// Features a model reference may declare.
    pub max_features: usize,
    /// Feature groups a model reference may declare.
    pub max_feature_groups: usize,
    /// Bins a score or feature reference may have.
    pub max_bins: usize,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(3600),
            slots: 60,
            freshness_window: Duration::from_secs(300),
            max_features: 64,
            max_feature_groups: 16,
            max_bins: 20,
        }
    }
}

impl DriftConfig {
    /// Width of one slot in seconds, after checking the window settings.
    fn slot_seconds(&self) -> Result<i64, DriftError> {
        let invalid = |reason: String| Err(DriftError::InvalidWindow(reason));
        let window = self.window.as_secs();
        if self.window.subsec_nanos() != 0 || window == 0 {
            return invalid(format!(
                "{:?} is not a whole, positive number of seconds",
                self.window
            ));
        }
        if !(1..=MAX_SLOTS).contains(&self.slots) || window % self.slots as u64 != 0 {
            return invalid(format!(
                "{window} s cannot be cut into {} whole-second slots",
                self.slots
            ));
        }
        let width = window / self.slots as u64;
        let fresh = self.freshness_window.as_secs();
        if self.freshness_window.subsec_nanos() != 0
            || fresh == 0
            || fresh % width != 0
            || fresh > window
        {
            return invalid(format!(
                "the freshness window {:?} must be a whole number of {width} s slots within the window",
                self.freshness_window
            ));
        }
        i64::try_from(width).or_else(|_| invalid("the window is too long".into()))
    }

    /// The `window` label value: `1h`, `5m` or `90s`.
    pub fn window_label(&self) -> String {
        let s = self.window.as_secs();
        match s {
            s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
            s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScoreBinLabels {
    model: String,
    version: String,
    bin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeatureBinLabels {
    model: String,
    feature: String,
    bin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeatureLabels {
    model: String,
    feature: String,
}

type RatioGauge = Gauge<f64, AtomicU64>;

/// The registered drift families, shared by every model. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct DriftMetrics {
    score_bins: Family<ScoreBinLabels, Counter>,
    reference_score: Family<ScoreBinLabels, RatioGauge>,
    feature_bins: Family<FeatureBinLabels, Counter>,
    reference_feature: Family<FeatureBinLabels, RatioGauge>,
    missing: Family<FeatureLabels, Counter>,
    out_of_range: Family<FeatureLabels, Counter>,
    models: Arc<Mutex<Vec<Weak<DriftInner>>>>,
    clock: Arc<dyn Clock>,
    config: DriftConfig,
    slot_seconds: i64,
}

fn register<M: prometheus_client::registry::Metric>(
    registry: &mut Registry,
    def: &MetricDef,
    metric: M,
) {
    registry.register(def.registration_name(), def.registration_help(), metric);
}

impl DriftMetrics {
    /// Creates the drift families and their scrape-time collector on `registry`, with
    /// the system clock.
    pub fn register(registry: &mut Registry, config: &DriftConfig) -> Result<Self, DriftError> {
        Self::register_with_clock(registry, config, Arc::new(SystemClock))
    }

    /// Like [`DriftMetrics::register`], reading time from `clock` (a
    /// [`crate::ManualClock`] in tests).
    pub fn register_with_clock(
        registry: &mut Registry,
        config: &DriftConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, DriftError> {
        let slot_seconds = config.slot_seconds()?;
        let metrics = Self {
            score_bins: Family::default(),
            reference_score: Family::default(),
            feature_bins: Family::default(),
            reference_feature: Family::default(),
            missing: Family::default(),
            out_of_range: Family::default(),
            models: Arc::default(),
            clock,
            config: config.clone(),
            slot_seconds,
        };
        register(
            registry,
            &schema::SCORE_BIN_TOTAL,
            metrics.score_bins.clone(),
        );
        register(
            registry,
            &schema::REFERENCE_SCORE_RATIO,
            metrics.reference_score.clone(),
        );
        register(
            registry,
            &schema::FEATURE_BIN_TOTAL,
            metrics.feature_bins.clone(),
        );
        register(
            registry,
            &schema::REFERENCE_FEATURE_RATIO,
            metrics.reference_feature.clone(),
        );
        register(
            registry,
            &schema::FEATURE_MISSING_TOTAL,
            metrics.missing.clone(),
        );
        register(
            registry,
            &schema::FEATURE_OUT_OF_RANGE_TOTAL,
            metrics.out_of_range.clone(),
        );
        registry.register_collector(Box::new(WindowCollector {
            models: metrics.models.clone(),
            clock: metrics.clock.clone(),
            window: config.window_label(),
            freshness_slots: (config.freshness_window.as_secs() / slot_seconds.unsigned_abs())
                as usize,
        }));
        Ok(metrics)
    }

    /// Declares a model's reference: checks it against the limits, sets the reference
    /// gauges, creates every counter series at 0 and returns the handle the hot path
    /// records through. The `model` and `version` labels are those of `model` (after
    /// its cardinality guard).
    ///
    /// Call it once per model load; see the module docs for what a second call for the
    /// same model does.
    pub fn model(
        &self,
        model: &ModelHandle,
        reference: &ModelReference,
    ) -> Result<DriftHandle, DriftError> {
        let c = &self.config;
        reference.validate(c.max_features, c.max_feature_groups, c.max_bins)?;
        let name = model.model().to_string();
        let version = model.version().to_string();

        let score_labels = reference.score.bin_labels();
        let score_counters = score_labels
            .iter()
            .zip(&reference.score.ratios)
            .map(|(bin, ratio)| {
                let labels = ScoreBinLabels {
                    model: name.clone(),
                    version: version.clone(),
                    bin: bin.clone(),
                };
                self.reference_score.get_or_create(&labels).set(*ratio);
                self.score_bins.get_or_create_owned(&labels)
            })
            .collect();

        let mut features = Vec::with_capacity(reference.features.len());
        let mut bin_counters = Vec::new();
        let (mut missing, mut out_of_range) = (Vec::new(), Vec::new());
        for f in &reference.features {
            features.push(BinnedFeature {
                edges: f.bins.edges.clone().into(),
                min: f.bins.min,
                max: f.bins.max,
                first_bin: bin_counters.len(),
            });
            for (bin, ratio) in f.bins.bin_labels().into_iter().zip(&f.bins.ratios) {
                let labels = FeatureBinLabels {
                    model: name.clone(),
                    feature: f.name.clone(),
                    bin,
                };
                self.reference_feature.get_or_create(&labels).set(*ratio);
                bin_counters.push(self.feature_bins.get_or_create_owned(&labels));
            }
            let labels = FeatureLabels {
                model: name.clone(),
                feature: f.name.clone(),
            };
            missing.push(self.missing.get_or_create_owned(&labels));
            out_of_range.push(self.out_of_range.get_or_create_owned(&labels));
        }

        let groups: Vec<String> = reference
            .feature_groups()
            .into_iter()
            .map(String::from)
            .collect();
        let score_bins = reference.score.bin_count();
        let window_counters = FIRST_SCORE_BIN + score_bins + bin_counters.len();
        let inner = Arc::new(DriftInner {
            model: name,
            version,
            score_edges: reference.score.edges.clone().into(),
            score_counters,
            features: features.into(),
            bin_counters: bin_counters.into(),
            missing: missing.into(),
            out_of_range: out_of_range.into(),
            first_feature_bin: FIRST_SCORE_BIN + score_bins,
            unscored: AtomicU64::new(0),
            approved: AtomicU64::new(0),
            window: SlidingWindow::new(self.slot_seconds, c.slots, window_counters, groups.len()),
            late: (0..window_counters).map(|_| AtomicU64::new(0)).collect(),
            groups: groups.into(),
            reference: reference.clone(),
            clock: self.clock.clone(),
        });
        let mut models = self.models.lock().unwrap_or_else(|p| p.into_inner());
        models.retain(|m| m.upgrade().is_some_and(|m| m.model != inner.model));
        models.push(Arc::downgrade(&inner));
        Ok(DriftHandle { inner })
    }
}

// A window snapshot row holds, in order: predictions without a score, approvals, the
// score bins, then every feature's bins as laid out in `bin_counters`. Predictions are
// the unscored ones plus the score bins, which saves the hot path an atomic add.
/// Snapshot index of the count of predictions whose score was NaN.
const UNSCORED: usize = 0;
/// Snapshot index of the approval count.
const APPROVED: usize = 1;
/// Snapshot index of the first score bin.
const FIRST_SCORE_BIN: usize = 2;

#[derive(Debug)]
struct BinnedFeature {
    edges: Box<[f64]>,
    min: f64,
    max: f64,
    /// Index of this feature's first bin in `bin_counters`.
    first_bin: usize,
}

#[derive(Debug)]
struct DriftInner {
    model: String,
    version: String,
    score_edges: Box<[f64]>,
    score_counters: Box<[Counter]>,
    features: Box<[BinnedFeature]>,
    /// Every feature's bin counters, feature after feature.
    bin_counters: Box<[Counter]>,
    missing: Box<[Counter]>,
    out_of_range: Box<[Counter]>,
    /// Snapshot index of the first feature bin; then as in `bin_counters`.
    first_feature_bin: usize,
    /// Predictions recorded with a NaN score (not exported).
    unscored: AtomicU64,
    /// Approved predictions recorded (not exported).
    approved: AtomicU64,
    window: SlidingWindow,
    /// Per snapshot index, the part of the counters recorded by
    /// [`DriftHandle::record_late`]: subtracted from every window snapshot, so late
    /// predictions count in the counters and never in the window gauges.
    late: Box<[AtomicU64]>,
    groups: Box<[String]>,
    reference: ModelReference,
    clock: Arc<dyn Clock>,
}

/// One model's drift series, resolved: recording through it does no label lookup, no
/// lock and no allocation. Cloning shares the series.
#[derive(Debug, Clone)]
pub struct DriftHandle {
    inner: Arc<DriftInner>,
}

impl DriftHandle {
    /// The current time of the clock the window gauges are read with, in Unix seconds:
    /// pass it to [`DriftHandle::record_prediction`].
    pub fn now(&self) -> i64 {
        self.inner.clock.unix_seconds()
    }

    /// As [`DriftHandle::now`] when the wall clock reads `wall` (a time the caller
    /// has just read): the system clock reads no clock again; an injected clock
    /// answers its own time.
    pub fn now_of(&self, wall: std::time::SystemTime) -> i64 {
        self.inner.clock.unix_seconds_of(wall)
    }

    /// Feature groups in the order [`DriftHandle::record_prediction`] takes their
    /// timestamps: the order of first appearance in the reference.
    pub fn feature_groups(&self) -> &[String] {
        &self.inner.groups
    }

    /// Position of `group` in [`DriftHandle::feature_groups`].
    pub fn feature_group_index(&self, group: &str) -> Option<usize> {
        self.inner.groups.iter().position(|g| g == group)
    }

    /// The features, in the order [`DriftHandle::record_prediction`] takes their values.
    pub fn features(&self) -> &[FeatureReference] {
        &self.inner.reference.features
    }

    /// Records one prediction made at `now` (Unix seconds, see [`DriftHandle::now`]).
    ///
    /// - `score`: binned in the score counters and window; NaN is skipped.
    /// - `approved`: counted in the window's approval ratio.
    /// - `features`: one value per reference feature, in reference order. NaN, or a
    ///   value past the end of a shorter slice, counts as missing; extra values are
    ///   ignored. A value outside the reference `[min, max]` is counted out of range
    ///   and in its outer bin.
    /// - `feature_group_timestamps`: per feature group (see
    ///   [`DriftHandle::feature_groups`]), the event time in Unix seconds of the values
    ///   used, or [`NOT_USED`]; a shorter slice leaves the rest unused.
    pub fn record_prediction(
        &self,
        now: i64,
        score: f64,
        approved: bool,
        features: &[f32],
        feature_group_timestamps: &[i64],
    ) {
        let inner = &*self.inner;
        // Enter the window first: the first prediction of a slot snapshots the counters
        // before it counts itself.
        let slot = inner.window.enter(now, |row| inner.read_counters(row));
        inner.count(score, approved, features, false);
        if let Some(slot) = &slot {
            for (group, &timestamp) in feature_group_timestamps
                .iter()
                .take(inner.groups.len())
                .enumerate()
            {
                if timestamp != NOT_USED {
                    slot.raise(group, now.saturating_sub(timestamp).max(0));
                }
            }
        }
    }

    /// Records one prediction made before the drift window began (a late event from
    /// a collector): it counts in every counter (score and feature bins, missing and
    /// out of range), which is what the fleet's drift rules read, and is left out of
    /// this replica's window gauges (`model_score_psi`, `model_feature_psi`,
    /// `model_approval_ratio`, `model_feature_age_seconds`), which describe the
    /// window only.
    pub fn record_late(&self, score: f64, approved: bool, features: &[f32]) {
        self.inner.count(score, approved, features, true);
    }
}

/// Computes the window gauges of every live model at scrape time.
#[derive(Debug)]
struct WindowCollector {
    models: Arc<Mutex<Vec<Weak<DriftInner>>>>,
    clock: Arc<dyn Clock>,
    window: String,
    freshness_slots: usize,
}

/// The window gauges of one model at one instant.
#[derive(Debug, Default)]
struct WindowValues {
    score_psi: Option<f64>,
    approval_ratio: Option<f64>,
    feature_psi: Vec<Option<f64>>,
    ages: Vec<i64>,
}

impl DriftInner {
    /// Counts one prediction in the cumulative counters; a `late` one is also noted
    /// in `late`, which keeps it out of every window snapshot.
    fn count(&self, score: f64, approved: bool, features: &[f32], late: bool) {
        // Two copies of one body: the live path's has no test of `late` per bin.
        if late {
            self.count_as::<true>(score, approved, features);
        } else {
            self.count_as::<false>(score, approved, features);
        }
    }

    fn count_as<const LATE: bool>(&self, score: f64, approved: bool, features: &[f32]) {
        let note_late = |index: usize| {
            if LATE {
                self.late[index].fetch_add(1, Ordering::Relaxed);
            }
        };
        if approved {
            note_late(APPROVED);
            self.approved.fetch_add(1, Ordering::Relaxed);
        }
        if score.is_nan() {
            note_late(UNSCORED);
            self.unscored.fetch_add(1, Ordering::Relaxed);
        } else {
            let bin = bin_index(&self.score_edges, score);
            note_late(FIRST_SCORE_BIN + bin);
            self.score_counters[bin].inc();
        }
        for (i, feature) in self.features.iter().enumerate() {
            let value = features.get(i).copied().unwrap_or(f32::NAN);
            if value.is_nan() {
                self.missing[i].inc();
                continue;
            }
            let value = f64::from(value);
            if value < feature.min || value > feature.max {
                self.out_of_range[i].inc();
            }
            let bin = feature.first_bin + bin_index(&feature.edges, value);
            note_late(self.first_feature_bin + bin);
            self.bin_counters[bin].inc();
        }
    }

    /// Copies the cumulative counters into `row`, laid out as a window snapshot.
    fn read_counters(&self, row: &[AtomicU64]) {
        let counters = [&self.unscored, &self.approved]
            .into_iter()
            .map(|c| c.load(Ordering::Relaxed))
            .chain(self.score_counters.iter().map(Counter::get))
            .chain(self.bin_counters.iter().map(Counter::get));
        for ((r, c), late) in row.iter().zip(counters).zip(self.late.iter()) {
            r.store(
                c.saturating_sub(late.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
        }
    }

    /// Work proportional to slots + bins of the score and every feature.
    fn window_values(&self, now: i64, freshness_slots: usize) -> WindowValues {
        let width = FIRST_SCORE_BIN + self.score_counters.len() + self.bin_counters.len();
        let now_row: Vec<AtomicU64> = (0..width).map(|_| AtomicU64::new(0)).collect();
        self.read_counters(&now_row);
        let cumulative: Vec<u64> = now_row.into_iter().map(AtomicU64::into_inner).collect();
        let mut totals = vec![0u64; width];
        self.window.counts(now, &cumulative, &mut totals);
        let psi_of = |counts: &[u64], reference: &ReferenceBins| {
            let mut current = vec![0.0; counts.len()];
            (fractions(counts, &mut current) > 0).then(|| psi(&current, &reference.ratios))
        };
        let score_end = FIRST_SCORE_BIN + self.score_counters.len();
        let scores = &totals[FIRST_SCORE_BIN..score_end];
        let predictions = totals[UNSCORED] + scores.iter().sum::<u64>();
        let feature_psi = self
            .features
            .iter()
            .zip(&self.reference.features)
            .map(|(f, r)| {
                let start = self.first_feature_bin + f.first_bin;
                psi_of(&totals[start..start + r.bins.bin_count()], &r.bins)
            })
            .collect();
        let mut ages = vec![NO_AGE; self.groups.len()];
        self.window.max_ages(now, freshness_slots, &mut ages);
        WindowValues {
            score_psi: psi_of(scores, &self.reference.score),
            approval_ratio: (predictions > 0).then(|| totals[APPROVED] as f64 / predictions as f64),
            feature_psi,
            ages,
        }
    }
}

fn describe<'a>(
    encoder: &'a mut DescriptorEncoder<'_>,
    def: &'a MetricDef,
) -> Result<MetricEncoder<'a>, std::fmt::Error> {
    encoder.encode_descriptor(
        def.registration_name(),
        def.registration_help(),
        None,
        MetricType::Gauge,
    )
}

impl Collector for WindowCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = self.clock.unix_seconds();
        let models: Vec<Arc<DriftInner>> = {
            let mut models = self.models.lock().unwrap_or_else(|p| p.into_inner());
            models.retain(|m| m.strong_count() > 0);
            models.iter().filter_map(Weak::upgrade).collect()
        };
        let values: Vec<WindowValues> = models
            .iter()
            .map(|m| m.window_values(now, self.freshness_slots))
            .collect();
        let window = self.window.as_str();

        let mut family = describe(&mut encoder, &schema::SCORE_PSI)?;
        for (m, v) in models.iter().zip(&values) {
            if let Some(psi) = v.score_psi {
                let labels = [
                    (MODEL, m.model.as_str()),
                    (VERSION, &m.version),
                    (WINDOW, window),
                ];
                family.encode_family(&labels)?.encode_gauge(&psi)?;
            }
        }
        let mut family = describe(&mut encoder, &schema::FEATURE_PSI)?;
        for (m, v) in models.iter().zip(&values) {
            for (f, psi) in m.reference.features.iter().zip(&v.feature_psi) {
                if let Some(psi) = psi {
                    let labels = [
                        (MODEL, m.model.as_str()),
                        (FEATURE, &f.name),
                        (WINDOW, window),
                    ];
                    family.encode_family(&labels)?.encode_gauge(psi)?;
                }
            }
        }
        let mut family = describe(&mut encoder, &schema::APPROVAL_RATIO)?;
        for (m, v) in models.iter().zip(&values) {
            if let Some(ratio) = v.approval_ratio {
                let labels = [(MODEL, m.model.as_str()), (WINDOW, window)];
                family.encode_family(&labels)?.encode_gauge(&ratio)?;
            }
        }
        let mut family = describe(&mut encoder, &schema::FEATURE_AGE_SECONDS)?;
        for (m, v) in models.iter().zip(&values) {
            for (group, &age) in m.groups.iter().zip(&v.ages) {
                if age != NO_AGE {
                    let labels = [(MODEL, m.model.as_str()), (FEATURE_GROUP, group.as_str())];
                    family.encode_family(&labels)?.encode_gauge(&age)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::{fractions, psi};
    use crate::window::ManualClock;
    use crate::{Format, Metrics, MetricsConfig, ModelSpec};
    use modelwatch_testkit::exposition::Sample;

    const START: i64 = 1_800_000_000;

    /// The samples of a text exposition, by the workspace's one parser.
    fn parse(text: &str) -> Vec<Sample> {
        modelwatch_testkit::exposition::parse(text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
            .families
            .into_iter()
            .flat_map(|f| f.samples)
            .collect()
    }

    fn select<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
        samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match select(samples, name, labels).as_slice() {
            [] => None,
            [one] => Some(one.value),
            many => panic!("{name} {labels:?} matches {} series", many.len()),
        }
    }

    fn bins(min: f64, max: f64, count: usize) -> ReferenceBins {
        let step = (max - min) / count as f64;
        ReferenceBins {
            edges: (1..count).map(|i| min + step * i as f64).collect(),
            ratios: vec![1.0 / count as f64; count],
            min,
            max,
        }
    }

    /// A score with skewed reference ratios and `features` features of `bin_count`
    /// bins, spread over three groups.
    fn reference(features: usize, bin_count: usize) -> ModelReference {
        let mut score = bins(0.0, 1.0, 5);
        score.ratios = vec![0.5, 0.2, 0.15, 0.1, 0.05];
        ModelReference {
            score,
            features: (0..features)
                .map(|i| FeatureReference {
                    name: format!("f{i:02}"),
                    group: ["customer", "terminal", "transaction"][i % 3].into(),
                    bins: bins(0.0, 10.0, bin_count),
                })
                .collect(),
        }
    }

    struct Setup {
        registry: Registry,
        clock: Arc<ManualClock>,
        drift: DriftMetrics,
        model: ModelHandle,
    }

    fn setup(config: &DriftConfig) -> Setup {
        let mut scratch = Registry::default();
        let metrics = Metrics::register(&mut scratch, &MetricsConfig::default()).expect("valid");
        let model = metrics.model(&ModelSpec {
            name: "fraud".into(),
            version: "1.0.0".into(),
            ..ModelSpec::default()
        });
        let mut registry = Registry::default();
        let clock = Arc::new(ManualClock::new(START));
        let drift = DriftMetrics::register_with_clock(&mut registry, config, clock.clone())
            .expect("valid config");
        Setup {
            registry,
            clock,
            drift,
            model,
        }
    }

    fn scrape(registry: &Registry) -> Vec<Sample> {
        let mut text = String::new();
        Format::PrometheusText
            .encode(registry, &mut text)
            .expect("encodes");
        parse(&text)
    }

    fn short_window() -> DriftConfig {
        DriftConfig {
            window: Duration::from_secs(300),
            slots: 5,
            freshness_window: Duration::from_secs(120),
            ..DriftConfig::default()
        }
    }

    #[test]
    fn series_per_replica_follow_the_formula() {
        let s = setup(&DriftConfig::default());
        let (features, bin_count, score_bins, groups) = (14, 10, 10, 3);
        let reference = ModelReference {
            score: bins(0.0, 1.0, score_bins),
            ..reference(features, bin_count)
        };
        let handle = s.drift.model(&s.model, &reference).expect("valid");
        // Before any prediction: the counters and reference gauges, all at 0 or set.
        let counters_and_references = 2 * score_bins + features * (2 * bin_count + 2);
        let samples = scrape(&s.registry);
        assert_eq!(samples.len(), counters_and_references);
        assert_eq!(counters_and_references, 328);
        assert!(
            samples
                .iter()
                .filter(|s| s.name.ends_with("_total"))
                .all(|s| s.value == 0.0)
        );

        let now = handle.now();
        handle.record_prediction(now, 0.3, true, &[1.0; 14], &[now - 1; 3]);
        // Then one PSI per feature, the score PSI, the approval ratio and one age per group.
        let samples = scrape(&s.registry);
        assert_eq!(
            samples.len(),
            counters_and_references + features + 2 + groups
        );
        assert_eq!(samples.len(), 347);
    }

    #[test]
    fn window_gauges_equal_the_statistics_of_the_window_counts() {
        let s = setup(&DriftConfig::default());
        let reference = reference(2, 4);
        let handle = s.drift.model(&s.model, &reference).expect("valid");
        let mut score_counts = [0u64; 5];
        let mut feature_counts = [[0u64; 4]; 2];
        let mut approved = 0;
        for i in 0..97u32 {
            let score = f64::from(i % 13) / 13.0;
            let values = [(i % 10) as f32, (i * i % 7) as f32 * 1.5];
            let now = START + i64::from(i) * 20;
            handle.record_prediction(now, score, score < 0.5, &values, &[]);
            score_counts[reference.score.bin(score)] += 1;
            for (f, v) in values.iter().enumerate() {
                feature_counts[f][reference.features[f].bins.bin(f64::from(*v))] += 1;
            }
            approved += u64::from(score < 0.5);
        }
        // 97 predictions over 32 minutes: all inside the hour.
        s.clock.set(START + 96 * 20);
        let samples = scrape(&s.registry);
        let psi_of = |counts: &[u64], bins: &ReferenceBins| {
            let mut p = vec![0.0; counts.len()];
            fractions(counts, &mut p);
            psi(&p, &bins.ratios)
        };
        let score_psi = value(
            &samples,
            "model_score_psi",
            &[("version", "1.0.0"), ("window", "1h")],
        );
        assert_close(score_psi, psi_of(&score_counts, &reference.score));
        for (f, counts) in feature_counts.iter().enumerate() {
            let name = &reference.features[f].name;
            let got = value(
                &samples,
                "model_feature_psi",
                &[("feature", name), ("window", "1h")],
            );
            assert_close(got, psi_of(counts, &reference.features[f].bins));
        }
        let ratio = value(
            &samples,
            "model_approval_ratio",
            &[("model", "fraud"), ("window", "1h")],
        );
        assert_close(ratio, approved as f64 / 97.0);
    }

    #[track_caller]
    fn assert_close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("the gauge is exported");
        assert!(
            (actual - expected).abs() <= 1e-12,
            "exported {actual}, expected {expected}"
        );
    }

    #[test]
    fn old_predictions_leave_the_window_and_an_empty_window_exports_nothing() {
        let s = setup(&short_window());
        let reference = reference(1, 4);
        let handle = s.drift.model(&s.model, &reference).expect("valid");
        let psi_now = || value(&scrape(&s.registry), "model_score_psi", &[("window", "5m")]);
        let approval_now = || {
            value(
                &scrape(&s.registry),
                "model_approval_ratio",
                &[("window", "5m")],
            )
        };
        // Ten low scores at the start, ten high scores two minutes later.
        for _ in 0..10 {
            handle.record_prediction(START, 0.05, true, &[1.0], &[]);
        }
        for _ in 0..10 {
            handle.record_prediction(START + 120, 0.95, false, &[1.0], &[]);
        }
        let both = [10, 0, 0, 0, 10].map(|c: u64| c as f64 / 20.0);
        let late = [0.0, 0.0, 0.0, 0.0, 1.0];
        s.clock.set(START + 120);
        assert_close(psi_now(), psi(&both, &reference.score.ratios));
        assert_close(approval_now(), 0.5);
        // The window holds the last five one-minute slots, the current one included.
        s.clock.set(START + 299);
        assert_close(psi_now(), psi(&both, &reference.score.ratios));
        s.clock.set(START + 300);
        assert_close(psi_now(), psi(&late, &reference.score.ratios));
        assert_close(approval_now(), 0.0);
        s.clock.set(START + 420);
        assert_eq!(psi_now(), None);
        assert_eq!(approval_now(), None);
        let samples = scrape(&s.registry);
        assert!(select(&samples, "model_feature_psi", &[]).is_empty());
        // The counters keep everything.
        assert_eq!(
            value(&samples, "model_score_bin_total", &[("bin", "+Inf")]),
            Some(10.0)
        );
        assert_eq!(
            value(&samples, "model_score_bin_total", &[("bin", "0.2")]),
            Some(10.0)
        );
    }

    #[test]
    fn fleet_psi_from_counters_and_reference_gauges_matches_the_replica_gauge() {
        let s = setup(&DriftConfig::default());
        let reference = reference(3, 6);
        let handle = s.drift.model(&s.model, &reference).expect("valid");
        for i in 0..500u32 {
            let score = (f64::from(i) * 0.618).fract().powi(3);
            let values = [
                (i % 11) as f32,
                (i % 3) as f32 * 4.0,
                f32::from(i as u8 % 2) * 9.5,
            ];
            handle.record_prediction(START + i64::from(i % 600), score, score < 0.4, &values, &[]);
        }
        s.clock.set(START + 600);
        let samples = scrape(&s.registry);
        // What a recording rule does: join counts and reference ratios on the bin label
        // and sum (cur - ref) * ln(cur / ref) with both clamped at 1e-4.
        let rule = |counter: &str, ratio: &str, key: (&str, &str)| {
            let counts = select(&samples, counter, &[key]);
            let total: f64 = counts.iter().map(|c| c.value).sum();
            let mut sum = 0.0;
            for c in &counts {
                let bin = c.labels["bin"].as_str();
                let q = value(&samples, ratio, &[key, ("bin", bin)]).expect("a reference per bin");
                let p = (c.value / total).max(crate::drift::EPSILON);
                let q = q.max(crate::drift::EPSILON);
                sum += (p - q) * (p / q).ln();
            }
            sum
        };
        let fleet = rule(
            "model_score_bin_total",
            "model_reference_score_ratio",
            ("version", "1.0.0"),
        );
        assert_close(value(&samples, "model_score_psi", &[]), fleet);
        assert!(fleet > 0.01, "the test data drifts: {fleet}");
        for f in &reference.features {
            let key = ("feature", f.name.as_str());
            let fleet = rule(
                "model_feature_bin_total",
                "model_reference_feature_ratio",
                key,
            );
            assert_close(value(&samples, "model_feature_psi", &[key]), fleet);
        }
    }

    #[test]
    fn missing_and_out_of_range_values_are_counted() {
        let s = setup(&DriftConfig::default());
        let handle = s.drift.model(&s.model, &reference(3, 4)).expect("valid");
        let now = handle.now();
        handle.record_prediction(now, 0.1, true, &[f32::NAN, -1.0, 10.5], &[]);
        // A short slice: the last two features are missing.
        handle.record_prediction(now, f64::NAN, true, &[f32::INFINITY], &[]);
        let samples = scrape(&s.registry);
        let count = |name: &str, feature: &str| value(&samples, name, &[("feature", feature)]);
        assert_eq!(count("model_feature_missing_total", "f00"), Some(1.0));
        assert_eq!(count("model_feature_missing_total", "f01"), Some(1.0));
        assert_eq!(count("model_feature_missing_total", "f02"), Some(1.0));
        assert_eq!(count("model_feature_out_of_range_total", "f00"), Some(1.0));
        assert_eq!(count("model_feature_out_of_range_total", "f01"), Some(1.0));
        assert_eq!(count("model_feature_out_of_range_total", "f02"), Some(1.0));
        // Out-of-range values land in the outer bins; +Inf included.
        let bin = |feature: &str, bin: &str| {
            value(
                &samples,
                "model_feature_bin_total",
                &[("feature", feature), ("bin", bin)],
            )
        };
        assert_eq!(bin("f00", "+Inf"), Some(1.0));
        assert_eq!(bin("f01", "2.5"), Some(1.0));
        assert_eq!(bin("f02", "+Inf"), Some(1.0));
        // A NaN score is not binned, but the prediction counts toward approval.
        let scores: f64 = select(&samples, "model_score_bin_total", &[])
            .iter()
            .map(|s| s.value)
            .sum();
        assert_eq!(scores, 1.0);
        assert_eq!(value(&samples, "model_approval_ratio", &[]), Some(1.0));
        assert_eq!(
            value(
                &samples,
                "model_reference_feature_ratio",
                &[("feature", "f02"), ("bin", "5")]
            ),
            Some(0.25)
        );
    }

    #[test]
    fn feature_age_is_the_oldest_value_used_in_the_freshness_window() {
        let s = setup(&short_window());
        let handle = s.drift.model(&s.model, &reference(3, 4)).expect("valid");
        assert_eq!(
            handle.feature_groups(),
            ["customer", "terminal", "transaction"]
        );
        let terminal = handle.feature_group_index("terminal").expect("a group");
        let age = |group: &str| {
            value(
                &scrape(&s.registry),
                "model_feature_age_seconds",
                &[("feature_group", group)],
            )
        };
        // Customer values 40 s old, terminal values 900 s old, transaction not used.
        handle.record_prediction(
            START,
            0.1,
            true,
            &[1.0; 3],
            &[START - 40, START - 900, NOT_USED],
        );
        handle.record_prediction(START, 0.1, true, &[1.0; 3], &[START - 10, START - 30]);
        assert_eq!(terminal, 1);
        assert_eq!(age("customer"), Some(40.0));
        assert_eq!(age("terminal"), Some(900.0));
        assert_eq!(age("transaction"), None);
        // Measured at prediction time: it does not grow between predictions.
        s.clock.set(START + 60);
        assert_eq!(age("customer"), Some(40.0));
        // A fresh prediction a minute later, with a future timestamp counted as 0.
        handle.record_prediction(
            START + 60,
            0.1,
            true,
            &[1.0; 3],
            &[START + 65, START + 50, START],
        );
        assert_eq!(age("customer"), Some(40.0));
        assert_eq!(age("transaction"), Some(60.0));
        // The two-minute freshness window lets go of the first prediction.
        s.clock.set(START + 120);
        assert_eq!(age("customer"), Some(0.0));
        assert_eq!(age("terminal"), Some(10.0));
        s.clock.set(START + 180);
        assert_eq!(age("customer"), None);
    }

    #[test]
    fn a_new_declaration_takes_over_the_window_and_a_dropped_handle_leaves() {
        let s = setup(&DriftConfig::default());
        let first = s.drift.model(&s.model, &reference(1, 4)).expect("valid");
        first.record_prediction(START, 0.1, true, &[1.0], &[]);
        let second = s.drift.model(&s.model, &reference(1, 4)).expect("valid");
        second.record_prediction(START, 0.1, false, &[1.0], &[]);
        let samples = scrape(&s.registry);
        assert_eq!(value(&samples, "model_approval_ratio", &[]), Some(0.0));
        // Both handles count in the shared counters.
        assert_eq!(
            value(&samples, "model_score_bin_total", &[("bin", "0.2")]),
            Some(2.0)
        );
        drop(second);
        assert_eq!(
            value(&scrape(&s.registry), "model_approval_ratio", &[]),
            None
        );
        drop(first);
    }

    #[test]
    fn unusable_settings_are_refused() {
        let mut registry = Registry::default();
        let bad = |config: DriftConfig| {
            DriftMetrics::register(&mut Registry::default(), &config).expect_err("refused")
        };
        assert!(matches!(
            bad(DriftConfig {
                slots: 7,
                ..DriftConfig::default()
            }),
            DriftError::InvalidWindow(_)
        ));
        assert!(matches!(
            bad(DriftConfig {
                freshness_window: Duration::from_secs(90),
                ..DriftConfig::default()
            }),
            DriftError::InvalidWindow(_)
        ));
        assert!(matches!(
            bad(DriftConfig {
                window: Duration::from_millis(1500),
                slots: 1,
                ..DriftConfig::default()
            }),
            DriftError::InvalidWindow(_)
        ));
        let config = DriftConfig {
            max_features: 2,
            ..short_window()
        };
        assert_eq!(config.window_label(), "5m");
        let drift = DriftMetrics::register(&mut registry, &config).expect("valid");
        let s = setup(&DriftConfig::default());
        assert_eq!(
            drift
                .model(&s.model, &reference(3, 4))
                .expect_err("refused"),
            DriftError::TooManyFeatures { count: 3, limit: 2 }
        );
    }

    #[test]
    fn window_labels_read_like_promql_durations() {
        let label = |secs| {
            DriftConfig {
                window: Duration::from_secs(secs),
                ..DriftConfig::default()
            }
            .window_label()
        };
        assert_eq!(label(3600), "1h");
        assert_eq!(label(7200), "2h");
        assert_eq!(label(5400), "90m");
        assert_eq!(label(90), "90s");
    }
}
