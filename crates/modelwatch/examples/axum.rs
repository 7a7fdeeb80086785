//! A minimal model server instrumented with modelwatch.
//!
//! The API listens on 127.0.0.1:3000 and the metrics on their own listener,
//! 127.0.0.1:3001, as they should in production (scrapes never compete with
//! traffic, and the API port never exposes internals).
//!
//! ```text
//! cargo run -p modelwatch --example axum
//! curl -s -XPOST 127.0.0.1:3000/predict -H 'content-type: application/json' -d '{"amount": 120.5}'
//! curl -s 127.0.0.1:3001/metrics | grep model_
//! ```

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use modelwatch::prometheus_client::registry::Registry;
use modelwatch::{
    Buckets, CacheOperation, Decision, DecisionNames, Format, Metrics, MetricsConfig, ModelHandle,
    ModelSpec, Stage, Status,
};
use std::sync::Arc;

const THRESHOLD: f64 = 0.5;

#[derive(Debug)]
struct App {
    model: ModelHandle,
}

#[derive(Debug, serde::Deserialize)]
struct Transaction {
    amount: f64,
}

#[derive(Debug, serde::Serialize)]
struct Prediction {
    score: f64,
    decision: String,
}

/// A stand-in model: the score rises with the amount.
fn score(amount: f64) -> f64 {
    1.0 / (1.0 + (-(amount - 220.0) / 40.0).exp())
}

async fn predict(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let mut request = app.model.start_request();
    // A real server would queue here; the mark records the queue stage.
    request.mark_stage(Stage::Queue);
    let amount = match serde_json::from_slice::<Transaction>(&body) {
        Ok(t) if t.amount.is_finite() && t.amount >= 0.0 => t.amount,
        _ => {
            request.finish(Status::Rejected, Decision::None);
            let error = serde_json::json!({"error": {"type": "invalid_request",
                "message": "expected {\"amount\": a non-negative number}"}});
            return (StatusCode::BAD_REQUEST, Json(error)).into_response();
        }
    };
    app.model.cache(CacheOperation::Hit);
    request.mark_stage(Stage::FeatureFetch);
    let score = score(amount);
    request.mark_stage(Stage::Inference);
    let decision = if score < THRESHOLD {
        Decision::Below
    } else {
        Decision::AtOrAbove
    };
    app.model.observe_score(score);
    request.mark_stage(Stage::Postprocess);
    request.finish(Status::Success, decision);
    Json(Prediction {
        score,
        decision: app.model.decision_name(decision).to_string(),
    })
    .into_response()
}

async fn scrape(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let mut body = String::new();
    match format.encode(&registry, &mut body) {
        Ok(()) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut registry = Registry::default();
    let config = MetricsConfig {
        buckets: Buckets::default().with_score_threshold(THRESHOLD),
        ..MetricsConfig::default()
    };
    let metrics = Metrics::register(&mut registry, &config).map_err(std::io::Error::other)?;
    let model = metrics.model(&ModelSpec {
        name: "example".into(),
        version: "1".into(),
        framework: "rust".into(),
        training_date: "2026-11-24".into(),
        architecture: "logistic".into(),
        decisions: Some(DecisionNames::new("approved", "declined").map_err(std::io::Error::other)?),
    });
    let api = Router::new()
        .route("/predict", post(predict))
        .with_state(Arc::new(App { model }));
    let scrape = Router::new()
        .route("/metrics", get(scrape))
        .with_state(Arc::new(registry));
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    eprintln!("API on http://127.0.0.1:3000/predict, metrics on http://127.0.0.1:3001/metrics");
    tokio::try_join!(
        axum::serve(api_listener, api),
        axum::serve(metrics_listener, scrape)
    )?;
    Ok(())
}
