//! The collector: `POST /v1/models/{model}/observations` for a monitor-only card.
//! Every row of the bad-input table in docs/collector.md has a test here.

use crate::support::TestApp;
use axum::http::StatusCode;
use modelwatch_testkit::models::MONITORED_MODEL;
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const URI: &str = "/v1/models/fraud_watch/observations";
const NDJSON: Option<&str> = Some("application/x-ndjson");
const JSON: Option<&str> = Some("application/json");

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// A valid event of the fraud card: every feature, stage times, a score.
fn event(score: f64) -> serde_json::Value {
    json!({
        "prediction_id": "p-1",
        "score": score,
        "features": {
            "amount": 42.5, "hour": 10, "is_weekend": 0, "is_night": 0,
            "customer_nb_tx_1d": 2, "customer_avg_amount_1d": 40.0,
            "customer_nb_tx_7d": 9, "customer_avg_amount_7d": 45.0,
            "customer_nb_tx_30d": 31, "customer_avg_amount_30d": 44.0,
            "terminal_nb_tx_1d": 20, "terminal_risk_1d": 0.0,
            "terminal_nb_tx_7d": 130, "terminal_risk_7d": 0.0,
            "terminal_nb_tx_30d": 600, "terminal_risk_30d": 0.01,
        },
        "stages": {"feature_fetch": 0.002, "inference": 0.001, "postprocess": 0.0001},
    })
}

fn events(list: Vec<serde_json::Value>) -> String {
    json!({ "events": list }).to_string()
}

fn watched(app: &TestApp) -> &modelwatch_server::ServedModel {
    app.state
        .model(MONITORED_MODEL)
        .expect("the monitored model")
}

/// Waits (bounded) until the collector has recorded everything queued.
async fn recorded(app: &TestApp) {
    let collector = watched(app).collector().expect("monitor-only");
    for _ in 0..500 {
        if collector.queued() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the collector still holds {} events after 5 s",
        collector.queued()
    );
}

fn model_value(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut all = vec![("model", MONITORED_MODEL)];
    all.extend_from_slice(labels);
    app.value(name, &all)
}

fn outcome(app: &TestApp, outcome: &str) -> f64 {
    model_value(app, "model_observations_total", &[("outcome", outcome)])
}

fn requests(app: &TestApp, status: &str, decision: &str) -> f64 {
    model_value(
        app,
        "model_requests_total",
        &[
            ("version", "2.1.0"),
            ("status", status),
            ("decision", decision),
        ],
    )
}

#[tokio::test]
async fn events_are_recorded_as_served_predictions() {
    let app = TestApp::with_monitored(&[]).await;
    let mut missing = event(0.9);
    missing["features"]["amount"] = serde_json::Value::Null;
    missing["features"]
        .as_object_mut()
        .expect("features")
        .remove("hour");
    let body = events(vec![
        event(0.01),
        event(0.9),
        missing,
        json!({"status": "error"}),
    ]);
    let (status, answer) = app.call_as(URI, JSON, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["accepted"], 4, "{answer}");
    assert_eq!(answer["refused"], 0, "{answer}");
    recorded(&app).await;

    // Decisions from the card's threshold, names from the card.
    assert_eq!(requests(&app, "success", "approved"), 1.0);
    assert_eq!(requests(&app, "success", "declined"), 2.0);
    assert_eq!(requests(&app, "error", "none"), 1.0);
    let m = app.metrics();
    let histogram = |name: &str, labels: &[(&str, &str)]| {
        let mut all = vec![("model", MONITORED_MODEL)];
        all.extend_from_slice(labels);
        let found = m.histograms(name, &all).expect("a valid histogram");
        assert!(found.len() <= 1, "{name}: {found:?}");
        found.into_iter().next()
    };
    let score = histogram("model_prediction_score", &[]).expect("score histogram");
    assert_eq!(score.count, 3.0, "the failed event has no score");
    // Missing values: null and absent both count.
    let missing =
        |feature: &str| model_value(&app, "model_feature_missing_total", &[("feature", feature)]);
    assert_eq!(missing("amount"), 1.0);
    assert_eq!(missing("hour"), 1.0);
    assert_eq!(missing("customer_nb_tx_1d"), 0.0);
    // Stages and the end-to-end latency (the sum of the stages).
    let stage_count = |stage: &str| {
        histogram("model_stage_duration_seconds", &[("stage", stage)]).map_or(0.0, |h| h.count)
    };
    assert_eq!(stage_count("feature_fetch"), 3.0);
    assert_eq!(stage_count("queue"), 0.0);
    let latency = histogram("model_request_duration_seconds", &[]).expect("latency");
    assert_eq!(latency.count, 3.0);
    assert!((latency.sum - 3.0 * 0.0031).abs() < 1e-9, "{}", latency.sum);
    // Fleet drift inputs.
    let bins: f64 = m
        .select("model_score_bin_total", &[("model", MONITORED_MODEL)])
        .iter()
        .map(|s| s.value)
        .sum();
    assert_eq!(bins, 3.0);
    assert_eq!(outcome(&app, "accepted"), 4.0);
    assert_eq!(outcome(&app, "invalid"), 0.0);
    // The served model saw none of it.
    assert_eq!(
        app.requests("success", "approved") + app.requests("success", "declined"),
        0.0
    );
}

