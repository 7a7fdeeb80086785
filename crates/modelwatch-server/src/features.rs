//! Module implementing feature assembly: the model's input row from the request, the
//! in-process cache and the feature store. See [`FeatureFetcher`] for details.
//!
//! Feature groups come from the model card. The `transaction` group is computed from
//! the request itself; every other group is an entity group read from the store,
//! keyed by an id of the request (`customer` by `customer_id`, `terminal` by
//! `terminal_id`).
//!
//! - An unknown entity is not an error: a new customer or terminal has no history, so
//!   its group gets zeros (the value of every count and average over an empty window).
//!   The store's "unknown" is cached like a value (a negative entry), so an unknown id
//!   costs one store read per cache TTL, not one per request: a flood of made-up ids
//!   cannot turn every request into a store call.
//! - `model_feature_cache_operations_total` counts one operation per entity group and
//!   request: `hit` when the cache answered, a cached "unknown" included (a negative
//!   hit), `miss` when the store was asked. Its hit ratio is the share of lookups the
//!   store did not have to serve.
//! - The groups that miss are read from the store concurrently.
//! - A failing or slow store (past `store_timeout`) is counted in
//!   `model_feature_store_errors_total` and the group's values are missing (NaN), which
//!   the tree model routes down its missing-value branch and the drift recorder counts
//!   in `model_feature_missing_total`.

use crate::api::Transaction;
use crate::store::{FeatureStore, GroupValues, StoreError};
use modelwatch::{CacheOperation, ModelHandle, StoreErrorKind};
use modelwatch_runtime::ModelCard;
use moka::future::Cache;
use std::sync::Arc;
use std::time::Duration;

/// The group computed from the request.
pub const TRANSACTION_GROUP: &str = "transaction";

/// Largest model input the server accepts (rows are stack arrays of this width).
pub const MAX_FEATURES: usize = 64;

/// Which request field keys an entity group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKey {
    /// `customer_id`.
    Customer,
    /// `terminal_id`.
    Terminal,
}

impl EntityKey {
    fn for_group(group: &str) -> Option<Self> {
        match group {
            "customer" => Some(EntityKey::Customer),
            "terminal" => Some(EntityKey::Terminal),
            _ => None,
        }
    }

    fn of(self, tx: &Transaction) -> &str {
        match self {
            EntityKey::Customer => &tx.customer_id,
            EntityKey::Terminal => &tx.terminal_id,
        }
    }
}

/// One entity group: where its values go in the model row.
#[derive(Debug, Clone)]
pub struct EntityGroup {
    /// Group name, as in the card and the store.
    pub name: String,
    /// The request field that keys it.
    pub key: EntityKey,
    /// Feature names in the group's stored order.
    pub features: Vec<String>,
    /// Model row column of each stored value.
    pub columns: Vec<usize>,
}

/// How the model row is assembled, derived once from the model card.
#[derive(Debug, Clone)]
pub struct FeatureLayout {
    /// Model input width.
    pub n_features: usize,
    /// Every feature group in card order; the index is the group index used for ages.
    pub group_names: Vec<String>,
    /// Index of the transaction group in `group_names`, if the model uses it.
    pub transaction_group: Option<usize>,
    /// (model column, index into [`modelwatch_sim::transaction_features`]' output).
    pub transaction_columns: Vec<(usize, usize)>,
    /// Entity groups with their index in `group_names`.
    pub entity_groups: Vec<(usize, EntityGroup)>,
}

