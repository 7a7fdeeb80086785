//! Module implementing a lock-free classic histogram. See [`AtomicHistogram`] for
//! details.
//!
//! prometheus-client's `Histogram` keeps its state behind a mutex. On the request
//! path of a model server several histograms are observed per request from every
//! worker thread, so this one uses one atomic per bucket and a compare-and-swap on the
//! sum instead. It encodes as a regular classic histogram.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
struct Inner {
    bounds: Arc<[f64]>,
    /// Non-cumulative counts; the last slot is the `+Inf` bucket.
    counts: Box<[AtomicU64]>,
    /// The sum's `f64` bits.
    sum: AtomicU64,
}

/// A classic histogram whose observation is a bucket search and two atomic updates.
///
/// A scrape reads the buckets and the sum one after the other, so under concurrent
/// observations `_sum` may include an observation that `_count` does not yet (or the
/// reverse). `_count` is the sum of the buckets, so buckets and count always agree.
#[derive(Debug, Clone)]
pub struct AtomicHistogram {
    inner: Arc<Inner>,
}

impl AtomicHistogram {
    /// A histogram with the given upper bounds (increasing; `+Inf` is implied, and a
    /// non-finite bound is dropped, as prometheus-client's `Histogram` does).
    pub fn new(bounds: Arc<[f64]>) -> Self {
        // The `+Inf` bucket always exists: an explicit `+Inf` bound would expose a second
        // `le="+Inf"` series, which Prometheus refuses (see
        // histogram_with_an_explicit_inf_bound_exposes_one_inf_bucket in tests/it).
        let bounds = if bounds.iter().all(|b| b.is_finite()) {
            bounds
        } else {
            bounds.iter().copied().filter(|b| b.is_finite()).collect()
        };
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self {
            inner: Arc::new(Inner {
                bounds,
                counts,
                sum: AtomicU64::new(0f64.to_bits()),
            }),
        }
    }

    /// Records one observation. NaN is counted in the `+Inf` bucket and leaves the sum
    /// unchanged.
    #[inline]
    pub fn observe(&self, value: f64) {
        let inner = &*self.inner;
        // `le` buckets: the first bound >= value. NaN compares false and lands in +Inf.
        let index = inner
            .bounds
            .partition_point(|b| *b < value || value.is_nan());
        inner.counts[index].fetch_add(1, Ordering::Relaxed);
        if value.is_nan() {
            return;
        }
        let mut current = inner.sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + value).to_bits();
            match inner.sum.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.inner
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Sum of the observations so far.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.inner.sum.load(Ordering::Relaxed))
    }

    /// Cumulative counts per upper bound, `+Inf` last.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.inner
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.inner.counts.iter())
            .map(|(bound, c)| {
                total += c.load(Ordering::Relaxed);
                (bound, total)
            })
            .collect()
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .inner
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.inner.counts.iter())
            .map(|(bound, c)| (bound, c.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, c)| c).sum();
        encoder.encode_histogram::<NoLabelSet>(self.sum(), count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_le_buckets() {
        let h = AtomicHistogram::new(vec![0.1, 0.5, 1.0].into());
        for v in [0.05, 0.1, 0.2, 0.5, 0.7, 2.0, f64::NAN] {
            h.observe(v);
        }
        assert_eq!(
            h.cumulative(),
            vec![(0.1, 2), (0.5, 4), (1.0, 5), (f64::INFINITY, 7)]
        );
        assert_eq!(h.count(), 7);
        assert!((h.sum() - 3.55).abs() < 1e-12);
    }

    #[test]
    fn concurrent_observations_are_all_counted() {
        let h = AtomicHistogram::new(vec![1.0].into());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..10_000).for_each(|_| h.observe(0.5)));
            }
        });
        assert_eq!(h.count(), 40_000);
        assert_eq!(h.sum(), 20_000.0);
    }
}
