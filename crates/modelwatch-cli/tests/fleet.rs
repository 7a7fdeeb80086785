//! Three `modelwatch serve` replicas, each serving two models (`--model-repository`:
//! the bundled fraud model and a random forest with its own decision names), under
//! bounded load, one real Prometheus with the generated rules (windows compressed 60
//! times): every recording rule returns separate series for each model, every
//! dashboard query returns data for each model and only that model's series, the
//! fleet PSI from PromQL equals the PSI of the raw counters, and the fleet p99 falls
//! in the bucket the replicas' own summed histograms put it in (give or take one),
//! and in no bucket above what the load generator saw.

use modelwatch::schema;
use modelwatch_demo::{Lab, LabOptions};
use modelwatch_loadgen::{LoadConfig, Scenario};
use modelwatch_mixin::names::record;
use modelwatch_mixin::recording::recording_rules;
use modelwatch_mixin::rules::Rule;
use modelwatch_stack::{PrometheusConfig, QuerySample, ScrapeJob};
use modelwatch_testkit::models::{SECOND_DECISIONS, SECOND_MODEL, two_model_repository};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const REPLICAS: usize = 3;
const RPS: f64 = 80.0;
const RUN: Duration = Duration::from_secs(90);
/// The second model's load per replica: a batch of this many rows...
const SECOND_BATCH: usize = 8;
/// ...every this long (16 predictions a second).
const SECOND_EVERY: Duration = Duration::from_millis(500);

/// Bounded load on the second model of one replica, through the generic batch
/// endpoint, until `run` is over: known customers and terminals in the store's
/// formats, with one row in eight made up. Returns the rows scored.
async fn second_model_load(api: String, stream: u32, run: Duration) -> usize {
    use modelwatch_testkit::store::{customer_id, terminal_id};
    let client = reqwest::Client::new();
    let url = format!("{api}/v1/models/{SECOND_MODEL}/predict/batch");
    let started = Instant::now();
    let (mut scored, mut n) = (0, stream * 1_000_003);
    let mut ticker = tokio::time::interval(SECOND_EVERY);
    while started.elapsed() < run {
        ticker.tick().await;
        let rows: Vec<_> = (0..SECOND_BATCH)
            .map(|i| {
                n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let (customer, terminal) = if i == 0 {
                    (
                        customer_id(900_000 + n % 1000),
                        terminal_id(90_000 + n % 1000),
                    )
                } else {
                    (customer_id(n % 4_000), terminal_id(n % 8_000))
                };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                serde_json::json!({
                    "features": {"amount": 5.0 + f64::from(n % 20_000) / 100.0, "timestamp": now},
                    "entities": {"customer_id": customer, "terminal_id": terminal},
                })
            })
            .collect();
        let answer = client
            .post(&url)
            .json(&serde_json::json!({ "rows": rows }))
            .send()
            .await;
        let Ok(answer) = answer else { continue };
        if !answer.status().is_success() {
            continue;
        }
        scored += SECOND_BATCH;
        // Each prediction's label at once, one in four positive, so the ground-truth
        // row has data for this model too.
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        let labels: Vec<_> = body["predictions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let id = p["prediction_id"].as_str()?;
                Some(serde_json::json!({"prediction_id": id, "label": (n as usize + i) % 4 == 0}))
            })
            .collect();
        if !labels.is_empty() {
            let _ = client
                .post(format!("{api}/v1/feedback/batch"))
                .json(&serde_json::json!({ "labels": labels }))
                .send()
                .await;
        }
    }
    scored
}

fn psi_of(rates: &[QuerySample], reference: &[QuerySample]) -> f64 {
    let total: f64 = rates.iter().map(|s| s.value).sum();
    let (mut p, mut q) = (Vec::new(), Vec::new());
    for rate in rates {
        let bin = &rate.labels["bin"];
        let r = reference
            .iter()
            .find(|s| &s.labels["bin"] == bin)
            .expect("a reference ratio per bin");
        p.push(rate.value / total);
        q.push(r.value);
    }
    modelwatch::drift::psi(&p, &q)
}

