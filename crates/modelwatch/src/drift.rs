//! Module implementing reference distributions and drift statistics. See
//! [`ReferenceBins`], [`ModelReference`] and [`DriftStats`] for details.
//!
//! # Bins
//!
//! A reference cuts a value's range into bins at its inner [`edges`](ReferenceBins::edges)
//! (`edges.len() + 1` bins). Bins are upper-inclusive, like a Prometheus `le` bucket:
//! a value `v` falls in the first bin `i` with `v <= edges[i]`, and in the last bin when
//! it is above every edge. The first and last bins are open-ended, so every non-NaN
//! value, infinities included, falls in exactly one bin.
//!
//! The `bin` label value of a bin is its upper edge written as the shortest decimal
//! that reads back to the same `f64` (`0.05`, `120`, `-3.5`), and `+Inf` for the last
//! bin (see [`ReferenceBins::bin_labels`]). Counters and reference gauges share these
//! labels, so a PromQL rule joins them `on (model, version, bin)` or
//! `on (model, feature, bin)`. A new reference with other edges creates other `bin`
//! values, so counts binned one way are never compared with a reference binned another.
//!
//! # Statistics
//!
//! Every statistic compares the current fractions `p` (counts divided by their total)
//! with the reference ratios `q`, bin by bin, with the natural logarithm:
//!
//! - **PSI** = Σ (p′ − q′) · ln(p′ / q′) where p′ = max(p, ε) and q′ = max(q, ε),
//!   ε = [`EPSILON`] = 1e-4. The clamped values are used in both factors and are **not**
//!   renormalised, so a PromQL rule that applies `clamp_min(x, 1e-4)` to each ratio
//!   computes the same number. An empty bin contributes a large but finite term.
//! - **Jensen-Shannon divergence** = ½ Σ p · ln(p / m) + ½ Σ q · ln(q / m) with
//!   m = (p + q) / 2, in nats (natural log, so it lies in [0, ln 2]; divide by ln 2 for
//!   bits). No smoothing: a term with p = 0 is 0. It is the square of SciPy's
//!   `jensenshannon(p, q)` distance. In PromQL, `p * ln(clamp_min(p, 1e-4) / m)` gives
//!   the same terms as long as no non-zero fraction is below 1e-4.
//! - **KS** (binned) = maxᵢ |Pᵢ − Qᵢ| where P and Q are the cumulative fractions up to
//!   and including bin i: the Kolmogorov-Smirnov statistic evaluated at the edges.
//! - **Wasserstein-1** (binned) places each bin's mass at the bin's centre, the outer
//!   bins being closed by the reference [`min`](ReferenceBins::min) and
//!   [`max`](ReferenceBins::max), and returns Σᵢ |Pᵢ − Qᵢ| · (cᵢ₊₁ − cᵢ) over
//!   consecutive centres c: the earth mover's distance between the two binned
//!   distributions, in the value's own unit. It equals SciPy's
//!   `wasserstein_distance(c, c, p, q)`.
//!
//! KS and Wasserstein need no smoothing. All four are 0 for identical distributions.

use std::fmt::Write as _;

/// The floor applied to each fraction before PSI takes its logarithm.
pub const EPSILON: f64 = 1e-4;

/// How far the reference ratios may sum away from 1.
const RATIO_SUM_TOLERANCE: f64 = 1e-6;

/// A reference distribution over bins: where the bins are cut and what fraction of
/// the reference data fell in each.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceBins {
    /// Inner cut points, strictly increasing and finite; `value <= edges[i]` falls in
    /// bin `i`, and values above the last edge fall in the last, open-ended bin.
    pub edges: Vec<f64>,
    /// Fraction of the reference in each bin: `edges.len() + 1` values that sum to 1.
    pub ratios: Vec<f64>,
    /// Smallest reference value; below it a value is out of range.
    pub min: f64,
    /// Largest reference value; above it a value is out of range.
    pub max: f64,
}

/// The reference of one feature: its name and feature group from the model card, and
/// its bins.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureReference {
    /// Feature name, the `feature` label.
    pub name: String,
    /// Feature group (a feature store entity or table), the `feature_group` label.
    pub group: String,
    /// The feature's reference distribution.
    pub bins: ReferenceBins,
}

/// The reference distributions of one model: its score and each input feature, in
/// the order the model reads its features.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReference {
    /// Reference distribution of the prediction score.
    pub score: ReferenceBins,
    /// Reference distribution of each feature, in model input order.
    pub features: Vec<FeatureReference>,
}

