//! The Open Inference Protocol's endpoints through `app().oneshot(...)`: metadata,
//! readiness, infer in JSON and binary (scores equal to `/v1/predict/batch`'s, each
//! row recorded like a `/v1` prediction), and every v2 row of the bad-input table in
//! docs/api.md.

use crate::support::{CUSTOMER, Options, TERMINAL, TestApp};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};

/// `(customer, terminal, amount, timestamp)`.
type Row = (String, String, f64, String);

/// Known and unknown entities, night and day, weekday and weekend.
fn rows() -> Vec<Row> {
    let known = (CUSTOMER.to_string(), TERMINAL.to_string());
    let unknown = ("C424242".to_string(), "T42424".to_string());
    [
        (&known, 12.5, "2026-11-24T10:00:00Z"),
        (&known, 4_999.0, "2026-11-28T02:30:00Z"),
        (&unknown, 57.3, "2026-11-25T23:59:59+01:00"),
        (&unknown, 0.0, "2026-11-29T12:00:00Z"),
        (&known, 250.75, "2026-11-26T06:15:00Z"),
    ]
    .into_iter()
    .map(|((c, t), a, ts)| (c.clone(), t.clone(), a, ts.to_string()))
    .collect()
}

fn v1_batch(rows: &[Row]) -> String {
    let transactions: Vec<Value> = rows
        .iter()
        .map(|(c, t, a, ts)| {
            json!({"customer_id": c, "terminal_id": t, "amount": a, "timestamp": ts})
        })
        .collect();
    json!({ "transactions": transactions }).to_string()
}

fn v2_json(rows: &[Row]) -> Value {
    let n = rows.len();
    let column = |f: &dyn Fn(&Row) -> Value| -> Vec<Value> { rows.iter().map(f).collect() };
    json!({"id": "req-7", "inputs": [
        {"name": "amount", "datatype": "FP64", "shape": [n, 1], "data": column(&|r| json!([r.2]))},
        {"name": "customer_id", "datatype": "BYTES", "shape": [n], "data": column(&|r| json!(r.0))},
        {"name": "terminal_id", "datatype": "BYTES", "shape": [n], "data": column(&|r| json!(r.1))},
        {"name": "timestamp", "datatype": "BYTES", "shape": [n], "data": column(&|r| json!(r.3))},
    ]})
}

fn length_prefixed<'a>(items: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for s in items {
        out.extend_from_slice(&u32::try_from(s.len()).expect("short").to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out
}

/// The same rows with every input as binary data (amount FP32), asking for every
/// output as binary data.
fn v2_binary(rows: &[Row]) -> (usize, Vec<u8>) {
    let n = rows.len();
    let amounts: Vec<u8> = rows
        .iter()
        .flat_map(|r| (r.2 as f32).to_le_bytes())
        .collect();
    let customers = length_prefixed(rows.iter().map(|r| r.0.as_str()));
    let terminals = length_prefixed(rows.iter().map(|r| r.1.as_str()));
    let timestamps = length_prefixed(rows.iter().map(|r| r.3.as_str()));
    let header = json!({"inputs": [
        {"name": "amount", "datatype": "FP32", "shape": [n], "parameters": {"binary_data_size": amounts.len()}},
        {"name": "customer_id", "datatype": "BYTES", "shape": [n], "parameters": {"binary_data_size": customers.len()}},
        {"name": "terminal_id", "datatype": "BYTES", "shape": [n], "parameters": {"binary_data_size": terminals.len()}},
        {"name": "timestamp", "datatype": "BYTES", "shape": [n], "parameters": {"binary_data_size": timestamps.len()}},
    ], "parameters": {"binary_data_output": true}})
    .to_string();
    let mut body = header.clone().into_bytes();
    for part in [amounts, customers, terminals, timestamps] {
        body.extend_from_slice(&part);
    }
    (header.len(), body)
}

