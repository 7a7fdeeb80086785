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
pub mod features;
pub mod load;
pub mod oip;
pub mod refresher;
pub mod server;
pub mod store;
pub mod webconfig;

use crate::api::{BatchIn, BatchPrediction, Prediction, Transaction, TransactionIn, parse_json};
use crate::batcher::{BatchError, Batcher};
use crate::error::ApiError;
use crate::faults::{FaultSpec, Faults};
use crate::features::{FeatureFetcher, MAX_FEATURES};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use modelwatch::prometheus_client::registry::Registry;
use modelwatch::{Decision, DriftHandle, Format, ModelHandle, Stage, Status};
use modelwatch_runtime::ModelCard;
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
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The loaded model's card.
    pub card: ModelCard,
    /// The model's metric handles.
    pub metrics: ModelHandle,
    /// The model's drift and freshness handle.
    pub drift: DriftHandle,
    /// Feature assembly.
    pub fetcher: FeatureFetcher,
    /// The micro-batcher in front of the model.
    pub batcher: Batcher,
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
    ids: PredictionIds,
    last_scrape_len: AtomicUsize,
}

impl AppState {
    /// Assembles the state from its parts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        card: ModelCard,
        metrics: ModelHandle,
        drift: DriftHandle,
        fetcher: FeatureFetcher,
        batcher: Batcher,
        registry: Registry,
        limits: Limits,
        faults: Arc<Faults>,
        fault_injection: bool,
    ) -> Self {
        Self {
            card,
            metrics,
            drift,
            fetcher,
            batcher,
            registry,
            limits,
            faults,
            fault_injection,
            accepting: AtomicBool::new(true),
            ids: PredictionIds::new(),
            last_scrape_len: AtomicUsize::new(16 * 1024),
        }
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

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:012x}-{:010x}", self.prefix, n)
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The API router: `/v1/predict`, `/v1/predict/batch`, `/healthz`, `/readyz`, and
/// the Open Inference Protocol's `/v2/...` ([`oip::routes`]).
pub fn app(state: Arc<AppState>) -> Router {
    // The body limit is enforced by axum while reading, and its rejection is turned
    // into our JSON error by the handlers (they take `Result<Bytes, _>`).
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/v1/predict", post(predict))
        .route("/v1/predict/batch", post(predict_batch))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(oip::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// The metrics listener's router: `/metrics`, and `/admin/faults` when fault
/// injection is enabled.
pub fn metrics_app(state: Arc<AppState>) -> Router {
    let mut router = Router::new().route("/metrics", get(metrics));
    if state.fault_injection {
        router = router.route(
            "/admin/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        );
    }
    router.fallback(not_found).with_state(state)
}

async fn method_not_allowed() -> Response {
    let body = serde_json::json!({"error": {"type": "method_not_allowed", "message": "this endpoint does not take that method"}});
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

async fn not_found() -> Response {
    let body = serde_json::json!({"error": {"type": "not_found", "message": "no such endpoint"}});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

fn body_error(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::InvalidJson(format!("cannot read the request body: {rejection}"))
    }
}

async fn predict(
    State(state): State<Arc<AppState>>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Response {
    let mut request = state.metrics.start_request();
    let parsed = body
        .map_err(|r| body_error(r, state.limits.max_body_bytes))
        .and_then(|b| parse_json::<TransactionIn>(&b))
        .and_then(|t| t.validate("", unix_now()));
    let tx = match parsed {
        Ok(tx) => tx,
        Err(e) => {
            request.finish(e.status(), Decision::None);
            return e.into_response();
        }
    };
    match tokio::time::timeout(
        state.limits.request_timeout,
        score(&state, tx, &mut request),
    )
    .await
    {
        Ok(Ok((prediction, decision))) => {
            request.finish(Status::Success, decision);
            Json(prediction).into_response()
        }
        Ok(Err(e)) => {
            request.finish(e.status(), Decision::None);
            e.into_response()
        }
        Err(_) => {
            let e = ApiError::Timeout {
                deadline_ms: state.limits.request_timeout.as_millis() as u64,
            };
            request.finish(e.status(), Decision::None);
            e.into_response()
        }
    }
}

async fn predict_batch(
    State(state): State<Arc<AppState>>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Response {
    let parsed = body
        .map_err(|r| body_error(r, state.limits.max_body_bytes))
        .and_then(|b| parse_json::<BatchIn>(&b));
    let batch = match parsed {
        Ok(batch) => batch,
        Err(e) => {
            state.metrics.count_request(e.status(), Decision::None);
            return e.into_response();
        }
    };
    let n = batch.transactions.len();
    if n > state.limits.max_batch_request {
        let e = ApiError::BatchTooLarge {
            given: n,
            limit: state.limits.max_batch_request,
        };
        state.metrics.count_request(e.status(), Decision::None);
        return e.into_response();
    }
    if n == 0 {
        let e = ApiError::field("transactions", "must hold at least one transaction");
        state.metrics.count_request(e.status(), Decision::None);
        return e.into_response();
    }
    // Refuse the whole batch when any row is invalid, naming it: nothing is scored.
    let now = unix_now();
    let mut transactions = Vec::with_capacity(n);
    for (i, t) in batch.transactions.into_iter().enumerate() {
        match t.validate(&format!("transactions[{i}]."), now) {
            Ok(tx) => transactions.push(tx),
            Err(e) => {
                state.metrics.count_request(e.status(), Decision::None);
                return e.into_response();
            }
        }
    }
    match score_batch(&state, transactions).await {
        Ok(predictions) => Json(BatchPrediction { predictions }).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Scores validated transactions side by side, each one a prediction of its own:
/// counted in `model_requests_total`, timed per stage, its score and features
/// recorded for drift. The first error fails the whole answer (the rows that did
/// score stay counted). `/v1/predict/batch` and the OIP's infer both come here.
async fn score_batch(
    state: &Arc<AppState>,
    transactions: Vec<Transaction>,
) -> Result<Vec<Prediction>, ApiError> {
    let n = transactions.len();
    let deadline = state.limits.request_timeout;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, tx) in transactions.into_iter().enumerate() {
        let state = state.clone();
        tasks.spawn(async move {
            let mut request = state.metrics.start_request();
            let outcome = tokio::time::timeout(deadline, score(&state, tx, &mut request)).await;
            let result = match outcome {
                Ok(Ok((prediction, decision))) => {
                    request.finish(Status::Success, decision);
                    Ok(prediction)
                }
                Ok(Err(e)) => {
                    request.finish(e.status(), Decision::None);
                    Err(e)
                }
                Err(_) => {
                    request.finish(Status::Timeout, Decision::None);
                    Err(ApiError::Timeout {
                        deadline_ms: deadline.as_millis() as u64,
                    })
                }
            };
            (i, result)
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

/// Runs one validated transaction through the pipeline.
async fn score(
    state: &AppState,
    tx: Transaction,
    request: &mut modelwatch::RequestGuard<'_>,
) -> Result<(Prediction, Decision), ApiError> {
    if state.faults.should_fail() {
        return Err(ApiError::Internal("injected fault: error_ratio".into()));
    }
    let width = state.fetcher.layout().n_features;
    let mut row = [0f32; MAX_FEATURES];
    let mut event_times = [modelwatch::drift_metrics::NOT_USED; MAX_GROUPS];
    state
        .fetcher
        .fetch(&tx, &mut row[..width], &mut event_times)
        .await;
    request.mark_stage(Stage::FeatureFetch);

    let deadline = request.started_at() + state.limits.request_timeout;
    let scored = state
        .batcher
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
    state
        .metrics
        .observe_stage(Stage::Queue, scored.queue_seconds);
    state
        .metrics
        .observe_stage(Stage::Inference, scored.inference_seconds);
    request.restart_mark();

    let score = f64::from(scored.score);
    let approved = score < state.card.threshold;
    let decision = if approved {
        Decision::Approved
    } else {
        Decision::Declined
    };
    state.metrics.observe_score(score);
    if state.metrics.enabled() {
        state.drift.record_prediction(
            state.drift.now(),
            score,
            approved,
            &row[..width],
            &event_times,
        );
    }
    let prediction = Prediction {
        prediction_id: state.ids.next(),
        transaction_id: tx.transaction_id,
        score,
        decision: decision.as_str().to_string(),
        model: state.card.name.clone(),
        version: state.card.version.clone(),
    };
    request.mark_stage(Stage::Postprocess);
    Ok((prediction, decision))
}

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
    if let Some(reason) = state.batcher.health().reason() {
        return Err(reason);
    }
    let ping = tokio::time::timeout(Duration::from_secs(1), state.fetcher.store().ping()).await;
    match ping {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("feature store did not answer within 1s".into()),
    }
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match readiness(&state).await {
        Ok(()) => Json(serde_json::json!({
            "status": "ready",
            "model": state.card.name,
            "version": state.card.version,
        }))
        .into_response(),
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
    let groups = state.fetcher.layout().group_names.clone();
    let features = state.card.features.iter().map(|f| f.name.clone()).collect();
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
                state.fetcher.invalidate_cache();
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
