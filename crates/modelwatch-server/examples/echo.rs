//! The HTTP stack's ceiling, for the load benchmark: the same axum server, the same
//! request parsing and a response of the same shape as `/v1/predict`, but no
//! features, no model and no metrics.
//!
//! ```text
//! cargo run --release -p modelwatch-server --example echo -- 127.0.0.1:8090
//! ```

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use modelwatch_server::api::{Prediction, TransactionIn, parse_json};

async fn echo(body: Bytes) -> Response {
    match parse_json::<TransactionIn>(&body) {
        Ok(tx) => Json(Prediction {
            prediction_id: "echo".into(),
            transaction_id: tx.transaction_id,
            id: None,
            score: Some(tx.amount / 1e6),
            value: None,
            decision: Some("approved".into()),
            model: "echo".into(),
            version: "0".into(),
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let app = axum::Router::new()
        .route("/v1/predict", post(echo))
        .route("/readyz", get(|| async { StatusCode::OK }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("echo listening on {addr}");
    axum::serve(listener, app).await
}