/// Sends a raw request and returns the status, the headers and the body bytes.
async fn send(
    app: &TestApp,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = tower::ServiceExt::oneshot(modelwatch_server::app(app.state.clone()), request)
        .await
        .expect("router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn scores_of(v1: &Value) -> Vec<f32> {
    v1["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| p["score"].as_f64().expect("score") as f32)
        .collect()
}

#[tokio::test]
async fn health_metadata_and_readiness() {
    let app = TestApp::new(Options::default()).await;
    let card = &app.model().card;
    let (status, body) = app.call("GET", "/v2/health/live", "").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"live": true})));
    let (status, body) = app.call("GET", "/v2/health/ready", "").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ready": true})));
    let (status, body) = app.call("GET", "/v2", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "modelwatch");
    assert_eq!(body["extensions"], json!(["binary_tensor_data"]));

    for path in [
        format!("/v2/models/{}", card.name),
        format!("/v2/models/{}/versions/{}", card.name, card.version),
    ] {
        let (status, body) = app.call("GET", &path, "").await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["name"], card.name.as_str());
        assert_eq!(body["versions"], json!([card.version]));
        let inputs: Vec<_> = body["inputs"]
            .as_array()
            .expect("inputs")
            .iter()
            .map(|i| (i["name"].clone(), i["datatype"].clone(), i["shape"].clone()))
            .collect();
        // The card's request fields, in its order.
        assert_eq!(
            inputs,
            [
                (json!("amount"), json!("FP32"), json!([-1])),
                (json!("timestamp"), json!("BYTES"), json!([-1])),
                (json!("customer_id"), json!("BYTES"), json!([-1])),
                (json!("terminal_id"), json!("BYTES"), json!([-1])),
            ]
        );
        let outputs: Vec<_> = body["outputs"]
            .as_array()
            .expect("outputs")
            .iter()
            .map(|o| o["name"].as_str().expect("name").to_string())
            .collect();
        assert_eq!(outputs, ["score", "decision", "prediction_id"]);
    }
    let (status, body) = app
        .call("GET", &format!("/v2/models/{}/ready", card.name), "")
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"name": card.name, "ready": true}))
    );

    // Shutting down: not ready on both protocols.
    app.state
        .accepting
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let (status, body) = app.call("GET", "/v2/health/ready", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["ready"], false);
    let (status, body) = app
        .call(
            "GET",
            &format!("/v2/models/{}/versions/{}/ready", card.name, card.version),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["reason"], "shutting down");
    let (status, _) = app.call("GET", "/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Liveness does not change.
    let (status, _) = app.call("GET", "/v2/health/live", "").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_model_or_version_is_404_naming_what_exists() {
    let app = TestApp::new(Options::default()).await;
    for (method, path) in [
        ("GET", "/v2/models/churn"),
        ("GET", "/v2/models/churn/ready"),
        ("POST", "/v2/models/churn/infer"),
        ("POST", "/v2/models/churn/versions/1.0.0/infer"),
    ] {
        let (status, body) = app.call(method, path, "{}").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            body["error"], "unknown model \"churn\"; this server serves fraud",
            "{path}"
        );
    }
    let (status, body) = app
        .call("POST", "/v2/models/fraud/versions/9.9.9/infer", "{}")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["error"],
        "model \"fraud\" has no version \"9.9.9\"; its versions: 1.0.0"
    );
    // Not counted: no model served here was asked.
    assert_eq!(
        app.metrics().sum("model_requests_total", &[]),
        0.0,
        "a 404 is not a request of the model"
    );
}

