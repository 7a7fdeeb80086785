//! Module implementing the prediction pipeline of one served model: feature fetch,
//! the batcher, inference, and postprocessing. See [`ServedModel`] and
//! [`predict_fields`] for details.
//!
//! Every protocol (`/v1/predict`'s transaction, the generic JSON body, the Open
//! Inference Protocol's tensors) decodes its body into rows of request fields and
//! hands them here, so a row is recorded the same way whichever way it came in.

use crate::api::{BatchPrediction, Prediction};
use crate::batcher::{BatchError, Batcher};
use crate::error::ApiError;
use crate::faults::Faults;
use crate::features::{FeatureFetcher, PreparedRow, RequestFields};
use crate::{AppState, unix_now};
use axum::Json;
use axum::response::{IntoResponse, Response};
use modelwatch::{Decision, DriftHandle, ModelHandle, Stage, Status};
use modelwatch_runtime::ModelCard;
use std::sync::Arc;

/// One model the server serves, with everything its predictions use: its own card,
/// metric handles (its `model` label), drift reference, feature layout and cache,
/// and batcher.
#[derive(Debug)]
pub struct ServedModel {
    /// The model's card.
    pub card: ModelCard,
    /// The model's metric handles.
    pub metrics: ModelHandle,
    /// The model's drift and freshness handle.
    pub drift: DriftHandle,
    /// Feature assembly (the layout follows from the card).
    pub fetcher: FeatureFetcher,
    /// What answers for the model: the micro-batcher in front of its evaluator, or,
    /// for a monitor-only card, the collector of its prediction events.
    pub engine: Engine,
    /// The faults injected into this model's predictions (inert for every model but
    /// the default one, which `/admin/faults` drives).
    pub faults: Arc<Faults>,
    /// The names its answers carry.
    pub names: AnswerNames,
}

/// The names a model's answers carry (its name, version and decision names), shared:
/// an answer clones a pointer, not the text.
#[derive(Debug, Clone)]
pub struct AnswerNames {
    /// The model's name.
    pub model: Arc<str>,
    /// The model's version.
    pub version: Arc<str>,
    below: Arc<str>,
    at_or_above: Arc<str>,
}

impl AnswerNames {
    /// The names of `card`, with the decision names its metric handle uses.
    pub fn new(card: &ModelCard, metrics: &ModelHandle) -> Self {
        Self {
            model: card.name.as_str().into(),
            version: card.version.as_str().into(),
            below: metrics.decision_name(Decision::Below).into(),
            at_or_above: metrics.decision_name(Decision::AtOrAbove).into(),
        }
    }

    /// The name of `decision`; `None` for no decision.
    pub fn decision(&self, decision: Decision) -> Option<Arc<str>> {
        match decision {
            Decision::Below => Some(self.below.clone()),
            Decision::AtOrAbove => Some(self.at_or_above.clone()),
            Decision::None => None,
        }
    }
}

/// What answers for a model.
#[derive(Debug)]
pub enum Engine {
    /// An ONNX model behind the micro-batcher: it serves predictions.
    Served(Batcher),
    /// A monitor-only card: it takes prediction events
    /// (`POST /v1/models/{model}/observations`) and serves no prediction.
    Monitored(Box<crate::observations::Collector>),
}

impl ServedModel {
    /// The batcher of a served model; `None` for a monitor-only one.
    pub fn batcher(&self) -> Option<&Batcher> {
        match &self.engine {
            Engine::Served(batcher) => Some(batcher),
            Engine::Monitored(_) => None,
        }
    }

    /// The collector of a monitor-only model; `None` for a served one.
    pub fn collector(&self) -> Option<&crate::observations::Collector> {
        match &self.engine {
            Engine::Served(_) => None,
            Engine::Monitored(collector) => Some(collector),
        }
    }

    /// Whether the model is monitor-only (its card names no ONNX file).
    pub fn is_monitor_only(&self) -> bool {
        matches!(self.engine, Engine::Monitored(_))
    }
}

/// Scores one prepared row under the request deadline, finishing `request` with the
/// outcome.
pub(crate) async fn score_in_time(
    state: &AppState,
    model: &ServedModel,
    prepared: PreparedRow,
    mut request: modelwatch::RequestGuard<'_>,
) -> Result<Prediction, ApiError> {
    // The deadline counts from the request's start (already read, no clock read here).
    let deadline =
        tokio::time::Instant::from_std(request.started_at() + state.limits.request_timeout);
    match tokio::time::timeout_at(deadline, score(state, model, prepared, &mut request)).await {
        Ok(Ok((prediction, decision))) => {
            // `score` marked the last stage (postprocess) just before returning.
            request.finish_at_mark(Status::Success, decision);
            Ok(prediction)
        }
        Ok(Err(e)) => {
            request.finish(e.status(), Decision::None);
            Err(e)
        }
        Err(_) => {
            let e = ApiError::Timeout {
                deadline_ms: state.limits.request_timeout.as_millis() as u64,
            };
            request.finish(e.status(), Decision::None);
            Err(e)
        }
    }
}

