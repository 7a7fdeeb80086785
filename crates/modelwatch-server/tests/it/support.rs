//! Builds an [`AppState`] around the bundled model and a small temporary store, with
//! the server's own builder.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use modelwatch::Format;
use modelwatch_runtime::{Model, RuntimeError};
use modelwatch_server::config::ServeArgs;
use modelwatch_server::features::FeatureLayout;
use modelwatch_server::server::{Background, Hooks, ModelHook, build_state_with};
use modelwatch_server::store::{FeatureStore, SqliteStore};
use modelwatch_server::{AppState, ServedModel, load};
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
    /// The refresher and the id watch, stopped with the app.
    _background: Background,
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
    /// hanging wrapper). Built by the server's own builder
    /// (`server::build_state_with`), from `serve` flags and hooks.
    pub async fn with_store(
        options: Options,
        wrap: impl FnOnce(SqliteStore) -> Arc<dyn FeatureStore> + Send + 'static,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // Seeded here with the test kit's small population, so the builder finds the
        // store full and does not seed the simulator's.
        let card = load::load_model(None, dir.path())
            .expect("bundled model loads")
            .card;
        let layout = FeatureLayout::from_card(&card).expect("layout");
        let store = SqliteStore::open(&dir.path().join("features.sqlite")).expect("store");
        modelwatch_testkit::store::seed(&store, &layout);
        drop(store);
        let micros = |d: Duration| format!("{}us", d.as_micros());
        let mut flags = vec![
            "--data-dir".to_string(),
            dir.path().display().to_string(),
            "--max-batch".into(),
            options.max_batch.to_string(),
            "--max-delay".into(),
            micros(options.max_delay),
            "--queue-capacity".into(),
            options.queue_capacity.to_string(),
            "--request-timeout".into(),
            micros(options.request_timeout),
            "--max-body-bytes".into(),
            options.max_body_bytes.to_string(),
            "--max-batch-request".into(),
            options.max_batch_request.to_string(),
            "--store-timeout".into(),
            micros(options.store_timeout),
            "--cache-ttl".into(),
            "60s".into(),
            "--cache-capacity".into(),
            "1000".into(),
        ];
        if options.fault_injection {
            flags.push("--enable-fault-injection".into());
        }
        let args = ServeArgs::from_flags(flags).expect("valid serve flags");
        let nullable = options.nullable;
        let model_delay = options.model_delay;
        let hooks = Hooks {
            store: Some(Box::new(wrap)),
            model: (!model_delay.is_zero()).then(|| -> ModelHook {
                Box::new(move |inner| {
                    Arc::new(SlowModel {
                        inner,
                        delay: model_delay,
                    })
                })
            }),
            card: Some(Box::new(move |card| {
                for feature in card.features.iter_mut() {
                    feature.nullable |= nullable.contains(&feature.name.as_str());
                }
            })),
        };
        let (state, background) = build_state_with(&args, hooks)
            .await
            .expect("the server's builder builds the test app");
        Self {
            state,
            _background: background,
            _dir: dir,
        }
    }

    /// A test app serving a repository of the bundled `fraud` model (its store seeded
    /// with the test kit's entities) and the monitor-only card
    /// [`modelwatch_testkit::models::MONITORED_MODEL`], built by the server's own
    /// builder with `extra` flags.
    pub async fn with_monitored(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repository = dir.path().join("models");
        modelwatch_testkit::models::two_model_repository(&repository);
        // Only the bundled model and the monitor-only card: no second served model.
        for ext in ["card.json", "onnx", "reference.json"] {
            let path = repository.join(format!(
                "{}.{ext}",
                modelwatch_testkit::models::SECOND_MODEL
            ));
            std::fs::remove_file(path).expect("remove the second model");
        }
        modelwatch_testkit::models::monitor_only_card(&repository);
        let card = load::load_model(None, dir.path())
            .expect("bundled model loads")
            .card;
        let layout = FeatureLayout::from_card(&card).expect("layout");
        let store = SqliteStore::open(&dir.path().join("features.sqlite")).expect("store");
        modelwatch_testkit::store::seed(&store, &layout);
        drop(store);
        let mut flags = vec![
            "--data-dir".to_string(),
            dir.path().display().to_string(),
            "--model-repository".into(),
            repository.display().to_string(),
        ];
        flags.extend(extra.iter().map(|f| f.to_string()));
        let args = ServeArgs::from_flags(flags).expect("valid serve flags");
        let (state, background) = build_state_with(&args, Hooks::default())
            .await
            .expect("the server's builder builds the test app");
        Self {
            state,
            _background: background,
            _dir: dir,
        }
    }

    /// Sends a request with a body of `content_type` (none when `None`) to the API
    /// router.
    pub async fn call_as(
        &self,
        uri: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = Request::builder().method("POST").uri(uri);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request.body(body.into()).expect("request");
        let response = modelwatch_server::app(self.state.clone())
            .oneshot(request)
            .await
            .expect("router answers");
        split(response).await
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