#[tokio::test]
async fn json_infer_scores_like_v1_and_records_each_row_like_v1() {
    let app = TestApp::new(Options::default()).await;
    let rows = rows();
    let n = rows.len();
    let (status, v1) = app.call("POST", "/v1/predict/batch", v1_batch(&rows)).await;
    assert_eq!(status, StatusCode::OK, "{v1}");
    let before = app.metrics();

    let (status, v2) = app
        .call("POST", "/v2/models/fraud/infer", v2_json(&rows).to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{v2}");
    assert_eq!(v2["model_name"], "fraud");
    assert_eq!(v2["model_version"], "1.0.0");
    assert_eq!(v2["id"], "req-7");
    let outputs = v2["outputs"].as_array().expect("outputs");
    assert_eq!(outputs[0]["name"], "score");
    assert_eq!(outputs[0]["datatype"], "FP32");
    assert_eq!(outputs[0]["shape"], json!([n]));
    let scores: Vec<f32> = outputs[0]["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|s| s.as_f64().expect("number") as f32)
        .collect();
    assert_eq!(scores, scores_of(&v1), "v2 scores differ from v1's");
    let decisions: Vec<_> = v1["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| p["decision"].clone())
        .collect();
    assert_eq!(outputs[1]["data"], Value::Array(decisions));
    assert_eq!(outputs[2]["name"], "prediction_id");
    assert_eq!(outputs[2]["data"].as_array().map(Vec::len), Some(n));

    // Each row is one prediction, recorded exactly like the v1 batch's rows.
    let after = app.metrics();
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    for (name, labels) in [
        ("model_requests_total", &[("status", "success")][..]),
        ("model_requests_total", &[("decision", "approved")][..]),
        ("model_requests_total", &[("decision", "declined")][..]),
        ("model_request_duration_seconds_count", &[][..]),
        ("model_prediction_score_count", &[][..]),
        ("model_prediction_score_sum", &[][..]),
        ("model_score_bin_total", &[][..]),
        ("model_feature_bin_total", &[][..]),
        ("model_feature_missing_total", &[][..]),
        (
            "model_stage_duration_seconds_count",
            &[("stage", "queue")][..],
        ),
        (
            "model_stage_duration_seconds_count",
            &[("stage", "feature_fetch")][..],
        ),
        (
            "model_stage_duration_seconds_count",
            &[("stage", "inference")][..],
        ),
        (
            "model_stage_duration_seconds_count",
            &[("stage", "postprocess")][..],
        ),
    ] {
        let v1_value = before.sum(name, labels);
        assert!(
            (delta(name, labels) - v1_value).abs() < 1e-9,
            "{name} {labels:?}: v2 added {} where v1 added {v1_value}",
            delta(name, labels)
        );
    }
    assert_eq!(after.sum("model_requests_total", &[]), 2.0 * n as f64);
}

#[tokio::test]
async fn binary_infer_scores_like_v1() {
    let app = TestApp::new(Options::default()).await;
    let rows = rows();
    let n = rows.len();
    let (_, v1) = app.call("POST", "/v1/predict/batch", v1_batch(&rows)).await;
    let (header_length, body) = v2_binary(&rows);
    let request = Request::builder()
        .method("POST")
        .uri("/v2/models/fraud/versions/1.0.0/infer")
        .header("content-type", "application/octet-stream")
        .header("inference-header-content-length", header_length)
        .body(Body::from(body))
        .expect("request");
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/octet-stream");
    let split: usize = headers["inference-header-content-length"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a length");
    let header: Value = serde_json::from_slice(&body[..split]).expect("JSON header");
    let outputs = header["outputs"].as_array().expect("outputs");
    assert_eq!(outputs[0]["name"], "score");
    assert_eq!(outputs[0]["parameters"]["binary_data_size"], 4 * n);
    let scores: Vec<f32> = body[split..split + 4 * n]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    assert_eq!(scores, scores_of(&v1), "binary v2 scores differ from v1's");
    let total: usize = outputs
        .iter()
        .map(|o| {
            o["parameters"]["binary_data_size"]
                .as_u64()
                .expect("binary") as usize
        })
        .sum();
    assert_eq!(split + total, body.len());
    assert_eq!(
        app.requests("success", "approved") + app.requests("success", "declined"),
        2.0 * n as f64
    );
}

#[tokio::test]
async fn a_missing_feature_is_counted_per_row_as_in_v1() {
    let app = TestApp::new(Options::default()).await;
    let (status, _) = app
        .admin("POST", "/admin/faults", r#"{"missing_feature": "amount"}"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    let rows = rows();
    let (status, _) = app
        .call("POST", "/v2/models/fraud/infer", v2_json(&rows).to_string())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.value(
            "model_feature_missing_total",
            &[("model", "fraud"), ("feature", "amount")]
        ),
        rows.len() as f64
    );
}

/// One v2 row of the bad-input table.
struct BadInput {
    name: &'static str,
    header_length: Option<String>,
    encoding: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    says: &'static str,
}

fn bad_inputs() -> Vec<BadInput> {
    let good = v2_json(&rows()[..2]);
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v.to_string().into_bytes()
    };
    let json = |name, body, status, says| BadInput {
        name,
        header_length: None,
        encoding: None,
        body,
        status,
        says,
    };
    let amount_binary = |size: usize, binary: &[u8]| {
        let mut v = good.clone();
        v["inputs"][0] = json!({"name": "amount", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": size}});
        let header = v.to_string();
        let mut body = header.clone().into_bytes();
        body.extend_from_slice(binary);
        (header.len().to_string(), body)
    };
    let (truncated_length, truncated) = amount_binary(8, &[0; 5]);
    let (trailing_length, trailing) = amount_binary(8, &[0; 11]);
    let (prefix_length, broken_prefix) = {
        let mut v = good.clone();
        v["inputs"][1] = json!({"name": "customer_id", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 11}});
        let header = v.to_string();
        let mut body = header.clone().into_bytes();
        // "C1", then a prefix that claims 200 bytes with 1 left.
        body.extend_from_slice(&[2, 0, 0, 0, b'C', b'1', 200, 0, 0, 0, b'x']);
        (header.len().to_string(), body)
    };
    let (size_length, size_mismatch) = amount_binary(12, &[0; 12]);
    vec![
        json(
            "malformed JSON",
            b"{\"inputs\": [".to_vec(),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        json(
            "wrong input name",
            edit(&|v| v["inputs"][1]["name"] = json!("customer")),
            StatusCode::BAD_REQUEST,
            "input \"customer\": no such input; the model takes amount, timestamp, customer_id, terminal_id",
        ),
        json(
            "missing required input",
            edit(&|v| {
                v["inputs"].as_array_mut().expect("inputs").remove(2);
            }),
            StatusCode::BAD_REQUEST,
            "input \"terminal_id\": is required",
        ),
        json(
            "wrong datatype",
            edit(&|v| {
                v["inputs"][1]["datatype"] = json!("INT64");
                v["inputs"][1]["data"] = json!([1, 2]);
            }),
            StatusCode::BAD_REQUEST,
            "input \"customer_id\": datatype INT64 is not accepted; use BYTES",
        ),
        json(
            "input given twice",
            edit(&|v| {
                let copy = v["inputs"][1].clone();
                v["inputs"].as_array_mut().expect("inputs").push(copy);
            }),
            StatusCode::BAD_REQUEST,
            "input \"customer_id\": is given more than once",
        ),
        json(
            "not a protocol datatype",
            edit(&|v| v["inputs"][0]["datatype"] = json!("FP8")),
            StatusCode::BAD_REQUEST,
            "input \"amount\": unknown datatype \"FP8\"",
        ),
        json(
            "shape size overflows",
            edit(&|v| v["inputs"][0]["shape"] = json!([u64::MAX, 3])),
            StatusCode::BAD_REQUEST,
            "input \"amount\": shape [18446744073709551615, 3] is too large",
        ),
        json(
            "element of the wrong type",
            edit(&|v| v["inputs"][0]["data"][0] = json!(["12"])),
            StatusCode::BAD_REQUEST,
            "input \"amount\": element 0: expected a number, got a string",
        ),
        json(
            "no row",
            edit(&|v| {
                for t in v["inputs"].as_array_mut().expect("inputs") {
                    t["shape"] = json!([0]);
                    t["data"] = json!([]);
                }
            }),
            StatusCode::BAD_REQUEST,
            "the inputs hold no row",
        ),
        json(
            "wrong shape",
            edit(&|v| v["inputs"][0]["shape"] = json!([1, 2])),
            StatusCode::BAD_REQUEST,
            "input \"amount\": shape [1, 2] is not [N] or [N, 1]",
        ),
        json(
            "negative dimension",
            edit(&|v| v["inputs"][0]["shape"] = json!([-2, 1])),
            StatusCode::BAD_REQUEST,
            "input \"amount\": shape dimension 0 is -2",
        ),
        json(
            "shape and data disagree",
            edit(&|v| v["inputs"][0]["shape"] = json!([3, 1])),
            StatusCode::BAD_REQUEST,
            "input \"amount\": shape holds 3 elements but data has 2",
        ),
        json(
            "row counts differ",
            edit(&|v| {
                v["inputs"][1]["shape"] = json!([1]);
                v["inputs"][1]["data"] = json!(["C1"]);
            }),
            StatusCode::BAD_REQUEST,
            "input \"customer_id\": has 1 rows but input \"amount\" has 2",
        ),
        json(
            "invalid value in a row",
            edit(&|v| v["inputs"][1]["data"][1] = json!("")),
            StatusCode::BAD_REQUEST,
            "input \"customer_id\": row 1: must not be empty",
        ),
        json(
            "bad timestamp in a row",
            edit(&|v| v["inputs"][3]["data"][0] = json!("yesterday")),
            StatusCode::BAD_REQUEST,
            "input \"timestamp\": row 0: is not RFC 3339",
        ),
        json(
            "unknown output",
            edit(&|v| v["outputs"] = json!([{"name": "probability"}])),
            StatusCode::BAD_REQUEST,
            "output \"probability\": no such output",
        ),
        json(
            "too many rows",
            v2_json(&[rows(), rows()].concat()).to_string().into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch has 10 transactions; at most 8",
        ),
        BadInput {
            name: "header length past the body",
            header_length: Some("100000".into()),
            ..json(
                "",
                good.to_string().into_bytes(),
                StatusCode::BAD_REQUEST,
                "Inference-Header-Content-Length is 100000 but the body has only",
            )
        },
        BadInput {
            name: "header length not a number",
            header_length: Some("12abc".into()),
            ..json(
                "",
                good.to_string().into_bytes(),
                StatusCode::BAD_REQUEST,
                "Inference-Header-Content-Length is \"12abc\"",
            )
        },
        BadInput {
            name: "truncated binary tensor",
            header_length: Some(truncated_length),
            ..json(
                "",
                truncated,
                StatusCode::BAD_REQUEST,
                "input \"amount\": binary_data_size is 8 bytes but only 5 are left in the body",
            )
        },
        BadInput {
            name: "binary size mismatch",
            header_length: Some(size_length),
            ..json(
                "",
                size_mismatch,
                StatusCode::BAD_REQUEST,
                "input \"amount\": binary_data_size is 12 bytes but its shape and datatype need 8",
            )
        },
        BadInput {
            name: "bytes after the last binary tensor",
            header_length: Some(trailing_length),
            ..json(
                "",
                trailing,
                StatusCode::BAD_REQUEST,
                "3 bytes follow the last binary tensor",
            )
        },
        BadInput {
            name: "broken BYTES length prefix",
            header_length: Some(prefix_length),
            ..json(
                "",
                broken_prefix,
                StatusCode::BAD_REQUEST,
                "input \"customer_id\": element 1: declares 200 bytes at byte 6",
            )
        },
        BadInput {
            name: "compressed body",
            encoding: Some("gzip"),
            ..json(
                "",
                good.to_string().into_bytes(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Encoding \"gzip\" is not supported",
            )
        },
        json(
            "oversized body",
            format!("{{\"id\": \"{}\"}}", "x".repeat(20 * 1024)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is larger than",
        ),
    ]
}

#[tokio::test]
async fn every_bad_v2_input_gets_a_json_error_naming_it_and_is_counted_as_rejected() {
    let app = TestApp::new(Options::default()).await;
    for (i, case) in bad_inputs().into_iter().enumerate() {
        let mut request = Request::builder()
            .method("POST")
            .uri("/v2/models/fraud/infer");
        if let Some(length) = &case.header_length {
            request = request.header("inference-header-content-length", length.as_str());
        }
        if let Some(encoding) = case.encoding {
            request = request.header("content-encoding", encoding);
        }
        let request = request.body(Body::from(case.body)).expect("request");
        let (status, _, body) = send(&app, request).await;
        let body: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{}: not JSON: {body:?}", case.name));
        assert_eq!(status, case.status, "{}: {body}", case.name);
        let message = body["error"].as_str().expect("error is a string");
        assert!(
            message.contains(case.says),
            "{}: {message:?} does not say {:?}",
            case.name,
            case.says
        );
        assert_eq!(
            app.requests("rejected", "none"),
            (i + 1) as f64,
            "{} not counted once",
            case.name
        );
    }
    // Nothing was scored, and the server keeps serving.
    assert_eq!(app.requests("success", "approved"), 0.0);
    let (status, _) = app
        .call(
            "POST",
            "/v2/models/fraud/infer",
            v2_json(&rows()).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}
