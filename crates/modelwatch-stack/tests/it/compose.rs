//! deploy/compose, checked without Docker: every service can be built or pulled,
//! every mounted host path exists, host ports are distinct, and the mounted
//! Prometheus and Alertmanager configs pass promtool and amtool with the files the
//! containers would see.

use crate::support::{read, repo, run, yaml};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

const COMPOSE: &str = "deploy/compose/docker-compose.yml";

fn compose() -> Value {
    yaml(&read(COMPOSE))
}

fn compose_dir() -> PathBuf {
    repo("deploy/compose")
}

/// `(host source, container target)` of a service's bind mounts.
fn binds(service: &Value) -> Vec<(PathBuf, String)> {
    service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .filter_map(|v| {
            let mut parts = v.split(':');
            let source = parts.next()?;
            let target = parts.next()?;
            (source.starts_with('.') || source.starts_with('/'))
                .then(|| (compose_dir().join(source), target.to_string()))
        })
        .collect()
}

fn command_flag(service: &Value, name: &str) -> String {
    service["command"]
        .as_array()
        .expect("a command list")
        .iter()
        .filter_map(|a| a.as_str())
        .find_map(|a| a.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} in {service}"))
        .to_string()
}

/// The host file behind `container_path`, through the service's bind mounts.
fn host_path(service: &Value, container_path: &str) -> PathBuf {
    binds(service)
        .into_iter()
        .filter(|(_, target)| container_path.starts_with(target.as_str()))
        .max_by_key(|(_, target)| target.len())
        .map(|(source, target)| {
            let rest = container_path[target.len()..].trim_start_matches('/');
            if rest.is_empty() {
                source
            } else {
                source.join(rest)
            }
        })
        .unwrap_or_else(|| panic!("{container_path} is not mounted from the repository"))
}

