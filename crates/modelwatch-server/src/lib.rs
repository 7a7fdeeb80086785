//! `modelwatch serve`: an instrumented model-serving pipeline.
//!
//! A prediction goes through four stages, each timed in
//! `model_stage_duration_seconds`:
//!
//! 1. `feature_fetch`: request features, then each entity feature group from an
//!    in-process cache in front of a [`store::FeatureStore`];
//! 2. `queue`: the micro-batcher ([`batcher::Batcher`]);
//! 3. `inference`: one model call per batch;
//! 4. `postprocess`: threshold, decision, drift and freshness recording, response.
//!
//! [`app`] builds the API router and [`metrics_app`] the metrics listener's; tests
//! drive both with `oneshot` and no socket. [`server::run`] is what the binary calls.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
pub mod batcher;
pub mod config;
pub mod error;
pub mod faults;
mod feature_cache;
pub mod features;
pub mod feedback;
pub mod ingest;
pub mod known_ids;
pub mod load;
pub mod observations;
pub mod oip;
pub mod openapi;
pub mod pipeline;
pub mod refresher;
pub mod server;
pub mod store;
pub mod webconfig;

use crate::api::{BatchPrediction, ModelBatchIn, ModelRequestIn, Prediction, parse_json};
use crate::error::ApiError;
use crate::faults::{FaultSpec, Faults};
pub use crate::pipeline::{ServedModel, predict_fields};
use crate::pipeline::{score_batch, score_in_time};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use modelwatch::prometheus_client::registry::Registry;
use modelwatch::{Decision, Format};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Most feature groups a model may have.
pub const MAX_GROUPS: usize = 16;

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body in bytes.
    pub max_body_bytes: usize,
    /// Most transactions per batch request.
    pub max_batch_request: usize,
    /// Deadline of one prediction.
    pub request_timeout: Duration,
    /// Most events in one observations request.
    pub max_observation_batch: usize,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The served models in name order, the default model (`/v1/predict`'s) first.
    models: Vec<Arc<ServedModel>>,
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Request limits.
    pub limits: Limits,
    /// Injected faults (all off unless enabled and set).
    pub faults: Arc<Faults>,
    /// Whether `/admin/faults` exists.
    pub fault_injection: bool,
    /// False once shutdown starts, so `/readyz` takes the replica out of rotation.
    pub accepting: AtomicBool,
    /// The prediction log and the ground-truth counters (`None`: no log, and
    /// `/v1/feedback` answers 503).
    pub ground_truth: Option<Arc<feedback::GroundTruth>>,
    ids: PredictionIds,
    last_scrape_len: AtomicUsize,
}

impl AppState {
    /// Assembles the state: `default` answers `/v1/predict` and takes the injected
    /// faults; `others` are served beside it by name.
    pub fn new(
        default: ServedModel,
        others: Vec<ServedModel>,
        registry: Registry,
        limits: Limits,
        faults: Arc<Faults>,
        fault_injection: bool,
    ) -> Self {
        let models = std::iter::once(default)
            .chain(others)
            .map(Arc::new)
            .collect();
        Self {
            models,
            registry,
            limits,
            faults,
            fault_injection,
            accepting: AtomicBool::new(true),
            ground_truth: None,
            ids: PredictionIds::new(),
            last_scrape_len: AtomicUsize::new(16 * 1024),
        }
    }

    /// The state with a prediction log: every prediction is logged, and
    /// `/v1/feedback` joins labels to them.
    pub fn with_ground_truth(mut self, ground_truth: Arc<feedback::GroundTruth>) -> Self {
        self.ground_truth = Some(ground_truth);
        self
    }

    /// The model of `/v1/predict` and `/v1/predict/batch`.
    pub fn default_model(&self) -> &Arc<ServedModel> {
        &self.models[0]
    }

    /// Every served model, the default one first.
    pub fn models(&self) -> &[Arc<ServedModel>] {
        &self.models
    }

