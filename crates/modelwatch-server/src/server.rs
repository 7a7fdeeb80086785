//! Module implementing `modelwatch serve` end to end: load, seed, bind, serve, drain.
//! See [`run`] for details.

use crate::batcher::{Batcher, BatcherConfig};
use crate::config::ServeArgs;
use crate::faults::Faults;
use crate::features::{FeatureFetcher, FeatureLayout, FetchConfig};
use crate::observations::Collector;
use crate::pipeline::Engine;
use crate::store::{FeatureStore, SqliteStore};
use crate::webconfig::WebConfig;
use crate::{AppState, Limits, ServedModel, app, load, metrics_app, refresher};
use anyhow::Context as _;
use modelwatch::prometheus_client::registry::Registry;
use modelwatch::{Buckets, DriftConfig, DriftMetrics, Metrics, MetricsConfig, ModelSpec};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// A server that is bound and ready, before it starts serving.
#[derive(Debug)]
pub struct Bound {
    /// Shared state.
    pub state: Arc<AppState>,
    /// The API listener.
    pub api: tokio::net::TcpListener,
    /// The metrics listener.
    pub metrics: tokio::net::TcpListener,
    background: Background,
    web_config: Option<WebConfig>,
    drain_timeout: std::time::Duration,
}

/// How often the store's id generation is read, so ids another process loads
/// (`modelwatch features load`) pass the known-id filter within this long.
pub const ID_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The server's background tasks (the feature refresher, the store's id watch),
/// aborted when dropped.
#[derive(Debug)]
pub struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// A store put between the SQLite store and the pipeline (see [`Hooks::store`]).
pub type StoreHook = Box<dyn FnOnce(SqliteStore) -> Arc<dyn FeatureStore> + Send>;
/// A model evaluator put in place of a loaded one (see [`Hooks::model`]).
pub type ModelHook =
    Box<dyn Fn(Arc<dyn modelwatch_runtime::Model>) -> Arc<dyn modelwatch_runtime::Model> + Send>;
/// An edit of a loaded card (see [`Hooks::card`]).
pub type CardHook = Box<dyn Fn(&mut modelwatch_runtime::ModelCard) + Send>;

/// What a test may put into the state [`build_state_with`] builds, so tests and
/// `serve` share one builder: every hook defaults to none (what `serve` runs).
#[derive(Default)]
pub struct Hooks {
    /// Wraps the opened (and seeded) SQLite store: a counting or hanging store.
    pub store: Option<StoreHook>,
    /// Wraps every model's evaluator: a slow model.
    pub model: Option<ModelHook>,
    /// Edits every loaded card before the layout is derived from it.
    pub card: Option<CardHook>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("store", &self.store.is_some())
            .field("model", &self.model.is_some())
            .field("card", &self.card.is_some())
            .finish()
    }
}

/// Which entity groups the built-in refresher dates: every group of the embedded
/// store; in Redis (our layout) only those the simulator seeded, so a real pipeline's
/// event times are never overwritten; none in Feast's store.
#[derive(Debug)]
enum Refreshed {
    All,
    Only(Vec<String>),
}

impl Refreshed {
    fn is_refreshed(&self, group: &str) -> bool {
        match self {
            Refreshed::All => true,
            Refreshed::Only(groups) => groups.iter().any(|g| g == group),
        }
    }
}