/// The latency bucket that holds `seconds` (index of the first bound >= it).
fn bucket(seconds: f64) -> usize {
    modelwatch::buckets::LATENCY_SECONDS.partition_point(|b| *b < seconds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_aggregate_correctly_in_prometheus() {
    let models = tempfile::tempdir().expect("tempdir");
    let repository = two_model_repository(models.path());
    let options = {
        let mut o = LabOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_modelwatch")), 1.0 / 60.0);
        o.with_prometheus = false;
        o.serve_args = vec![
            "--model-repository".into(),
            repository.display().to_string(),
        ];
        o
    };
    let mut labs = Vec::new();
    for _ in 0..REPLICAS {
        let opts = options.clone();
        labs.push(tokio::task::spawn_blocking(move || {
            Lab::start(&opts, |_| {})
        }));
    }
    let mut replicas = Vec::new();
    for l in labs {
        replicas.push(l.await.expect("join").expect("replica starts"));
    }
    let mut mixin = options.mixin_config();
    // The second model's "below the threshold" decision is an approval too.
    mixin
        .serving
        .approved_decisions
        .push(SECOND_DECISIONS[0].into());
    let dir = tempfile::tempdir().expect("tempdir");
    let files = modelwatch_mixin::generate(&mixin).expect("generate");
    modelwatch_mixin::write(&dir.path().join("mixin"), &files).expect("write");
    std::fs::create_dir_all(dir.path().join("prometheus")).expect("dir");
    let targets: Vec<String> = replicas
        .iter()
        .map(|r| r.metrics.trim_start_matches("http://").to_string())
        .collect();
    let prometheus = modelwatch_stack::start_prometheus(&PrometheusConfig {
        dir: dir.path().join("prometheus"),
        scrape_jobs: vec![ScrapeJob::new("modelwatch", targets)],
        rule_files: vec![
            dir.path().join("mixin").join(modelwatch_mixin::RULES_PATH),
            dir.path().join("mixin").join(modelwatch_mixin::ALERTS_PATH),
        ],
        ..PrometheusConfig::default()
    })
    .expect("prometheus starts (hint: bash scripts/test.sh installs it)");
    let prom = prometheus.url();
    let client = modelwatch_stack::http_client().expect("client");

    // Bounded load on every replica at once.
    let started = Instant::now();
    let (mut loads, mut seconds) = (Vec::new(), Vec::new());
    for (i, r) in replicas.iter().enumerate() {
        let config = LoadConfig {
            target: r.api.clone(),
            admin_target: None,
            rps: RPS,
            duration: RUN,
            max_requests: None,
            concurrency: 64,
            stream: 40 + i as u64,
            progress: false,
        };
        let traffic = modelwatch_loadgen::traffic_at(
            options.population.config(),
            config.stream,
            config.rps,
            modelwatch_demo::lab::LAB_SIM_SPEED,
        )
        .expect("traffic");
        let second = tokio::spawn(second_model_load(r.api.clone(), i as u32 + 1, RUN));
        seconds.push(second);
        loads.push(tokio::spawn(async move {
            // Labels two seconds after each answer: the ground-truth row's data.
            modelwatch_loadgen::run_with_labels(
                &config,
                &Scenario::named("clean").expect("clean"),
                traffic,
                Some(modelwatch_loadgen::LabelConfig {
                    delay: Duration::from_secs(2),
                }),
                |_, _| {},
            )
            .await
        }));
    }

    // While the load runs: every recording rule and every panel query gets data.
    let version = {
        let card =
            modelwatch_runtime::ModelCard::from_json_str(modelwatch_server::load::bundled::CARD)
                .expect("card");
        card.version
    };
    let dashboard: serde_json::Value = serde_json::from_str(
        &files
            .iter()
            .find(|f| f.path == modelwatch_mixin::DASHBOARD_PATH)
            .expect("dashboard")
            .contents,
    )
    .expect("json");
    let queries = modelwatch_testkit::dashboard::live_queries(&dashboard);
    let variables = |model: &'static str| {
        [
            ("datasource", ""),
            ("__rate_interval", "20s"),
            ("__interval", "5s"),
            ("__range", "1m"),
            ("model", model),
            (
                "version",
                if model == "fraud" {
                    version.as_str()
                } else {
                    "0.3.0"
                },
            ),
        ]
    };
    // (what, query, the model whose series it must return).
    let mut pending: Vec<(String, String, &str)> = Vec::new();
    for model in ["fraud", SECOND_MODEL] {
        for (title, expr) in &queries {
            let expr = modelwatch_testkit::dashboard::substitute(expr, &variables(model));
            pending.push((format!("panel {title} ({model})"), expr, model));
        }
        // A regressor's error rules: both models here are classifiers.
        let regression: Vec<&str> = record::TRUTH_WINDOWS
            .iter()
            .flat_map(|w| [w.mae, w.rmse])
            .collect();
        for group in recording_rules(&mixin) {
            for rule in group.rules {
                if let Rule::Record(r) = rule
                    && !regression.contains(&r.record)
                {
                    let expr = format!("{}{{model=\"{model}\"}}", r.record);
                    pending.push((format!("rule {} ({model})", r.record), expr, model));
                }
            }
        }
    }
    let total = pending.len();
    let mut mixed = Vec::new();
    while !pending.is_empty() && started.elapsed() < RUN {
        let mut still = Vec::new();
        for (origin, expr, model) in pending {
            let data = modelwatch_stack::query(&client, &prom, &expr)
                .await
                .unwrap_or_default();
            if data.is_empty() {
                still.push((origin, expr, model));
                continue;
            }
            // The model variable separates the models: a series that carries a
            // `model` label carries the one asked for.
            if let Some(other) = data
                .iter()
                .filter_map(|s| s.labels.get("model"))
                .find(|m| m.as_str() != model)
            {
                mixed.push(format!("{origin}: a series of model {other}"));
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(
        pending.is_empty(),
        "{} of {total} queries never returned data: {pending:#?}",
        pending.len()
    );
    assert!(mixed.is_empty(), "queries mixing models: {mixed:#?}");

    // Fleet PSI equals the PSI of the summed raw counters, at the rule's own time.
    // A scrape's samples carry the time the scrape started, and a rule evaluated
    // while one was still being appended did not see it, though a later query at
    // the same time does (seen under two busy cores). So the check takes up to five
    // successive evaluations and needs one to agree to 1e-6; a wrong formula agrees
    // with none.
    let window = mixin.scaled(mixin.drift.window);
    let mut disagreements = Vec::new();
    let mut last_at = f64::NAN;
    let mut fleet_psi = f64::NAN;
    for _ in 0..5 {
        // The next evaluation's time (rules evaluate every second here; bounded).
        let mut next = None;
        for _ in 0..240 {
            let at_samples = modelwatch_stack::query(
                &client,
                &prom,
                &format!("timestamp({})", record::SCORE_PSI),
            )
            .await
            .expect("query");
            let at = at_samples.first().expect("the PSI rule has a value").value;
            if at != last_at {
                next = Some(at);
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let at_seconds = next.expect("the PSI rule evaluated again within 60 s");
        last_at = at_seconds;
        // Let any scrape that started before the evaluation finish appending.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let at = std::time::UNIX_EPOCH + Duration::from_secs_f64(at_seconds);
        let psi = modelwatch_stack::query_at(
            &client,
            &prom,
            &format!("{}{{model=\"fraud\"}}", record::SCORE_PSI),
            at,
        )
        .await
        .expect("psi");
        let rates = modelwatch_stack::query_at(
            &client,
            &prom,
            &format!(
                "sum by (bin) (rate({}{{job=\"modelwatch\",model=\"fraud\"}}[{window}]))",
                schema::SCORE_BIN_TOTAL.name
            ),
            at,
        )
        .await
        .expect("rates");
        let reference = modelwatch_stack::query_at(
            &client,
            &prom,
            &format!(
                "max by (bin) ({}{{job=\"modelwatch\",model=\"fraud\"}})",
                schema::REFERENCE_SCORE_RATIO.name
            ),
            at,
        )
        .await
        .expect("reference");
        let expected = psi_of(&rates, &reference);
        assert_eq!(psi.len(), 1, "one model asked for, one version: {psi:?}");
        fleet_psi = psi[0].value;
        if (psi[0].value - expected).abs() <= 1e-6 * expected.abs().max(1e-12) {
            disagreements.clear();
            break;
        }
        disagreements.push(format!(
            "at {at_seconds:.3}: fleet PSI {} against {expected} from the raw counters",
            psi[0].value
        ));
    }
    assert!(
        disagreements.is_empty(),
        "no evaluation of the fleet PSI rule agreed with the raw counters: {disagreements:#?}"
    );

    // The fleet p99 over the whole run, from the summed histograms, against the
    // load generator's own p99 over the same requests.
    let mut latencies = Vec::new();
    for l in loads {
        let report = l.await.expect("join").expect("load runs");
        assert!(report.ok() > 0);
        latencies.extend(report.latencies_us);
    }
    for second in seconds {
        assert!(
            second.await.expect("join") > 0,
            "the second model scored nothing"
        );
    }
    latencies.sort_unstable();
    let client_p99 = f64::from(
        latencies[((latencies.len() as f64 * 0.99).ceil() as usize).clamp(1, latencies.len()) - 1],
    ) / 1e6;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let range = started.elapsed().as_secs() + 5;
    let fleet = modelwatch_stack::query(
        &client,
        &prom,
        &format!(
            "histogram_quantile(0.99, sum by (le) (increase({}_bucket{{job=\"modelwatch\",model=\"fraud\"}}[{range}s])))",
            schema::REQUEST_DURATION_SECONDS.name
        ),
    )
    .await
    .expect("p99");
    let fleet_p99 = fleet.first().expect("a fleet p99").value;
    let (server_bucket, client_bucket) = (bucket(fleet_p99), bucket(client_p99));
    // The replicas' own histograms, summed by bucket, say where the p99 is: the
    // fleet query must find the same bucket (one off at most: increase() extrapolates
    // to the range's edges).
    let mut summed: std::collections::BTreeMap<usize, f64> = std::collections::BTreeMap::new();
    for r in &replicas {
        let exposition = modelwatch_testkit::exposition::scrape(&client, &r.metrics).await;
        let name = format!("{}_bucket", schema::REQUEST_DURATION_SECONDS.name);
        for sample in exposition.select(&name, &[("model", "fraud")]) {
            let le = sample.label("le");
            let index = if le == "+Inf" {
                modelwatch::buckets::LATENCY_SECONDS.len()
            } else {
                bucket(le.parse().expect("le is a number"))
            };
            *summed.entry(index).or_default() += sample.value;
        }
    }
    let total = summed.values().copied().fold(0.0, f64::max);
    let raw_bucket = summed
        .iter()
        .find(|(_, count)| **count >= 0.99 * total)
        .map(|(index, _)| *index)
        .expect("a bucket holds the 99th percentile");
    assert!(
        server_bucket.abs_diff(raw_bucket) <= 1,
        "fleet p99 {fleet_p99} s (bucket {server_bucket}) against the replicas' summed histograms (bucket {raw_bucket})"
    );
    // The server times a request from its handler to its answer; the load generator
    // also sees the connection, the parsing and its own scheduling. So the fleet's
    // p99 can be below the client's, never above it.
    assert!(
        server_bucket <= client_bucket + 1,
        "fleet p99 {fleet_p99} s (bucket {server_bucket}) above the load generator's {client_p99} s (bucket {client_bucket})"
    );
    eprintln!(
        "fleet p99 {:.3} ms (bucket {server_bucket}; summed histograms: bucket {raw_bucket}), load generator p99 {:.3} ms, fleet PSI {:.5}",
        fleet_p99 * 1e3,
        client_p99 * 1e3,
        fleet_psi
    );
    drop(prometheus);
    drop(replicas);
}
