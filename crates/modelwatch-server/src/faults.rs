//! Module implementing fault injection for incident scenarios. See [`Faults`] for
//! details.
//!
//! Faults exist only when `serve` runs with `--enable-fault-injection`; they are set
//! through `POST /admin/faults` on the metrics listener, never on the API port.

use crate::store::{BoxFuture, FeatureStore, GroupValues, StoreError};
use modelwatch_runtime::{Backend, Model, RuntimeError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// The faults currently injected. All default to off.
#[derive(Debug)]
pub struct Faults {
    store_delay_us: AtomicU64,
    /// Bit i set: the refresher skips feature group i.
    paused_groups: AtomicU64,
    /// Model column forced missing, or -1.
    missing_column: AtomicI64,
    /// Fraction of predictions failed on purpose, in millionths.
    error_ppm: AtomicU64,
    cache_disabled: AtomicBool,
    store_down: AtomicBool,
    counter: AtomicU64,
    /// Model calls left that panic.
    model_panics: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            store_delay_us: AtomicU64::new(0),
            paused_groups: AtomicU64::new(0),
            // -1: no column is forced missing (0 would be the first feature).
            missing_column: AtomicI64::new(-1),
            error_ppm: AtomicU64::new(0),
            cache_disabled: AtomicBool::new(false),
            store_down: AtomicBool::new(false),
            counter: AtomicU64::new(0),
            model_panics: AtomicU64::new(0),
        }
    }
}

/// The wire form of [`Faults`], with names instead of indices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Added latency of every feature store call, in milliseconds.
    #[serde(default)]
    pub store_delay_ms: u64,
    /// Feature groups whose refresher stops (their features go stale).
    #[serde(default)]
    pub paused_groups: Vec<String>,
    /// A feature whose value goes missing in every prediction.
    #[serde(default)]
    pub missing_feature: Option<String>,
    /// Fraction of predictions that fail with an internal error, in [0, 1].
    #[serde(default)]
    pub error_ratio: f64,
    /// Bypass the feature cache (every lookup goes to the store).
    #[serde(default)]
    pub cache_disabled: bool,
    /// Every feature store call fails at once (kind `unavailable`), as a store that
    /// is down: the `store_down` scenario without a real store to stop.
    #[serde(default)]
    pub store_down: bool,
    /// The next this many model calls (batches) panic inside the inference thread,
    /// as a model bug would. Reading the faults back gives the calls still to panic.
    #[serde(default)]
    pub model_panics: u64,
}

impl Faults {
    /// Extra store latency.
    pub fn store_delay(&self) -> Duration {
        Duration::from_micros(self.store_delay_us.load(Ordering::Relaxed))
    }

    /// Whether the refresher skips group `index`.
    pub fn group_paused(&self, index: usize) -> bool {
        index < 64 && self.paused_groups.load(Ordering::Relaxed) & (1 << index) != 0
    }

    /// The model column forced missing, if any.
    pub fn missing_column(&self) -> Option<usize> {
        usize::try_from(self.missing_column.load(Ordering::Relaxed)).ok()
    }

    /// Whether every feature store call fails (the `store_down` fault).
    pub fn store_down(&self) -> bool {
        self.store_down.load(Ordering::Relaxed)
    }

    /// Whether the feature cache is bypassed.
    pub fn cache_disabled(&self) -> bool {
        self.cache_disabled.load(Ordering::Relaxed)
    }

    /// Whether this model call should panic (consumes one of `model_panics`).
    pub fn take_model_panic(&self) -> bool {
        self.model_panics
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Whether this prediction should fail (deterministic spread over requests).
    pub fn should_fail(&self) -> bool {
        let ppm = self.error_ppm.load(Ordering::Relaxed);
        if ppm == 0 {
            return false;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // Spread failures evenly: request n fails when the running quota crosses an integer.
        (n + 1) * ppm / 1_000_000 > n * ppm / 1_000_000
    }

    /// Applies `spec`, resolving names with the model's groups and features.
    pub fn apply(
        &self,
        spec: &FaultSpec,
        groups: &[String],
        features: &[String],
    ) -> Result<(), String> {
        if !(0.0..=1.0).contains(&spec.error_ratio) {
            return Err(format!(
                "error_ratio must be in [0, 1], got {}",
                spec.error_ratio
            ));
        }
        let mut mask = 0u64;
        for name in &spec.paused_groups {
            let i = groups.iter().position(|g| g == name).ok_or_else(|| {
                format!(
                    "unknown feature group {name:?}; known: {}",
                    groups.join(", ")
                )
            })?;
            mask |= 1 << i.min(63);
        }
        let column = match &spec.missing_feature {
            None => -1,
            Some(name) => features
                .iter()
                .position(|f| f == name)
                .ok_or_else(|| format!("unknown feature {name:?}"))?
                as i64,
        };
        self.store_delay_us
            .store(spec.store_delay_ms.saturating_mul(1000), Ordering::Relaxed);
        self.paused_groups.store(mask, Ordering::Relaxed);
        self.missing_column.store(column, Ordering::Relaxed);
        self.error_ppm
            .store((spec.error_ratio * 1e6).round() as u64, Ordering::Relaxed);
        self.cache_disabled
            .store(spec.cache_disabled, Ordering::Relaxed);
        self.store_down.store(spec.store_down, Ordering::Relaxed);
        self.model_panics
            .store(spec.model_panics, Ordering::Relaxed);
        Ok(())
    }

    /// The current faults, with names.
    pub fn spec(&self, groups: &[String], features: &[String]) -> FaultSpec {
        let mask = self.paused_groups.load(Ordering::Relaxed);
        FaultSpec {
            store_delay_ms: self.store_delay_us.load(Ordering::Relaxed) / 1000,
            paused_groups: groups
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < 64 && mask & (1 << i) != 0)
                .map(|(_, g)| g.clone())
                .collect(),
            missing_feature: self.missing_column().and_then(|c| features.get(c).cloned()),
            error_ratio: self.error_ppm.load(Ordering::Relaxed) as f64 / 1e6,
            cache_disabled: self.cache_disabled(),
            store_down: self.store_down(),
            model_panics: self.model_panics.load(Ordering::Relaxed),
        }
    }
}

/// The served model wrapped with the model faults; used only when fault injection is
/// enabled, so the production path holds no fault check.
#[derive(Debug)]
pub struct FaultyModel {
    inner: Arc<dyn Model>,
    faults: Arc<Faults>,
}

impl FaultyModel {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn Model>, faults: Arc<Faults>) -> Arc<dyn Model> {
        Arc::new(Self { inner, faults })
    }
}