impl FeatureLayout {
    /// Derives the layout from the card, refusing features it cannot produce.
    pub fn from_card(card: &ModelCard) -> anyhow::Result<Self> {
        anyhow::ensure!(
            card.features.len() <= MAX_FEATURES,
            "model has {} features; modelwatch serve supports at most {MAX_FEATURES}",
            card.features.len()
        );
        let mut layout = FeatureLayout {
            n_features: card.features.len(),
            group_names: Vec::new(),
            transaction_group: None,
            transaction_columns: Vec::new(),
            entity_groups: Vec::new(),
        };
        for (column, feature) in card.features.iter().enumerate() {
            let group_index = match layout.group_names.iter().position(|g| *g == feature.group) {
                Some(i) => i,
                None => {
                    layout.group_names.push(feature.group.clone());
                    layout.group_names.len() - 1
                }
            };
            if feature.group == TRANSACTION_GROUP {
                let known = modelwatch_sim::FeatureGroup::Transaction.features();
                let source = known
                    .iter()
                    .position(|f| f.name == feature.name)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "feature {:?} of group {TRANSACTION_GROUP:?} cannot be computed from a request; known: {}",
                            feature.name,
                            known.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                        )
                    })?;
                layout.transaction_group = Some(group_index);
                layout.transaction_columns.push((column, source));
                continue;
            }
            let key = EntityKey::for_group(&feature.group).ok_or_else(|| {
                anyhow::anyhow!(
                    "feature group {:?} (feature {:?}) has no entity key; supported groups: transaction, customer, terminal",
                    feature.group,
                    feature.name
                )
            })?;
            match layout
                .entity_groups
                .iter_mut()
                .find(|(i, _)| *i == group_index)
            {
                Some((_, group)) => {
                    group.features.push(feature.name.clone());
                    group.columns.push(column);
                }
                None => layout.entity_groups.push((
                    group_index,
                    EntityGroup {
                        name: feature.group.clone(),
                        key,
                        features: vec![feature.name.clone()],
                        columns: vec![column],
                    },
                )),
            }
        }
        anyhow::ensure!(
            layout.group_names.len() <= crate::MAX_GROUPS,
            "model has {} feature groups; modelwatch serve supports at most {}",
            layout.group_names.len(),
            crate::MAX_GROUPS
        );
        Ok(layout)
    }
}

/// The library's decision names for a card: `None` for a model without decisions.
///
/// # Errors
/// When a name is not a label value (the card loader refuses those already).
pub fn decision_names(card: &ModelCard) -> anyhow::Result<Option<modelwatch::DecisionNames>> {
    card.task
        .decisions()
        .map(|d| modelwatch::DecisionNames::new(d.below.as_str(), d.at_or_above.as_str()))
        .transpose()
        .map_err(anyhow::Error::from)
}

type GroupCache = Cache<String, Option<Arc<GroupValues>>>;

/// Cache and store settings.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// How long a cached group stays valid.
    pub cache_ttl: Duration,
    /// Entries per group cache.
    pub cache_capacity: u64,
    /// Deadline of one store call.
    pub store_timeout: Duration,
}

/// Assembles model rows: request features, then each entity group from the cache or
/// the store.
#[derive(Debug)]
pub struct FeatureFetcher {
    layout: FeatureLayout,
    caches: Vec<GroupCache>,
    store: Arc<dyn FeatureStore>,
    config: FetchConfig,
    model: ModelHandle,
    faults: Arc<crate::faults::Faults>,
}

impl FeatureFetcher {
    /// A fetcher for `layout` over `store`, recording cache and store metrics on
    /// `model`.
    pub fn new(
        layout: FeatureLayout,
        store: Arc<dyn FeatureStore>,
        config: FetchConfig,
        model: ModelHandle,
        faults: Arc<crate::faults::Faults>,
    ) -> Self {
        let caches = layout
            .entity_groups
            .iter()
            .map(|_| {
                Cache::builder()
                    .max_capacity(config.cache_capacity)
                    .time_to_live(config.cache_ttl)
                    .build()
            })
            .collect();
        Self {
            layout,
            caches,
            store,
            config,
            model,
            faults,
        }
    }

    /// The layout in use.
    pub fn layout(&self) -> &FeatureLayout {
        &self.layout
    }

    /// The store behind the cache.
    pub fn store(&self) -> &Arc<dyn FeatureStore> {
        &self.store
    }

    /// Drops every cached entry (used by the cache-collapse fault).
    pub fn invalidate_cache(&self) {
        self.caches.iter().for_each(|c| c.invalidate_all());
    }

