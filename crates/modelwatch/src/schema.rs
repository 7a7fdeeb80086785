//! The metric schema: every metric name, type, label and meaning, declared once.
//!
//! This module is the only place where a metric name is spelled. The registry, the
//! generated `docs/metrics.md`, the mixin's rules and dashboards all read from
//! [`ALL`], so a name can never drift between the code and what queries it.

/// How a metric is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonically increasing counter (exposed with a `_total` suffix).
    Counter,
    /// A value that can go up and down.
    Gauge,
    /// A classic histogram (`_bucket`, `_sum`, `_count`).
    Histogram,
    /// A constant `1` whose labels describe what is loaded (`_info` suffix).
    Info,
}

impl Kind {
    /// The type name as Prometheus documents it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Info => "info",
        }
    }
}

/// One metric family of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// The full exposed name, suffix included (`model_requests_total`).
    pub name: &'static str,
    /// Counter, gauge, histogram or info.
    pub kind: Kind,
    /// Label names, in exposition order.
    pub labels: &'static [&'static str],
    /// One line that says what the metric is for.
    pub help: &'static str,
}

impl MetricDef {
    /// The name to give `prometheus-client` when registering: the crate appends
    /// `_total` to counters and `_info` to info metrics itself.
    pub fn registration_name(&self) -> &'static str {
        let suffix = match self.kind {
            Kind::Counter => "_total",
            Kind::Info => "_info",
            Kind::Gauge | Kind::Histogram => "",
        };
        self.name.strip_suffix(suffix).unwrap_or(self.name)
    }

    /// The help text as registered (prometheus-client appends a period).
    pub fn registration_help(&self) -> &'static str {
        self.help.strip_suffix('.').unwrap_or(self.help)
    }

    /// Series names this family exposes (`_bucket`, `_sum`, `_count` for histograms).
    pub fn series_names(&self) -> Vec<String> {
        match self.kind {
            Kind::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{}{}", self.name, s))
                .collect(),
            _ => vec![self.name.to_string()],
        }
    }
}

/// Label names used across the schema.
pub mod label {
    /// The model's name, from its model card or the library caller's config.
    pub const MODEL: &str = "model";
    /// The model version, bounded by a cardinality guard.
    pub const VERSION: &str = "version";
    /// Request outcome, see [`crate::Status`].
    pub const STATUS: &str = "status";
    /// Decision taken on the score, see [`crate::Decision`].
    pub const DECISION: &str = "decision";
    /// Inference stage, see [`crate::Stage`].
    pub const STAGE: &str = "stage";
    /// Cache operation, see [`crate::CacheOperation`].
    pub const OPERATION: &str = "operation";
    /// Feature store error kind, see [`crate::StoreErrorKind`].
    pub const KIND: &str = "kind";
    /// Serving framework of the loaded model.
    pub const FRAMEWORK: &str = "framework";
    /// Training date from the model card.
    pub const TRAINING_DATE: &str = "training_date";
    /// Model architecture from the model card.
    pub const ARCHITECTURE: &str = "architecture";
    /// Which label a cardinality guard folded into `other`.
    pub const LABEL: &str = "label";
    /// Feature name, from the model's reference (bounded by `DriftConfig::max_features`).
    pub const FEATURE: &str = "feature";
    /// Feature group (a feature store entity or table), from the model's reference.
    pub const FEATURE_GROUP: &str = "feature_group";
    /// Upper edge of a reference bin (`+Inf` for the last), like a histogram's `le`.
    pub const BIN: &str = "bin";
    /// Length of a per-replica sliding window, such as `1h`.
    pub const WINDOW: &str = "window";
    /// What the collector did with a prediction event, see
    /// [`crate::ObservationOutcome`].
    pub const OUTCOME: &str = "outcome";
    /// What an event named that the card does not declare, see
    /// [`crate::IgnoredField`].
    pub const FIELD: &str = "field";
}

use label::*;

/// Requests by outcome and decision: rate and error ratio.
pub const REQUESTS_TOTAL: MetricDef = MetricDef {
    name: "model_requests_total",
    kind: Kind::Counter,
    labels: &[MODEL, VERSION, STATUS, DECISION],
    help: "Prediction requests by outcome (success, error, timeout, rejected, overloaded, cancelled) and decision.",
};

