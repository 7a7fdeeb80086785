//! deploy/kubernetes: the generated objects are current, the kustomize base renders,
//! every object validates, and the objects fit together (selectors, ports, probes,
//! the shutdown arithmetic, the mixin's job label).

use crate::support::{
    bless, by_kind_and_name, kustomize, read, repo, validate_objects, yaml, yaml_documents,
};
use modelwatch_stack::k8s::{self, kubernetes_manifests};
use serde_json::Value;

fn rendered() -> std::collections::BTreeMap<String, Value> {
    by_kind_and_name(&yaml_documents(&kustomize("deploy/kubernetes")))
}

#[test]
fn generated_objects_match_the_committed_mixin() {
    let files = kubernetes_manifests(&repo("mixin")).expect("generate from mixin/");
    let out = repo(k8s::GENERATED_DIR);
    if bless() {
        modelwatch_mixin::write(&out, &files).expect("write the generated objects");
    }
    if let Err(stale) = modelwatch_mixin::check(&out, &files) {
        panic!(
            "{stale} in {}\nhint: run `modelwatch stack k8s-manifests` (or MODELWATCH_BLESS=1 cargo test -p modelwatch-stack --test it) and commit the result",
            k8s::GENERATED_DIR
        );
    }
}

#[test]
fn the_base_renders_and_every_object_validates() {
    let text = kustomize("deploy/kubernetes");
    let objects = by_kind_and_name(&yaml_documents(&text));
    let names: Vec<&str> = objects.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "ConfigMap/modelwatch-dashboards",
            "Deployment/modelwatch",
            "PodDisruptionBudget/modelwatch",
            "PrometheusRule/modelwatch",
            "Service/modelwatch",
            "ServiceMonitor/modelwatch",
        ]
    );
    for object in objects.values() {
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/part-of"], "modelwatch",
            "{object}"
        );
    }
    let report = validate_objects(&text);
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok ")).count(),
        6,
        "{report}"
    );
}

