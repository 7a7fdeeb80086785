//! `POST /v1/feedback` under cancellation: a client that hangs up after sending a
//! label still has it stored and counted exactly once.

use crate::support::{CUSTOMER, Options, TERMINAL, TestApp, model_request};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use std::time::Duration;
use tower::ServiceExt as _;

#[tokio::test]
async fn a_label_whose_client_hangs_up_is_still_counted_once() {
    let app = TestApp::new(Options::default()).await;
    let (status, prediction) = app
        .call(
            "POST",
            "/v1/models/fraud/predict",
            model_request(CUSTOMER, TERMINAL, 20.0).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{prediction}");
    let id = prediction["prediction_id"]
        .as_str()
        .expect("an id")
        .to_string();
    let label = serde_json::json!({"prediction_id": id, "label": true}).to_string();
    let request = Request::builder()
        .method("POST")
        .uri("/v1/feedback")
        .header("content-type", "application/json")
        .body(Body::from(label))
        .expect("request");
    let answer = modelwatch_server::app(app.state.clone()).oneshot(request);
    // One poll: the label is handed to the log, then the client goes away before
    // it is durable (the future is dropped).
    tokio::select! {
        biased;
        _ = answer => panic!("answered within one poll: the label was not waited for"),
        () = std::future::ready(()) => {}
    }
    let counted = || {
        app.metrics()
            .sum("model_feedback_total", &[("model", "fraud")])
    };
    for _ in 0..500 {
        if counted() >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counted(), 1.0, "the stored label is counted once");
    // The client's resend is a duplicate: stored once, counted apart.
    let resend = serde_json::json!({"prediction_id": id, "label": true}).to_string();
    let (status, answer) = app.call("POST", "/v1/feedback", resend).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "duplicate", "{answer}");
    assert_eq!(counted(), 1.0);
    assert_eq!(
        app.metrics()
            .sum("model_feedback_duplicate_total", &[("model", "fraud")]),
        1.0
    );
}
