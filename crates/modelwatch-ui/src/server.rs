//! Module implementing the router of `modelwatch ui`: `/` draws the dashboard from
//! Prometheus on each request, `/runbook` serves the mixin's runbook. See [`app`]
//! for details.

use crate::Series;
use crate::dashboard::Dashboard;
use crate::page::{AlertRow, Controls, Page, QueryResult, RANGES, render};
use crate::prometheus::{label_values, query_range};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use modelwatch_mixin::MixinConfig;
use modelwatch_mixin::variables::{regex_literal, substitute};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the page needs to know about its Prometheus.
#[derive(Debug, Clone)]
pub struct UiSettings {
    /// Prometheus' base URL, such as `http://127.0.0.1:9090`.
    pub prometheus: String,
    /// Prometheus' scrape interval, from which `$__rate_interval` is derived as
    /// Grafana does (at least four scrapes).
    pub scrape_interval: Duration,
    /// The mixin config whose thresholds the verdict uses.
    pub config: MixinConfig,
    /// Default seconds between reloads (the `refresh` query parameter overrides).
    pub refresh_seconds: u32,
    /// Default time range, one of [`RANGES`] (the `range` parameter overrides).
    pub range: String,
}

/// The router's shared state.
#[derive(Debug)]
pub struct UiState {
    settings: UiSettings,
    client: reqwest::Client,
    dashboard: Dashboard,
}

impl UiState {
    /// State for the embedded model-health dashboard.
    pub fn new(settings: UiSettings) -> anyhow::Result<Self> {
        anyhow::ensure!(
            RANGES.contains(&settings.range.as_str()),
            "unknown range {:?}\nhint: pick one of {}",
            settings.range,
            RANGES.join(", ")
        );
        Ok(Self {
            settings,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(8))
                .build()?,
            dashboard: Dashboard::model_health()?,
        })
    }
}

/// The page's router: `GET /` and `GET /runbook`. Nothing runs between requests.
pub fn app(state: Arc<UiState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/runbook", get(runbook))
        .fallback(not_found)
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<UiState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

fn error(status: StatusCode, kind: &str, message: String) -> Response {
    let body = serde_json::json!({"error": {"type": kind, "message": message}});
    (status, Json(body)).into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such page; the page is at /".into(),
    )
}

async fn runbook() -> Html<String> {
    Html(crate::runbook::render())
}

/// `5m`, `6h`, `2d` in seconds.
pub fn range_seconds(range: &str) -> Option<f64> {
    let (n, unit) = range.split_at(range.find(|c: char| !c.is_ascii_digit())?);
    let n: f64 = n.parse().ok()?;
    Some(
        n * match unit {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 604_800.0,
            _ => return None,
        },
    )
}

/// The step of a range: about 240 points, in whole seconds.
pub fn step_for(range_seconds: f64) -> f64 {
    (range_seconds / 240.0).ceil().max(1.0)
}

/// Grafana's `$__rate_interval`: the larger of four scrape intervals and one step
/// plus one scrape interval.
pub fn rate_interval(step: f64, scrape: Duration) -> f64 {
    let scrape = scrape.as_secs_f64().max(1.0);
    (4.0 * scrape).max(step + scrape).ceil()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn variable_definition<'a>(dashboard: &'a Dashboard, name: &str) -> &'a str {
    dashboard
        .variables
        .iter()
        .find(|v| v.name == name)
        .map_or("", |v| v.definition.as_str())
}

