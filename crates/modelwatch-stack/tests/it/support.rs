//! Test support: binaries, repository files, YAML and validators. The loopback
//! HTTP stub is the test kit's.

pub use modelwatch_testkit::http::Stub;

/// Fails the test with a hint when Debian's binaries are missing.
pub fn require_binaries() {
    assert!(
        modelwatch_stack::available(),
        "prometheus or prometheus-alertmanager is not installed\nhint: apt-get install -y prometheus prometheus-alertmanager (scripts/test.sh does)"
    );
}

/// Whether a process with this id exists (a reaped child no longer does).
pub fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A path inside the repository.
pub fn repo(relative: &str) -> std::path::PathBuf {
    modelwatch_testkit::workspace_root().join(relative)
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

/// The interpreter of the repository's virtual environment (`.venv`, which
/// scripts/test.sh creates with every pinned requirement), or `python3` without one.
pub fn python() -> std::path::PathBuf {
    let venv = repo(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// Validates a YAML stream with deploy/tests/validate.py; panics with its report
/// when an object is invalid, with a hint when Python or its modules are missing.
pub fn validate_objects(yaml_stream: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new(python())
        .arg(repo("deploy/tests/validate.py"))
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run python3: {e}\nhint: run scripts/test.sh once, or python3 -m venv .venv && .venv/bin/pip install -r deploy/tests/requirements.txt")
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
