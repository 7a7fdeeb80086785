//! Module implementing `modelwatch ui`'s flags. See [`UiArgs`] for details.

use crate::page::RANGES;
use crate::server::{UiSettings, UiState};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The default listen address of the page.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9470";

/// Serve the model-health page: the Grafana dashboard (mixin/grafana/model-health.json)
/// drawn live from Prometheus, with the status verdict, the firing alerts and their
/// runbook sections. Open the printed URL in a browser.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = modelwatch_duration::HELP)]
pub struct UiArgs {
    /// Prometheus base URL, such as http://127.0.0.1:9090.
    #[arg(long, env = "MODELWATCH_PROMETHEUS")]
    pub prometheus: String,

    /// Address the page listens on.
    #[arg(long, env = "MODELWATCH_UI_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Prometheus' scrape interval (`$__rate_interval` is at least four of them, as
    /// in Grafana): such as 15s or 1s.
    #[arg(long, default_value = "15s", value_parser = parse_scrape_interval)]
    pub scrape_interval: Duration,

    /// Default time range of the charts (the page's control overrides it).
    #[arg(long, default_value = "1h", value_parser = clap::builder::PossibleValuesParser::new(RANGES))]
    pub range: String,

    /// Default seconds between reloads of the page; 0 turns the refresh off.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub refresh: u32,

    /// Mixin config whose thresholds the verdict uses (default: the mixin's defaults).
    #[arg(long, env = "MODELWATCH_MIXIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// A scrape interval from 1s to 1h, in the grammar of every modelwatch duration.
fn parse_scrape_interval(text: &str) -> Result<Duration, String> {
    modelwatch_duration::parse_between(
        text,
        Duration::from_secs(1),
        Duration::from_secs(3600),
        "give the scrape_interval of the Prometheus in --prometheus, such as 15s",
    )
}

/// Binds `listen` and serves the page from `settings` in a task; returns the
/// address (a port 0 is resolved) and the task.
pub async fn spawn(
    listen: SocketAddr,
    settings: UiSettings,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    let state = Arc::new(UiState::new(settings)?);
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {listen}: {e}\nhint: pick another address with --listen, such as 127.0.0.1:0")
    })?;
    let address = listener.local_addr()?;
    let task = tokio::spawn(crate::server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    Ok((address, task))
}

/// Runs `modelwatch ui` until Ctrl-C.
pub async fn run(args: &UiArgs) -> anyhow::Result<ExitCode> {
    let config = modelwatch_status::cli::load_config(args.config.as_deref())?;
    let settings = UiSettings {
        prometheus: args.prometheus.trim_end_matches('/').to_string(),
        scrape_interval: args.scrape_interval,
        config,
        refresh_seconds: args.refresh,
        range: args.range.clone(),
    };
    let state = Arc::new(UiState::new(settings)?);
    let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e}\nhint: pick another address with --listen, such as 127.0.0.1:0",
            args.listen
        )
    })?;
    eprintln!(
        "modelwatch ui: http://{}/ (the model-health dashboard, drawn from {})",
        listener.local_addr()?,
        args.prometheus
    );
    crate::server::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
