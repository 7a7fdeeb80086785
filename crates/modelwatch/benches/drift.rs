//! Benchmarks of drift recording and of the window gauges at scrape time.
//!
//! - `drift/record_20_features`: one prediction with a score, 20 features and 3
//!   feature groups through [`DriftHandle::record_prediction`] (target ≤ 200 ns).
//! - `drift/record_20_features_2_threads`: the same from two threads at once, per
//!   prediction, to show the cost of sharing the counters' cache lines.
//! - `drift/floor_21_counter_incs`: 21 plain counter increments on scattered counters,
//!   the atomic work a prediction cannot avoid (one per feature and the score). On a
//!   shared machine, quote `record_20_features` as a ratio to it: other processes on
//!   the core evict the ~230 counters a prediction touches and inflate the mean
//!   (about 130 ns, 2.4× the floor, on a quiet core; 300 to 470 ns at load 5).
//! - `drift/scrape`: encoding the drift families of that model, window gauges
//!   included (60 slots).

use criterion::{Criterion, criterion_group, criterion_main};
use modelwatch::prometheus_client::metrics::counter::Counter;
use modelwatch::prometheus_client::registry::Registry;
use modelwatch::{
    DriftConfig, DriftHandle, DriftMetrics, FeatureReference, Format, ManualClock, Metrics,
    MetricsConfig, ModelReference, ModelSpec, ReferenceBins,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const FEATURES: usize = 20;
const GROUPS: [&str; 3] = ["customer", "terminal", "transaction"];

fn deciles(min: f64, max: f64) -> ReferenceBins {
    let step = (max - min) / 10.0;
    ReferenceBins {
        edges: (1..10).map(|i| min + step * i as f64).collect(),
        ratios: vec![0.1; 10],
        min,
        max,
    }
}

fn drift_handle(registry: &mut Registry, clock: Arc<ManualClock>) -> DriftHandle {
    let mut scratch = Registry::default();
    let metrics = Metrics::register(&mut scratch, &MetricsConfig::default()).expect("valid config");
    let model = metrics.model(&ModelSpec {
        name: "fraud".into(),
        version: "1.0.0".into(),
        ..ModelSpec::default()
    });
    let drift = DriftMetrics::register_with_clock(registry, &DriftConfig::default(), clock)
        .expect("valid config");
    let reference = ModelReference {
        score: deciles(0.0, 1.0),
        features: (0..FEATURES)
            .map(|i| FeatureReference {
                name: format!("feature_{i:02}"),
                group: GROUPS[i % GROUPS.len()].into(),
                bins: deciles(0.0, 100.0),
            })
            .collect(),
    };
    drift.model(&model, &reference).expect("valid reference")
}

/// Values that walk through every bin, with a missing value now and then.
fn rows() -> Vec<[f32; FEATURES]> {
    (0..64)
        .map(|r| {
            std::array::from_fn(|f| {
                if (r + f) % 31 == 0 {
                    f32::NAN
                } else {
                    ((r * 7 + f * 13) % 101) as f32
                }
            })
        })
        .collect()
}

fn record(c: &mut Criterion) {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let mut registry = Registry::default();
    let drift = drift_handle(&mut registry, clock);
    let rows = rows();
    let now = drift.now();
    let timestamps = [now - 30, now - 600, now - 1];
    let mut i = 0usize;
    c.bench_function("drift/record_20_features", |b| {
        b.iter(|| {
            i = (i + 1) % rows.len();
            let score = i as f64 / rows.len() as f64;
            drift.record_prediction(
                now,
                black_box(score),
                score < 0.9,
                black_box(&rows[i]),
                &timestamps,
            );
        })
    });
    let counters: Vec<Counter> = (0..(FEATURES + 1) * 10)
        .map(|_| Counter::default())
        .collect();
    let mut k = 0usize;
    c.bench_function("drift/floor_21_counter_incs", |b| {
        b.iter(|| {
            k = (k + 3) % 10;
            for f in 0..=FEATURES {
                counters[f * 10 + (k + f) % 10].inc();
            }
        })
    });
    c.bench_function("drift/record_20_features_2_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2 {
                    let (drift, rows) = (&drift, &rows);
                    s.spawn(move || {
                        for k in 0..iters as usize {
                            let row = &rows[(k + t) % rows.len()];
                            drift.record_prediction(now, 0.25, true, black_box(row), &timestamps);
                        }
                    });
                }
            });
            // Two predictions per iteration.
            start.elapsed() / 2
        })
    });
}

fn scrape(c: &mut Criterion) {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let mut registry = Registry::default();
    let drift = drift_handle(&mut registry, clock.clone());
    let rows = rows();
    // Fill every slot of the hour.
    for minute in 0..60 {
        let now = 1_800_000_000 + minute * 60;
        for (i, row) in rows.iter().enumerate() {
            drift.record_prediction(now, i as f64 / 64.0, true, row, &[now - 5; 3]);
        }
    }
    clock.set(1_800_000_000 + 59 * 60);
    let mut out = String::new();
    c.bench_function("drift/scrape", |b| {
        b.iter(|| {
            Format::PrometheusText
                .encode(&registry, &mut out)
                .expect("encodes");
            black_box(out.len())
        })
    });
}

criterion_group!(benches, record, scrape);
criterion_main!(benches);
