//! The one error type of the API and its HTTP mapping. See [`ApiError`] for details.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use modelwatch::Status;
use serde::Serialize;

/// Everything a prediction request can end in other than a prediction.
///
/// Client mistakes get their own 4xx and a message that says what to fix. Internal
/// failures are logged in full and reported to the client only as "internal error".
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not the JSON we expect (wrong type, missing field).
    #[error("{0}")]
    InvalidJson(String),
    /// A field parsed but its value is not acceptable.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field, such as `amount` or `transactions[3].customer_id`.
        field: String,
        /// Why it is refused.
        reason: String,
    },
    /// The path names a model this server does not serve.
    #[error("no model named {name:?}; this server serves: {known}")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The names served, comma-separated.
        known: String,
    },
    /// The path names a monitor-only model, which serves no prediction.
    #[error(
        "model {name:?} is monitor-only: it records prediction events (POST /v1/models/{name}/observations) and serves no prediction"
    )]
    MonitorOnly {
        /// The model's name.
        name: String,
    },
    /// The path names a served model, whose metrics come from its own predictions.
    #[error(
        "model {name:?} is served here: its metrics come from its own predictions, so it takes no observations; give the other server's model a monitor-only card of its own"
    )]
    NotMonitorOnly {
        /// The model's name.
        name: String,
    },
    /// The body's media type is not one the endpoint reads.
    #[error("unsupported Content-Type {given:?}; send {expected}")]
    UnsupportedMediaType {
        /// What the request said.
        given: String,
        /// What the endpoint reads.
        expected: &'static str,
    },
    /// The body is larger than the configured limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A batch has more transactions than allowed.
    #[error("batch has {given} transactions; at most {limit} are allowed per request")]
    BatchTooLarge {
        /// Transactions in the request.
        given: usize,
        /// The limit.
        limit: usize,
    },
    /// An observations request holds more events than allowed.
    #[error(
        "the request holds {given} events; at most {limit} are allowed per request (--max-observation-batch)"
    )]
    TooManyEvents {
        /// Events in the request.
        given: usize,
        /// The limit.
        limit: usize,
    },
    /// The micro-batcher's queue is full.
    #[error("the server is overloaded; retry with backoff")]
    Overloaded,
    /// The request passed its deadline.
    #[error("the prediction did not complete within {deadline_ms} ms")]
    Timeout {
        /// The deadline in milliseconds.
        deadline_ms: u64,
    },
    /// The server is shutting down or the model worker is gone.
    #[error("the server is shutting down")]
    Unavailable,
    /// Anything else; the detail is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

/// The body of every error answer: `{"error": {"type", "message"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The `error` object of an [`ErrorBody`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case name for programs: `invalid_json`, `invalid_field`,
    /// `payload_too_large`, `batch_too_large`, `monitor_only`, `not_monitor_only`,
    /// `unsupported_media_type`, `overloaded`, `timeout`, `unavailable`,
    /// `internal`, `not_found` or `method_not_allowed`.
    #[serde(rename = "type")]
    #[schema(example = "invalid_field")]
    pub kind: &'static str,
    /// A sentence for people that names the field and says what to fix.
    #[schema(example = "amount: must not be negative")]
    pub message: String,
}

impl ApiError {
    /// The snake_case error type, used in the response body.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::UnknownModel { .. } => "unknown_model",
            ApiError::MonitorOnly { .. } => "monitor_only",
            ApiError::NotMonitorOnly { .. } => "not_monitor_only",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::BatchTooLarge { .. } | ApiError::TooManyEvents { .. } => "batch_too_large",
            ApiError::Overloaded => "overloaded",
            ApiError::Timeout { .. } => "timeout",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The `status` label this outcome is counted under.
    pub fn status(&self) -> Status {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::InvalidField { .. }
            | ApiError::UnknownModel { .. }
            | ApiError::MonitorOnly { .. }
            | ApiError::NotMonitorOnly { .. }
            | ApiError::UnsupportedMediaType { .. }
            | ApiError::PayloadTooLarge { .. }
            | ApiError::BatchTooLarge { .. }
            | ApiError::TooManyEvents { .. } => Status::Rejected,
            ApiError::Overloaded => Status::Overloaded,
            ApiError::Timeout { .. } => Status::Timeout,
            ApiError::Unavailable | ApiError::Internal(_) => Status::Error,
        }
    }

    /// The HTTP status code.
    pub fn http_status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_) | ApiError::InvalidField { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnknownModel { .. } => StatusCode::NOT_FOUND,
            ApiError::MonitorOnly { .. } | ApiError::NotMonitorOnly { .. } => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. }
            | ApiError::BatchTooLarge { .. }
            | ApiError::TooManyEvents { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error while serving a prediction");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.error_type(),
                message: self.to_string(),
            },
        };
        let mut response = (self.http_status(), Json(body)).into_response();
        if matches!(self, ApiError::Overloaded) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}