/// Requests in flight.
pub const ACTIVE_REQUESTS: MetricDef = MetricDef {
    name: "model_active_requests",
    kind: Kind::Gauge,
    labels: &[MODEL],
    help: "Prediction requests currently in flight.",
};

/// End-to-end request latency.
pub const REQUEST_DURATION_SECONDS: MetricDef = MetricDef {
    name: "model_request_duration_seconds",
    kind: Kind::Histogram,
    labels: &[MODEL, VERSION],
    help: "End-to-end prediction latency in seconds, the basis of the latency SLO.",
};

/// Latency per inference stage.
pub const STAGE_DURATION_SECONDS: MetricDef = MetricDef {
    name: "model_stage_duration_seconds",
    kind: Kind::Histogram,
    labels: &[MODEL, VERSION, STAGE],
    help: "Latency of one inference stage (queue, feature_fetch, inference, postprocess) in seconds.",
};

/// Rows per inference batch.
pub const BATCH_SIZE: MetricDef = MetricDef {
    name: "model_batch_size",
    kind: Kind::Histogram,
    labels: &[MODEL],
    help: "Rows per inference batch, as formed by the micro-batcher.",
};

/// Distribution of prediction scores.
pub const PREDICTION_SCORE: MetricDef = MetricDef {
    name: "model_prediction_score",
    kind: Kind::Histogram,
    labels: &[MODEL, VERSION],
    help: "Distribution of prediction scores; the approval ratio is the bucket at the decision threshold.",
};

/// Feature cache hits and misses.
pub const FEATURE_CACHE_OPERATIONS_TOTAL: MetricDef = MetricDef {
    name: "model_feature_cache_operations_total",
    kind: Kind::Counter,
    labels: &[MODEL, OPERATION],
    help: "Feature cache lookups by result (hit or miss).",
};

/// Feature store failures.
pub const FEATURE_STORE_ERRORS_TOTAL: MetricDef = MetricDef {
    name: "model_feature_store_errors_total",
    kind: Kind::Counter,
    labels: &[MODEL, KIND],
    help: "Feature store failures by kind (timeout, unavailable, decode).",
};

/// What is loaded.
pub const INFO: MetricDef = MetricDef {
    name: "model_info",
    kind: Kind::Info,
    labels: &[MODEL, VERSION, FRAMEWORK, TRAINING_DATE, ARCHITECTURE],
    help: "The loaded model, from its model card; always 1.",
};

/// Label values folded into `other` by a cardinality guard.
pub const LABEL_OVERFLOW_TOTAL: MetricDef = MetricDef {
    name: "model_label_overflow_total",
    kind: Kind::Counter,
    labels: &[LABEL],
    help: "Label values folded into \"other\" because a family reached its series limit.",
};

/// Process CPU time.
pub const PROCESS_CPU_SECONDS_TOTAL: MetricDef = MetricDef {
    name: "process_cpu_seconds_total",
    kind: Kind::Counter,
    labels: &[],
    help: "Total user and system CPU time spent in seconds.",
};

/// Process resident memory.
pub const PROCESS_RESIDENT_MEMORY_BYTES: MetricDef = MetricDef {
    name: "process_resident_memory_bytes",
    kind: Kind::Gauge,
    labels: &[],
    help: "Resident memory size in bytes.",
};

/// Process virtual memory.
pub const PROCESS_VIRTUAL_MEMORY_BYTES: MetricDef = MetricDef {
    name: "process_virtual_memory_bytes",
    kind: Kind::Gauge,
    labels: &[],
    help: "Virtual memory size in bytes.",
};

/// Open file descriptors.
pub const PROCESS_OPEN_FDS: MetricDef = MetricDef {
    name: "process_open_fds",
    kind: Kind::Gauge,
    labels: &[],
    help: "Number of open file descriptors.",
};

/// File descriptor limit.
pub const PROCESS_MAX_FDS: MetricDef = MetricDef {
    name: "process_max_fds",
    kind: Kind::Gauge,
    labels: &[],
    help: "Maximum number of open file descriptors.",
};

