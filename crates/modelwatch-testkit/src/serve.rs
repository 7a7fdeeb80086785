//! Module implementing a handle on a running `modelwatch serve`. See [`Serve`] for
//! details.

use modelwatch_stack::process::{Signal, signal};
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long [`Serve::start`] waits for the ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Serve::terminate`] waits for the exit after SIGTERM.
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long dropping a [`Serve`] waits after SIGTERM before SIGKILL.
pub const DROP_TIMEOUT: Duration = Duration::from_secs(15);
/// Lines of the server's stderr kept for failure messages.
const KEPT_LINES: usize = 200;

/// The prefix of the line `serve` prints once it is ready:
/// `modelwatch serve: fraud 1.0.0 on http://A (metrics on http://B/metrics), ready in N ms`.
const READY_PREFIX: &str = "modelwatch serve: ";

/// A `modelwatch serve` process started by this test, on loopback ephemeral ports,
/// with a temporary data directory holding a small seeded store
/// ([`crate::store::small_store`]).
///
/// Dropping it sends SIGTERM to its own process id, waits up to [`DROP_TIMEOUT`],
/// then kills it; [`Serve::terminate`] stops it and returns its exit code.
#[derive(Debug)]
pub struct Serve {
    /// `http://127.0.0.1:<port>` of the API.
    pub api: String,
    /// `http://127.0.0.1:<port>` of the metrics listener (`/metrics` is below it).
    pub metrics: String,
    child: Option<Child>,
    pid: u32,
    stderr: Arc<Mutex<Vec<String>>>,
    /// The thread draining stderr; it ends when the server's stderr closes.
    reader: Option<std::thread::JoinHandle<()>>,
    /// Kept so the data directory lives as long as the server.
    data: tempfile::TempDir,
}

impl Serve {
    /// Starts `binary serve` with `args` after `--listen 127.0.0.1:0
    /// --metrics-listen 127.0.0.1:0 --data-dir <temporary, seeded>`, and waits for
    /// its ready line. Panics with the server's stderr when it exits or is not ready
    /// within [`READY_TIMEOUT`].
    pub fn start(binary: &Path, args: &[&str]) -> Self {
        let data = tempfile::Builder::new()
            .prefix("modelwatch-serve-")
            .tempdir()
            .expect("a temporary data directory");
        crate::store::small_store(data.path());
        Self::start_in(binary, data, args)
    }

    /// Like [`Serve::start`] on a data directory a stopped server left (see
    /// [`Serve::kill`]): its store and prediction log as they were.
    pub fn start_in(binary: &Path, data: tempfile::TempDir, args: &[&str]) -> Self {
        let mut child = Command::new(binary)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .env("MODELWATCH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let pid = child.id();
        let stderr = child.stderr.take().expect("stderr is piped");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let kept = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let kept = kept.clone();
            // Drains stderr for the server's whole life, so it never blocks on a full
            // pipe, and keeps the last lines for failure messages.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.strip_prefix(READY_PREFIX) {
                        let _ = ready_tx.send(rest.to_string());
                    }
                    let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                    if kept.len() == KEPT_LINES {
                        kept.remove(0);
                    }
                    kept.push(line);
                }
            })
        };
        let mut serve = Self {
            api: String::new(),
            metrics: String::new(),
            child: Some(child),
            pid,
            stderr: kept,
            reader: Some(reader),
            data,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let ready = loop {
            if let Ok(rest) = ready_rx.recv_timeout(Duration::from_millis(100)) {
                break rest;
            }
            if let Some(status) = serve
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "modelwatch serve exited during start-up ({status}):\n{}",
                    serve.stderr_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no ready line from modelwatch serve within {READY_TIMEOUT:?}:\n{}",
                serve.stderr_tail()
            );
        };
        let [api, metrics] = ready_urls(&ready)
            .unwrap_or_else(|| panic!("no API and metrics URLs in the ready line {ready:?}"));
        serve.api = api;
        serve.metrics = metrics;
        serve
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The data directory (`--data-dir`).
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The last lines the server wrote to stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// Sends SIGTERM to the server's own process id and returns its exit code once
    /// it has exited (`None` when a signal ended it). Panics when it is still running
    /// [`TERMINATE_TIMEOUT`] later (and then kills it).
    pub fn terminate(mut self) -> Option<i32> {
        let mut child = self.child.take().expect("the server was started");
        signal(self.pid, Signal::TERM).expect("SIGTERM reaches the server");
        match wait_until(&mut child, TERMINATE_TIMEOUT) {
            Some(status) => status.code(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "modelwatch serve did not exit within {TERMINATE_TIMEOUT:?} of SIGTERM:\n{}",
                    self.stderr_tail()
                );
            }
        }
    }
}

