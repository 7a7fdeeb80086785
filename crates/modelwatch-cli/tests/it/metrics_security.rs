//! `modelwatch serve --metrics-web-config`: Debian's Prometheus scrapes the real
//! binary over TLS with basic auth, with a bearer token and with a client
//! certificate, and is refused without credentials. Certificates and credentials
//! are made in a temporary directory by the test.

use crate::support::Server;
use modelwatch_stack::{
    PrometheusConfig, ScrapeAuth, ScrapeJob, ScrapeTls, http_client, start_prometheus, targets,
    wait_for, wait_for_samples,
};
use sha2::Digest as _;
use std::path::Path;
use std::time::Duration;

/// Bound for what normally takes a few seconds; a way to fail instead of hanging,
/// never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

const PASSWORD: &str = "correct horse battery staple";
const TOKEN: &str = "f4b1c3e0a9d84c2b8e6f7a5d3c1b0e9f";

fn sha256_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn target(server: &Server) -> String {
    server
        .metrics
        .split("://")
        .nth(1)
        .expect("scheme://host:port")
        .to_string()
}

#[tokio::test]
async fn prometheus_scrapes_over_tls_with_basic_bearer_and_client_certificates() {
    assert!(
        modelwatch_stack::available(),
        "prometheus is not installed\nhint: apt-get install -y prometheus prometheus-alertmanager (scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = modelwatch_testkit::tls::pki(dir.path(), "modelwatch test CA");
    // Cost 4 (bcrypt's least) keeps the debug build quick; production files use 10+.
    let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
    let auth_config = dir.path().join("web-auth.yml");
    std::fs::write(
        &auth_config,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS12\nbasic_auth_users:\n  prometheus: {hash}\nbearer_auth_tokens:\n  ci: {}\n",
            sha256_hex(TOKEN)
        ),
    )
    .expect("write the web config");
    let mtls_config = dir.path().join("web-mtls.yml");
    std::fs::write(
        &mtls_config,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    )
    .expect("write the web config");
    let secret = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write a secret");
        path
    };
    let password_file = secret("password", PASSWORD);
    let wrong_password_file = secret("wrong-password", "incorrect horse");
    let token_file = secret("token", TOKEN);

    let auth_server =
        Server::start(&["--metrics-web-config", auth_config.to_str().expect("UTF-8")]);
    let mtls_server =
        Server::start(&["--metrics-web-config", mtls_config.to_str().expect("UTF-8")]);
    assert!(
        auth_server.metrics.starts_with("https://"),
        "{}",
        auth_server.metrics
    );

    let verified = ScrapeTls {
        ca_file: Some(pki.ca.clone()),
        ..ScrapeTls::default()
    };
    let basic = |password_file: &Path| ScrapeAuth::Basic {
        username: "prometheus".into(),
        password_file: password_file.to_path_buf(),
    };
    let prom_dir = tempfile::tempdir().expect("tempdir");
    let prometheus = start_prometheus(&PrometheusConfig {
        dir: prom_dir.path().to_path_buf(),
        scrape_jobs: vec![
            ScrapeJob::new("tls-basic", [target(&auth_server)])
                .with_tls(verified.clone())
                .with_auth(basic(&password_file)),
            ScrapeJob::new("tls-bearer", [target(&auth_server)])
                .with_tls(ScrapeTls {
                    // The certificate names localhost too; checked instead of the IP.
                    server_name: Some("localhost".into()),
                    ..verified.clone()
                })
                .with_auth(ScrapeAuth::Bearer {
                    credentials_file: token_file,
                }),
            ScrapeJob::new("tls-anonymous", [target(&auth_server)]).with_tls(verified.clone()),
            ScrapeJob::new("tls-wrong-password", [target(&auth_server)])
                .with_tls(verified.clone())
                .with_auth(basic(&wrong_password_file)),
            ScrapeJob::new("tls-client-cert", [target(&mtls_server)]).with_tls(ScrapeTls {
                client_cert: Some((pki.client_cert.clone(), pki.client_key.clone())),
                ..verified.clone()
            }),
            ScrapeJob::new("tls-no-client-cert", [target(&mtls_server)]).with_tls(verified.clone()),
        ],
        ..Default::default()
    })
    .expect("start prometheus");
    let client = http_client().expect("client");
    let url = prometheus.url();

    for job in ["tls-basic", "tls-bearer", "tls-client-cert"] {
        let up = wait_for_samples(
            &client,
            &url,
            &format!("up{{job=\"{job}\"}} == 1"),
            PATIENCE,
        )
        .await;
        if let Err(e) = up {
            // Prometheus' own view of every target, for the failure message.
            let seen: Vec<String> = targets(&client, &url)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|t| format!("{} {} {}", t.labels["job"], t.health, t.last_error))
                .collect();
            panic!("{job}: {e}\ntargets: {seen:#?}");
        }
        let info = wait_for_samples(
            &client,
            &url,
            &format!("model_info{{job=\"{job}\"}}"),
            PATIENCE,
        )
        .await
        .unwrap_or_else(|e| panic!("{job}: {e}"));
        assert_eq!(info[0].labels["model"], "fraud", "{job}");
    }

    // Refused scrapes: down, with Prometheus' own account of why.
    for (job, expected) in [
        ("tls-anonymous", &["401"][..]),
        ("tls-wrong-password", &["401"][..]),
        // Under TLS 1.3 the server refuses the missing certificate after the client
        // has finished its half of the handshake, so Go's client reports the
        // certificate alert, or a reset or broken connection, depending on timing.
        (
            "tls-no-client-cert",
            &["certificate", "connection reset", "broken pipe"][..],
        ),
    ] {
        let refused = wait_for(&format!("{job} is down"), PATIENCE, || async {
            let all = targets(&client, &url).await?;
            Ok(all
                .into_iter()
                .find(|t| t.labels["job"] == job && t.health == "down"))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", prometheus.log_tail(30)));
        assert!(refused.scrape_url.starts_with("https://"), "{refused:?}");
        assert!(
            expected.iter().any(|e| refused.last_error.contains(e)),
            "{job}: {:?} should mention one of {expected:?}",
            refused.last_error
        );
        let up = wait_for_samples(
            &client,
            &url,
            &format!("up{{job=\"{job}\"}} == 0"),
            PATIENCE,
        )
        .await
        .unwrap_or_else(|e| panic!("{job}: {e}"));
        assert_eq!(up.len(), 1);
        let leaked =
            modelwatch_stack::query(&client, &url, &format!("model_info{{job=\"{job}\"}}"))
                .await
                .expect("query");
        assert!(leaked.is_empty(), "{job} got metrics: {leaked:?}");
    }

    prometheus.stop();
    assert_eq!(auth_server.terminate(), Some(0));
    assert_eq!(mtls_server.terminate(), Some(0));
}

#[test]
fn an_invalid_web_config_stops_serve_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (text, expected) in [
        (
            "basic_auth_user:\n  prometheus: x\n",
            "unknown key `basic_auth_user`",
        ),
        (
            "basic_auth_users:\n  prometheus: plain-text\n",
            "`basic_auth_users.prometheus` is not a bcrypt hash",
        ),
        (
            "tls_server_config:\n  cert_file: absent.crt\n  key_file: absent.key\n",
            "absent.crt",
        ),
    ] {
        let path = dir.path().join("web.yml");
        std::fs::write(&path, text).expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--metrics-web-config")
            .arg(&path)
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("error: invalid --metrics-web-config"),
            "{stderr}"
        );
        assert!(stderr.contains(expected), "{text:?}: {stderr}");
        assert!(stderr.contains("\nhint: "), "{stderr}");
        assert!(
            !dir.path().join("data").exists(),
            "the file is checked before the store is seeded"
        );
    }
}
