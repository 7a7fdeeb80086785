//! Test support: a tiny HTTP server on loopback that answers every GET with a
//! fixed body (a metrics endpoint) and records every POST body (a webhook).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Fails the test with a hint when Debian's binaries are missing.
pub fn require_binaries() {
    assert!(
        modelwatch_stack::available(),
        "prometheus or prometheus-alertmanager is not installed\nhint: apt-get install -y prometheus prometheus-alertmanager (scripts/test.sh does)"
    );
}

/// A loopback HTTP server running on its own thread until dropped.
#[derive(Debug)]
pub struct Stub {
    address: SocketAddr,
    posts: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stub {
    /// Serves `body` (as the Prometheus text format) to every GET.
    pub fn serve(body: String) -> Self {
        Self::serve_with(move || body.clone())
    }

    /// Serves what `render` returns at each GET.
    pub fn serve_with(render: impl Fn() -> String + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let address = listener.local_addr().expect("local address");
        let posts = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (posts, stop) = (posts.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => answer(stream, &render, &posts),
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        Self {
            address,
            posts,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:<port>`, usable as a scrape target.
    pub fn target(&self) -> String {
        self.address.to_string()
    }

    /// `http://127.0.0.1:<port>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.address)
    }

    /// The bodies of the POST requests received so far.
    pub fn posts(&self) -> Vec<String> {
        self.posts.lock().expect("posts lock").clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(mut stream: TcpStream, render: &dyn Fn() -> String, posts: &Mutex<Vec<String>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_string();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while request.len() < head_end + length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let reply = if head.starts_with("POST") {
        let end = request.len().min(head_end + length);
        posts
            .lock()
            .expect("posts lock")
            .push(String::from_utf8_lossy(&request[head_end..end]).to_string());
        String::new()
    } else {
        render()
    };
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

/// Whether a process with this id exists (a reaped child no longer does).
pub fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// A path inside the repository.
pub fn repo(relative: &str) -> std::path::PathBuf {
    repo_root().join(relative)
}

/// Reads a repository file.
pub fn read(relative: &str) -> String {
    std::fs::read_to_string(repo(relative)).unwrap_or_else(|e| panic!("read {relative}: {e}"))
}

/// Parses one YAML document as JSON-like data.
pub fn yaml(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{text}"))
}

/// Parses every document of a YAML stream, skipping empty ones.
pub fn yaml_documents(text: &str) -> Vec<serde_json::Value> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{text}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Runs a command to completion and returns its stdout; panics with its stderr
/// when it fails, and with `hint` when it cannot be started.
pub fn run(command: &mut std::process::Command, hint: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}\nhint: {hint}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// `kubectl kustomize <dir>` (a repository directory), as YAML text.
pub fn kustomize(relative: &str) -> String {
    run(
        std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(repo(relative)),
        "install kubectl: apt-get install -y kubernetes-client (Debian bookworm ships kubectl 1.20, whose built-in kustomize renders these bases), or any later kubectl",
    )
}

/// The objects of a YAML stream, by `Kind/name`.
pub fn by_kind_and_name(
    objects: &[serde_json::Value],
) -> std::collections::BTreeMap<String, serde_json::Value> {
    objects
        .iter()
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or("?"),
                    o["metadata"]["name"].as_str().unwrap_or("?")
                ),
                o.clone(),
            )
        })
        .collect()
}

/// Validates a YAML stream with deploy/tests/validate.py; panics with its report
/// when an object is invalid, with a hint when Python or its modules are missing.
pub fn validate_objects(yaml_stream: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("python3")
        .arg(repo("deploy/tests/validate.py"))
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run python3: {e}\nhint: install Python 3, then pip install -r deploy/tests/requirements.txt")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml_stream.as_bytes())
        .expect("write the objects");
    let output = child.wait_with_output().expect("validate.py");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        output.status.code() != Some(2),
        "{stderr}\n(the hint above says what to install)"
    );
    assert!(
        output.status.success(),
        "invalid objects:\n{stdout}{stderr}"
    );
    stdout
}

/// Whether the test run asked to rewrite generated files (`MODELWATCH_BLESS=1`).
pub fn bless() -> bool {
    std::env::var_os("MODELWATCH_BLESS").is_some_and(|v| v == "1")
}
