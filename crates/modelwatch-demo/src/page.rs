//! Module implementing the page that `modelwatch demo` opens beside its lab. See
//! [`start`] for details.

use crate::lab::Lab;
use std::net::SocketAddr;
use std::time::Duration;

/// Starts the model-health page for `lab` and returns its URL: the full page
/// (`modelwatch ui`) on `listen` when the lab runs Prometheus, otherwise the
/// server's own page on its metrics listener. A taken `listen` port falls back to
/// a free one.
pub async fn start(lab: &Lab, listen: SocketAddr) -> anyhow::Result<String> {
    let Some(prometheus) = lab.prometheus_url() else {
        return Ok(format!("{}/", lab.metrics));
    };
    let settings = modelwatch_ui::server::UiSettings {
        prometheus,
        // The lab's Prometheus scrapes every second.
        scrape_interval: Duration::from_secs(1),
        config: lab.mixin.clone(),
        refresh_seconds: 5,
        range: "15m".into(),
    };
    let (address, _task) = match modelwatch_ui::cli::spawn(listen, settings.clone()).await {
        Ok(bound) => bound,
        Err(_) => {
            modelwatch_ui::cli::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), settings).await?
        }
    };
    Ok(format!("http://{address}/"))
}