#[tokio::test]
async fn a_given_decision_wins_over_the_threshold() {
    let app = TestApp::with_monitored(&[]).await;
    let mut e = event(0.99);
    e["decision"] = "approved".into();
    let (status, answer) = app.call_as(URI, JSON, events(vec![e])).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    recorded(&app).await;
    assert_eq!(requests(&app, "success", "approved"), 1.0);
    assert_eq!(requests(&app, "success", "declined"), 0.0);
}

#[tokio::test]
async fn unknown_names_are_counted_never_labels() {
    let app = TestApp::with_monitored(&[]).await;
    let mut e = event(0.5);
    e["features"]["merchant_4711"] = 3.into();
    e["features"]["user_42"] = 1.into();
    e["feature_times"] = json!({"customer": now() - 10.0, "merchant": now()});
    e["stages"]["gpu_warmup"] = 0.5.into();
    let (status, answer) = app.call_as(URI, JSON, events(vec![e])).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    recorded(&app).await;
    let ignored =
        |field: &str| model_value(&app, "model_observation_ignored_total", &[("field", field)]);
    assert_eq!(ignored("feature"), 2.0);
    assert_eq!(ignored("feature_group"), 1.0);
    assert_eq!(ignored("stage"), 1.0);
    let text = app.scrape();
    for name in ["merchant_4711", "user_42", "merchant", "gpu_warmup"] {
        assert!(!text.contains(name), "{name} became a label value");
    }
}

#[tokio::test]
async fn feature_age_is_the_age_at_prediction_time() {
    let app = TestApp::with_monitored(&[]).await;
    let t = now();
    let mut e = event(0.5);
    // Predicted 30 s ago with customer features 120 s older than the prediction.
    e["time"] = (t - 30.0).into();
    e["feature_times"] = json!({"customer": t - 150.0});
    let (status, answer) = app.call_as(URI, JSON, events(vec![e])).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    recorded(&app).await;
    let age = model_value(
        &app,
        "model_feature_age_seconds",
        &[("feature_group", "customer")],
    );
    assert!((119.0..=122.0).contains(&age), "customer age {age}");
}

#[tokio::test]
async fn late_events_count_in_counters_not_in_window_gauges() {
    let app = TestApp::with_monitored(&["--drift-window", "1h"]).await;
    let approval = |app: &TestApp| {
        app.metrics()
            .value("model_approval_ratio", &[("model", MONITORED_MODEL)])
    };
    let mut late = event(0.01);
    late["time"] = (now() - 7200.0).into();
    let (status, answer) = app.call_as(URI, JSON, events(vec![late])).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    recorded(&app).await;
    let bins = |app: &TestApp| -> f64 {
        app.metrics()
            .select("model_score_bin_total", &[("model", MONITORED_MODEL)])
            .iter()
            .map(|s| s.value)
            .sum()
    };
    assert_eq!(bins(&app), 1.0, "a late event counts in the bins");
    assert_eq!(requests(&app, "success", "approved"), 1.0);
    assert_eq!(approval(&app), None, "and stays out of the window");
    // A current, declined event: the window holds it alone.
    let (status, _) = app.call_as(URI, JSON, events(vec![event(0.9)])).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    recorded(&app).await;
    assert_eq!(bins(&app), 2.0);
    assert_eq!(approval(&app), Some(0.0));
}

