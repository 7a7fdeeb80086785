//! Starts the real `modelwatch serve` binary on loopback with a temporary data
//! directory, and stops it by its own process id.

use modelwatch_server::features::FeatureLayout;
use modelwatch_server::load;
use modelwatch_server::store::SqliteStore;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A known customer and terminal in the small test store.
pub const CUSTOMER: &str = "C000001";
pub const TERMINAL: &str = "T00001";

/// A running server.
pub struct Server {
    pub child: Child,
    pub api: String,
    pub metrics: String,
    /// Kept so the data directory lives as long as the server.
    _data: tempfile::TempDir,
    /// Kept so the reader thread keeps draining the server's stderr.
    _stderr_lines: std::sync::mpsc::Receiver<String>,
}

/// Writes a small store so the server does not seed the full simulated population.
pub fn small_store(dir: &std::path::Path) {
    let card_path = load::unpack_bundled(dir).expect("bundled model unpacks");
    let card = modelwatch_runtime::ModelCard::load(&card_path).expect("card");
    let layout = FeatureLayout::from_card(&card).expect("layout");
    let store = SqliteStore::open(&dir.join("features.sqlite")).expect("store");
    for (_, group) in &layout.entity_groups {
        let names: Vec<&str> = group.features.iter().map(String::as_str).collect();
        let values: Vec<f32> = (0..names.len()).map(|i| (i + 1) as f32).collect();
        let entity = if group.name == "customer" {
            CUSTOMER
        } else {
            TERMINAL
        };
        store
            .upsert_group(
                &group.name,
                &names,
                [(entity.to_string(), values.as_slice(), 1_700_000_000)],
            )
            .expect("write");
    }
}

impl Server {
    /// Starts `modelwatch serve` with `args` on ephemeral loopback ports and waits for
    /// its ready line.
    pub fn start(args: &[&str]) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        small_store(data.path());
        let mut child = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .env("MODELWATCH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no ready line from modelwatch serve within 60 s");
            };
            // "modelwatch serve: fraud 1.0.0 on http://127.0.0.1:PORT (metrics on http://127.0.0.1:PORT/metrics), ..."
            // (https for the metrics with a web config's TLS)
            if let Some(rest) = line.strip_prefix("modelwatch serve: ") {
                let urls: Vec<&str> = rest
                    .split("://")
                    .skip(1)
                    .map(|s| s.split([' ', ')', '/', ',']).next().unwrap_or(""))
                    .collect();
                let metrics_scheme = if rest.contains("metrics on https://") {
                    "https"
                } else {
                    "http"
                };
                return Server {
                    child,
                    api: format!("http://{}", urls[0]),
                    metrics: format!("{metrics_scheme}://{}", urls[1]),
                    _data: data,
                    _stderr_lines: rx,
                };
            }
        }
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("modelwatch serve did not exit within 30 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses a text exposition into (series, value) pairs.
pub fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Sum of every sample whose series starts with `prefix` and contains all `parts`.
pub fn sum(samples: &[(String, f64)], prefix: &str, parts: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(s, _)| s.starts_with(prefix) && parts.iter().all(|p| s.contains(p)))
        .map(|(_, v)| v)
        .sum()
}
