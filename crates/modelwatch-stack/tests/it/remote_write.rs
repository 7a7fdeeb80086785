//! Long-term storage stand-in: a Prometheus that scrapes a modelwatch endpoint and
//! evaluates the mixin remote-writes to a second Prometheus started with
//! `--web.enable-remote-write-receiver` (what Thanos Receive or Mimir would be), and
//! the fleet queries answer the same on both at the same evaluation time.

use crate::fixture;
use crate::support::{read, repo, require_binaries, yaml};
use modelwatch_stack::{
    PrometheusConfig, QuerySample, ScrapeJob, http_client, query_at, start_prometheus, wait_for,
    wait_for_samples,
};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

const PATIENCE: Duration = Duration::from_secs(90);

/// The `expr` of the recording rule `record` in mixin/prometheus/rules.yaml.
fn rule_expr(record: &str) -> String {
    let rules = yaml(&read("mixin/prometheus/rules.yaml"));
    rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .find(|r| r["record"] == record)
        .and_then(|r| r["expr"].as_str())
        .unwrap_or_else(|| panic!("no recording rule {record} in the mixin"))
        .to_string()
}

/// Samples keyed by their labels without `drop` (the sender's external label).
fn keyed(samples: &[QuerySample], drop: &str) -> BTreeMap<String, f64> {
    samples
        .iter()
        .map(|s| {
            let mut labels = s.labels.clone();
            labels.remove(drop);
            (format!("{labels:?}"), s.value)
        })
        .collect()
}

fn same(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, x)| {
            b.get(k)
                .is_some_and(|y| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0))
        })
}

#[tokio::test]
async fn fleet_queries_agree_on_the_remote_write_receiver() {
    require_binaries();
    let replica = fixture::replica();
    let receiver_dir = tempfile::tempdir().expect("tempdir");
    let receiver = start_prometheus(&PrometheusConfig {
        dir: receiver_dir.path().to_path_buf(),
        remote_write_receiver: true,
        ..Default::default()
    })
    .expect("start the receiver");
    let sender_dir = tempfile::tempdir().expect("tempdir");
    let sender = start_prometheus(&PrometheusConfig {
        dir: sender_dir.path().to_path_buf(),
        scrape_jobs: vec![ScrapeJob::new("modelwatch", [replica.target()])],
        rule_files: vec![
            repo("mixin/prometheus/rules.yaml"),
            repo("mixin/prometheus/alerts.yaml"),
        ],
        remote_write: vec![format!("{}/api/v1/write", receiver.url())],
        external_labels: BTreeMap::from([("cluster".to_string(), "local".to_string())]),
        ..Default::default()
    })
    .expect("start the sender");
    let client = http_client().expect("client");

    let requests = "model_version:model_requests:rate5m";
    let score_ratio = "model_version_bin:model_score_bin:ratio";
    let psi = "model_version:model_score:psi";
    // Wait until the rule chain has produced the fleet PSI on the sender.
    wait_for_samples(
        &client,
        &sender.url(),
        &format!("{psi} and {requests} > 0"),
        PATIENCE,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", sender.log_tail(30)));

    let queries = [
        // Recomputed on each server from the raw remote-written samples.
        rule_expr(requests),
        rule_expr(score_ratio),
        // Recorded by the sender and remote-written as series.
        requests.to_string(),
        psi.to_string(),
    ];
    // One evaluation time, a second in the past (so that the sender has appended
    // every sample up to it), at which every query has data on the sender.
    let at = wait_for("every query has data on the sender", PATIENCE, || async {
        let at = SystemTime::now() - Duration::from_secs(1);
        for promql in &queries {
            if query_at(&client, &sender.url(), promql, at)
                .await?
                .is_empty()
            {
                return Ok(None);
            }
        }
        Ok(Some(at))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", sender.log_tail(30)));
    for promql in &queries {
        let expected = query_at(&client, &sender.url(), promql, at)
            .await
            .expect("query the sender");
        assert!(
            !expected.is_empty(),
            "{promql} has data on the sender at {at:?}"
        );
        let expected = keyed(&expected, "cluster");
        let received = wait_for(
            &format!("the receiver answers {promql} like the sender"),
            PATIENCE,
            || async {
                let got = query_at(&client, &receiver.url(), promql, at).await?;
                Ok(same(&keyed(&got, "cluster"), &expected).then_some(got))
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\nexpected {expected:?}\n{}", sender.log_tail(30)));
        if !promql.contains('(') {
            // A recorded series arrives with the sender's external labels.
            assert!(
                received
                    .iter()
                    .all(|s| s.labels.get("cluster").map(String::as_str) == Some("local"))
            );
        }
    }
}