    /// The model a path names, or a 404 listing the names that exist. The name is
    /// echoed in the body only, never in a label.
    pub fn model(&self, name: &str) -> Result<&Arc<ServedModel>, ApiError> {
        self.models
            .iter()
            .find(|m| m.card.name == name)
            .ok_or_else(|| ApiError::UnknownModel {
                name: name.chars().take(crate::api::MAX_ID_LEN).collect(),
                known: self.model_names().join(", "),
            })
    }

    /// The model a prediction path names: as [`AppState::model`], and a 409 for a
    /// monitor-only model, which serves no prediction.
    pub fn served_model(&self, name: &str) -> Result<&Arc<ServedModel>, ApiError> {
        let model = self.model(name)?;
        if model.is_monitor_only() {
            return Err(ApiError::MonitorOnly {
                name: model.card.name.clone(),
            });
        }
        Ok(model)
    }

    /// The served models' names, the default one first.
    pub fn model_names(&self) -> Vec<String> {
        self.models.iter().map(|m| m.card.name.clone()).collect()
    }

    /// A new prediction id, unique across replicas.
    pub fn next_prediction_id(&self) -> String {
        self.ids.next()
    }
}

/// Prediction ids: a random per-process prefix and a counter, unique across replicas
/// without coordination.
#[derive(Debug)]
struct PredictionIds {
    prefix: u64,
    next: AtomicU64,
}

impl PredictionIds {
    fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.write_u32(std::process::id());
        Self {
            prefix: h.finish() & 0xffff_ffff_ffff,
            next: AtomicU64::new(1),
        }
    }

    /// `{prefix:012x}-{n:010x}`, written digit by digit into one allocation (this
    /// runs for every prediction; the formatting machinery costs several times more).
    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(23);
        push_hex(&mut id, self.prefix, 12);
        id.push('-');
        push_hex(&mut id, n, 10);
        id
    }
}

