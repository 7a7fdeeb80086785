//! Module implementing the ground-truth families: the confusion counts of delayed
//! labels, their delay, the labels that joined nothing, the regression error, and
//! the reference calibration the live estimate reads. See [`FeedbackMetrics`] and
//! [`FeedbackHandle`] for details.
//!
//! Every label value comes from the model's card or a closed set: `predicted` and
//! `actual` are the model's two decision names (`actual` names the decision the
//! label says was right), never anything a request sent.

use crate::labels::Decision;
use crate::metrics::ModelHandle;
use crate::schema::{self, MetricDef};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// Bounds of `model_feedback_delay_seconds`: a minute to 60 days, where fraud labels
/// (chargebacks) arrive.
pub const DELAY_SECONDS: &[f64] = &[
    60.0,
    300.0,
    900.0,
    3600.0,
    14_400.0,
    43_200.0,
    86_400.0,
    172_800.0,
    345_600.0,
    604_800.0,
    1_209_600.0,
    2_592_000.0,
    5_184_000.0,
];

/// Bounds of `model_feedback_absolute_error`: 1-2.5-5 steps from 0.001 to 1000.
pub const ABSOLUTE_ERROR: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0,
    100.0, 250.0, 500.0, 1000.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConfusionLabels {
    model: String,
    version: String,
    predicted: String,
    actual: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    model: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BinLabels {
    model: String,
    version: String,
    bin: String,
    decision: String,
}

type FloatCounter = Counter<f64, AtomicU64>;
type RatioGauge = Gauge<f64, AtomicU64>;
type Histograms<L> = Family<L, crate::AtomicHistogram, crate::metrics::BucketConstructor>;

fn register<M: prometheus_client::registry::Metric>(
    registry: &mut Registry,
    def: &MetricDef,
    metric: M,
) {
    registry.register(def.registration_name(), def.registration_help(), metric);
}

/// The registered ground-truth families, shared by every model. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct FeedbackMetrics {
    confusion: Family<ConfusionLabels, Counter>,
    delay: Histograms<ModelLabels>,
    unmatched: Counter,
    duplicate: Family<ModelLabels, Counter>,
    late: Family<ModelLabels, Counter>,
    absolute_error: Histograms<VersionLabels>,
    squared_error: Family<VersionLabels, FloatCounter>,
    log_dropped: Family<ModelLabels, Counter>,
    calibration: Family<BinLabels, RatioGauge>,
}

