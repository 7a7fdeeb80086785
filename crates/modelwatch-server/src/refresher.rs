//! Module implementing the built-in feature refresher, a stand-in for the batch
//! feature pipeline. See [`spawn`] for details.
//!
//! Every `interval`, each entity feature group gets a new event time in the store, as
//! if the batch pipeline had just recomputed it, so `model_feature_age_seconds` is
//! the real age of what was served: at most the interval plus the cache TTL while the
//! pipeline runs, and growing without bound when it stops (the `stale_features`
//! scenario pauses one group through the fault endpoint).

use crate::faults::Faults;
use crate::store::FeatureStore;
use std::sync::Arc;
use std::time::Duration;

/// One entity group the refresher keeps fresh: (index in the layout's groups, name).
pub type RefreshedGroup = (usize, String);

/// Refreshes every group now, then every `interval`, until the task is aborted.
pub fn spawn(
    store: Arc<dyn FeatureStore>,
    groups: Vec<RefreshedGroup>,
    interval: Duration,
    faults: Arc<Faults>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = crate::unix_now();
            for (index, name) in &groups {
                if faults.group_paused(*index) {
                    tracing::debug!(group = %name, "refresh paused by fault injection");
                    continue;
                }
                match store.touch_group(name, now).await {
                    Ok(rows) => tracing::debug!(group = %name, rows, "feature group refreshed"),
                    Err(e) => tracing::warn!(group = %name, error = %e, "feature refresh failed"),
                }
            }
        }
    })
}
