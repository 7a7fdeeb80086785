//! A deterministic registry encoded to text, compared with a committed golden file
//! and checked by `promtool check metrics`.

use crate::support::assert_matches_file;
use modelwatch::prometheus_client::registry::Registry;
use modelwatch::schema;
use modelwatch::{
    CacheOperation, Decision, DecisionNames, Format, Metrics, MetricsConfig, ModelSpec, Stage,
    Status, StoreErrorKind,
};
use modelwatch_testkit::exposition::{self, Exposition};
use modelwatch_testkit::promtool::check_metrics as promtool_check_metrics;
use modelwatch_testkit::workspace_root;

fn spec(version: &str) -> ModelSpec {
    ModelSpec {
        name: "fraud".into(),
        version: version.into(),
        framework: "sklearn-1.9.1/skl2onnx-1.20.0".into(),
        training_date: "2026-11-01".into(),
        architecture: "gradient_boosted_trees".into(),
        decisions: Some(DecisionNames::new("approved", "declined").expect("valid decision names")),
    }
}

/// Builds a registry whose content depends only on this function.
fn deterministic_registry() -> Registry {
    let mut registry = Registry::default();
    let config = MetricsConfig {
        process_metrics: false,
        max_versions: 2,
        ..MetricsConfig::default()
    };
    let metrics = Metrics::register(&mut registry, &config).expect("default config is valid");
    let fraud = metrics.model(&spec("1.0.0"));
    for (i, score) in [0.001, 0.02, 0.3, 0.97].into_iter().enumerate() {
        fraud.observe_score(score);
        fraud.observe_stage(Stage::Queue, 0.0002 * (i + 1) as f64);
        fraud.observe_stage(Stage::FeatureFetch, 0.0004);
        fraud.observe_stage(Stage::Inference, 0.003);
        fraud.observe_stage(Stage::Postprocess, 0.00005);
        fraud.count_request(
            Status::Success,
            if score < 0.5 {
                Decision::Below
            } else {
                Decision::AtOrAbove
            },
        );
    }
    fraud.count_request(Status::Rejected, Decision::None);
    fraud.observe_batch_size(3);
    fraud.observe_batch_size(1);
    fraud.cache(CacheOperation::Hit);
    fraud.cache(CacheOperation::Hit);
    fraud.cache(CacheOperation::Miss);
    fraud.store_error(StoreErrorKind::Timeout);
    // A third version overflows max_versions = 2 and folds into "other".
    metrics.model(&spec("1.1.0"));
    metrics.model(&spec("2.0.0-rc"));
    registry
}

/// Encodes the registry with the samples of each family sorted: prometheus-client
/// keeps a family's series in a hash map, so their order varies between runs.
fn encoded(format: Format) -> String {
    let mut out = String::new();
    format
        .encode(&deterministic_registry(), &mut out)
        .expect("encoding succeeds");
    let mut normalized = String::new();
    let mut samples: Vec<&str> = Vec::new();
    for line in out.lines() {
        if line.starts_with('#') {
            samples.sort_unstable();
            samples.drain(..).for_each(|s| {
                normalized.push_str(s);
                normalized.push('\n');
            });
            normalized.push_str(line);
            normalized.push('\n');
        } else {
            samples.push(line);
        }
    }
    samples.sort_unstable();
    samples.into_iter().for_each(|s| {
        normalized.push_str(s);
        normalized.push('\n');
    });
    normalized
}

#[test]
fn prometheus_text_matches_golden_file() {
    let path = workspace_root().join("crates/modelwatch/tests/golden/exposition.prom");
    assert_matches_file(&path, &encoded(Format::PrometheusText));
}

#[test]
fn openmetrics_matches_golden_file() {
    let path = workspace_root().join("crates/modelwatch/tests/golden/exposition.openmetrics");
    assert_matches_file(&path, &encoded(Format::OpenMetrics));
}

#[test]
fn golden_exposition_passes_promtool() {
    let text = encoded(Format::PrometheusText);
    let (ok, output) = promtool_check_metrics(&text);
    assert!(ok, "promtool check metrics failed:\n{output}");
    assert!(
        output.trim().is_empty(),
        "promtool has lint findings:\n{output}"
    );
}

#[test]
fn live_registry_with_process_metrics_passes_promtool() {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry, &MetricsConfig::default()).expect("valid");
    let _ = metrics.model(&spec("1.0.0"));
    let mut text = String::new();
    Format::PrometheusText
        .encode(&registry, &mut text)
        .expect("encodes");
    for def in [
        schema::PROCESS_CPU_SECONDS_TOTAL,
        schema::PROCESS_RESIDENT_MEMORY_BYTES,
        schema::PROCESS_OPEN_FDS,
        schema::PROCESS_START_TIME_SECONDS,
    ] {
        assert!(
            text.contains(&format!("\n{} ", def.name)),
            "{} missing in\n{text}",
            def.name
        );
    }
    let (ok, output) = promtool_check_metrics(&text);
    assert!(ok && output.trim().is_empty(), "promtool:\n{output}");
}

fn parsed(format: Format) -> Exposition {
    let text = encoded(format);
    exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn every_exposed_family_is_declared_in_the_schema() {
    for family in parsed(Format::PrometheusText).families {
        let name = &family.name;
        let def = schema::find(name).unwrap_or_else(|| panic!("{name} is not in the schema"));
        let expected = match def.kind {
            schema::Kind::Info => "gauge",
            k => k.as_str(),
        };
        assert_eq!(family.kind.as_str(), expected, "{name}");
    }
}

#[test]
fn every_series_carries_exactly_the_schema_labels() {
    for sample in parsed(Format::PrometheusText).samples() {
        let name = &sample.name;
        let def = schema::find(name).unwrap_or_else(|| panic!("{name} is not in the schema"));
        let labels: Vec<&str> = sample
            .label_order
            .iter()
            .map(String::as_str)
            .filter(|k| *k != "le")
            .collect();
        assert_eq!(labels, def.labels, "{sample:?}");
    }
}

#[test]
fn overflowing_versions_fold_into_other_and_are_counted() {
    let text = encoded(Format::PrometheusText);
    assert!(
        text.contains(r#"model_info{model="fraud",version="other","#),
        "{text}"
    );
    assert!(
        text.contains(r#"model_label_overflow_total{label="version"} 1"#),
        "{text}"
    );
}