/// Process start time.
pub const PROCESS_START_TIME_SECONDS: MetricDef = MetricDef {
    name: "process_start_time_seconds",
    kind: Kind::Gauge,
    labels: &[],
    help: "Start time of the process since unix epoch in seconds.",
};

/// Score counts per reference bin, summable across replicas.
pub const SCORE_BIN_TOTAL: MetricDef = MetricDef {
    name: "model_score_bin_total",
    kind: Kind::Counter,
    labels: &[MODEL, VERSION, BIN],
    help: "Prediction scores counted per reference bin (bin = upper edge, +Inf last); sum rates across replicas for the fleet's score distribution.",
};

/// The score's reference distribution.
pub const REFERENCE_SCORE_RATIO: MetricDef = MetricDef {
    name: "model_reference_score_ratio",
    kind: Kind::Gauge,
    labels: &[MODEL, VERSION, BIN],
    help: "Fraction of the reference scores in each bin, joined on (model, version, bin) with model_score_bin_total for fleet drift.",
};

/// Feature value counts per reference bin.
pub const FEATURE_BIN_TOTAL: MetricDef = MetricDef {
    name: "model_feature_bin_total",
    kind: Kind::Counter,
    labels: &[MODEL, FEATURE, BIN],
    help: "Non-missing feature values counted per reference bin (bin = upper edge, +Inf last).",
};

/// Each feature's reference distribution.
pub const REFERENCE_FEATURE_RATIO: MetricDef = MetricDef {
    name: "model_reference_feature_ratio",
    kind: Kind::Gauge,
    labels: &[MODEL, FEATURE, BIN],
    help: "Fraction of the reference values of a feature in each bin, joined on (model, feature, bin) with model_feature_bin_total.",
};

/// Missing feature values.
pub const FEATURE_MISSING_TOTAL: MetricDef = MetricDef {
    name: "model_feature_missing_total",
    kind: Kind::Counter,
    labels: &[MODEL, FEATURE],
    help: "Feature values that were null or missing in predictions; the null ratio is its rate over the prediction rate.",
};

/// Feature values outside the reference range.
pub const FEATURE_OUT_OF_RANGE_TOTAL: MetricDef = MetricDef {
    name: "model_feature_out_of_range_total",
    kind: Kind::Counter,
    labels: &[MODEL, FEATURE],
    help: "Feature values below the reference minimum or above its maximum (they are also counted in their outer bin).",
};

/// Feature freshness.
pub const FEATURE_AGE_SECONDS: MetricDef = MetricDef {
    name: "model_feature_age_seconds",
    kind: Kind::Gauge,
    labels: &[MODEL, FEATURE_GROUP],
    help: "Largest age, at prediction time, of a feature group's values used in recent predictions (the freshness window) in seconds; absent when the group was not used.",
};

/// Per-replica score PSI.
pub const SCORE_PSI: MetricDef = MetricDef {
    name: "model_score_psi",
    kind: Kind::Gauge,
    labels: &[MODEL, VERSION, WINDOW],
    help: "Population stability index of this replica's scores in the sliding window against the reference (fractions clamped at 1e-4); absent when the window is empty, and not averageable across replicas.",
};

/// Per-replica feature PSI.
pub const FEATURE_PSI: MetricDef = MetricDef {
    name: "model_feature_psi",
    kind: Kind::Gauge,
    labels: &[MODEL, FEATURE, WINDOW],
    help: "Population stability index of this replica's non-missing values of a feature in the sliding window against the reference; absent when the window holds none.",
};

/// Per-replica approval ratio.
pub const APPROVAL_RATIO: MetricDef = MetricDef {
    name: "model_approval_ratio",
    kind: Kind::Gauge,
    labels: &[MODEL, WINDOW],
    help: "Fraction of this replica's predictions in the sliding window that were approved; absent when the window is empty.",
};

/// Prediction events the collector took, refused or dropped.
pub const OBSERVATIONS_TOTAL: MetricDef = MetricDef {
    name: "model_observations_total",
    kind: Kind::Counter,
    labels: &[MODEL, OUTCOME],
    help: "Prediction events sent to the collector (POST /v1/models/{model}/observations) by outcome: accepted, invalid (refused by index), dropped (the recording queue was full, answered 429).",
};

