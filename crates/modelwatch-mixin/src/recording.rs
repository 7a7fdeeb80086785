//! Module implementing the recording rules (`prometheus/rules.yaml`). See
//! [`recording_rules`] for details.
//!
//! # Choices
//!
//! - **Valid requests** are every status but `rejected` and `cancelled`: invalid
//!   input and a client that hangs up are the client's doing and spend no error
//!   budget. `error`, `timeout` and `overloaded`
//!   are bad events: a shed request is a prediction the caller did not get.
//! - **Latency SLO**: the fraction of valid requests slower than the threshold is
//!   `1 - bucket{le=threshold} / count` of `model_request_duration_seconds`, which
//!   the library observes for every status but `rejected` and `cancelled`.
//! - **Approval ratio** is read from the decision the server took,
//!   `model_requests_total{status="success", decision}`, not from the score
//!   histogram at the threshold bucket: the decision is what callers saw, and it
//!   needs no per-model threshold in this config.
//! - **Fleet drift**: per-bin rates of `model_score_bin_total` (or
//!   `model_feature_bin_total`) are summed across replicas and normalised to
//!   fractions over the drift window, then joined on `bin` with the reference ratio
//!   (`max` across replicas, which all export the same value). PSI clamps each
//!   fraction at 1e-4 without renormalising, exactly as `modelwatch::drift::psi`
//!   does; Jensen-Shannon uses a guard of 1e-300 that only keeps `0 · ln 0` at 0,
//!   so it equals `modelwatch::drift::jensen_shannon`.
//! - **No KS in PromQL**: binned KS needs cumulative sums over the bins in edge
//!   order, but a bin is only a string label and PromQL 2.x can neither order series
//!   by a label's numeric value nor join each bin with the bins below it. The rules
//!   record the total variation distance ½ Σ |p − q| instead, which bounds binned KS
//!   from above (they are equal when mass moves in one direction, as in a shift).
//!   Exact binned KS is available per replica from `modelwatch::drift::ks`.
//! - **Sample size**: beside every drift statistic the rules record the window's
//!   count of predictions (`increase` of the bin counters summed over bins), the
//!   reference's number of bins, and the statistic's no-drift level for that count:
//!   `(B - 1) / N` for PSI, `(B - 1) / 8N` for Jensen-Shannon and
//!   `sqrt((B - 1) / 2πN)` for total variation (derived and checked by simulation
//!   in docs/drift.md). The approval ratio and the cache hit ratio record their
//!   counts too, so that the alerts can ignore windows with too few events.

use crate::config::{MixinConfig, PromDuration};
use crate::names::record::{self, BURN_WINDOWS};
use crate::promql::{Promql, eq, none_of, num, one_of};
use crate::rules::{RecordingRule, Rule, RuleGroup};
use modelwatch::labels::NO_DECISION;
use modelwatch::schema::{self, label};
use modelwatch::{CacheOperation, Status};

/// The floor PSI applies to each fraction, as in `modelwatch::drift::EPSILON`.
pub const PSI_EPSILON: f64 = modelwatch::drift::EPSILON;

/// Keeps `0 · ln(0 / m)` at 0 in the Jensen-Shannon rules without changing any
/// non-zero fraction.
pub const ZERO_GUARD: &str = "1e-300";

/// Quantiles recorded for the end-to-end and per-stage latency.
pub const QUANTILES: [f64; 3] = [0.5, 0.95, 0.99];

/// The statuses that spend the availability error budget.
pub const BAD_STATUSES: [Status; 3] = [Status::Error, Status::Timeout, Status::Overloaded];

/// The 5-minute window of the serving rules.
const RATE_WINDOW: PromDuration = PromDuration::from_secs(300);

fn rec(record: &'static str, expr: String) -> Rule {
    Rule::Record(RecordingRule {
        record,
        expr,
        labels: Vec::new(),
    })
}

fn rec_labelled(record: &'static str, expr: String, labels: &[(&str, String)]) -> Rule {
    Rule::Record(RecordingRule {
        record,
        expr,
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect(),
    })
}

fn by(labels: &[&str]) -> String {
    labels.join(", ")
}

