//! Module implementing feature assembly: the model's input row from the request, the
//! in-process cache and the feature store. See [`FeatureLayout`] and
//! [`FeatureFetcher`] for details.
//!
//! Everything follows from the model card (format 2): a feature of a `request` group
//! is read from a request field, as is or through a built-in transform; a feature of
//! a `store` group is read from the feature store, keyed by the request field the
//! card names (the fraud card: group `customer` keyed by `customer_id`). A request is
//! a [`RequestFields`] map, whatever its wire format (`/v1/predict`'s transaction, the
//! generic `/v1/models/{model}/predict` body, or an Open Inference Protocol tensor
//! row), and [`FeatureLayout::prepare`] turns it into the request part of the row.
//!
//! - A missing request field is a 400 naming it, unless its feature is `nullable`:
//!   then the value is NaN, which the drift recorder counts in
//!   `model_feature_missing_total`.
//! - An unknown entity is not an error: a new customer or terminal has no history, so
//!   its group gets zeros (the value of every count and average over an empty window).
//!   An id the store certainly does not hold ([`FeatureStore::may_hold`], the SQLite
//!   store's known-id filter) is answered in memory and not cached: a flood of
//!   made-up ids neither reaches the store nor pushes the hot set out of the cache.
//!   The few that pass the filter, and any unknown id of a store without one, are
//!   read once and the store's "unknown" is cached like a value (a negative entry).
//! - `model_feature_cache_operations_total` counts one operation per entity group and
//!   request: `hit` when the process answered (the cache, a cached "unknown" included,
//!   or the known-id filter), `miss` when the store was asked. Its hit ratio is the
//!   share of lookups the store did not have to serve.
//! - The groups that miss are read from the store concurrently.
//! - A failing or slow store (past `store_timeout`) is counted in
//!   `model_feature_store_errors_total`. Under [`StoreFailurePolicy::Defaults`] the
//!   group's values are missing (NaN), which the tree model routes down its
//!   missing-value branch and the drift recorder counts in
//!   `model_feature_missing_total`; under [`StoreFailurePolicy::Shed`] the row is
//!   refused (503).
//! - A circuit breaker per model opens after repeated failures: store calls then fail
//!   at once (kind `circuit_open`) until a probe after the cooldown finds the store
//!   answering again.

use crate::error::ApiError;
use crate::store::{FeatureStore, GroupValues, StoreError};
use modelwatch::{CacheOperation, ModelHandle, StoreErrorKind};
use modelwatch_runtime::ModelCard;
use modelwatch_runtime::card::{GroupSource, TransformFn};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest model input the server accepts (rows are stack arrays of this width).
pub const MAX_FEATURES: usize = modelwatch_runtime::card::MAX_FEATURES;

/// Longest accepted entity id, in bytes.
pub const MAX_ENTITY_LEN: usize = 64;

/// One value of a request field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// A number: a feature's value, a number transform's input, or a time in Unix
    /// seconds.
    Number(f64),
    /// Text: a time in RFC 3339 (a number field refuses text).
    Text(String),
}

/// One prediction request as a map of fields, the shape every protocol is decoded
/// into before the pipeline sees it. A field left out (or sent as JSON `null`) is
/// missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestFields {
    /// Request fields by name: what request-group features and transforms read, and
    /// the event time fields.
    pub features: BTreeMap<String, FieldValue>,
    /// Entity ids by the request field that keys a store group (`customer_id`).
    pub entities: BTreeMap<String, String>,
}

/// A model column read from the request.
#[derive(Debug, Clone)]
pub struct RequestColumn {
    /// Model input column.
    pub column: usize,
    /// Feature name.
    pub feature: String,
    /// The request field it reads.
    pub field: String,
    /// The transform applied to the field, if any.
    pub transform: Option<TransformFn>,
    /// Whether a missing field is NaN (true) or a 400 (false).
    pub nullable: bool,
}

/// A request group: its index in [`FeatureLayout::group_names`] and the field that
/// dates it.
#[derive(Debug, Clone)]
pub struct RequestGroup {
    /// Index in `group_names`.
    pub index: usize,
    /// The time field whose value is the group's event time; `None`: the time the
    /// request arrived (age zero).
    pub event_time_field: Option<String>,
}

/// One entity group: where its values go in the model row.
#[derive(Debug, Clone)]
pub struct EntityGroup {
    /// Group name, as in the card and the store.
    pub name: String,
    /// The request field holding the entity id (`customer_id`).
    pub key: String,
    /// Whether every feature of the group is nullable: then a request without the
    /// key gets NaN for the group instead of a 400.
    pub nullable: bool,
    /// Feature names in the group's stored order.
    pub features: Vec<String>,
    /// Model row column of each stored value.
    pub columns: Vec<usize>,
    /// Where the group is in Feast's online store (`--feature-store feast+redis://`):
    /// the card's `feast` mapping, by default the view named as the group, joined on
    /// the entity key.
    pub feast: crate::store::feast::FeastGroup,
}

/// How the model row is assembled, derived once from the model card.
#[derive(Debug, Clone)]
pub struct FeatureLayout {
    /// Model input width.
    pub n_features: usize,
    /// Every feature group in card order; the index is the group index used for ages.
    pub group_names: Vec<String>,
    /// Columns read from request fields, in column order.
    pub request_columns: Vec<RequestColumn>,
    /// Request groups.
    pub request_groups: Vec<RequestGroup>,
    /// Entity groups with their index in `group_names`.
    pub entity_groups: Vec<(usize, EntityGroup)>,
}

