//! Builds an [`AppState`] around the bundled model and a small temporary store.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use modelwatch::prometheus_client::registry::Registry;
use modelwatch::{Buckets, DriftConfig, DriftMetrics, Format, Metrics, MetricsConfig, ModelSpec};
use modelwatch_runtime::{Model, RuntimeError};
use modelwatch_server::batcher::{Batcher, BatcherConfig};
use modelwatch_server::faults::Faults;
use modelwatch_server::features::{FeatureFetcher, FeatureLayout, FetchConfig};
use modelwatch_server::store::{FeatureStore, SqliteStore};
use modelwatch_server::{AppState, Limits, ServedModel, load};
use modelwatch_testkit::exposition::{self, Exposition};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt as _;

/// Knobs a test may turn.
#[derive(Debug, Clone)]
pub struct Options {
    pub max_batch: usize,
    pub max_delay: Duration,
    pub queue_capacity: usize,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_batch_request: usize,
    pub model_delay: Duration,
    pub fault_injection: bool,
    pub store_timeout: Duration,
    /// Features made nullable in the bundled card before the app is built.
    pub nullable: &'static [&'static str],
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_batch: 16,
            max_delay: Duration::from_micros(200),
            queue_capacity: 256,
            request_timeout: Duration::from_secs(5),
            max_body_bytes: 16 * 1024,
            max_batch_request: 8,
            model_delay: Duration::ZERO,
            fault_injection: true,
            store_timeout: Duration::from_millis(500),
            nullable: &[],
        }
    }
}

/// A model that waits before scoring, to fill the queue on purpose.
#[derive(Debug)]
struct SlowModel {
    inner: Arc<dyn Model>,
    delay: Duration,
}

impl Model for SlowModel {
    fn n_features(&self) -> usize {
        self.inner.n_features()
    }
    fn predict(&self, input: &[f32], out: &mut [f32]) -> Result<(), RuntimeError> {
        std::thread::sleep(self.delay);
        self.inner.predict(input, out)
    }
    fn backend(&self) -> modelwatch_runtime::Backend {
        self.inner.backend()
    }
}

/// A running test app.
pub struct TestApp {
    pub state: Arc<AppState>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// The one model the test app serves.
    pub fn model(&self) -> &Arc<ServedModel> {
        self.state.default_model()
    }
}

pub use modelwatch_testkit::store::{CUSTOMER, TERMINAL};

impl TestApp {
    pub async fn new(options: Options) -> Self {
        Self::with_store(options, |store| Arc::new(store)).await
    }

    /// A test app whose seeded SQLite store is put behind `wrap` (a counting or
    /// hanging wrapper).
    pub async fn with_store(
        options: Options,
        wrap: impl FnOnce(SqliteStore) -> Arc<dyn FeatureStore>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut loaded = load::load_model(None, dir.path()).expect("bundled model loads");
        for feature in loaded.card.features.iter_mut() {
            feature.nullable |= options.nullable.contains(&feature.name.as_str());
        }
        let card = loaded.card.clone();
        let layout = FeatureLayout::from_card(&card).expect("layout");
        let store = SqliteStore::open(&dir.path().join("features.sqlite")).expect("store");
        modelwatch_testkit::store::seed(&store, &layout);
        let mut registry = Registry::default();
        let config = MetricsConfig {
            buckets: Buckets::default()
                .with_score_threshold(card.threshold().expect("the bundled model classifies")),
            process_metrics: false,
            ..MetricsConfig::default()
        };
        let metrics = Metrics::register(&mut registry, &config).expect("metrics");
        let handle = metrics.model(&ModelSpec {
            name: card.name.clone(),
            version: card.version.clone(),
            decisions: modelwatch_server::features::decision_names(&card).expect("decisions"),
            ..ModelSpec::default()
        });
        let drift_metrics =
            DriftMetrics::register(&mut registry, &DriftConfig::default()).expect("drift");
        let drift = drift_metrics
            .model(&handle, &loaded.reference)
            .expect("reference");
        let faults = Arc::new(Faults::default());
        let store = wrap(store);
        let fetcher = FeatureFetcher::new(
            layout,
            store,
            FetchConfig {
                cache_ttl: Duration::from_secs(60),
                cache_capacity: 1000,
                store_timeout: options.store_timeout,
            },
            handle.clone(),
            faults.clone(),
        );
        let model: Arc<dyn Model> = if options.model_delay.is_zero() {
            loaded.model
        } else {
            Arc::new(SlowModel {
                inner: loaded.model,
                delay: options.model_delay,
            })
        };
        let batcher = Batcher::start(
            model,
            handle.clone(),
            BatcherConfig {
                max_batch: options.max_batch,
                max_delay: options.max_delay,
                queue_capacity: options.queue_capacity,
            },
        )
        .expect("batcher");
        let served = ServedModel {
            card,
            metrics: handle,
            drift,
            fetcher,
            batcher,
            faults: faults.clone(),
        };
        let state = Arc::new(AppState::new(
            served,
            Vec::new(),
            registry,
            Limits {
                max_body_bytes: options.max_body_bytes,
                max_batch_request: options.max_batch_request,
                request_timeout: options.request_timeout,
            },
            faults,
            options.fault_injection,
        ));
        Self { state, _dir: dir }
    }

    /// Sends a request to the API router.
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, serde_json::Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(body.into())
            .expect("request");
        let response = modelwatch_server::app(self.state.clone())
            .oneshot(request)
            .await
            .expect("router answers");
        split(response).await
    }

    /// Sends a request to the metrics router.
    pub async fn admin(
        &self,
        method: &str,
        uri: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, serde_json::Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(body.into())
            .expect("request");
        let response = modelwatch_server::metrics_app(self.state.clone())
            .oneshot(request)
            .await
            .expect("router answers");
        split(response).await
    }

    /// The current exposition, as text.
    pub fn scrape(&self) -> String {
        let mut out = String::new();
        Format::PrometheusText
            .encode(&self.state.registry, &mut out)
            .expect("encode");
        out
    }

    /// The current exposition, parsed.
    pub fn metrics(&self) -> Exposition {
        let text = self.scrape();
        exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// The value of the one series `name` with `labels`, or 0 when there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.metrics().value(name, labels).unwrap_or(0.0)
    }

    /// `model_requests_total` of this app's model and version.
    pub fn requests(&self, status: &str, decision: &str) -> f64 {
        let card = &self.model().card;
        self.value(
            "model_requests_total",
            &[
                ("model", &card.name),
                ("version", &card.version),
                ("status", status),
                ("decision", decision),
            ],
        )
    }
}

async fn split(response: axum::response::Response) -> (StatusCode, serde_json::Value) {
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
    });
    (status, json)
}

/// A valid `/v1/models/fraud/predict` body: the same row as [`transaction`].
pub fn model_request(customer: &str, terminal: &str, amount: f64) -> serde_json::Value {
    serde_json::json!({
        "id": "row-1",
        "features": {"amount": amount, "timestamp": "2026-11-24T10:00:00Z"},
        "entities": {"customer_id": customer, "terminal_id": terminal},
    })
}

/// A valid single-transaction body.
pub fn transaction(customer: &str, terminal: &str, amount: f64) -> String {
    serde_json::json!({
        "transaction_id": "tx-1",
        "customer_id": customer,
        "terminal_id": terminal,
        "amount": amount,
        "timestamp": "2026-11-24T10:00:00Z",
    })
    .to_string()
}
