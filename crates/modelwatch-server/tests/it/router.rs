//! Router tests through `app().oneshot(...)`: every endpoint and every row of the
//! bad-input table in docs/api.md.

use crate::support::{CUSTOMER, Options, TERMINAL, TestApp, model_request, transaction};
use axum::http::StatusCode;
use modelwatch_testkit::store::{customer_id, terminal_id};
use std::time::Duration;

#[tokio::test]
async fn predict_scores_and_counts_one_success() {
    let app = TestApp::new(Options::default()).await;
    let (status, body) = app
        .call("POST", "/v1/predict", transaction(CUSTOMER, TERMINAL, 42.0))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let score = body["score"].as_f64().expect("score");
    assert!((0.0..=1.0).contains(&score));
    let threshold = app.model().card.threshold().expect("a classifier");
    let expected = if score < threshold {
        "approved"
    } else {
        "declined"
    };
    assert_eq!(body["decision"], expected);
    assert_eq!(body["model"], app.model().card.name.as_str());
    assert_eq!(body["transaction_id"], "tx-1");
    assert!(
        body["prediction_id"]
            .as_str()
            .is_some_and(|id| id.len() > 10)
    );
    assert_eq!(app.requests("success", expected), 1.0);
    // Known entities and a full request: no feature is missing.
    let metrics = app.metrics();
    let missing = metrics.sum("model_feature_missing_total", &[]);
    assert_eq!(missing, 0.0, "no feature may be missing:\n{metrics:#?}");
    for stage in ["queue", "feature_fetch", "inference", "postprocess"] {
        assert_eq!(
            metrics.value("model_stage_duration_seconds_count", &[("stage", stage)]),
            Some(1.0),
            "stage {stage} not counted once"
        );
    }
}

