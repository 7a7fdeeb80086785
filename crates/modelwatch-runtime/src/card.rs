//! Module implementing the model card: `models/<name>.card.json`. See [`ModelCard`]
//! for details, and `docs/design/card-format-2.md` for the format.
//!
//! A card says which ONNX file to load (none for a monitor-only model), the task
//! (binary classification with a threshold and two decision names, or regression),
//! where each input column comes from (a request field, an entity group of the
//! feature store, or an on-demand transform of a request field), and the holdout
//! metrics. The feature layout, the store's groups and every label value follow from
//! the card alone.
//!
//! Format 1 cards are still read: they are converted in memory into format 2, so the
//! rest of the code sees one shape. Unknown keys (such as `threshold_rule`) are kept,
//! so a newer pipeline can add fields without breaking an older runtime.

use crate::error::RuntimeError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// The card `format_version` this runtime writes (it also reads format 1).
pub const CARD_FORMAT_VERSION: u32 = 2;

/// Most input columns a card may declare: a wider model is refused at load.
pub const MAX_FEATURES: usize = 64;

/// Longest decision name, in bytes.
pub const MAX_DECISION_LEN: usize = 32;

/// The decision value of a request that decided nothing; no card may use it.
pub const NO_DECISION: &str = "none";

type Extra = serde_json::Map<String, serde_json::Value>;

/// A model card (see the module documentation). Always format 2 in memory, and
/// written as format 2.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCard {
    /// Card format version: [`CARD_FORMAT_VERSION`] once read.
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
    /// The ONNX graph; `None` for a monitor-only model.
    pub onnx: Option<OnnxSpec>,
    /// What the model predicts and how its output becomes a decision.
    pub task: Task,
    /// Feature groups by name: where their values come from.
    pub groups: BTreeMap<String, GroupSpec>,
    /// Input columns, in order.
    pub features: Vec<FeatureSpec>,
    /// Holdout metrics.
    pub metrics: CardMetrics,
    /// Free-form training details (data sizes, seeds, hyper-parameters).
    pub training: Extra,
    /// Keys this runtime does not know, kept as they are.
    pub extra: Extra,
}

/// Which graph to load and where its score is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxSpec {
    /// ONNX file name, relative to the card's directory.
    pub file: String,
    /// Graph input that takes the feature matrix; by default the graph's only input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Graph output holding the score; by default `probabilities` when the graph has
    /// it, else its only output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Column of that output holding the score (the positive class of a classifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

/// What the model predicts.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// A score in `[0, 1]`; at or above the threshold is the positive decision.
    BinaryClassification {
        /// Decision threshold.
        threshold: f64,
        /// The two `decision` label values.
        decisions: Decisions,
    },
    /// A predicted value; no threshold and no decision.
    Regression,
}

impl Task {
    /// The threshold of a binary classifier.
    pub fn threshold(&self) -> Option<f64> {
        match self {
            Task::BinaryClassification { threshold, .. } => Some(*threshold),
            Task::Regression => None,
        }
    }

    /// The decision names of a binary classifier.
    pub fn decisions(&self) -> Option<&Decisions> {
        match self {
            Task::BinaryClassification { decisions, .. } => Some(decisions),
            Task::Regression => None,
        }
    }
}

/// The two decision names of a binary classifier (`decision` label values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decisions {
    /// Score below the threshold (the fraud card: `approved`).
    pub below: String,
    /// Score at or above the threshold (the fraud card: `declined`).
    pub at_or_above: String,
}

impl Default for Decisions {
    fn default() -> Self {
        Self {
            below: "negative".into(),
            at_or_above: "positive".into(),
        }
    }
}

/// Where a feature group's values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupSource {
    /// From the request body.
    Request,
    /// From an entity group of the feature store, keyed by a request field.
    Store,
}

/// One feature group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// Where the values come from.
    pub source: GroupSource,
    /// For a store group: the request field holding the entity id.
    pub entity_key: Option<String>,
    /// For a request group: the request time field that dates its values (absent:
    /// the time the request arrived).
    pub event_time_field: Option<String>,
    /// For a store group read from Feast's online store (`--feature-store
    /// feast+redis://...`): the feature view and join key it is materialized under.
    /// Absent: the feature view is named as the group and joined on `entity_key`.
    pub feast: Option<FeastSource>,
}

/// Where a store group lives in Feast's online store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeastSource {
    /// The Feast feature view whose features the group's features are (by name).
    pub feature_view: String,
    /// The Feast entity's join key (its value is the request's entity id, a string).
    /// Default: the group's `entity_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_key: Option<String>,
}

/// An on-demand transform from the built-in set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransformFn {
    /// Hour of day, 0 to 23 (UTC), of a time field.
    HourOfDay,
    /// Day of week, 0 (Monday) to 6 (Sunday), UTC, of a time field.
    DayOfWeek,
    /// 1 on Saturday or Sunday (UTC), else 0, of a time field.
    IsWeekend,
    /// 1 for hours 0 to 5 (UTC), else 0, of a time field.
    IsNight,
    /// `ln(1 + x)` of a number field.
    Log1p,
}

