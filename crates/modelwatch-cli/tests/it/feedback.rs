//! Delayed labels through the real binary: a SIGKILL in the middle of a stream of
//! feedback loses no acknowledged label, and no label counts twice.

use crate::support::{CUSTOMER, TERMINAL};
use modelwatch_testkit::Serve;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const PREDICTIONS: usize = 240;
/// Labels acknowledged before the kill.
const ACKED_BEFORE_KILL: usize = 80;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_modelwatch"))
}

/// Truth for the i-th prediction: a fixed, mixed pattern.
fn truth(i: usize) -> bool {
    i % 3 == 0
}

async fn predict(client: &reqwest::Client, api: &str) -> Vec<(String, String)> {
    let mut ids = Vec::with_capacity(PREDICTIONS);
    for chunk in 0..PREDICTIONS / 40 {
        let transactions: Vec<_> = (0..40)
            .map(|j| {
                let i = chunk * 40 + j;
                serde_json::json!({"customer_id": CUSTOMER, "terminal_id": TERMINAL,
                    "amount": 3.0 + (i as f64 * 37.3) % 2000.0})
            })
            .collect();
        let answer: serde_json::Value = client
            .post(format!("{api}/v1/predict/batch"))
            .json(&serde_json::json!({ "transactions": transactions }))
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("json");
        for p in answer["predictions"].as_array().expect("predictions") {
            ids.push((
                p["prediction_id"].as_str().expect("id").to_string(),
                p["decision"].as_str().expect("decision").to_string(),
            ));
        }
    }
    ids
}

async fn send_label(
    client: &reqwest::Client,
    api: &str,
    id: &str,
    positive: bool,
) -> Option<String> {
    let response = client
        .post(format!("{api}/v1/feedback"))
        .json(&serde_json::json!({"prediction_id": id, "label": positive}))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let body: serde_json::Value = response.json().await.ok()?;
    Some(body["outcome"].as_str()?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_loses_no_acknowledged_label_and_counts_none_twice() {
    let server = Serve::start(binary(), &[]);
    let client = reqwest::Client::new();
    let ids = predict(&client, &server.api).await;
    assert_eq!(ids.len(), PREDICTIONS);

    // A bad label is refused with a JSON error and stores nothing.
    let refused = client
        .post(format!("{}/v1/feedback", server.api))
        .json(&serde_json::json!({"prediction_id": ids[0].0, "label": "maybe"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 400);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["type"], "invalid_field", "{body}");

    // A stream of labels, one at a time, killed part way through.
    let acked: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let killed = Arc::new(AtomicBool::new(false));
    let stream = {
        let (client, api, ids) = (client.clone(), server.api.clone(), ids.clone());
        let (acked, killed) = (acked.clone(), killed.clone());
        tokio::spawn(async move {
            for (i, (id, _)) in ids.iter().enumerate() {
                match send_label(&client, &api, id, truth(i)).await {
                    Some(outcome) => acked.lock().expect("lock").push((i, outcome)),
                    None if killed.load(Ordering::SeqCst) => break,
                    None => panic!("label {i} refused before the kill"),
                }
            }
        })
    };
    while acked.lock().expect("lock").len() < ACKED_BEFORE_KILL {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    killed.store(true, Ordering::SeqCst);
    let data = server.kill();
    stream.await.expect("the stream ends");
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= ACKED_BEFORE_KILL && acked.len() < PREDICTIONS);
    assert!(acked.iter().all(|(_, o)| o == "matched"), "{acked:?}");

    // Restarted on the same data directory: every label is sent again, as a client
    // retrying everything would.
    let server = Serve::start_in(binary(), data, &[]);
    let mut second = HashMap::new();
    for (i, (id, _)) in ids.iter().enumerate() {
        let outcome = send_label(&client, &server.api, id, !truth(i))
            .await
            .unwrap_or_else(|| panic!("label {i} refused after the restart"));
        second.insert(i, outcome);
    }
    for (i, _) in &acked {
        assert_eq!(second[i], "duplicate", "acknowledged label {i} was lost");
    }
    // Unacknowledged labels are new, except the one in flight at the kill, which may
    // have been stored before its answer.
    let acked_set: std::collections::HashSet<usize> = acked.iter().map(|(i, _)| *i).collect();
    let in_flight_stored = (0..PREDICTIONS)
        .filter(|i| !acked_set.contains(i) && second[i] == "duplicate")
        .count();
    assert!(in_flight_stored <= 1, "{in_flight_stored}");
    assert!(second.values().all(|o| o == "matched" || o == "duplicate"));

    // The restarted server's counters: each new label once, each retry a duplicate.
    let metrics = scrape_serve(&client, &server).await;
    let matched = second.values().filter(|o| *o == "matched").count();
    let duplicates = second.values().filter(|o| *o == "duplicate").count();
    assert_eq!(
        metrics.sum("model_feedback_total", &[("model", "fraud")]),
        matched as f64
    );
    assert_eq!(
        metrics.sum("model_feedback_duplicate_total", &[("model", "fraud")]),
        duplicates as f64
    );
    assert_eq!(metrics.sum("model_feedback_unmatched_total", &[]), 0.0);
    // The confusion cells follow the decisions and the truth sent after the restart.
    let declined_fraud = ids
        .iter()
        .enumerate()
        .filter(|(i, (_, d))| second[i] == "matched" && d == "declined" && !truth(*i))
        .count();
    assert_eq!(
        metrics.sum(
            "model_feedback_total",
            &[("predicted", "declined"), ("actual", "declined")]
        ),
        declined_fraud as f64
    );
    // Killed again: the labels of the second run were acknowledged, so durable too.
    let data = server.kill();

    // The log itself: one label per prediction, the first one sent for each.
    let log = modelwatch_log::PredictionLog::open(modelwatch_log::LogConfig::new(
        data.path().join("predictions.redb"),
    ))
    .expect("the log opens");
    let labels: HashMap<String, modelwatch_log::StoredLabel> =
        log.labels().expect("labels").into_iter().collect();
    assert_eq!(labels.len(), PREDICTIONS);
    for (i, _) in &acked {
        assert_eq!(
            labels[&ids[*i].0].truth,
            modelwatch_log::Truth::Class(truth(*i)),
            "label {i} is not the acknowledged one"
        );
    }
}

async fn scrape_serve(
    client: &reqwest::Client,
    server: &Serve,
) -> modelwatch_testkit::exposition::Exposition {
    modelwatch_testkit::exposition::scrape(client, &server.metrics).await
}
