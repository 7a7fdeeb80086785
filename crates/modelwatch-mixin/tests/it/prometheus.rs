//! Test harness: a real Prometheus (Debian's `/usr/bin/prometheus`) on loopback,
//! with a temporary config and data directory, the generated rule files, a 1 s
//! scrape and rule evaluation interval, and static targets. It is stopped by its
//! own process id when dropped.

use modelwatch_mixin::yaml::Yaml;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's package puts the server.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// One sample of an instant query.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series labels, `__name__` included when the result has one.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
    /// The evaluation time, in Unix seconds.
    pub timestamp: f64,
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    address: SocketAddr,
    dir: tempfile::TempDir,
    client: reqwest::blocking::Client,
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`, job `job`) every second and
    /// evaluating `rule_files` every second, and waits until it is ready.
    pub fn start(job: &str, targets: &[String], rule_files: &[PathBuf]) -> Self {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing\nhint: run `bash scripts/test.sh`, which installs it (Debian package prometheus)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let mut copied = Vec::new();
        for (i, file) in rule_files.iter().enumerate() {
            let to = dir.path().join(format!("rules-{i}.yaml"));
            std::fs::copy(file, &to).expect("copy a rule file");
            copied.push(Yaml::str(to.to_string_lossy()));
        }
        let config = Yaml::map([
            (
                "global",
                Yaml::map([
                    ("scrape_interval", Yaml::plain("1s")),
                    ("scrape_timeout", Yaml::plain("1s")),
                    ("evaluation_interval", Yaml::plain("1s")),
                ]),
            ),
            ("rule_files", Yaml::List(copied)),
            (
                "scrape_configs",
                Yaml::List(vec![Yaml::map([
                    ("job_name", Yaml::str(job)),
                    (
                        "static_configs",
                        Yaml::List(vec![Yaml::map([(
                            "targets",
                            Yaml::List(targets.iter().map(Yaml::str).collect()),
                        )])]),
                    ),
                ])]),
            ),
        ]);
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config.to_document()).expect("write the config");
        let address: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("http client");
        let prometheus = Self {
            child,
            address,
            dir,
            client,
        };
        prometheus.wait_ready(Duration::from_secs(30));
        prometheus
    }

    fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let url = format!("http://{}/-/ready", self.address);
        while Instant::now() < deadline {
            if self
                .client
                .get(&url)
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "prometheus was not ready within {timeout:?}\n{}",
            self.log()
        );
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Runs an instant query at the current time; a scalar comes back as one sample
    /// without labels.
    pub fn query(&self, promql: &str) -> Vec<Sample> {
        self.query_with(promql, &[])
    }

    /// Runs an instant query evaluated at `time` (Unix seconds).
    pub fn query_at(&self, promql: &str, time: f64) -> Vec<Sample> {
        self.query_with(promql, &[("time", format!("{time}"))])
    }

    fn query_with(&self, promql: &str, extra: &[(&str, String)]) -> Vec<Sample> {
        let mut params = vec![("query", promql.to_string())];
        params.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        let response: serde_json::Value = self
            .client
            .get(format!("{}/api/v1/query", self.url()))
            .query(&params)
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("query {promql}: {e}"));
        assert_eq!(response["status"], "success", "query {promql}: {response}");
        let value = |v: &serde_json::Value| -> f64 {
            v[1].as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("a sample value in {v}"))
        };
        let timestamp = |v: &serde_json::Value| v[0].as_f64().unwrap_or_default();
        let data = &response["data"];
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| Sample {
                    labels: r["metric"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect(),
                    value: value(&r["value"]),
                    timestamp: timestamp(&r["value"]),
                })
                .collect(),
            Some("scalar") => vec![Sample {
                labels: BTreeMap::new(),
                value: value(&data["result"]),
                timestamp: timestamp(&data["result"]),
            }],
            other => panic!("query {promql}: unexpected result type {other:?}"),
        }
    }

    /// Polls `promql` until it returns samples, or panics after `timeout`.
    pub fn wait_for(&self, promql: &str, timeout: Duration) -> Vec<Sample> {
        let deadline = Instant::now() + timeout;
        loop {
            let samples = self.query(promql);
            if !samples.is_empty() {
                return samples;
            }
            assert!(
                Instant::now() < deadline,
                "{promql} returned nothing within {timeout:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Our own child, by its pid: never a broad kill.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP endpoint on loopback that answers every request with the body
/// `render` returns (the Prometheus text format), until dropped.
#[derive(Debug)]
pub struct MetricsEndpoint {
    address: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsEndpoint {
    /// Serves `render()` on a free loopback port.
    pub fn serve(render: impl Fn() -> String + Send + 'static) -> Self {
        use std::io::Write as _;
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let address = listener.local_addr().expect("address");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                // Read the request head; its content does not matter.
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = render();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self {
            address,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:<port>`, a scrape target.
    pub fn target(&self) -> String {
        self.address.to_string()
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
