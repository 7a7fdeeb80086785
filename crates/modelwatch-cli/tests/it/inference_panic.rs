//! The real binary with a model that panics (the `model_panics` fault): one panic
//! fails its batch and the inference thread restarts, answering the same scores as
//! before; panics in three batches in a row stop the server with a clear message,
//! never leaving a replica that looks ready but answers nothing.

use crate::support::{CUSTOMER, Server, TERMINAL, scrape};
use std::time::Duration;

// A long request deadline: a loaded machine must not turn the 500 looked for into a 504.
const FAULTS: &[&str] = &[
    "--enable-fault-injection",
    "--max-delay",
    "1ms",
    "--request-timeout",
    "60s",
];

fn transaction() -> serde_json::Value {
    serde_json::json!({"customer_id": CUSTOMER, "terminal_id": TERMINAL, "amount": 57.25,
        "timestamp": "2026-11-24T10:00:00Z"})
}

async fn predict(client: &reqwest::Client, server: &Server) -> (u16, serde_json::Value) {
    let r = client
        .post(format!("{}/v1/predict", server.api))
        .json(&transaction())
        .send()
        .await
        .expect("an answer");
    let status = r.status().as_u16();
    (status, r.json().await.expect("a JSON body"))
}

async fn inject(client: &reqwest::Client, server: &Server, panics: u64) {
    let r = client
        .post(format!("{}/admin/faults", server.metrics))
        .json(&serde_json::json!({ "model_panics": panics }))
        .send()
        .await
        .expect("faults set");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

async fn readyz(client: &reqwest::Client, server: &Server) -> (u16, serde_json::Value) {
    let r = client
        .get(format!("{}/readyz", server.api))
        .send()
        .await
        .expect("readyz answers");
    let status = r.status().as_u16();
    (status, r.json().await.expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_panic_fails_its_batch_and_the_thread_comes_back() {
    let server = Server::start(FAULTS);
    let client = reqwest::Client::new();
    let (status, before) = predict(&client, &server).await;
    assert_eq!(status, 200, "{before}");

    inject(&client, &server, 1).await;
    let (status, failed) = predict(&client, &server).await;
    assert_eq!(status, 500, "{failed}");
    // The client learns only that it failed; the panic's text goes to the log.
    assert_eq!(failed["error"]["type"], "internal", "{failed}");

    // The thread restarts: /readyz is ready again (bounded wait) and counts it.
    let mut ready = None;
    for _ in 0..200 {
        let (status, body) = readyz(&client, &server).await;
        if status == 200 {
            ready = Some(body);
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            body["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("restarting"),
            "{body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ready = ready.expect("ready again after one panic");
    assert_eq!(ready["inference_restarts"], 1, "{ready}");

    let (status, after) = predict(&client, &server).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["score"], before["score"], "{before} vs {after}");

    let metrics = scrape(&client, &server).await;
    let errors = metrics.sum("model_requests_total", &[("status", "error")]);
    assert_eq!(errors, 1.0, "the panicking request counts as one error");
    assert_eq!(server.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_in_three_batches_in_a_row_stop_the_server_with_a_hint() {
    let server = Server::start(FAULTS);
    let client = reqwest::Client::new();
    inject(&client, &server, 3).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, body) = predict(&client, &server).await;
        assert!(status == 500 || status == 503, "{status}: {body}");
        statuses.push(status);
    }
    // Each of the three requests met a panicking batch (the thread restarts between
    // them), so all three are 500s; none is answered as if the model were fine.
    assert_eq!(statuses, [500, 500, 500]);
    let (code, stderr) = server.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("panicking batches in a row"), "{stderr}");
    assert!(stderr.contains("hint: "), "{stderr}");
}
