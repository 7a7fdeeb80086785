//! Module implementing the ground truth: the prediction log every prediction goes
//! to, and `POST /v1/feedback` and `/v1/feedback/batch`, which join delayed labels to
//! their predictions and count them. See [`GroundTruth`] for details.
//!
//! A label is acknowledged (a 200) only once the log has it on disk (see
//! `modelwatch_log`'s fsync policy), so a label the client saw accepted survives a
//! crash, and a retry of it is counted as a duplicate, never twice.

use crate::api::{MAX_ID_LEN, check_batch_len, parse_json};
use crate::error::ApiError;
use crate::pipeline::ServedModel;
use crate::{AppState, body_error};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use modelwatch::prometheus_client::registry::Registry;
use modelwatch::{Decision, FeedbackHandle, FeedbackMetrics, ModelHandle};
use modelwatch_log::{
    LabelOutcome, LabelRecord, LogConfig, PredictionLog, PredictionRecord, Truth,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The calibration in `model`'s reference file (empty for a file built without a
/// label column, or for a model without a threshold). A bin whose upper edge is
/// below the threshold is on the `below` side; `modelwatch reference` puts an edge
/// just below the threshold, so no bin straddles it.
pub fn calibration_of(model: &crate::load::LoadedModel) -> Calibration {
    let Some(threshold) = model.card.threshold() else {
        return Vec::new();
    };
    let path = crate::load::reference_path(&model.card_path, &model.card);
    let Some(ratios) = modelwatch_runtime::Reference::load(&path)
        .ok()
        .and_then(|r| r.score.positive_fractions)
    else {
        return Vec::new();
    };
    let score = &model.reference.score;
    let labels = score.bin_labels();
    if labels.len() != ratios.len() {
        return Vec::new();
    }
    labels
        .into_iter()
        .zip(ratios)
        .enumerate()
        .map(|(i, (bin, ratio))| {
            let upper = score.edges.get(i).copied().unwrap_or(f64::INFINITY);
            let side = if upper < threshold {
                Decision::Below
            } else {
                Decision::AtOrAbove
            };
            (bin, ratio, side)
        })
        .collect()
}

/// Longest wait for the prediction log to make labels durable before the request is
/// answered 504 (nothing acknowledged; a resend is safe).
pub const DURABLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The prediction log and the ground-truth metrics of every served model.
#[derive(Debug)]
pub struct GroundTruth {
    log: PredictionLog,
    metrics: FeedbackMetrics,
    /// (model label, version label, handle), one per served model.
    models: Vec<(String, String, FeedbackHandle)>,
}

/// A model's calibration: each reference score bin's label, positive ratio, and the
/// decision a score in it gets.
pub type Calibration = Vec<(String, f64, Decision)>;

impl GroundTruth {
    /// Opens the log and registers the ground-truth families, with one handle per
    /// model (its calibration gauge set when the reference has one).
    ///
    /// # Errors
    /// The log cannot be opened (another process holds the file, no permission).
    pub fn open(
        config: LogConfig,
        registry: &mut Registry,
        models: &[(&ModelHandle, Calibration)],
    ) -> anyhow::Result<Self> {
        let path = config.path.clone();
        let log = PredictionLog::open(config).map_err(|e| {
            anyhow::anyhow!("{e}\nhint: one server per data directory; give this one its own --data-dir, or set --prediction-log")
        })?;
        tracing::info!(path = %path.display(), "prediction log open");
        let metrics = FeedbackMetrics::register(registry);
        let models = models
            .iter()
            .map(|(handle, calibration)| {
                (
                    handle.model().to_string(),
                    handle.version().to_string(),
                    metrics.model(handle, calibration),
                )
            })
            .collect();
        Ok(Self {
            log,
            metrics,
            models,
        })
    }

    /// The log itself.
    pub fn log(&self) -> &PredictionLog {
        &self.log
    }

    fn handle(&self, model: &str, version: &str) -> Option<&FeedbackHandle> {
        self.models
            .iter()
            .find(|(m, v, _)| m == model && v == version)
            .map(|(_, _, h)| h)
    }

    /// Logs one prediction of `model` without blocking: a served one (the pipeline
    /// calls this) or one the collector observed with its caller's id. When the log's
    /// queue is full the prediction is dropped and counted in
    /// `model_prediction_log_dropped_total`.
    pub fn log_prediction(
        &self,
        model: &ServedModel,
        prediction_id: &str,
        score: f64,
        decision: Decision,
        unix_time: f64,
        features: Option<&[f32]>,
    ) {
        let logged = self.log.record(PredictionRecord {
            prediction_id: prediction_id.to_string(),
            // The metric handle's labels: the card's name and version.
            model: model.names.model.clone(),
            version: model.names.version.clone(),
            score,
            decision,
            unix_time,
            features: features.map(<[f32]>::to_vec),
        });
        if !logged && let Some(handle) = self.handle(&model.names.model, &model.names.version) {
            handle.log_dropped();
        }
    }

    /// Counts one label's outcome.
    fn count(&self, label: &LabelRecord, outcome: &LabelOutcome) {
        match outcome {
            LabelOutcome::Matched(joined) => {
                let p = &joined.prediction;
                let Some(handle) = self.handle(&p.model, &p.version) else {
                    return;
                };
                match label.truth {
                    Truth::Class(positive) => {
                        handle.classified(p.decision, positive, joined.delay_seconds);
                    }
                    Truth::Value(value) => {
                        handle.regressed(p.score, value, joined.delay_seconds);
                    }
                }
            }
            LabelOutcome::Late(joined) => {
                let p = &joined.prediction;
                if let Some(handle) = self.handle(&p.model, &p.version) {
                    handle.late();
                }
            }
            LabelOutcome::Duplicate(p) => {
                if let Some(handle) = self.handle(&p.model, &p.version) {
                    handle.duplicate();
                }
            }
            LabelOutcome::Unmatched => self.metrics.unmatched(),
        }
    }

    /// Joins `labels`, waits (at most [`DURABLE_WITHIN`]) until they are durable, and
    /// returns their outcomes in order. They are counted by the log's writer as soon
    /// as they are durable, so a client that hangs up (its request future dropped)
    /// still has its stored labels counted exactly once.
    async fn submit(
        self: &Arc<Self>,
        labels: Vec<LabelRecord>,
    ) -> Result<Vec<LabelOutcome>, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let keep = labels.clone();
        let truth = self.clone();
        self.log
            .submit_labels(
                labels,
                Box::new(move |result| {
                    if let Ok(outcomes) = &result {
                        for (label, outcome) in keep.iter().zip(outcomes) {
                            truth.count(label, outcome);
                        }
                    }
                    let _ = tx.send(result);
                }),
            )
            .map_err(|e| match e {
                modelwatch_log::LogError::Full => ApiError::Overloaded,
                _ => ApiError::Unavailable,
            })?;
        match tokio::time::timeout(DURABLE_WITHIN, rx).await {
            Ok(Ok(Ok(outcomes))) => Ok(outcomes),
            Ok(Ok(Err(e))) => Err(ApiError::Internal(format!("prediction log: {e}"))),
            Ok(Err(_)) => Err(ApiError::Unavailable),
            // Not acknowledged: the client resends, and a label stored meanwhile
            // counts as a duplicate, never twice.
            Err(_) => Err(ApiError::Timeout {
                deadline_ms: DURABLE_WITHIN.as_millis() as u64,
            }),
        }
    }

    /// Writes what is queued, durably, and stops the log's writer.
    pub fn close(&self) {
        self.log.close();
    }
}

