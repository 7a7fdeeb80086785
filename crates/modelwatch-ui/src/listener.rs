//! Module implementing the page that `modelwatch serve` answers on its metrics
//! listener at `/`, without Prometheus. See [`page`] for details.
//!
//! `modelwatch status --metrics URL` judges two scrapes of a URL. The page gives
//! the exact same verdict without copying its arithmetic: it encodes the server's
//! registry twice, [`SCRAPE_GAP`] apart, and hands both texts to
//! `modelwatch_status::source::from_scrapes`, the function behind `status
//! --metrics`. No socket is opened (so the listener's TLS and credentials are not
//! bypassed), and nothing is computed, bound or scheduled while nobody asks for the
//! page.

use crate::dashboard::Dashboard;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use modelwatch_mixin::MixinConfig;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Time between the two encodings behind the page.
pub const SCRAPE_GAP: Duration = Duration::from_secs(2);

/// Seconds between reloads of the listener's page.
pub const REFRESH_SECONDS: u32 = 5;

/// Encodes the metrics twice with `encode` (the text exposition, as `/metrics`
/// answers it), [`SCRAPE_GAP`] apart, judges them as `status --metrics` does, and
/// draws the verdict, the key-health stats and the status board for `model`.
pub async fn page(
    encode: impl Fn() -> Result<String, std::fmt::Error>,
    model: &str,
    config: &MixinConfig,
) -> Response {
    let report = read(encode, model, config)
        .await
        .map_err(|e| format!("{e:#}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    match Dashboard::model_health() {
        Ok(dashboard) => Html(crate::page::render_listener(
            &dashboard,
            &report,
            model,
            now,
            REFRESH_SECONDS,
        ))
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn read(
    encode: impl Fn() -> Result<String, std::fmt::Error>,
    model: &str,
    config: &MixinConfig,
) -> anyhow::Result<modelwatch_status::Report> {
    let first = encode().map_err(|_| anyhow::anyhow!("cannot encode this server's metrics"))?;
    let started = Instant::now();
    tokio::time::sleep(SCRAPE_GAP).await;
    let second = encode().map_err(|_| anyhow::anyhow!("cannot encode this server's metrics"))?;
    modelwatch_status::source::from_scrapes(
        &first,
        &second,
        started.elapsed(),
        "this server's /metrics",
        Some(model),
        config,
    )
}
