//! The drift hot path allocates nothing: `DriftHandle::record_prediction` is called on
//! every prediction, so an allocation there would cost every request.
//!
//! This is a test binary of its own because `allocation-counter` replaces the global
//! allocator of the binary it is linked into.

use modelwatch::prometheus_client::registry::Registry;
use modelwatch::{
    DriftConfig, DriftMetrics, FeatureReference, ManualClock, Metrics, MetricsConfig,
    ModelReference, ModelSpec, NOT_USED, ReferenceBins,
};
use std::sync::Arc;

fn quartiles(max: f64) -> ReferenceBins {
    ReferenceBins {
        edges: vec![max / 4.0, max / 2.0, max * 0.75],
        ratios: vec![0.25; 4],
        min: 0.0,
        max,
    }
}

#[test]
fn recording_a_prediction_does_not_allocate() {
    let mut registry = Registry::default();
    let metrics =
        Metrics::register(&mut registry, &MetricsConfig::default()).expect("valid config");
    let model = metrics.model(&ModelSpec {
        name: "fraud".into(),
        version: "1.0.0".into(),
        ..ModelSpec::default()
    });
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let config = DriftConfig {
        window: std::time::Duration::from_secs(300),
        slots: 5,
        freshness_window: std::time::Duration::from_secs(60),
        ..DriftConfig::default()
    };
    let drift =
        DriftMetrics::register_with_clock(&mut registry, &config, clock).expect("valid config");
    let reference = ModelReference {
        score: quartiles(1.0),
        features: (0..20)
            .map(|i| FeatureReference {
                name: format!("f{i}"),
                group: if i % 2 == 0 { "customer" } else { "terminal" }.into(),
                bins: quartiles(100.0),
            })
            .collect(),
    };
    let handle = drift.model(&model, &reference).expect("valid reference");
    let values: Vec<f32> = (0..20)
        .map(|i| if i == 7 { f32::NAN } else { i as f32 * 6.0 })
        .collect();
    let start = handle.now();

    let info = allocation_counter::measure(|| {
        // Ten minutes of predictions: every slot is cleared and reused at least once,
        // values fall in every bin, out of range and missing.
        for second in 0..600 {
            let now = start + second;
            let score = (second % 100) as f64 / 100.0;
            handle.record_prediction(now, score, score < 0.8, &values, &[now - 3, NOT_USED]);
            handle.record_prediction(now, f64::NAN, false, &values[..5], &[]);
        }
    });
    assert_eq!(info.count_total, 0, "the hot path allocated: {info:?}");

    // The counting allocator sees allocations: the test can fail.
    let info = allocation_counter::measure(|| {
        std::hint::black_box(metrics.model(&ModelSpec::default()));
    });
    assert!(info.count_total > 0);
}