impl Model for FaultyModel {
    fn n_features(&self) -> usize {
        self.inner.n_features()
    }

    fn predict(&self, input: &[f32], out: &mut [f32]) -> Result<(), RuntimeError> {
        // A fault-injection scenario asks for it: a panic as a model bug would raise.
        if self.faults.take_model_panic() {
            panic!("injected model panic (POST /admin/faults model_panics)");
        }
        self.inner.predict(input, out)
    }

    fn backend(&self) -> Backend {
        self.inner.backend()
    }
}

/// The feature store under fault injection: every lookup first waits the injected
/// `store_delay_ms` (inside the fetcher's store deadline, as a slow store would).
/// Installed only with `--enable-fault-injection`, so the production path has no
/// check; it delays every model's lookups, since the models share the store.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn FeatureStore>,
    faults: Arc<Faults>,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn FeatureStore>, faults: Arc<Faults>) -> Arc<dyn FeatureStore> {
        Arc::new(Self { inner, faults })
    }
}

impl FeatureStore for FaultyStore {
    fn get<'a>(
        &'a self,
        group: &'a str,
        entity: &'a str,
    ) -> BoxFuture<'a, Result<Option<GroupValues>, StoreError>> {
        if self.faults.store_down() {
            return Box::pin(async {
                Err(StoreError::new(
                    modelwatch::StoreErrorKind::Unavailable,
                    "injected fault: store_down",
                ))
            });
        }
        let delay = self.faults.store_delay();
        if delay.is_zero() {
            return self.inner.get(group, entity);
        }
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            self.inner.get(group, entity).await
        })
    }

    fn may_hold(&self, group: &str, entity: &str) -> bool {
        self.inner.may_hold(group, entity)
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.ping()
    }

    fn touch_group<'a>(
        &'a self,
        group: &'a str,
        event_time: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        self.inner.touch_group(group, event_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the derived default forced the first feature missing in every
    /// prediction.
    #[test]
    fn no_fault_is_set_by_default() {
        let faults = Faults::default();
        assert_eq!(faults.missing_column(), None);
        assert!(!faults.cache_disabled() && !faults.group_paused(0) && !faults.should_fail());
        assert!(faults.store_delay().is_zero());
    }

    #[test]
    fn error_ratio_fails_that_fraction_of_requests() {
        let faults = Faults::default();
        let spec = FaultSpec {
            error_ratio: 0.25,
            ..FaultSpec::default()
        };
        faults.apply(&spec, &[], &[]).unwrap();
        let failed = (0..1000).filter(|_| faults.should_fail()).count();
        assert_eq!(failed, 250);
    }

    #[test]
    fn model_panics_count_down_to_zero() {
        let faults = Faults::default();
        let spec = FaultSpec {
            model_panics: 2,
            ..FaultSpec::default()
        };
        faults.apply(&spec, &[], &[]).unwrap();
        assert_eq!(faults.spec(&[], &[]).model_panics, 2);
        let taken = (0..5).filter(|_| faults.take_model_panic()).count();
        assert_eq!(taken, 2);
        assert_eq!(faults.spec(&[], &[]).model_panics, 0);
    }

    #[test]
    fn names_resolve_and_unknown_names_are_refused() {
        let faults = Faults::default();
        let groups = vec!["transaction".to_string(), "customer".to_string()];
        let features = vec!["amount".to_string()];
        let spec = FaultSpec {
            paused_groups: vec!["customer".into()],
            missing_feature: Some("amount".into()),
            ..FaultSpec::default()
        };
        faults.apply(&spec, &groups, &features).unwrap();
        assert!(faults.group_paused(1) && !faults.group_paused(0));
        assert_eq!(faults.spec(&groups, &features), spec);
        let bad = FaultSpec {
            paused_groups: vec!["merchant".into()],
            ..FaultSpec::default()
        };
        assert!(
            faults
                .apply(&bad, &groups, &features)
                .unwrap_err()
                .contains("merchant")
        );
    }
}
