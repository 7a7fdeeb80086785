//! Module implementing the bucket presets. See [`Buckets`] for details.

/// Histogram bucket boundaries for each kind of observation, overridable by config.
///
/// The latency preset is fine-grained where a model server lives, from 100 µs to a
/// few hundred ms, with a tail to 2.5 s so that an SLO breach is still measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    /// Upper bounds for `model_request_duration_seconds` and
    /// `model_stage_duration_seconds`, in seconds.
    pub latency_seconds: Vec<f64>,
    /// Upper bounds for `model_prediction_score`, in `[0, 1]`.
    pub score: Vec<f64>,
    /// Upper bounds for `model_batch_size`, in rows.
    pub batch_size: Vec<f64>,
}

/// Default latency bounds in seconds.
pub const LATENCY_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 1.0, 2.5,
];

/// Default score bounds: dense near 0, where most legitimate traffic scores.
pub const SCORE: &[f64] = &[
    0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0,
];

/// Default batch size bounds in rows.
pub const BATCH_SIZE: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

impl Default for Buckets {
    fn default() -> Self {
        Self {
            latency_seconds: LATENCY_SECONDS.to_vec(),
            score: SCORE.to_vec(),
            batch_size: BATCH_SIZE.to_vec(),
        }
    }
}

impl Buckets {
    /// Adds the decision threshold to the score buckets, so that the approval ratio is
    /// exactly the cumulative count at `le="<threshold>"`.
    pub fn with_score_threshold(mut self, threshold: f64) -> Self {
        if threshold.is_finite() && !self.score.contains(&threshold) {
            self.score.push(threshold);
        }
        self.score.sort_by(f64::total_cmp);
        self
    }

    /// Checks that every preset is non-empty, finite and strictly increasing.
    pub fn validate(&self) -> Result<(), crate::Error> {
        for (name, bounds) in [
            ("latency_seconds", &self.latency_seconds),
            ("score", &self.score),
            ("batch_size", &self.batch_size),
        ] {
            if bounds.is_empty() {
                return Err(crate::Error::Buckets {
                    name,
                    reason: "no bounds given".into(),
                });
            }
            if let Some(w) = bounds
                .windows(2)
                .find(|w| w[0] >= w[1] || !w[0].is_finite() || !w[1].is_finite())
            {
                return Err(crate::Error::Buckets {
                    name,
                    reason: format!(
                        "bounds must be finite and increasing, got {} then {}",
                        w[0], w[1]
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_becomes_a_bucket_bound_once() {
        let b = Buckets::default()
            .with_score_threshold(0.42)
            .with_score_threshold(0.42);
        assert_eq!(b.score.iter().filter(|v| **v == 0.42).count(), 1);
        assert!(b.score.windows(2).all(|w| w[0] < w[1]));
        b.validate().unwrap();
    }

    #[test]
    fn unordered_bounds_are_refused() {
        let b = Buckets {
            latency_seconds: vec![0.1, 0.05],
            ..Buckets::default()
        };
        let err = b.validate().unwrap_err().to_string();
        assert!(err.contains("latency_seconds"), "{err}");
    }
}