impl FeedbackMetrics {
    /// Creates the families on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            confusion: Family::default(),
            delay: Family::new_with_constructor(crate::metrics::BucketConstructor::new(
                DELAY_SECONDS,
            )),
            unmatched: Counter::default(),
            duplicate: Family::default(),
            late: Family::default(),
            absolute_error: Family::new_with_constructor(crate::metrics::BucketConstructor::new(
                ABSOLUTE_ERROR,
            )),
            squared_error: Family::default(),
            log_dropped: Family::default(),
            calibration: Family::default(),
        };
        register(registry, &schema::FEEDBACK_TOTAL, metrics.confusion.clone());
        register(
            registry,
            &schema::FEEDBACK_DELAY_SECONDS,
            metrics.delay.clone(),
        );
        register(
            registry,
            &schema::FEEDBACK_UNMATCHED_TOTAL,
            metrics.unmatched.clone(),
        );
        register(
            registry,
            &schema::FEEDBACK_DUPLICATE_TOTAL,
            metrics.duplicate.clone(),
        );
        register(registry, &schema::FEEDBACK_LATE_TOTAL, metrics.late.clone());
        register(
            registry,
            &schema::FEEDBACK_ABSOLUTE_ERROR,
            metrics.absolute_error.clone(),
        );
        register(
            registry,
            &schema::FEEDBACK_SQUARED_ERROR_TOTAL,
            metrics.squared_error.clone(),
        );
        register(
            registry,
            &schema::PREDICTION_LOG_DROPPED_TOTAL,
            metrics.log_dropped.clone(),
        );
        register(
            registry,
            &schema::REFERENCE_SCORE_POSITIVE_RATIO,
            metrics.calibration.clone(),
        );
        metrics
    }

    /// Counts one label that matched no logged prediction.
    pub fn unmatched(&self) {
        self.unmatched.inc();
    }

    /// Labels counted so far that matched nothing.
    pub fn unmatched_count(&self) -> u64 {
        self.unmatched.get()
    }

    /// Resolves one model version's series, creating them at 0 (the four confusion
    /// cells for a classifier; the error series for a model without decisions).
    /// `calibration` is the reference's positive ratio per score bin: each bin's
    /// label (its upper edge, as `model_score_bin_total` has it), its ratio, and the
    /// decision a score in it gets.
    pub fn model(
        &self,
        model: &ModelHandle,
        calibration: &[(String, f64, Decision)],
    ) -> FeedbackHandle {
        let name = model.model().to_string();
        let version = model.version().to_string();
        let cell = |predicted: Decision, actual: Decision| {
            self.confusion.get_or_create_owned(&ConfusionLabels {
                model: name.clone(),
                version: version.clone(),
                predicted: model.decision_name(predicted).to_string(),
                actual: model.decision_name(actual).to_string(),
            })
        };
        let classifier = model.decision_name(Decision::Below) != crate::labels::NO_DECISION;
        let confusion = classifier.then(|| {
            [
                [
                    cell(Decision::Below, Decision::Below),
                    cell(Decision::Below, Decision::AtOrAbove),
                ],
                [
                    cell(Decision::AtOrAbove, Decision::Below),
                    cell(Decision::AtOrAbove, Decision::AtOrAbove),
                ],
            ]
        });
        let ml = ModelLabels {
            model: name.clone(),
        };
        let vl = VersionLabels {
            model: name.clone(),
            version: version.clone(),
        };
        for (bin, ratio, decision) in calibration {
            self.calibration
                .get_or_create(&BinLabels {
                    model: name.clone(),
                    version: version.clone(),
                    bin: bin.clone(),
                    decision: model.decision_name(*decision).to_string(),
                })
                .set(*ratio);
        }
        let (absolute_error, squared_error) = if classifier {
            (None, None)
        } else {
            (
                Some(self.absolute_error.get_or_create_owned(&vl)),
                Some(self.squared_error.get_or_create_owned(&vl)),
            )
        };
        FeedbackHandle {
            inner: Arc::new(HandleInner {
                confusion,
                delay: self.delay.get_or_create_owned(&ml),
                duplicate: self.duplicate.get_or_create_owned(&ml),
                late: self.late.get_or_create_owned(&ml),
                log_dropped: self.log_dropped.get_or_create_owned(&ml),
                absolute_error,
                squared_error,
            }),
        }
    }
}

#[derive(Debug)]
struct HandleInner {
    /// `[predicted][actual]`, 0 = below the threshold, 1 = at or above.
    confusion: Option<[[Counter; 2]; 2]>,
    delay: crate::AtomicHistogram,
    duplicate: Counter,
    late: Counter,
    log_dropped: Counter,
    absolute_error: Option<crate::AtomicHistogram>,
    squared_error: Option<FloatCounter>,
}

/// One model version's ground-truth series, resolved once. Cloning shares them.
#[derive(Debug, Clone)]
pub struct FeedbackHandle {
    inner: Arc<HandleInner>,
}

fn side(d: Decision) -> Option<usize> {
    match d {
        Decision::Below => Some(0),
        Decision::AtOrAbove => Some(1),
        Decision::None => None,
    }
}

impl FeedbackHandle {
    /// Counts a classifier's label joined to its prediction: `actual_positive` is the
    /// label (the fraud model: fraud), which names the decision that was right.
    /// Returns false (and counts nothing) for a prediction that decided nothing.
    pub fn classified(
        &self,
        predicted: Decision,
        actual_positive: bool,
        delay_seconds: f64,
    ) -> bool {
        let (Some(confusion), Some(p)) = (&self.inner.confusion, side(predicted)) else {
            return false;
        };
        confusion[p][usize::from(actual_positive)].inc();
        self.inner.delay.observe(delay_seconds);
        true
    }

    /// Counts a regressor's observed value against its prediction. Returns false for
    /// a classifier (whose labels go through [`FeedbackHandle::classified`]).
    pub fn regressed(&self, predicted: f64, actual: f64, delay_seconds: f64) -> bool {
        let (Some(abs), Some(sq)) = (&self.inner.absolute_error, &self.inner.squared_error) else {
            return false;
        };
        let error = (actual - predicted).abs();
        if !error.is_finite() {
            return false;
        }
        abs.observe(error);
        sq.inc_by(error * error);
        self.inner.delay.observe(delay_seconds);
        true
    }

