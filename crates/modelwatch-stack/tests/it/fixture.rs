//! A model server's metrics endpoint built with the `modelwatch` library: every
//! scrape first records a fixed batch of predictions (deterministic scores and
//! features), so counters grow between scrapes and every recording rule of the
//! mixin has input.

use crate::support::Stub;
use modelwatch::prometheus_client::registry::Registry;
use modelwatch::{
    CacheOperation, Decision, DriftConfig, DriftMetrics, FeatureReference, Format, Metrics,
    MetricsConfig, ModelReference, ModelSpec, ReferenceBins, Stage, Status,
};
use std::sync::Mutex;

/// Predictions recorded before each scrape.
const PER_SCRAPE: u64 = 40;

fn bins(edges: &[f64], ratios: &[f64], max: f64) -> ReferenceBins {
    ReferenceBins {
        edges: edges.to_vec(),
        ratios: ratios.to_vec(),
        min: 0.0,
        max,
    }
}

/// Serves one replica of model `fraud` version `1` on a loopback port.
pub fn replica() -> Stub {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry, &MetricsConfig::default()).expect("metrics");
    let drift = DriftMetrics::register(&mut registry, &DriftConfig::default()).expect("drift");
    let model = metrics.model(&ModelSpec {
        name: "fraud".into(),
        version: "1".into(),
        framework: "fixture".into(),
        training_date: "2025-01-01".into(),
        architecture: "fixture".into(),
        decisions: Some(
            modelwatch::DecisionNames::new("approved", "declined").expect("valid decision names"),
        ),
    });
    let reference = ModelReference {
        score: bins(&[0.1, 0.3, 0.5], &[0.4, 0.3, 0.2, 0.1], 1.0),
        features: vec![
            FeatureReference {
                name: "amount".into(),
                group: "transaction".into(),
                bins: bins(&[10.0, 50.0, 200.0], &[0.25, 0.4, 0.25, 0.1], 5000.0),
            },
            FeatureReference {
                name: "customer_nb_tx_1d".into(),
                group: "customer".into(),
                bins: bins(&[1.0, 3.0, 10.0], &[0.3, 0.3, 0.3, 0.1], 100.0),
            },
        ],
    };
    let drift = drift.model(&model, &reference).expect("a valid reference");
    let counter = Mutex::new(0u64);
    Stub::serve_with(move || {
        let mut i = counter.lock().expect("counter");
        for _ in 0..PER_SCRAPE {
            *i += 1;
            // A fixed walk over [0, 1): scores lean low, like an approving model.
            let u = ((*i * 7919) % 1000) as f64 / 1000.0;
            let score = u * u;
            let approved = score < 0.5;
            let mut request = model.start_request();
            request.mark_stage(Stage::Queue);
            model.cache(if *i % 10 == 0 {
                CacheOperation::Miss
            } else {
                CacheOperation::Hit
            });
            request.mark_stage(Stage::FeatureFetch);
            request.mark_stage(Stage::Inference);
            model.observe_score(score);
            request.mark_stage(Stage::Postprocess);
            let decision = if approved {
                Decision::Below
            } else {
                Decision::AtOrAbove
            };
            request.finish(Status::Success, decision);
            let now = drift.now();
            let features = [(u * 300.0) as f32, (u * 12.0) as f32];
            drift.record_prediction(now, score, approved, &features, &[now, now - 30]);
        }
        let mut body = String::new();
        Format::PrometheusText
            .encode(&registry, &mut body)
            .expect("encode the registry");
        body
    })
}