/// A reference or drift configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DriftError {
    /// A distribution's bins are malformed.
    #[error("invalid reference bins for {subject}: {reason}")]
    InvalidBins {
        /// `score` or `feature NAME`.
        subject: String,
        /// What is wrong.
        reason: String,
    },
    /// More features than the configured limit.
    #[error("the reference has {count} features, more than the limit of {limit}")]
    TooManyFeatures {
        /// Features in the reference.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// More distinct feature groups than the configured limit.
    #[error("the reference has {count} feature groups, more than the limit of {limit}")]
    TooManyFeatureGroups {
        /// Distinct groups in the reference.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A feature name appears twice.
    #[error("feature {0:?} appears twice in the reference")]
    DuplicateFeature(String),
    /// A feature or feature group name is empty.
    #[error("a feature or feature group name is empty")]
    EmptyName,
    /// The sliding window settings are unusable.
    #[error("invalid drift window: {0}")]
    InvalidWindow(String),
}

/// The four drift statistics of one distribution against its reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftStats {
    /// Population stability index, see [`psi`].
    pub psi: f64,
    /// Jensen-Shannon divergence in nats, see [`jensen_shannon`].
    pub jensen_shannon: f64,
    /// Binned Kolmogorov-Smirnov statistic, see [`ks`].
    pub ks: f64,
    /// Binned Wasserstein-1 distance in the value's unit, see [`wasserstein`].
    pub wasserstein: f64,
}

/// Index of the bin holding `value` among the bins cut at `edges` (upper-inclusive):
/// the number of edges below `value`.
///
/// A reference has at most a few tens of edges, and quantile bins make every bin
/// equally likely, so a branch-free count beats a binary search whose branches
/// mispredict: with 20 features of 9 edges, `DriftHandle::record_prediction` took
/// 130 ns this way and 260 ns with `partition_point`. NaN falls in the first bin;
/// callers treat NaN as missing before binning.
#[inline]
pub fn bin_index(edges: &[f64], value: f64) -> usize {
    edges.iter().map(|edge| usize::from(*edge < value)).sum()
}

/// Writes `counts / total` into `out` and returns the total; `out` is left as zeros
/// when the total is 0.
///
/// # Panics
///
/// When `counts` and `out` differ in length.
pub fn fractions(counts: &[u64], out: &mut [f64]) -> u64 {
    assert_eq!(counts.len(), out.len(), "one fraction per count");
    let total: u64 = counts.iter().sum();
    for (o, c) in out.iter_mut().zip(counts) {
        *o = if total == 0 {
            0.0
        } else {
            *c as f64 / total as f64
        };
    }
    total
}

fn same_len(current: &[f64], reference: &[f64]) {
    assert_eq!(
        current.len(),
        reference.len(),
        "current and reference have different bins"
    );
}

/// Population stability index of `current` against `reference` fractions, each
/// clamped at [`EPSILON`] without renormalising (see the module docs).
///
/// # Panics
///
/// When the slices differ in length.
pub fn psi(current: &[f64], reference: &[f64]) -> f64 {
    same_len(current, reference);
    current
        .iter()
        .zip(reference)
        .map(|(&p, &q)| {
            let (p, q) = (p.max(EPSILON), q.max(EPSILON));
            (p - q) * (p / q).ln()
        })
        .sum()
}

/// `a · ln(a / m)`, with the convention 0 · ln 0 = 0.
fn relative_entropy_term(a: f64, m: f64) -> f64 {
    if a > 0.0 { a * (a / m).ln() } else { 0.0 }
}

/// Jensen-Shannon divergence of `current` and `reference` fractions in nats (natural
/// log), in `[0, ln 2]`; no smoothing.
///
/// # Panics
///
/// When the slices differ in length.
pub fn jensen_shannon(current: &[f64], reference: &[f64]) -> f64 {
    same_len(current, reference);
    let sum: f64 = current
        .iter()
        .zip(reference)
        .map(|(&p, &q)| {
            let m = 0.5 * (p + q);
            relative_entropy_term(p, m) + relative_entropy_term(q, m)
        })
        .sum();
    (0.5 * sum).max(0.0)
}