/// Hours `0..NIGHT_END_HOUR` (UTC) are night for [`TransformFn::IsNight`].
pub const NIGHT_END_HOUR: i64 = 6;

const DAY_SECS: i64 = 86_400;

impl TransformFn {
    /// Every built-in transform.
    pub const ALL: [TransformFn; 5] = [
        TransformFn::HourOfDay,
        TransformFn::DayOfWeek,
        TransformFn::IsWeekend,
        TransformFn::IsNight,
        TransformFn::Log1p,
    ];

    /// The name used in cards.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransformFn::HourOfDay => "hour_of_day",
            TransformFn::DayOfWeek => "day_of_week",
            TransformFn::IsWeekend => "is_weekend",
            TransformFn::IsNight => "is_night",
            TransformFn::Log1p => "log1p",
        }
    }

    /// Whether its input is a time field (Unix seconds) rather than a number.
    pub const fn takes_time(self) -> bool {
        !matches!(self, TransformFn::Log1p)
    }

    /// Applies the transform to a time, in Unix seconds (NaN for a number transform).
    pub fn of_time(self, unix_seconds: i64) -> f32 {
        let hour = unix_seconds.rem_euclid(DAY_SECS) / 3_600;
        // 1970-01-01 was a Thursday: day 0 is weekday 3 when Monday is 0.
        let weekday = (unix_seconds.div_euclid(DAY_SECS) + 3).rem_euclid(7);
        let flag = |b: bool| f32::from(u8::from(b));
        match self {
            TransformFn::HourOfDay => hour as f32,
            TransformFn::DayOfWeek => weekday as f32,
            TransformFn::IsWeekend => flag(weekday >= 5),
            TransformFn::IsNight => flag(hour < NIGHT_END_HOUR),
            TransformFn::Log1p => f32::NAN,
        }
    }

    /// Applies the transform to a number (NaN for a time transform).
    pub fn of_number(self, x: f64) -> f32 {
        match self {
            TransformFn::Log1p => x.ln_1p() as f32,
            _ => f32::NAN,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One input column of the model.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpec {
    /// Feature name, the `feature` label value.
    pub name: String,
    /// Feature group: freshness is tracked per group, and a store group is where the
    /// value is read from.
    pub group: String,
    /// For a request-group feature: the request field it reads (by default its name).
    /// `None` for a store-group feature.
    pub field: Option<String>,
    /// For a request-group feature: the transform applied to [`FeatureSpec::field`].
    pub transform: Option<TransformFn>,
    /// Whether a missing value is allowed (then NaN, counted as missing).
    pub nullable: bool,
    /// Keys this runtime does not know, kept as they are.
    pub extra: Extra,
}

/// Holdout metrics recorded at training time; every one is optional (a regression
/// model has no AUC).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CardMetrics {
    /// ROC AUC on the holdout set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auc: Option<f64>,
    /// Precision at the card's threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// Recall at the card's threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// Rows in the holdout set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout_rows: Option<u64>,
    /// Positive-class rate in the holdout set (format 1: `fraud_rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive_rate: Option<f64>,
    /// Keys this runtime does not know, kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The kind of value a request field carries, implied by how the card uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A number read as a feature, or the input of a number transform.
    Number,
    /// A time (RFC 3339 text or Unix seconds): a time transform's input or an event
    /// time field.
    Time,
    /// An entity id keying a store group.
    EntityKey,
}

impl FieldKind {
    fn as_str(self) -> &'static str {
        match self {
            FieldKind::Number => "a number",
            FieldKind::Time => "a time",
            FieldKind::EntityKey => "an entity key",
        }
    }
}

// ---------------------------------------------------------------------------------
// The files as written: strings where a value is validated with its path.

#[derive(Deserialize)]
struct Version {
    format_version: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct RawCardV2 {
    format_version: u32,
    name: String,
    version: String,
    framework: String,
    training_date: String,
    architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    onnx: Option<OnnxSpec>,
    task: RawTask,
    #[serde(default)]
    groups: BTreeMap<String, RawGroup>,
    features: Vec<RawFeature>,
    #[serde(default)]
    metrics: CardMetrics,
    #[serde(default)]
    training: Extra,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decisions: Option<Decisions>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entity_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event_time_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feast: Option<FeastSource>,
}

#[derive(Serialize, Deserialize)]
struct RawFeature {
    name: String,
    group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transform: Option<RawTransform>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    nullable: bool,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransform {
    #[serde(rename = "fn")]
    function: String,
    field: String,
}

#[derive(Deserialize)]
struct CardV1 {
    name: String,
    version: String,
    framework: String,
    training_date: String,
    architecture: String,
    onnx_file: String,
    input_name: String,
    features: Vec<FeatureV1>,
    positive_class_output: String,
    positive_class_index: usize,
    threshold: f64,
    metrics: MetricsV1,
    #[serde(default)]
    training: Extra,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Deserialize)]
struct FeatureV1 {
    name: String,
    group: String,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Deserialize)]