async fn page(
    State(state): State<Arc<UiState>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let s = &state.settings;
    let range = query
        .get("range")
        .cloned()
        .unwrap_or_else(|| s.range.clone());
    if !RANGES.contains(&range.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_range",
            format!("range must be one of {}", RANGES.join(", ")),
        );
    }
    let refresh_seconds = match query.get("refresh").map(|r| r.parse::<u32>()) {
        None => s.refresh_seconds,
        Some(Ok(r)) if r <= 3600 => r,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_refresh",
                "refresh is whole seconds from 0 (off) to 3600".into(),
            );
        }
    };
    let base = s.prometheus.as_str();
    let client = &state.client;
    let dashboard = &state.dashboard;
    let models = label_values(client, base, variable_definition(dashboard, "model")).await;
    let models = match models {
        Ok(m) => m,
        Err(e) => {
            let mut page = Page::empty(dashboard, &format!("prometheus {base}"));
            page.controls.range = range;
            page.controls.refresh_seconds = refresh_seconds;
            page.report = Err(format!("cannot reach Prometheus at {base}: {e}"));
            page.alerts = Err(e);
            page.now = unix_now();
            return Html(render(&page)).into_response();
        }
    };
    let model = match query.get("model").filter(|m| !m.is_empty()) {
        Some(m) if models.contains(m) => Some(m.clone()),
        Some(m) => {
            let known = if models.is_empty() {
                "it has no model yet (no model_info series scraped); leave model out".into()
            } else {
                format!("it has: {}", models.join(", "))
            };
            return error(
                StatusCode::BAD_REQUEST,
                "unknown_model",
                format!("Prometheus has no model {m:?}; {known}"),
            );
        }
        None => models.first().cloned(),
    };
    let versions = match &model {
        Some(m) => {
            let def = substitute(
                variable_definition(dashboard, "version"),
                &[("model", &regex_literal(m))],
            );
            match def {
                Ok(d) => label_values(client, base, &d).await.unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        }
        None => Vec::new(),
    };
    let version = match query.get("version").filter(|v| !v.is_empty()) {
        Some(v) if versions.contains(v) => Some(v.clone()),
        Some(v) => {
            return error(
                StatusCode::BAD_REQUEST,
                "unknown_version",
                format!(
                    "no version {v:?} of this model; known: {}",
                    versions.join(", ")
                ),
            );
        }
        None => None,
    };
    let now = unix_now();
    let span = range_seconds(&range).unwrap_or(3600.0);
    let step = step_for(span);
    let end = (now / step).floor() * step;
    let window = (end - span, end);
    let results = match &model {
        Some(m) => panel_results(&state, m, version.as_deref(), window, step).await,
        None => BTreeMap::new(),
    };
    let report =
        modelwatch_status::source::from_prometheus(client, base, model.as_deref(), &s.config)
            .await
            .map_err(|e| format!("{e:#}"));
    let alerts = modelwatch_stack::firing_alerts(client, base)
        .await
        .map(|list| {
            list.into_iter()
                .filter(|a| {
                    let m = a.labels.get("model");
                    m.is_none() || m == model.as_ref()
                })
                .map(|a| AlertRow {
                    name: a.name().to_string(),
                    severity: a.labels.get("severity").cloned().unwrap_or_default(),
                    labels: a
                        .labels
                        .iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity"))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    summary: a.annotations.get("summary").cloned().unwrap_or_default(),
                    description: a
                        .annotations
                        .get("description")
                        .cloned()
                        .unwrap_or_default(),
                    runbook_url: a
                        .annotations
                        .get("runbook_url")
                        .cloned()
                        .unwrap_or_default(),
                })
                .collect()
        })
        .map_err(|e| format!("{e:#}"));
    let page = Page {
        dashboard,
        source: format!("prometheus {base}"),
        controls: Controls {
            models,
            model,
            versions,
            version,
            range,
            refresh_seconds,
        },
        report,
        alerts,
        results,
        window,
        step,
        now,
    };
    Html(render(&page)).into_response()
}

/// Runs every drawn panel's queries at once, with the dashboard's variables
/// substituted by [`substitute`].
async fn panel_results(
    state: &Arc<UiState>,
    model: &str,
    version: Option<&str>,
    window: (f64, f64),
    step: f64,
) -> BTreeMap<u64, Vec<QueryResult>> {
    let model = regex_literal(model);
    let version = version.map_or_else(|| ".*".to_string(), regex_literal);
    let rate = format!("{}s", rate_interval(step, state.settings.scrape_interval));
    let interval = format!("{step}s");
    let span = format!("{}s", window.1 - window.0);
    let span_s = format!("{}", window.1 - window.0);
    let vars: [(&str, &str); 7] = [
        ("model", &model),
        ("version", &version),
        ("__rate_interval", &rate),
        ("__interval", &interval),
        ("__range", &span),
        ("__range_s", &span_s),
        ("datasource", ""),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for panel in state.dashboard.panels().filter(|p| p.is_drawn()) {
        for (i, target) in panel.targets.iter().enumerate() {
            let promql = substitute(&target.expr, &vars).map_err(|e| e.to_string());
            let (state, legend, id) = (state.clone(), target.legend.clone(), panel.id);
            tasks.spawn(async move {
                let result = match promql {
                    Ok(q) => {
                        query_range(&state.client, &state.settings.prometheus, &q, window, step)
                            .await
                            .map(|list| {
                                list.into_iter()
                                    .map(|(labels, points)| Series {
                                        name: crate::legend(&legend, &labels),
                                        labels,
                                        points,
                                    })
                                    .collect()
                            })
                    }
                    Err(e) => Err(e),
                };
                (id, i, result)
            });
        }
    }
    let mut by_panel: BTreeMap<u64, Vec<(usize, QueryResult)>> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok((id, i, result)) = done {
            by_panel.entry(id).or_default().push((i, result));
        }
    }
    by_panel
        .into_iter()
        .map(|(id, mut list)| {
            list.sort_by_key(|(i, _)| *i);
            (id, list.into_iter().map(|(_, r)| r).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_steps_and_rate_intervals() {
        assert_eq!(range_seconds("5m"), Some(300.0));
        assert_eq!(range_seconds("2d"), Some(172_800.0));
        assert_eq!(range_seconds("5x"), None);
        assert_eq!(step_for(300.0), 2.0);
        assert_eq!(step_for(21_600.0), 90.0);
        assert_eq!(rate_interval(2.0, Duration::from_secs(1)), 4.0);
        assert_eq!(rate_interval(90.0, Duration::from_secs(15)), 105.0);
        for r in RANGES {
            assert!(range_seconds(r).is_some(), "{r}");
        }
    }
}