/// Opens the store `--feature-store` names (seeding an empty SQLite or Redis store
/// from the simulator), and starts its background tasks.
async fn open_store(
    args: &ServeArgs,
    data_dir: &std::path::Path,
    layouts: &[FeatureLayout],
    hook: Option<StoreHook>,
) -> anyhow::Result<(Arc<dyn FeatureStore>, Background, Refreshed)> {
    use crate::config::StoreLocation;
    use crate::store::GroupWriter;
    use crate::store::redis::{GroupFeatures, Layout, RedisStore};
    let location = args.feature_store.parse(data_dir)?;
    let features = || {
        let mut features = GroupFeatures::new();
        for layout in layouts {
            for (_, group) in &layout.entity_groups {
                features.insert(group.name.clone(), group.features.clone());
            }
        }
        features
    };
    match location {
        StoreLocation::Sqlite(path) => {
            let store = SqliteStore::open_with_readers(&path, args.store_readers)?;
            let writer: Arc<dyn GroupWriter> = Arc::new(store.clone());
            for layout in layouts {
                load::seed_if_empty(&writer, layout, args.population.config()).await?;
            }
            // Created now so a failure further on stops what was started.
            let background = Background(vec![tokio::spawn(
                store.clone().watch_ids(ID_WATCH_INTERVAL),
            )]);
            let store: Arc<dyn FeatureStore> = match hook {
                Some(wrap) => wrap(store),
                None => Arc::new(store),
            };
            Ok((store, background, Refreshed::All))
        }
        StoreLocation::Redis { target, prefix } => {
            let store = RedisStore::connect(
                &target,
                Layout::Own { prefix },
                features(),
                args.store_timeout.0,
            )
            .await?;
            let writer: Arc<dyn GroupWriter> = Arc::new(store.clone());
            for layout in layouts {
                load::seed_if_empty(&writer, layout, args.population.config())
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "feature store {}: {e}\nhint: check that Redis is up, and the password (--redis-password-file, or MODELWATCH_REDIS_PASSWORD) and --redis-ca-file",
                            writer.describe()
                        )
                    })?;
            }
            let mut simulated = Vec::new();
            for group in features().keys() {
                let check = store.clone();
                let name = group.clone();
                if tokio::task::spawn_blocking(move || check.simulated(&name)).await?? {
                    simulated.push(group.clone());
                }
            }
            Ok((
                Arc::new(store),
                Background(Vec::new()),
                Refreshed::Only(simulated),
            ))
        }
        StoreLocation::Feast { target, project } => {
            let mut groups = std::collections::HashMap::new();
            for layout in layouts {
                for (_, group) in &layout.entity_groups {
                    groups.insert(group.name.clone(), group.feast.clone());
                }
            }
            let store = RedisStore::connect(
                &target,
                Layout::Feast { project, groups },
                features(),
                args.store_timeout.0,
            )
            .await?;
            Ok((
                Arc::new(store),
                Background(Vec::new()),
                Refreshed::Only(Vec::new()),
            ))
        }
    }
}

/// Builds the state from settings: loads the models and their references, opens
/// (and if empty, seeds) the feature store, registers every metric, and starts the
/// background tasks (they stop when the returned [`Background`] is dropped).
pub async fn build_state(args: &ServeArgs) -> anyhow::Result<(Arc<AppState>, Background)> {
    build_state_with(args, Hooks::default()).await
}

