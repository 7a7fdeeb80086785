//! Feature stores in a real `redis-server` (Debian's package), started by the test
//! kit on loopback: modelwatch's own layout (written by `features load` and the
//! simulator's seeding), Feast's online store written by the Feast SDK itself, TLS
//! with a password, and a store killed with SIGKILL under load and restarted.

use modelwatch_server::store::FeatureStore as _;
use modelwatch_server::store::redis::{Layout, RedisStore, RedisTarget};
use modelwatch_testkit::Serve;
use modelwatch_testkit::redis::Redis;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_modelwatch"))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// Runs `modelwatch args` that must fail at start-up: waits at most 60 s, then
/// kills it by its pid (a server that started would otherwise run for ever).
fn fails_to_start(args: &[&str]) -> String {
    let mut child = Command::new(binary())
        .args(args)
        .env_remove("MODELWATCH_REDIS_PASSWORD")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("modelwatch runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().expect("piped"), &mut stderr)
                .expect("stderr");
            assert!(
                !status.success(),
                "modelwatch {args:?} succeeded:\n{stderr}"
            );
            return stderr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("modelwatch {args:?} did not stop within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn workspace() -> PathBuf {
    modelwatch_testkit::workspace_root()
}

fn modelwatch(args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .env_remove("MODELWATCH_REDIS_PASSWORD")
        .output()
        .expect("modelwatch runs")
}

/// A small simulated population, so seeding Redis takes a moment.
const POPULATION: [&str; 6] = [
    "--sim-customers",
    "300",
    "--sim-terminals",
    "200",
    "--sim-days",
    "10",
];

async fn scrape(
    client: &reqwest::Client,
    serve: &Serve,
) -> modelwatch_testkit::exposition::Exposition {
    modelwatch_testkit::exposition::scrape(client, &serve.metrics).await
}

async fn predict(
    client: &reqwest::Client,
    serve: &Serve,
    customer: &str,
    terminal: &str,
) -> (u16, serde_json::Value) {
    let r = client
        .post(format!("{}/v1/predict", serve.api))
        .json(&serde_json::json!({
            "customer_id": customer,
            "terminal_id": terminal,
            "amount": 87.5,
            "timestamp": "2026-12-01T12:00:00Z",
        }))
        .send()
        .await
        .expect("an answer");
    let status = r.status().as_u16();
    (status, r.json().await.expect("a JSON body"))
}

const CUSTOMER_CSV: &str = "customer_id,event_time,customer_nb_tx_1d,customer_avg_amount_1d,customer_nb_tx_7d,customer_avg_amount_7d,customer_nb_tx_30d,customer_avg_amount_30d\n\
C777777,2026-12-01T00:00:00Z,2,35.5,9,40,31,42.25\n\
C777778,2026-12-01T01:00:00Z,7,310.5,30,280,95,260\n";
const TERMINAL_CSV: &str = "terminal_id,event_time,terminal_nb_tx_1d,terminal_risk_1d,terminal_nb_tx_7d,terminal_risk_7d,terminal_nb_tx_30d,terminal_risk_30d\n\
T77777,2026-12-01T00:00:00Z,3,0.5,10,0.25,40,0.125\n";

fn load(store: &str, dir: &Path, group: &str, csv: &str) {
    let file = dir.join(format!("{group}.csv"));
    std::fs::write(&file, csv).expect("csv");
    let card = workspace().join("models/fraud.card.json");
    let out = modelwatch(&[
        "features",
        "load",
        "--model",
        card.to_str().expect("utf-8"),
        "--group",
        group,
        "--feature-store",
        store,
        file.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "features load into {store}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Our layout: `features load` writes hashes a person can read; `serve` reads them,
/// scoring exactly as from the embedded store loaded with the same file, and dates
/// them with their own event times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_layout_is_served_like_the_embedded_store() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite:{}", dir.path().join("features.sqlite").display());
    for store in [redis.url(), sqlite.clone()] {
        load(&store, dir.path(), "customer", CUSTOMER_CSV);
        load(&store, dir.path(), "terminal", TERMINAL_CSV);
    }
    let hash = redis.cli(&["HGETALL", "modelwatch:customer:C777777"]);
    let fields: Vec<&str> = hash.lines().collect();
    let field = |name: &str| {
        let at = fields
            .iter()
            .position(|f| *f == name)
            .unwrap_or_else(|| panic!("{name} in {hash}"));
        fields[at + 1]
    };
    assert_eq!(field("_event_time"), "1796083200");
    assert_eq!(field("customer_avg_amount_30d"), "42.25");
    assert_eq!(field("customer_nb_tx_1d"), "2");

    let url = redis.url();
    let from_redis = Serve::start(
        binary(),
        &[&["--feature-store", url.as_str()][..], &POPULATION].concat(),
    );
    let from_sqlite = Serve::start(binary(), &["--feature-store", &sqlite]);
    let client = reqwest::Client::new();
    for (customer, terminal) in [
        ("C777777", "T77777"),
        ("C777778", "T77777"),
        ("C777778", "T99999"),
        ("C999999", "T99999"),
    ] {
        let (status, a) = predict(&client, &from_redis, customer, terminal).await;
        assert_eq!(status, 200, "{a}");
        let (status, b) = predict(&client, &from_sqlite, customer, terminal).await;
        assert_eq!(status, 200, "{b}");
        assert_eq!(a["score"], b["score"], "{customer} {terminal}");
    }
    // Known and unknown entities score differently: the values were read.
    let (_, known) = predict(&client, &from_redis, "C777778", "T77777").await;
    let (_, unknown) = predict(&client, &from_redis, "C999999", "T99999").await;
    assert_ne!(known["score"], unknown["score"]);
    // The loaded groups were not seeded (they were not empty), nor refreshed.
    let metrics = scrape(&client, &from_redis).await;
    let now = now();
    let age = metrics
        .value(
            "model_feature_age_seconds",
            &[("model", "fraud"), ("feature_group", "customer")],
        )
        .expect("a customer age");
    // Between the ages of the two loaded customers (an hour apart).
    let (youngest, oldest) = ((now - 1_796_086_800) as f64, (now - 1_796_083_200) as f64);
    assert!(
        age >= youngest - 60.0 && age <= oldest + 60.0,
        "customer age {age}, expected {youngest} to {oldest} (from the stored event times)"
    );
    assert_eq!(
        metrics.sum("model_feature_store_errors_total", &[("model", "fraud")]),
        0.0
    );
}

/// TLS with a password from a file: served; without the password, `serve` stops at
/// once with a hint; a password in the URL is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_a_password_from_a_file() {
    let redis = Redis::start_secure();
    let secure = redis.secure().expect("secure").clone();
    let password_file = redis.dir().join("password");
    std::fs::write(&password_file, format!("{}\n", secure.password)).expect("password file");
    let url = redis.url();
    assert!(url.starts_with("rediss://"));
    let args = [
        &[
            "--feature-store",
            url.as_str(),
            "--redis-password-file",
            password_file.to_str().expect("utf-8"),
            "--redis-ca-file",
            secure.ca.to_str().expect("utf-8"),
        ][..],
        &POPULATION,
    ]
    .concat();
    let serve = Serve::start(binary(), &args);
    let client = reqwest::Client::new();
    // Seeded through TLS: the simulated customers are in Redis and scored.
    let keys: u64 = redis.cli(&["DBSIZE"]).trim().parse().expect("a count");
    assert!(
        keys >= 500,
        "{keys} keys after seeding 300 customers and 200 terminals"
    );
    let (status, body) = predict(&client, &serve, "C000001", "T00001").await;
    assert_eq!(status, 200, "{body}");
    let metrics = scrape(&client, &serve).await;
    assert_eq!(
        metrics.sum("model_feature_store_errors_total", &[("model", "fraud")]),
        0.0
    );
    drop(serve);

    let card = workspace().join("models/fraud.card.json");
    let ca = secure.ca.to_str().expect("utf-8");
    // No password: the seeding check fails, and `serve` says what to do.
    let data = tempfile::tempdir().expect("temp dir");
    let stderr = fails_to_start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--data-dir",
        data.path().to_str().expect("utf-8"),
        "--feature-store",
        &url,
        "--redis-ca-file",
        ca,
        "--model",
        card.to_str().expect("utf-8"),
    ]);
    assert!(stderr.contains("hint:"), "{stderr}");
    // A password on the command line is refused before anything is reached.
    let with_password = url.replace("rediss://", "rediss://default:secret@");
    let out = modelwatch(&[
        "features",
        "load",
        "--model",
        card.to_str().expect("utf-8"),
        "--group",
        "customer",
        "--feature-store",
        &with_password,
        "missing.csv",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("holds a password") && stderr.contains("--redis-password-file"),
        "{stderr}"
    );
}

/// Feast's layout, written by Feast itself (`feast apply`, `feast materialize` from
/// Parquet): our reader returns the values and event times Feast's own
/// `get_online_features` returns, and `serve` scores from it through the card's
/// `feast` mapping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feasts_online_store_reads_as_feast_reads_it() {
    let requirements = "crates/modelwatch-cli/tests/feast/requirements.txt";
    let Some(python) = modelwatch_testkit::venv::python(
        "the Feast online store test",
        &["feast", "pandas", "pyarrow"],
        requirements,
    ) else {
        return;
    };
    let redis = Redis::start();
    let project = "fraudfeast";
    let entities = serde_json::json!({
        "customer": [
            {"id": "C000001", "event_time": 1_796_083_200, "values": [2, 35.5, 9, 40, 31, 42.25]},
            {"id": "C000002", "event_time": 1_796_086_800, "values": [1, null, 3, 4.5, 6, 7.25]},
        ],
        "terminal": [
            {"id": "T00001", "event_time": 1_796_090_400, "values": [3, 0.5, 10, 0.25, 40, 0.125]},
        ],
    });
    let repo = redis.dir().join("feast-repo");
    let out = Command::new(&python)
        .arg(workspace().join("crates/modelwatch-cli/tests/feast/feast_repo.py"))
        .arg(&repo)
        .arg(redis.port.to_string())
        .arg(project)
        .arg(entities.to_string())
        .env("FEAST_USAGE", "False")
        .env("FEAST_DISABLE_TELEMETRY", "1")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "feast_repo.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let feast: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON from feast_repo.py");

    // The card names the feature views (they are not named as the groups).
    let models = tempfile::tempdir().expect("temp dir");
    for file in ["fraud.onnx", "fraud.reference.json"] {
        std::fs::copy(
            workspace().join("models").join(file),
            models.path().join(file),
        )
        .expect("copy");
    }
    let mut card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("models/fraud.card.json")).expect("card"),
    )
    .expect("card JSON");
    card["groups"]["customer"]["feast"] =
        serde_json::json!({"feature_view": "fraud_customer_stats"});
    card["groups"]["terminal"]["feast"] =
        serde_json::json!({"feature_view": "fraud_terminal_stats", "join_key": "terminal_id"});
    let card_path = models.path().join("fraud.card.json");
    std::fs::write(&card_path, card.to_string()).expect("card");
    let parsed = modelwatch_runtime::ModelCard::load(&card_path).expect("the card loads");
    let layout = modelwatch_server::features::FeatureLayout::from_card(&parsed).expect("layout");

    let target = RedisTarget {
        url: format!("redis://127.0.0.1:{}/0", redis.port),
        password: None,
        ca_pem: None,
    };
    let groups = layout
        .entity_groups
        .iter()
        .map(|(_, g)| (g.name.clone(), g.feast.clone()))
        .collect();
    let features = layout
        .entity_groups
        .iter()
        .map(|(_, g)| (g.name.clone(), g.features.clone()))
        .collect();
    let store = RedisStore::connect(
        &target,
        Layout::Feast {
            project: project.into(),
            groups,
        },
        features,
        Duration::from_secs(2),
    )
    .await
    .expect("connect");
    let mut compared = 0;
    for group in ["customer", "terminal"] {
        for row in feast[group].as_array().expect("rows") {
            let id = row["id"].as_str().expect("id");
            let ours = store.get(group, id).await.expect("a read");
            match row["event_time"].as_i64() {
                None => assert_eq!(ours, None, "{group} {id}: Feast knows no such entity"),
                Some(event_time) => {
                    let ours = ours.unwrap_or_else(|| panic!("{group} {id} unknown to us"));
                    assert_eq!(ours.event_time, event_time, "{group} {id}");
                    let theirs: Vec<Option<f64>> = row["values"]
                        .as_array()
                        .expect("values")
                        .iter()
                        .map(serde_json::Value::as_f64)
                        .collect();
                    assert_eq!(ours.values.len(), theirs.len());
                    for (ours, theirs) in ours.values.iter().zip(&theirs) {
                        match theirs {
                            None => {
                                assert!(ours.is_nan(), "{group} {id}: {ours} where Feast has null")
                            }
                            Some(v) => assert_eq!(*ours, *v as f32, "{group} {id}"),
                        }
                    }
                }
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 5, "3 known entities and 2 unknown ones");

    let url = format!("feast+redis://127.0.0.1:{}/0?project={project}", redis.port);
    let serve = Serve::start(
        binary(),
        &[
            "--feature-store",
            &url,
            "--model",
            card_path.to_str().expect("utf-8"),
        ],
    );
    let client = reqwest::Client::new();
    let (status, known) = predict(&client, &serve, "C000001", "T00001").await;
    assert_eq!(status, 200, "{known}");
    let (status, unknown) = predict(&client, &serve, "C999999", "T99999").await;
    assert_eq!(status, 200, "{unknown}");
    assert_ne!(known["score"], unknown["score"]);
    let metrics = scrape(&client, &serve).await;
    let now = now();
    let age = metrics
        .value(
            "model_feature_age_seconds",
            &[("model", "fraud"), ("feature_group", "terminal")],
        )
        .expect("a terminal age");
    let expected = (now - 1_796_090_400) as f64;
    assert!(
        (age - expected).abs() < 600.0,
        "terminal age {age}, expected about {expected}"
    );
    assert_eq!(
        metrics.sum("model_feature_store_errors_total", &[("model", "fraud")]),
        0.0
    );
}

/// Issue 15: Redis killed with SIGKILL under a bounded load, then restarted on the
/// same port. Every request is answered (within its deadline: the server's own
/// 504 would say otherwise), failures are shed with 503 and counted by kind, the
/// breaker opens and closes, and service comes back without restarting `serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_killed_under_load_is_shed_then_recovers() {
    let mut redis = Redis::start();
    let url = redis.url();
    let serve = Serve::start(
        binary(),
        &[
            &[
                "--feature-store",
                url.as_str(),
                "--store-failure",
                "shed",
                "--store-timeout",
                "50ms",
                "--request-timeout",
                "500ms",
                "--store-breaker-failures",
                "3",
                "--store-breaker-cooldown",
                "300ms",
                // Every lookup goes to the store.
                "--cache-ttl",
                "1ms",
            ][..],
            &POPULATION,
        ]
        .concat(),
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // A bounded load: 4 workers of at most 2,500 requests each, until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4u32 {
        let (client, api, tx, stop) = (client.clone(), serve.api.clone(), tx.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..2_500u32 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let n = (w * 2_500 + i) % 300;
                let sent = Instant::now();
                let answer = client
                    .post(format!("{api}/v1/predict"))
                    .json(&serde_json::json!({
                        "customer_id": modelwatch_testkit::store::customer_id(n),
                        "terminal_id": modelwatch_testkit::store::terminal_id(n % 200),
                        "amount": 20.0 + f64::from(n),
                    }))
                    .send()
                    .await;
                let status = match answer {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body: serde_json::Value = r.json().await.expect("a JSON body");
                        if status == 503 {
                            assert_eq!(
                                body["error"]["type"], "feature_store_unavailable",
                                "{body}"
                            );
                        }
                        status
                    }
                    Err(e) => panic!("request {i} of worker {w} got no answer: {e}"),
                };
                let _ = tx.send((sent, sent.elapsed(), status));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    drop(tx);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    redis.kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let during = scrape(&client, &serve).await;
    let open = during.value("model_feature_store_breaker_open", &[("model", "fraud")]);
    redis.restart();
    let restarted = Instant::now();
    // Bounded: wait up to 20 s for successes after the restart, then 1 s more.
    let mut answers = Vec::new();
    let mut recovered = None;
    let deadline = restarted + Duration::from_secs(20);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            Ok(Some(answer)) => {
                if recovered.is_none() && answer.2 == 200 && answer.0 > restarted {
                    recovered = Some(answer.0 + answer.1 - restarted);
                }
                answers.push(answer);
            }
            Ok(None) => break,
            Err(_) => {}
        }
        if recovered.is_some_and(|r| Instant::now() > restarted + r + Duration::from_secs(1)) {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("a worker");
    }
    while let Some(answer) = rx.recv().await {
        answers.push(answer);
    }
    let after = scrape(&client, &serve).await;

    let count = |from: Instant, to: Instant, status: u16| {
        answers
            .iter()
            .filter(|(sent, _, s)| *sent >= from && *sent < to && *s == status)
            .count()
    };
    let before_ok = count(started, killed, 200);
    let outage_shed = count(killed, restarted, 503);
    assert!(before_ok > 0, "no success before the kill");
    assert!(outage_shed > 0, "nothing shed while Redis was down");
    let timeouts = answers.iter().filter(|a| a.2 == 504).count();
    let other: Vec<u16> = answers
        .iter()
        .map(|a| a.2)
        .filter(|s| ![200, 503].contains(s))
        .collect();
    assert!(
        other.is_empty(),
        "answers other than 200 and 503: {other:?}"
    );
    let recovered = recovered.expect("no success within 20 s of the restart");
    let kind = |k: &str| {
        after.sum(
            "model_feature_store_errors_total",
            &[("model", "fraud"), ("kind", k)],
        )
    };
    assert!(
        kind("unavailable") + kind("timeout") > 0.0,
        "no store error counted"
    );
    assert!(
        kind("circuit_open") > 0.0,
        "the breaker never refused a call"
    );
    assert_eq!(
        open,
        Some(1.0),
        "the breaker was not open during the outage"
    );
    assert_eq!(
        after.value("model_feature_store_breaker_open", &[("model", "fraud")]),
        Some(0.0),
        "the breaker did not close"
    );
    let errors = after.sum(
        "model_requests_total",
        &[("model", "fraud"), ("status", "error")],
    );
    assert!(
        errors >= outage_shed as f64,
        "{errors} errors counted, {outage_shed} shed"
    );
    let mut latencies: Vec<Duration> = answers.iter().map(|a| a.1).collect();
    latencies.sort_unstable();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "store_down: {} answers ({before_ok} ok before the kill, {outage_shed} shed while down, {timeouts} timeouts), client p99 {p99:?}, max {:?}, success {recovered:?} after the restart; errors by kind: unavailable {}, timeout {}, circuit_open {}",
        answers.len(),
        latencies.last().copied().unwrap_or_default(),
        kind("unavailable"),
        kind("timeout"),
        kind("circuit_open"),
    );
}