    /// Counts a second label for a prediction that has one.
    pub fn duplicate(&self) {
        self.inner.duplicate.inc();
    }

    /// Counts a label that arrived past the late horizon.
    pub fn late(&self) {
        self.inner.late.inc();
    }

    /// Counts a prediction the log could not take (its queue was full).
    pub fn log_dropped(&self) {
        self.inner.log_dropped.inc();
    }

    /// The confusion count of one cell, as exported (0 for a regressor).
    pub fn confusion(&self, predicted: Decision, actual_positive: bool) -> u64 {
        match (&self.inner.confusion, side(predicted)) {
            (Some(c), Some(p)) => c[p][usize::from(actual_positive)].get(),
            _ => 0,
        }
    }

    /// Duplicates counted so far.
    pub fn duplicates(&self) -> u64 {
        self.inner.duplicate.get()
    }
}

/// One calibrated score bin, as the live estimate reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibratedBin {
    /// Scores counted in the bin.
    pub count: f64,
    /// The holdout's share of positive labels in the bin (its calibration).
    pub positive_ratio: f64,
    /// Whether a score in the bin gets the positive (at-or-above) decision.
    pub positive_side: bool,
}

/// Performance expected from the scores alone (CBPE-style).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Expected true positives over predicted positives.
    pub precision: f64,
    /// Expected true positives over expected positives.
    pub recall: f64,
    /// Expected positives over scores.
    pub positive_rate: f64,
}

/// The estimate over `bins`, as the mixin's recording rules compute it: expected
/// true positives `Σ n_b c_b` over the positive side, expected positives `Σ n_b c_b`
/// over every bin, predicted positives `Σ n_b` over the positive side. Exact sums,
/// so the counts of several replicas add up. `None` when a denominator is zero.
///
/// It assumes the holdout's calibration holds on the new data: it follows changes in
/// the score distribution, not changes in what a score means (concept drift).
pub fn estimate(bins: &[CalibratedBin]) -> Option<Estimate> {
    let (mut tp, mut positives, mut predicted, mut total) = (0.0, 0.0, 0.0, 0.0);
    for b in bins {
        let expected = b.count * b.positive_ratio;
        positives += expected;
        total += b.count;
        if b.positive_side {
            tp += expected;
            predicted += b.count;
        }
    }
    (predicted > 0.0 && positives > 0.0 && total > 0.0).then(|| Estimate {
        precision: tp / predicted,
        recall: tp / positives,
        positive_rate: positives / total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(count: f64, positive_ratio: f64, positive_side: bool) -> CalibratedBin {
        CalibratedBin {
            count,
            positive_ratio,
            positive_side,
        }
    }

    #[test]
    fn the_estimate_is_exact_sums_over_bins() {
        // 880 scores where 1% are positive, 100 at 30% and 20 at 95%, the last two
        // declined: expected TP = 30 + 19, positives = 8.8 + 49, predicted = 120.
        let e = estimate(&[
            bin(880.0, 0.01, false),
            bin(100.0, 0.3, true),
            bin(20.0, 0.95, true),
        ])
        .unwrap();
        assert!((e.precision - 49.0 / 120.0).abs() < 1e-12, "{e:?}");
        assert!((e.recall - 49.0 / 57.8).abs() < 1e-12, "{e:?}");
        assert!((e.positive_rate - 57.8 / 1000.0).abs() < 1e-12, "{e:?}");
    }

    #[test]
    fn replicas_add_up() {
        let a = [
            bin(500.0, 0.01, false),
            bin(60.0, 0.3, true),
            bin(5.0, 0.95, true),
        ];
        let b = [
            bin(380.0, 0.01, false),
            bin(40.0, 0.3, true),
            bin(15.0, 0.95, true),
        ];
        let fleet: Vec<_> = a
            .iter()
            .zip(&b)
            .map(|(x, y)| bin(x.count + y.count, x.positive_ratio, x.positive_side))
            .collect();
        let together = estimate(&fleet).unwrap();
        let single = estimate(&[
            bin(880.0, 0.01, false),
            bin(100.0, 0.3, true),
            bin(20.0, 0.95, true),
        ])
        .unwrap();
        assert_eq!(together, single);
    }

    #[test]
    fn no_predicted_positive_is_no_estimate() {
        assert_eq!(estimate(&[bin(10.0, 0.1, false)]), None);
        assert_eq!(estimate(&[]), None);
    }
}