/// Scores checked rows side by side, each counted as one request, and answers in
/// request order (or with the first error).
pub(crate) async fn score_batch(
    state: Arc<AppState>,
    model: Arc<ServedModel>,
    rows: Vec<(Option<String>, PreparedRow)>,
    echo: fn(Prediction, Option<String>) -> Prediction,
) -> Response {
    match score_rows(state, model, rows, echo).await {
        Ok(predictions) => Json(BatchPrediction { predictions }).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Scores rows of request fields for `model`, as `/v1/models/{model}/predict`
/// does: for a protocol module (such as the Open Inference Protocol's) that decodes
/// its own body. Every row is checked first; one invalid row refuses them all
/// (counted once as `rejected`, the error naming `{prefix}[i].features.<field>`).
/// Each row is then one request in the metrics, scored side by side, and the
/// predictions come back in row order.
///
/// # Errors
/// The first row's [`ApiError`]: a field error, or the first scoring failure.
pub async fn predict_fields(
    state: Arc<AppState>,
    model: &Arc<ServedModel>,
    rows: &[RequestFields],
    prefix: &str,
) -> Result<Vec<Prediction>, ApiError> {
    let now = unix_now();
    let layout = model.fetcher.layout();
    let mut prepared = Vec::with_capacity(rows.len());
    for (i, fields) in rows.iter().enumerate() {
        // Formatted only if a field is refused.
        let row = layout.prepare(
            fields,
            format_args!("{prefix}[{i}].features."),
            format_args!("{prefix}[{i}].entities."),
            now,
        );
        match row {
            Ok(row) => prepared.push((None, row)),
            Err(e) => {
                model.metrics.count_request(e.status(), Decision::None);
                return Err(e);
            }
        }
    }
    score_rows(state, model.clone(), prepared, |p, _| p).await
}

async fn score_rows(
    state: Arc<AppState>,
    model: Arc<ServedModel>,
    rows: Vec<(Option<String>, PreparedRow)>,
    echo: fn(Prediction, Option<String>) -> Prediction,
) -> Result<Vec<Prediction>, ApiError> {
    let n = rows.len();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (id, prepared)) in rows.into_iter().enumerate() {
        let (state, model) = (state.clone(), model.clone());
        tasks.spawn(async move {
            let request = model.metrics.start_request();
            let result = score_in_time(&state, &model, prepared, request).await;
            (i, result.map(|p| echo(p, id)))
        });
    }
    let mut slots: Vec<Option<Prediction>> = vec![None; n];
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, Ok(p))) => slots[i] = Some(p),
            Ok((_, Err(e))) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(ApiError::Internal(format!("batch task failed: {e}")));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(slots.into_iter().flatten().collect())
}

/// Runs one checked row through the pipeline.
async fn score(
    state: &AppState,
    model: &ServedModel,
    prepared: PreparedRow,
    request: &mut modelwatch::RequestGuard<'_>,
) -> Result<(Prediction, Decision), ApiError> {
    if model.faults.should_fail() {
        return Err(ApiError::Internal("injected fault: error_ratio".into()));
    }
    let width = model.fetcher.layout().n_features;
    let PreparedRow {
        mut row,
        mut event_times,
        entities,
    } = prepared;
    model
        .fetcher
        .fetch(
            &entities,
            &mut row[..width],
            &mut event_times,
            request.started_at(),
        )
        .await
        .map_err(|e| ApiError::StoreUnavailable { kind: e.kind })?;
    request.mark_stage(Stage::FeatureFetch);

    let deadline = request.started_at() + state.limits.request_timeout;
    let batcher = model.batcher().ok_or_else(|| ApiError::MonitorOnly {
        name: model.card.name.clone(),
    })?;
    let scored = batcher
        .score(&row[..width], deadline)
        .await
        .map_err(|e| match e {
            BatchError::Overloaded => ApiError::Overloaded,
            BatchError::Stopped => ApiError::Unavailable,
            BatchError::Expired => ApiError::Timeout {
                deadline_ms: state.limits.request_timeout.as_millis() as u64,
            },
            BatchError::Model(m) => ApiError::Internal(m),
            BatchError::Panicked(m) => ApiError::Internal(format!("the model panicked: {m}")),
        })?;
    model
        .metrics
        .observe_stage(Stage::Queue, scored.queue_seconds);
    model
        .metrics
        .observe_stage(Stage::Inference, scored.inference_seconds);
    request.restart_mark_at(scored.finished);

    let output = f64::from(scored.score);
    let threshold = model.card.threshold();
    let decision = threshold.map_or(Decision::None, |t| Decision::for_score(output, t));
    model.metrics.observe_score(output);
    // One wall-clock read for the drift window and the prediction log.
    let wall = std::time::SystemTime::now();
    if model.metrics.enabled() {
        model.drift.record_prediction(
            model.drift.now_of(wall),
            output,
            decision == Decision::Below,
            &row[..width],
            &event_times,
        );
    }
    let prediction_id = state.next_prediction_id();
    if let Some(truth) = &state.ground_truth {
        truth.log_prediction(
            model,
            &prediction_id,
            output,
            decision,
            crate::feedback::unix_seconds_of(wall),
            None,
        );
    }
    let prediction = Prediction {
        prediction_id,
        transaction_id: None,
        id: None,
        score: threshold.map(|_| output),
        value: threshold.is_none().then_some(output),
        decision: model.names.decision(decision),
        model: model.names.model.clone(),
        version: model.names.version.clone(),
    };
    request.mark_stage(Stage::Postprocess);
    Ok((prediction, decision))
}
