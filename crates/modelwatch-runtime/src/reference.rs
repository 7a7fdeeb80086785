//! Reference distributions: `models/<name>.reference.json`.
//!
//! For the score and for each feature, the holdout set is cut into about `n` bins at
//! its quantiles, and the file records the fraction of holdout rows in each bin. Live
//! traffic is counted in the same bins, and drift statistics (PSI, Jensen-Shannon, KS)
//! compare the two. The format is documented in `docs/reference-format.md`.
//!
//! # Bins
//! `edges` are the inner cut points, strictly increasing; `edges.len() + 1` bins. Bins
//! are upper-inclusive like a Prometheus `le` bucket: a value `v` falls in the first bin
//! `i` with `v <= edges[i]`, and in the last bin when it is above every edge. The first
//! and last bins are open-ended, so every number (infinities included) has a bin. NaN
//! is a missing value and has none.

use crate::card::ModelCard;
use crate::error::RuntimeError;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// The reference `format_version` this runtime reads and writes.
pub const REFERENCE_FORMAT_VERSION: u32 = 1;

/// How far the fractions of a distribution may sum away from 1.
const FRACTION_SUM_TOLERANCE: f64 = 1e-9;

/// The reference distributions of one model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Format version; only [`REFERENCE_FORMAT_VERSION`] is supported.
    pub format_version: u32,
    /// Model name (the card's `name`).
    pub model: String,
    /// Model version (the card's `version`).
    pub version: String,
    /// Holdout rows the reference was built from.
    pub rows: u64,
    /// Bins asked for; discrete values and ties can give fewer.
    pub bins: usize,
    /// Distribution of the score (the positive-class probability).
    pub score: Distribution,
    /// Distribution of each feature, in the card's (model input) order.
    pub features: Vec<Distribution>,
}

/// The binned distribution of one value (the score or a feature).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Feature name, or `score`.
    pub name: String,
    /// Feature group from the card; absent for the score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Inner cut points, strictly increasing and finite (see the module docs).
    pub edges: Vec<f64>,
    /// Fraction of the non-missing holdout values in each bin: `edges.len() + 1`
    /// numbers that sum to 1.
    pub fractions: Vec<f64>,
    /// Smallest holdout value.
    pub min: f64,
    /// Largest holdout value.
    pub max: f64,
    /// Fraction of holdout rows where the value is missing (NaN or empty).
    pub missing_fraction: f64,
    /// The score's calibration: in each bin, the fraction of the holdout rows whose
    /// label is positive. Only the score has it, and only when the holdout had a
    /// label column (`modelwatch reference` finds `is_fraud` or `label`); files
    /// without it still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive_fractions: Option<Vec<f64>>,
}

impl Distribution {
    /// Bins `values` at their quantiles into at most `n_bins` bins. NaN is missing.
    ///
    /// The cut for quantile `k / n_bins` is the smallest value with at least that
    /// fraction of values at or below it. Repeated cuts collapse, and a cut at the
    /// maximum is dropped (the last bin would be empty), so a feature with few distinct
    /// values gets fewer bins; one with at most `n_bins` distinct values gets one bin per
    /// value. Each edge is then the shortest decimal between its cut value (included)
    /// and the next larger holdout value (excluded): every holdout value stays in the
    /// same bin, and the edges read well as `bin` label values.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidReference`] when `n_bins < 2` or no value is present.
    pub fn from_values(
        name: &str,
        group: Option<&str>,
        values: impl IntoIterator<Item = f32>,
        n_bins: usize,
    ) -> Result<Self, RuntimeError> {
        if n_bins < 2 {
            return Err(RuntimeError::reference(
                "bins",
                format!("{n_bins} bins asked for; at least 2 are needed"),
            ));
        }
        let mut total = 0usize;
        let mut sorted: Vec<f32> = values
            .into_iter()
            .inspect(|_| total += 1)
            .filter(|v| !v.is_nan())
            .collect();
        if sorted.is_empty() {
            return Err(RuntimeError::reference(
                name,
                format!("no value present in {total} rows"),
            ));
        }
        sorted.sort_by(f32::total_cmp);
        let n = sorted.len();
        let min = sorted[0];
        let max = sorted[n - 1];

        let mut distinct: Vec<f32> = sorted.clone();
        distinct.dedup();
        let cuts: Vec<f32> = if distinct.len() <= n_bins {
            distinct[..distinct.len() - 1].to_vec()
        } else {
            let mut cuts: Vec<f32> = (1..n_bins)
                .map(|k| {
                    // Smallest index i with (i + 1) / n >= k / n_bins.
                    let i = (k * n).div_ceil(n_bins).saturating_sub(1);
                    sorted[i]
                })
                .filter(|c| *c < max && c.is_finite())
                .collect();
            cuts.dedup();
            cuts
        };
        let mut edges = Vec::with_capacity(cuts.len());
        for cut in cuts {
            // The next larger holdout value: the first distinct value above the cut.
            let at = distinct.partition_point(|v| *v <= cut);
            let next = distinct.get(at).copied().unwrap_or(f32::INFINITY);
            edges.push(shortest_decimal_in(f64::from(cut), f64::from(next)));
        }

        let mut counts = vec![0u64; edges.len() + 1];
        for v in &sorted {
            counts[bin_of(&edges, f64::from(*v))] += 1;
        }
        let fractions = counts.iter().map(|c| *c as f64 / n as f64).collect();
        Ok(Distribution {
            name: name.to_string(),
            group: group.map(str::to_string),
            edges,
            fractions,
            min: f64::from(min),
            max: f64::from(max),
            missing_fraction: (total - n) as f64 / total as f64,
            positive_fractions: None,
        })
    }

