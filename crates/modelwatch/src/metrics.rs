//! Module implementing the registered metric families and per-model handles. See
//! [`Metrics`] and [`ModelHandle`] for details.

use crate::buckets::Buckets;
use crate::guard::CardinalityGuard;
use crate::histogram::AtomicHistogram;
use crate::labels::{
    CacheOperation, Decision, DecisionNames, GuardedLabel, NO_DECISION, Stage, Status,
    StoreErrorKind,
};
use crate::schema::{self, MetricDef};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Settings for [`Metrics`]: bucket presets and cardinality limits.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// Histogram bucket presets.
    pub buckets: Buckets,
    /// Distinct model names admitted before folding into `other`.
    pub max_models: usize,
    /// Distinct versions admitted before folding into `other`.
    pub max_versions: usize,
    /// Register the `process_*` collector (turn off for deterministic output).
    pub process_metrics: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            buckets: Buckets::default(),
            max_models: 8,
            max_versions: 8,
            process_metrics: true,
        }
    }
}

/// Describes a loaded model: the `model_info` labels, the handle's identity and its
/// decision names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Model name, the `model` label.
    pub name: String,
    /// Model version, the `version` label.
    pub version: String,
    /// Runtime or training framework (for example `sklearn-onnx`).
    pub framework: String,
    /// Training date, `YYYY-MM-DD`.
    pub training_date: String,
    /// Architecture (for example `gradient_boosted_trees`).
    pub architecture: String,
    /// A binary classifier's two `decision` label values (from its card); `None` for
    /// a model that decides nothing (a regressor), whose requests all carry `none`.
    pub decisions: Option<DecisionNames>,
}