/// [`build_state`] with test hooks: the one builder of the app state.
pub async fn build_state_with(
    args: &ServeArgs,
    hooks: Hooks,
) -> anyhow::Result<(Arc<AppState>, Background)> {
    let data_dir = args.data_dir();
    let mut loaded = match &args.model_repository {
        Some(dir) => load::load_repository(dir)?,
        None => vec![load::load_model(args.model.as_deref(), &data_dir)?],
    };
    if let Some(edit) = &hooks.card {
        loaded.iter_mut().for_each(|m| edit(&mut m.card));
    }
    if let Some(name) = &args.default_model {
        let Some(index) = loaded.iter().position(|m| &m.card.name == name) else {
            let names: Vec<&str> = loaded.iter().map(|m| m.card.name.as_str()).collect();
            anyhow::bail!(
                "--default-model {name:?} is not in the repository\nhint: it serves {}",
                names.join(", ")
            );
        };
        let default = loaded.remove(index);
        loaded.insert(0, default);
    } else if let Some(index) = loaded.iter().position(|m| m.model.is_some()) {
        // `/v1/predict` answers for the first served model; a monitor-only card
        // serves no prediction.
        let default = loaded.remove(index);
        loaded.insert(0, default);
    }
    let layouts = loaded
        .iter()
        .map(|m| {
            FeatureLayout::from_card(&m.card)
                .map_err(|e| anyhow::anyhow!("model {}: {e}", m.card.name))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut registry = Registry::default();
    // One score histogram for every model: its buckets put an edge on the default
    // model's threshold.
    let config = MetricsConfig {
        buckets: match loaded[0].card.threshold() {
            Some(threshold) => Buckets::default().with_score_threshold(threshold),
            None => Buckets::default(),
        },
        max_models: MetricsConfig::default().max_models.max(loaded.len()),
        ..MetricsConfig::default()
    };
    let metrics = Metrics::register(&mut registry, &config)?;
    let drift_config = DriftConfig {
        window: args.drift_window.0,
        freshness_window: (args.drift_window.0 / 12).max(std::time::Duration::from_secs(
            args.drift_window.0.as_secs() / 60,
        )),
        ..DriftConfig::default()
    };
    let drift_metrics =
        DriftMetrics::register(&mut registry, &drift_config).context("invalid --drift-window")?;
    let observation_metrics = if loaded.iter().any(|m| m.model.is_none()) {
        modelwatch::ObservationMetrics::register(&mut registry)
    } else {
        modelwatch::ObservationMetrics::default()
    };
    if args.no_instrumentation {
        tracing::warn!("--no-instrumentation: no metric will be recorded");
    }

    // One store for every model; a group two cards share is one set of rows.
    // A monitor-only model reads no store (its features come in its events): only
    // the served models' layouts are seeded and opened.
    let served_layouts: Vec<FeatureLayout> = loaded
        .iter()
        .zip(&layouts)
        .filter(|(m, _)| m.model.is_some())
        .map(|(_, l)| l.clone())
        .collect();
    let (store, mut background, refresh_all) =
        open_store(args, &data_dir, &served_layouts, hooks.store).await?;
    // The default model takes the injected faults; the others get inert ones. A
    // store delay slows the one store every model reads.
    let faults = Arc::new(Faults::default());
    let store = if args.enable_fault_injection {
        crate::faults::FaultyStore::wrap(store, faults.clone())
    } else {
        store
    };
    let fetch = FetchConfig {
        on_failure: args.store_failure,
        breaker_failures: args.store_breaker_failures,
        breaker_cooldown: args.store_breaker_cooldown.0,
        ..FetchConfig::new(args.cache_ttl.0, args.cache_capacity, args.store_timeout.0)
    };
    let batching = BatcherConfig {
        max_batch: args.max_batch,
        max_delay: args.max_delay.0,
        queue_capacity: args.queue_capacity,
        direct_below: args.direct_below.0,
    };
    // The refresher's groups: the default model's by layout index (the fault
    // endpoint pauses them by that index), then any other model's, never paused.
    let mut refreshed: Vec<refresher::RefreshedGroup> = Vec::new();
    let calibrations: Vec<_> = loaded.iter().map(crate::feedback::calibration_of).collect();
    let mut served = Vec::with_capacity(loaded.len());
    for (i, (model, layout)) in loaded.into_iter().zip(layouts).enumerate() {
        let card = model.card;
        let spec = ModelSpec {
            name: card.name.clone(),
            version: card.version.clone(),
            framework: card.framework.clone(),
            training_date: card.training_date.clone(),
            architecture: card.architecture.clone(),
            decisions: crate::features::decision_names(&card)?,
        };
        let handle = if args.no_instrumentation {
            modelwatch::ModelHandle::disabled(&spec)
        } else {
            metrics.model(&spec)
        };
        let drift = drift_metrics
            .model(&handle, &model.reference)
            .map_err(|e| anyhow::anyhow!("model {}: {e}", card.name))?;
        let model_faults = if i == 0 {
            faults.clone()
        } else {
            Arc::new(Faults::default())
        };
        let monitor_only = model.model.is_none();
        for (index, group) in layout.entity_groups.iter().filter(|_| !monitor_only) {
            if refresh_all.is_refreshed(&group.name)
                && !refreshed.iter().any(|(_, name)| name == &group.name)
            {
                refreshed.push((if i == 0 { *index } else { usize::MAX }, group.name.clone()));
            }
        }
        let fetcher = FeatureFetcher::new(
            layout,
            store.clone(),
            fetch.clone(),
            handle.clone(),
            model_faults.clone(),
        );
        let engine = match model.model {
            Some(evaluator) => {
                let evaluator = match &hooks.model {
                    Some(wrap) => wrap(evaluator),
                    None => evaluator,
                };
                let evaluator = if args.enable_fault_injection && i == 0 {
                    crate::faults::FaultyModel::wrap(evaluator, faults.clone())
                } else {
                    evaluator
                };
                let batcher = Batcher::start(evaluator, handle.clone(), batching)
                    .map_err(|e| anyhow::anyhow!("model {}: {e}", card.name))?;
                Engine::Served(batcher)
            }
            None => {
                let counters = observation_metrics.model(&handle);
                let collector = Collector::start(
                    &card,
                    handle.clone(),
                    drift.clone(),
                    counters,
                    args.observation_queue,
                    args.drift_window.0,
                )
                .with_context(|| format!("model {}: cannot start its collector", card.name))?;
                Engine::Monitored(Box::new(collector))
            }
        };
        served.push(ServedModel {
            names: crate::pipeline::AnswerNames::new(&card, &handle),
            card,
            metrics: handle,
            drift,
            fetcher,
            engine,
            faults: model_faults,
        });
    }
    background.0.push(refresher::spawn(
        store,
        refreshed,
        args.refresh_interval.0,
        faults.clone(),
    ));
    let truth_models: Vec<_> = served
        .iter()
        .zip(calibrations)
        .map(|(m, c)| (&m.metrics, c))
        .collect();
    let ground_truth = Arc::new(crate::feedback::GroundTruth::open(
        args.prediction_log(),
        &mut registry,
        &truth_models,
    )?);
    drop(truth_models);
    let mut served = served.into_iter();
    let default = served.next().context("no model to serve")?;
    let state = Arc::new(
        AppState::new(
            default,
            served.collect(),
            registry,
            Limits {
                max_body_bytes: args.max_body_bytes,
                max_batch_request: args.max_batch_request,
                request_timeout: args.request_timeout.0,
                max_observation_batch: args.max_observation_batch,
            },
            faults,
            args.enable_fault_injection,
        )
        .with_ground_truth(ground_truth),
    );
    Ok((state, background))
}

async fn bind(
    addr: std::net::SocketAddr,
    what: &str,
    flag: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr} for the {what}: {e}\nhint: pick another address with {flag}, or stop what holds the port")
    })
}

