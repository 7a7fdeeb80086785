//! Module implementing the OpenAPI document of the API listener, served at
//! `GET /openapi.json`. See [`document`] for details.
//!
//! The document is derived from the request, response and error types themselves
//! (`utoipa`), and the limits a server was started with (body size, batch size,
//! deadline) are written into it when it is served, so it states what this server
//! enforces rather than the defaults.

use crate::api::{BatchIn, BatchPrediction, Prediction, TransactionIn};
use crate::error::{ErrorBody, ErrorDetail};
use crate::{AppState, Limits};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::OpenApi;

/// The body of `GET /healthz`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Always `ok` while the process serves.
    #[schema(example = "ok")]
    pub status: String,
}

/// The body of `GET /readyz` when the replica takes traffic.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// `ready`.
    #[schema(example = "ready")]
    pub status: String,
    /// The served model.
    pub model: String,
    /// Its version.
    pub version: String,
    /// Times the inference thread restarted after a panic in the model since start.
    pub inference_restarts: u64,
}

/// The body of `GET /readyz` when the replica should be out of rotation.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotReady {
    /// `not_ready`.
    #[schema(example = "not_ready")]
    pub status: String,
    /// Why: shutting down, the inference thread restarting or stopped after a panic,
    /// or the feature store not answering.
    pub reason: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "modelwatch serve",
        description = "The prediction API of `modelwatch serve`. Every error answer has the body \
            `{\"error\": {\"type\", \"message\"}}` (ErrorBody). Any path not listed here answers \
            404 (`not_found`), and a listed path called with another method answers 405 \
            (`method_not_allowed`), both with that body. Metrics are served on the separate \
            metrics listener, not here."
    ),
    paths(
        crate::predict,
        crate::predict_batch,
        crate::healthz,
        crate::readyz,
        serve
    ),
    components(schemas(
        TransactionIn,
        BatchIn,
        Prediction,
        BatchPrediction,
        ErrorBody,
        ErrorDetail,
        Health,
        Ready,
        NotReady
    ))
)]
struct ApiDoc;

/// The OpenAPI 3.1 document of the API listener, with `limits` written into the body
/// size, batch size and deadline descriptions.
pub fn document(limits: &Limits) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let schemas = &mut doc["components"]["schemas"];
    schemas["BatchIn"]["properties"]["transactions"]["maxItems"] = limits.max_batch_request.into();
    let note = format!(
        "Limits of this server: bodies of at most {} bytes (413 `payload_too_large` above), \
         at most {} transactions per batch (413 `batch_too_large` above), and a deadline of \
         {} ms per prediction (504 `timeout` past it).",
        limits.max_body_bytes,
        limits.max_batch_request,
        limits.request_timeout.as_millis()
    );
    let description = doc["info"]["description"].as_str().unwrap_or_default();
    doc["info"]["description"] = format!("{description}\n\n{note}").into();
    doc["info"]["x-limits"] = serde_json::json!({
        "max_body_bytes": limits.max_body_bytes,
        "max_batch_request": limits.max_batch_request,
        "request_timeout_ms": limits.request_timeout.as_millis() as u64,
    });
    doc
}

/// The OpenAPI document of this API, with this server's limits.
#[utoipa::path(
    get,
    path = "/openapi.json",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub(crate) async fn serve(State(state): State<Arc<AppState>>) -> Response {
    Json(document(&state.limits)).into_response()
}
