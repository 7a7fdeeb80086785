//! Every incident scenario against the real server and the real Prometheus, with the
//! mixin's windows compressed 60 times: each scenario's alert fires, the clean one
//! fires nothing, and `status` agrees with the alerts.
//!
//! The nine drills run at once, each in its own lab (server + Prometheus), so the
//! whole test takes about one drill's time. The table of detection delays is printed
//! and written to `target/scenario-report.md`.

use modelwatch_demo::{Lab, LabOptions};
use modelwatch_loadgen::{LoadConfig, Scenario, scenario::INCIDENT_START};
use modelwatch_status::Verdict;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SPEEDUP: f64 = 60.0;
const RUN: Duration = Duration::from_secs(150);
const RPS: f64 = 50.0;
/// Drills at once: all nine would starve two cores (and a starved server is a real
/// latency incident, which is not what the clean drill is about).
const PARALLEL: usize = 3;

/// What every drill shares: one simulated history and one seeded store.
struct Shared {
    simulator: modelwatch_sim::Simulator,
    history: modelwatch_sim::History,
    store: PathBuf,
    _dir: tempfile::TempDir,
}

fn shared() -> Shared {
    let population = modelwatch_sim::population::PopulationArgs::default().config();
    let dir = tempfile::tempdir().expect("tempdir");
    let store_path = modelwatch_testkit::store::population_store(dir.path(), population.clone());
    let simulator = modelwatch_sim::Simulator::new(population).expect("simulator");
    let history = simulator.generate();
    Shared {
        simulator,
        history,
        store: store_path,
        _dir: dir,
    }
}

#[derive(Debug)]
struct Drill {
    scenario: &'static str,
    expected: Option<&'static str>,
    detection: Option<Duration>,
    verdict: Option<Verdict>,
    baseline_alarms: Vec<String>,
    all_alerts: BTreeMap<String, Duration>,
}