/// The request part of a model row, checked and ready for the store lookups.
#[derive(Debug, Clone)]
pub struct PreparedRow {
    /// The model row: request columns filled, store columns still to fetch.
    pub row: [f32; MAX_FEATURES],
    /// Event time per group (Unix seconds): request groups set, store groups to fetch.
    pub event_times: [i64; crate::MAX_GROUPS],
    /// Entity id per entity group (in [`FeatureLayout::entity_groups`] order); `None`
    /// for a nullable group the request did not key.
    pub entities: Vec<Option<String>>,
}

fn check_entity(field: impl FnOnce() -> String, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::field(field(), "must not be empty"));
    }
    if value.len() > MAX_ENTITY_LEN {
        return Err(ApiError::field(
            field(),
            format!(
                "is {} bytes; at most {MAX_ENTITY_LEN} are allowed",
                value.len()
            ),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::field(
            field(),
            "must not contain control characters",
        ));
    }
    Ok(())
}

// The field's name is formatted only for an error: `field` is called then, never on
// the way of a valid request.
fn time_of(field: impl FnOnce() -> String, value: &FieldValue) -> Result<i64, ApiError> {
    match value {
        FieldValue::Number(n) if n.is_finite() && n.abs() < 1e13 => Ok(*n as i64),
        FieldValue::Number(n) => Err(ApiError::field(
            field(),
            format!("{n} is not a time in Unix seconds"),
        )),
        FieldValue::Text(text) => {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| t.unix_timestamp())
                .map_err(|e| ApiError::field(field(), format!("is not RFC 3339: {e}")))
        }
    }
}

fn number_of(field: impl FnOnce() -> String, value: &FieldValue) -> Result<f64, ApiError> {
    match value {
        FieldValue::Number(n) if n.is_finite() => Ok(*n),
        FieldValue::Number(n) => Err(ApiError::field(field(), format!("{n} is not finite"))),
        FieldValue::Text(_) => Err(ApiError::field(field(), "must be a number")),
    }
}