/// One label, as `POST /v1/feedback` takes it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackIn {
    /// The `prediction_id` the prediction was answered with.
    pub prediction_id: String,
    /// A classifier's label: `true` or `1` for the positive class (the fraud model:
    /// fraud), `false` or `0` for the negative.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub label: Option<serde_json::Value>,
    /// A regressor's observed value.
    #[serde(default)]
    pub value: Option<f64>,
    /// When the label was observed, in Unix seconds. Default: now.
    #[serde(default)]
    pub time: Option<f64>,
}

/// `POST /v1/feedback/batch`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBatchIn {
    /// One to --max-batch-request labels.
    pub labels: Vec<FeedbackIn>,
}

/// What became of one label.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedbackOut {
    /// The id sent.
    pub prediction_id: String,
    /// `matched` (joined and counted), `duplicate` (the prediction had a label: the
    /// first stands), `late` (joined past --feedback-late-after: stored, counted
    /// apart) or `unmatched` (no such prediction in this replica's log: stored).
    #[schema(example = "matched")]
    pub outcome: &'static str,
}

/// `POST /v1/feedback/batch`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedbackBatchOut {
    /// One per label, in request order.
    pub results: Vec<FeedbackOut>,
}

/// The wall clock in Unix seconds, as the log records predictions.
pub fn unix_seconds() -> f64 {
    unix_seconds_of(std::time::SystemTime::now())
}

