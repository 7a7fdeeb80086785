//! The model card: `models/<name>.card.json`, written by the training pipeline.
//!
//! The card says which ONNX file to load, what its input columns mean (in order), which
//! output and column hold the positive-class probability, the decision threshold, and
//! the holdout metrics. Unknown keys (such as `threshold_rule`) are kept, so a newer
//! pipeline can add fields without breaking an older runtime.

use crate::error::RuntimeError;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The card `format_version` this runtime reads and writes.
pub const CARD_FORMAT_VERSION: u32 = 1;

/// A model card (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Card format version; only [`CARD_FORMAT_VERSION`] is supported.
    pub format_version: u32,
    /// Model name, the `model` label value (such as `fraud`).
    pub name: String,
    /// Model version, the `version` label value (such as `1.0.0`).
    pub version: String,
    /// Training framework and version (such as `scikit-learn 1.9.1`).
    pub framework: String,
    /// Training date, `YYYY-MM-DD`.
    pub training_date: String,
    /// Short architecture description (such as `GradientBoostingClassifier(100 trees)`).
    pub architecture: String,
    /// ONNX file name, relative to the card's directory.
    pub onnx_file: String,
    /// Name of the graph input that takes the feature matrix.
    pub input_name: String,
    /// Input columns, in order.
    pub features: Vec<FeatureSpec>,
    /// Graph output holding class probabilities (such as `probabilities`).
    pub positive_class_output: String,
    /// Column of that output holding the positive-class probability.
    pub positive_class_index: usize,
    /// Decision threshold: a score at or above it declines, below it approves.
    pub threshold: f64,
    /// Holdout metrics.
    pub metrics: CardMetrics,
    /// Free-form training details (data sizes, seeds, hyper-parameters).
    #[serde(default)]
    pub training: serde_json::Map<String, serde_json::Value>,
    /// Keys this runtime does not know, kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One input column of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Feature name, the `feature` label value.
    pub name: String,
    /// Feature group (freshness is tracked per group).
    pub group: String,
    /// Keys this runtime does not know, kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Holdout metrics recorded at training time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardMetrics {
    /// ROC AUC on the holdout set.
    pub auc: f64,
    /// Precision at the card's threshold.
    pub precision: f64,
    /// Recall at the card's threshold.
    pub recall: f64,
    /// Rows in the holdout set.
    pub holdout_rows: u64,
    /// Positive (fraud) rate in the holdout set.
    pub fraud_rate: f64,
    /// Keys this runtime does not know, kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ModelCard {
    /// Reads and validates a card file.
    ///
    /// # Errors
    /// [`RuntimeError::FileNotFound`] or [`RuntimeError::Io`] when the file cannot be
    /// read, [`RuntimeError::Json`] when it is not a card (serde names the missing or
    /// mistyped field), [`RuntimeError::InvalidCard`] when a field's value is rejected.
    pub fn load(path: &Path) -> Result<Self, RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::io(path, e))?;
        let card: ModelCard = serde_json::from_str(&text).map_err(|source| RuntimeError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        card.validate()?;
        Ok(card)
    }

    /// Parses and validates a card from JSON text.
    ///
    /// # Errors
    /// As [`ModelCard::load`], with `<card>` standing for the path.
    pub fn from_json_str(text: &str) -> Result<Self, RuntimeError> {
        let card: ModelCard = serde_json::from_str(text).map_err(|source| RuntimeError::Json {
            path: PathBuf::from("<card>"),
            source,
        })?;
        card.validate()?;
        Ok(card)
    }

    /// Checks the field values: supported format version, non-empty names, a threshold
    /// in `[0, 1]`, a non-empty list of unique feature names, a relative ONNX file name
    /// and a `YYYY-MM-DD` training date.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidCard`] naming the first offending field.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        if self.format_version != CARD_FORMAT_VERSION {
            return Err(RuntimeError::card(
                "format_version",
                format!(
                    "version {} is not supported (this runtime reads version {CARD_FORMAT_VERSION})",
                    self.format_version
                ),
            ));
        }
        for (field, value) in [
            ("name", &self.name),
            ("version", &self.version),
            ("onnx_file", &self.onnx_file),
            ("input_name", &self.input_name),
            ("positive_class_output", &self.positive_class_output),
        ] {
            if value.trim().is_empty() {
                return Err(RuntimeError::card(field, "must not be empty"));
            }
        }
        let onnx = Path::new(&self.onnx_file);
        if onnx.is_absolute()
            || onnx
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(RuntimeError::card(
                "onnx_file",
                format!(
                    "`{}` must be a path relative to the card's directory, without `..`",
                    self.onnx_file
                ),
            ));
        }
        if !is_iso_date(&self.training_date) {
            return Err(RuntimeError::card(
                "training_date",
                format!("`{}` is not a YYYY-MM-DD date", self.training_date),
            ));
        }
        if !(self.threshold.is_finite() && (0.0..=1.0).contains(&self.threshold)) {
            return Err(RuntimeError::card(
                "threshold",
                format!("{} is outside [0, 1]", self.threshold),
            ));
        }
        if self.features.is_empty() {
            return Err(RuntimeError::card(
                "features",
                "must list at least one feature",
            ));
        }
        let mut seen = HashSet::with_capacity(self.features.len());
        for (i, f) in self.features.iter().enumerate() {
            if f.name.trim().is_empty() {
                return Err(RuntimeError::card(
                    format!("features[{i}].name"),
                    "must not be empty",
                ));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(RuntimeError::card(
                    format!("features[{i}].name"),
                    format!("duplicate feature name `{}`", f.name),
                ));
            }
        }
        Ok(())
    }

    /// Feature names, in input-column order.
    pub fn feature_names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.features.iter().map(|f| f.name.as_str())
    }

    /// The ONNX file's path, given the directory that holds the card.
    pub fn onnx_path(&self, card_dir: &Path) -> PathBuf {
        card_dir.join(&self.onnx_file)
    }
}

fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4) && digits(5..7) && digits(8..10)) {
        return false;
    }
    let month: u32 = s[5..7].parse().unwrap_or(0);
    let day: u32 = s[8..10].parse().unwrap_or(0);
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_json() -> String {
        r#"{"format_version": 1, "name": "fraud", "version": "1.0.0",
            "framework": "scikit-learn 1.9.1", "training_date": "2026-11-24",
            "architecture": "GradientBoostingClassifier", "onnx_file": "fraud.onnx",
            "input_name": "features",
            "features": [{"name": "amount", "group": "transaction"},
                         {"name": "hour", "group": "transaction"}],
            "positive_class_output": "probabilities", "positive_class_index": 1,
            "threshold": 0.42, "threshold_rule": "max F1",
            "metrics": {"auc": 0.9, "precision": 0.5, "recall": 0.6,
                        "holdout_rows": 1000, "fraud_rate": 0.02},
            "training": {"seed": 7}}"#
            .to_string()
    }

    #[test]
    fn parses_and_keeps_unknown_keys() {
        let card = ModelCard::from_json_str(&sample_json()).expect("valid card");
        assert_eq!(card.name, "fraud");
        assert_eq!(card.feature_names().collect::<Vec<_>>(), ["amount", "hour"]);
        assert_eq!(card.extra["threshold_rule"], "max F1");
        assert_eq!(card.training["seed"], 7);
        let back = serde_json::to_string(&card).expect("serializes");
        assert!(back.contains("threshold_rule"));
    }

    #[test]
    fn iso_dates() {
        assert!(is_iso_date("2026-01-31"));
        assert!(!is_iso_date("2026-13-01"));
        assert!(!is_iso_date("26-01-01"));
        assert!(!is_iso_date("2026/01/01"));
    }
}