impl FeatureLayout {
    /// Derives the layout from the card (which the runtime validated at load).
    pub fn from_card(card: &ModelCard) -> anyhow::Result<Self> {
        anyhow::ensure!(
            card.features.len() <= MAX_FEATURES,
            "model has {} features; modelwatch serve supports at most {MAX_FEATURES}",
            card.features.len()
        );
        let mut layout = FeatureLayout {
            n_features: card.features.len(),
            group_names: Vec::new(),
            request_columns: Vec::new(),
            request_groups: Vec::new(),
            entity_groups: Vec::new(),
        };
        for (column, feature) in card.features.iter().enumerate() {
            let spec = card.groups.get(&feature.group).ok_or_else(|| {
                anyhow::anyhow!(
                    "feature {:?} names group {:?}, which the card does not declare",
                    feature.name,
                    feature.group
                )
            })?;
            let group_index = match layout.group_names.iter().position(|g| *g == feature.group) {
                Some(i) => i,
                None => {
                    layout.group_names.push(feature.group.clone());
                    match spec.source {
                        GroupSource::Request => layout.request_groups.push(RequestGroup {
                            index: layout.group_names.len() - 1,
                            event_time_field: spec.event_time_field.clone(),
                        }),
                        GroupSource::Store => {
                            let key = spec.entity_key.clone().ok_or_else(|| {
                                anyhow::anyhow!("store group {:?} has no entity_key", feature.group)
                            })?;
                            let feast = crate::store::feast::FeastGroup {
                                feature_view: spec.feast.as_ref().map_or_else(
                                    || feature.group.clone(),
                                    |f| f.feature_view.clone(),
                                ),
                                join_key: spec
                                    .feast
                                    .as_ref()
                                    .and_then(|f| f.join_key.clone())
                                    .unwrap_or_else(|| key.clone()),
                            };
                            layout.entity_groups.push((
                                layout.group_names.len() - 1,
                                EntityGroup {
                                    name: feature.group.clone(),
                                    feast,
                                    key,
                                    nullable: true,
                                    features: Vec::new(),
                                    columns: Vec::new(),
                                },
                            ));
                        }
                    }
                    layout.group_names.len() - 1
                }
            };
            match spec.source {
                GroupSource::Request => {
                    let field = feature
                        .field
                        .clone()
                        .unwrap_or_else(|| feature.name.clone());
                    layout.request_columns.push(RequestColumn {
                        column,
                        feature: feature.name.clone(),
                        field,
                        transform: feature.transform,
                        nullable: feature.nullable,
                    });
                }
                GroupSource::Store => {
                    if let Some((_, group)) = layout
                        .entity_groups
                        .iter_mut()
                        .find(|(i, _)| *i == group_index)
                    {
                        group.features.push(feature.name.clone());
                        group.columns.push(column);
                        group.nullable &= feature.nullable;
                    }
                }
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

    /// Checks `request` against the card and fills the request part of the row.
    /// `prefix` is put before a field's name in an error (`rows[2].features.`, or
    /// nothing); entity keys are named `{entity_prefix}{key}`. `now` (Unix seconds)
    /// dates a request group without an event time field.
    ///
    /// # Errors
    /// [`ApiError::InvalidField`] naming the field: a missing field of a feature that
    /// is not nullable, a missing entity key, text where a number is needed, a time
    /// that is not RFC 3339, an entity id that is empty, too long or has control
    /// characters.
    pub fn prepare(
        &self,
        request: &RequestFields,
        prefix: impl std::fmt::Display,
        entity_prefix: impl std::fmt::Display,
        now: i64,
    ) -> Result<PreparedRow, ApiError> {
        let mut prepared = PreparedRow {
            row: [0f32; MAX_FEATURES],
            event_times: [modelwatch::drift_metrics::NOT_USED; crate::MAX_GROUPS],
            entities: Vec::with_capacity(self.entity_groups.len()),
        };
        for c in &self.request_columns {
            let name = || format!("{prefix}{}", c.field);
            let value = match request.features.get(&c.field) {
                None if c.nullable => f32::NAN,
                None => {
                    return Err(ApiError::field(
                        name(),
                        format!("is missing; feature `{}` is not nullable", c.feature),
                    ));
                }
                Some(v) => match c.transform {
                    Some(t) if t.takes_time() => t.of_time(time_of(name, v)?),
                    Some(t) => t.of_number(number_of(name, v)?),
                    None => number_of(name, v)? as f32,
                },
            };
            prepared.row[c.column] = value;
        }
        for g in &self.request_groups {
            let time = match g
                .event_time_field
                .as_ref()
                .and_then(|f| request.features.get(f).map(|v| (f, v)))
            {
                Some((field, value)) => time_of(|| format!("{prefix}{field}"), value)?,
                // Computed from the request right now: their age is zero.
                None => now,
            };
            prepared.event_times[g.index] = time;
        }
        for (_, g) in &self.entity_groups {
            let name = || format!("{entity_prefix}{}", g.key);
            match request.entities.get(&g.key) {
                Some(id) => {
                    check_entity(name, id)?;
                    prepared.entities.push(Some(id.clone()));
                }
                None if g.nullable => prepared.entities.push(None),
                None => {
                    return Err(ApiError::field(
                        name(),
                        format!("is missing; it keys feature group `{}`", g.name),
                    ));
                }
            }
        }
        Ok(prepared)
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

/// Cache and store settings.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// How long a cached group stays valid.
    pub cache_ttl: Duration,
    /// Entries per group cache.
    pub cache_capacity: u64,
    /// Deadline of one store call.
    pub store_timeout: Duration,
    /// What a request gets when the store fails.
    pub on_failure: StoreFailurePolicy,
    /// Consecutive store failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before one probe may try the store.
    pub breaker_cooldown: Duration,
}

impl FetchConfig {
    /// The given cache settings and store deadline, serving defaults on failure, with
    /// the breaker opening after 5 failures for 1 s.
    pub fn new(cache_ttl: Duration, cache_capacity: u64, store_timeout: Duration) -> Self {
        Self {
            cache_ttl,
            cache_capacity,
            store_timeout,
            on_failure: StoreFailurePolicy::Defaults,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
        }
    }
}

/// What a request gets when the feature store fails (an error, a timeout, or the
/// breaker open).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum StoreFailurePolicy {
    /// Scored with the group's values missing (NaN, the model's missing-value
    /// branch), counted in `model_feature_missing_total`.
    #[default]
    Defaults,
    /// Refused: 503 `feature_store_unavailable`, counted as `status="error"`.
    Shed,
}

/// A circuit breaker in front of the store: after `threshold` consecutive failures
/// it opens and store calls fail at once (kind `circuit_open`) for `cooldown`; then
/// one call probes the store, closing the breaker on success and opening it again
/// on failure.
#[derive(Debug)]
struct Breaker {
    state: std::sync::Mutex<BreakerState>,
    threshold: u32,
    cooldown: Duration,
    model: ModelHandle,
}

#[derive(Debug, Default)]
struct BreakerState {
    consecutive_failures: u32,
    open_since: Option<std::time::Instant>,
    probing: bool,
}

/// What the breaker lets a lookup do.
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Call,
    Probe,
    Refuse,
}

/// A probe in flight; dropped unfinished (its request gave up), it lets the next
/// lookup probe instead.
struct ProbeGuard<'a> {
    breaker: &'a Breaker,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.lock().probing = false;
        }
    }
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admit(&self) -> Admit {
        let mut state = self.lock();
        match state.open_since {
            None => Admit::Call,
            Some(since) if since.elapsed() < self.cooldown => Admit::Refuse,
            Some(_) if state.probing => Admit::Refuse,
            Some(_) => {
                state.probing = true;
                Admit::Probe
            }
        }
    }

    /// Records the outcome of an admitted call: `failed` when the store did not
    /// answer (a decode error is an answer).
    fn record(&self, failed: bool, probe: bool) {
        let mut state = self.lock();
        if probe {
            state.probing = false;
        }
        if !failed {
            state.consecutive_failures = 0;
            if state.open_since.take().is_some() {
                self.model.store_breaker_open(false);
                tracing::info!("feature store answered the probe: circuit breaker closed");
            }
            return;
        }
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        if probe {
            state.open_since = Some(std::time::Instant::now());
        } else if state.open_since.is_none() && state.consecutive_failures >= self.threshold {
            state.open_since = Some(std::time::Instant::now());
            self.model.store_breaker_open(true);
            tracing::warn!(
                failures = state.consecutive_failures,
                cooldown = ?self.cooldown,
                "feature store failing: circuit breaker opened"
            );
        }
    }

    fn is_open(&self) -> bool {
        self.lock().open_since.is_some()
    }
}