#[tokio::test]
async fn ndjson_refuses_a_bad_line_by_index_and_keeps_the_rest() {
    let app = TestApp::with_monitored(&[]).await;
    let body = format!("{}\n\n{{\"score\": 0.1,,}}\n{}\n", event(0.1), event(0.8));
    let (status, answer) = app.call_as(URI, NDJSON, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["rejected"][0]["index"], 1, "{answer}");
    assert_eq!(
        answer["rejected"][0]["error"]["type"], "invalid_json",
        "{answer}"
    );
    recorded(&app).await;
    assert_eq!(outcome(&app, "accepted"), 2.0);
    assert_eq!(outcome(&app, "invalid"), 1.0);
}

/// One refused event among valid ones: its index and a message naming the field.
async fn refused_among_valid(bad: serde_json::Value, message: &str) {
    let app = TestApp::with_monitored(&[]).await;
    let body = events(vec![event(0.1), bad, event(0.2)]);
    let (status, answer) = app.call_as(URI, JSON, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["refused"], 1, "{answer}");
    let refusal = &answer["rejected"][0];
    assert_eq!(refusal["index"], 1, "{answer}");
    assert_eq!(refusal["error"]["type"], "invalid_field", "{answer}");
    let text = refusal["error"]["message"].as_str().expect("a message");
    assert!(text.contains(message), "{text:?} does not say {message:?}");
    recorded(&app).await;
    assert_eq!(outcome(&app, "accepted"), 2.0);
    assert_eq!(outcome(&app, "invalid"), 1.0);
}

#[tokio::test]
async fn refused_an_event_that_is_not_an_object() {
    refused_among_valid(json!([1, 2]), "events[1]: must be an object").await;
}

#[tokio::test]
async fn refused_a_score_that_is_not_a_number() {
    refused_among_valid(
        json!({"score": "high"}),
        "events[1].score: must be a finite number",
    )
    .await;
}

#[tokio::test]
async fn refused_a_success_without_a_score() {
    refused_among_valid(json!({"features": {}}), "events[1].score: required").await;
}

#[tokio::test]
async fn refused_a_value_for_a_classifier() {
    refused_among_valid(json!({"value": 3.0}), "this model is a classifier").await;
}

#[tokio::test]
async fn refused_a_decision_the_card_does_not_name() {
    refused_among_valid(
        json!({"score": 0.3, "decision": "maybe"}),
        "is not one of this model's decisions",
    )
    .await;
}

#[tokio::test]
async fn refused_an_unknown_status() {
    refused_among_valid(
        json!({"score": 0.3, "status": "crashed"}),
        "events[1].status",
    )
    .await;
}

#[tokio::test]
async fn refused_a_negative_stage_time() {
    refused_among_valid(
        json!({"score": 0.3, "stages": {"inference": -1}}),
        "events[1].stages.inference",
    )
    .await;
}

#[tokio::test]
async fn refused_a_feature_that_is_not_a_number() {
    refused_among_valid(
        json!({"score": 0.3, "features": {"amount": "12"}}),
        "events[1].features.amount",
    )
    .await;
}

#[tokio::test]
async fn refused_a_time_in_the_future() {
    refused_among_valid(
        json!({"score": 0.3, "time": now() + 3600.0}),
        "events[1].time",
    )
    .await;
}

#[tokio::test]
async fn refused_a_key_that_is_not_a_field() {
    refused_among_valid(
        json!({"score": 0.3, "feautres": {}}),
        "events[1].feautres: not a field",
    )
    .await;
}

#[tokio::test]
async fn refused_a_prediction_id_too_long() {
    refused_among_valid(
        json!({"score": 0.3, "prediction_id": "x".repeat(129)}),
        "events[1].prediction_id",
    )
    .await;
}

/// A refused request: its status, error type and a phrase of its message; nothing is
/// counted as accepted.
async fn refused_request(
    uri: &str,
    content_type: Option<&str>,
    body: String,
    code: StatusCode,
    kind: &str,
    message: &str,
) {
    let app = TestApp::with_monitored(&[
        "--max-observation-batch",
        "5",
        "--observation-queue",
        "5",
        "--max-body-bytes",
        "4096",
    ])
    .await;
    let (status, answer) = app.call_as(uri, content_type, body).await;
    assert_eq!(status, code, "{answer}");
    assert_eq!(answer["error"]["type"], kind, "{answer}");
    let text = answer["error"]["message"].as_str().expect("a message");
    assert!(text.contains(message), "{text:?} does not say {message:?}");
    recorded(&app).await;
    assert_eq!(outcome(&app, "accepted"), 0.0);
}