/// Appends the low `digits` hex digits of `value`, zero-padded, lower case.
fn push_hex(out: &mut String, value: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        let nibble = (value >> (4 * i)) & 0xf;
        out.push(char::from(HEX[nibble as usize]));
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The API router: `/v1/predict` and `/v1/predict/batch` (the default model's
/// transaction body), `/v1/models/{model}/predict` and `.../predict/batch` (request
/// fields by name), `/healthz`, `/readyz`, `/openapi.json` (the document of those),
/// and the Open Inference Protocol's `/v2/...` ([`oip::routes`]).
pub fn app(state: Arc<AppState>) -> Router {
    // The body limit is enforced by axum while reading, and its rejection is turned
    // into our JSON error by the handlers (they take `Result<Bytes, _>`).
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/v1/predict", post(predict))
        .route("/v1/predict/batch", post(predict_batch))
        .route("/v1/models/{model}/predict", post(model_predict))
        .route(
            "/v1/models/{model}/predict/batch",
            post(model_predict_batch),
        )
        .route(
            "/v1/models/{model}/observations",
            post(observations::observations),
        )
        .route("/v1/feedback", post(feedback::feedback))
        .route("/v1/feedback/batch", post(feedback::feedback_batch))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi::serve))
        .merge(oip::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// The metrics listener's router: `/metrics`, the page at `/` (the status verdict
/// from two scrapes, computed only when asked for), and `/admin/faults` when fault
/// injection is enabled.
pub fn metrics_app(state: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(page));
    if state.fault_injection {
        router = router.route(
            "/admin/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        );
    }
    router.fallback(not_found).with_state(state)
}

async fn page(State(state): State<Arc<AppState>>) -> Response {
    let config = modelwatch_mixin::MixinConfig::default();
    let encode = || {
        let mut body = String::with_capacity(state.last_scrape_len.load(Ordering::Relaxed) + 1024);
        Format::PrometheusText
            .encode(&state.registry, &mut body)
            .map(|()| body)
    };
    modelwatch_ui::listener::page(encode, &state.default_model().card.name, &config).await
}

async fn method_not_allowed() -> Response {
    let body = serde_json::json!({"error": {"type": "method_not_allowed", "message": "this endpoint does not take that method"}});
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

async fn not_found() -> Response {
    let body = serde_json::json!({"error": {"type": "not_found", "message": "no such endpoint"}});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

pub(crate) fn body_error(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::InvalidJson(format!("cannot read the request body: {rejection}"))
    }
}

#[utoipa::path(post, path = "/v1/predict", request_body = api::TransactionIn, responses(
    (status = 200, description = "Scored", body = Prediction),
    (status = 400, description = "`invalid_json` or `invalid_field`: the message names the field", body = error::ErrorBody),
    (status = 413, description = "`payload_too_large`: the body is over --max-body-bytes", body = error::ErrorBody),
    (status = 429, description = "`overloaded`: the queue is full", body = error::ErrorBody,
        headers(("Retry-After" = u64, description = "Seconds to wait"))),
    (status = 500, description = "`internal`: the model failed; the detail is logged", body = error::ErrorBody),
    (status = 503, description = "`unavailable`: shutting down", body = error::ErrorBody),
    (status = 504, description = "`timeout`: past --request-timeout", body = error::ErrorBody),
))]
async fn predict(
    State(state): State<Arc<AppState>>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Response {
    let model = state.default_model();
    if model.is_monitor_only() {
        return ApiError::MonitorOnly {
            name: model.card.name.clone(),
        }
        .into_response();
    }
    let request = model.metrics.start_request();
    // One wall-clock read: the default timestamp and the transforms' "now".
    let now = unix_now();
    let parsed = body
        .map_err(|r| body_error(r, state.limits.max_body_bytes))
        .and_then(|b| api::decode_transaction(&b, now))
        .and_then(|tx| {
            let (id, fields) = tx.into_fields();
            let prepared = model.fetcher.layout().prepare(&fields, "", "", now)?;
            Ok((id, prepared))
        });
    let (transaction_id, prepared) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            request.finish(e.status(), Decision::None);
            return e.into_response();
        }
    };
    match score_in_time(&state, model, prepared, request).await {
        Ok(prediction) => Json(Prediction {
            transaction_id,
            ..prediction
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(post, path = "/v1/models/{model}/predict", request_body = api::ModelRequestIn,
    params(("model" = String, Path, description = "A served model's name")), responses(
    (status = 200, description = "Scored", body = Prediction),
    (status = 400, description = "`invalid_json` or `invalid_field`: the message names the field (`features.<name>`, `entities.<key>`)", body = error::ErrorBody),
    (status = 404, description = "`unknown_model`: the message lists the served names", body = error::ErrorBody),
    (status = 413, description = "`payload_too_large` (over --max-body-bytes) or `batch_too_large` (over --max-batch-request)", body = error::ErrorBody),
    (status = 429, description = "`overloaded`: the queue is full", body = error::ErrorBody,
        headers(("Retry-After" = u64, description = "Seconds to wait"))),
    (status = 500, description = "`internal`: the model failed; the detail is logged", body = error::ErrorBody),
    (status = 503, description = "`unavailable`: shutting down", body = error::ErrorBody),
    (status = 504, description = "`timeout`: past --request-timeout", body = error::ErrorBody),
))]
async fn model_predict(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Response {
    // An unknown model is no model's request: it is refused uncounted.
    let model = match state.served_model(&name) {
        Ok(model) => model,
        Err(e) => return e.into_response(),
    };
    let request = model.metrics.start_request();
    let parsed = body
        .map_err(|r| body_error(r, state.limits.max_body_bytes))
        .and_then(|b| parse_json::<ModelRequestIn>(&b))
        .and_then(|r| r.into_fields(""))
        .and_then(|(id, fields)| {
            let layout = model.fetcher.layout();
            let prepared = layout.prepare(&fields, "features.", "entities.", unix_now())?;
            Ok((id, prepared))
        });
    let (id, prepared) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            request.finish(e.status(), Decision::None);
            return e.into_response();
        }
    };
    match score_in_time(&state, model, prepared, request).await {
        Ok(prediction) => Json(Prediction { id, ..prediction }).into_response(),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(post, path = "/v1/predict/batch", request_body = api::BatchIn, responses(
    (status = 200, description = "Every transaction scored, in request order", body = BatchPrediction),
    (status = 400, description = "`invalid_json` or `invalid_field` (`transactions[i].field`): nothing is scored", body = error::ErrorBody),
    (status = 413, description = "`payload_too_large` (over --max-body-bytes) or `batch_too_large` (over --max-batch-request)", body = error::ErrorBody),
    (status = 429, description = "`overloaded`: the queue is full", body = error::ErrorBody,
        headers(("Retry-After" = u64, description = "Seconds to wait"))),
    (status = 500, description = "`internal`: the model failed; the detail is logged", body = error::ErrorBody),
    (status = 503, description = "`unavailable`: shutting down", body = error::ErrorBody),
    (status = 504, description = "`timeout`: past --request-timeout", body = error::ErrorBody),
))]
async fn predict_batch(
    State(state): State<Arc<AppState>>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Response {
    let model = state.default_model().clone();
    if model.is_monitor_only() {
        return ApiError::MonitorOnly {
            name: model.card.name.clone(),
        }
        .into_response();
    }
    let now = unix_now();
    let parsed = body
        .map_err(|r| body_error(r, state.limits.max_body_bytes))
        .and_then(|b| api::decode_batch(&b, state.limits.max_batch_request, now))
        .and_then(|transactions| {
            // Refuse the whole batch when any row is invalid, naming it.
            let layout = model.fetcher.layout();
            let mut rows = Vec::with_capacity(transactions.len());
            for (i, tx) in transactions.into_iter().enumerate() {
                let (id, fields) = tx.into_fields();
                // The prefix is formatted only if a field is refused.
                let prefix = format_args!("transactions[{i}].");
                rows.push((id, layout.prepare(&fields, prefix, prefix, now)?));
            }
            Ok(rows)
        });
    match parsed {
        Ok(rows) => {
            score_batch(state, model, rows, |p, id| Prediction {
                transaction_id: id,
                ..p
            })
            .await
        }
        Err(e) => {
            model.metrics.count_request(e.status(), Decision::None);
            e.into_response()
        }
    }
}

#[utoipa::path(post, path = "/v1/models/{model}/predict/batch", request_body = api::ModelBatchIn,
    params(("model" = String, Path, description = "A served model's name")), responses(
    (status = 200, description = "Every row scored, in request order", body = BatchPrediction),
    (status = 400, description = "`invalid_json` or `invalid_field` (`rows[i].features.<name>`): nothing is scored", body = error::ErrorBody),
    (status = 404, description = "`unknown_model`: the message lists the served names", body = error::ErrorBody),
    (status = 413, description = "`payload_too_large` (over --max-body-bytes) or `batch_too_large` (over --max-batch-request)", body = error::ErrorBody),
    (status = 429, description = "`overloaded`: the queue is full", body = error::ErrorBody,
        headers(("Retry-After" = u64, description = "Seconds to wait"))),
    (status = 500, description = "`internal`: the model failed; the detail is logged", body = error::ErrorBody),
    (status = 503, description = "`unavailable`: shutting down", body = error::ErrorBody),
    (status = 504, description = "`timeout`: past --request-timeout", body = error::ErrorBody),
))]
async fn model_predict_batch(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Response {
    let model = match state.served_model(&name) {
        Ok(model) => model.clone(),
        Err(e) => return e.into_response(),
    };
    let parsed = body
        .map_err(|r| body_error(r, state.limits.max_body_bytes))
        .and_then(|b| parse_json::<ModelBatchIn>(&b))
        .and_then(|batch| {
            let limit = state.limits.max_batch_request;
            api::check_batch_len(batch.rows.len(), limit, "rows", "row").map(|()| batch)
        })
        .and_then(|batch| {
            let now = unix_now();
            let layout = model.fetcher.layout();
            let mut rows = Vec::with_capacity(batch.rows.len());
            for (i, r) in batch.rows.into_iter().enumerate() {
                let prefix = format!("rows[{i}].");
                let (id, fields) = r.into_fields(&prefix)?;
                let prepared = layout.prepare(
                    &fields,
                    format_args!("{prefix}features."),
                    format_args!("{prefix}entities."),
                    now,
                )?;
                rows.push((id, prepared));
            }
            Ok(rows)
        });
    match parsed {
        Ok(rows) => score_batch(state, model, rows, |p, id| Prediction { id, ..p }).await,
        Err(e) => {
            model.metrics.count_request(e.status(), Decision::None);
            e.into_response()
        }
    }
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Alive", body = openapi::Health)))]
async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Whether the replica should get traffic: not shutting down, the inference thread
/// running, the feature store answering within 1 s. `Err` says why not.
/// `/readyz` and the OIP's `/v2/health/ready` both answer from it.
async fn readiness(state: &AppState) -> Result<(), String> {
    if !state.accepting.load(Ordering::Relaxed) {
        return Err("shutting down".into());
    }
    for model in state.models() {
        let Some(batcher) = model.batcher() else {
            continue;
        };
        if let Some(reason) = batcher.health().reason() {
            return Err(if state.models.len() == 1 {
                reason
            } else {
                format!("model {}: {reason}", model.card.name)
            });
        }
    }
    // One store serves every model.
    let store = state.default_model().fetcher.store();
    let ping = tokio::time::timeout(Duration::from_secs(1), store.ping()).await;
    match ping {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("feature store did not answer within 1s".into()),
    }
}

#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "Takes traffic", body = openapi::Ready),
    (status = 503, description = "Out of rotation", body = openapi::NotReady),
))]
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match readiness(&state).await {
        Ok(()) => {
            let default = state.default_model();
            let models: Vec<_> = state
                .models()
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "name": m.card.name,
                        "version": m.card.version,
                        "inference_restarts": m.batcher().map_or(0, |b| b.health().restarts()),
                        "monitor_only": m.is_monitor_only(),
                    })
                })
                .collect();
            Json(serde_json::json!({
                "status": "ready",
                "model": default.card.name,
                "version": default.card.version,
                "inference_restarts": default.batcher().map_or(0, |b| b.health().restarts()),
                "models": models,
            }))
            .into_response()
        }
        Err(reason) => {
            let body = serde_json::json!({"status": "not_ready", "reason": reason});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let started = Instant::now();
    let mut body = String::with_capacity(state.last_scrape_len.load(Ordering::Relaxed) + 1024);
    if let Err(e) = format.encode(&state.registry, &mut body) {
        tracing::error!(error = %e, "cannot encode metrics");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    state.last_scrape_len.store(body.len(), Ordering::Relaxed);
    tracing::trace!(bytes = body.len(), elapsed = ?started.elapsed(), "scrape");
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

fn names(state: &AppState) -> (Vec<String>, Vec<String>) {
    let model = state.default_model();
    let groups = model.fetcher.layout().group_names.clone();
    let features = model.card.features.iter().map(|f| f.name.clone()).collect();
    (groups, features)
}

async fn get_faults(State(state): State<Arc<AppState>>) -> Response {
    let (groups, features) = names(&state);
    Json(state.faults.spec(&groups, &features)).into_response()
}

async fn set_faults(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let spec: FaultSpec = match parse_json(&body) {
        Ok(spec) => spec,
        Err(e) => return e.into_response(),
    };
    let (groups, features) = names(&state);
    match state.faults.apply(&spec, &groups, &features) {
        Ok(()) => {
            if spec.cache_disabled {
                state.default_model().fetcher.invalidate_cache();
            }
            tracing::warn!(?spec, "fault injection changed");
            Json(state.faults.spec(&groups, &features)).into_response()
        }
        Err(reason) => ApiError::field("faults", reason).into_response(),
    }
}

async fn clear_faults(State(state): State<Arc<AppState>>) -> Response {
    let (groups, features) = names(&state);
    // Clearing cannot fail: the empty spec names nothing.
    let _ = state
        .faults
        .apply(&FaultSpec::default(), &groups, &features);
    Json(state.faults.spec(&groups, &features)).into_response()
}
