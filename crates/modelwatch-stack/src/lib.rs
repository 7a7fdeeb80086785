//! The monitoring stack around modelwatch: Debian's Prometheus and Alertmanager
//! started on loopback with temporary directories, the HTTP API calls that tests
//! need, and the pieces behind `modelwatch stack`.
//!
//! Prometheus and Alertmanager are the real engines; this crate only writes their
//! config, starts them, waits until they are ready and stops them by their own
//! process id.
//!
//! ```
//! use modelwatch_stack::{PrometheusConfig, ScrapeJob};
//!
//! let config = PrometheusConfig {
//!     scrape_jobs: vec![ScrapeJob::new("modelwatch", ["127.0.0.1:9464"])],
//!     ..Default::default()
//! };
//! let yaml = config.to_yaml(&[]);
//! assert!(yaml.contains("job_name: \"modelwatch\""));
//! assert_eq!(modelwatch_stack::prom_duration(config.scrape_interval), "1s");
//! ```
//!
//! Starting a server and querying it (needs `apt-get install -y prometheus`):
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use modelwatch_stack::{PrometheusConfig, ScrapeJob, http_client, start_prometheus, wait_for_samples};
//! use std::time::Duration;
//!
//! let dir = std::env::temp_dir().join("prometheus-demo");
//! std::fs::create_dir_all(&dir)?;
//! let prometheus = start_prometheus(&PrometheusConfig { dir, ..Default::default() })?;
//! let client = http_client()?;
//! let up = wait_for_samples(&client, &prometheus.url(), "vector(1)", Duration::from_secs(5)).await?;
//! assert_eq!(up[0].value, 1.0);
//! prometheus.stop(); // or drop it: SIGTERM to its own pid, then SIGKILL
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod alertmanager;
pub mod api;
pub mod cli;
pub mod env;
pub mod k8s;
pub mod local;
pub mod page;
pub mod process;
pub mod prometheus;
pub mod victoriametrics;

pub use alertmanager::{AlertmanagerConfig, start_alertmanager};
pub use api::{
    Alert, QuerySample, ScrapeTarget, alertmanager_alerts, firing_alerts, http_client,
    percent_encode, query, query_at, targets, wait_for, wait_for_samples,
};
pub use cli::{StackArgs, run};
pub use process::{Process, resolve_listen, signal};
pub use prometheus::{
    PrometheusConfig, ScrapeAuth, ScrapeJob, ScrapeTls, prom_duration, start_prometheus,
};
pub use victoriametrics::{
    VictoriaMetricsConfig, VmalertConfig, start_victoria_metrics, start_vmalert, vmalert_rules,
};

/// Whether Debian's Prometheus and Alertmanager binaries (or the ones the
/// `MODELWATCH_*_BIN` variables name) are installed.
pub fn available() -> bool {
    env::prometheus_bin().is_file() && env::alertmanager_bin().is_file()
}
