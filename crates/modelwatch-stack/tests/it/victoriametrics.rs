//! deploy/victoriametrics: the manifests render and validate, the retention holds a
//! year and a week, and the pieces name each other (vmalert reads and writes the
//! store's Service, Prometheus remote-writes to it, the rules come from the mixin's
//! ConfigMap).

use crate::support::{by_kind_and_name, kustomize, read, validate_objects, yaml, yaml_documents};
use serde_json::Value;

fn args_of(object: &Value) -> Vec<String> {
    object["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("container args")
        .iter()
        .filter_map(|a| a.as_str().map(String::from))
        .collect()
}

fn flag<'a>(args: &'a [String], name: &str) -> &'a str {
    args.iter()
        .find_map(|a| a.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} in {args:?}"))
}

#[test]
fn victoriametrics_renders_validates_and_keeps_a_year_and_a_week() {
    let text = kustomize("deploy/victoriametrics");
    validate_objects(&text);
    let objects = by_kind_and_name(&yaml_documents(&text));
    let namespace = yaml(&read("deploy/victoriametrics/kustomization.yaml"))["namespace"]
        .as_str()
        .expect("a namespace")
        .to_string();

    let store = args_of(&objects["StatefulSet/victoria-metrics"]);
    let retention = flag(&store, "-retentionPeriod");
    let (number, unit) = retention.split_at(retention.len() - 1);
    let days = number.parse::<u64>().expect("a number")
        * match unit {
            "y" => 365,
            "d" => 1,
            _ => panic!("unit of {retention}"),
        };
    assert!(
        days >= 372,
        "{retention}: year over year needs 364 days and a week"
    );

    let port = objects["Service/victoria-metrics"]["spec"]["ports"][0]["port"]
        .as_u64()
        .expect("a port");
    let url = format!("http://victoria-metrics:{port}");
    let vmalert = args_of(&objects["Deployment/vmalert"]);
    assert_eq!(flag(&vmalert, "-datasource.url"), url);
    assert_eq!(flag(&vmalert, "-remoteWrite.url"), url);
    let rules = flag(&vmalert, "-rule");
    let spec = &objects["Deployment/vmalert"]["spec"]["template"]["spec"];
    let mount = spec["containers"][0]["volumeMounts"][0]["mountPath"]
        .as_str()
        .expect("a mount");
    assert!(rules.starts_with(mount), "{rules} under {mount}");
    assert_eq!(
        spec["volumes"][0]["configMap"]["name"], "modelwatch-vmalert-rules",
        "the ConfigMap the README creates from mixin/prometheus/"
    );

    let values = yaml(&read("deploy/victoriametrics/remote-write.yaml"));
    let write = values["prometheus"]["prometheusSpec"]["remoteWrite"][0]["url"]
        .as_str()
        .expect("a remote-write URL");
    assert_eq!(
        write,
        format!("http://victoria-metrics.{namespace}.svc:{port}/api/v1/write")
    );
}