/// Assembles model rows: request features, then each entity group from the cache or
/// the store.
#[derive(Debug)]
pub struct FeatureFetcher {
    layout: FeatureLayout,
    caches: Vec<crate::feature_cache::GroupCache>,
    store: Arc<dyn FeatureStore>,
    config: FetchConfig,
    model: ModelHandle,
    faults: Arc<crate::faults::Faults>,
    breaker: Breaker,
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
            .map(|_| crate::feature_cache::GroupCache::new(config.cache_capacity, config.cache_ttl))
            .collect();
        model.store_breaker_open(false);
        let breaker = Breaker {
            state: std::sync::Mutex::default(),
            threshold: config.breaker_failures.max(1),
            cooldown: config.breaker_cooldown,
            model: model.clone(),
        };
        Self {
            layout,
            caches,
            store,
            config,
            model,
            faults,
            breaker,
        }
    }

    /// Whether the store's circuit breaker is open.
    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open()
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
        self.caches.iter().for_each(|c| c.clear());
    }

    /// Fills the store columns of `row` (model width) and the store groups'
    /// `event_times` (Unix seconds) for the entity ids `entities` (one per entity
    /// group, from [`FeatureLayout::prepare`]).
    ///
    /// Every group is looked up in its cache first. The groups that missed are read
    /// from the store concurrently, so a request costs one store round trip, not
    /// one per group. A group without an id (nullable and not keyed) is NaN.
    ///
    /// `now` is the request's start: cached entries that expired before it are
    /// misses, and the store's answers are cached for one TTL from it (a few
    /// microseconds shorter than from the store's answer). The request already read
    /// the clock once; the cache reads it no more.
    ///
    /// # Errors
    /// Under [`StoreFailurePolicy::Shed`], the first store failure (the row is then
    /// not to be scored). Under `Defaults` a failed group is NaN and this is `Ok`.
    pub async fn fetch(
        &self,
        entities: &[Option<String>],
        row: &mut [f32],
        event_times: &mut [i64],
        now: Instant,
    ) -> Result<(), StoreError> {
        let mut failure = None;
        let key = |slot: usize| entities.get(slot).and_then(|k| k.as_deref());
        let mut missed = [false; crate::MAX_GROUPS];
        let mut n_missed = 0;
        for (slot, (group_index, group)) in self.layout.entity_groups.iter().enumerate() {
            let Some(entity) = key(slot) else {
                // Not keyed (the group is nullable): missing, and no age.
                group.columns.iter().for_each(|c| row[*c] = f32::NAN);
                event_times[*group_index] = i64::MAX;
                continue;
            };
            match self.cached(slot, entity, now) {
                Some(values) => {
                    self.model.cache(CacheOperation::Hit);
                    place(
                        group,
                        *group_index,
                        Ok(values),
                        row,
                        event_times,
                        &mut failure,
                    );
                }
                // Certainly not in the store (its known-id filter): unknown, without
                // a store call, and not cached, so a flood of made-up ids neither
                // reaches the store nor pushes the hot set out of the cache.
                None if !self.store.may_hold(&group.name, entity) => {
                    self.model.cache(CacheOperation::Hit);
                    place(
                        group,
                        *group_index,
                        Ok(None),
                        row,
                        event_times,
                        &mut failure,
                    );
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
                let values = self
                    .lookup(slot, group, key(slot).unwrap_or_default(), now)
                    .await;
                place(group, *group_index, values, row, event_times, &mut failure);
            }
        } else if n_missed > 1 {
            // Polled side by side, each pinned in a box: this is the miss path, which
            // allocates for its store calls anyway; a hit allocates nothing.
            let mut pending: Vec<_> = lookups
                .map(|(slot, (group_index, group))| {
                    let lookup =
                        Box::pin(self.lookup(slot, group, key(slot).unwrap_or_default(), now));
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
                    place(group, group_index, values, row, event_times, &mut failure);
                }
            }
        }
        if let Some(column) = self.faults.missing_column() {
            if let Some(value) = row.get_mut(column) {
                *value = f32::NAN;
            }
        }
        match failure {
            Some(e) if self.config.on_failure == StoreFailurePolicy::Shed => Err(e),
            _ => Ok(()),
        }
    }

    /// The cached answer for `entity`: `Some(Some(values))` for a known entity,
    /// `Some(None)` for one the store did not have (a negative entry, kept until it
    /// expires like any other), `None` when the cache has nothing.
    fn cached(&self, slot: usize, entity: &str, now: Instant) -> Option<Option<Arc<GroupValues>>> {
        if self.faults.cache_disabled() {
            return None;
        }
        self.caches[slot].get(entity, now)
    }

    /// Reads one group from the store (within `store_timeout`) and caches the answer,
    /// including "unknown": the next lookup of an unknown entity is a cache hit.
    async fn lookup(
        &self,
        slot: usize,
        group: &EntityGroup,
        entity: &str,
        now: Instant,
    ) -> Result<Option<Arc<GroupValues>>, StoreError> {
        let admit = self.breaker.admit();
        if admit == Admit::Refuse {
            self.model.store_error(StoreErrorKind::CircuitOpen);
            return Err(StoreError::new(
                StoreErrorKind::CircuitOpen,
                "circuit breaker open after repeated store failures",
            ));
        }
        let mut probe = ProbeGuard {
            breaker: &self.breaker,
            armed: admit == Admit::Probe,
        };
        let call = self.store.get(&group.name, entity);
        let result = match tokio::time::timeout(self.config.store_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::new(
                StoreErrorKind::Timeout,
                format!("no answer within {:?}", self.config.store_timeout),
            )),
        };
        let failed = matches!(&result, Err(e) if e.kind != StoreErrorKind::Decode);
        self.breaker.record(failed, probe.armed);
        probe.armed = false;
        match result {
            Ok(values) => {
                let values = values.map(Arc::new);
                self.caches[slot].insert(entity, values.clone(), now);
                Ok(values)
            }
            Err(e) => {
                self.model.store_error(e.kind);
                tracing::warn!(group = %group.name, error = %e, policy = ?self.config.on_failure, "feature store call failed");
                Err(e)
            }
        }
    }
}

