//! The original case, end to end: the FastAPI fraud server of
//! `examples/fastapi-fraud` (a scikit-learn model, prometheus_client, and the
//! modelwatch Python client) under uvicorn, `modelwatch serve` as its collector (the
//! example's monitor-only card), and a real Prometheus with the generated rules
//! (windows compressed 60 times). Bounded traffic from the example's driver, then:
//! every recording rule and dashboard panel query returns data for the example's
//! model; then amounts shifted 4 times, and the feature drift alert's expression
//! turns true for `amount`.

use modelwatch_mixin::names::{alert, record};
use modelwatch_mixin::recording::recording_rules;
use modelwatch_mixin::rules::Rule;
use modelwatch_stack::{PrometheusConfig, ScrapeJob};
use modelwatch_testkit::serve::Serve;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXAMPLE: &str = "examples/fastapi-fraud";
const MODEL: &str = "fraud-fastapi";
const TIME_SCALE: f64 = 1.0 / 60.0;
/// How long every query may take to return data once traffic flows.
const SETTLE: Duration = Duration::from_secs(120);

/// Runs the example's driver to its end (it is bounded by `--count`) and returns
/// its JSON summary; fails with its output when it fails.
fn drive(python: &Path, app: &str, extra: &[&str]) -> serde_json::Value {
    let root = modelwatch_testkit::workspace_root();
    let out = Command::new(python)
        .arg(root.join(EXAMPLE).join("drive.py"))
        .args(["--url", app])
        .args(extra)
        .current_dir(root.join(EXAMPLE))
        .output()
        .expect("run drive.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "drive.py {extra:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("drive.py printed {line:?}: {e}"))
}

/// Transactions per run of the driver, at [`RATE`] a second.
const TRAFFIC: u32 = 4800;
const RATE: u32 = 60;

/// [`drive`] on a blocking thread: [`TRAFFIC`] transactions at [`RATE`], each
/// prediction's label sent to `labels` (serve's API) 2 s after its answer, and
/// `extra` flags.
fn drive_in_background(
    python: &Path,
    app: &str,
    labels: &str,
    extra: &[&str],
) -> tokio::task::JoinHandle<serde_json::Value> {
    let (python, app) = (python.to_path_buf(), app.to_string());
    let args: Vec<String> = [
        "--count",
        &TRAFFIC.to_string(),
        "--rate",
        &RATE.to_string(),
        "--labels",
        labels,
        "--label-delay",
        "2",
    ]
    .iter()
    .chain(extra)
    .map(|a| a.to_string())
    .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        drive(&python, &app, &args)
    })
}