/// Every recording rule group, in file order.
pub fn recording_rules(config: &MixinConfig) -> Vec<RuleGroup> {
    let q = Promql::new(config);
    vec![
        RuleGroup {
            name: "modelwatch-serving.rules".into(),
            rules: serving(&q),
        },
        RuleGroup {
            name: "modelwatch-slo.rules".into(),
            rules: slo(&q, config),
        },
        RuleGroup {
            name: "modelwatch-drift.rules".into(),
            rules: drift(&q, config),
        },
        RuleGroup {
            name: "modelwatch-features.rules".into(),
            rules: features(&q),
        },
        RuleGroup {
            name: "modelwatch-ground-truth.rules".into(),
            rules: ground_truth(&q, config),
        },
    ]
}

fn serving(q: &Promql<'_>) -> Vec<Rule> {
    let w = q.range(RATE_WINDOW);
    let requests = |matchers: &[String]| q.metric(&schema::REQUESTS_TOTAL, matchers);
    let mv = by(&[label::MODEL, label::VERSION]);
    let mut rules = vec![
        rec(
            record::REQUESTS_RATE5M,
            format!("sum by ({mv}) (rate({}{w}))", requests(&[])),
        ),
        rec(
            record::REQUESTS_BY_STATUS_RATE5M,
            format!(
                "sum by ({}) (rate({}{w}))",
                by(&[label::MODEL, label::VERSION, label::STATUS]),
                requests(&[])
            ),
        ),
    ];
    for quantile in QUANTILES {
        rules.push(rec_labelled(
            record::REQUEST_DURATION_QUANTILE,
            format!(
                "histogram_quantile({}, sum by (le, {mv}) (rate({}{w})))",
                num(quantile),
                q.histogram_series(&schema::REQUEST_DURATION_SECONDS, "_bucket", &[])
            ),
            &[("quantile", num(quantile))],
        ));
    }
    for quantile in QUANTILES {
        rules.push(rec_labelled(
            record::STAGE_DURATION_QUANTILE,
            format!(
                "histogram_quantile({}, sum by (le, {}) (rate({}{w})))",
                num(quantile),
                by(&[label::MODEL, label::VERSION, label::STAGE]),
                q.histogram_series(&schema::STAGE_DURATION_SECONDS, "_bucket", &[])
            ),
            &[("quantile", num(quantile))],
        ));
    }
    let cache = |matchers: &[String]| q.metric(&schema::FEATURE_CACHE_OPERATIONS_TOTAL, matchers);
    rules.push(rec(
        record::CACHE_HIT_RATIO,
        format!(
            "sum by ({m}) (rate({}{w}))\n/\nsum by ({m}) (rate({}{w}))",
            cache(&[eq(label::OPERATION, CacheOperation::Hit.as_str())]),
            cache(&[]),
            m = label::MODEL,
        ),
    ));
    rules.push(rec(
        record::CACHE_LOOKUPS,
        format!("sum by ({}) (increase({}{w}))", label::MODEL, cache(&[])),
    ));
    rules.push(rec(
        record::STORE_ERRORS_RATE5M,
        format!(
            "sum by ({}) (rate({}{w}))",
            by(&[label::MODEL, label::KIND]),
            q.metric(&schema::FEATURE_STORE_ERRORS_TOTAL, &[])
        ),
    ));
    rules
}

fn slo(q: &Promql<'_>, config: &MixinConfig) -> Vec<Rule> {
    let mv = by(&[label::MODEL, label::VERSION]);
    let bad: Vec<&str> = BAD_STATUSES.iter().map(|s| s.as_str()).collect();
    let outside: Vec<&str> = Status::OUTSIDE_SLO.iter().map(|s| s.as_str()).collect();
    let mut rules = Vec::new();
    for window in BURN_WINDOWS {
        let w = q.range(PromDuration::from_secs(window.seconds));
        rules.push(rec(
            window.errors,
            format!(
                "sum by ({mv}) (rate({}{w}))\n/\nsum by ({mv}) (rate({}{w}))",
                q.metric(&schema::REQUESTS_TOTAL, &[one_of(label::STATUS, &bad)]),
                q.metric(&schema::REQUESTS_TOTAL, &[none_of(label::STATUS, &outside)]),
            ),
        ));
    }
    let threshold = format!("{}", config.slo.latency_threshold_seconds);
    for window in BURN_WINDOWS {
        let w = q.range(PromDuration::from_secs(window.seconds));
        rules.push(rec(
            window.slow,
            format!(
                "1 - (\n  sum by ({mv}) (rate({}{w}))\n  /\n  sum by ({mv}) (rate({}{w}))\n)",
                q.histogram_series(
                    &schema::REQUEST_DURATION_SECONDS,
                    "_bucket",
                    &[eq("le", &threshold)]
                ),
                q.histogram_series(&schema::REQUEST_DURATION_SECONDS, "_count", &[]),
            ),
        ));
    }
    rules
}