/// Writes one group's answer into the row: its values, zeros for an unknown entity
/// (no history), NaN when the store failed (the first failure kept in `failure`).
fn place(
    group: &EntityGroup,
    group_index: usize,
    values: Result<Option<Arc<GroupValues>>, StoreError>,
    row: &mut [f32],
    event_times: &mut [i64],
    failure: &mut Option<StoreError>,
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
        Err(e) => {
            group.columns.iter().for_each(|c| row[*c] = f32::NAN);
            event_times[group_index] = i64::MAX;
            failure.get_or_insert(e);
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
        let group = |name: &str, key: &str, features: &[&str], columns: Vec<usize>| EntityGroup {
            feast: crate::store::feast::FeastGroup {
                feature_view: name.into(),
                join_key: key.into(),
            },
            name: name.into(),
            key: key.into(),
            nullable: false,
            features: features.iter().map(|f| f.to_string()).collect(),
            columns,
        };
        FeatureLayout {
            n_features: 3,
            group_names: vec!["customer".into(), "terminal".into()],
            request_columns: Vec::new(),
            request_groups: Vec::new(),
            entity_groups: vec![
                (0, group("customer", "customer_id", &["a", "b"], vec![0, 1])),
                (1, group("terminal", "terminal_id", &["c"], vec![2])),
            ],
        }
    }

    /// A fetcher over `store` for [`layout`]: a 10-minute cache of `capacity` entries
    /// per group, a 10 s store deadline, no metrics.
    fn test_fetcher(store: Arc<dyn FeatureStore>, capacity: u64) -> FeatureFetcher {
        FeatureFetcher::new(
            layout(),
            store,
            FetchConfig::new(Duration::from_secs(600), capacity, Duration::from_secs(10)),
            ModelHandle::disabled(&modelwatch::ModelSpec::default()),
            Arc::new(crate::faults::Faults::default()),
        )
    }

    fn tx(customer: &str, terminal: &str) -> Vec<Option<String>> {
        vec![Some(customer.into()), Some(terminal.into())]
    }

    /// One fetch of a customer and a terminal, as a request starting now.
    async fn fetch_now(
        fetcher: &FeatureFetcher,
        customer: &str,
        terminal: &str,
        row: &mut [f32],
        times: &mut [i64],
    ) -> Result<(), StoreError> {
        fetcher
            .fetch(&tx(customer, terminal), row, times, Instant::now())
            .await
    }

    fn fraud_card() -> ModelCard {
        ModelCard::from_json_str(crate::load::bundled::CARD).unwrap()
    }

    fn fields(features: &[(&str, FieldValue)], entities: &[(&str, &str)]) -> RequestFields {
        RequestFields {
            features: features
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            entities: entities
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The fraud card's request features, computed by the card's transforms, are the
    /// simulator's (which trained the model): scores cannot change.
    #[test]
    fn the_fraud_cards_transforms_are_the_simulators_features() {
        let layout = FeatureLayout::from_card(&fraud_card()).unwrap();
        assert_eq!(layout.group_names, ["transaction", "customer", "terminal"]);
        assert_eq!(layout.request_columns.len(), 4);
        let keys: Vec<&str> = layout
            .entity_groups
            .iter()
            .map(|(_, g)| g.key.as_str())
            .collect();
        assert_eq!(keys, ["customer_id", "terminal_id"]);
        let mut ts = 1_767_225_600; // 2026-01-01T00:00:00Z
        for i in 0..500 {
            ts += 3_607 + i * 61;
            let amount = (i as f64) * 3.7;
            let request = fields(
                &[
                    ("amount", FieldValue::Number(amount)),
                    ("timestamp", FieldValue::Number(ts as f64)),
                ],
                &[("customer_id", "C1"), ("terminal_id", "T1")],
            );
            let prepared = layout.prepare(&request, "", "", 42).unwrap();
            let expected = modelwatch_sim::transaction_features(amount, ts);
            assert_eq!(prepared.row[..4], expected, "at {ts}");
            assert_eq!(prepared.event_times[0], 42);
        }
    }

    #[test]
    fn missing_fields_are_named_unless_nullable() {
        let mut card = fraud_card();
        let layout = FeatureLayout::from_card(&card).unwrap();
        let keyed = [("customer_id", "C1"), ("terminal_id", "T1")];
        let err = layout
            .prepare(
                &fields(&[("timestamp", FieldValue::Number(0.0))], &keyed),
                "features.",
                "entities.",
                0,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "features.amount: is missing; feature `amount` is not nullable"
        );
        let err = layout
            .prepare(
                &fields(
                    &[
                        ("amount", FieldValue::Number(1.0)),
                        ("timestamp", FieldValue::Text("noon".into())),
                    ],
                    &keyed,
                ),
                "",
                "",
                0,
            )
            .unwrap_err();
        assert!(
            err.to_string().starts_with("timestamp: is not RFC 3339"),
            "{err}"
        );
        let err = layout
            .prepare(
                &fields(
                    &[
                        ("amount", FieldValue::Text("12".into())),
                        ("timestamp", FieldValue::Number(0.0)),
                    ],
                    &keyed,
                ),
                "",
                "",
                0,
            )
            .unwrap_err();
        assert_eq!(err.to_string(), "amount: must be a number");
        let err = layout
            .prepare(
                &fields(
                    &[
                        ("amount", FieldValue::Number(1.0)),
                        ("timestamp", FieldValue::Number(0.0)),
                    ],
                    &keyed[..1],
                ),
                "",
                "entities.",
                0,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "entities.terminal_id: is missing; it keys feature group `terminal`"
        );
        // Nullable: NaN, and a store group whose features are all nullable may go
        // unkeyed.
        for f in card.features.iter_mut() {
            if f.name == "amount" || f.group == "terminal" {
                f.nullable = true;
            }
        }
        let layout = FeatureLayout::from_card(&card).unwrap();
        let prepared = layout
            .prepare(
                &fields(&[("timestamp", FieldValue::Number(0.0))], &keyed[..1]),
                "",
                "",
                0,
            )
            .unwrap();
        assert!(prepared.row[0].is_nan());
        assert_eq!(prepared.entities, [Some("C1".to_string()), None]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_groups_are_read_at_once_and_unknowns_are_cached() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Rendezvous {
            inner: seeded_sqlite(dir.path()),
            barrier: tokio::sync::Barrier::new(2),
            reads: AtomicU64::new(0),
        });
        // A store deadline long enough that only a lookup one after the other could
        // reach it.
        let fetcher = test_fetcher(store.clone(), 100);
        let mut row = [f32::INFINITY; 3];
        let mut times = [0i64; 2];
        // Read one after the other, the first lookup would wait for a second that
        // never starts, until the store deadline: values NaN.
        fetch_now(&fetcher, "C000001", "T00001", &mut row, &mut times)
            .await
            .unwrap();
        assert_eq!(row, [1.0, 2.0, 3.0]);
        assert_eq!(times, [5, 6]);
        fetch_now(&fetcher, "C999999", "T99999", &mut row, &mut times)
            .await
            .unwrap();
        assert_eq!(row, [0.0, 0.0, 0.0]);
        assert_eq!(times, [i64::MAX, i64::MAX]);
        assert_eq!(store.reads.load(Ordering::Relaxed), 4);
        // Known and unknown alike now come from the cache: no store call (a lone
        // store call would wait at the rendezvous until the deadline, giving NaN).
        for _ in 0..3 {
            fetch_now(&fetcher, "C999999", "T99999", &mut row, &mut times)
                .await
                .unwrap();
            assert_eq!(row, [0.0, 0.0, 0.0]);
            fetch_now(&fetcher, "C000001", "T00001", &mut row, &mut times)
                .await
                .unwrap();
            assert_eq!(row, [1.0, 2.0, 3.0]);
        }
        assert_eq!(store.reads.load(Ordering::Relaxed), 4);
    }

    /// The real store, every read counted; its known-id filter is the real one.
    #[derive(Debug)]
    struct Counted {
        inner: SqliteStore,
        reads: AtomicU64,
    }

    impl FeatureStore for Counted {
        fn get<'a>(
            &'a self,
            group: &'a str,
            entity: &'a str,
        ) -> BoxFuture<'a, Result<Option<GroupValues>, StoreError>> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.inner.get(group, entity)
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

    /// The real store behind two switches: while `down`, every call fails as an
    /// unreachable store would; while `hung`, every call waits forever, as a store
    /// that stopped answering does.
    #[derive(Debug)]
    struct Switched {
        inner: SqliteStore,
        down: std::sync::atomic::AtomicBool,
        hung: std::sync::atomic::AtomicBool,
        reads: AtomicU64,
    }

    /// A SQLite store holding customer C000001 (a, b = 1, 2 at time 5) and terminal
    /// T00001 (c = 3 at time 6).
    fn seeded_sqlite(dir: &std::path::Path) -> SqliteStore {
        let store = SqliteStore::open_with_readers(&dir.join("f.sqlite"), 2).unwrap();
        store
            .upsert_group(
                "customer",
                &["a", "b"],
                [("C000001".to_string(), &[1.0f32, 2.0][..], 5)],
            )
            .unwrap();
        store
            .upsert_group(
                "terminal",
                &["c"],
                [("T00001".to_string(), &[3.0f32][..], 6)],
            )
            .unwrap();
        store
    }

    impl Switched {
        /// Up, over [`seeded_sqlite`].
        fn seeded(dir: &std::path::Path) -> Arc<Self> {
            Arc::new(Self {
                inner: seeded_sqlite(dir),
                down: Default::default(),
                hung: Default::default(),
                reads: AtomicU64::new(0),
            })
        }
    }

    impl FeatureStore for Switched {
        fn get<'a>(
            &'a self,
            group: &'a str,
            entity: &'a str,
        ) -> BoxFuture<'a, Result<Option<GroupValues>, StoreError>> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            if self.hung.load(Ordering::Relaxed) {
                return Box::pin(std::future::pending());
            }
            if self.down.load(Ordering::Relaxed) {
                return Box::pin(async {
                    Err(StoreError::new(StoreErrorKind::Unavailable, "down"))
                });
            }
            self.inner.get(group, entity)
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_breaker_opens_sheds_or_defaults_and_closes_on_a_probe() {
        let dir = tempfile::tempdir().unwrap();
        let store = Switched::seeded(dir.path());
        store.down.store(true, Ordering::Relaxed);
        let mut registry = modelwatch::prometheus_client::registry::Registry::default();
        let metrics =
            modelwatch::Metrics::register(&mut registry, &modelwatch::MetricsConfig::default())
                .unwrap();
        let handle = metrics.model(&modelwatch::ModelSpec::default());
        let fetcher = |policy| {
            FeatureFetcher::new(
                layout(),
                store.clone(),
                FetchConfig {
                    on_failure: policy,
                    breaker_failures: 3,
                    breaker_cooldown: Duration::from_millis(50),
                    // No caching: every fetch asks the store.
                    ..FetchConfig::new(Duration::from_nanos(1), 0, Duration::from_secs(1))
                },
                handle.clone(),
                Arc::new(crate::faults::Faults::default()),
            )
        };
        let (mut row, mut times) = ([0f32; 3], [0i64; 2]);
        // Defaults: answered, the store's values missing.
        let defaults = fetcher(StoreFailurePolicy::Defaults);
        fetch_now(&defaults, "C000001", "T00001", &mut row, &mut times)
            .await
            .unwrap();
        assert!(row.iter().all(|v| v.is_nan()), "{row:?}");
        // Shed: refused with the store's kind; two groups, two failures per fetch.
        let shed = fetcher(StoreFailurePolicy::Shed);
        let err = fetch_now(&shed, "C000001", "T00001", &mut row, &mut times)
            .await
            .unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Unavailable);
        assert!(!shed.breaker_open());
        fetch_now(&shed, "C000001", "T00001", &mut row, &mut times)
            .await
            .unwrap_err();
        assert!(shed.breaker_open(), "open after 3 consecutive failures");
        // Open: refused without asking the store.
        let reads = store.reads.load(Ordering::Relaxed);
        let err = fetch_now(&shed, "C000001", "T00001", &mut row, &mut times)
            .await
            .unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::CircuitOpen);
        assert_eq!(store.reads.load(Ordering::Relaxed), reads);
        assert!(handle.store_errors(StoreErrorKind::CircuitOpen) >= 2);
        // A failed probe keeps it open; a successful one closes it.
        tokio::time::sleep(Duration::from_millis(60)).await;
        fetch_now(&shed, "C000001", "T00001", &mut row, &mut times)
            .await
            .unwrap_err();
        assert!(shed.breaker_open());
        assert_eq!(store.reads.load(Ordering::Relaxed), reads + 1, "one probe");
        store.down.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(60)).await;
        // The probe (one group) succeeds and closes; the other group was refused
        // while the probe was in flight, or asked after it closed.
        let _ = fetch_now(&shed, "C000001", "T00001", &mut row, &mut times).await;
        assert!(!shed.breaker_open(), "closed after a successful probe");
        fetch_now(&shed, "C000001", "T00001", &mut row, &mut times)
            .await
            .unwrap();
        assert_eq!(row, [1.0, 2.0, 3.0]);
    }

    fn cached_entries(fetcher: &FeatureFetcher) -> usize {
        fetcher.caches.iter().map(|c| c.len()).sum()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_cache_keeps_answers_for_one_ttl_and_never_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let store = Switched::seeded(dir.path());
        store.down.store(true, Ordering::Relaxed);
        let fetcher = FeatureFetcher::new(
            layout(),
            store.clone(),
            FetchConfig {
                breaker_failures: 100,
                ..FetchConfig::new(Duration::from_secs(60), 100, Duration::from_secs(10))
            },
            ModelHandle::disabled(&modelwatch::ModelSpec::default()),
            Arc::new(crate::faults::Faults::default()),
        );
        let (mut row, mut times) = ([0f32; 3], [0i64; 2]);
        let t = Instant::now();
        // A failed read is served as missing and not cached: not as "unknown".
        fetcher
            .fetch(&tx("C000001", "T00001"), &mut row, &mut times, t)
            .await
            .unwrap();
        assert!(row.iter().all(|v| v.is_nan()), "{row:?}");
        assert_eq!(cached_entries(&fetcher), 0);
        store.down.store(false, Ordering::Relaxed);
        fetcher
            .fetch(&tx("C000001", "T00001"), &mut row, &mut times, t)
            .await
            .unwrap();
        assert_eq!(row, [1.0, 2.0, 3.0]);
        assert_eq!(store.reads.load(Ordering::Relaxed), 4);
        // Cached for one TTL from the request that read it, then read again.
        let second = Duration::from_secs(1);
        for (now, reads) in [(t + 59 * second, 4), (t + 60 * second, 6)] {
            row = [0.0; 3];
            fetcher
                .fetch(&tx("C000001", "T00001"), &mut row, &mut times, now)
                .await
                .unwrap();
            assert_eq!(row, [1.0, 2.0, 3.0]);
            assert_eq!(store.reads.load(Ordering::Relaxed), reads, "at {now:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_store_meets_its_deadline_and_a_cancelled_fetch_caches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Switched::seeded(dir.path());
        store.hung.store(true, Ordering::Relaxed);
        let fetcher = |store_timeout| {
            FeatureFetcher::new(
                layout(),
                store.clone(),
                FetchConfig::new(Duration::from_secs(60), 100, store_timeout),
                ModelHandle::disabled(&modelwatch::ModelSpec::default()),
                Arc::new(crate::faults::Faults::default()),
            )
        };
        let (mut row, mut times) = ([0f32; 3], [0i64; 2]);
        // The store deadline ends the read: served as missing, nothing cached.
        let deadline = fetcher(Duration::from_millis(50));
        fetch_now(&deadline, "C000001", "T00001", &mut row, &mut times)
            .await
            .unwrap();
        assert!(row.iter().all(|v| v.is_nan()), "{row:?}");
        assert_eq!(cached_entries(&deadline), 0);
        // A client that goes away drops the fetch in the middle of its store reads
        // (here, long before the store deadline): nothing is cached, and the breaker
        // saw no failure, so the next fetch asks the store at once.
        let cancelled = fetcher(Duration::from_secs(3600));
        let gone = tokio::time::timeout(
            Duration::from_millis(20),
            fetch_now(&cancelled, "C000001", "T00001", &mut row, &mut times),
        )
        .await;
        assert!(gone.is_err(), "the hung store answered: {gone:?}");
        assert_eq!(cached_entries(&cancelled), 0);
        assert!(!cancelled.breaker_open());
        store.hung.store(false, Ordering::Relaxed);
        let reads = store.reads.load(Ordering::Relaxed);
        fetch_now(&cancelled, "C000001", "T00001", &mut row, &mut times)
            .await
            .unwrap();
        assert_eq!(row, [1.0, 2.0, 3.0]);
        assert_eq!(store.reads.load(Ordering::Relaxed), reads + 2);
        assert_eq!(cached_entries(&cancelled), 2);
    }

    /// Issue 11: an unknown-id flood sent every made-up id to SQLite and filled the
    /// cache with negative entries.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_id_flood_neither_reaches_the_store_nor_fills_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let inner = SqliteStore::open_with_readers(&dir.path().join("f.sqlite"), 2).unwrap();
        let customers: Vec<(String, [f32; 2])> = (0..2_000)
            .map(|i| (format!("C{i:06}"), [i as f32, 1.0]))
            .collect();
        inner
            .upsert_group(
                "customer",
                &["a", "b"],
                customers.iter().map(|(id, v)| (id.clone(), &v[..], 5)),
            )
            .unwrap();
        inner
            .upsert_group(
                "terminal",
                &["c"],
                [("T00001".to_string(), &[3.0f32][..], 6)],
            )
            .unwrap();
        let store = Arc::new(Counted {
            inner,
            reads: AtomicU64::new(0),
        });
        let fetcher = test_fetcher(store.clone(), 10_000);
        let (mut row, mut times) = ([f32::INFINITY; 3], [0i64; 2]);
        let flood = 10_000;
        for i in 0..flood {
            fetch_now(
                &fetcher,
                &format!("C{:06}", 500_000 + i),
                &format!("T{:05}", 50_000 + i),
                &mut row,
                &mut times,
            )
            .await
            .unwrap();
            assert_eq!(row, [0.0, 0.0, 0.0], "made-up id {i}");
            assert_eq!(times, [i64::MAX, i64::MAX]);
        }
        // About 0.8% of absent ids pass a Bloom filter; the rest cost nothing.
        let reads = store.reads.load(Ordering::Relaxed);
        assert!(
            reads < 2 * flood / 50,
            "{reads} store reads for {} made-up ids",
            2 * flood
        );
        let mut cached = 0;
        for cache in &fetcher.caches {
            cached += cache.len() as u64;
        }
        assert!(
            cached <= reads,
            "{cached} cache entries after {reads} store reads"
        );
        // Every stored id still passes and is read from the store, then cached.
        for (id, values) in customers.iter().step_by(97) {
            fetch_now(&fetcher, id, "T00001", &mut row, &mut times)
                .await
                .unwrap();
            assert_eq!(row, [values[0], values[1], 3.0], "{id}");
            assert_eq!(times, [5, 6]);
        }
    }
}