struct MetricsV1 {
    auc: f64,
    precision: f64,
    recall: f64,
    holdout_rows: u64,
    fraud_rate: f64,
    #[serde(flatten)]
    extra: Extra,
}

/// How format 1 read its groups: the simulator's transaction group from the
/// request, and the customer and terminal entity groups.
const V1_TRANSACTION_GROUP: &str = "transaction";
const V1_TIME_FIELD: &str = "timestamp";
const V1_TRANSFORMS: [(&str, TransformFn); 3] = [
    ("hour", TransformFn::HourOfDay),
    ("is_weekend", TransformFn::IsWeekend),
    ("is_night", TransformFn::IsNight),
];
const V1_ENTITY_GROUPS: [(&str, &str); 2] =
    [("customer", "customer_id"), ("terminal", "terminal_id")];

impl CardV1 {
    fn into_v2(mut self) -> RawCardV2 {
        // Read by `parse` already; format 2 writes its own.
        self.extra.remove("format_version");
        let mut groups = BTreeMap::new();
        let features = self
            .features
            .into_iter()
            .map(|f| {
                let entity = V1_ENTITY_GROUPS.iter().find(|(g, _)| *g == f.group);
                let raw_group = match entity {
                    Some((_, key)) => RawGroup {
                        source: "store".into(),
                        entity_key: Some((*key).into()),
                        event_time_field: None,
                        feast: None,
                    },
                    // The transaction group, and any other group of a format 1 card
                    // (which no server could serve): request fields.
                    None => RawGroup {
                        source: "request".into(),
                        entity_key: None,
                        event_time_field: None,
                        feast: None,
                    },
                };
                groups.entry(f.group.clone()).or_insert(raw_group);
                let transform = (f.group == V1_TRANSACTION_GROUP)
                    .then(|| V1_TRANSFORMS.iter().find(|(n, _)| *n == f.name))
                    .flatten()
                    .map(|(_, t)| RawTransform {
                        function: t.as_str().into(),
                        field: V1_TIME_FIELD.into(),
                    });
                RawFeature {
                    name: f.name,
                    group: f.group,
                    field: None,
                    transform,
                    nullable: false,
                    extra: f.extra,
                }
            })
            .collect();
        RawCardV2 {
            format_version: CARD_FORMAT_VERSION,
            name: self.name,
            version: self.version,
            framework: self.framework,
            training_date: self.training_date,
            architecture: self.architecture,
            onnx: Some(OnnxSpec {
                file: self.onnx_file,
                input: Some(self.input_name),
                output: Some(self.positive_class_output),
                column: Some(self.positive_class_index),
            }),
            task: RawTask {
                kind: "binary_classification".into(),
                threshold: Some(self.threshold),
                // What format 1 cards meant: the fraud model's words.
                decisions: Some(Decisions {
                    below: "approved".into(),
                    at_or_above: "declined".into(),
                }),
            },
            groups,
            features,
            metrics: CardMetrics {
                auc: Some(self.metrics.auc),
                precision: Some(self.metrics.precision),
                recall: Some(self.metrics.recall),
                holdout_rows: Some(self.metrics.holdout_rows),
                positive_rate: Some(self.metrics.fraud_rate),
                extra: self.metrics.extra,
            },
            training: self.training,
            extra: self.extra,
        }
    }
}

/// A format 1 card's own name for a format 2 field path, so its errors name what the
/// file says.
fn v1_field(path: String) -> String {
    let renamed = match path.as_str() {
        "onnx.file" => "onnx_file",
        "onnx.input" => "input_name",
        "onnx.output" => "positive_class_output",
        "task.threshold" => "threshold",
        _ => return path,
    };
    renamed.to_string()
}

impl ModelCard {
    /// Reads and validates a card file (format 1 or 2).
    ///
    /// # Errors
    /// [`RuntimeError::FileNotFound`] or [`RuntimeError::Io`] when the file cannot be
    /// read, [`RuntimeError::Json`] when it is not a card (serde names the missing or
    /// mistyped field), [`RuntimeError::InvalidCard`] when a field's value is rejected.
    pub fn load(path: &Path) -> Result<Self, RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and validates a card from JSON text.
    ///
    /// # Errors
    /// As [`ModelCard::load`], with `<card>` standing for the path.
    pub fn from_json_str(text: &str) -> Result<Self, RuntimeError> {
        Self::parse(text, Path::new("<card>"))
    }

    fn parse(text: &str, path: &Path) -> Result<Self, RuntimeError> {
        let json = |source| RuntimeError::Json {
            path: path.to_path_buf(),
            source,
        };
        let version: Version = serde_json::from_str(text).map_err(json)?;
        let number = version.format_version.as_ref().and_then(|v| v.as_u64());
        match number {
            Some(1) => {
                let v1: CardV1 = serde_json::from_str(text).map_err(json)?;
                v1.into_v2().validate().map_err(|e| match e {
                    RuntimeError::InvalidCard { field, reason } => RuntimeError::InvalidCard {
                        field: v1_field(field),
                        reason,
                    },
                    other => other,
                })
            }
            Some(2) => {
                let raw: RawCardV2 = serde_json::from_str(text).map_err(json)?;
                raw.validate()
            }
            _ => Err(RuntimeError::card(
                "format_version",
                match version.format_version {
                    None => "is missing (this runtime reads versions 1 and 2)".to_string(),
                    Some(v) => format!(
                        "version {v} is not supported (this runtime reads versions 1 and 2)"
                    ),
                },
            )),
        }
    }