#[tokio::test]
async fn refuses_a_body_that_is_not_json() {
    refused_request(
        URI,
        JSON,
        "{\"events\": [".into(),
        StatusCode::BAD_REQUEST,
        "invalid_json",
        "the body is not",
    )
    .await;
}

#[tokio::test]
async fn refuses_a_body_without_events() {
    refused_request(
        URI,
        JSON,
        json!({"event": []}).to_string(),
        StatusCode::BAD_REQUEST,
        "invalid_json",
        "unknown key",
    )
    .await;
}

#[tokio::test]
async fn refuses_a_batch_whose_every_event_is_invalid() {
    let app = TestApp::with_monitored(&[]).await;
    let (status, answer) = app
        .call_as(URI, JSON, events(vec![json!({"score": "a"}), json!(7)]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["type"], "invalid_field", "{answer}");
    assert_eq!(answer["accepted"], 0, "{answer}");
    assert_eq!(
        answer["rejected"].as_array().map(Vec::len),
        Some(2),
        "{answer}"
    );
    assert_eq!(outcome(&app, "invalid"), 2.0);
}

#[tokio::test]
async fn refuses_too_many_events() {
    let body = events((0..6).map(|_| event(0.1)).collect());
    refused_request(
        URI,
        JSON,
        body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "batch_too_large",
        "holds 6 events; at most 5",
    )
    .await;
    let body: String = (0..6)
        .map(|_| format!("{}\n", json!({"score": 0.1})))
        .collect();
    refused_request(
        URI,
        NDJSON,
        body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "batch_too_large",
        "holds 6 events",
    )
    .await;
}

#[tokio::test]
async fn refuses_a_body_over_the_limit() {
    let body = events(vec![
        json!({"score": 0.1, "prediction_id": "p".repeat(5000)}),
    ]);
    refused_request(
        URI,
        JSON,
        body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "larger than 4096",
    )
    .await;
}

#[tokio::test]
async fn refuses_another_media_type() {
    refused_request(
        URI,
        Some("text/csv"),
        "score\n0.1\n".into(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "text/csv",
    )
    .await;
}

#[tokio::test]
async fn refuses_an_unknown_model() {
    refused_request(
        "/v1/models/nope/observations",
        JSON,
        events(vec![event(0.1)]),
        StatusCode::NOT_FOUND,
        "unknown_model",
        "fraud_watch",
    )
    .await;
}

#[tokio::test]
async fn refuses_observations_for_a_served_model() {
    refused_request(
        "/v1/models/fraud/observations",
        JSON,
        events(vec![event(0.1)]),
        StatusCode::CONFLICT,
        "not_monitor_only",
        "served here",
    )
    .await;
}

#[tokio::test]
async fn a_monitor_only_model_serves_no_prediction() {
    let app = TestApp::with_monitored(&[]).await;
    let body = json!({"features": {"amount": 1.0, "timestamp": "2026-11-24T10:00:00Z"}});
    let (status, answer) = app
        .call("POST", "/v1/models/fraud_watch/predict", body.to_string())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["type"], "monitor_only", "{answer}");
    assert_eq!(requests(&app, "rejected", "none"), 0.0, "refused uncounted");
    // `/v1/predict` answers for the served model, the default.
    assert_eq!(app.model().card.name, "fraud");
    let (status, ready) = app.call("GET", "/readyz", "").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let monitored = ready["models"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == MONITORED_MODEL))
        .cloned()
        .expect("the monitored model is listed");
    assert_eq!(monitored["monitor_only"], true);
}

// Holding the recorder across the requests is the point: the queue fills behind it.
#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn a_full_queue_answers_429_and_counts_the_drop() {
    let app =
        TestApp::with_monitored(&["--max-observation-batch", "3", "--observation-queue", "4"])
            .await;
    let collector = watched(&app).collector().expect("monitor-only");
    let hold = collector.hold_recording();
    let three = || events(vec![event(0.1), event(0.2), event(0.3)]);
    let (status, answer) = app.call_as(URI, JSON, three()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    // The recorder is held: 3 of 4 places are taken, and 3 more do not fit.
    let (status, answer) = app.call_as(URI, JSON, three()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["error"]["type"], "overloaded", "{answer}");
    assert_eq!(outcome(&app, "dropped"), 3.0);
    // One still fits: the queue is all or nothing per request, not closed.
    let (status, _) = app.call_as(URI, JSON, events(vec![event(0.4)])).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    drop(hold);
    recorded(&app).await;
    assert_eq!(outcome(&app, "accepted"), 4.0);
    assert_eq!(
        requests(&app, "success", "approved") + requests(&app, "success", "declined"),
        4.0,
        "every accepted event is recorded, none of the dropped"
    );
}

