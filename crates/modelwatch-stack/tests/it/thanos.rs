//! deploy/thanos and deploy/kube-prometheus-stack: the manifests render and
//! validate, retention and downsampling are set, the pieces name each other
//! correctly, and the year-over-year queries of the README run on a real Prometheus.

use crate::support::{
    by_kind_and_name, kustomize, read, require_binaries, validate_objects, yaml, yaml_documents,
};
use modelwatch_stack::{PrometheusConfig, http_client, k8s, query, start_prometheus};
use serde_json::Value;

fn args_of(object: &Value) -> Vec<String> {
    object["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("container args")
        .iter()
        .filter_map(|a| a.as_str().map(String::from))
        .collect()
}

fn flag<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    args.iter()
        .filter_map(|a| a.strip_prefix(&format!("{name}=")))
        .collect()
}

/// `30d`, `2y` in days.
fn days(text: &str) -> u64 {
    let (number, unit) = text.split_at(text.len() - 1);
    let n: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("a duration: {text}"));
    match unit {
        "d" => n,
        "w" => 7 * n,
        "y" => 365 * n,
        _ => panic!("unit of {text}"),
    }
}

#[test]
fn thanos_renders_validates_and_keeps_a_year_of_downsampled_data() {
    let text = kustomize("deploy/thanos");
    validate_objects(&text);
    let objects = by_kind_and_name(&yaml_documents(&text));
    let namespace = yaml(&read("deploy/thanos/kustomization.yaml"))["namespace"]
        .as_str()
        .expect("a namespace")
        .to_string();

    let compactor = args_of(&objects["StatefulSet/thanos-compactor"]);
    assert_eq!(compactor[0], "compact");
    assert!(
        compactor.iter().any(|a| a == "--wait"),
        "the compactor keeps running"
    );
    assert!(!compactor.iter().any(|a| a == "--downsampling.disable"));
    let raw = days(flag(&compactor, "--retention.resolution-raw")[0]);
    let five = days(flag(&compactor, "--retention.resolution-5m")[0]);
    let hour = days(flag(&compactor, "--retention.resolution-1h")[0]);
    assert!(raw <= five && five <= hour, "coarser data is kept longer");
    assert!(hour > 364, "offset 364d needs more than a year of 1h data");

    // Query reaches the Store Gateway through its headless Service's grpc port.
    let query = args_of(&objects["Deployment/thanos-query"]);
    let store = &objects["Service/thanos-store-gateway"];
    assert_eq!(store["spec"]["clusterIP"], "None");
    assert!(
        store["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .any(|p| p["name"] == "grpc")
    );
    let endpoints = flag(&query, "--endpoint");
    assert!(
        endpoints.contains(
            &format!("dnssrv+_grpc._tcp.thanos-store-gateway.{namespace}.svc.cluster.local")
                .as_str()
        ),
        "{endpoints:?}"
    );
    // Deduplicate the replicas on the label kube-prometheus-stack sets.
    assert_eq!(
        flag(&query, "--query.replica-label"),
        ["prometheus_replica"]
    );

    // Store Gateway and Compactor read the Secret the Helm values give the sidecar.
    let values = yaml(&read("deploy/kube-prometheus-stack/values.yaml"));
    let secret =
        &values["prometheus"]["prometheusSpec"]["thanos"]["objectStorageConfig"]["existingSecret"];
    for name in [
        "StatefulSet/thanos-store-gateway",
        "StatefulSet/thanos-compactor",
    ] {
        let pod = &objects[name]["spec"]["template"]["spec"];
        let volume = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["secret"].is_object())
            .expect("a secret volume");
        assert_eq!(volume["secret"]["secretName"], secret["name"], "{name}");
        assert_eq!(volume["secret"]["items"][0]["key"], secret["key"], "{name}");
        let args = args_of(&objects[name]);
        assert_eq!(
            flag(&args, "--objstore.config-file"),
            [format!(
                "/etc/thanos/{}",
                secret["key"].as_str().expect("key")
            )]
        );
    }

    for (file, kind) in [
        ("objstore-s3.yaml", "S3"),
        ("objstore-filesystem.yaml", "FILESYSTEM"),
    ] {
        let config = yaml(&read(&format!("deploy/thanos/{file}")));
        assert_eq!(config["type"], kind, "{file}");
        assert!(config["config"].is_object(), "{file}");
    }
}

