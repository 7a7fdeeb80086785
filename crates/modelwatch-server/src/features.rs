//! Module implementing feature assembly: the model's input row from the request, the
//! in-process cache and the feature store. See [`FeatureFetcher`] for details.
//!
//! Feature groups come from the model card. The `transaction` group is computed from
//! the request itself; every other group is an entity group read from the store,
//! keyed by an id of the request (`customer` by `customer_id`, `terminal` by
//! `terminal_id`).
//!
//! - An unknown entity is not an error: a new customer or terminal has no history, so
//!   its group gets zeros (the value of every count and average over an empty window)
//!   and the lookup counts as a cache miss.
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
        Ok(layout)
    }
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
        for (slot, (group_index, group)) in self.layout.entity_groups.iter().enumerate() {
            let entity = group.key.of(tx);
            let values = self.group_values(slot, group, entity).await;
            match values {
                Ok(Some(values)) => {
                    for (value, column) in values.values.iter().zip(&group.columns) {
                        row[*column] = *value;
                    }
                    event_times[*group_index] = values.event_time;
                }
                Ok(None) => {
                    group.columns.iter().for_each(|c| row[*c] = 0.0);
                    event_times[*group_index] = i64::MAX;
                }
                Err(_) => {
                    group.columns.iter().for_each(|c| row[*c] = f32::NAN);
                    event_times[*group_index] = i64::MAX;
                }
            }
        }
        if let Some(column) = self.faults.missing_column() {
            if let Some(value) = row.get_mut(column) {
                *value = f32::NAN;
            }
        }
    }

    async fn group_values(
        &self,
        slot: usize,
        group: &EntityGroup,
        entity: &str,
    ) -> Result<Option<Arc<GroupValues>>, StoreError> {
        let cache = &self.caches[slot];
        if !self.faults.cache_disabled() {
            if let Some(Some(values)) = cache.get(entity).await {
                self.model.cache(CacheOperation::Hit);
                return Ok(Some(values));
            }
        }
        self.model.cache(CacheOperation::Miss);
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
                cache.insert(entity.to_string(), values.clone()).await;
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
