//! Benchmarks of the hot path and of scraping.
//!
//! - `request/full`: one request's worth of instrumentation: the request guard, four
//!   stage timers, the score and a cache operation (target ≤ 500 ns).
//! - `encode/2000_series`: encoding a registry of about 2,000 series (target ≤ 1 ms).

use criterion::{Criterion, criterion_group, criterion_main};
use modelwatch::prometheus_client::registry::Registry;
use modelwatch::{
    CacheOperation, Decision, Format, Metrics, MetricsConfig, ModelSpec, Stage, Status,
};
use std::hint::black_box;

fn spec(version: &str) -> ModelSpec {
    ModelSpec {
        name: "fraud".into(),
        version: version.into(),
        ..ModelSpec::default()
    }
}

fn request(c: &mut Criterion) {
    let mut registry = Registry::default();
    let metrics =
        Metrics::register(&mut registry, &MetricsConfig::default()).expect("valid config");
    let model = metrics.model(&spec("1.0.0"));
    let mut score = 0.0f64;
    c.bench_function("request/full", |b| {
        b.iter(|| {
            let request = model.start_request();
            for stage in Stage::ALL {
                let _timer = model.stage_timer(*stage);
            }
            score = (score + 0.013) % 1.0;
            model.observe_score(black_box(score));
            model.cache(CacheOperation::Hit);
            request.finish(Status::Success, Decision::Below);
        })
    });
    c.bench_function("request/full_marked", |b| {
        b.iter(|| {
            let mut request = model.start_request();
            for stage in Stage::ALL {
                request.mark_stage(*stage);
            }
            score = (score + 0.013) % 1.0;
            model.observe_score(black_box(score));
            model.cache(CacheOperation::Hit);
            request.finish(Status::Success, Decision::Below);
        })
    });
}

fn encode(c: &mut Criterion) {
    let mut registry = Registry::default();
    let config = MetricsConfig {
        max_versions: 64,
        max_models: 64,
        ..MetricsConfig::default()
    };
    let metrics = Metrics::register(&mut registry, &config).expect("valid config");
    // Each version adds 7 request counters, 2 × 22 duration series, 4 × 22 stage series
    // and 20 score series: 159 series. 14 versions plus the per-model series and the
    // process metrics make about 2,000.
    let handles: Vec<_> = (0..14)
        .map(|v| metrics.model(&spec(&format!("1.{v}.0"))))
        .collect();
    for h in &handles {
        h.observe_score(0.1);
        h.observe_stage(Stage::Inference, 0.002);
    }
    let mut text = String::new();
    Format::PrometheusText
        .encode(&registry, &mut text)
        .expect("encodes");
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    eprintln!("encode/2000_series: {series} series, {} bytes", text.len());
    let mut buffer = String::with_capacity(text.len());
    c.bench_function("encode/2000_series", |b| {
        b.iter(|| {
            Format::PrometheusText
                .encode(&registry, &mut buffer)
                .expect("encodes");
            black_box(buffer.len())
        })
    });
}

/// The lock-free histogram against prometheus-client's mutex histogram, same bounds,
/// same run, so the ratio is meaningful on a noisy machine.
fn histogram(c: &mut Criterion) {
    use modelwatch::prometheus_client::metrics::histogram::Histogram;
    let bounds = modelwatch::buckets::LATENCY_SECONDS;
    let stock = Histogram::new(bounds.iter().copied());
    let atomic = modelwatch::AtomicHistogram::new(bounds.into());
    let mut v = 0.0f64;
    c.bench_function("histogram/observe_stock_mutex", |b| {
        b.iter(|| {
            v = (v + 0.00037) % 0.05;
            stock.observe(black_box(v))
        })
    });
    c.bench_function("histogram/observe_atomic", |b| {
        b.iter(|| {
            v = (v + 0.00037) % 0.05;
            atomic.observe(black_box(v))
        })
    });
}

criterion_group!(benches, request, histogram, encode);
criterion_main!(benches);
