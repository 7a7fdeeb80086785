//! Prometheus and Alertmanager from Debian's packages, started on loopback with
//! temporary directories and stopped by their own process id.

use crate::support::{Stub, process_exists, require_binaries};
use modelwatch_stack::{
    AlertmanagerConfig, PrometheusConfig, ScrapeJob, alertmanager_alerts, firing_alerts,
    http_client, resolve_listen, start_alertmanager, start_prometheus, wait_for, wait_for_samples,
};
use std::time::Duration;

/// Generous bound for things that normally take a second or two; never a timing
/// assertion, only a way to fail instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);

const ALWAYS_FIRING: &str = "groups:
  - name: stack-test
    rules:
      - alert: StackTestAlwaysFiring
        expr: vector(1)
        labels:
          severity: info
        annotations:
          summary: fires from the first evaluation on
";

#[tokio::test]
async fn prometheus_scrapes_itself_and_a_static_target_and_stops_by_pid() {
    require_binaries();
    let fixture = Stub::serve("# TYPE stack_test_answer gauge\nstack_test_answer 42\n".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = resolve_listen("127.0.0.1:0".parse().expect("address")).expect("free port");
    let prometheus = start_prometheus(&PrometheusConfig {
        dir: dir.path().to_path_buf(),
        listen,
        scrape_jobs: vec![
            ScrapeJob::new("prometheus", [listen.to_string()]),
            ScrapeJob::new("fixture", [fixture.target()]),
        ],
        ..Default::default()
    })
    .expect("start prometheus");
    assert_eq!(prometheus.url(), format!("http://{listen}"));
    assert!(prometheus.dir().join("prometheus.yml").is_file());
    let client = http_client().expect("client");
    let up = wait_for_samples(
        &client,
        &prometheus.url(),
        "up{job=\"prometheus\"} == 1",
        PATIENCE,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", prometheus.log_tail(30)));
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].labels["instance"], listen.to_string());
    assert_eq!(up[0].value, 1.0);

    let answer = wait_for_samples(&client, &prometheus.url(), "stack_test_answer", PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", prometheus.log_tail(30)));
    assert_eq!(answer[0].labels["job"], "fixture");
    assert_eq!(answer[0].value, 42.0);

    let bad = modelwatch_stack::query(&client, &prometheus.url(), "sum(").await;
    assert!(bad.is_err(), "a syntax error is reported: {bad:?}");

    let pid = prometheus.pid();
    assert!(process_exists(pid));
    prometheus.stop();
    assert!(
        !process_exists(pid),
        "prometheus {pid} still runs after stop"
    );
}

#[tokio::test]
async fn alertmanager_receives_an_always_firing_alert_and_calls_the_webhook() {
    require_binaries();
    let webhook = Stub::serve(String::new());
    let am_dir = tempfile::tempdir().expect("tempdir");
    let alertmanager = start_alertmanager(&AlertmanagerConfig {
        dir: am_dir.path().to_path_buf(),
        webhook: Some(webhook.url("hook")),
        ..Default::default()
    })
    .expect("start alertmanager");

    let prom_dir = tempfile::tempdir().expect("tempdir");
    let rules = prom_dir.path().join("always.yaml");
    std::fs::write(&rules, ALWAYS_FIRING).expect("write the rule file");
    let prometheus = start_prometheus(&PrometheusConfig {
        dir: prom_dir.path().to_path_buf(),
        rule_files: vec![rules],
        alertmanagers: vec![alertmanager.address().to_string()],
        ..Default::default()
    })
    .expect("start prometheus");

    let client = http_client().expect("client");
    let firing = wait_for(
        "prometheus fires StackTestAlwaysFiring",
        PATIENCE,
        || async {
            let alerts = firing_alerts(&client, &prometheus.url()).await?;
            Ok(alerts
                .into_iter()
                .find(|a| a.name() == "StackTestAlwaysFiring"))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", prometheus.log_tail(30)));
    assert_eq!(firing.state, "firing");
    assert_eq!(firing.labels["severity"], "info");

    let received = wait_for("alertmanager holds the alert", PATIENCE, || async {
        let alerts = alertmanager_alerts(&client, &alertmanager.url()).await?;
        Ok(alerts
            .into_iter()
            .find(|a| a.name() == "StackTestAlwaysFiring"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", alertmanager.log_tail(30)));
    assert_eq!(received.state, "active");
    assert_eq!(
        received.annotations["summary"],
        "fires from the first evaluation on"
    );

    let notification = wait_for("the webhook is called", PATIENCE, || async {
        Ok(webhook.posts().into_iter().next())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", alertmanager.log_tail(30)));
    let body: serde_json::Value = serde_json::from_str(&notification).expect("webhook JSON");
    assert_eq!(body["receiver"], "modelwatch");
    assert_eq!(
        body["alerts"][0]["labels"]["alertname"],
        "StackTestAlwaysFiring"
    );

    let pids = [prometheus.pid(), alertmanager.pid()];
    drop(prometheus);
    drop(alertmanager);
    for pid in pids {
        assert!(!process_exists(pid), "process {pid} still runs after drop");
    }
}

#[test]
fn a_prometheus_that_exits_during_start_up_reports_its_log() {
    require_binaries();
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("broken.yaml");
    std::fs::write(
        &rules,
        "groups:\n  - name: broken\n    rules:\n      - record: x\n        expr: sum(\n",
    )
    .expect("write the rule file");
    let error = start_prometheus(&PrometheusConfig {
        dir: dir.path().to_path_buf(),
        rule_files: vec![rules],
        ..Default::default()
    })
    .expect_err("a broken rule file stops the start");
    let message = format!("{error:#}");
    assert!(message.contains("exited during start-up"), "{message}");
    assert!(
        message.contains("broken.yaml"),
        "the log tail names the file: {message}"
    );
}
