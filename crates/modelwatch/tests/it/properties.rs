//! Property tests of the drift statistics and the lock-free histogram: the laws a user
//! relies on when reading PSI, JS, KS and W1 off a dashboard, and the histogram's
//! agreement with prometheus-client's own on the same observations.

use modelwatch::AtomicHistogram;
use modelwatch::ReferenceBins;
use modelwatch::drift::{bin_index, fractions, jensen_shannon, ks, psi, wasserstein};
use modelwatch::prometheus_client::encoding::text::encode;
use modelwatch::prometheus_client::metrics::histogram::Histogram;
use modelwatch::prometheus_client::registry::{Metric, Registry};
use proptest::prelude::*;
use std::sync::Arc;

/// Bin counts with at least one observation: what a drift window holds.
fn counts(bins: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(0u64..5_000, bins)
        .prop_filter("something counted", |c| c.iter().any(|n| *n > 0))
}

fn to_fractions(counts: &[u64]) -> Vec<f64> {
    let mut out = vec![0.0; counts.len()];
    fractions(counts, &mut out);
    out
}

/// Two distributions over the same bins.
fn pair() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    (2usize..=20)
        .prop_flat_map(|n| (counts(n..=n), counts(n..=n)))
        .prop_map(|(a, b)| (to_fractions(&a), to_fractions(&b)))
}

/// Strictly increasing finite bounds.
fn bounds() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::btree_set(-1_000_000i64..1_000_000, 1..20)
        .prop_map(|set| set.into_iter().map(|b| b as f64 / 1_000.0).collect())
}

