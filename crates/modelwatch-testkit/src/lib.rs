//! Test support shared by the modelwatch crates, so that each thing a test needs is
//! written once:
//!
//! - [`serve::Serve`]: the real `modelwatch serve` binary on loopback ephemeral
//!   ports with a temporary data directory and a small seeded store, stopped by its
//!   own process id;
//! - [`store`]: seeding a feature store with the store's id formats;
//! - [`models`]: a model repository with two different models;
//! - [`exposition`]: a parser of the Prometheus text exposition (and OpenMetrics);
//! - [`dashboard`]: the dashboard's queries, with Grafana's variables replaced;
//! - [`promtool`]: `promtool` from Debian's `prometheus` package;
//! - [`redis::Redis`]: a real `redis-server` on loopback (plain, or TLS with a
//!   password), killed and restarted on the same port by its own process id;
//! - [`http::Stub`]: a loopback HTTP endpoint (a metrics target, a webhook);
//! - [`venv`]: the Python virtual environment of the tests that run real Python
//!   clients (tritonclient).
//!
//! Prometheus itself is started by `modelwatch_stack::start_prometheus`, the one
//! launcher of the workspace.
//!
//! ```
//! let text = "# TYPE requests_total counter\nrequests_total{status=\"ok\"} 3\n";
//! let exposition = modelwatch_testkit::exposition::parse(text).expect("valid");
//! assert_eq!(exposition.sum("requests_total", &[("status", "ok")]), 3.0);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod dashboard;
pub mod exposition;
pub mod http;
pub mod models;
pub mod promtool;
pub mod redis;
pub mod serve;
pub mod store;
pub mod tls;
pub mod venv;

pub use serve::Serve;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// A free TCP port on 127.0.0.1 (the OS's pick; free when this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process that is killed by its own pid, and reaped, when dropped.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