    /// Feature names, in input-column order.
    pub fn feature_names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.features.iter().map(|f| f.name.as_str())
    }

    /// The ONNX file's path, given the directory that holds the card; `None` for a
    /// monitor-only model.
    pub fn onnx_path(&self, card_dir: &Path) -> Option<PathBuf> {
        self.onnx.as_ref().map(|o| card_dir.join(&o.file))
    }

    /// The threshold of a binary classifier.
    pub fn threshold(&self) -> Option<f64> {
        self.task.threshold()
    }

    /// The decision for a score: `None` for a regression model.
    pub fn decide(&self, score: f64) -> Option<&str> {
        match &self.task {
            Task::BinaryClassification {
                threshold,
                decisions,
            } => Some(if score < *threshold {
                &decisions.below
            } else {
                &decisions.at_or_above
            }),
            Task::Regression => None,
        }
    }

    /// The request fields the card reads, each with its kind, in first-use order:
    /// the feature fields, the transform inputs, the event time fields and the entity
    /// keys.
    pub fn request_fields(&self) -> Vec<(&str, FieldKind)> {
        let mut out: Vec<(&str, FieldKind)> = Vec::new();
        for f in &self.features {
            if let Some(field) = &f.field {
                let kind = match f.transform {
                    Some(t) if t.takes_time() => FieldKind::Time,
                    _ => FieldKind::Number,
                };
                if !out.iter().any(|(n, _)| *n == field.as_str()) {
                    out.push((field.as_str(), kind));
                }
            }
        }
        for g in self.groups.values() {
            for (name, kind) in [
                (&g.event_time_field, FieldKind::Time),
                (&g.entity_key, FieldKind::EntityKey),
            ] {
                if let Some(name) = name {
                    if !out.iter().any(|(n, _)| *n == name.as_str()) {
                        out.push((name.as_str(), kind));
                    }
                }
            }
        }
        out
    }
}

impl Serialize for ModelCard {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (kind, threshold, decisions) = match &self.task {
            Task::BinaryClassification {
                threshold,
                decisions,
            } => (
                "binary_classification",
                Some(*threshold),
                Some(decisions.clone()),
            ),
            Task::Regression => ("regression", None, None),
        };
        let groups = self
            .groups
            .iter()
            .map(|(name, g)| {
                let source = match g.source {
                    GroupSource::Request => "request",
                    GroupSource::Store => "store",
                };
                let raw = RawGroup {
                    source: source.into(),
                    entity_key: g.entity_key.clone(),
                    event_time_field: g.event_time_field.clone(),
                    feast: g.feast.clone(),
                };
                (name.clone(), raw)
            })
            .collect();
        let features = self
            .features
            .iter()
            .map(|f| {
                let (field, transform) = match (f.transform, &f.field) {
                    (Some(t), Some(field)) => (
                        None,
                        Some(RawTransform {
                            function: t.as_str().into(),
                            field: field.clone(),
                        }),
                    ),
                    // A field named like its feature is the default: left out.
                    (_, field) => (field.clone().filter(|name| *name != f.name), None),
                };
                RawFeature {
                    name: f.name.clone(),
                    group: f.group.clone(),
                    field,
                    transform,
                    nullable: f.nullable,
                    extra: f.extra.clone(),
                }
            })
            .collect();
        RawCardV2 {
            format_version: CARD_FORMAT_VERSION,
            name: self.name.clone(),
            version: self.version.clone(),
            framework: self.framework.clone(),
            training_date: self.training_date.clone(),
            architecture: self.architecture.clone(),
            onnx: self.onnx.clone(),
            task: RawTask {
                kind: kind.into(),
                threshold,
                decisions,
            },
            groups,
            features,
            metrics: self.metrics.clone(),
            training: self.training.clone(),
            extra: self.extra.clone(),
        }
        .serialize(serializer)
    }
}

fn is_label_safe(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && s.len() <= MAX_DECISION_LEN
}

fn not_empty(field: &str, value: &str) -> Result<(), RuntimeError> {
    if value.trim().is_empty() {
        return Err(RuntimeError::card(field, "must not be empty"));
    }
    Ok(())
}

