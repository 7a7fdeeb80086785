//! Every incident scenario against the real server and the real Prometheus, with the
//! mixin's windows compressed 60 times: each scenario's alert fires, the clean one
//! fires nothing, and `status` agrees with the alerts.
//!
//! The drills run three at a time, each in its own lab (server + Prometheus), through
//! `modelwatch_demo::drill::run`, the library behind `modelwatch drill`. The table
//! of detection delays is printed and written to `target/scenario-report.md`.
//!
//! The two incidents in the labels (`concept_drift`, `label_delay`) send each
//! answer's label 2 s (two compressed minutes) after it and run longer: their alerts
//! read the 1d label window (24 min here), which the run does not fill. It does not
//! need to: coverage and realized-versus-estimated move as soon as the labels change,
//! and the 1h `for:` (a minute) is most of the delay.

use modelwatch_demo::LabOptions;
use modelwatch_demo::drill::{self, DrillPlan, DrillReport, Traffic};
use modelwatch_loadgen::Scenario;
use modelwatch_mixin::names::alert;
use modelwatch_status::Verdict;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const SPEEDUP: f64 = 60.0;
const RUN: Duration = Duration::from_secs(150);
/// The incidents in the labels: at 30% of the run the labels stop (or change), the
/// 1d coverage halves about as long after, and the alert's `for:` adds a minute.
const LABELS_RUN: Duration = Duration::from_secs(240);
/// Wall-clock time from an answer to its label: two compressed minutes.
const LABEL_DELAY: Duration = Duration::from_secs(2);
const RPS: f64 = 50.0;
/// Drills at once: all twelve would starve two cores (and a starved server is a real
/// latency incident, which is not what the clean drill is about). Two, because the
/// test script runs this binary beside the rest of the suite: with three, one run in
/// four saw the store time out (`ModelWatchFeatureStoreFailing`) and the latency
/// budget burn on clean traffic in the first 40 s.
const PARALLEL: usize = 2;

/// What every drill shares: one simulated history and one seeded store.
struct Shared {
    traffic: Traffic,
    store: PathBuf,
    _dir: tempfile::TempDir,
}

fn shared() -> Shared {
    let population = modelwatch_sim::population::PopulationArgs::default().config();
    let dir = tempfile::tempdir().expect("tempdir");
    let store_path = modelwatch_testkit::store::population_store(dir.path(), population.clone());
    Shared {
        traffic: Traffic::new(population).expect("simulated history"),
        store: store_path,
        _dir: dir,
    }
}

async fn drill(
    name: &'static str,
    stream: u64,
    shared: Arc<Shared>,
) -> anyhow::Result<DrillReport> {
    let scenario = Scenario::named(name).map_err(anyhow::Error::msg)?;
    let mut lab = LabOptions::new(
        PathBuf::from(env!("CARGO_BIN_EXE_modelwatch")),
        1.0 / SPEEDUP,
    );
    lab.with_prometheus = false;
    lab.store_template = Some(shared.store.clone());
    let labels = scenario
        .needs_labels()
        .then_some(modelwatch_loadgen::LabelConfig { delay: LABEL_DELAY });
    let plan = DrillPlan {
        run: if labels.is_some() { LABELS_RUN } else { RUN },
        scenario,
        rps: RPS,
        lab,
        stream,
        read_status: true,
        labels,
    };
    drill::run(&plan, &shared.traffic, |_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_scenario_fires_its_alert_and_clean_traffic_fires_nothing() {
    // The longest drills first, so that they do not end the run alone.
    let mut names: Vec<&'static str> = modelwatch_loadgen::scenario::NAMES.to_vec();
    names.sort_by_key(|n| {
        !Scenario::named(n)
            .map(|s| s.needs_labels())
            .unwrap_or(false)
    });
    let shared = Arc::new(
        tokio::task::spawn_blocking(shared)
            .await
            .expect("shared setup"),
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut tasks = Vec::new();
    for (i, &name) in names.iter().enumerate() {
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
        "| scenario | expected alert | detection delay | status verdict | other alerts fired (first seen) | pending after warm-up |\n|---|---|---|---|---|---|\n",
    );
    for d in &drills {
        let others: Vec<String> = d
            .alerts
            .iter()
            .filter(|(n, _)| Some(n.as_str()) != d.expected)
            .filter_map(|(n, t)| Some(format!("{n} ({:.0} s)", t.first_firing?.as_secs_f64())))
            .collect();
        let pending = d.pending_after_warm_up();
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
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
            if pending.is_empty() {
                "-".into()
            } else {
                pending.join(", ")
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
            d.false_alarms().is_empty(),
            "{}: alerts fired on clean baseline traffic: {:?}\n{table}",
            d.scenario,
            d.false_alarms()
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
                let fired: Vec<&String> = d
                    .alerts
                    .iter()
                    .filter(|(_, t)| t.first_firing.is_some())
                    .map(|(n, _)| n)
                    .collect();
                assert!(fired.is_empty(), "clean traffic raised {fired:?}\n{table}");
                assert_eq!(
                    d.verdict,
                    Some(Verdict::Healthy),
                    "clean traffic: status disagrees\n{table}"
                );
            }
        }
        // Concept drift is in the labels only: the scores did not move, so the score
        // drift alerts must stay quiet (the realized-versus-estimate alert is what
        // tells this incident apart from a drifting population).
        if d.scenario == "concept_drift" {
            let score_drift: Vec<&String> = d
                .alerts
                .keys()
                .filter(|n| {
                    [alert::SCORE_DRIFT_WARNING, alert::SCORE_DRIFT_CRITICAL].contains(&n.as_str())
                        && d.alerts[n.as_str()].first_firing.is_some()
                })
                .collect();
            assert!(
                score_drift.is_empty(),
                "concept_drift: the scores did not move, yet {score_drift:?} fired\n{table}"
            );
        }
    }
}