    /// Adds the calibration: each cut in `cuts` becomes an edge (moved to the
    /// shortest decimal between the largest holdout value below it and the cut, so
    /// every holdout value below a cut stays below its edge), the fractions are
    /// recounted, and each bin gets the fraction of positive labels among its values
    /// ([`Distribution::positive_fractions`]; 0 for an empty bin).
    ///
    /// # Errors
    /// [`RuntimeError::InvalidReference`] when `values` and `positives` differ in
    /// length or no value is present.
    pub fn calibrate(
        &mut self,
        values: &[f32],
        positives: &[bool],
        cuts: &[f64],
    ) -> Result<(), RuntimeError> {
        if values.len() != positives.len() {
            return Err(RuntimeError::reference(
                "labels",
                format!("{} labels for {} scores", positives.len(), values.len()),
            ));
        }
        let mut sorted: Vec<f64> = values
            .iter()
            .filter(|v| !v.is_nan())
            .map(|v| f64::from(*v))
            .collect();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return Err(RuntimeError::reference("labels", "no score present"));
        }
        for &cut in cuts {
            let below = sorted.partition_point(|v| *v < cut);
            if below == 0 || below == sorted.len() || !cut.is_finite() {
                continue;
            }
            let edge = shortest_decimal_in(sorted[below - 1], cut);
            if !self.edges.contains(&edge) {
                self.edges.push(edge);
            }
        }
        self.edges.sort_by(f64::total_cmp);
        self.edges.dedup();
        let bins = self.edges.len() + 1;
        let (mut counts, mut positive) = (vec![0u64; bins], vec![0u64; bins]);
        for (v, p) in values.iter().zip(positives) {
            if v.is_nan() {
                continue;
            }
            let b = bin_of(&self.edges, f64::from(*v));
            counts[b] += 1;
            positive[b] += u64::from(*p);
        }
        let n = sorted.len() as f64;
        self.fractions = counts.iter().map(|c| *c as f64 / n).collect();
        self.positive_fractions = Some(
            counts
                .iter()
                .zip(&positive)
                .map(|(c, p)| if *c == 0 { 0.0 } else { *p as f64 / *c as f64 })
                .collect(),
        );
        Ok(())
    }

    /// Number of bins, `edges.len() + 1`.
    pub fn bin_count(&self) -> usize {
        self.edges.len() + 1
    }

    /// The bin holding `value` (binary search over the edges; `value == edge` falls in
    /// the bin that edge closes), or `None` for NaN, which is a missing value.
    pub fn bin_index(&self, value: f32) -> Option<usize> {
        if value.is_nan() {
            None
        } else {
            Some(bin_of(&self.edges, f64::from(value)))
        }
    }

    /// Whether `value` lies outside the holdout's `[min, max]` (NaN is not).
    pub fn is_out_of_range(&self, value: f32) -> bool {
        let v = f64::from(value);
        v < self.min || v > self.max
    }

    /// Checks the invariants: finite, strictly increasing edges; one fraction per bin,
    /// each in `[0, 1]`, summing to 1; `min <= max`; a missing fraction in `[0, 1]`.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidReference`] naming `field` and what is wrong.
    pub fn validate(&self, field: &str) -> Result<(), RuntimeError> {
        let bad =
            |what: &str, reason: String| RuntimeError::reference(format!("{field}.{what}"), reason);
        if self.name.trim().is_empty() {
            return Err(bad("name", "must not be empty".into()));
        }
        if let Some(e) = self.edges.iter().find(|e| !e.is_finite()) {
            return Err(bad("edges", format!("{e} is not finite")));
        }
        if let Some(w) = self.edges.windows(2).find(|w| w[0] >= w[1]) {
            return Err(bad(
                "edges",
                format!("not strictly increasing at {} then {}", w[0], w[1]),
            ));
        }
        if self.fractions.len() != self.bin_count() {
            return Err(bad(
                "fractions",
                format!(
                    "{} values for {} bins (edges + 1)",
                    self.fractions.len(),
                    self.bin_count()
                ),
            ));
        }
        if let Some(f) = self.fractions.iter().find(|f| !(0.0..=1.0).contains(*f)) {
            return Err(bad("fractions", format!("{f} is outside [0, 1]")));
        }
        let sum: f64 = self.fractions.iter().sum();
        if (sum - 1.0).abs() > FRACTION_SUM_TOLERANCE {
            return Err(bad("fractions", format!("sum to {sum}, not 1")));
        }
        if self.min.is_nan() || self.max.is_nan() || self.min > self.max {
            return Err(bad(
                "min",
                format!("{} is above max {}", self.min, self.max),
            ));
        }
        if let Some(p) = &self.positive_fractions {
            if p.len() != self.bin_count() {
                return Err(bad(
                    "positive_fractions",
                    format!("{} values for {} bins", p.len(), self.bin_count()),
                ));
            }
            if let Some(f) = p.iter().find(|f| !(0.0..=1.0).contains(*f)) {
                return Err(bad("positive_fractions", format!("{f} is outside [0, 1]")));
            }
        }
        if !(0.0..=1.0).contains(&self.missing_fraction) {
            return Err(bad(
                "missing_fraction",
                format!("{} is outside [0, 1]", self.missing_fraction),
            ));
        }
        Ok(())
    }
}

