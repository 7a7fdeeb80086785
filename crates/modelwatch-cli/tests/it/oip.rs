//! The Open Inference Protocol driven by the client users already have: Triton's
//! `tritonclient[http]` (tests/oip/triton_client.py, run in the test virtual
//! environment) against the real binary. Metadata, readiness, infer as JSON and as
//! binary; the scores equal `/v1/predict/batch`'s for the same rows, and the counts in
//! `/metrics` agree with what was sent. Then the second model (`spend`, a regressor
//! over request fields only, served with `--model`), driven from its metadata alone:
//! its values equal `/v1/models/spend/predict/batch`'s.

use crate::support::{CUSTOMER, Server, TERMINAL, scrape};
use modelwatch_testkit::store::{customer_id, terminal_id};
use serde_json::{Value, json};

const REQUIREMENTS: &str = "crates/modelwatch-cli/tests/oip/requirements.txt";
const CLIENT: &str = "crates/modelwatch-cli/tests/oip/triton_client.py";

/// Known and unknown entities, amounts over the reference range, day and night.
fn rows() -> Vec<Value> {
    (0..12u32)
        .map(|i| {
            let (customer, terminal) = if i % 3 == 0 {
                (customer_id(800_000 + i), terminal_id(80_000 + i))
            } else {
                (CUSTOMER.to_string(), TERMINAL.to_string())
            };
            json!({
                "customer_id": customer,
                "terminal_id": terminal,
                "amount": 1.5 + f64::from(i) * 97.31,
                "timestamp": format!("2026-11-{:02}T{:02}:17:00Z", 20 + i % 7, (i * 5) % 24),
            })
        })
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_reads_metadata_and_scores_like_v1() {
    let Some(python) = modelwatch_testkit::venv::python(
        "tritonclient_reads_metadata_and_scores_like_v1",
        &["tritonclient.http", "numpy"],
        REQUIREMENTS,
    ) else {
        return;
    };
    let server = Server::start(&["--max-batch", "8", "--max-delay", "1ms"]);
    let client = reqwest::Client::new();
    let rows = rows();
    let n = rows.len();
    let report = run_client(python, &server, &[], &rows).await;

    // Health and metadata, as the client reads them.
    assert_eq!(report["live"], true);
    assert_eq!(report["ready"], true);
    assert_eq!(report["model_ready"], true);
    assert_eq!(report["model_ready_version"], true);
    assert_eq!(report["unknown_model_ready"], false);
    assert_eq!(report["server_metadata"]["name"], "modelwatch");
    assert_eq!(
        report["server_metadata"]["extensions"],
        json!(["binary_tensor_data"])
    );
    for key in ["model_metadata", "model_metadata_version"] {
        let m = &report[key];
        assert_eq!(m["name"], "fraud", "{key}");
        assert_eq!(m["versions"], json!(["1.0.0"]), "{key}");
        let inputs: Vec<_> = m["inputs"]
            .as_array()
            .expect("inputs")
            .iter()
            .map(|i| i["name"].as_str().expect("name").to_string())
            .collect();
        // The card's request fields, in its order.
        assert_eq!(
            inputs,
            ["amount", "timestamp", "customer_id", "terminal_id"]
        );
    }

    // The same rows through /v1/predict/batch.
    let v1: Value = client
        .post(format!("{}/v1/predict/batch", server.api))
        .json(&json!({ "transactions": rows }))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    let v1_scores: Vec<f64> = v1["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| p["score"].as_f64().expect("score"))
        .collect();
    let v1_decisions: Vec<Value> = v1["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| p["decision"].clone())
        .collect();
    assert_eq!(v1_scores.len(), n);

    let mut prediction_ids = std::collections::HashSet::new();
    for (key, binary, id) in [
        ("infer_json", false, Some("json-1")),
        ("infer_binary", true, Some("binary-1")),
        ("infer_default", true, None),
    ] {
        let r = &report[key];
        assert_eq!(r["model_name"], "fraud", "{key}");
        assert_eq!(r["model_version"], "1.0.0", "{key}");
        assert_eq!(r["id"].as_str(), id, "{key}");
        assert_eq!(r["score_dtype"], "float32", "{key}");
        // The score is the model's FP32; v1 widens the same value to f64, exactly.
        assert_eq!(
            floats(&r["scores"]),
            v1_scores,
            "{key}: scores differ from v1's"
        );
        assert_eq!(r["decisions"], Value::Array(v1_decisions.clone()), "{key}");
        let expected_binary: Vec<&str> = if binary {
            vec!["score", "decision", "prediction_id"]
        } else {
            vec![]
        };
        assert_eq!(r["binary_outputs"], json!(expected_binary), "{key}");
        for id in r["prediction_ids"].as_array().expect("ids") {
            assert!(
                prediction_ids.insert(id.as_str().expect("id").to_string()),
                "{key}: prediction id {id} repeated"
            );
        }
    }
    assert_eq!(prediction_ids.len(), 3 * n);

    // Refusals reach the client as its own exception, with our message.
    let bad = &report["bad_inputs"];
    for (key, status, says) in [
        ("wrong_name", "400", "input \"amt\": no such input"),
        (
            "wrong_datatype",
            "400",
            "input \"customer_id\": datatype INT64 is not accepted; use BYTES",
        ),
        (
            "bad_timestamp",
            "400",
            "input \"timestamp\": row 0: is not RFC 3339",
        ),
        ("unknown_model", "404", "unknown model \"churn\""),
    ] {
        assert_eq!(bad[key]["status"], status, "{key}: {}", bad[key]);
        let message = bad[key]["message"].as_str().expect("message");
        assert!(message.contains(says), "{key}: {message}");
    }

    // Every row of the three infers and the v1 batch is one prediction; each refused
    // infer counts once (the unknown model's 404 does not count).
    let s = scrape(&client, &server).await;
    let scored = 4.0 * n as f64;
    assert_eq!(
        s.sum("model_requests_total", &[("status", "success")]),
        scored
    );
    assert_eq!(
        s.sum("model_requests_total", &[("status", "rejected")]),
        3.0
    );
    assert_eq!(s.sum("model_requests_total", &[("status", "error")]), 0.0);
    let declined = v1_decisions.iter().filter(|d| *d == "declined").count() as f64;
    assert_eq!(
        s.sum("model_requests_total", &[("decision", "declined")]),
        4.0 * declined
    );
    for stage in ["queue", "feature_fetch", "inference", "postprocess"] {
        assert_eq!(
            s.sum("model_stage_duration_seconds_count", &[("stage", stage)]),
            scored,
            "stage {stage}"
        );
    }
    assert_eq!(s.sum("model_prediction_score_count", &[]), scored);
    assert_eq!(s.sum("model_score_bin_total", &[]), scored);
    let v1_score_sum: f64 = v1_scores.iter().sum();
    let score_sum = s.sum("model_prediction_score_sum", &[]);
    assert!(
        (score_sum - 4.0 * v1_score_sum).abs() < 1e-6,
        "score sum {score_sum} is not 4 x v1's {v1_score_sum}"
    );
    assert_eq!(s.sum("model_batch_size_sum", &[]), scored);
    assert_eq!(s.sum("model_feature_missing_total", &[]), 0.0);
    assert_eq!(s.sum("model_active_requests", &[]), 0.0);

    assert_eq!(server.terminate(), Some(0), "SIGTERM drains and exits 0");
}

const SPEND_CARD: &str = "models/fixtures/spend.card.json";

/// Rows for the `spend` model: its request fields, from quiet to busy customers, day
/// and night, weekday and weekend; the last two are one big spender at 12:05 and at
/// 14:05, which the model tells apart (its hour splits are at 7.5, 12.5 and 13.5).
fn spend_rows() -> Vec<Value> {
    let row = |timestamp: String, nb_7d: f64, avg_7d: f64, nb_30d: f64, avg_30d: f64| {
        json!({
            "timestamp": timestamp,
            "customer_nb_tx_7d": nb_7d,
            "customer_avg_amount_7d": avg_7d,
            "customer_nb_tx_30d": nb_30d,
            "customer_avg_amount_30d": avg_30d,
        })
    };
    let mut rows: Vec<Value> = (0..10u32)
        .map(|i| {
            row(
                format!("2026-11-{:02}T{:02}:05:00Z", 21 + i % 7, (i * 7) % 24),
                f64::from(i * 3),
                4.5 + f64::from(i) * 23.75,
                f64::from(i * 11 + 1),
                12.25 + f64::from(i) * 17.5,
            )
        })
        .collect();
    for hour in [12, 14] {
        rows.push(row(
            format!("2026-11-24T{hour}:05:00Z"),
            34.0,
            124.78,
            105.0,
            142.03,
        ));
    }
    rows
}

/// Runs triton_client.py against `server` and returns its report.
async fn run_client(
    python: std::path::PathBuf,
    server: &Server,
    extra: &[&str],
    rows: &[Value],
) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows_file = dir.path().join("rows.json");
    std::fs::write(&rows_file, Value::Array(rows.to_vec()).to_string()).expect("write rows");
    let url = server.api.trim_start_matches("http://").to_string();
    let script = modelwatch_testkit::workspace_root().join(CLIENT);
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args(["--url", &url, "--rows"])
            .arg(&rows_file)
            .args(extra)
            .output()
            .expect("the client runs")
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "triton_client.py failed:\n{}\nserver:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.stderr_tail()
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_drives_a_second_model_from_its_card() {
    let Some(python) = modelwatch_testkit::venv::python(
        "tritonclient_drives_a_second_model_from_its_card",
        &["tritonclient.http", "numpy"],
        REQUIREMENTS,
    ) else {
        return;
    };
    let card = modelwatch_testkit::workspace_root().join(SPEND_CARD);
    let card = card.to_str().expect("a UTF-8 path");
    let server = Server::start(&["--model", card, "--max-batch", "8", "--max-delay", "1ms"]);
    let client = reqwest::Client::new();
    let rows = spend_rows();
    let n = rows.len();
    let report = run_client(python, &server, &["--model", "spend"], &rows).await;

    // The metadata is the card's: its request fields, and a regressor's outputs.
    let m = &report["model_metadata"];
    assert_eq!(m["name"], "spend");
    assert_eq!(m["versions"], json!(["1.0.0"]));
    let tensors = |key: &str| -> Vec<(String, String)> {
        m[key]
            .as_array()
            .expect("tensors")
            .iter()
            .map(|t| {
                assert_eq!(t["shape"], json!([-1]), "{t}");
                (
                    t["name"].as_str().expect("name").to_string(),
                    t["datatype"].as_str().expect("datatype").to_string(),
                )
            })
            .collect()
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        tensors("inputs"),
        pairs(&[
            ("timestamp", "BYTES"),
            ("customer_nb_tx_7d", "FP32"),
            ("customer_avg_amount_7d", "FP32"),
            ("customer_nb_tx_30d", "FP32"),
            ("customer_avg_amount_30d", "FP32"),
        ])
    );
    assert_eq!(
        tensors("outputs"),
        pairs(&[("value", "FP32"), ("prediction_id", "BYTES")])
    );
    assert_eq!(report["model_ready"], true);

    // The same rows through the generic JSON API.
    let v1_rows: Vec<Value> = rows.iter().map(|r| json!({ "features": r })).collect();
    let response = client
        .post(format!("{}/v1/models/spend/predict/batch", server.api))
        .json(&json!({ "rows": v1_rows }))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let v1: Value = response.json().await.expect("json");
    let v1_values: Vec<f64> = v1["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| {
            assert!(
                p.get("decision").is_none(),
                "a regressor decides nothing: {p}"
            );
            p["value"].as_f64().expect("value")
        })
        .collect();
    assert_eq!(v1_values.len(), n);
    // Different rows predict different amounts, and the time reaches the model (the
    // last two rows differ only in the hour): equal values below are no accident,
    // whichever way the time is sent.
    assert!(v1_values.windows(2).any(|w| w[0] != w[1]), "{v1_values:?}");
    assert_ne!(v1_values[n - 2], v1_values[n - 1], "{v1_values:?}");

    let mut ids = std::collections::HashSet::new();
    for (key, binary) in [
        ("infer_json", false),
        ("infer_binary", true),
        ("infer_unix_time", true),
    ] {
        let r = &report[key];
        assert_eq!(r["model_name"], "spend", "{key}");
        assert_eq!(r["dtypes"]["value"], "float32", "{key}");
        // The value is the model's FP32; v1 widens the same value to f64, exactly.
        assert_eq!(
            floats(&r["outputs"]["value"]),
            v1_values,
            "{key}: values differ from /v1/models/spend/predict/batch"
        );
        let expected: Vec<&str> = if binary {
            vec!["value", "prediction_id"]
        } else {
            vec![]
        };
        assert_eq!(r["binary_outputs"], json!(expected), "{key}");
        for id in r["outputs"]["prediction_id"].as_array().expect("ids") {
            assert!(
                ids.insert(id.as_str().expect("id").to_string()),
                "{key}: {id} repeated"
            );
        }
    }
    assert_eq!(report["infer_json"]["id"], "json-1");

    let bad = &report["bad_inputs"];
    for (key, says) in [
        (
            "missing_input",
            "input \"customer_avg_amount_30d\": is required and missing from the request",
        ),
        (
            "unknown_output",
            "output \"no_such_output\": no such output; the model returns value, prediction_id",
        ),
    ] {
        assert_eq!(bad[key]["status"], "400", "{key}: {}", bad[key]);
        let message = bad[key]["message"].as_str().expect("message");
        assert!(message.contains(says), "{key}: {message}");
    }

    // Three infers and the v1 batch, each row one prediction of model "spend" with
    // decision "none"; the two refusals count once each.
    let s = scrape(&client, &server).await;
    let spend = [("model", "spend")];
    assert_eq!(
        s.sum(
            "model_requests_total",
            &[
                ("model", "spend"),
                ("status", "success"),
                ("decision", "none")
            ]
        ),
        4.0 * n as f64
    );
    assert_eq!(
        s.sum(
            "model_requests_total",
            &[("model", "spend"), ("status", "rejected")]
        ),
        2.0
    );
    assert_eq!(s.sum("model_requests_total", &[("model", "fraud")]), 0.0);
    assert_eq!(
        s.sum(
            "model_stage_duration_seconds_count",
            &[("model", "spend"), ("stage", "inference")]
        ),
        4.0 * n as f64
    );
    assert_eq!(s.sum("model_feature_missing_total", &spend), 0.0);
    assert_eq!(server.terminate(), Some(0), "SIGTERM drains and exits 0");
}