    /// Fills `row` (model width) and `event_times` (one per group, unix seconds) for
    /// `tx`.
    ///
    /// Every group is looked up in its cache first. The groups that missed are read
    /// from the store concurrently, so a request costs one store round trip, not
    /// one per group.
    pub async fn fetch(&self, tx: &Transaction, row: &mut [f32], event_times: &mut [i64]) {
        if let Some(group) = self.layout.transaction_group {
            let values = modelwatch_sim::transaction_features(tx.amount, tx.timestamp);
            for (column, source) in &self.layout.transaction_columns {
                row[*column] = values[*source];
            }
            // Computed from the request right now: their age is zero, whatever the
            // transaction's own timestamp.
            event_times[group] = crate::unix_now();
        }
        let mut missed = [false; crate::MAX_GROUPS];
        let mut n_missed = 0;
        for (slot, (group_index, group)) in self.layout.entity_groups.iter().enumerate() {
            match self.cached(slot, group.key.of(tx)).await {
                Some(values) => {
                    self.model.cache(CacheOperation::Hit);
                    place(group, *group_index, Ok(values), row, event_times);
                }
                None => {
                    self.model.cache(CacheOperation::Miss);
                    missed[slot] = true;
                    n_missed += 1;
                }
            }
        }
        let mut lookups = self
            .layout
            .entity_groups
            .iter()
            .enumerate()
            .filter(|(slot, _)| missed[*slot]);
        if n_missed == 1 {
            if let Some((slot, (group_index, group))) = lookups.next() {
                let values = self.lookup(slot, group, group.key.of(tx)).await;
                place(group, *group_index, values, row, event_times);
            }
        } else if n_missed > 1 {
            // Polled side by side, each pinned in a box: this is the miss path, which
            // allocates for its store calls anyway; a hit allocates nothing.
            let mut pending: Vec<_> = lookups
                .map(|(slot, (group_index, group))| {
                    let lookup = Box::pin(self.lookup(slot, group, group.key.of(tx)));
                    (group, *group_index, lookup, None)
                })
                .collect();
            std::future::poll_fn(|cx| {
                let mut done = true;
                for (_, _, lookup, result) in pending.iter_mut() {
                    if result.is_none() {
                        match lookup.as_mut().poll(cx) {
                            std::task::Poll::Ready(r) => *result = Some(r),
                            std::task::Poll::Pending => done = false,
                        }
                    }
                }
                if done {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
            for (group, group_index, _, result) in pending {
                if let Some(values) = result {
                    place(group, group_index, values, row, event_times);
                }
            }
        }
        if let Some(column) = self.faults.missing_column() {
            if let Some(value) = row.get_mut(column) {
                *value = f32::NAN;
            }
        }
    }

    /// The cached answer for `entity`: `Some(Some(values))` for a known entity,
    /// `Some(None)` for one the store did not have (a negative entry, kept until it
    /// expires like any other), `None` when the cache has nothing.
    async fn cached(&self, slot: usize, entity: &str) -> Option<Option<Arc<GroupValues>>> {
        if self.faults.cache_disabled() {
            return None;
        }
        self.caches[slot].get(entity).await
    }

    /// Reads one group from the store (within `store_timeout`) and caches the answer,
    /// including "unknown": the next lookup of an unknown entity is a cache hit.
    async fn lookup(
        &self,
        slot: usize,
        group: &EntityGroup,
        entity: &str,
    ) -> Result<Option<Arc<GroupValues>>, StoreError> {
        let delay = self.faults.store_delay();
        let call = async {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.store.get(&group.name, entity).await
        };
        let result = match tokio::time::timeout(self.config.store_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::new(
                StoreErrorKind::Timeout,
                format!("no answer within {:?}", self.config.store_timeout),
            )),
        };
        match result {
            Ok(values) => {
                let values = values.map(Arc::new);
                self.caches[slot]
                    .insert(entity.to_string(), values.clone())
                    .await;
                Ok(values)
            }
            Err(e) => {
                self.model.store_error(e.kind);
                tracing::warn!(group = %group.name, error = %e, "feature store call failed; serving with missing values");
                Err(e)
            }
        }
    }
}

/// Writes one group's answer into the row: its values, zeros for an unknown entity
/// (no history), NaN when the store failed.
fn place(
    group: &EntityGroup,
    group_index: usize,
    values: Result<Option<Arc<GroupValues>>, StoreError>,
    row: &mut [f32],
    event_times: &mut [i64],
) {
    match values {
        Ok(Some(values)) => {
            for (value, column) in values.values.iter().zip(&group.columns) {
                row[*column] = *value;
            }
            event_times[group_index] = values.event_time;
        }
        Ok(None) => {
            group.columns.iter().for_each(|c| row[*c] = 0.0);
            event_times[group_index] = i64::MAX;
        }
        Err(_) => {
            group.columns.iter().for_each(|c| row[*c] = f32::NAN);
            event_times[group_index] = i64::MAX;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BoxFuture, SqliteStore};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The real store behind a rendezvous: a lookup answers only once a second one
    /// is under way, and every lookup is counted.
    #[derive(Debug)]
    struct Rendezvous {
        inner: SqliteStore,
        barrier: tokio::sync::Barrier,
        reads: AtomicU64,
    }

    impl FeatureStore for Rendezvous {
        fn get<'a>(
            &'a self,
            group: &'a str,
            entity: &'a str,
        ) -> BoxFuture<'a, Result<Option<GroupValues>, StoreError>> {
            Box::pin(async move {
                self.reads.fetch_add(1, Ordering::Relaxed);
                self.barrier.wait().await;
                self.inner.get(group, entity).await
            })
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

    fn layout() -> FeatureLayout {
        FeatureLayout {
            n_features: 3,
            group_names: vec!["customer".into(), "terminal".into()],
            transaction_group: None,
            transaction_columns: Vec::new(),
            entity_groups: vec![
                (
                    0,
                    EntityGroup {
                        name: "customer".into(),
                        key: EntityKey::Customer,
                        features: vec!["a".into(), "b".into()],
                        columns: vec![0, 1],
                    },
                ),
                (
                    1,
                    EntityGroup {
                        name: "terminal".into(),
                        key: EntityKey::Terminal,
                        features: vec!["c".into()],
                        columns: vec![2],
                    },
                ),
            ],
        }
    }

    fn tx(customer: &str, terminal: &str) -> Transaction {
        Transaction {
            transaction_id: Some("t".into()),
            customer_id: customer.into(),
            terminal_id: terminal.into(),
            amount: 1.0,
            timestamp: 1_700_000_000,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_groups_are_read_at_once_and_unknowns_are_cached() {
        let dir = tempfile::tempdir().unwrap();
        let inner = SqliteStore::open_with_readers(&dir.path().join("f.sqlite"), 2).unwrap();
        inner
            .upsert_group(
                "customer",
                &["a", "b"],
                [("C000001".to_string(), &[1.0f32, 2.0][..], 5)],
            )
            .unwrap();
        inner
            .upsert_group(
                "terminal",
                &["c"],
                [("T00001".to_string(), &[3.0f32][..], 6)],
            )
            .unwrap();
        let store = Arc::new(Rendezvous {
            inner,
            barrier: tokio::sync::Barrier::new(2),
            reads: AtomicU64::new(0),
        });
        let spec = modelwatch::ModelSpec::default();
        let fetcher = FeatureFetcher::new(
            layout(),
            store.clone(),
            FetchConfig {
                cache_ttl: Duration::from_secs(600),
                cache_capacity: 100,
                // Long enough that only a lookup one after the other could reach it.
                store_timeout: Duration::from_secs(10),
            },
            ModelHandle::disabled(&spec),
            Arc::new(crate::faults::Faults::default()),
        );
        let mut row = [f32::INFINITY; 3];
        let mut times = [0i64; 2];
        // Read one after the other, the first lookup would wait for a second that
        // never starts, until the store deadline: values NaN.
        fetcher
            .fetch(&tx("C000001", "T00001"), &mut row, &mut times)
            .await;
        assert_eq!(row, [1.0, 2.0, 3.0]);
        assert_eq!(times, [5, 6]);
        fetcher
            .fetch(&tx("C999999", "T99999"), &mut row, &mut times)
            .await;
        assert_eq!(row, [0.0, 0.0, 0.0]);
        assert_eq!(times, [i64::MAX, i64::MAX]);
        assert_eq!(store.reads.load(Ordering::Relaxed), 4);
        // Known and unknown alike now come from the cache: no store call (a lone
        // store call would wait at the rendezvous until the deadline, giving NaN).
        for _ in 0..3 {
            fetcher
                .fetch(&tx("C999999", "T99999"), &mut row, &mut times)
                .await;
            assert_eq!(row, [0.0, 0.0, 0.0]);
            fetcher
                .fetch(&tx("C000001", "T00001"), &mut row, &mut times)
                .await;
            assert_eq!(row, [1.0, 2.0, 3.0]);
        }
        assert_eq!(store.reads.load(Ordering::Relaxed), 4);
    }
}