/// Loads, seeds and binds.
pub async fn bind_server(args: &ServeArgs) -> anyhow::Result<Bound> {
    // Before the model and the store: a bad file stops the start at once.
    let web_config = match &args.metrics_web_config {
        None => None,
        Some(path) => Some(WebConfig::load(path).map_err(|e| {
            anyhow::anyhow!("invalid --metrics-web-config: {e}\nhint: fix the file (its format is in docs/metrics-security.md), or leave out --metrics-web-config to serve /metrics over plain HTTP without auth")
        })?),
    };
    let (state, background) = build_state(args).await?;
    let api = bind(args.listen, "API", "--listen").await?;
    let metrics = bind(args.metrics_listen, "metrics", "--metrics-listen").await?;
    Ok(Bound {
        state,
        api,
        metrics,
        background,
        web_config,
        drain_timeout: args.drain_timeout.0,
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

impl Bound {
    /// `https` when the metrics listener's web config turns on TLS, else `http`.
    pub fn metrics_scheme(&self) -> &'static str {
        self.web_config.as_ref().map_or("http", WebConfig::scheme)
    }

    /// Serves until `shutdown` resolves, then stops accepting, drains in-flight
    /// requests (bounded by the drain timeout) and returns.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let state = self.state.clone();
        let api_addr = self.api.local_addr()?;
        let metrics_addr = self.metrics.local_addr()?;
        tracing::info!(
            api = %api_addr,
            metrics = %metrics_addr,
            metrics_tls = self.web_config.as_ref().is_some_and(WebConfig::tls),
            metrics_auth = self.web_config.as_ref().is_some_and(WebConfig::requires_auth),
            models = %state.model_names().join(","),
            default_model = %state.default_model().card.name,
            "serving"
        );
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let api =
            axum::serve(self.api, app(state.clone())).with_graceful_shutdown(wait(stop_rx.clone()));
        let api = tokio::spawn(async move { api.await });
        // No web config: plain HTTP without auth.
        let web_config = self.web_config.unwrap_or_default();
        let (listener, router) = (self.metrics, metrics_app(state.clone()));
        let stop = wait(stop_rx.clone());
        let metrics = tokio::spawn(async move { web_config.serve(listener, router, stop).await });
        // A model that panics in batch after batch stops the inference thread; the
        // replica then stops too, with the reason, instead of staying up answering
        // nothing (its supervisor restarts it).
        let (failed_tx, mut failed_rx) = tokio::sync::mpsc::channel(state.models().len());
        let watchers = Background(
            state
                .models()
                .iter()
                .filter_map(|model| model.batcher().map(|b| (model, b)))
                .map(|(model, batcher)| {
                    let health = batcher.health().clone();
                    let name = model.card.name.clone();
                    let several = state.models().len() > 1;
                    let failed_tx = failed_tx.clone();
                    tokio::spawn(async move {
                        health.stopped().await;
                        let reason = health.reason().map(|r| {
                            if several {
                                format!("model {name}: {r}")
                            } else {
                                r
                            }
                        });
                        let _ = failed_tx.send(reason).await;
                    })
                })
                .collect(),
        );
        drop(failed_tx);
        let failed = tokio::select! {
            () = shutdown => None,
            Some(reason) = failed_rx.recv() => reason,
        };
        drop(watchers);
        tracing::info!("shutting down: no new connections, draining in-flight requests");
        state.accepting.store(false, Ordering::Relaxed);
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(self.drain_timeout, async {
            let _ = api.await;
            let _ = metrics.await;
        })
        .await;
        drop(self.background);
        // Labels were durable when acknowledged; this makes the last predictions so.
        if let Some(truth) = state.ground_truth.clone() {
            let _ = tokio::task::spawn_blocking(move || truth.close()).await;
        }
        if drained.is_err() {
            tracing::warn!(timeout = ?self.drain_timeout, "drain timed out; exiting with requests in flight");
        }
        tracing::info!("stopped");
        match failed {
            None => Ok(()),
            Some(reason) => Err(anyhow::anyhow!(
                "{reason}\nhint: the model panics on the inputs it gets; check the model file and the server log above, then restart"
            )),
        }
    }
}

/// `modelwatch serve`: everything until a signal, then a graceful drain.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let bound = bind_server(&args).await?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "ready");
    eprintln!(
        "modelwatch serve: {} on http://{} (metrics on {}://{}/metrics{}), ready in {} ms",
        bound
            .state
            .models()
            .iter()
            .map(|m| format!("{} {}", m.card.name, m.card.version))
            .collect::<Vec<_>>()
            .join(", "),
        bound.api.local_addr()?,
        bound.metrics_scheme(),
        bound.metrics.local_addr()?,
        if bound
            .web_config
            .as_ref()
            .is_some_and(WebConfig::requires_auth)
        {
            ", with auth"
        } else {
            ""
        },
        started.elapsed().as_millis()
    );
    bound.serve(shutdown_signal()).await
}