#[test]
fn the_validator_rejects_unknown_fields_and_bad_types() {
    let bad = "apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: typo}
spec:
  selector: {matchLabels: {a: b}}
  endpoints: [{port: metrics, intervall: 15s}]
---
apiVersion: v1
kind: Service
metadata: {name: typo}
spec:
  ports: [{name: http, port: \"eighty\"}]
";
    let output = std::process::Command::new(crate::support::python())
        .arg(repo("deploy/tests/validate.py"))
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(bad.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run validate.py");
    let report = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{report}{stderr}");
    assert!(
        report.contains("FAIL ServiceMonitor/typo") && report.contains("intervall"),
        "{report}"
    );
    assert!(report.contains("FAIL Service/typo"), "{report}");
}

#[test]
fn the_prometheus_rule_and_dashboard_are_the_mixin() {
    let objects = rendered();
    let rule = &objects["PrometheusRule/modelwatch"];
    let mut groups = Vec::new();
    for file in [
        "mixin/prometheus/rules.yaml",
        "mixin/prometheus/alerts.yaml",
    ] {
        let parsed = yaml(&read(file));
        groups.extend(parsed["groups"].as_array().expect("groups").iter().cloned());
    }
    assert!(groups.len() > 3, "the mixin has groups");
    assert_eq!(rule["spec"]["groups"], Value::Array(groups));

    let dashboards = &objects["ConfigMap/modelwatch-dashboards"];
    assert_eq!(dashboards["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard = read("mixin/grafana/model-health.json");
    assert_eq!(
        dashboards["data"]["model-health.json"].as_str(),
        Some(dashboard.as_str()),
        "the ConfigMap holds the dashboard byte for byte"
    );
}

/// `10s`, `500ms` or `2m` in seconds.
fn seconds(text: &str) -> f64 {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("a duration: {text}"));
    number
        * match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            other => panic!("unit {other:?} in {text}"),
        }
}

fn env_value<'a>(container: &'a Value, name: &str) -> &'a str {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("env {name} is set"))
}

#[test]
fn the_deployment_drains_within_its_grace_period() {
    let objects = rendered();
    let pod = &objects["Deployment/modelwatch"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let grace = pod["terminationGracePeriodSeconds"]
        .as_f64()
        .expect("a grace period");
    let command = container["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .expect("a preStop command");
    assert_eq!(command[0], "sleep");
    let pre_stop: f64 = command[1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("sleep seconds");
    let drain = seconds(env_value(container, "MODELWATCH_DRAIN_TIMEOUT"));
    assert!(pre_stop > 0.0, "endpoints need time to drop the pod");
    assert!(
        pre_stop + drain < grace,
        "preStop {pre_stop}s + drain {drain}s must fit in terminationGracePeriodSeconds {grace}s"
    );
}

#[test]
fn the_deployment_serves_what_the_server_listens_on() {
    let objects = rendered();
    let pod = &objects["Deployment/modelwatch"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["args"][0], "serve");
    let port = |name: &str| {
        container["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("a port named {name}"))
    };
    assert_eq!(port("http"), 8080);
    assert_eq!(port("metrics"), 9464);
    assert!(env_value(container, "MODELWATCH_LISTEN").ends_with(":8080"));
    assert!(env_value(container, "MODELWATCH_METRICS_LISTEN").ends_with(":9464"));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "http");

    // Every MODELWATCH_* variable is one the binary reads.
    let sources =
        read("crates/modelwatch-server/src/config.rs") + &read("crates/modelwatch-cli/src/main.rs");
    for var in container["env"].as_array().expect("env") {
        let name = var["name"].as_str().expect("a name");
        assert!(
            sources.contains(&format!("\"{name}\"")),
            "{name} is not read by modelwatch serve"
        );
    }

    // Non-root with a read-only root file system; --data-dir is a writable emptyDir.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    let data_dir = env_value(container, "MODELWATCH_DATA_DIR");
    let mount = container["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["mountPath"] == data_dir)
        .expect("the data dir is mounted");
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    assert!(volume["emptyDir"].is_object(), "{volume}");
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
}

fn is_subset(small: &Value, big: &Value) -> bool {
    small
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| big.get(k) == Some(v)))
}

#[test]
fn the_service_monitor_scrapes_the_pods_as_the_mixins_job() {
    let objects = rendered();
    let deployment = &objects["Deployment/modelwatch"];
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let service = &objects["Service/modelwatch"];
    let monitor = &objects["ServiceMonitor/modelwatch"];
    let budget = &objects["PodDisruptionBudget/modelwatch"];

    assert!(is_subset(
        &deployment["spec"]["selector"]["matchLabels"],
        pod_labels
    ));
    assert!(is_subset(&service["spec"]["selector"], pod_labels));
    assert!(is_subset(
        &budget["spec"]["selector"]["matchLabels"],
        pod_labels
    ));
    assert!(is_subset(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"]
    ));

    let service_ports: Vec<&Value> = service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .collect();
    let names: Vec<&str> = service_ports
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["http", "metrics"]);
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(endpoint["interval"], "15s");

    // The job label comes from a Service label, and must be the job the rules select.
    let job_label = monitor["spec"]["jobLabel"].as_str().expect("jobLabel");
    let job = service["metadata"]["labels"][job_label]
        .as_str()
        .expect("the job label's value");
    let rules = read("mixin/prometheus/rules.yaml");
    assert!(
        rules.contains(&format!("job=\"{job}\"")),
        "the mixin's rules do not select job=\"{job}\""
    );
}

/// deploy/secure-metrics: the base with TLS and basic auth on the metrics listener
/// (docs/metrics-security.md).
#[test]
fn the_secure_metrics_overlay_scrapes_over_https_with_credentials_from_secrets() {
    let text = kustomize("deploy/secure-metrics");
    let report = validate_objects(&text);
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok ")).count(),
        6,
        "{report}"
    );
    let objects = by_kind_and_name(&yaml_documents(&text));
    let base = rendered();

    // The server reads the web config from the mounted Secret.
    let pod = &objects["Deployment/modelwatch"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let web_config = env_value(container, "MODELWATCH_METRICS_WEB_CONFIG");
    assert!(
        read("crates/modelwatch-server/src/config.rs")
            .contains("\"MODELWATCH_METRICS_WEB_CONFIG\""),
        "modelwatch serve reads MODELWATCH_METRICS_WEB_CONFIG"
    );
    let secret_of = |path: &str| {
        let mount = container["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| {
                m["mountPath"]
                    .as_str()
                    .is_some_and(|dir| path.starts_with(&format!("{dir}/")))
            })
            .unwrap_or_else(|| panic!("{path} is on a mounted volume"));
        assert_eq!(mount["readOnly"], true, "{mount}");
        let volume = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("the mounted volume");
        volume["secret"]["secretName"]
            .as_str()
            .unwrap_or_else(|| panic!("{path} comes from a Secret: {volume}"))
            .to_string()
    };
    assert_eq!(secret_of(web_config), "modelwatch-metrics-web-config");
    // The paths that deploy/secure-metrics/README.md's web.yml names.
    assert_eq!(
        secret_of("/etc/modelwatch/tls/tls.crt"),
        "modelwatch-metrics-tls"
    );
    // Everything else in the pod is the base's.
    let base_container =
        &base["Deployment/modelwatch"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"], base_container["ports"]);
    assert_eq!(
        container["readinessProbe"],
        base_container["readinessProbe"]
    );

    // The ServiceMonitor keeps the base's endpoint and adds HTTPS and basic auth.
    let endpoint = &objects["ServiceMonitor/modelwatch"]["spec"]["endpoints"][0];
    let base_endpoint = &base["ServiceMonitor/modelwatch"]["spec"]["endpoints"][0];
    for key in ["port", "path", "interval", "scrapeTimeout"] {
        assert_eq!(endpoint[key], base_endpoint[key], "{key}");
    }
    assert_eq!(endpoint["scheme"], "https");
    assert_eq!(
        endpoint["tlsConfig"]["ca"]["secret"]["name"],
        "modelwatch-metrics-ca"
    );
    assert!(endpoint["tlsConfig"]["serverName"].is_string());
    assert!(
        endpoint["tlsConfig"].get("insecureSkipVerify").is_none(),
        "the certificate is checked"
    );
    for part in ["username", "password"] {
        assert_eq!(
            endpoint["basicAuth"][part]["name"], "modelwatch-scrape-credentials",
            "{part}"
        );
    }
}

/// deploy/kubernetes/collector: the collector variant renders, validates, and is
/// scraped as the mixin's job; its pods serve the mounted monitor-only cards.
#[test]
fn the_collector_variant_is_scraped_as_the_mixins_job() {
    let text = kustomize("deploy/kubernetes/collector");
    let objects = by_kind_and_name(&yaml_documents(&text));
    let names: Vec<&str> = objects.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "Deployment/modelwatch-collector",
            "PodDisruptionBudget/modelwatch-collector",
            "Service/modelwatch-collector",
            "ServiceMonitor/modelwatch-collector",
        ]
    );
    let report = validate_objects(&text);
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok ")).count(),
        4,
        "{report}"
    );
    let deployment = &objects["Deployment/modelwatch-collector"];
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let service = &objects["Service/modelwatch-collector"];
    let monitor = &objects["ServiceMonitor/modelwatch-collector"];
    assert!(is_subset(&service["spec"]["selector"], pod_labels));
    assert!(is_subset(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"]
    ));
    // Not the model servers' pods: the base's Service must not send them predictions.
    let base = rendered();
    assert!(!is_subset(
        &base["Service/modelwatch"]["spec"]["selector"],
        pod_labels
    ));
    let job_label = monitor["spec"]["jobLabel"].as_str().expect("jobLabel");
    let job = service["metadata"]["labels"][job_label]
        .as_str()
        .expect("job");
    assert_eq!(job, "modelwatch");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mount = container["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == "models")
        .expect("the cards' mount");
    assert_eq!(
        args,
        [
            "serve",
            "--model-repository",
            mount["mountPath"].as_str().expect("path")
        ]
    );
}