#[test]
fn every_service_has_an_image_its_mounts_and_a_free_host_port() {
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    for expected in [
        "modelwatch",
        "prometheus",
        "alertmanager",
        "grafana",
        "thanos-sidecar",
        "thanos-query",
        "minio",
    ] {
        assert!(names.contains(expected), "no {expected} service");
    }
    let declared: BTreeSet<&str> = compose["volumes"]
        .as_object()
        .expect("named volumes")
        .keys()
        .map(String::as_str)
        .collect();
    let mut host_ports = BTreeSet::new();
    for (name, service) in services {
        if let Some(build) = service.get("build") {
            let context = compose_dir().join(build["context"].as_str().expect("a context"));
            assert!(
                context.is_dir(),
                "{name}: build context {}",
                context.display()
            );
            let dockerfile = context.join(build["dockerfile"].as_str().unwrap_or("Dockerfile"));
            assert!(dockerfile.is_file(), "{name}: {}", dockerfile.display());
        } else {
            let image = service["image"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has neither image nor build"));
            assert!(
                image.contains(':') && !image.ends_with(":latest"),
                "{name}: pin the image tag: {image}"
            );
        }
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let volume = volume.as_str().expect("short volume syntax");
            let source = volume.split(':').next().expect("a source");
            if source.starts_with('.') || source.starts_with('/') {
                let path = compose_dir().join(source);
                assert!(
                    path.exists(),
                    "{name}: mounted {} does not exist",
                    path.display()
                );
            } else {
                assert!(
                    declared.contains(source),
                    "{name}: volume {source} is not declared"
                );
            }
        }
        for port in service["ports"].as_array().into_iter().flatten() {
            let port = port.as_str().expect("\"host:container\"");
            let host = port.split(':').next().expect("a host port").to_string();
            assert!(
                host_ports.insert(host.clone()),
                "{name}: host port {host} is taken twice"
            );
        }
        let depends: Vec<String> = match &service["depends_on"] {
            Value::Array(list) => list
                .iter()
                .filter_map(|d| d.as_str().map(String::from))
                .collect(),
            Value::Object(map) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        for dependency in depends {
            assert!(
                names.contains(dependency.as_str()),
                "{name} depends on unknown {dependency}"
            );
        }
    }
}

#[test]
fn the_mounted_prometheus_config_passes_promtool_with_the_mixin_rules() {
    let compose = compose();
    let prometheus = &compose["services"]["prometheus"];
    let config_in_container = command_flag(prometheus, "--config.file");
    let config_path = host_path(prometheus, &config_in_container);
    let mut text = std::fs::read_to_string(&config_path).expect("the mounted config");
    // Rewrite each container path to the repository file mounted there.
    let mut mounts = binds(prometheus);
    mounts.sort_by_key(|(_, target)| std::cmp::Reverse(target.len()));
    for (source, target) in &mounts {
        text = text.replace(target.as_str(), &source.to_string_lossy());
    }
    assert!(
        binds(prometheus)
            .iter()
            .any(|(s, _)| s.ends_with("mixin/prometheus")),
        "the rules come from mixin/prometheus"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let checked = dir.path().join("prometheus.yml");
    std::fs::write(&checked, &text).expect("write");
    let output = run(
        std::process::Command::new(modelwatch_stack::env::promtool_bin())
            .arg("check")
            .arg("config")
            .arg(&checked),
        "apt-get install -y prometheus (it ships promtool)",
    );
    let rule_files = std::fs::read_dir(repo("mixin/prometheus"))
        .expect("mixin/prometheus")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
        .count();
    assert!(
        output.contains(&format!("SUCCESS: {rule_files} rule files found")),
        "{output}"
    );

    // Every scrape target outside the container itself is a compose service.
    let config = yaml(&read("deploy/compose/prometheus/prometheus.yml"));
    let services = compose["services"].as_object().expect("services");
    for job in config["scrape_configs"].as_array().expect("jobs") {
        for target in job["static_configs"][0]["targets"]
            .as_array()
            .expect("targets")
        {
            let host = target
                .as_str()
                .and_then(|t| t.split(':').next())
                .expect("host:port");
            assert!(
                host == "localhost" || services.contains_key(host),
                "unknown target host {host}"
            );
        }
    }
    let modelwatch_job = config["scrape_configs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["job_name"] == "modelwatch")
        .expect("the job the mixin selects");
    let metrics_listen =
        compose["services"]["modelwatch"]["environment"]["MODELWATCH_METRICS_LISTEN"]
            .as_str()
            .expect("metrics listen");
    let port = metrics_listen.rsplit(':').next().expect("a port");
    assert_eq!(
        modelwatch_job["static_configs"][0]["targets"][0],
        format!("modelwatch:{port}")
    );
}

#[test]
fn the_mounted_alertmanager_config_passes_amtool() {
    let compose = compose();
    let alertmanager = &compose["services"]["alertmanager"];
    let config = host_path(alertmanager, &command_flag(alertmanager, "--config.file"));
    run(
        std::process::Command::new(modelwatch_stack::env::AMTOOL_BIN)
            .arg("check-config")
            .arg(&config),
        "apt-get install -y prometheus-alertmanager (it ships amtool)",
    );
}

#[test]
fn grafana_provisions_the_mixin_dashboards_and_both_data_sources() {
    let compose = compose();
    let grafana = &compose["services"]["grafana"];
    let mounts = binds(grafana);
    let (_, dashboards_target) = mounts
        .iter()
        .find(|(source, _)| source.ends_with("mixin/grafana"))
        .expect("mixin/grafana is mounted");
    let provisioning = host_path(grafana, "/etc/grafana/provisioning");
    let providers = yaml(
        &std::fs::read_to_string(provisioning.join("dashboards/modelwatch.yaml"))
            .expect("provider"),
    );
    assert_eq!(
        providers["providers"][0]["options"]["path"],
        dashboards_target.as_str()
    );
    assert_eq!(providers["providers"][0]["type"], "file");

    let sources = yaml(
        &std::fs::read_to_string(provisioning.join("datasources/datasources.yaml"))
            .expect("datasources"),
    );
    let services = compose["services"].as_object().expect("services");
    for source in sources["datasources"].as_array().expect("datasources") {
        assert_eq!(source["type"], "prometheus");
        let url = source["url"].as_str().expect("url");
        let host = url
            .trim_start_matches("http://")
            .split(':')
            .next()
            .expect("host");
        assert!(
            services.contains_key(host),
            "{url} is not a compose service"
        );
    }
    let thanos_port = command_flag(&compose["services"]["thanos-query"], "--http-address");
    let port = thanos_port.rsplit(':').next().expect("port");
    assert!(
        sources["datasources"]
            .as_array()
            .expect("list")
            .iter()
            .any(|s| s["url"] == format!("http://thanos-query:{port}"))
    );
}

#[test]
fn thanos_uploads_to_the_bucket_minio_setup_creates() {
    let compose = compose();
    let sidecar = &compose["services"]["thanos-sidecar"];
    let objstore = yaml(
        &std::fs::read_to_string(host_path(
            sidecar,
            &command_flag(sidecar, "--objstore.config-file"),
        ))
        .expect("objstore"),
    );
    assert_eq!(objstore["type"], "S3");
    let endpoint = objstore["config"]["endpoint"].as_str().expect("endpoint");
    assert!(
        compose["services"]
            .get(endpoint.split(':').next().expect("host"))
            .is_some()
    );
    let bucket = objstore["config"]["bucket"].as_str().expect("bucket");
    let setup = compose["services"]["minio-setup"]["entrypoint"].to_string();
    assert!(
        setup.contains(&format!("mc mb --ignore-existing local/{bucket}")),
        "{setup}"
    );
    // The sidecar reads the TSDB Prometheus writes.
    let prometheus_tsdb = command_flag(&compose["services"]["prometheus"], "--storage.tsdb.path");
    assert_eq!(command_flag(sidecar, "--tsdb.path"), prometheus_tsdb);
    let shared = |service: &Value| -> Option<String> {
        service["volumes"]
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str())
            .find_map(|v| {
                let (source, target) = v.split_once(':')?;
                (target.split(':').next() == Some(prometheus_tsdb.as_str()))
                    .then(|| source.to_string())
            })
    };
    assert_eq!(shared(sidecar), shared(&compose["services"]["prometheus"]));
}

#[test]
fn the_dockerfile_builds_the_modelwatch_binary_in_two_stages() {
    let dockerfile = read("deploy/compose/Dockerfile");
    let stages = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(stages >= 2, "a build stage and a runtime stage");
    assert!(dockerfile.contains("cargo build --release --locked -p modelwatch-cli"));
    assert!(dockerfile.contains("COPY --from=build"));
    assert!(
        dockerfile.contains("\nUSER "),
        "the image does not run as root"
    );
    let cli = read("crates/modelwatch-cli/Cargo.toml");
    assert!(
        cli.contains("name = \"modelwatch\""),
        "the binary is called modelwatch"
    );
    assert!(dockerfile.contains("target/release/modelwatch"));
    let ignore = read("deploy/compose/Dockerfile.dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target"),
        "the build context leaves target/ out"
    );
}