/// The series and labels of one binned distribution: the score or the features.
struct Binned {
    counter: &'static schema::MetricDef,
    reference: &'static schema::MetricDef,
    /// Labels that identify one distribution, `bin` excluded.
    keys: [&'static str; 2],
    ratio: &'static str,
    reference_ratio: &'static str,
    psi: &'static str,
    jensen_shannon: &'static str,
    total_variation: &'static str,
    count: &'static str,
    bins: &'static str,
    psi_noise: &'static str,
    jensen_shannon_noise: &'static str,
    total_variation_noise: &'static str,
}

const SCORE: Binned = Binned {
    counter: &schema::SCORE_BIN_TOTAL,
    reference: &schema::REFERENCE_SCORE_RATIO,
    keys: [label::MODEL, label::VERSION],
    ratio: record::SCORE_BIN_RATIO,
    reference_ratio: record::SCORE_REFERENCE_RATIO,
    psi: record::SCORE_PSI,
    jensen_shannon: record::SCORE_JENSEN_SHANNON,
    total_variation: record::SCORE_TOTAL_VARIATION,
    count: record::SCORE_COUNT,
    bins: record::SCORE_BINS,
    psi_noise: record::SCORE_PSI_NOISE,
    jensen_shannon_noise: record::SCORE_JENSEN_SHANNON_NOISE,
    total_variation_noise: record::SCORE_TOTAL_VARIATION_NOISE,
};

const FEATURE: Binned = Binned {
    counter: &schema::FEATURE_BIN_TOTAL,
    reference: &schema::REFERENCE_FEATURE_RATIO,
    keys: [label::MODEL, label::FEATURE],
    ratio: record::FEATURE_BIN_RATIO,
    reference_ratio: record::FEATURE_REFERENCE_RATIO,
    psi: record::FEATURE_PSI,
    jensen_shannon: record::FEATURE_JENSEN_SHANNON,
    total_variation: record::FEATURE_TOTAL_VARIATION,
    count: record::FEATURE_COUNT,
    bins: record::FEATURE_BINS,
    psi_noise: record::FEATURE_PSI_NOISE,
    jensen_shannon_noise: record::FEATURE_JENSEN_SHANNON_NOISE,
    total_variation_noise: record::FEATURE_TOTAL_VARIATION_NOISE,
};

/// Per-bin fractions of a binned counter over `range`, absent without data.
fn bin_fractions(q: &Promql<'_>, binned: &Binned, range: &str) -> String {
    let keys = by(&binned.keys);
    let counter = q.metric(binned.counter, &[]);
    format!(
        "sum by ({keys}, {bin}) (rate({counter}{range}))\n\
         / ignoring ({bin}) group_left ()\n\
         (sum by ({keys}) (rate({counter}{range})) > 0)",
        bin = label::BIN,
    )
}

/// PSI of the fractions `p` against `q` (two vectors with the same labels), summed
/// by `keys`.
fn psi(keys: &str, p: &str, q: &str) -> String {
    let e = num(PSI_EPSILON);
    format!(
        "sum by ({keys}) (\n  (clamp_min({p}, {e}) - clamp_min({q}, {e}))\n  *\n  ln(clamp_min({p}, {e}) / clamp_min({q}, {e}))\n)"
    )
}

fn jensen_shannon(keys: &str, p: &str, q: &str) -> String {
    let g = ZERO_GUARD;
    format!(
        "0.5 * sum by ({keys}) (\n    {p} * ln(clamp_min({p}, {g}) / clamp_min(({p} + {q}) / 2, {g}))\n  +\n    {q} * ln(clamp_min({q}, {g}) / clamp_min(({p} + {q}) / 2, {g}))\n)"
    )
}

fn total_variation(keys: &str, p: &str, q: &str) -> String {
    format!("0.5 * sum by ({keys}) (abs({p} - {q}))")
}

fn binned_rules(q: &Promql<'_>, config: &MixinConfig, binned: &Binned) -> Vec<Rule> {
    let keys = by(&binned.keys);
    let range = q.range(config.drift.window);
    vec![
        rec(binned.ratio, bin_fractions(q, binned, &range)),
        rec(
            binned.reference_ratio,
            format!(
                "max by ({keys}, {}) ({})",
                label::BIN,
                q.metric(binned.reference, &[])
            ),
        ),
        rec(binned.psi, psi(&keys, binned.ratio, binned.reference_ratio)),
        rec(
            binned.jensen_shannon,
            jensen_shannon(&keys, binned.ratio, binned.reference_ratio),
        ),
        rec(
            binned.total_variation,
            total_variation(&keys, binned.ratio, binned.reference_ratio),
        ),
        rec(
            binned.count,
            format!(
                "sum by ({keys}) (increase({}{range}))",
                q.metric(binned.counter, &[])
            ),
        ),
        rec(
            binned.bins,
            format!("count by ({keys}) ({})", binned.reference_ratio),
        ),
        rec(
            binned.psi_noise,
            format!("({} - 1) / ({} > 0)", binned.bins, binned.count),
        ),
        rec(
            binned.jensen_shannon_noise,
            format!("({} - 1) / (8 * ({} > 0))", binned.bins, binned.count),
        ),
        rec(
            binned.total_variation_noise,
            format!(
                "sqrt(({} - 1) / ({} * ({} > 0)))",
                binned.bins,
                num(2.0 * std::f64::consts::PI),
                binned.count
            ),
        ),
    ]
}

fn drift(q: &Promql<'_>, config: &MixinConfig) -> Vec<Rule> {
    let window = q.range(config.drift.window);
    let offset = format!(
        "{window} offset {}",
        q.duration(config.drift.comparison_offset)
    );
    let approval = |keys: &str, range: &str| {
        // Approved: a decision below the threshold, by whatever name each card gives
        // it. Decided: every decision but `none`.
        let approved: Vec<&str> = config
            .serving
            .approved_decisions
            .iter()
            .map(String::as_str)
            .collect();
        let success = eq(label::STATUS, Status::Success.as_str());
        format!(
            "sum by ({keys}) (rate({}{range}))\n/\nsum by ({keys}) (rate({}{range}))",
            q.metric(
                &schema::REQUESTS_TOTAL,
                &[success.clone(), one_of(label::DECISION, &approved)]
            ),
            q.metric(
                &schema::REQUESTS_TOTAL,
                &[success, none_of(label::DECISION, &[NO_DECISION])]
            ),
        )
    };
    // The approval ratio's denominator as a count: every successful decision but
    // `none`.
    let decisions = |range: &str| {
        format!(
            "sum by ({}) (increase({}{range}))",
            label::MODEL,
            q.metric(
                &schema::REQUESTS_TOTAL,
                &[
                    eq(label::STATUS, Status::Success.as_str()),
                    none_of(label::DECISION, &[NO_DECISION])
                ]
            ),
        )
    };
    let mut rules = vec![
        rec(
            record::APPROVAL_RATIO_BY_VERSION,
            approval(&by(&[label::MODEL, label::VERSION]), &window),
        ),
        rec(record::APPROVAL_RATIO, approval(label::MODEL, &window)),
        rec(
            record::APPROVAL_RATIO_OFFSET,
            approval(label::MODEL, &offset),
        ),
        rec(
            record::APPROVAL_RATIO_DELTA,
            format!(
                "{}\n-\n{}",
                record::APPROVAL_RATIO,
                record::APPROVAL_RATIO_OFFSET
            ),
        ),
        rec(record::APPROVAL_COUNT, decisions(&window)),
        rec(record::APPROVAL_COUNT_OFFSET, decisions(&offset)),
        rec(
            record::APPROVAL_RATIO_DELTA_NOISE,
            format!(
                "sqrt(\n  {r} * (1 - {r})\n  * (1 / ({n} > 0) + 1 / ({o} > 0))\n)",
                r = record::APPROVAL_RATIO,
                n = record::APPROVAL_COUNT,
                o = record::APPROVAL_COUNT_OFFSET,
            ),
        ),
    ];
    rules.extend(binned_rules(q, config, &SCORE));
    rules.push(rec(
        record::SCORE_BIN_RATIO_OFFSET,
        bin_fractions(q, &SCORE, &offset),
    ));
    rules.push(rec(
        record::SCORE_PSI_OFFSET,
        psi(
            &by(&SCORE.keys),
            record::SCORE_BIN_RATIO,
            record::SCORE_BIN_RATIO_OFFSET,
        ),
    ));
    rules.extend(binned_rules(q, config, &FEATURE));
    rules
}

fn features(q: &Promql<'_>) -> Vec<Rule> {
    let w = q.range(RATE_WINDOW);
    let mf = by(&[label::MODEL, label::FEATURE]);
    let predictions = format!(
        "(sum by ({m}) (rate({}{w})) > 0)",
        q.histogram_series(&schema::PREDICTION_SCORE, "_count", &[]),
        m = label::MODEL
    );
    let per_prediction = |def: &schema::MetricDef| {
        format!(
            "sum by ({mf}) (rate({}{w}))\n/ on ({m}) group_left ()\n{predictions}",
            q.metric(def, &[]),
            m = label::MODEL
        )
    };
    vec![
        rec(
            record::MISSING_RATIO,
            per_prediction(&schema::FEATURE_MISSING_TOTAL),
        ),
        rec(
            record::OUT_OF_RANGE_RATIO,
            per_prediction(&schema::FEATURE_OUT_OF_RANGE_TOTAL),
        ),
        rec(
            record::FEATURE_AGE_MAX,
            format!(
                "max by ({}) ({})",
                by(&[label::MODEL, label::FEATURE_GROUP]),
                q.metric(&schema::FEATURE_AGE_SECONDS, &[])
            ),
        ),
    ]
}

/// The ground-truth rules: realized performance from `model_feedback_total` and the
/// CBPE-style estimate from `model_score_bin_total` and the reference calibration.
///
/// A label says which decision was right, by the same names as the decisions:
/// the positive class is the at-or-above side, every decision not listed in
/// `serving.approved_decisions`. The estimate is exact sums over the calibrated
/// bins: in bin `b` with `n_b` scores and calibration `c_b`, the expected true
/// positives are `Σ n_b c_b` over the bins on the positive side, the expected
/// positives `Σ n_b c_b` over all bins, and the predicted positives `Σ n_b` over
/// the positive side. The counts add up across replicas, so the ratios are the
/// fleet's.
fn ground_truth(q: &Promql<'_>, config: &MixinConfig) -> Vec<Rule> {
    let mv = by(&[label::MODEL, label::VERSION]);
    let mvb = by(&[label::MODEL, label::VERSION, label::BIN]);
    let approved: Vec<&str> = config
        .serving
        .approved_decisions
        .iter()
        .map(String::as_str)
        .collect();
    let negatives = |l: &str| one_of(l, &approved);
    let mut not_positive = approved.clone();
    not_positive.push(NO_DECISION);
    let positives = |l: &str| none_of(l, &not_positive);
    let calib = record::SCORE_CALIBRATION;
    let pos_side = format!("{calib}{{{}}}", positives(label::DECISION));
    let mut rules = vec![
        rec(
            calib,
            format!(
                "max by ({mvb}, {}) ({})",
                label::DECISION,
                q.metric(&schema::REFERENCE_SCORE_POSITIVE_RATIO, &[])
            ),
        ),
        rec(
            record::REFERENCE_PRECISION,
            format!(
                "sum by ({mv}) ({r} * on ({mvb}) {pos_side})\n/\n\
                 (sum by ({mv}) ({r} * on ({mvb}) ({pos_side} * 0 + 1)) > 0)",
                r = record::SCORE_REFERENCE_RATIO,
            ),
        ),
        rec(
            record::REFERENCE_RECALL,
            format!(
                "sum by ({mv}) ({r} * on ({mvb}) {pos_side})\n/\n\
                 (sum by ({mv}) ({r} * on ({mvb}) {calib}) > 0)",
                r = record::SCORE_REFERENCE_RATIO,
            ),
        ),
        rec(
            record::PRECISION_FLOOR,
            format!(
                "{} * {}",
                num(config.ground_truth.floor_fraction),
                record::REFERENCE_PRECISION
            ),
        ),
        rec(
            record::RECALL_FLOOR,
            format!(
                "{} * {}",
                num(config.ground_truth.floor_fraction),
                record::REFERENCE_RECALL
            ),
        ),
    ];
    for window in record::TRUTH_WINDOWS {
        let w = q.range(PromDuration::from_secs(window.seconds));
        let feedback = |matchers: &[String]| {
            format!(
                "sum by ({mv}) (increase({}{w}))",
                q.metric(&schema::FEEDBACK_TOTAL, matchers)
            )
        };
        let (pp, pn) = (positives(label::PREDICTED), negatives(label::PREDICTED));
        let (ap, an) = (positives(label::ACTUAL), negatives(label::ACTUAL));
        let ratio = |top: String, bottom: String| format!("{top}\n/\n({bottom} > 0)");
        rules.push(rec(window.labels, feedback(&[])));
        rules.push(rec(
            window.coverage,
            ratio(
                window.labels.to_string(),
                format!(
                    "sum by ({mv}) (increase({}{w}))",
                    q.metric(
                        &schema::REQUESTS_TOTAL,
                        &[eq(label::STATUS, Status::Success.as_str())]
                    )
                ),
            ),
        ));
        rules.push(rec(
            window.precision,
            ratio(
                feedback(&[pp.clone(), ap.clone()]),
                feedback(std::slice::from_ref(&pp)),
            ),
        ));
        rules.push(rec(
            window.recall,
            ratio(
                feedback(&[pp.clone(), ap.clone()]),
                feedback(std::slice::from_ref(&ap)),
            ),
        ));
        rules.push(rec(
            window.false_positive_rate,
            ratio(
                feedback(&[pp.clone(), an.clone()]),
                feedback(std::slice::from_ref(&an)),
            ),
        ));
        rules.push(rec(
            window.accuracy,
            ratio(
                format!(
                    "(\n  {}\n  +\n  {}\n)",
                    feedback(&[pp, ap.clone()]),
                    feedback(&[pn, an])
                ),
                window.labels.to_string(),
            ),
        ));
        rules.push(rec(
            window.positive_rate,
            ratio(feedback(&[ap]), window.labels.to_string()),
        ));
        let error = |suffix: &str| {
            format!(
                "sum by ({mv}) (rate({}{w}))",
                q.histogram_series(&schema::FEEDBACK_ABSOLUTE_ERROR, suffix, &[])
            )
        };
        rules.push(rec(window.mae, ratio(error("_sum"), error("_count"))));
        rules.push(rec(
            window.rmse,
            format!(
                "sqrt(\n  sum by ({mv}) (rate({}{w}))\n  /\n  ({} > 0)\n)",
                q.metric(&schema::FEEDBACK_SQUARED_ERROR_TOTAL, &[]),
                error("_count")
            ),
        ));
        for quantile in [0.5, 0.9] {
            rules.push(rec_labelled(
                window.delay,
                format!(
                    "histogram_quantile({}, sum by (le, {}) (rate({}{w})))",
                    num(quantile),
                    label::MODEL,
                    q.histogram_series(&schema::FEEDBACK_DELAY_SECONDS, "_bucket", &[])
                ),
                &[("quantile", num(quantile))],
            ));
        }
        // Scores per calibrated bin, carrying the bin's decision side.
        rules.push(rec(
            window.bin_count,
            format!(
                "sum by ({mvb}) (increase({}{w}))\n* on ({mvb}) group_right ()\n({calib} * 0 + 1)",
                q.metric(&schema::SCORE_BIN_TOTAL, &[])
            ),
        ));
        let n = window.bin_count;
        let n_pos = format!("{n}{{{}}}", positives(label::DECISION));
        rules.push(rec(window.estimated_count, format!("sum by ({mv}) ({n})")));
        let expected_tp = format!(
            "sum by ({mv}) ({n_pos} * on ({mvb}, {}) {calib})",
            label::DECISION
        );
        let expected_positives = format!(
            "sum by ({mv}) ({n} * on ({mvb}, {}) {calib})",
            label::DECISION
        );
        rules.push(rec(
            window.estimated_precision,
            ratio(expected_tp.clone(), format!("sum by ({mv}) ({n_pos})")),
        ));
        rules.push(rec(
            window.estimated_recall,
            ratio(expected_tp, format!("({expected_positives})")),
        ));
        rules.push(rec(
            window.estimated_positive_rate,
            ratio(expected_positives, window.estimated_count.to_string()),
        ));
    }
    rules
}