#[tokio::test]
async fn unknown_entities_get_defaults_without_a_store_read() {
    let app = TestApp::new(Options::default()).await;
    let (status, _) = app
        .call(
            "POST",
            "/v1/predict",
            transaction(&customer_id(999_999), &terminal_id(99_999), 10.0),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call("POST", "/v1/predict", transaction(CUSTOMER, TERMINAL, 10.0))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call("POST", "/v1/predict", transaction(CUSTOMER, TERMINAL, 11.0))
        .await;
    assert_eq!(status, StatusCode::OK);
    let model = &app.model().card.name;
    // Two groups per request: the unknown ids are answered by the store's known-id
    // filter (2 hits, no store read), the known ones are 2 first-time misses, then 2
    // cache hits.
    assert_eq!(
        app.value(
            "model_feature_cache_operations_total",
            &[("model", model), ("operation", "miss")]
        ),
        2.0
    );
    assert_eq!(
        app.value(
            "model_feature_cache_operations_total",
            &[("model", model), ("operation", "hit")]
        ),
        4.0
    );
}

#[tokio::test]
async fn batch_returns_predictions_in_order() {
    let app = TestApp::new(Options::default()).await;
    let body = serde_json::json!({"transactions": [
        {"transaction_id": "a", "customer_id": CUSTOMER, "terminal_id": TERMINAL, "amount": 5.0},
        {"transaction_id": "b", "customer_id": CUSTOMER, "terminal_id": TERMINAL, "amount": 5000.0},
        {"transaction_id": "c", "customer_id": "C424242", "terminal_id": TERMINAL, "amount": 50.0},
    ]});
    let (status, out) = app
        .call("POST", "/v1/predict/batch", body.to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let ids: Vec<_> = out["predictions"]
        .as_array()
        .expect("array")
        .iter()
        .map(|p| p["transaction_id"].clone())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let total = app.requests("success", "approved") + app.requests("success", "declined");
    assert_eq!(total, 3.0);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::new(Options::default()).await;
    let (status, body) = app.call("GET", "/healthz", "").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = app.call("GET", "/readyz", "").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
    app.state
        .accepting
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let (status, _) = app.call("GET", "/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn metrics_endpoint_negotiates_the_format() {
    let app = TestApp::new(Options::default()).await;
    // Without an Accept header: the classic text format, which promtool and curl read.
    let (status, body) = app.admin("GET", "/metrics", "").await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().expect("text body");
    assert!(text.contains("# TYPE model_requests_total counter"));
    assert!(text.contains("model_info{") && !text.contains("# EOF"));
    // Prometheus asks for OpenMetrics and gets it, `# EOF` and all.
    let request = axum::http::Request::builder()
        .uri("/metrics")
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .body(axum::body::Body::empty())
        .expect("request");
    let response =
        tower::ServiceExt::oneshot(modelwatch_server::metrics_app(app.state.clone()), request)
            .await
            .expect("answer");
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    assert!(String::from_utf8_lossy(&bytes).ends_with("# EOF\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_page_judges_the_traffic_between_its_two_readings() {
    let app = std::sync::Arc::new(TestApp::new(Options::default()).await);
    let page = tokio::spawn({
        let app = app.clone();
        async move { app.admin("GET", "/", "").await }
    });
    // Traffic while the page waits between its two encodings of the registry; bounded
    // by a count, and stopped as soon as the page has answered.
    let mut sent = 0;
    while !page.is_finished() && sent < 2_000 {
        let (status, body) = app
            .call("POST", "/v1/predict", transaction(CUSTOMER, TERMINAL, 42.0))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = page.await.expect("page task");
    assert_eq!(status, StatusCode::OK);
    let html = body.as_str().expect("an HTML page");
    assert!(html.contains(r#"id="verdict""#), "{html}");
    assert!(html.contains(r#"id="without-prometheus""#), "{html}");
    // The requests sent between the two readings are seen: without them the
    // verdict's reasons would say "no traffic".
    assert!(sent > 1, "no prediction went in while the page read");
    assert!(!html.contains("<li>no traffic</li>"), "{html}");
    let tile = &html[html.find(">Requests per second<").expect("the RPS tile")..];
    let value = &tile[tile.find(r#"class="value""#).expect("its value")..];
    assert!(
        !value.starts_with(r#"class="value" data-color="red">0 "#),
        "{value:.80}"
    );
}

/// One row of the bad-input table: what is sent, the status and error type expected.
struct BadInput {
    name: &'static str,
    path: &'static str,
    body: String,
    status: StatusCode,
    error_type: &'static str,
}

fn bad_inputs() -> Vec<BadInput> {
    let row = |name, path, body: String, status, error_type| BadInput {
        name,
        path,
        body,
        status,
        error_type,
    };
    let tx = |v: serde_json::Value| v.to_string();
    vec![
        row(
            "malformed JSON",
            "/v1/predict",
            "{\"customer_id\": ".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        row(
            "not an object",
            "/v1/predict",
            "[1, 2]".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        row(
            "wrong type",
            "/v1/predict",
            tx(serde_json::json!({"customer_id": "C1", "terminal_id": "T1", "amount": "12"})),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        row(
            "missing field",
            "/v1/predict",
            tx(serde_json::json!({"terminal_id": "T1", "amount": 12.0})),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        row(
            "non-finite amount",
            "/v1/predict",
            "{\"customer_id\":\"C1\",\"terminal_id\":\"T1\",\"amount\":1e999}".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        row(
            "NaN amount",
            "/v1/predict",
            "{\"customer_id\":\"C1\",\"terminal_id\":\"T1\",\"amount\":NaN}".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        row(
            "negative amount",
            "/v1/predict",
            transaction("C1", "T1", -3.0),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        row(
            "amount too large",
            "/v1/predict",
            transaction("C1", "T1", 2e9),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        row(
            "empty id",
            "/v1/predict",
            transaction("", "T1", 3.0),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        row(
            "oversized id",
            "/v1/predict",
            transaction(&"C".repeat(65), "T1", 3.0),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        row(
            "bad timestamp",
            "/v1/predict",
            tx(
                serde_json::json!({"customer_id": "C1", "terminal_id": "T1", "amount": 1.0, "timestamp": "24/11/2026"}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        row(
            "oversized body",
            "/v1/predict",
            format!("{{\"customer_id\":\"{}\"}}", "x".repeat(20 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        row(
            "oversized batch",
            "/v1/predict/batch",
            tx(
                serde_json::json!({"transactions": vec![serde_json::json!({"customer_id": "C1", "terminal_id": "T1", "amount": 1.0}); 9]}),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
        ),
        row(
            "empty batch",
            "/v1/predict/batch",
            "{\"transactions\": []}".into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        row(
            "unknown model",
            "/v1/models/nope/predict",
            model_request("C1", "T1", 1.0).to_string(),
            StatusCode::NOT_FOUND,
            "unknown_model",
        ),
        row(
            "unknown model (batch)",
            "/v1/models/nope/predict/batch",
            tx(serde_json::json!({"rows": [model_request("C1", "T1", 1.0)]})),
            StatusCode::NOT_FOUND,
            "unknown_model",
        ),
        row(
            "missing feature that is not nullable",
            "/v1/models/fraud/predict",
            tx(
                serde_json::json!({"features": {"timestamp": "2026-11-24T10:00:00Z"}, "entities": {"customer_id": "C1", "terminal_id": "T1"}}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        row(
            "missing entity key",
            "/v1/models/fraud/predict",
            tx(
                serde_json::json!({"features": {"amount": 1.0, "timestamp": "2026-11-24T10:00:00Z"}, "entities": {"customer_id": "C1"}}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        row(
            "feature of the wrong JSON type",
            "/v1/models/fraud/predict",
            tx(
                serde_json::json!({"features": {"amount": [1.0], "timestamp": "2026-11-24T10:00:00Z"}, "entities": {"customer_id": "C1", "terminal_id": "T1"}}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        row(
            "text where the card reads a number",
            "/v1/models/fraud/predict",
            tx(
                serde_json::json!({"features": {"amount": "12", "timestamp": "2026-11-24T10:00:00Z"}, "entities": {"customer_id": "C1", "terminal_id": "T1"}}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        row(
            "time that is not RFC 3339",
            "/v1/models/fraud/predict",
            tx(
                serde_json::json!({"features": {"amount": 1.0, "timestamp": "noon"}, "entities": {"customer_id": "C1", "terminal_id": "T1"}}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        row(
            "entity id of the wrong JSON type",
            "/v1/models/fraud/predict",
            tx(
                serde_json::json!({"features": {"amount": 1.0, "timestamp": "2026-11-24T10:00:00Z"}, "entities": {"customer_id": {"id": 1}, "terminal_id": "T1"}}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        row(
            "unknown key in the body",
            "/v1/models/fraud/predict",
            tx(serde_json::json!({"inputs": {}})),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        row(
            "empty model batch",
            "/v1/models/fraud/predict/batch",
            "{\"rows\": []}".into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        row(
            "oversized model batch",
            "/v1/models/fraud/predict/batch",
            tx(serde_json::json!({"rows": vec![model_request("C1", "T1", 1.0); 9]})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
        ),
        row(
            "invalid row in a model batch",
            "/v1/models/fraud/predict/batch",
            tx(serde_json::json!({"rows": [model_request("C1", "T1", 1.0), {"features": {}}]})),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        row(
            "invalid row in batch",
            "/v1/predict/batch",
            tx(
                serde_json::json!({"transactions": [{"customer_id": "C1", "terminal_id": "T1", "amount": 1.0}, {"customer_id": "C1", "terminal_id": "T1", "amount": -1.0}]}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
    ]
}

#[tokio::test]
async fn every_bad_input_gets_a_4xx_json_error_and_is_counted_as_rejected() {
    let app = TestApp::new(Options::default()).await;
    let table = bad_inputs();
    let mut counted = 0;
    for case in &table {
        let (status, body) = app.call("POST", case.path, case.body.clone()).await;
        // A request for a model this server does not serve is no model's request:
        // refused, and counted under no `model` label.
        counted += usize::from(case.error_type != "unknown_model");
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert_eq!(
            body["error"]["type"], case.error_type,
            "{}: {body}",
            case.name
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            case.name
        );
        assert_eq!(
            app.requests("rejected", "none"),
            counted as f64,
            "{} not counted as it should be",
            case.name
        );
    }
    // The server keeps serving.
    let (status, _) = app
        .call("POST", "/v1/predict", transaction(CUSTOMER, TERMINAL, 3.0))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(app.metrics().family("model_requests_total").is_some());
}

#[tokio::test]
async fn the_model_endpoint_scores_like_v1_predict() {
    let app = TestApp::new(Options::default()).await;
    let (status, v1) = app
        .call(
            "POST",
            "/v1/predict",
            transaction(CUSTOMER, TERMINAL, 420.0),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v1}");
    let (status, generic) = app
        .call(
            "POST",
            "/v1/models/fraud/predict",
            model_request(CUSTOMER, TERMINAL, 420.0).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{generic}");
    assert_eq!(generic["score"], v1["score"]);
    assert_eq!(generic["decision"], v1["decision"]);
    assert_eq!(generic["id"], "row-1");
    assert_eq!(generic["model"], "fraud");
    assert!(generic.get("transaction_id").is_none() && generic.get("value").is_none());
    assert_ne!(generic["prediction_id"], v1["prediction_id"]);
    let decision = v1["decision"].as_str().expect("decision");
    assert_eq!(app.requests("success", decision), 2.0);

    let body = serde_json::json!({"rows": [
        model_request(CUSTOMER, TERMINAL, 420.0),
        model_request(CUSTOMER, TERMINAL, 1.0),
    ]});
    let (status, batch) = app
        .call("POST", "/v1/models/fraud/predict/batch", body.to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    assert_eq!(batch["predictions"][0]["score"], v1["score"]);
    assert_eq!(batch["predictions"].as_array().map(Vec::len), Some(2));
    // Times as Unix seconds read the same as RFC 3339.
    let mut unix = model_request(CUSTOMER, TERMINAL, 420.0);
    unix["features"]["timestamp"] = 1_795_514_400.into();
    let (_, same) = app
        .call("POST", "/v1/models/fraud/predict", unix.to_string())
        .await;
    assert_eq!(same["score"], v1["score"]);
}

/// The entry point for protocol modules: rows of fields score like `/v1/predict`,
/// each counted as one request.
#[tokio::test]
async fn predict_fields_scores_rows_like_the_json_api() {
    use modelwatch_server::features::{FieldValue, RequestFields};
    let app = TestApp::new(Options::default()).await;
    let (_, v1) = app
        .call(
            "POST",
            "/v1/predict",
            transaction(CUSTOMER, TERMINAL, 420.0),
        )
        .await;
    let mut row = RequestFields::default();
    row.features
        .insert("amount".into(), FieldValue::Number(420.0));
    row.features.insert(
        "timestamp".into(),
        FieldValue::Text("2026-11-24T10:00:00Z".into()),
    );
    row.entities.insert("customer_id".into(), CUSTOMER.into());
    row.entities.insert("terminal_id".into(), TERMINAL.into());
    let rows = vec![row.clone(), row.clone()];
    let predictions =
        modelwatch_server::predict_fields(app.state.clone(), app.model(), &rows, "inputs")
            .await
            .expect("scored");
    assert_eq!(predictions.len(), 2);
    assert_eq!(predictions[1].score, v1["score"].as_f64());
    let decision = v1["decision"].as_str().expect("decision");
    assert_eq!(app.requests("success", decision), 3.0);
    row.features.remove("amount");
    let err = modelwatch_server::predict_fields(
        app.state.clone(),
        app.model(),
        &[rows[0].clone(), row],
        "inputs",
    )
    .await
    .expect_err("a missing feature");
    assert_eq!(
        err.to_string(),
        "inputs[1].features.amount: is missing; feature `amount` is not nullable"
    );
    assert_eq!(app.requests("rejected", "none"), 1.0);
    assert_eq!(app.requests("success", decision), 3.0);
}

#[tokio::test]
async fn unknown_model_is_404_listing_the_served_names() {
    let app = TestApp::new(Options::default()).await;
    let (status, body) = app
        .call(
            "POST",
            "/v1/models/churn/predict",
            model_request(CUSTOMER, TERMINAL, 1.0).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["error"]["message"],
        "no model named \"churn\"; this server serves: fraud"
    );
}

#[tokio::test]
async fn a_missing_feature_is_named_or_if_nullable_counted_as_missing() {
    let app = TestApp::new(Options::default()).await;
    let mut body = model_request(CUSTOMER, TERMINAL, 1.0);
    body["features"]["amount"] = serde_json::Value::Null;
    let (status, out) = app
        .call("POST", "/v1/models/fraud/predict", body.to_string())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        out["error"]["message"],
        "features.amount: is missing; feature `amount` is not nullable"
    );

    let app = TestApp::new(Options {
        nullable: &["amount"],
        ..Options::default()
    })
    .await;
    let (status, out) = app
        .call("POST", "/v1/models/fraud/predict", body.to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert!(
        out["score"]
            .as_f64()
            .is_some_and(|s| (0.0..=1.0).contains(&s))
    );
    assert_eq!(
        app.value("model_feature_missing_total", &[("feature", "amount")]),
        1.0
    );
    assert_eq!(
        app.value("model_feature_missing_total", &[("feature", "hour")]),
        0.0
    );
}

#[tokio::test]
async fn named_field_errors_say_where() {
    let app = TestApp::new(Options::default()).await;
    let body = serde_json::json!({"transactions": [
        {"customer_id": "C1", "terminal_id": "T1", "amount": 1.0},
        {"customer_id": "C1", "terminal_id": "T1", "amount": -1.0},
    ]});
    let (_, out) = app
        .call("POST", "/v1/predict/batch", body.to_string())
        .await;
    assert_eq!(
        out["error"]["message"],
        "transactions[1].amount: must not be negative"
    );
    let body = serde_json::json!({"rows": [
        model_request("C1", "T1", 1.0),
        {"features": {"amount": 1.0, "timestamp": 0}, "entities": {"customer_id": "C1"}},
    ]});
    let (_, out) = app
        .call("POST", "/v1/models/fraud/predict/batch", body.to_string())
        .await;
    assert_eq!(
        out["error"]["message"],
        "rows[1].entities.terminal_id: is missing; it keys feature group `terminal`"
    );
}

#[tokio::test]
async fn unknown_path_and_method_get_json_errors() {
    let app = TestApp::new(Options::default()).await;
    let (status, body) = app.call("POST", "/v2/predict", "{}").await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body) = app.call("GET", "/v1/predict", "").await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn a_request_past_its_deadline_is_answered_and_counted_as_timeout() {
    let app = TestApp::new(Options {
        request_timeout: Duration::from_millis(50),
        ..Options::default()
    })
    .await;
    let (status, _) = app
        .admin("POST", "/admin/faults", r#"{"store_delay_ms": 400}"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .call("POST", "/v1/predict", transaction(CUSTOMER, TERMINAL, 3.0))
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"]["type"], "timeout");
    assert_eq!(app.requests("timeout", "none"), 1.0);
}

#[tokio::test]
async fn a_full_queue_answers_429_and_counts_overloaded() {
    let app = TestApp::new(Options {
        max_batch: 1,
        queue_capacity: 1,
        model_delay: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let send = |amount: f64| {
        let state = app.state.clone();
        async move {
            let request = axum::http::Request::builder()
                .method("POST")
                .uri("/v1/predict")
                .body(axum::body::Body::from(transaction(
                    CUSTOMER, TERMINAL, amount,
                )))
                .expect("request");
            tower::ServiceExt::oneshot(modelwatch_server::app(state), request)
                .await
                .expect("answer")
                .status()
        }
    };
    // The first row occupies the model, the second fills the queue, the third is refused.
    let first = tokio::spawn(send(1.0));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = tokio::spawn(send(2.0));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let third = send(3.0).await;
    assert_eq!(third, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(first.await.expect("join"), StatusCode::OK);
    assert_eq!(second.await.expect("join"), StatusCode::OK);
    assert_eq!(app.requests("overloaded", "none"), 1.0);
}

#[tokio::test]
async fn fault_endpoint_exists_only_when_enabled_and_validates_names() {
    let app = TestApp::new(Options::default()).await;
    let (status, body) = app
        .admin(
            "POST",
            "/admin/faults",
            r#"{"paused_groups": ["merchant"]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .admin("POST", "/admin/faults", r#"{"missing_feature": "amount"}"#)
        .await;
    assert_eq!(
        (status, body["missing_feature"].as_str()),
        (StatusCode::OK, Some("amount"))
    );
    let (status, _) = app
        .call("POST", "/v1/predict", transaction(CUSTOMER, TERMINAL, 3.0))
        .await;
    assert_eq!(status, StatusCode::OK);
    let model = &app.model().card.name;
    assert_eq!(
        app.value(
            "model_feature_missing_total",
            &[("model", model), ("feature", "amount")]
        ),
        1.0
    );
    let (status, body) = app.admin("DELETE", "/admin/faults", "").await;
    assert_eq!(
        (status, body["missing_feature"].clone()),
        (StatusCode::OK, serde_json::Value::Null)
    );

    let off = TestApp::new(Options {
        fault_injection: false,
        ..Options::default()
    })
    .await;
    let (status, _) = off.admin("POST", "/admin/faults", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