/// Index of the bin holding `value` among bins cut at `edges` (upper-inclusive).
fn bin_of(edges: &[f64], value: f64) -> usize {
    edges.partition_point(|e| *e < value)
}

/// The number with the fewest significant decimal digits in `[low, high)`, where
/// `low < high`; `low` itself when no shorter decimal fits.
fn shortest_decimal_in(low: f64, high: f64) -> f64 {
    if low <= 0.0 && 0.0 < high {
        return 0.0;
    }
    if !high.is_finite() {
        // Only for a cut below the last value; cuts never reach +inf. Keep the cut.
        return low;
    }
    for digits in 0..17 {
        let text = format!("{low:.digits$e}");
        let Ok(rounded) = text.parse::<f64>() else {
            continue;
        };
        // `rounded` is the nearest decimal with digits + 1 significant digits; the one
        // just above `low` is either it or the next one up.
        let candidate = if rounded >= low {
            rounded
        } else {
            let exponent: i32 = text
                .split_once('e')
                .and_then(|(_, e)| e.parse().ok())
                .unwrap_or(0);
            let step_text = format!("1e{}", exponent - digits as i32);
            let Ok(step) = step_text.parse::<f64>() else {
                continue;
            };
            // Re-round so the sum prints as a short decimal.
            let bumped = rounded + step;
            format!("{bumped:.digits$e}")
                .parse::<f64>()
                .unwrap_or(bumped)
        };
        if low <= candidate && candidate < high {
            return candidate;
        }
    }
    low
}

