//! Module implementing the in-process feature cache. See [`GroupCache`] for details.

use crate::store::GroupValues;
use quick_cache::UnitWeighter;
use quick_cache::sync::{Cache, DefaultLifecycle};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One feature group's cache by entity id, with negative entries (`None`: the store
/// has no such entity) and a time to live.
///
/// A sharded map with CLOCK-style eviction (quick_cache): a hit is one hash of the id,
/// a shard's read lock and a clone of the entry's `Arc`. moka, which this replaced,
/// also queued every read for its access-order lists; its probing and bookkeeping
/// were a tenth of `serve`'s CPU at saturation (docs/performance.md). Entries expire
/// by the time stored with them, checked on read: an expired entry is a miss, and the
/// store's answer replaces it.
#[derive(Debug)]
pub(crate) struct GroupCache {
    /// `None` when the capacity is 0: nothing is cached.
    entries: Option<Cache<String, Entry, UnitWeighter, foldhash::fast::RandomState>>,
    ttl: Duration,
}

#[derive(Debug, Clone)]
struct Entry {
    expires: Instant,
    values: Option<Arc<GroupValues>>,
}

impl GroupCache {
    /// Up to `capacity` entities, each kept for `ttl` after it was read from the
    /// store. Ids are hashed with foldhash, seeded at random per cache as std's
    /// SipHash is, so ids cannot be chosen to collide; on a 7-byte id it is several
    /// times faster.
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        let entries = (capacity > 0).then(|| {
            Cache::with(
                usize::try_from(capacity).unwrap_or(usize::MAX),
                capacity,
                UnitWeighter,
                foldhash::fast::RandomState::default(),
                DefaultLifecycle::default(),
            )
        });
        Self { entries, ttl }
    }

    /// The cached answer for `entity` at `now`: `Some(Some(values))` for a known
    /// entity, `Some(None)` for one the store did not have, `None` when nothing
    /// unexpired is cached.
    pub(crate) fn get(&self, entity: &str, now: Instant) -> Option<Option<Arc<GroupValues>>> {
        let entry = self.entries.as_ref()?.get(entity)?;
        (entry.expires > now).then_some(entry.values)
    }

    /// Caches the store's answer for `entity`, read at `now`.
    pub(crate) fn insert(&self, entity: &str, values: Option<Arc<GroupValues>>, now: Instant) {
        if let Some(entries) = &self.entries {
            let expires = now.checked_add(self.ttl).unwrap_or(now);
            entries.insert(entity.to_string(), Entry { expires, values });
        }
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        if let Some(entries) = &self.entries {
            entries.clear();
        }
    }

    /// Entries held now, expired ones included until they are evicted or replaced.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, Cache::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: f32) -> Option<Arc<GroupValues>> {
        Some(Arc::new(GroupValues {
            values: vec![v].into(),
            event_time: 7,
        }))
    }

    #[test]
    fn entries_are_served_until_their_time_to_live_passes() {
        let cache = GroupCache::new(10, Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(cache.get("C000001", t), None);
        cache.insert("C000001", values(1.5), t);
        cache.insert("C999999", None, t);
        assert_eq!(cache.get("C000001", t).unwrap().unwrap().values[..], [1.5]);
        // A negative entry is a hit that says "unknown".
        assert_eq!(cache.get("C999999", t), Some(None));
        let later = t + Duration::from_secs(59);
        assert!(cache.get("C000001", later).is_some());
        let expired = t + Duration::from_secs(60);
        assert_eq!(cache.get("C000001", expired), None);
        assert_eq!(cache.get("C999999", expired), None);
        // The store's next answer replaces the expired entry.
        cache.insert("C000001", values(2.5), expired);
        assert_eq!(
            cache.get("C000001", expired).unwrap().unwrap().values[..],
            [2.5]
        );
        cache.clear();
        assert_eq!(cache.get("C000001", expired), None);
    }

    #[test]
    fn a_full_cache_evicts_and_a_zero_capacity_caches_nothing() {
        let cache = GroupCache::new(100, Duration::from_secs(60));
        let t = Instant::now();
        for i in 0..1_000 {
            cache.insert(&format!("C{i:06}"), values(i as f32), t);
        }
        assert!(cache.len() <= 100, "{}", cache.len());
        let none = GroupCache::new(0, Duration::from_secs(60));
        none.insert("C000001", values(1.0), t);
        assert_eq!(none.get("C000001", t), None);
    }
}