/// Binned Kolmogorov-Smirnov statistic: the largest absolute difference between the
/// cumulative fractions at the bin edges.
///
/// # Panics
///
/// When the slices differ in length.
pub fn ks(current: &[f64], reference: &[f64]) -> f64 {
    same_len(current, reference);
    let (mut p, mut q, mut worst) = (0.0, 0.0, 0.0f64);
    for (a, b) in current.iter().zip(reference) {
        p += a;
        q += b;
        worst = worst.max((p - q).abs());
    }
    worst
}

/// Wasserstein-1 distance between two distributions whose mass sits at increasing
/// `positions` (one per bin, for example [`ReferenceBins::centres`]).
///
/// # Panics
///
/// When the three slices differ in length.
pub fn wasserstein(current: &[f64], reference: &[f64], positions: &[f64]) -> f64 {
    same_len(current, reference);
    assert_eq!(current.len(), positions.len(), "one position per bin");
    let (mut p, mut q, mut distance) = (0.0, 0.0, 0.0);
    for i in 0..current.len().saturating_sub(1) {
        p += current[i];
        q += reference[i];
        distance += (p - q).abs() * (positions[i + 1] - positions[i]);
    }
    distance
}

impl ReferenceBins {
    /// Number of bins, `edges.len() + 1`.
    pub fn bin_count(&self) -> usize {
        self.edges.len() + 1
    }

    /// Index of the bin that holds `value`.
    pub fn bin(&self, value: f64) -> usize {
        bin_index(&self.edges, value)
    }

    /// Whether `value` lies outside the reference `[min, max]`.
    pub fn is_out_of_range(&self, value: f64) -> bool {
        value < self.min || value > self.max
    }

    /// The `bin` label value of each bin: its upper edge, and `+Inf` for the last.
    pub fn bin_labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = self.edges.iter().map(|e| bin_label(*e)).collect();
        labels.push("+Inf".to_string());
        labels
    }

    /// The centre of each bin, the outer bins closed by `min` and `max`: the positions
    /// the binned Wasserstein distance uses.
    pub fn centres(&self) -> Vec<f64> {
        let mut bounds = Vec::with_capacity(self.edges.len() + 2);
        bounds.push(self.min);
        bounds.extend_from_slice(&self.edges);
        bounds.push(self.max);
        bounds.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect()
    }

    /// The four statistics of `current` fractions against these ratios.
    ///
    /// # Panics
    ///
    /// When `current` has not one fraction per bin.
    pub fn compare_fractions(&self, current: &[f64]) -> DriftStats {
        DriftStats {
            psi: psi(current, &self.ratios),
            jensen_shannon: jensen_shannon(current, &self.ratios),
            ks: ks(current, &self.ratios),
            wasserstein: wasserstein(current, &self.ratios, &self.centres()),
        }
    }

    /// The four statistics of `counts` (one per bin) against these ratios, or `None`
    /// when there is nothing counted.
    ///
    /// # Panics
    ///
    /// When `counts` has not one count per bin.
    pub fn compare_counts(&self, counts: &[u64]) -> Option<DriftStats> {
        let mut current = vec![0.0; counts.len()];
        (fractions(counts, &mut current) > 0).then(|| self.compare_fractions(&current))
    }

    /// Checks the invariants the hot path and the statistics rely on; `subject` names
    /// the distribution in the error.
    pub fn validate(&self, subject: &str, max_bins: usize) -> Result<(), DriftError> {
        let fail = |reason: String| DriftError::InvalidBins {
            subject: subject.to_string(),
            reason,
        };
        if self.bin_count() > max_bins {
            return Err(fail(format!(
                "{} bins, more than the limit of {max_bins}",
                self.bin_count()
            )));
        }
        if self.ratios.len() != self.bin_count() {
            return Err(fail(format!(
                "{} edges need {} ratios, got {}",
                self.edges.len(),
                self.bin_count(),
                self.ratios.len()
            )));
        }
        if !self.min.is_finite() || !self.max.is_finite() || self.min > self.max {
            return Err(fail(format!(
                "min {} and max {} are not a range",
                self.min, self.max
            )));
        }
        if self.edges.iter().any(|e| !e.is_finite()) {
            return Err(fail("edges must be finite".into()));
        }
        if self.edges.windows(2).any(|w| w[0] >= w[1]) {
            return Err(fail("edges must be strictly increasing".into()));
        }
        if let (Some(first), Some(last)) = (self.edges.first(), self.edges.last()) {
            if *first < self.min || *last > self.max {
                return Err(fail(format!(
                    "edges [{first}, {last}] reach outside min {} and max {}",
                    self.min, self.max
                )));
            }
        }
        if self.ratios.iter().any(|r| !r.is_finite() || *r < 0.0) {
            return Err(fail("ratios must be finite and non-negative".into()));
        }
        let sum: f64 = self.ratios.iter().sum();
        if (sum - 1.0).abs() > RATIO_SUM_TOLERANCE {
            return Err(fail(format!("ratios sum to {sum}, not 1")));
        }
        Ok(())
    }
}