async fn drill(
    name: &'static str,
    stream: u64,
    shared: std::sync::Arc<Shared>,
) -> anyhow::Result<Drill> {
    let scenario = Scenario::named(name).map_err(anyhow::Error::msg)?;
    let mut options = LabOptions::new(
        PathBuf::from(env!("CARGO_BIN_EXE_modelwatch")),
        1.0 / SPEEDUP,
    );
    options.with_prometheus = false;
    options.store_template = Some(shared.store.clone());
    let opts = options.clone();
    let mut lab = tokio::task::spawn_blocking(move || Lab::start(&opts, |_| {})).await??;
    let config = LoadConfig {
        target: lab.api.clone(),
        admin_target: Some(lab.metrics.clone()),
        rps: RPS,
        duration: RUN,
        max_requests: None,
        concurrency: 128,
        stream,
        progress: false,
    };
    let traffic = shared
        .simulator
        .traffic(&shared.history, shared.history.end_timestamp())
        .with_stream(stream)
        .with_rate(RPS / modelwatch_demo::lab::LAB_SIM_SPEED);
    let started = Instant::now();
    let incident_at = RUN.mul_f64(INCIDENT_START);
    let load = {
        let scenario = scenario.clone();
        tokio::spawn(async move {
            modelwatch_loadgen::run(&config, &scenario, traffic, |_, _| {}).await
        })
    };
    // Prometheus joins once traffic flows, as it would on a server in production.
    tokio::time::sleep(Duration::from_secs(2)).await;
    lab.start_prometheus(false, &mut |_| {})?;
    let prometheus = lab
        .prometheus_url()
        .ok_or_else(|| anyhow::anyhow!("prometheus did not start"))?;
    let client = modelwatch_stack::http_client()?;
    let status_args = modelwatch_status::cli::StatusArgs {
        prometheus: Some(prometheus.clone()),
        metrics: None,
        interval: Duration::from_secs(2),
        model: None,
        config: None,
        json: false,
        watch: None,
    };
    let mut result = Drill {
        scenario: name,
        expected: scenario.expected_alert,
        detection: None,
        verdict: None,
        baseline_alarms: Vec::new(),
        all_alerts: BTreeMap::new(),
    };
    while !load.is_finished() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let elapsed = started.elapsed();
        let firing = modelwatch_stack::firing_alerts(&client, &prometheus).await?;
        for alert in firing.iter().filter(|a| a.state == "firing") {
            let name = alert.name().to_string();
            result.all_alerts.entry(name.clone()).or_insert(elapsed);
            if elapsed < incident_at && !result.baseline_alarms.contains(&name) {
                result.baseline_alarms.push(name.clone());
            }
            if Some(name.as_str()) == scenario.expected_alert && result.detection.is_none() {
                result.detection = Some(elapsed.saturating_sub(incident_at));
                // Read the board while the incident is on.
                result.verdict = Some(
                    modelwatch_status::cli::read(&status_args, &lab.mixin)
                        .await?
                        .verdict,
                );
            }
        }
    }
    let report = load.await??;
    anyhow::ensure!(report.ok() > 0, "{name}: no request succeeded");
    if scenario.expected_alert.is_none() {
        result.verdict = Some(
            modelwatch_status::cli::read(&status_args, &lab.mixin)
                .await?
                .verdict,
        );
    }
    drop(lab);
    Ok(result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_scenario_fires_its_alert_and_clean_traffic_fires_nothing() {
    let names = modelwatch_loadgen::scenario::NAMES;
    let shared = std::sync::Arc::new(
        tokio::task::spawn_blocking(shared)
            .await
            .expect("shared setup"),
    );
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut tasks = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (shared, slots) = (shared.clone(), slots.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.expect("semaphore");
            drill(name, 100 + i as u64, shared).await
        }));
    }
    let mut drills = Vec::new();
    let mut failures = Vec::new();
    for (t, name) in tasks.into_iter().zip(names) {
        match t.await.expect("drill task") {
            Ok(d) => drills.push(d),
            Err(e) => failures.push(format!("{name}: {e:#}")),
        }
    }

    let mut table = String::from(
        "| scenario | expected alert | detection delay | status verdict | other alerts (first seen) |\n|---|---|---|---|---|\n",
    );
    for d in &drills {
        let others: Vec<String> = d
            .all_alerts
            .iter()
            .filter(|(n, _)| Some(n.as_str()) != d.expected)
            .map(|(n, t)| format!("{n} ({:.0} s)", t.as_secs_f64()))
            .collect();
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            d.scenario,
            d.expected.unwrap_or("none"),
            d.detection
                .map(|t| format!("{:.0} s", t.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
            d.verdict.map(Verdict::as_str).unwrap_or("-"),
            if others.is_empty() {
                "-".into()
            } else {
                others.join(", ")
            },
        ));
    }
    eprintln!("\n{table}");
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/scenario-report.md");
    let _ = std::fs::write(&target, &table);

    assert!(
        failures.is_empty(),
        "drills failed to run: {failures:#?}\n{table}"
    );
    for d in &drills {
        assert!(
            d.baseline_alarms.is_empty(),
            "{}: alerts fired on clean baseline traffic: {:?}\n{table}",
            d.scenario,
            d.baseline_alarms
        );
        match d.expected {
            Some(alert) => {
                assert!(
                    d.detection.is_some(),
                    "{}: {alert} never fired\n{table}",
                    d.scenario
                );
                assert_ne!(
                    d.verdict,
                    Some(Verdict::Healthy),
                    "{}: status said HEALTHY while {alert} fired\n{table}",
                    d.scenario
                );
            }
            None => {
                assert!(
                    d.all_alerts.is_empty(),
                    "clean traffic raised {:?}\n{table}",
                    d.all_alerts
                );
                assert_eq!(
                    d.verdict,
                    Some(Verdict::Healthy),
                    "clean traffic: status disagrees\n{table}"
                );
            }
        }
    }
}
