//! `serve --model-repository`: two different models in one process, each with its own
//! batcher, `model` label and decision names (issue 12).

use crate::support::{CUSTOMER, Server, TERMINAL, scrape};
use modelwatch_testkit::models::{SECOND_DECISIONS, SECOND_MODEL, two_model_repository};

fn body(amount: f64) -> serde_json::Value {
    serde_json::json!({
        "features": {"amount": amount, "timestamp": "2026-11-24T03:00:00Z"},
        "entities": {"customer_id": CUSTOMER, "terminal_id": TERMINAL},
    })
}

async fn post(
    client: &reqwest::Client,
    url: String,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = client.post(url).json(body).send().await.expect("answer");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_models_are_served_side_by_side_each_under_its_own_label() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repository = two_model_repository(dir.path());
    let repository = repository.to_str().expect("a UTF-8 path");
    let server = Server::start(&["--model-repository", repository]);
    let client = reqwest::Client::new();

    let ready: serde_json::Value = client
        .get(format!("{}/readyz", server.api))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = ready["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, ["fraud", SECOND_MODEL], "{ready}");
    // The first card in name order is the default model.
    assert_eq!(ready["model"], "fraud");

    let amounts = [5.0, 80.0, 240.0, 900.0, 2500.0];
    let (mut fraud_scores, mut second_scores) = (Vec::new(), Vec::new());
    for amount in amounts {
        let (status, fraud) = post(
            &client,
            format!("{}/v1/models/fraud/predict", server.api),
            &body(amount),
        )
        .await;
        assert_eq!(status, 200, "{fraud}");
        assert_eq!(fraud["model"], "fraud");
        assert!(
            ["approved", "declined"].contains(&fraud["decision"].as_str().unwrap_or_default()),
            "{fraud}"
        );
        let (status, second) = post(
            &client,
            format!("{}/v1/models/{SECOND_MODEL}/predict", server.api),
            &body(amount),
        )
        .await;
        assert_eq!(status, 200, "{second}");
        assert_eq!(second["model"], SECOND_MODEL);
        assert_eq!(second["version"], "0.3.0");
        assert!(
            SECOND_DECISIONS.contains(&second["decision"].as_str().unwrap_or_default()),
            "{second}"
        );
        fraud_scores.push(fraud["score"].as_f64().expect("score"));
        second_scores.push(second["score"].as_f64().expect("score"));
    }
    // Two different models: the same rows do not get the same scores.
    assert_ne!(fraud_scores, second_scores);

    // /v1/predict is the default model's, and scores like its named endpoint.
    let tx = serde_json::json!({"customer_id": CUSTOMER, "terminal_id": TERMINAL, "amount": 80.0, "timestamp": "2026-11-24T03:00:00Z"});
    let (status, v1) = post(&client, format!("{}/v1/predict", server.api), &tx).await;
    assert_eq!(status, 200, "{v1}");
    assert_eq!(v1["model"], "fraud");
    assert_eq!(v1["score"].as_f64(), Some(fraud_scores[1]));

    // The Open Inference Protocol sees both.
    let meta: serde_json::Value = client
        .get(format!("{}/v2/models/{SECOND_MODEL}", server.api))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert_eq!(meta["name"], SECOND_MODEL, "{meta}");

    // An unknown model: 404 naming both, and no model's request.
    let (status, unknown) = post(
        &client,
        format!("{}/v1/models/nope/predict", server.api),
        &body(1.0),
    )
    .await;
    assert_eq!(status, 404, "{unknown}");
    let message = unknown["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("fraud") && message.contains(SECOND_MODEL),
        "{unknown}"
    );

    let metrics = scrape(&client, &server).await;
    let requests = |model: &str| metrics.sum("model_requests_total", &[("model", model)]);
    assert_eq!(requests("fraud"), (amounts.len() + 1) as f64);
    assert_eq!(requests(SECOND_MODEL), amounts.len() as f64);
    assert_eq!(
        requests("fraud") + requests(SECOND_MODEL),
        metrics.sum("model_requests_total", &[]),
        "an unknown model's request was counted under some label"
    );
    // Each model's decisions under its own names, and never the other's.
    for decision in SECOND_DECISIONS {
        assert_eq!(
            metrics.sum(
                "model_requests_total",
                &[("model", "fraud"), ("decision", decision)]
            ),
            0.0
        );
    }
    let second_decided: f64 = SECOND_DECISIONS
        .iter()
        .map(|d| {
            metrics.sum(
                "model_requests_total",
                &[("model", SECOND_MODEL), ("decision", d)],
            )
        })
        .sum();
    assert_eq!(second_decided, amounts.len() as f64);
    // Each model has its own score histogram and batcher series.
    for model in ["fraud", SECOND_MODEL] {
        assert_eq!(
            metrics.sum("model_prediction_score_count", &[("model", model)]),
            requests(model),
            "{model}"
        );
        assert!(
            metrics.sum("model_batch_size_count", &[("model", model)]) >= 1.0,
            "{model}"
        );
    }
    assert_eq!(server.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_model_picks_the_model_of_v1_predict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repository = two_model_repository(dir.path());
    let repository = repository.to_str().expect("a UTF-8 path");
    let server = Server::start(&[
        "--model-repository",
        repository,
        "--default-model",
        SECOND_MODEL,
    ]);
    let client = reqwest::Client::new();
    let tx = serde_json::json!({"customer_id": CUSTOMER, "terminal_id": TERMINAL, "amount": 80.0});
    let (status, v1) = post(&client, format!("{}/v1/predict", server.api), &tx).await;
    assert_eq!(status, 200, "{v1}");
    assert_eq!(v1["model"], SECOND_MODEL);
    assert_eq!(server.terminate(), Some(0));
}

/// `serve` with `args` after loopback listeners and a temporary data directory:
/// it must refuse to start; returns its exit code and stderr.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let data = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data.path())
        .args(args)
        .output()
        .expect("run modelwatch serve");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_repository_is_refused_at_start_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let (code, stderr) = refused(&["--model-repository", empty.to_str().expect("utf-8")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("holds no model card") && stderr.contains("hint:"),
        "{stderr}"
    );

    let repository = two_model_repository(&dir.path().join("two"));
    let repository = repository.to_str().expect("utf-8");
    let (code, stderr) = refused(&["--model-repository", repository, "--default-model", "nope"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("\"nope\" is not in the repository") && stderr.contains(SECOND_MODEL),
        "{stderr}"
    );

    // Two cards with one name.
    let card = std::fs::read_to_string(dir.path().join("two/fraud.card.json")).expect("card");
    std::fs::write(dir.path().join("two/copy.card.json"), card).expect("write");
    let (code, stderr) = refused(&["--model-repository", repository]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("two cards name the model \"fraud\""),
        "{stderr}"
    );

    // --model and --model-repository together are a usage error.
    let (code, stderr) = refused(&["--model-repository", repository, "--model", "x.card.json"]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("--model"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regressor_is_served_beside_the_classifiers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repository = two_model_repository(dir.path());
    let fixtures = modelwatch_testkit::workspace_root().join("models/fixtures");
    for file in ["spend.card.json", "spend.onnx", "spend.reference.json"] {
        std::fs::copy(fixtures.join(file), repository.join(file)).expect("copy spend");
    }
    let repository = repository.to_str().expect("a UTF-8 path");
    let server = Server::start(&["--model-repository", repository]);
    let client = reqwest::Client::new();
    let row = |hour: u32| {
        serde_json::json!({"features": {
            "timestamp": format!("2026-11-24T{hour:02}:05:00Z"),
            "customer_nb_tx_7d": 9.0, "customer_avg_amount_7d": 310.0,
            "customer_nb_tx_30d": 40.0, "customer_avg_amount_30d": 290.0,
        }})
    };
    let (status, spend) = post(
        &client,
        format!("{}/v1/models/spend/predict", server.api),
        &row(12),
    )
    .await;
    assert_eq!(status, 200, "{spend}");
    assert_eq!(spend["model"], "spend");
    let value = spend["value"]
        .as_f64()
        .expect("a regressor answers a value");
    assert!(value > 0.0, "{spend}");
    assert!(
        spend.get("score").is_none() && spend.get("decision").is_none(),
        "{spend}"
    );
    // A classifier beside it still answers its own way.
    let (status, fraud) = post(
        &client,
        format!("{}/v1/models/fraud/predict", server.api),
        &body(80.0),
    )
    .await;
    assert_eq!(status, 200, "{fraud}");
    assert!(fraud["score"].as_f64().is_some(), "{fraud}");
    // The spend model reads no entity: a fraud field is refused by name.
    let (status, refused) = post(
        &client,
        format!("{}/v1/models/spend/predict", server.api),
        &body(80.0),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    let metrics = scrape(&client, &server).await;
    assert_eq!(
        metrics.sum(
            "model_requests_total",
            &[
                ("model", "spend"),
                ("status", "success"),
                ("decision", "none")
            ]
        ),
        1.0
    );
    assert_eq!(
        metrics.sum(
            "model_requests_total",
            &[("model", "spend"), ("status", "rejected")]
        ),
        1.0
    );
    assert_eq!(server.terminate(), Some(0));
}