/// Names in events that the card does not declare.
pub const OBSERVATION_IGNORED_TOTAL: MetricDef = MetricDef {
    name: "model_observation_ignored_total",
    kind: Kind::Counter,
    labels: &[MODEL, FIELD],
    help: "Names in accepted events that the card does not declare, ignored and counted by kind (feature, feature_group, stage); the name itself is never a label.",
};

/// Every family of the schema, in documentation order.
pub const ALL: &[MetricDef] = &[
    REQUESTS_TOTAL,
    ACTIVE_REQUESTS,
    REQUEST_DURATION_SECONDS,
    STAGE_DURATION_SECONDS,
    BATCH_SIZE,
    PREDICTION_SCORE,
    FEATURE_CACHE_OPERATIONS_TOTAL,
    FEATURE_STORE_ERRORS_TOTAL,
    SCORE_BIN_TOTAL,
    REFERENCE_SCORE_RATIO,
    FEATURE_BIN_TOTAL,
    REFERENCE_FEATURE_RATIO,
    FEATURE_MISSING_TOTAL,
    FEATURE_OUT_OF_RANGE_TOTAL,
    FEATURE_AGE_SECONDS,
    SCORE_PSI,
    FEATURE_PSI,
    APPROVAL_RATIO,
    OBSERVATIONS_TOTAL,
    OBSERVATION_IGNORED_TOTAL,
    INFO,
    LABEL_OVERFLOW_TOTAL,
    PROCESS_CPU_SECONDS_TOTAL,
    PROCESS_RESIDENT_MEMORY_BYTES,
    PROCESS_VIRTUAL_MEMORY_BYTES,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    PROCESS_START_TIME_SECONDS,
];

/// Looks a family up by its exposed name or by one of its series names.
pub fn find(series: &str) -> Option<&'static MetricDef> {
    ALL.iter()
        .find(|d| d.name == series || d.series_names().iter().any(|s| s == series))
}

/// Renders `docs/metrics.md` from the schema.
pub fn metrics_markdown() -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "# Metrics\n\n\
         Generated from `crates/modelwatch/src/schema.rs`; do not edit by hand. \
         Regenerate with `MODELWATCH_BLESS=1 cargo test -p modelwatch --test it`.\n\n\
         Every label value is bounded and comes from configuration or code, never from a \
         request. Closed sets are enums; open sets (model version) pass through a \
         cardinality guard that folds values past a limit into `other` and counts the \
         overflow in `model_label_overflow_total`.\n\n\
         | name | type | labels | meaning |\n|---|---|---|---|\n",
    );
    for def in ALL {
        let labels = if def.labels.is_empty() {
            "-".to_string()
        } else {
            def.labels.join(", ")
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            def.name,
            def.kind.as_str(),
            labels,
            def.help
        );
    }
    out.push_str("\n## Label values\n\n| label | values |\n|---|---|\n");
    for (name, values) in crate::labels::CLOSED_SETS {
        let _ = writeln!(out, "| `{}` | {} |", name, values.join(", "));
    }
    let _ = writeln!(
        out,
        "| `{}` | a binary classifier's two decision names, from its model card (default \
         negative, positive; the bundled fraud model: approved, declined), and {} for a \
         request that decided nothing or a model without decisions (a regressor) |",
        label::DECISION,
        crate::labels::NO_DECISION
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_unit_suffix() {
        for def in ALL {
            match def.kind {
                Kind::Counter => assert!(def.name.ends_with("_total"), "{}", def.name),
                Kind::Info => assert!(def.name.ends_with("_info"), "{}", def.name),
                _ => {}
            }
            assert_ne!(def.registration_name(), "", "{}", def.name);
        }
        assert_eq!(REQUESTS_TOTAL.registration_name(), "model_requests");
        assert_eq!(INFO.registration_name(), "model");
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = ALL.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }

    #[test]
    fn find_resolves_histogram_series() {
        assert_eq!(
            find("model_stage_duration_seconds_bucket").map(|d| d.name),
            Some(STAGE_DURATION_SECONDS.name)
        );
        assert!(find("model_nonexistent").is_none());
    }
}
