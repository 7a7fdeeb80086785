//! The real binary: a known number of requests in, consistent metrics out.

use crate::support::{CUSTOMER, Server, TERMINAL, scrape};
use modelwatch_testkit::store::{customer_id, terminal_id};

fn body(i: usize) -> serde_json::Value {
    // Half known entities, half unknown; amounts spread over the reference range.
    let (customer, terminal) = if i % 2 == 0 {
        (CUSTOMER.to_string(), TERMINAL.to_string())
    } else {
        let i = u32::try_from(i).expect("a small index");
        (customer_id(900_000 + i), terminal_id(90_000 + i))
    };
    serde_json::json!({"customer_id": customer, "terminal_id": terminal, "amount": 3.0 + (i as f64 * 7.3) % 400.0})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_agree_with_what_was_sent() {
    let server = Server::start(&["--max-batch", "8", "--max-delay", "2ms"]);
    let client = reqwest::Client::new();
    const SINGLE: usize = 40;
    const BATCH: usize = 10;
    const BAD: usize = 3;

    // Concurrent singles, so the micro-batcher forms batches larger than one.
    let mut handles = Vec::new();
    for i in 0..SINGLE {
        let client = client.clone();
        let url = format!("{}/v1/predict", server.api);
        handles.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&body(i))
                .send()
                .await
                .expect("answer");
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.expect("json")
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for h in handles {
        let p = h.await.expect("join");
        assert!(ids.insert(p["prediction_id"].as_str().expect("id").to_string()));
    }
    let batch: Vec<_> = (0..BATCH).map(|i| body(100 + i)).collect();
    let r = client
        .post(format!("{}/v1/predict/batch", server.api))
        .json(&serde_json::json!({ "transactions": batch }))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let out: serde_json::Value = r.json().await.expect("json");
    assert_eq!(out["predictions"].as_array().map(Vec::len), Some(BATCH));
    for bad in [
        "{",
        r#"{"customer_id":"C1","terminal_id":"T1","amount":-1}"#,
        r#"{"customer_id":"C1"}"#,
    ] {
        let r = client
            .post(format!("{}/v1/predict", server.api))
            .body(bad)
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), 400);
    }

    let s = scrape(&client, &server).await;
    let scored = (SINGLE + BATCH) as f64;
    let success = s.sum("model_requests_total", &[("status", "success")]);
    assert_eq!(success, scored, "successes");
    assert_eq!(
        s.sum("model_requests_total", &[("status", "rejected")]),
        BAD as f64
    );
    assert_eq!(s.sum("model_requests_total", &[("status", "error")]), 0.0);
    let approved = s.sum("model_requests_total", &[("decision", "approved")]);
    let declined = s.sum("model_requests_total", &[("decision", "declined")]);
    assert_eq!(approved + declined, scored);
    for stage in ["queue", "feature_fetch", "inference", "postprocess"] {
        let count = s.sum("model_stage_duration_seconds_count", &[("stage", stage)]);
        assert_eq!(count, scored, "stage {stage}");
        let inf = s.sum(
            "model_stage_duration_seconds_bucket",
            &[("stage", stage), ("le", "+Inf")],
        );
        assert_eq!(inf, scored, "stage {stage} +Inf bucket");
    }
    assert_eq!(
        s.sum("model_request_duration_seconds_count", &[]),
        scored,
        "rejected requests are not in the latency SLO"
    );
    assert_eq!(s.sum("model_prediction_score_count", &[]), scored);
    let score_sum = s.sum("model_prediction_score_sum", &[]);
    assert!(score_sum >= 0.0 && score_sum <= scored);
    // Every scored row went through exactly one batch.
    assert_eq!(s.sum("model_batch_size_sum", &[]), scored);
    let batches = s.sum("model_batch_size_count", &[]);
    assert!(batches >= 1.0 && batches <= scored, "{batches} batches");
    // Two entity groups per prediction: one cache lookup each.
    let lookups = s.sum("model_feature_cache_operations_total", &[]);
    assert_eq!(lookups, 2.0 * scored);
    assert_eq!(s.sum("model_active_requests", &[]), 0.0);
    assert!(
        s.family("model_info")
            .is_some_and(|f| !f.samples.is_empty()),
        "model_info missing"
    );
    assert_eq!(s.sum("model_score_bin_total", &[]), scored);

    assert_eq!(server.terminate(), Some(0), "SIGTERM drains and exits 0");
}

#[test]
fn bad_flags_get_a_clear_error_with_a_hint() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["serve", "--max-delay", "10x"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown unit \"x\"") && stderr.contains("\nhint: "),
        "{stderr}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, "listen = 5\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: config file"), "{stderr}");
}

#[test]
fn help_explains_every_serve_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["serve", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--metrics-listen",
        "--model",
        "--data-dir",
        "--max-batch",
        "--max-delay",
        "--config",
        "MODELWATCH_LISTEN",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}