impl Default for ModelSpec {
    /// Empty names and a classifier's default decisions (`negative`, `positive`).
    fn default() -> Self {
        Self {
            name: String::new(),
            version: String::new(),
            framework: String::new(),
            training_date: String::new(),
            architecture: String::new(),
            decisions: Some(DecisionNames::default()),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    model: String,
    version: String,
    status: Status,
    decision: String,
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
struct StageLabels {
    model: String,
    version: String,
    stage: Stage,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    model: String,
    operation: CacheOperation,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreErrorLabels {
    model: String,
    kind: StoreErrorKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    model: String,
    version: String,
    framework: String,
    training_date: String,
    architecture: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OverflowLabels {
    label: GuardedLabel,
}

/// Builds histograms with a configured set of bounds.
#[derive(Clone, Debug)]
pub struct BucketConstructor(Arc<[f64]>);

impl MetricConstructor<AtomicHistogram> for BucketConstructor {
    fn new_metric(&self) -> AtomicHistogram {
        AtomicHistogram::new(self.0.clone())
    }
}

type HistogramFamily<L> = Family<L, AtomicHistogram, BucketConstructor>;
type InfoFamily =
    Family<InfoLabels, Info<Vec<(String, String)>>, fn() -> Info<Vec<(String, String)>>>;

fn empty_info() -> Info<Vec<(String, String)>> {
    Info::new(Vec::new())
}

fn histograms<L: Clone + std::hash::Hash + Eq>(bounds: &[f64]) -> HistogramFamily<L> {
    Family::new_with_constructor(BucketConstructor(bounds.into()))
}

fn register<M: prometheus_client::registry::Metric>(
    registry: &mut Registry,
    def: &MetricDef,
    metric: M,
) {
    registry.register(def.registration_name(), def.registration_help(), metric);
}

/// The metric families of the schema, registered once per process.
///
/// Cloning is cheap and shares the underlying series. Call [`Metrics::model`] once
/// per loaded model to resolve the handles that the hot path uses.
#[derive(Debug, Clone)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    active: Family<ModelLabels, Gauge>,
    request_duration: HistogramFamily<VersionLabels>,
    stage_duration: HistogramFamily<StageLabels>,
    batch_size: HistogramFamily<ModelLabels>,
    score: HistogramFamily<VersionLabels>,
    cache: Family<CacheLabels, Counter>,
    store_errors: Family<StoreErrorLabels, Counter>,
    info: InfoFamily,
    models: Arc<CardinalityGuard>,
    versions: Arc<CardinalityGuard>,
}

impl Metrics {
    /// Creates the families and registers them, with the process collector, on
    /// `registry`.
    pub fn register(registry: &mut Registry, config: &MetricsConfig) -> Result<Self, crate::Error> {
        config.buckets.validate()?;
        let overflow: Family<OverflowLabels, Counter> = Family::default();
        let guard = |label: GuardedLabel, limit: usize| {
            Arc::new(CardinalityGuard::new(
                label,
                limit,
                overflow.get_or_create_owned(&OverflowLabels { label }),
            ))
        };
        let metrics = Self {
            requests: Family::default(),
            active: Family::default(),
            request_duration: histograms(&config.buckets.latency_seconds),
            stage_duration: histograms(&config.buckets.latency_seconds),
            batch_size: histograms(&config.buckets.batch_size),
            score: histograms(&config.buckets.score),
            cache: Family::default(),
            store_errors: Family::default(),
            info: Family::new_with_constructor(empty_info as fn() -> _),
            models: guard(GuardedLabel::Model, config.max_models),
            versions: guard(GuardedLabel::Version, config.max_versions),
        };
        register(registry, &schema::REQUESTS_TOTAL, metrics.requests.clone());
        register(registry, &schema::ACTIVE_REQUESTS, metrics.active.clone());
        register(
            registry,
            &schema::REQUEST_DURATION_SECONDS,
            metrics.request_duration.clone(),
        );
        register(
            registry,
            &schema::STAGE_DURATION_SECONDS,
            metrics.stage_duration.clone(),
        );
        register(registry, &schema::BATCH_SIZE, metrics.batch_size.clone());
        register(registry, &schema::PREDICTION_SCORE, metrics.score.clone());
        register(
            registry,
            &schema::FEATURE_CACHE_OPERATIONS_TOTAL,
            metrics.cache.clone(),
        );
        register(
            registry,
            &schema::FEATURE_STORE_ERRORS_TOTAL,
            metrics.store_errors.clone(),
        );
        register(registry, &schema::INFO, metrics.info.clone());
        register(registry, &schema::LABEL_OVERFLOW_TOTAL, overflow);
        if config.process_metrics {
            registry.register_collector(Box::new(crate::process::ProcessCollector::new()));
        }
        Ok(metrics)
    }

    /// Resolves every handle for one model, creating all of its series at zero so that
    /// ratios are 0 rather than absent before the first failure.
    ///
    /// Call this once per model load; the returned handle is what the hot path uses.
    pub fn model(&self, spec: &ModelSpec) -> ModelHandle {
        let model = self.models.admit(&spec.name);
        let version = self.versions.admit(&spec.version);
        let ml = ModelLabels {
            model: model.clone(),
        };
        let vl = VersionLabels {
            model: model.clone(),
            version: version.clone(),
        };
        // A model without decisions records its successes as `none`: its two decided
        // slots share the (success, none) series, so no decision series exists.
        let requests = std::array::from_fn(|i| {
            let (status, decision) = REQUEST_OUTCOMES[i];
            let decision = spec
                .decisions
                .as_ref()
                .map_or(NO_DECISION, |names| names.name(decision));
            self.requests.get_or_create_owned(&RequestLabels {
                model: model.clone(),
                version: version.clone(),
                status,
                decision: decision.to_string(),
            })
        });
        let stages = std::array::from_fn(|s| {
            self.stage_duration.get_or_create_owned(&StageLabels {
                model: model.clone(),
                version: version.clone(),
                stage: Stage::ALL[s],
            })
        });
        let cache = std::array::from_fn(|o| {
            self.cache.get_or_create_owned(&CacheLabels {
                model: model.clone(),
                operation: CacheOperation::ALL[o],
            })
        });
        let store_errors = std::array::from_fn(|k| {
            self.store_errors.get_or_create_owned(&StoreErrorLabels {
                model: model.clone(),
                kind: StoreErrorKind::ALL[k],
            })
        });
        // Info is not Clone, so the series is created and the guard dropped at once.
        drop(self.info.get_or_create(&InfoLabels {
            model: model.clone(),
            version: version.clone(),
            framework: spec.framework.clone(),
            training_date: spec.training_date.clone(),
            architecture: spec.architecture.clone(),
        }));
        ModelHandle {
            inner: Arc::new(HandleInner {
                requests,
                active: self.active.get_or_create_owned(&ml),
                request_duration: self.request_duration.get_or_create_owned(&vl),
                stages,
                batch_size: self.batch_size.get_or_create_owned(&ml),
                score: self.score.get_or_create_owned(&vl),
                cache,
                store_errors,
                model,
                version,
                decisions: spec.decisions.clone(),
                enabled: true,
            }),
        }
    }
}

/// The (status, decision) pairs that can occur: only a success carries a decision.
/// These are the series created at zero for each model version.
pub const REQUEST_OUTCOMES: [(Status, Decision); 8] = [
    (Status::Success, Decision::Below),
    (Status::Success, Decision::AtOrAbove),
    (Status::Success, Decision::None),
    (Status::Error, Decision::None),
    (Status::Timeout, Decision::None),
    (Status::Rejected, Decision::None),
    (Status::Overloaded, Decision::None),
    (Status::Cancelled, Decision::None),
];

/// Index into [`REQUEST_OUTCOMES`]; a decision on a failed request is dropped, since
/// a failed request decided nothing.
pub(crate) const fn outcome_index(status: Status, decision: Decision) -> usize {
    match (status, decision) {
        (Status::Success, Decision::Below) => 0,
        (Status::Success, Decision::AtOrAbove) => 1,
        (Status::Success, Decision::None) => 2,
        (Status::Error, _) => 3,
        (Status::Timeout, _) => 4,
        (Status::Rejected, _) => 5,
        (Status::Overloaded, _) => 6,
        (Status::Cancelled, _) => 7,
    }
}

#[derive(Debug)]
pub(crate) struct HandleInner {
    pub(crate) requests: [Counter; REQUEST_OUTCOMES.len()],
    pub(crate) active: Gauge,
    pub(crate) request_duration: AtomicHistogram,
    pub(crate) stages: [AtomicHistogram; Stage::COUNT],
    pub(crate) batch_size: AtomicHistogram,
    pub(crate) score: AtomicHistogram,
    pub(crate) cache: [Counter; CacheOperation::COUNT],
    pub(crate) store_errors: [Counter; StoreErrorKind::COUNT],
    model: String,
    version: String,
    decisions: Option<DecisionNames>,
    pub(crate) enabled: bool,
}

/// The resolved series of one model version: recording through it does no label
/// lookup and no allocation. Cloning shares the series.
#[derive(Debug, Clone)]
pub struct ModelHandle {
    pub(crate) inner: Arc<HandleInner>,
}

impl ModelHandle {
    /// A handle that records nothing, registered nowhere: for measuring what the
    /// instrumentation costs (`modelwatch serve --no-instrumentation`).
    pub fn disabled(spec: &ModelSpec) -> Self {
        let histogram = || AtomicHistogram::new(Arc::from([1.0]));
        ModelHandle {
            inner: Arc::new(HandleInner {
                requests: Default::default(),
                active: Gauge::default(),
                request_duration: histogram(),
                stages: std::array::from_fn(|_| histogram()),
                batch_size: histogram(),
                score: histogram(),
                cache: Default::default(),
                store_errors: Default::default(),
                model: spec.name.clone(),
                version: spec.version.clone(),
                decisions: spec.decisions.clone(),
                enabled: false,
            }),
        }
    }

    /// False for a [`ModelHandle::disabled`] handle.
    pub fn enabled(&self) -> bool {
        self.inner.enabled
    }

    /// The `model` label value (after the cardinality guard).
    pub fn model(&self) -> &str {
        &self.inner.model
    }

    /// The `version` label value (after the cardinality guard).
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// The `decision` label value of `decision` for this model: its own name, or
    /// `none` for [`Decision::None`] and for a model without decisions.
    pub fn decision_name(&self, decision: Decision) -> &str {
        self.inner
            .decisions
            .as_ref()
            .map_or(NO_DECISION, |names| names.name(decision))
    }

    /// Counts one finished request without timing it (for example a request refused
    /// before it was parsed). Only a success carries a decision; for any other status,
    /// and for a model without decisions, the decision is recorded as `none`. Prefer
    /// [`ModelHandle::start_request`].
    pub fn count_request(&self, status: Status, decision: Decision) {
        if !self.inner.enabled {
            return;
        }
        self.inner.requests[outcome_index(status, decision)].inc();
    }

    /// Counts one finished request timed by the caller (a prediction event from a
    /// server that is not ours): its outcome, and, when `seconds` is given and the
    /// status is inside the SLOs, its end-to-end latency.
    pub fn record_request(&self, status: Status, decision: Decision, seconds: Option<f64>) {
        if !self.inner.enabled {
            return;
        }
        self.inner.requests[outcome_index(status, decision)].inc();
        if let Some(seconds) = seconds.filter(|_| status.in_slo()) {
            self.inner.request_duration.observe(seconds);
        }
    }

    /// Records one prediction score.
    pub fn observe_score(&self, score: f64) {
        if !self.inner.enabled {
            return;
        }
        self.inner.score.observe(score);
    }

    /// Records the number of rows in one inference batch.
    pub fn observe_batch_size(&self, rows: usize) {
        if !self.inner.enabled {
            return;
        }
        self.inner.batch_size.observe(rows as f64);
    }

    /// Records one stage duration measured by the caller, in seconds.
    pub fn observe_stage(&self, stage: Stage, seconds: f64) {
        if !self.inner.enabled {
            return;
        }
        self.inner.stages[stage.index()].observe(seconds);
    }

    /// Counts one feature cache lookup.
    pub fn cache(&self, operation: CacheOperation) {
        if !self.inner.enabled {
            return;
        }
        self.inner.cache[operation.index()].inc();
    }

    /// Counts one feature store failure.
    pub fn store_error(&self, kind: StoreErrorKind) {
        if !self.inner.enabled {
            return;
        }
        self.inner.store_errors[kind.index()].inc();
    }

    /// Requests currently in flight, as exported.
    pub fn active_requests(&self) -> i64 {
        self.inner.active.get()
    }

    /// Requests counted so far with this status and decision.
    pub fn requests(&self, status: Status, decision: Decision) -> u64 {
        self.inner.requests[outcome_index(status, decision)].get()
    }
}
