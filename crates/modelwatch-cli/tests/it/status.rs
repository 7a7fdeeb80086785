//! The status contract through the real binary: 0 HEALTHY, 1 DEGRADED, 2 UNHEALTHY, and
//! 3 for every failure to judge, each with a `hint:` line on stderr.

use crate::support::Server;
use std::process::{Command, Output};

/// Runs `modelwatch status ARGS` with none of its environment variables set.
fn status(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .arg("status")
        .args(args)
        .env_remove("MODELWATCH_PROMETHEUS")
        .env_remove("MODELWATCH_METRICS_URL")
        .env_remove("MODELWATCH_STATUS_MODEL")
        .env_remove("MODELWATCH_MIXIN_CONFIG")
        .output()
        .expect("the binary runs")
}

/// The exit code and stderr, after checking that a failure says what to do next.
fn cannot_judge(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    let hint = stderr
        .lines()
        .find(|l| l.starts_with("hint: "))
        .unwrap_or_else(|| panic!("no hint line in {stderr}"));
    assert!(!hint.ends_with('.'), "{hint}");
    stderr
}

/// A loopback URL where nothing listens: a port the kernel just handed out, closed.
fn closed_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}{path}")
}

#[test]
fn usage_error_exits_3_not_unhealthy_2() {
    // clap's own exit code for a usage error is 2, which status uses for UNHEALTHY.
    let stderr = cannot_judge(&status(&["--no-such-flag"]));
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
    let stderr = cannot_judge(&status(&[
        "--prometheus",
        "http://a",
        "--metrics",
        "http://b",
    ]));
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

#[test]
fn help_and_version_exit_0() {
    let help = status(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--interval <DURATION>"), "{text}");
    assert!(text.contains("3 when it cannot judge"), "{text}");
    let version = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .arg("--version")
        .output()
        .expect("the binary runs");
    assert_eq!(version.status.code(), Some(0));
}

#[test]
fn unreadable_config_exits_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.toml");
    let source = closed_url("/metrics");
    let stderr = cannot_judge(&status(&[
        "--config",
        missing.to_str().expect("utf-8 path"),
        "--metrics",
        &source,
    ]));
    assert!(stderr.contains("cannot read mixin config"), "{stderr}");
    assert!(stderr.contains("missing.toml"), "{stderr}");
}

#[test]
fn invalid_config_exits_3_not_degraded_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = closed_url("/metrics");
    for (text, says) in [
        ("[drift\npsi_warning = ", "is invalid"),
        ("[drift]\npsi_warning = \"high\"\n", "psi_warning"),
    ] {
        let path = dir.path().join("mixin.toml");
        std::fs::write(&path, text).expect("write");
        let stderr = cannot_judge(&status(&[
            "--config",
            path.to_str().expect("utf-8 path"),
            "--metrics",
            &source,
        ]));
        assert!(stderr.contains(says), "{text:?}: {stderr}");
    }
}

#[test]
fn unreachable_source_exits_3() {
    let url = closed_url("/metrics");
    let stderr = cannot_judge(&status(&["--metrics", &url]));
    assert!(
        stderr.contains("cannot scrape") && stderr.contains(&url),
        "{stderr}"
    );
    let url = closed_url("");
    let stderr = cannot_judge(&status(&["--prometheus", &url]));
    assert!(stderr.contains("cannot reach Prometheus"), "{stderr}");
    let stderr = cannot_judge(&status(&[]));
    assert!(stderr.contains("nothing to read"), "{stderr}");
}

/// Against a real server: the duration flags work, an out-of-range interval is
/// refused (it used to be clamped to 8 s and read), and a page status cannot judge
/// exits 3.
#[test]
fn a_real_server_is_judged_and_bad_flags_are_refused() {
    let server = Server::start(&[]);
    let metrics = format!("{}/metrics", server.metrics);

    // No traffic: DEGRADED, a verdict, read with a duration that has a unit.
    let output = status(&["--metrics", &metrics, "--interval", "600ms", "--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["verdict"], "DEGRADED");

    let stderr = cannot_judge(&status(&["--metrics", &metrics, "--interval", "20s"]));
    assert!(
        stderr.contains("must be from 500ms to 8s, got 20s"),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot scrape"), "{stderr}");
    let stderr = cannot_judge(&status(&["--metrics", &metrics, "--interval", "100"]));
    assert!(stderr.contains("got 1m 40s"), "{stderr}");
    let stderr = cannot_judge(&status(&["--metrics", &metrics, "--watch", "100ms"]));
    assert!(stderr.contains("must be at least 1s"), "{stderr}");

    // A model that is not there, and a page that is not a metrics page.
    let stderr = cannot_judge(&status(&[
        "--metrics",
        &metrics,
        "--interval",
        "500ms",
        "--model",
        "no_such_model",
    ]));
    assert!(
        stderr.contains("no model \"no_such_model\"") && stderr.contains("fraud"),
        "{stderr}"
    );
    let api_page = format!("{}/healthz", server.api);
    let stderr = cannot_judge(&status(&["--metrics", &api_page, "--interval", "500ms"]));
    assert!(stderr.contains("no modelwatch metrics"), "{stderr}");
}
