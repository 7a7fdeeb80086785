//! Regression test for issue 11: with a slow model and clients hanging up
//! mid-batch, `serve` answered predictions with another transaction's score (182 of
//! 620 in the reported run). Every answered prediction must equal the score the same
//! transaction gets when sent alone, and every hang-up must count as `cancelled`.

use crate::support::{CUSTOMER, Server, TERMINAL, scrape};
use crate::wide_mlp;
use modelwatch_testkit::exposition::Exposition;
use modelwatch_testkit::store::{customer_id, terminal_id};
use std::collections::HashMap;
use std::time::Duration;

const TRANSACTIONS: usize = 120;
const ROUNDS: usize = 5;

fn transaction(i: usize) -> serde_json::Value {
    // Distinct amounts and hours give distinct scores; a third of the entities are
    // unknown to the store (the store's id formats), as in real traffic.
    let (customer, terminal) = if i % 3 == 0 {
        let n = u32::try_from(i).expect("a small index");
        (customer_id(800_000 + n), terminal_id(80_000 + n))
    } else {
        (CUSTOMER.to_string(), TERMINAL.to_string())
    };
    serde_json::json!({
        "transaction_id": format!("tx-{i}"),
        "customer_id": customer,
        "terminal_id": terminal,
        "amount": 1.0 + (i as f64 * 37.7) % 900.0,
        "timestamp": format!("2026-11-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, (i * 7) % 60),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_predictions_keep_their_own_score_when_clients_hang_up_mid_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let card = wide_mlp::write(dir.path());
    let card = card.to_str().expect("utf-8 path");
    let server = Server::start(&[
        "--model",
        card,
        "--max-batch",
        "32",
        "--max-delay",
        "2ms",
        "--request-timeout",
        "30s",
        "--queue-capacity",
        "1024",
        // Every row through the queue: this test is about rows sharing a batch.
        "--direct-below",
        "0",
    ]);
    let client = reqwest::Client::new();
    let url = format!("{}/v1/predict", server.api);

    // Ground truth: each transaction scored alone.
    let mut alone = HashMap::new();
    for i in 0..TRANSACTIONS {
        let r = client
            .post(&url)
            .json(&transaction(i))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), 200);
        let p: serde_json::Value = r.json().await.expect("json");
        alone.insert(format!("tx-{i}"), p["score"].as_f64().expect("score"));
    }
    let distinct: std::collections::BTreeSet<u64> =
        alone.values().map(|s| (s * 1e6) as u64).collect();
    assert!(
        distinct.len() > TRANSACTIONS / 2,
        "the test model must tell transactions apart ({} distinct scores)",
        distinct.len()
    );

    // Rounds of every transaction at once; every other client hangs up 2 to 22 ms in.
    let mut answered = 0usize;
    let mut hung_up = 0usize;
    let mut wrong = Vec::new();
    for round in 0..ROUNDS {
        let mut tasks = Vec::new();
        for i in 0..TRANSACTIONS {
            let client = client.clone();
            let url = url.clone();
            let hang_up = (i + round) % 2 == 0;
            let after = Duration::from_millis(2 + ((i * 7 + round * 3) % 21) as u64);
            tasks.push(tokio::spawn(async move {
                let request = client.post(&url).json(&transaction(i));
                let request = if hang_up {
                    request.timeout(after)
                } else {
                    request
                };
                match request.send().await {
                    Ok(r) => {
                        assert_eq!(r.status(), 200, "tx-{i}");
                        match r.json::<serde_json::Value>().await {
                            Ok(p) => Some((i, p)),
                            Err(e) if hang_up => {
                                assert!(e.is_timeout(), "{e}");
                                None
                            }
                            Err(e) => panic!("tx-{i}: {e}"),
                        }
                    }
                    Err(e) => {
                        assert!(hang_up && e.is_timeout(), "tx-{i}: {e}");
                        None
                    }
                }
            }));
        }
        for task in tasks {
            match task.await.expect("join") {
                Some((i, p)) => {
                    answered += 1;
                    let id = p["transaction_id"].as_str().expect("transaction_id");
                    assert_eq!(id, format!("tx-{i}"));
                    let got = p["score"].as_f64().expect("score");
                    let want = alone[id];
                    if (got - want).abs() > 1e-6 {
                        wrong.push((id.to_string(), got, want));
                    }
                }
                None => hung_up += 1,
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {answered} answered predictions carried another transaction's score: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    assert!(answered >= ROUNDS * TRANSACTIONS / 2, "{answered} answered");
    assert!(
        hung_up > 0,
        "no client hung up: the test did not test anything"
    );

    // Hang-ups are `cancelled`, never `error`; every request is accounted for once
    // the server has seen every closed connection (bounded wait for quiescence).
    let mut s = Exposition::default();
    for _ in 0..200 {
        s = scrape(&client, &server).await;
        if s.sum("model_active_requests", &[]) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests = |status: &str| s.sum("model_requests_total", &[("status", status)]);
    assert_eq!(requests("error"), 0.0, "hang-ups counted as errors");
    let success = requests("success");
    let cancelled = requests("cancelled");
    assert!(cancelled > 0.0, "no hang-up was counted as cancelled");
    // A client can hang up before its request is read: the server never sees it.
    assert!(
        success + cancelled <= (TRANSACTIONS * (ROUNDS + 1)) as f64,
        "more outcomes than requests"
    );
    assert!(success >= (TRANSACTIONS + answered) as f64);
    assert_eq!(requests("timeout"), 0.0);
    let batches = s.sum("model_batch_size_count", &[]);
    let rows = s.sum("model_batch_size_sum", &[]);
    let inference = s.sum(
        "model_stage_duration_seconds_sum",
        &[("stage", "inference")],
    ) / success;
    eprintln!(
        "answered {answered}, hung up {hung_up}, cancelled {cancelled}, {rows} rows in {batches} batches, mean inference {:.2} ms per row's batch",
        inference * 1e3
    );
    assert_eq!(s.sum("model_active_requests", &[]), 0.0);
    assert_eq!(server.terminate(), Some(0));
}