/// `wall` in Unix seconds (0 before the epoch).
pub fn unix_seconds_of(wall: std::time::SystemTime) -> f64 {
    wall.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl FeedbackIn {
    fn validate(self, prefix: &str, now: f64) -> Result<LabelRecord, ApiError> {
        let id = self.prediction_id;
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(ApiError::field(
                format!("{prefix}prediction_id"),
                format!("must be 1 to {MAX_ID_LEN} bytes"),
            ));
        }
        let truth = match (self.label, self.value) {
            (Some(label), None) => {
                let positive = match &label {
                    serde_json::Value::Bool(b) => Some(*b),
                    serde_json::Value::Number(n) => match n.as_f64() {
                        Some(1.0) => Some(true),
                        Some(0.0) => Some(false),
                        _ => None,
                    },
                    _ => None,
                };
                Truth::Class(positive.ok_or_else(|| {
                    ApiError::field(format!("{prefix}label"), "must be true, false, 1 or 0")
                })?)
            }
            (None, Some(value)) if value.is_finite() => Truth::Value(value),
            (None, Some(_)) => {
                return Err(ApiError::field(
                    format!("{prefix}value"),
                    "must be a finite number",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ApiError::field(
                    format!("{prefix}label"),
                    "give `label` (a classifier's) or `value` (a regressor's), not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::field(
                    format!("{prefix}label"),
                    "is missing: give `label` (a classifier's) or `value` (a regressor's)",
                ));
            }
        };
        let unix_time = match self.time {
            None => now,
            Some(t) if t.is_finite() && t > 0.0 => t,
            Some(_) => {
                return Err(ApiError::field(
                    format!("{prefix}time"),
                    "must be Unix seconds, a positive number",
                ));
            }
        };
        Ok(LabelRecord {
            prediction_id: id,
            truth,
            unix_time,
        })
    }
}

fn ground_truth(state: &AppState) -> Result<&Arc<GroundTruth>, ApiError> {
    state.ground_truth.as_ref().ok_or(ApiError::Unavailable)
}

fn answer(labels: &[LabelRecord], outcomes: &[LabelOutcome]) -> Vec<FeedbackOut> {
    labels
        .iter()
        .zip(outcomes)
        .map(|(l, o)| FeedbackOut {
            prediction_id: l.prediction_id.clone(),
            outcome: o.as_str(),
        })
        .collect()
}

#[utoipa::path(post, path = "/v1/feedback", request_body = FeedbackIn, responses(
    (status = 200, description = "Stored durably and joined", body = FeedbackOut),
    (status = 400, description = "`invalid_json` or `invalid_field`: the message names the field; nothing is stored", body = crate::error::ErrorBody),
    (status = 429, description = "`overloaded`: the log's queue is full; nothing is stored, retry", body = crate::error::ErrorBody),
    (status = 503, description = "`unavailable`: no prediction log, or shutting down; nothing is stored", body = crate::error::ErrorBody),
    (status = 504, description = "`timeout`: the log did not make the labels durable within 10 s; nothing is acknowledged, resend (a label stored meanwhile counts once, the resend as a duplicate)", body = crate::error::ErrorBody),
))]
pub(crate) async fn feedback(
    State(state): State<Arc<AppState>>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let truth = ground_truth(&state)?;
        let body = body.map_err(|r| body_error(r, state.limits.max_body_bytes))?;
        let label = parse_json::<FeedbackIn>(&body)?.validate("", unix_seconds())?;
        let labels = vec![label];
        let outcomes = truth.submit(labels.clone()).await?;
        Ok::<_, ApiError>(answer(&labels, &outcomes))
    }
    .await;
    match result {
        Ok(mut out) => match out.pop() {
            Some(one) => Json(one).into_response(),
            None => ApiError::Internal("no outcome for the label".into()).into_response(),
        },
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(post, path = "/v1/feedback/batch", request_body = FeedbackBatchIn, responses(
    (status = 200, description = "Every label stored durably and joined, in request order", body = FeedbackBatchOut),
    (status = 400, description = "`invalid_json` or `invalid_field` (`labels[i].field`): nothing is stored", body = crate::error::ErrorBody),
    (status = 413, description = "`payload_too_large` or `batch_too_large` (over --max-batch-request)", body = crate::error::ErrorBody),
    (status = 429, description = "`overloaded`: the log's queue is full; nothing is stored, retry", body = crate::error::ErrorBody),
    (status = 503, description = "`unavailable`: no prediction log, or shutting down; nothing is stored", body = crate::error::ErrorBody),
    (status = 504, description = "`timeout`: the log did not make the labels durable within 10 s; nothing is acknowledged, resend (a label stored meanwhile counts once, the resend as a duplicate)", body = crate::error::ErrorBody),
))]
pub(crate) async fn feedback_batch(
    State(state): State<Arc<AppState>>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let truth = ground_truth(&state)?;
        let body = body.map_err(|r| body_error(r, state.limits.max_body_bytes))?;
        let batch = parse_json::<FeedbackBatchIn>(&body)?;
        check_batch_len(
            batch.labels.len(),
            state.limits.max_batch_request,
            "labels",
            "label",
        )?;
        let now = unix_seconds();
        let labels = batch
            .labels
            .into_iter()
            .enumerate()
            .map(|(i, l)| l.validate(&format!("labels[{i}]."), now))
            .collect::<Result<Vec<_>, _>>()?;
        let outcomes = truth.submit(labels.clone()).await?;
        Ok::<_, ApiError>(answer(&labels, &outcomes))
    }
    .await;
    match result {
        Ok(results) => Json(FeedbackBatchOut { results }).into_response(),
        Err(e) => e.into_response(),
    }
}
