//! Module implementing the cardinality guard. See [`CardinalityGuard`] for details.

use crate::labels::GuardedLabel;
use prometheus_client::metrics::counter::Counter;
use std::collections::HashSet;
use std::sync::Mutex;

/// The value an over-limit label folds into.
pub const OTHER: &str = "other";

/// Bounds an open label set: the first `limit` distinct values pass, later ones fold
/// into [`OTHER`] and each fold is counted in `model_label_overflow_total`.
///
/// The guard is consulted when handles are resolved, not per request, so its lock is
/// off the hot path.
#[derive(Debug)]
pub struct CardinalityGuard {
    label: GuardedLabel,
    limit: usize,
    seen: Mutex<HashSet<String>>,
    overflow: Counter,
}

impl CardinalityGuard {
    /// A guard for `label` that admits at most `limit` distinct values.
    pub fn new(label: GuardedLabel, limit: usize, overflow: Counter) -> Self {
        Self {
            label,
            limit,
            seen: Mutex::new(HashSet::new()),
            overflow,
        }
    }

    /// Which label this guard protects.
    pub fn label(&self) -> GuardedLabel {
        self.label
    }

    /// Returns `value` if it is known or there is room for it, else [`OTHER`].
    pub fn admit(&self, value: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(value) {
            return value.to_string();
        }
        if seen.len() < self.limit {
            seen.insert(value.to_string());
            return value.to_string();
        }
        self.overflow.inc();
        OTHER.to_string()
    }

    /// Distinct values admitted so far.
    pub fn admitted(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_the_limit_fold_into_other_and_are_counted() {
        let overflow = Counter::default();
        let guard = CardinalityGuard::new(GuardedLabel::Version, 2, overflow.clone());
        assert_eq!(guard.admit("v1"), "v1");
        assert_eq!(guard.admit("v2"), "v2");
        assert_eq!(guard.admit("v1"), "v1");
        assert_eq!(guard.admit("v3"), OTHER);
        assert_eq!(guard.admit("v4"), OTHER);
        assert_eq!(overflow.get(), 2);
        assert_eq!(guard.admitted(), 2);
    }
}