impl RawCardV2 {
    /// Checks every field and builds the typed card. The paths in the errors are
    /// format 2 paths (`task.threshold`, `features[3].transform.fn`).
    fn validate(self) -> Result<ModelCard, RuntimeError> {
        if self.format_version != CARD_FORMAT_VERSION {
            return Err(RuntimeError::card(
                "format_version",
                format!("version {} is not format 2", self.format_version),
            ));
        }
        for (field, value) in [("name", &self.name), ("version", &self.version)] {
            not_empty(field, value)?;
        }
        if !is_iso_date(&self.training_date) {
            return Err(RuntimeError::card(
                "training_date",
                format!("`{}` is not a YYYY-MM-DD date", self.training_date),
            ));
        }
        if let Some(onnx) = &self.onnx {
            not_empty("onnx.file", &onnx.file)?;
            let file = Path::new(&onnx.file);
            if file.is_absolute()
                || file
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(RuntimeError::card(
                    "onnx.file",
                    format!(
                        "`{}` must be a path relative to the card's directory, without `..`",
                        onnx.file
                    ),
                ));
            }
            for (field, value) in [("onnx.input", &onnx.input), ("onnx.output", &onnx.output)] {
                if let Some(value) = value {
                    not_empty(field, value)?;
                }
            }
        }
        let task = validate_task(self.task)?;
        let groups = validate_groups(self.groups)?;
        let features = validate_features(self.features, &groups)?;
        let card = ModelCard {
            format_version: CARD_FORMAT_VERSION,
            name: self.name,
            version: self.version,
            framework: self.framework,
            training_date: self.training_date,
            architecture: self.architecture,
            onnx: self.onnx,
            task,
            groups,
            features,
            metrics: self.metrics,
            training: self.training,
            extra: self.extra,
        };
        validate_field_kinds(&card)?;
        Ok(card)
    }
}

fn validate_task(task: RawTask) -> Result<Task, RuntimeError> {
    match task.kind.as_str() {
        "binary_classification" => {
            let threshold = task.threshold.ok_or_else(|| {
                RuntimeError::card("task.threshold", "a binary classifier needs a threshold")
            })?;
            if !(threshold.is_finite() && (0.0..=1.0).contains(&threshold)) {
                return Err(RuntimeError::card(
                    "task.threshold",
                    format!("{threshold} is outside [0, 1]"),
                ));
            }
            let decisions = task.decisions.unwrap_or_default();
            for (field, name) in [
                ("task.decisions.below", &decisions.below),
                ("task.decisions.at_or_above", &decisions.at_or_above),
            ] {
                if !is_label_safe(name) {
                    return Err(RuntimeError::card(
                        field,
                        format!(
                            "`{name}` is not a label value: write [a-z][a-z0-9_]*, at most {MAX_DECISION_LEN} bytes"
                        ),
                    ));
                }
                if name == NO_DECISION {
                    return Err(RuntimeError::card(
                        field,
                        format!("`{NO_DECISION}` is reserved for requests that decided nothing"),
                    ));
                }
            }
            if decisions.below == decisions.at_or_above {
                return Err(RuntimeError::card(
                    "task.decisions",
                    format!("both decisions are `{}`; they must differ", decisions.below),
                ));
            }
            Ok(Task::BinaryClassification {
                threshold,
                decisions,
            })
        }
        "regression" => {
            if task.threshold.is_some() || task.decisions.is_some() {
                return Err(RuntimeError::card(
                    "task",
                    "a regression model has no threshold and no decisions",
                ));
            }
            Ok(Task::Regression)
        }
        other => Err(RuntimeError::card(
            "task.type",
            format!("`{other}` is not a task; write binary_classification or regression"),
        )),
    }
}

fn validate_groups(
    groups: BTreeMap<String, RawGroup>,
) -> Result<BTreeMap<String, GroupSpec>, RuntimeError> {
    let mut out = BTreeMap::new();
    for (name, g) in groups {
        let path = |f: &str| format!("groups.{name}.{f}");
        if name.trim().is_empty() {
            return Err(RuntimeError::card(
                "groups",
                "a group name must not be empty",
            ));
        }
        let source = match g.source.as_str() {
            "request" => GroupSource::Request,
            "store" => GroupSource::Store,
            other => {
                return Err(RuntimeError::card(
                    path("source"),
                    format!("`{other}` is not a source; write request or store"),
                ));
            }
        };
        match source {
            GroupSource::Store => {
                match &g.entity_key {
                    None => {
                        return Err(RuntimeError::card(
                            path("entity_key"),
                            "a store group needs the request field that keys it",
                        ));
                    }
                    Some(key) => not_empty(&path("entity_key"), key)?,
                }
                if g.event_time_field.is_some() {
                    return Err(RuntimeError::card(
                        path("event_time_field"),
                        "a store group carries its own event time",
                    ));
                }
                if let Some(feast) = &g.feast {
                    not_empty(&path("feast.feature_view"), &feast.feature_view)?;
                    if let Some(key) = &feast.join_key {
                        not_empty(&path("feast.join_key"), key)?;
                    }
                }
            }
            GroupSource::Request => {
                if g.entity_key.is_some() {
                    return Err(RuntimeError::card(
                        path("entity_key"),
                        "only a store group is keyed by an entity",
                    ));
                }
                if let Some(field) = &g.event_time_field {
                    not_empty(&path("event_time_field"), field)?;
                }
                if g.feast.is_some() {
                    return Err(RuntimeError::card(
                        path("feast"),
                        "only a store group is read from Feast",
                    ));
                }
            }
        }
        out.insert(
            name,
            GroupSpec {
                source,
                entity_key: g.entity_key,
                event_time_field: g.event_time_field,
                feast: g.feast,
            },
        );
    }
    Ok(out)
}

