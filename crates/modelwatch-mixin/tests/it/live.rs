//! The generated rules and dashboard against a real Prometheus scraping real
//! instrumented processes.
//!
//! `fixture_replica` is an in-test endpoint built with the `modelwatch` library
//! (`Metrics::register` + a `ModelHandle`, `DriftMetrics` + a `DriftHandle`) that
//! records a steady stream of predictions. The mixin is generated with its windows
//! shrunk 60 times (`time_scale`), so the 1 h drift window is 1 m and rules have
//! data within seconds.

use crate::queries::VARIABLES;
use modelwatch::drift::{FeatureReference, ModelReference, ReferenceBins};
use modelwatch::prometheus_client::registry::Registry;
use modelwatch::schema;
use modelwatch::{
    CacheOperation, Decision, DriftConfig, DriftMetrics, Format, Metrics, MetricsConfig, ModelSpec,
    Stage, Status,
};
use modelwatch_mixin::names::{external, record};
use modelwatch_mixin::{MixinConfig, PromDuration, generate, write};
use modelwatch_stack::{PrometheusConfig, QuerySample, ScrapeJob};
use modelwatch_testkit::dashboard::{live_queries, substitute};
use modelwatch_testkit::http::Stub;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const JOB: &str = "modelwatch";
const MODEL: &str = "fraud";
const VERSION: &str = "3";

/// The mixin settings of the live tests: every window 60 times shorter, and the
/// week-over-week comparison 10 s back so that offset queries have data.
pub fn live_config() -> MixinConfig {
    let mut config = crate::support::scaled_config();
    config.drift.comparison_offset = PromDuration::from_secs(600);
    config
}

fn reference() -> ModelReference {
    let bins = |edges: &[f64], ratios: &[f64], max: f64| ReferenceBins {
        edges: edges.to_vec(),
        ratios: ratios.to_vec(),
        min: 0.0,
        max,
    };
    ModelReference {
        score: bins(&[0.1, 0.3, 0.5], &[0.4, 0.3, 0.2, 0.1], 1.0),
        features: vec![
            FeatureReference {
                name: "amount".into(),
                group: "transaction".into(),
                bins: bins(&[10.0, 50.0, 200.0], &[0.25, 0.4, 0.25, 0.1], 5000.0),
            },
            FeatureReference {
                name: "customer_nb_tx_1d".into(),
                group: "customer".into(),
                bins: bins(&[1.0, 3.0, 10.0], &[0.3, 0.3, 0.3, 0.1], 100.0),
            },
        ],
    }
}

/// One instrumented replica: its metrics endpoint and a thread recording about 100
/// predictions a second until dropped.
pub struct FixtureReplica {
    pub endpoint: Stub,
    stop: Arc<AtomicBool>,
    recorder: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FixtureReplica {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(recorder) = self.recorder.take() {
            let _ = recorder.join();
        }
    }
}