/// Waits (bounded) until the app answers /metrics.
async fn wait_for_app(client: &reqwest::Client, app: &str, uvicorn: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{app}/metrics")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        if let Ok(Some(status)) = uvicorn.try_wait() {
            panic!("uvicorn exited during start-up: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the FastAPI app did not start within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fastapi_example_is_watched_through_the_collector() {
    let Some(python) = modelwatch_testkit::venv::python(
        "the FastAPI example",
        &[
            "fastapi",
            "uvicorn",
            "sklearn",
            "prometheus_client",
            "joblib",
        ],
        "examples/fastapi-fraud/requirements.txt",
    ) else {
        return;
    };
    let root = modelwatch_testkit::workspace_root();
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_modelwatch"));
    let drift_window = format!("{}s", ((3600.0 * TIME_SCALE) as u64).max(60));
    let repository = root.join(EXAMPLE).join("model");
    let serve = Serve::start(
        &binary,
        &[
            "--model-repository",
            repository.to_str().expect("path"),
            "--drift-window",
            &drift_window,
        ],
    );

    // The app, with the client pointed at the collector.
    let port = modelwatch_testkit::free_port();
    let app = format!("http://127.0.0.1:{port}");
    let mut uvicorn = Command::new(&python)
        .args(["-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--log-level", "warning"])
        .current_dir(root.join(EXAMPLE))
        .env("MODELWATCH_URL", &serve.api)
        .env("MODELWATCH_MODEL", MODEL)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start uvicorn");
    let client = modelwatch_stack::http_client().expect("client");
    wait_for_app(&client, &app, &mut uvicorn).await;
    let _uvicorn = modelwatch_testkit::KillOnDrop(uvicorn);

    // Prometheus with the rules and alerts, scraping the collector and the app.
    let mut mixin = modelwatch_mixin::MixinConfig {
        time_scale: TIME_SCALE,
        ..modelwatch_mixin::MixinConfig::default()
    };
    mixin.drift.comparison_offset = modelwatch_mixin::PromDuration::from_secs(2400);
    mixin.features.max_age_default = modelwatch_mixin::PromDuration::from_secs(3600);
    let dir = tempfile::tempdir().expect("tempdir");
    let files = modelwatch_mixin::generate(&mixin).expect("generate");
    modelwatch_mixin::write(&dir.path().join("mixin"), &files).expect("write");
    std::fs::create_dir_all(dir.path().join("prometheus")).expect("dir");
    let target = |url: &str| url.trim_start_matches("http://").to_string();
    let prometheus = modelwatch_stack::start_prometheus(&PrometheusConfig {
        dir: dir.path().join("prometheus"),
        scrape_jobs: vec![
            ScrapeJob::new("modelwatch", vec![target(&serve.metrics)]),
            ScrapeJob::new("fastapi", vec![target(&app)]),
        ],
        rule_files: vec![
            dir.path().join("mixin").join(modelwatch_mixin::RULES_PATH),
            dir.path().join("mixin").join(modelwatch_mixin::ALERTS_PATH),
        ],
        ..PrometheusConfig::default()
    })
    .expect("prometheus starts (hint: bash scripts/test.sh installs it)");
    let prom = prometheus.url();

    // Clean traffic in the background: bounded by --count.
    // Each prediction's ground truth goes to the collector's feedback API 2 s after
    // its answer: the ground-truth row's data.
    let labels = serve.api.clone();
    let clean = drive_in_background(&python, &app, &labels, &[]);

    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repository.join(format!("{MODEL}.card.json"))).expect("card"),
    )
    .expect("card JSON");
    let version = card["version"].as_str().expect("version").to_string();
    let dashboard: serde_json::Value = serde_json::from_str(
        &files
            .iter()
            .find(|f| f.path == modelwatch_mixin::DASHBOARD_PATH)
            .expect("dashboard")
            .contents,
    )
    .expect("json");
    let variables = [
        ("datasource", ""),
        ("__rate_interval", "20s"),
        ("__interval", "5s"),
        ("__range", "1m"),
        ("model", MODEL),
        ("version", version.as_str()),
    ];
    let mut pending: Vec<(String, String)> = Vec::new();
    for (title, expr) in modelwatch_testkit::dashboard::live_queries(&dashboard) {
        let expr = modelwatch_testkit::dashboard::substitute(&expr, &variables);
        pending.push((format!("panel {title}"), expr));
    }
    // A regressor's error rules: the example is a classifier.
    let regression: Vec<&str> = record::TRUTH_WINDOWS
        .iter()
        .flat_map(|w| [w.mae, w.rmse])
        .collect();
    for group in recording_rules(&mixin) {
        for rule in group.rules {
            if let Rule::Record(r) = rule
                && !regression.contains(&r.record)
            {
                pending.push((
                    format!("rule {}", r.record),
                    format!("{}{{model=\"{MODEL}\"}}", r.record),
                ));
            }
        }
    }
    let total = pending.len();
    let started = Instant::now();
    while !pending.is_empty() && started.elapsed() < SETTLE {
        let mut still = Vec::new();
        for (origin, expr) in pending {
            let data = modelwatch_stack::query(&client, &prom, &expr)
                .await
                .unwrap_or_default();
            if data.is_empty() {
                still.push((origin, expr));
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(
        pending.is_empty(),
        "{} of {total} queries never returned data for {MODEL}: {pending:#?}\n{}",
        pending.len(),
        serve.stderr_tail()
    );
    let summary = clean.await.expect("join");
    eprintln!("clean traffic: {summary}");
    assert_eq!(summary["labels"]["labels_sent"], summary["ok"], "{summary}");

    // The drift: amounts times 4. The feature drift alert's expression turns true
    // for `amount` of this model.
    let rule = modelwatch_mixin::alerts::alerting_rules(&mixin)
        .into_iter()
        .flat_map(|g| g.rules)
        .find_map(|r| match r {
            Rule::Alert(a) if a.alert == alert::FEATURE_DRIFT_WARNING => Some(a),
            _ => None,
        })
        .expect("the feature drift alert");
    let drifted = drive_in_background(
        &python,
        &app,
        &labels,
        &["--drift-amount", "4", "--skip", &TRAFFIC.to_string()],
    );
    let expr = format!("({})", rule.expr);
    let started = Instant::now();
    let mut fired = false;
    while started.elapsed() < SETTLE {
        let data = modelwatch_stack::query(&client, &prom, &expr)
            .await
            .unwrap_or_default();
        if data.iter().any(|s| {
            s.labels.get("model").map(String::as_str) == Some(MODEL)
                && s.labels.get("feature").map(String::as_str) == Some("amount")
        }) {
            fired = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(
        fired,
        "the feature drift expression never held for amount: {expr}"
    );
    let summary = drifted.await.expect("join");
    eprintln!("drifted traffic: {summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
}