/// Finite observations with some NaN, some on the bounds and some far outside.
fn observations() -> impl Strategy<Value = Vec<f64>> {
    let value = prop_oneof![
        8 => (-2_000_000i64..2_000_000).prop_map(|v| v as f64 / 1_000.0),
        1 => Just(f64::NAN),
        1 => prop::num::f64::NORMAL,
    ];
    prop::collection::vec(value, 0..200)
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

proptest! {
    #[test]
    fn psi_is_never_negative_and_zero_only_against_itself((p, q) in pair()) {
        prop_assert!(psi(&p, &q) >= 0.0);
        prop_assert_eq!(psi(&p, &p), 0.0);
        // (p − q)·ln(p/q) is symmetric term by term.
        prop_assert!(close(psi(&p, &q), psi(&q, &p)));
        if p.iter().zip(&q).any(|(a, b)| a.max(1e-4) != b.max(1e-4)) {
            prop_assert!(psi(&p, &q) > 0.0);
        }
    }

    #[test]
    fn jensen_shannon_is_symmetric_and_within_ln_2((p, q) in pair()) {
        let js = jensen_shannon(&p, &q);
        prop_assert!((0.0..=std::f64::consts::LN_2 + 1e-12).contains(&js), "{js}");
        prop_assert!(close(js, jensen_shannon(&q, &p)));
        prop_assert!(jensen_shannon(&p, &p).abs() < 1e-12);
    }

    #[test]
    fn ks_is_a_symmetric_fraction((p, q) in pair()) {
        let d = ks(&p, &q);
        prop_assert!((0.0..=1.0 + 1e-12).contains(&d), "{d}");
        prop_assert!(close(d, ks(&q, &p)));
        prop_assert_eq!(ks(&p, &p), 0.0);
    }

    #[test]
    fn wasserstein_is_symmetric_and_bounded_by_the_span((p, q) in pair(), start in -100.0f64..100.0) {
        let positions: Vec<f64> = (0..p.len()).map(|i| start + i as f64 * 0.5).collect();
        let span = positions[positions.len() - 1] - positions[0];
        let w = wasserstein(&p, &q, &positions);
        prop_assert!(w >= 0.0 && w <= span * (1.0 + 1e-9), "{w} over a span of {span}");
        prop_assert!(close(w, wasserstein(&q, &p, &positions)));
        prop_assert_eq!(wasserstein(&p, &p, &positions), 0.0);
    }

    #[test]
    fn statistics_do_not_change_when_every_count_is_scaled(
        (reference, current) in (2usize..=12).prop_flat_map(|n| (counts(n..=n), counts(n..=n))),
        factor in 2u64..1_000,
    ) {
        let n = reference.len();
        let bins = ReferenceBins {
            edges: (1..n).map(|i| i as f64).collect(),
            ratios: to_fractions(&reference),
            min: 0.0,
            max: n as f64,
        };
        let scaled: Vec<u64> = current.iter().map(|c| c * factor).collect();
        // c·k / (t·k) is the same real number as c / t, so the rounded fractions are
        // equal bit for bit, and so is every statistic.
        prop_assert_eq!(bins.compare_counts(&current), bins.compare_counts(&scaled));
    }

    #[test]
    fn fractions_sum_to_one(c in counts(1..=30)) {
        let sum: f64 = to_fractions(&c).iter().sum();
        prop_assert!((sum - 1.0).abs() < 1e-12, "{sum}");
    }

    #[test]
    fn a_value_falls_in_the_bin_whose_edges_hold_it(edges in bounds(), v in observations()) {
        for v in v {
            let i = bin_index(&edges, v);
            if v.is_nan() {
                // As documented: NaN is below no edge, so it lands in the first bin.
                prop_assert_eq!(i, 0);
                continue;
            }
            prop_assert!(i == 0 || edges[i - 1] < v, "{v} in bin {i} of {edges:?}");
            prop_assert!(i == edges.len() || v <= edges[i], "{v} in bin {i} of {edges:?}");
        }
    }

    #[test]
    fn histogram_counts_every_observation_once(bounds in bounds(), values in observations()) {
        let h = AtomicHistogram::new(bounds.clone().into());
        values.iter().for_each(|v| h.observe(*v));
        prop_assert_eq!(h.count(), values.len() as u64);
        let cumulative = h.cumulative();
        prop_assert_eq!(cumulative.len(), bounds.len() + 1);
        prop_assert!(cumulative.windows(2).all(|w| w[0].1 <= w[1].1), "{cumulative:?}");
        prop_assert_eq!(cumulative[bounds.len()], (f64::INFINITY, values.len() as u64));
        for (bound, count) in &cumulative[..bounds.len()] {
            let expected = values.iter().filter(|v| *v <= bound).count() as u64;
            prop_assert_eq!(*count, expected, "le={}", bound);
        }
        let sum: f64 = values.iter().filter(|v| !v.is_nan()).sum();
        prop_assert!(close(h.sum(), sum), "{} != {sum}", h.sum());
    }

    #[test]
    fn histogram_encodes_like_prometheus_client(
        bounds in bounds(),
        values in observations(),
        explicit_inf in any::<bool>(),
    ) {
        // prometheus-client adds NaN to its sum; ours leaves the sum alone, so compare
        // on numbers only.
        let values: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
        // A caller may spell out the +Inf bound; both must still expose one +Inf bucket.
        let mut given = bounds.clone();
        if explicit_inf {
            given.push(f64::INFINITY);
        }
        let ours = AtomicHistogram::new(given.clone().into());
        let theirs = Histogram::new(given);
        for v in &values {
            ours.observe(*v);
            theirs.observe(*v);
        }
        prop_assert_eq!(exposition(ours), exposition(theirs));
    }
}

fn exposition(metric: impl Metric) -> String {
    let mut registry = Registry::default();
    registry.register("latency_seconds", "A histogram", metric);
    let mut text = String::new();
    encode(&mut text, &registry).expect("encode");
    text
}

#[test]
fn histogram_with_an_explicit_inf_bound_exposes_one_inf_bucket() {
    let h = AtomicHistogram::new(Arc::from([0.5, f64::INFINITY]));
    h.observe(0.2);
    h.observe(7.0);
    assert_eq!(h.cumulative(), vec![(0.5, 1), (f64::INFINITY, 2)]);
    let text = exposition(h);
    assert_eq!(text.matches("le=\"+Inf\"").count(), 1, "{text}");
}