fn validate_features(
    features: Vec<RawFeature>,
    groups: &BTreeMap<String, GroupSpec>,
) -> Result<Vec<FeatureSpec>, RuntimeError> {
    if features.is_empty() {
        return Err(RuntimeError::card(
            "features",
            "must list at least one feature",
        ));
    }
    if features.len() > MAX_FEATURES {
        return Err(RuntimeError::card(
            "features",
            format!(
                "lists {} features; at most {MAX_FEATURES} are supported",
                features.len()
            ),
        ));
    }
    let mut seen = HashSet::with_capacity(features.len());
    let mut out = Vec::with_capacity(features.len());
    for (i, f) in features.into_iter().enumerate() {
        let path = |p: &str| format!("features[{i}].{p}");
        not_empty(&path("name"), &f.name)?;
        if !seen.insert(f.name.clone()) {
            return Err(RuntimeError::card(
                path("name"),
                format!("duplicate feature name `{}`", f.name),
            ));
        }
        let group = groups.get(&f.group).ok_or_else(|| {
            RuntimeError::card(
                path("group"),
                format!(
                    "group `{}` is not declared in `groups` (declared: {})",
                    f.group,
                    groups.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        let (field, transform) = match group.source {
            GroupSource::Store => {
                if f.field.is_some() || f.transform.is_some() {
                    return Err(RuntimeError::card(
                        path(if f.field.is_some() {
                            "field"
                        } else {
                            "transform"
                        }),
                        format!(
                            "feature `{}` is read from store group `{}`, not from a request field",
                            f.name, f.group
                        ),
                    ));
                }
                (None, None)
            }
            GroupSource::Request => match f.transform {
                Some(t) => {
                    if f.field.is_some() {
                        return Err(RuntimeError::card(
                            path("field"),
                            "a transformed feature names its field in `transform.field`",
                        ));
                    }
                    let function = TransformFn::parse(&t.function).ok_or_else(|| {
                        RuntimeError::card(
                            path("transform.fn"),
                            format!(
                                "`{}` is not a built-in transform; known: {}",
                                t.function,
                                TransformFn::ALL.map(TransformFn::as_str).join(", ")
                            ),
                        )
                    })?;
                    not_empty(&path("transform.field"), &t.field)?;
                    (Some(t.field), Some(function))
                }
                None => {
                    let field = f.field.unwrap_or_else(|| f.name.clone());
                    not_empty(&path("field"), &field)?;
                    (Some(field), None)
                }
            },
        };
        out.push(FeatureSpec {
            name: f.name,
            group: f.group,
            field,
            transform,
            nullable: f.nullable,
            extra: f.extra,
        });
    }
    Ok(out)
}

/// A request field is one kind of value: a field read as a number and as a time, or
/// as a number and as an entity key, is a card mistake.
fn validate_field_kinds(card: &ModelCard) -> Result<(), RuntimeError> {
    let mut sources = Vec::new();
    for (i, f) in card.features.iter().enumerate() {
        if let Some(field) = &f.field {
            let (kind, path) = match f.transform {
                Some(t) if t.takes_time() => (FieldKind::Time, "transform.field"),
                Some(_) => (FieldKind::Number, "transform.field"),
                None => (FieldKind::Number, "field"),
            };
            sources.push((field.clone(), kind, format!("features[{i}].{path}")));
        }
    }
    for (name, g) in &card.groups {
        if let Some(field) = &g.event_time_field {
            sources.push((
                field.clone(),
                FieldKind::Time,
                format!("groups.{name}.event_time_field"),
            ));
        }
        if let Some(key) = &g.entity_key {
            sources.push((
                key.clone(),
                FieldKind::EntityKey,
                format!("groups.{name}.entity_key"),
            ));
        }
    }
    let mut kinds: Vec<&(String, FieldKind, String)> = Vec::new();
    for source in &sources {
        let (name, kind, path) = source;
        match kinds.iter().find(|(n, _, _)| n == name) {
            Some((_, seen, first)) if seen != kind => {
                return Err(RuntimeError::card(
                    path.clone(),
                    format!(
                        "request field `{name}` is {} here but {} at `{first}`",
                        kind.as_str(),
                        seen.as_str()
                    ),
                ));
            }
            Some(_) => {}
            None => kinds.push(source),
        }
    }
    Ok(())
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
    use serde_json::json;

    fn models() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
    }

    /// A small valid format 2 card, as JSON, so tests can break one field at a time.
    fn v2() -> serde_json::Value {
        json!({"format_version": 2, "name": "toy", "version": "1.0.0",
            "framework": "none", "training_date": "2026-11-24", "architecture": "toy",
            "onnx": {"file": "toy.onnx"},
            "task": {"type": "binary_classification", "threshold": 0.5},
            "groups": {"req": {"source": "request", "event_time_field": "at"},
                       "user": {"source": "store", "entity_key": "user_id"}},
            "features": [
                {"name": "amount", "group": "req"},
                {"name": "price", "group": "req", "field": "price_eur", "nullable": true},
                {"name": "hour", "group": "req", "transform": {"fn": "hour_of_day", "field": "at"}},
                {"name": "log_amount", "group": "req", "transform": {"fn": "log1p", "field": "amount"}},
                {"name": "user_nb_tx", "group": "user"}],
            "threshold_rule": "kept"})
    }

    fn parse(card: &serde_json::Value) -> Result<ModelCard, RuntimeError> {
        ModelCard::from_json_str(&card.to_string())
    }

    fn refusal(card: &serde_json::Value) -> String {
        parse(card).expect_err("card must be refused").to_string()
    }

    #[test]
    fn format_2_parses_with_defaults() {
        let card = parse(&v2()).unwrap();
        assert_eq!(card.task.decisions(), Some(&Decisions::default()));
        assert_eq!(card.decide(0.49), Some("negative"));
        assert_eq!(card.decide(0.5), Some("positive"));
        assert_eq!(card.features[0].field.as_deref(), Some("amount"));
        assert_eq!(card.features[1].field.as_deref(), Some("price_eur"));
        assert!(card.features[1].nullable && !card.features[0].nullable);
        assert_eq!(card.features[2].transform, Some(TransformFn::HourOfDay));
        assert_eq!(card.features[4].field, None);
        assert_eq!(card.groups["user"].entity_key.as_deref(), Some("user_id"));
        assert_eq!(
            card.request_fields(),
            [
                ("amount", FieldKind::Number),
                ("price_eur", FieldKind::Number),
                ("at", FieldKind::Time),
                ("user_id", FieldKind::EntityKey),
            ]
        );
        assert_eq!(card.extra["threshold_rule"], "kept");
        // Written as format 2 and read back the same.
        let back = ModelCard::from_json_str(&serde_json::to_string(&card).unwrap()).unwrap();
        assert_eq!(back, card);
    }

    #[test]
    fn regression_and_monitor_only_cards() {
        let mut card = v2();
        card["task"] = json!({"type": "regression"});
        card.as_object_mut().unwrap().remove("onnx");
        let card = parse(&card).unwrap();
        assert_eq!(card.task, Task::Regression);
        assert_eq!(card.decide(0.9), None);
        assert_eq!(card.onnx_path(Path::new("models")), None);
    }

    #[test]
    fn format_1_reads_as_format_2() {
        let v1 = ModelCard::load(&models().join("fixtures/fraud.v1.card.json")).unwrap();
        let v2 = ModelCard::load(&models().join("fraud.card.json")).unwrap();
        assert_eq!(v1, v2);
        assert_eq!(v2.decide(0.0), Some("approved"));
        assert_eq!(v2.decide(1.0), Some("declined"));
        assert_eq!(v2.metrics.positive_rate, Some(0.011073));
        assert_eq!(v2.features[1].transform, Some(TransformFn::HourOfDay));
        assert_eq!(v2.features[1].field.as_deref(), Some("timestamp"));
        assert_eq!(
            v2.groups["terminal"].entity_key.as_deref(),
            Some("terminal_id")
        );
        assert_eq!(v2.groups["transaction"].source, GroupSource::Request);
    }

    #[test]
    fn format_1_errors_name_format_1_fields() {
        let mut card: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(models().join("fixtures/fraud.v1.card.json")).unwrap(),
        )
        .unwrap();
        card["threshold"] = 1.5.into();
        assert_eq!(
            refusal(&card),
            "model card field `threshold`: 1.5 is outside [0, 1]"
        );
    }

    #[test]
    fn each_refusal_names_its_field() {
        type Breaks = fn(&mut serde_json::Value);
        let cases: Vec<(Breaks, &str)> = vec![
            (
                |c| c["format_version"] = 3.into(),
                "model card field `format_version`: version 3 is not supported (this runtime reads versions 1 and 2)",
            ),
            (
                |c| {
                    c.as_object_mut().unwrap().remove("format_version");
                },
                "model card field `format_version`: is missing (this runtime reads versions 1 and 2)",
            ),
            (
                |c| c["features"][3]["name"] = "amount".into(),
                "model card field `features[3].name`: duplicate feature name `amount`",
            ),
            (
                |c| c["features"] = json!([]),
                "model card field `features`: must list at least one feature",
            ),
            (
                |c| {
                    c["features"] = (0..65)
                        .map(|i| json!({"name": format!("f{i}"), "group": "req"}))
                        .collect()
                },
                "model card field `features`: lists 65 features; at most 64 are supported",
            ),
            (
                |c| c["features"][0]["group"] = "nope".into(),
                "model card field `features[0].group`: group `nope` is not declared in `groups` (declared: req, user)",
            ),
            (
                |c| {
                    c["groups"]["user"]
                        .as_object_mut()
                        .unwrap()
                        .remove("entity_key");
                },
                "model card field `groups.user.entity_key`: a store group needs the request field that keys it",
            ),
            (
                |c| c["groups"]["req"]["entity_key"] = "x".into(),
                "model card field `groups.req.entity_key`: only a store group is keyed by an entity",
            ),
            (
                |c| c["groups"]["user"]["event_time_field"] = "at".into(),
                "model card field `groups.user.event_time_field`: a store group carries its own event time",
            ),
            (
                |c| c["groups"]["req"]["source"] = "kafka".into(),
                "model card field `groups.req.source`: `kafka` is not a source; write request or store",
            ),
            (
                |c| c["features"][2]["transform"]["fn"] = "sqrt".into(),
                "model card field `features[2].transform.fn`: `sqrt` is not a built-in transform; known: hour_of_day, day_of_week, is_weekend, is_night, log1p",
            ),
            (
                |c| c["features"][4]["field"] = "x".into(),
                "model card field `features[4].field`: feature `user_nb_tx` is read from store group `user`, not from a request field",
            ),
            (
                |c| c["features"][3]["transform"]["field"] = "at".into(),
                "model card field `features[3].transform.field`: request field `at` is a number here but a time at `features[2].transform.field`",
            ),
            (
                |c| c["features"][0]["field"] = "user_id".into(),
                "model card field `groups.user.entity_key`: request field `user_id` is an entity key here but a number at `features[0].field`",
            ),
            (
                |c| c["task"]["threshold"] = 1.5.into(),
                "model card field `task.threshold`: 1.5 is outside [0, 1]",
            ),
            (
                |c| c["task"]["threshold"] = (-0.1).into(),
                "model card field `task.threshold`: -0.1 is outside [0, 1]",
            ),
            (
                |c| {
                    c["task"].as_object_mut().unwrap().remove("threshold");
                },
                "model card field `task.threshold`: a binary classifier needs a threshold",
            ),
            (
                |c| c["task"]["type"] = "multiclass".into(),
                "model card field `task.type`: `multiclass` is not a task; write binary_classification or regression",
            ),
            (
                |c| c["task"] = json!({"type": "regression", "threshold": 0.5}),
                "model card field `task`: a regression model has no threshold and no decisions",
            ),
            (
                |c| c["task"]["decisions"] = json!({"below": "ok", "at_or_above": "Fraud!"}),
                "model card field `task.decisions.at_or_above`: `Fraud!` is not a label value: write [a-z][a-z0-9_]*, at most 32 bytes",
            ),
            (
                |c| c["task"]["decisions"] = json!({"below": "x".repeat(33), "at_or_above": "y"}),
                "is not a label value",
            ),
            (
                |c| c["task"]["decisions"] = json!({"below": "none", "at_or_above": "fraud"}),
                "model card field `task.decisions.below`: `none` is reserved for requests that decided nothing",
            ),
            (
                |c| c["task"]["decisions"] = json!({"below": "same", "at_or_above": "same"}),
                "model card field `task.decisions`: both decisions are `same`; they must differ",
            ),
            (
                |c| c["onnx"]["file"] = "../etc/model.onnx".into(),
                "model card field `onnx.file`: `../etc/model.onnx` must be a path relative to the card's directory, without `..`",
            ),
            (
                |c| c["training_date"] = "24/11/2026".into(),
                "model card field `training_date`: `24/11/2026` is not a YYYY-MM-DD date",
            ),
            (
                |c| c["name"] = " ".into(),
                "model card field `name`: must not be empty",
            ),
        ];
        for (i, (breaks, expected)) in cases.into_iter().enumerate() {
            let mut card = v2();
            breaks(&mut card);
            let message = refusal(&card);
            assert!(message.contains(expected), "case {i}: {message}");
        }
        // A threshold that is not finite cannot be written in JSON; serde refuses it.
        let text = v2()
            .to_string()
            .replace("\"threshold\":0.5", "\"threshold\":NaN");
        assert!(ModelCard::from_json_str(&text).is_err());
    }

    #[test]
    fn transforms() {
        // 2026-01-03 (a Saturday) at 02:30 UTC.
        let t = 1_767_407_400;
        assert_eq!(TransformFn::HourOfDay.of_time(t), 2.0);
        assert_eq!(TransformFn::DayOfWeek.of_time(t), 5.0);
        assert_eq!(TransformFn::IsWeekend.of_time(t), 1.0);
        assert_eq!(TransformFn::IsNight.of_time(t), 1.0);
        assert_eq!(TransformFn::IsNight.of_time(t + 4 * 3_600), 0.0);
        assert_eq!(TransformFn::IsWeekend.of_time(t + 2 * DAY_SECS), 0.0);
        assert_eq!(TransformFn::Log1p.of_number(0.0), 0.0);
        assert!((TransformFn::Log1p.of_number(std::f64::consts::E - 1.0) - 1.0).abs() < 1e-6);
        assert!(TransformFn::Log1p.of_time(t).is_nan());
    }

    #[test]
    fn iso_dates() {
        assert!(is_iso_date("2026-01-31"));
        assert!(!is_iso_date("2026-13-01"));
        assert!(!is_iso_date("26-01-01"));
        assert!(!is_iso_date("2026/01/01"));
    }
}