#[tokio::test]
async fn a_stopped_collector_answers_503_and_keeps_nothing() {
    let app = TestApp::with_monitored(&[]).await;
    let collector = watched(&app).collector().expect("monitor-only");
    let (status, _) = app.call_as(URI, JSON, events(vec![event(0.1)])).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    recorded(&app).await;
    collector.stop();
    let (status, answer) = app.call_as(URI, JSON, events(vec![event(0.2)])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"]["type"], "unavailable", "{answer}");
    assert_eq!(
        outcome(&app, "accepted"),
        1.0,
        "the refused event is not counted"
    );
    assert_eq!(
        collector.queued(),
        0,
        "its places in the queue are given back"
    );
    assert_eq!(requests(&app, "success", "approved"), 1.0);
}

/// Three collectors behind one Service, each sent a third of the events, export
/// counters and histograms whose sums over the replicas equal one collector's that
/// was sent them all: the fleet aggregates exactly as served replicas do.
#[tokio::test]
async fn collectors_add_up_across_replicas() {
    let all = TestApp::with_monitored(&[]).await;
    let replicas = [
        TestApp::with_monitored(&[]).await,
        TestApp::with_monitored(&[]).await,
        TestApp::with_monitored(&[]).await,
    ];
    let mut batches: [Vec<serde_json::Value>; 3] = Default::default();
    let mut every = Vec::new();
    for i in 0..300u32 {
        let mut e = event(f64::from(i % 100) / 100.0);
        e["prediction_id"] = json!(format!("p-{i}"));
        e["features"]["amount"] = json!(5.0 + f64::from(i * 37 % 500));
        e["features"]["terminal_risk_1d"] = json!(f64::from(i % 7) / 10.0);
        if i % 11 == 0 {
            e["features"]["customer_avg_amount_7d"] = serde_json::Value::Null;
        }
        if i % 13 == 0 {
            e = json!({"status": if i % 2 == 0 { "error" } else { "timeout" }});
        }
        e["stages"] = json!({"inference": 1e-4 * f64::from(1 + i % 9)});
        every.push(e.clone());
        batches[i as usize % 3].push(e);
    }
    let (status, answer) = all.call_as(URI, JSON, events(every)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    for (app, batch) in replicas.iter().zip(batches) {
        let (status, answer) = app.call_as(URI, JSON, events(batch)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }
    recorded(&all).await;
    for app in &replicas {
        recorded(app).await;
    }

    // Every counter and histogram sample of the watched model, by name and labels.
    type Key = (String, Vec<(String, String)>);
    let additive = |app: &TestApp| -> std::collections::BTreeMap<Key, f64> {
        let m = app.metrics();
        m.families
            .iter()
            .filter(|f| {
                matches!(
                    f.kind,
                    modelwatch_testkit::exposition::MetricType::Counter
                        | modelwatch_testkit::exposition::MetricType::Histogram
                )
            })
            .flat_map(|f| f.samples.iter())
            .filter(|s| s.label("model") == MONITORED_MODEL && !s.name.ends_with("_created"))
            .map(|s| {
                let labels = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                ((s.name.clone(), labels), s.value)
            })
            .collect()
    };
    let whole = additive(&all);
    let mut summed = std::collections::BTreeMap::<Key, f64>::new();
    for app in &replicas {
        for (key, value) in additive(app) {
            *summed.entry(key).or_default() += value;
        }
    }
    for name in [
        "model_score_bin_total",
        "model_feature_bin_total",
        "model_feature_missing_total",
        "model_requests_total",
        "model_stage_duration_seconds_count",
    ] {
        assert!(
            whole.keys().any(|(n, _)| n == name),
            "the single collector exports no {name}"
        );
    }
    let keys: std::collections::BTreeSet<&Key> = whole.keys().chain(summed.keys()).collect();
    let mut differ = Vec::new();
    for key in keys {
        let (a, b) = (
            whole.get(key).copied().unwrap_or(0.0),
            summed.get(key).copied().unwrap_or(0.0),
        );
        if (a - b).abs() > 1e-9 * a.abs().max(1.0) {
            differ.push(format!("{key:?}: one collector {a}, three summed {b}"));
        }
    }
    assert!(
        differ.is_empty(),
        "{} series differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}