impl Reference {
    /// Builds the reference of `card`'s model from holdout `rows` (row-major, one column
    /// per card feature, NaN for missing) and the model's `scores` for those rows.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidReference`] when `rows` is not `scores.len()` rows of the
    /// card's width, when there are no rows, or when a feature has no value at all.
    pub fn build(
        card: &ModelCard,
        rows: &[f32],
        scores: &[f32],
        n_bins: usize,
    ) -> Result<Self, RuntimeError> {
        let width = card.features.len();
        if scores.is_empty() {
            return Err(RuntimeError::reference("rows", "the holdout set is empty"));
        }
        if rows.len() != scores.len() * width {
            return Err(RuntimeError::reference(
                "rows",
                format!(
                    "{} values are not {} rows of {width} features",
                    rows.len(),
                    scores.len()
                ),
            ));
        }
        let score = Distribution::from_values("score", None, scores.iter().copied(), n_bins)?;
        let features = card
            .features
            .iter()
            .enumerate()
            .map(|(j, spec)| {
                Distribution::from_values(
                    &spec.name,
                    Some(&spec.group),
                    rows.chunks_exact(width).map(|r| r[j]),
                    n_bins,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let reference = Reference {
            format_version: REFERENCE_FORMAT_VERSION,
            model: card.name.clone(),
            version: card.version.clone(),
            rows: scores.len() as u64,
            bins: n_bins,
            score,
            features,
        };
        reference.validate()?;
        Ok(reference)
    }

    /// Adds the score's calibration from the holdout's labels (see
    /// [`Distribution::calibrate`]), with extra score edges where a live estimate
    /// needs them: the decision threshold, so that the bins split exactly where the
    /// decision does, and the quartiles of the positives' scores, where the positives
    /// are. Without these, a rare positive class sits in the top decile's one bin.
    ///
    /// # Errors
    /// As [`Distribution::calibrate`].
    pub fn calibrate(
        &mut self,
        scores: &[f32],
        positives: &[bool],
        threshold: Option<f64>,
    ) -> Result<(), RuntimeError> {
        let mut positive_scores: Vec<f64> = scores
            .iter()
            .zip(positives)
            .filter(|(s, p)| **p && !s.is_nan())
            .map(|(s, _)| f64::from(*s))
            .collect();
        positive_scores.sort_by(f64::total_cmp);
        let mut cuts: Vec<f64> = threshold.into_iter().collect();
        if !positive_scores.is_empty() {
            for q in [1, 2, 3] {
                let i = (q * positive_scores.len()) / 4;
                cuts.push(positive_scores[i.min(positive_scores.len() - 1)]);
            }
        }
        self.score.calibrate(scores, positives, &cuts)?;
        self.validate()
    }

    /// Reads and validates a reference file.
    ///
    /// # Errors
    /// [`RuntimeError::FileNotFound`] / [`RuntimeError::Io`] when it cannot be read,
    /// [`RuntimeError::Json`] when it is not a reference, and
    /// [`RuntimeError::InvalidReference`] when a value breaks an invariant.
    pub fn load(path: &Path) -> Result<Self, RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::io(path, e))?;
        let reference: Reference =
            serde_json::from_str(&text).map_err(|source| RuntimeError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        reference.validate()?;
        Ok(reference)
    }

    /// Writes the reference as pretty JSON with a final newline.
    ///
    /// # Errors
    /// [`RuntimeError::Io`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), RuntimeError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|source| RuntimeError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        text.push('\n');
        std::fs::write(path, text).map_err(|e| RuntimeError::io(path, e))
    }

    /// Checks the format version and every distribution, and that feature names are
    /// unique.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidReference`] naming the first offending field.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        if self.format_version != REFERENCE_FORMAT_VERSION {
            return Err(RuntimeError::reference(
                "format_version",
                format!(
                    "version {} is not supported (this runtime reads version {REFERENCE_FORMAT_VERSION})",
                    self.format_version
                ),
            ));
        }
        self.score.validate("score")?;
        let mut seen = HashSet::new();
        for (i, f) in self.features.iter().enumerate() {
            let field = format!("features[{i}]");
            f.validate(&field)?;
            if !seen.insert(f.name.as_str()) {
                return Err(RuntimeError::reference(
                    format!("{field}.name"),
                    format!("duplicate feature `{}`", f.name),
                ));
            }
        }
        Ok(())
    }

    /// Checks that the reference belongs to `card`: same model name and a distribution
    /// for every card feature.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidReference`] naming the mismatch.
    pub fn check_card(&self, card: &ModelCard) -> Result<(), RuntimeError> {
        if self.model != card.name {
            return Err(RuntimeError::reference(
                "model",
                format!("`{}` but the card is for `{}`", self.model, card.name),
            ));
        }
        for spec in &card.features {
            if self.feature(&spec.name).is_none() {
                return Err(RuntimeError::reference(
                    "features",
                    format!("no distribution for card feature `{}`", spec.name),
                ));
            }
        }
        Ok(())
    }

    /// The distribution of feature `name`.
    pub fn feature(&self, name: &str) -> Option<&Distribution> {
        self.features.iter().find(|f| f.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_decimal_stays_in_the_interval() {
        assert_eq!(shortest_decimal_in(0.123_456, 0.2), 0.13);
        assert_eq!(shortest_decimal_in(1.0, 2.0), 1.0);
        assert_eq!(shortest_decimal_in(1.04, 1.2), 1.1);
        assert_eq!(shortest_decimal_in(-3.7, -3.1), -3.7);
        assert_eq!(shortest_decimal_in(-3.75, -3.1), -3.7);
        assert_eq!(shortest_decimal_in(9.94, 10.5), 10.0);
        assert_eq!(shortest_decimal_in(-0.5, 0.25), 0.0);
        assert_eq!(shortest_decimal_in(99.5, 101.0), 100.0);
        assert_eq!(shortest_decimal_in(123.0, 123.5), 123.0);
        let low = f64::from(0.1f32);
        let high = f64::from(f32::from_bits(0.1f32.to_bits() + 1));
        let e = shortest_decimal_in(low, high);
        assert!(low <= e && e < high);
    }
}