pub fn fixture_replica(seed: u64) -> FixtureReplica {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry, &MetricsConfig::default()).expect("metrics");
    let drift = DriftMetrics::register(&mut registry, &DriftConfig::default()).expect("drift");
    let model = metrics.model(&ModelSpec {
        name: MODEL.into(),
        version: VERSION.into(),
        framework: "test".into(),
        training_date: "2025-01-01".into(),
        architecture: "fixture".into(),
        decisions: Some(
            modelwatch::DecisionNames::new("approved", "declined").expect("valid decision names"),
        ),
    });
    let drift = drift
        .model(&model, &reference())
        .expect("a valid reference");
    // Ground truth: a calibration on the score bins (0.5 is the threshold), and a
    // label for every prediction, one in ten of the approved ones wrong.
    let feedback = modelwatch::FeedbackMetrics::register(&mut registry).model(
        &model,
        &[
            ("0.1".into(), 0.01, Decision::Below),
            ("0.3".into(), 0.05, Decision::Below),
            ("0.5".into(), 0.2, Decision::Below),
            ("+Inf".into(), 0.8, Decision::AtOrAbove),
        ],
    );
    let registry = Arc::new(registry);
    let scraped = registry.clone();
    let endpoint = Stub::serve_with(move || {
        let mut body = String::new();
        Format::PrometheusText
            .encode(&scraped, &mut body)
            .expect("encode the registry");
        body
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let recorder = std::thread::spawn(move || {
        let mut state = seed | 1;
        let mut next = move || {
            // xorshift64: a fixed, dependency-free stream of pseudo-random numbers.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut i = 0u64;
        while !stopping.load(Ordering::Relaxed) {
            i += 1;
            let score = next().powi(2);
            let approved = score < 0.5;
            let mut request = model.start_request();
            request.mark_stage(Stage::Queue);
            model.cache(if i % 10 == 0 {
                CacheOperation::Miss
            } else {
                CacheOperation::Hit
            });
            request.mark_stage(Stage::FeatureFetch);
            request.mark_stage(Stage::Inference);
            model.observe_score(score);
            request.mark_stage(Stage::Postprocess);
            let decision = if approved {
                Decision::Below
            } else {
                Decision::AtOrAbove
            };
            request.finish(Status::Success, decision);
            feedback.classified(decision, !approved || i % 10 == 0, 30.0);
            let now = drift.now();
            let features = [(next() * 300.0) as f32, (next() * 12.0) as f32];
            drift.record_prediction(now, score, approved, &features, &[now, now - 90]);
            if i % 50 == 0 {
                model.count_request(Status::Error, Decision::None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    FixtureReplica {
        endpoint,
        stop,
        recorder: Some(recorder),
    }
}

/// Generates the live mixin into a temporary directory: (dir, rule files).
fn live_mixin() -> (
    tempfile::TempDir,
    Vec<std::path::PathBuf>,
    serde_json::Value,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = generate(&live_config()).expect("generate");
    write(dir.path(), &files).expect("write");
    let rules = vec![
        dir.path().join(modelwatch_mixin::RULES_PATH),
        dir.path().join(modelwatch_mixin::ALERTS_PATH),
    ];
    let dashboard = std::fs::read_to_string(dir.path().join(modelwatch_mixin::DASHBOARD_PATH))
        .expect("dashboard");
    (dir, rules, serde_json::from_str(&dashboard).expect("json"))
}

/// PSI from per-bin rates and reference ratios, as `modelwatch::drift::psi` does.
fn psi_of(rates: &[QuerySample], reference: &[QuerySample]) -> f64 {
    let total: f64 = rates.iter().map(|s| s.value).sum();
    let mut p = Vec::new();
    let mut q = Vec::new();
    for rate in rates {
        let bin = &rate.labels["bin"];
        let r = reference
            .iter()
            .find(|s| &s.labels["bin"] == bin)
            .unwrap_or_else(|| panic!("a reference ratio for bin {bin}"));
        p.push(rate.value / total);
        q.push(r.value);
    }
    modelwatch::drift::psi(&p, &q)
}

/// A real Prometheus (modelwatch-stack's launcher) scraping `targets` as job `JOB`
/// and evaluating `rules`, with instant queries that fail the test on error.
struct Live {
    prometheus: modelwatch_stack::Process,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Live {
    fn start(targets: &[String], rules: &[std::path::PathBuf]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let prometheus = modelwatch_stack::start_prometheus(&PrometheusConfig {
            dir: dir.path().to_path_buf(),
            scrape_jobs: vec![ScrapeJob::new(JOB, targets)],
            rule_files: rules.to_vec(),
            ..PrometheusConfig::default()
        })
        .unwrap_or_else(|e| {
            panic!("{e:#}\nhint: run `bash scripts/test.sh`, which installs it (Debian package prometheus)")
        });
        Self {
            prometheus,
            client: modelwatch_stack::http_client().expect("an HTTP client"),
            _dir: dir,
        }
    }

    async fn query(&self, promql: &str) -> Vec<QuerySample> {
        modelwatch_stack::query(&self.client, &self.prometheus.url(), promql)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The query evaluated at `time` (Unix seconds).
    async fn query_at(&self, promql: &str, time: f64) -> Vec<QuerySample> {
        let at = std::time::UNIX_EPOCH + Duration::from_secs_f64(time);
        modelwatch_stack::query_at(&self.client, &self.prometheus.url(), promql, at)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    async fn wait_for(&self, promql: &str, timeout: Duration) -> Vec<QuerySample> {
        modelwatch_stack::wait_for_samples(&self.client, &self.prometheus.url(), promql, timeout)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", self.prometheus.log_tail(40)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_library_endpoint_and_every_panel_has_data() {
    let replica = fixture_replica(0x5eed);
    let (_dir, rules, dashboard) = live_mixin();
    let prometheus = Live::start(&[replica.endpoint.target()], &rules);
    let wait = Duration::from_secs(60);
    let up = prometheus
        .wait_for(&format!("{}{{job=\"{JOB}\"}} == 1", external::UP), wait)
        .await;
    assert_eq!(up.len(), 1);

    let rate = prometheus
        .wait_for(&format!("{} > 0", record::REQUESTS_RATE5M), wait)
        .await;
    assert_eq!(rate[0].labels["model"], MODEL);
    assert_eq!(rate[0].labels["version"], VERSION);
    for query in [
        format!("{}{{quantile=\"0.99\"}}", record::REQUEST_DURATION_QUANTILE),
        format!("{}{{stage=\"inference\"}}", record::STAGE_DURATION_QUANTILE),
        record::CACHE_HIT_RATIO.to_string(),
        record::FEATURE_PSI.to_string(),
        record::FEATURE_AGE_MAX.to_string(),
        record::burn_window(300).errors.to_string(),
    ] {
        prometheus.wait_for(&query, wait).await;
    }
    let hit = prometheus.query(record::CACHE_HIT_RATIO).await;
    assert!(
        (hit[0].value - 0.9).abs() < 0.05,
        "about 9 lookups in 10 hit: {hit:?}"
    );
    let ages = prometheus
        .query(&format!(
            "{}{{feature_group=\"customer\"}}",
            record::FEATURE_AGE_MAX
        ))
        .await;
    assert_eq!(ages[0].value, 90.0, "customer features are 90 s old");

    // The fleet PSI rule equals PSI computed here from the raw counters and the
    // reference gauges, at the same evaluation time.
    prometheus.wait_for(record::SCORE_PSI, wait).await;
    // An instant query stamps its result with the query time: ask for the time the
    // rule was evaluated at, and recompute there.
    let at = prometheus
        .query(&format!("timestamp({})", record::SCORE_PSI))
        .await[0]
        .value;
    let psi = prometheus.query_at(record::SCORE_PSI, at).await;
    let window = live_config().scaled(live_config().drift.window);
    let rates = prometheus
        .query_at(
            &format!(
                "sum by (bin) (rate({}{{job=\"{JOB}\"}}[{window}]))",
                schema::SCORE_BIN_TOTAL.name
            ),
            at,
        )
        .await;
    let reference = prometheus
        .query_at(
            &format!(
                "max by (bin) ({}{{job=\"{JOB}\"}})",
                schema::REFERENCE_SCORE_RATIO.name
            ),
            at,
        )
        .await;
    assert_eq!(rates.len(), 4, "{rates:?}");
    let expected = psi_of(&rates, &reference);
    assert!(
        (psi[0].value - expected).abs() <= 1e-6 * expected.abs().max(1e-12),
        "fleet PSI {} against {expected} from the raw counters",
        psi[0].value
    );

    // Every panel query has data, except those of exporters not running here.
    let queries = live_queries(&dashboard);
    assert!(queries.len() > 20, "{} panel queries", queries.len());
    let deadline = std::time::Instant::now() + wait;
    let mut empty: Vec<&(String, String)> = queries.iter().collect();
    while !empty.is_empty() && std::time::Instant::now() < deadline {
        let mut still = Vec::new();
        for query in empty {
            if prometheus
                .query(&substitute(&query.1, VARIABLES))
                .await
                .is_empty()
            {
                still.push(query);
            }
        }
        empty = still;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(empty.is_empty(), "panels without data: {empty:#?}");
}

// The same checks against three real `modelwatch serve` replicas under load are
// crates/modelwatch-cli/tests/fleet.rs (the binary is built in that crate).
