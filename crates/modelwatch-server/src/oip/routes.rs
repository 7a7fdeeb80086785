//! Module implementing the protocol's endpoints on the API router. See [`routes`] for
//! details.

use super::{
    BINARY_TENSOR_EXTENSION, Datatype, HEADER_LENGTH_HEADER, OipError, Output, ROWS_PREFIX,
    decode_infer, encode_response, inputs_of, pipeline_error, rows_from_tensors, select_outputs,
};
use crate::features::RequestFields;
use crate::{AppState, ServedModel};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use modelwatch::Decision;
use modelwatch_runtime::ModelCard;
use serde::Serialize;
use std::sync::Arc;

/// The platform the model metadata reports: an ONNX graph (run by our own tree
/// evaluator or tract, not by ONNX Runtime, so not Triton's `onnxruntime_onnx`).
pub const PLATFORM: &str = "onnx_onnxv1";

/// The protocol's routes: health, server and model metadata, model readiness and
/// infer, each model path with and without `/versions/{version}`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_metadata_version),
        )
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready_version),
        )
        .route("/v2/models/{name}/infer", post(infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_version),
        )
}

/// The model a path names, or 404 with the names that exist.
fn find_model<'a>(
    state: &'a AppState,
    name: &str,
    version: Option<&str>,
) -> Result<&'a Arc<ServedModel>, OipError> {
    let Some(model) = state.models().iter().find(|m| m.card.name == name) else {
        return Err(OipError::UnknownModel {
            given: name.to_string(),
            available: state.model_names(),
        });
    };
    let card = &model.card;
    match version {
        Some(v) if v != card.version => Err(OipError::UnknownVersion {
            model: card.name.clone(),
            given: v.to_string(),
            available: vec![card.version.clone()],
        }),
        _ => Ok(model),
    }
}

fn path_error(rejection: PathRejection) -> Response {
    OipError::InvalidRequest(format!("cannot read the path: {rejection}")).into_response()
}

async fn server_metadata() -> Response {
    Json(serde_json::json!({
        "name": "modelwatch",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": [BINARY_TENSOR_EXTENSION],
    }))
    .into_response()
}

async fn live() -> Response {
    Json(serde_json::json!({"live": true})).into_response()
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match crate::readiness(&state).await {
        Ok(()) => Json(serde_json::json!({"ready": true})).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "reason": reason})),
        )
            .into_response(),
    }
}

#[derive(Serialize)]
struct TensorMetadata<'a> {
    name: &'a str,
    datatype: Datatype,
    shape: [i64; 1],
}

#[derive(Serialize)]
struct ModelMetadata<'a> {
    name: &'a str,
    versions: [&'a str; 1],
    platform: &'static str,
    inputs: Vec<TensorMetadata<'a>>,
    outputs: Vec<TensorMetadata<'a>>,
}

/// The card's request fields as input tensors, and the outputs of its task.
fn metadata(card: &ModelCard) -> Response {
    // -1: any number of rows.
    let inputs = inputs_of(card)
        .iter()
        .map(|s| TensorMetadata {
            name: s.name,
            datatype: s.datatype(),
            shape: [-1],
        })
        .collect();
    let outputs = Output::of(card)
        .iter()
        .map(|o| TensorMetadata {
            name: o.name(),
            datatype: o.datatype(),
            shape: [-1],
        })
        .collect();
    Json(ModelMetadata {
        name: &card.name,
        versions: [&card.version],
        platform: PLATFORM,
        inputs,
        outputs,
    })
    .into_response()
}

async fn model_metadata(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let Path(name) = match path {
        Ok(p) => p,
        Err(r) => return path_error(r),
    };
    match find_model(&state, &name, None) {
        Ok(model) => metadata(&model.card),
        Err(e) => e.into_response(),
    }
}