/// The `bin` label of an upper edge: the shortest decimal that reads back to it.
fn bin_label(edge: f64) -> String {
    let mut label = String::new();
    // -0.0 and 0.0 are the same edge; one label for both.
    let edge = if edge == 0.0 { 0.0 } else { edge };
    let _ = write!(label, "{edge}");
    label
}

impl ModelReference {
    /// The distinct feature groups, in order of first appearance.
    pub fn feature_groups(&self) -> Vec<&str> {
        let mut groups: Vec<&str> = Vec::new();
        for f in &self.features {
            if !groups.contains(&f.group.as_str()) {
                groups.push(&f.group);
            }
        }
        groups
    }

    /// Checks every distribution and the limits on features, groups and bins.
    pub fn validate(
        &self,
        max_features: usize,
        max_groups: usize,
        max_bins: usize,
    ) -> Result<(), DriftError> {
        self.score.validate("score", max_bins)?;
        if self.features.len() > max_features {
            return Err(DriftError::TooManyFeatures {
                count: self.features.len(),
                limit: max_features,
            });
        }
        for (i, f) in self.features.iter().enumerate() {
            if f.name.is_empty() || f.group.is_empty() {
                return Err(DriftError::EmptyName);
            }
            if self.features[..i].iter().any(|g| g.name == f.name) {
                return Err(DriftError::DuplicateFeature(f.name.clone()));
            }
            f.bins.validate(&format!("feature {}", f.name), max_bins)?;
        }
        let groups = self.feature_groups().len();
        if groups > max_groups {
            return Err(DriftError::TooManyFeatureGroups {
                count: groups,
                limit: max_groups,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decile_bins() -> ReferenceBins {
        ReferenceBins {
            edges: vec![0.1, 0.2, 0.5],
            ratios: vec![0.25, 0.25, 0.25, 0.25],
            min: 0.0,
            max: 1.0,
        }
    }

    #[test]
    fn bins_are_upper_inclusive_and_open_ended() {
        let bins = decile_bins();
        assert_eq!(bins.bin(f64::NEG_INFINITY), 0);
        assert_eq!(bins.bin(-5.0), 0);
        assert_eq!(bins.bin(0.1), 0);
        assert_eq!(bins.bin(0.1000001), 1);
        assert_eq!(bins.bin(0.2), 1);
        assert_eq!(bins.bin(0.5), 2);
        assert_eq!(bins.bin(0.7), 3);
        assert_eq!(bins.bin(f64::INFINITY), 3);
        assert!(bins.is_out_of_range(-0.01));
        assert!(bins.is_out_of_range(1.01));
        assert!(!bins.is_out_of_range(1.0));
    }

    #[test]
    fn counting_edges_agrees_with_a_binary_search() {
        let edges = [-3.0, -0.5, 0.0, 0.25, 1.0, 7.5, 100.0];
        for i in -50..=120 {
            for v in [f64::from(i) * 0.5, f64::from(i) * 0.25 - 0.1] {
                assert_eq!(
                    bin_index(&edges, v),
                    edges.partition_point(|e| *e < v),
                    "{v}"
                );
            }
        }
        for v in edges {
            assert_eq!(edges[bin_index(&edges, v)], v, "an edge is in its own bin");
        }
        assert_eq!(bin_index(&[], 3.0), 0);
    }

    #[test]
    fn bin_labels_are_the_upper_edges() {
        let bins = ReferenceBins {
            edges: vec![-0.0, 0.05, 120.0, 1e-7],
            ..decile_bins()
        };
        assert_eq!(bins.bin_labels(), ["0", "0.05", "120", "0.0000001", "+Inf"]);
    }

    #[test]
    fn identical_distributions_do_not_drift() {
        let bins = decile_bins();
        let stats = bins.compare_counts(&[5, 5, 5, 5]).expect("counted");
        assert_eq!(stats.psi, 0.0);
        assert_eq!(stats.jensen_shannon, 0.0);
        assert_eq!(stats.ks, 0.0);
        assert_eq!(stats.wasserstein, 0.0);
        assert_eq!(bins.compare_counts(&[0, 0, 0, 0]), None);
    }

    #[test]
    fn psi_clamps_empty_bins_without_renormalising() {
        let p = [1.0, 0.0];
        let q = [0.5, 0.5];
        let expected = (1.0 - 0.5) * (1.0f64 / 0.5).ln() + (EPSILON - 0.5) * (EPSILON / 0.5).ln();
        assert_eq!(psi(&p, &q), expected);
    }

    #[test]
    fn validation_names_the_problem() {
        let mut bins = decile_bins();
        assert_eq!(bins.validate("score", 20), Ok(()));
        assert!(bins.validate("score", 3).is_err());
        bins.ratios[0] = 0.3;
        let err = bins.validate("score", 20).expect_err("refused");
        assert!(err.to_string().contains("sum to"), "{err}");
        let unsorted = ReferenceBins {
            edges: vec![0.2, 0.1, 0.5],
            ..decile_bins()
        };
        assert!(
            unsorted
                .validate("feature amount", 20)
                .expect_err("refused")
                .to_string()
                .contains("feature amount")
        );
        let outside = ReferenceBins {
            min: 0.15,
            ..decile_bins()
        };
        assert!(outside.validate("score", 20).is_err());
    }

    /// Cases computed independently with NumPy and SciPy by
    /// `tests/fixtures/make_drift_fixtures.py`.
    #[test]
    fn statistics_match_scipy_fixtures() {
        let fixtures: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/drift_cases.json"))
                .expect("fixture JSON parses");
        assert_eq!(fixtures["epsilon"].as_f64(), Some(EPSILON));
        let floats = |v: &serde_json::Value| -> Vec<f64> {
            v.as_array()
                .expect("an array")
                .iter()
                .map(|x| x.as_f64().expect("a number"))
                .collect()
        };
        let cases = fixtures["cases"].as_array().expect("cases");
        assert!(cases.len() >= 12, "a dozen cases at least");
        for case in cases {
            let name = case["name"].as_str().expect("a name");
            let r = &case["reference"];
            let bins = ReferenceBins {
                edges: floats(&r["edges"]),
                ratios: floats(&r["ratios"]),
                min: r["min"].as_f64().expect("min"),
                max: r["max"].as_f64().expect("max"),
            };
            bins.validate(name, 20)
                .expect("fixture references are valid");
            let counts: Vec<u64> = case["counts"]
                .as_array()
                .expect("counts")
                .iter()
                .map(|c| c.as_u64().expect("a count"))
                .collect();
            let stats = bins
                .compare_counts(&counts)
                .expect("fixtures count something");
            for (statistic, actual) in [
                ("psi", stats.psi),
                ("jensen_shannon", stats.jensen_shannon),
                ("ks", stats.ks),
                ("wasserstein", stats.wasserstein),
            ] {
                let expected = case[statistic].as_f64().expect("a statistic");
                assert!(
                    (actual - expected).abs() <= 1e-9,
                    "{name} {statistic}: library {actual}, scipy {expected}"
                );
            }
        }
    }

    #[test]
    fn model_validation_enforces_limits_and_unique_names() {
        let feature = |name: &str, group: &str| FeatureReference {
            name: name.into(),
            group: group.into(),
            bins: decile_bins(),
        };
        let mut reference = ModelReference {
            score: decile_bins(),
            features: vec![
                feature("amount", "tx"),
                feature("age", "customer"),
                feature("n", "tx"),
            ],
        };
        assert_eq!(reference.feature_groups(), ["tx", "customer"]);
        assert_eq!(reference.validate(3, 2, 10), Ok(()));
        assert_eq!(
            reference.validate(2, 2, 10),
            Err(DriftError::TooManyFeatures { count: 3, limit: 2 })
        );
        assert_eq!(
            reference.validate(3, 1, 10),
            Err(DriftError::TooManyFeatureGroups { count: 2, limit: 1 })
        );
        reference.features.push(feature("amount", "tx"));
        assert_eq!(
            reference.validate(8, 8, 10),
            Err(DriftError::DuplicateFeature("amount".into()))
        );
    }
}