impl Serve {
    /// Sends SIGKILL to the server's own process id, waits for it, and returns its
    /// data directory for [`Serve::start_in`].
    pub fn kill(mut self) -> tempfile::TempDir {
        let mut child = self.child.take().expect("the server was started");
        let _ = signal(self.pid, Signal::KILL);
        let _ = child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let placeholder = tempfile::Builder::new()
            .prefix("modelwatch-killed-")
            .tempdir()
            .expect("a temporary directory");
        std::mem::replace(&mut self.data, placeholder)
    }

    /// Waits up to `timeout` for the server to exit on its own and returns its exit
    /// code (`None` when a signal ended it) and the last lines of its stderr. Panics
    /// when it is still running then.
    pub fn wait_exit(mut self, timeout: Duration) -> (Option<i32>, String) {
        let mut child = self.child.take().expect("the server was started");
        match wait_until(&mut child, timeout) {
            Some(status) => {
                // Its stderr is closed now: the reader has seen every line.
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                (status.code(), self.stderr_tail())
            }
            None => {
                let _ = signal(self.pid, Signal::TERM);
                let _ = wait_until(&mut child, DROP_TIMEOUT);
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "modelwatch serve did not exit on its own within {timeout:?}:\n{}",
                    self.stderr_tail()
                );
            }
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let _ = signal(self.pid, Signal::TERM);
            if wait_until(&mut child, DROP_TIMEOUT).is_some() {
                return;
            }
            // SIGKILL through the Child API: still our own process id.
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// Waits up to `timeout` for `child` to exit and reaps it.
fn wait_until(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The API and metrics base URLs of the ready line (after its prefix):
/// `fraud 1.0.0 on http://A (metrics on http://B/metrics), ready in N ms`. The metrics
/// listener says `https://` when a web config turns TLS on; the scheme is kept.
fn ready_urls(line: &str) -> Option<[String; 2]> {
    let mut urls = line.split_whitespace().filter_map(|word| {
        let (scheme, rest) = word.split_once("://")?;
        let scheme = scheme.trim_start_matches('(');
        let host = rest.split([')', '/', ',']).next().unwrap_or_default();
        (matches!(scheme, "http" | "https") && !host.is_empty())
            .then(|| format!("{scheme}://{host}"))
    });
    Some([urls.next()?, urls.next()?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_metrics_listener_keeps_its_scheme() {
        let line = "fraud 1.0.0 on http://127.0.0.1:1 (metrics on https://127.0.0.1:2/metrics), ready in 12 ms";
        assert_eq!(
            ready_urls(line),
            Some([
                "http://127.0.0.1:1".to_string(),
                "https://127.0.0.1:2".to_string()
            ])
        );
    }

    #[test]
    fn urls_come_from_the_ready_line() {
        let line = "fraud 1.0.0 on http://127.0.0.1:41234 (metrics on http://127.0.0.1:41235/metrics), ready in 12 ms";
        assert_eq!(
            ready_urls(line),
            Some([
                "http://127.0.0.1:41234".to_string(),
                "http://127.0.0.1:41235".to_string()
            ])
        );
        assert_eq!(ready_urls("fraud 1.0.0 on http://127.0.0.1:1"), None);
    }
}