async fn model_metadata_version(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let Path((name, version)) = match path {
        Ok(p) => p,
        Err(r) => return path_error(r),
    };
    match find_model(&state, &name, Some(&version)) {
        Ok(model) => metadata(&model.card),
        Err(e) => e.into_response(),
    }
}

async fn model_ready_at(state: &AppState, name: &str, version: Option<&str>) -> Response {
    let card = match find_model(state, name, version) {
        Ok(model) => &model.card,
        Err(e) => return e.into_response(),
    };
    match crate::readiness(state).await {
        Ok(()) => Json(serde_json::json!({"name": card.name, "ready": true})).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"name": card.name, "ready": false, "reason": reason})),
        )
            .into_response(),
    }
}

async fn model_ready(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    match path {
        Ok(Path(name)) => model_ready_at(&state, &name, None).await,
        Err(r) => path_error(r),
    }
}

async fn model_ready_version(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    match path {
        Ok(Path((name, version))) => model_ready_at(&state, &name, Some(&version)).await,
        Err(r) => path_error(r),
    }
}

async fn infer(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match path {
        Ok(Path(name)) => infer_at(&state, &name, None, &headers, body).await,
        Err(r) => path_error(r),
    }
}

async fn infer_version(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match path {
        Ok(Path((name, version))) => infer_at(&state, &name, Some(&version), &headers, body).await,
        Err(r) => path_error(r),
    }
}

/// A request that decoded and mapped onto request rows: ready for the pipeline.
struct Accepted {
    id: Option<String>,
    rows: Vec<RequestFields>,
    outputs: Vec<(Output, bool)>,
}

/// Everything up to the pipeline; a refusal here is counted once, like a refused
/// `/v1/models/{model}/predict/batch`.
fn accept(
    state: &AppState,
    card: &ModelCard,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Accepted, OipError> {
    let body = body.map_err(|r| crate::body_error(r, state.limits.max_body_bytes))?;
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        let encoding = String::from_utf8_lossy(encoding.as_bytes()).into_owned();
        if !encoding.trim().eq_ignore_ascii_case("identity") {
            return Err(OipError::UnsupportedEncoding(encoding));
        }
    }
    let header_length = headers.get(HEADER_LENGTH_HEADER).map(HeaderValue::as_bytes);
    let request = decode_infer(header_length, &body)?;
    let outputs = select_outputs(&request, Output::of(card))?;
    let rows = rows_from_tensors(
        &inputs_of(card),
        &request.inputs,
        state.limits.max_batch_request,
        crate::unix_now,
    )?;
    Ok(Accepted {
        id: request.id,
        rows,
        outputs,
    })
}

async fn infer_at(
    state: &Arc<AppState>,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let model = match find_model(state, name, version) {
        Ok(model) => model,
        Err(e) => return e.into_response(),
    };
    if model.is_monitor_only() {
        let e = crate::error::ApiError::MonitorOnly {
            name: model.card.name.clone(),
        };
        return crate::oip::OipError::from(e).into_response();
    }
    let accepted = match accept(state, &model.card, headers, body) {
        Ok(a) => a,
        Err(e) => {
            if let Some(status) = e.status() {
                model.metrics.count_request(status, Decision::None);
            }
            return e.into_response();
        }
    };
    // The generic path of /v1/models/{model}/predict/batch: each row is checked,
    // counted and recorded there, as one request (a refused row is counted there).
    let predictions =
        match crate::predict_fields(state.clone(), model, &accepted.rows, ROWS_PREFIX).await {
            Ok(p) => p,
            Err(e) => return pipeline_error(e).into_response(),
        };
    let encoded = encode_response(
        &model.card.name,
        &model.card.version,
        accepted.id.as_deref(),
        &predictions,
        &accepted.outputs,
    );
    let mut response = encoded.body.into_response();
    let headers = response.headers_mut();
    match encoded.header_length {
        Some(length) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(HEADER_LENGTH_HEADER, HeaderValue::from(length));
        }
        None => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    response
}