#[test]
fn kube_prometheus_stack_values_find_and_keep_our_objects() {
    let values = yaml(&read("deploy/kube-prometheus-stack/values.yaml"));
    let spec = &values["prometheus"]["prometheusSpec"];
    assert_eq!(spec["retention"], "30d");
    assert_eq!(
        spec["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"],
        "100Gi"
    );
    // Our ServiceMonitor and PrometheusRule carry no Helm release label, so the
    // selectors must not default to the chart's release.
    for key in [
        "serviceMonitorSelectorNilUsesHelmValues",
        "ruleSelectorNilUsesHelmValues",
    ] {
        assert_eq!(spec[key], false, "{key}");
    }
    assert_eq!(
        spec["serviceMonitorNamespaceSelector"],
        serde_json::json!({})
    );
    assert_eq!(spec["ruleNamespaceSelector"], serde_json::json!({}));
    assert!(spec["thanos"]["objectStorageConfig"]["existingSecret"]["name"].is_string());
    assert_eq!(values["prometheus"]["thanosService"]["enabled"], true);

    // Grafana's sidecar picks up the generated dashboard ConfigMap.
    let dashboards = &values["grafana"]["sidecar"]["dashboards"];
    assert_eq!(dashboards["enabled"], true);
    let configmap = yaml(&read(&format!(
        "{}/{}",
        k8s::GENERATED_DIR,
        k8s::DASHBOARD_CONFIGMAP_FILE
    )));
    let label = dashboards["label"].as_str().expect("a label");
    assert_eq!(
        configmap["metadata"]["labels"][label],
        dashboards["labelValue"]
    );
    let folder = dashboards["folderAnnotation"]
        .as_str()
        .expect("an annotation");
    assert!(configmap["metadata"]["annotations"][folder].is_string());

    // The Thanos data source is the Query Service of deploy/thanos.
    let thanos = values["grafana"]["additionalDataSources"]
        .as_array()
        .expect("data sources")
        .iter()
        .find(|d| d["name"] == "Thanos")
        .expect("a Thanos data source")
        .clone();
    let namespace = yaml(&read("deploy/thanos/kustomization.yaml"))["namespace"].clone();
    let query = by_kind_and_name(&yaml_documents(&read("deploy/thanos/query.yaml")));
    let port = query["Service/thanos-query"]["spec"]["ports"][0]["port"]
        .as_u64()
        .expect("port");
    assert_eq!(
        thanos["url"],
        format!(
            "http://thanos-query.{}.svc:{port}",
            namespace.as_str().expect("ns")
        )
    );
}

/// The fenced ```promql blocks of a Markdown file.
fn promql_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim()) {
            (None, "```promql") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[tokio::test]
async fn the_year_over_year_queries_run_and_name_real_rules() {
    require_binaries();
    let readme = read("deploy/thanos/README.md");
    let rules = read("mixin/prometheus/rules.yaml");
    let named: Vec<&str> = readme
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.matches(':').count() == 2 && !t.starts_with(':') && !t.ends_with(':'))
        .collect();
    assert!(named.len() >= 4, "the README names the mixin's rules");
    for name in named {
        assert!(
            rules.contains(&format!("record: {name}\n")),
            "{name} is not a recording rule of the mixin"
        );
    }

    let blocks = promql_blocks(&readme);
    assert!(blocks.len() >= 4, "{blocks:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let prometheus = start_prometheus(&PrometheusConfig {
        dir: dir.path().to_path_buf(),
        ..Default::default()
    })
    .expect("start prometheus");
    let client = http_client().expect("client");
    for promql in blocks {
        // No data here: the point is that each query parses and evaluates.
        query(&client, &prometheus.url(), &promql)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{promql}"));
    }
}
