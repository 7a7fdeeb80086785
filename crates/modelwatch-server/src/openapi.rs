//! Module implementing the OpenAPI document of the API listener, served at
//! `GET /openapi.json`. See [`document`] for details.
//!
//! The document is derived from the request, response and error types themselves
//! (`utoipa`), and the limits a server was started with (body size, batch size,
//! deadline) are written into it when it is served, so it states what this server
//! enforces rather than the defaults.

use crate::api::{
    BatchIn, BatchPrediction, ModelBatchIn, ModelRequestIn, Prediction, TransactionIn,
};
use crate::error::{ErrorBody, ErrorDetail};
use crate::{AppState, Limits};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use modelwatch_runtime::ModelCard;
use modelwatch_runtime::card::FieldKind;
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
    /// Every served model (the default one first), each with its restarts.
    pub models: Vec<ReadyModel>,
}

/// One served model in the body of `GET /readyz`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadyModel {
    /// Its name (the `model` label).
    pub name: String,
    /// Its version.
    pub version: String,
    /// Times its inference thread restarted after a panic in the model (0 for a
    /// monitor-only model).
    pub inference_restarts: u64,
    /// Whether it is monitor-only: it takes prediction events and serves none.
    pub monitor_only: bool,
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
        crate::model_predict,
        crate::model_predict_batch,
        crate::observations::observations,
        crate::healthz,
        crate::readyz,
        serve
    ),
    components(schemas(
        TransactionIn,
        BatchIn,
        ModelRequestIn,
        ModelBatchIn,
        Prediction,
        BatchPrediction,
        ErrorBody,
        ErrorDetail,
        Health,
        Ready,
        ReadyModel,
        NotReady,
        crate::observations::ObservationsAnswer
    ))
)]
struct ApiDoc;

/// The OpenAPI 3.1 document of the API listener, with `limits` written into the body
/// size, batch size and deadline descriptions, and the served `cards`' request fields
/// and model names written into the `/v1/models/{model}` operations.
///
/// With one model, the body schema is exactly its fields, with the required ones
/// marked. With several, it holds every model's fields and marks none required,
/// since which are depends on the model named in the path (a missing one is a 400
/// naming it).
pub fn document(limits: &Limits, cards: &[&ModelCard]) -> serde_json::Value {
    // The prediction paths are the served models'; a monitor-only card takes
    // observations only.
    let every_name: Vec<&str> = cards.iter().map(|c| c.name.as_str()).collect();
    let cards: Vec<&ModelCard> = cards.iter().copied().filter(|c| c.onnx.is_some()).collect();
    let cards = cards.as_slice();
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let schemas = &mut doc["components"]["schemas"];
    schemas["BatchIn"]["properties"]["transactions"]["maxItems"] = limits.max_batch_request.into();
    schemas["ModelBatchIn"]["properties"]["rows"]["maxItems"] = limits.max_batch_request.into();
    let (mut features, mut entities) = (serde_json::Map::new(), serde_json::Map::new());
    for (name, kind) in cards.iter().flat_map(|card| card.request_fields()) {
        let schema = match kind {
            FieldKind::Number => serde_json::json!({"type": ["number", "null"]}),
            FieldKind::Time => serde_json::json!({"anyOf": [
                {"type": "string", "format": "date-time"}, {"type": "number"}, {"type": "null"}],
                "description": "RFC 3339 text or Unix seconds"}),
            FieldKind::EntityKey => {
                entities.insert(
                    name.to_string(),
                    serde_json::json!({"type": ["string", "integer"]}),
                );
                continue;
            }
        };
        features.insert(name.to_string(), schema);
    }
    // A field is required when a feature that may not be missing reads it; an entity
    // key when its group has such a feature.
    let (mut required_fields, mut required_keys) = (Vec::new(), Vec::new());
    if let [card] = cards {
        required_fields = card
            .features
            .iter()
            .filter(|f| !f.nullable)
            .filter_map(|f| f.field.as_deref())
            .collect();
        required_keys = card
            .groups
            .iter()
            .filter(|(name, _)| {
                card.features
                    .iter()
                    .any(|f| !f.nullable && &f.group == *name)
            })
            .filter_map(|(_, g)| g.entity_key.as_deref())
            .collect();
    }
    let mut required = Vec::new();
    if !required_fields.is_empty() {
        required.push("features");
    }
    if !required_keys.is_empty() {
        required.push("entities");
    }
    schemas["ModelRequestIn"]["required"] = required.into();
    let request = &mut schemas["ModelRequestIn"]["properties"];
    request["features"]["required"] = sorted_unique(required_fields).into();
    request["entities"]["required"] = sorted_unique(required_keys).into();
    request["features"]["properties"] = features.into();
    request["features"]["additionalProperties"] = false.into();
    request["entities"]["properties"] = entities.into();
    request["entities"]["additionalProperties"] = false.into();
    for path in [
        "/v1/models/{model}/predict",
        "/v1/models/{model}/predict/batch",
    ] {
        if let Some(params) = doc["paths"][path]["post"]["parameters"].as_array_mut() {
            let names: Vec<&str> = cards.iter().map(|c| c.name.as_str()).collect();
            for param in params.iter_mut().filter(|_| !names.is_empty()) {
                param["schema"] = serde_json::json!({"type": "string", "enum": names});
            }
        }
    }
    // Observations name any model: a served one answers 409 `not_monitor_only`.
    if let Some(params) =
        doc["paths"]["/v1/models/{model}/observations"]["post"]["parameters"].as_array_mut()
    {
        for param in params {
            param["schema"] = serde_json::json!({"type": "string", "enum": every_name});
        }
    }
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
        "max_observation_batch": limits.max_observation_batch,
        "request_timeout_ms": limits.request_timeout.as_millis() as u64,
    });
    doc
}

fn sorted_unique(mut names: Vec<&str>) -> Vec<String> {
    names.sort_unstable();
    names.dedup();
    names.into_iter().map(str::to_string).collect()
}

/// The OpenAPI document of this API, with this server's limits.
#[utoipa::path(
    get,
    path = "/openapi.json",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub(crate) async fn serve(State(state): State<Arc<AppState>>) -> Response {
    let cards: Vec<&ModelCard> = state.models().iter().map(|m| &m.card).collect();
    Json(document(&state.limits, &cards)).into_response()
}
