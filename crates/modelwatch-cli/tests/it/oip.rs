//! The Open Inference Protocol driven by the client users already have: Triton's
//! `tritonclient[http]` (tests/oip/triton_client.py, run in the test virtual
//! environment) against the real binary. Metadata, readiness, infer as JSON and as
//! binary; the scores equal `/v1/predict/batch`'s for the same rows, and the counts in
//! `/metrics` agree with what was sent.

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
    let dir = tempfile::tempdir().expect("tempdir");
    let rows_file = dir.path().join("rows.json");
    std::fs::write(&rows_file, Value::Array(rows.clone()).to_string()).expect("write rows");

    let url = server.api.trim_start_matches("http://").to_string();
    let script = modelwatch_testkit::workspace_root().join(CLIENT);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args(["--url", &url, "--rows"])
            .arg(&rows_file)
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
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    });

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
        assert_eq!(
            inputs,
            [
                "amount",
                "customer_id",
                "terminal_id",
                "timestamp",
                "transaction_id"
            ]
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
            "negative_amount",
            "400",
            "input \"amount\": row 0: must not be negative",
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
