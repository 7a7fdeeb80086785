//! Module implementing the feature store interface and the embedded SQLite store. See
//! [`FeatureStore`] and [`SqliteStore`] for details; the Redis stores (our layout and
//! Feast's) are in [`redis`], Feast's format in [`feast`].

pub mod feast;
pub mod redis;

use crate::known_ids::KnownIds;
use modelwatch::StoreErrorKind;
use rusqlite::{Connection, OptionalExtension, params};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

/// A boxed future, the return type of [`FeatureStore`] methods (the trait is used as
/// `dyn`, and a store call only happens on a cache miss).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The values of one feature group for one entity, as of `event_time`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupValues {
    /// Values in the group's feature order.
    pub values: Box<[f32]>,
    /// When the batch pipeline computed them (unix seconds).
    pub event_time: i64,
}

/// Why a feature store call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("feature store {kind}: {message}")]
pub struct StoreError {
    /// The `kind` label of `model_feature_store_errors_total`.
    pub kind: StoreErrorKind,
    /// What happened, for the log.
    pub message: String,
}

impl StoreError {
    pub(crate) fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// An online feature store: the latest values of each feature group per entity.
pub trait FeatureStore: Send + Sync + std::fmt::Debug + 'static {
    /// The values of `group` for `entity`, or `None` when the entity is unknown.
    fn get<'a>(
        &'a self,
        group: &'a str,
        entity: &'a str,
    ) -> BoxFuture<'a, Result<Option<GroupValues>, StoreError>>;

    /// Answers when the store is reachable (readiness).
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// `false` when the store certainly does not hold `entity` in `group`, answered in
    /// memory (no I/O): the lookup is skipped and the entity is unknown. A store
    /// without such knowledge says `true` and is asked.
    fn may_hold(&self, group: &str, entity: &str) -> bool {
        let _ = (group, entity);
        true
    }

    /// Sets the event time of every entity in `group` (the batch pipeline ran).
    fn touch_group<'a>(
        &'a self,
        group: &'a str,
        event_time: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
}

/// A store the project writes: the simulator's seeding and `modelwatch features
/// load` (SQLite, and Redis in our own layout). Blocking: call it off the runtime.
pub trait GroupWriter: Send + Sync + std::fmt::Debug {
    /// Whether the store holds no entity of `group`.
    fn is_empty(&self, group: &str) -> anyhow::Result<bool>;

    /// Writes (or replaces) rows of `(entity id, values in `feature_names` order,
    /// event time in Unix seconds)`; `simulated` says they come from the simulator
    /// (the built-in refresher then keeps them fresh). Returns the rows written.
    fn write_rows(
        &self,
        group: &str,
        feature_names: &[&str],
        rows: &mut dyn Iterator<Item = (String, Vec<f32>, i64)>,
        simulated: bool,
    ) -> anyhow::Result<u64>;

    /// Where the store is, for messages.
    fn describe(&self) -> String;
}

impl GroupWriter for SqliteStore {
    fn is_empty(&self, group: &str) -> anyhow::Result<bool> {
        Ok(self.count(group)? == 0)
    }

    fn write_rows(
        &self,
        group: &str,
        feature_names: &[&str],
        rows: &mut dyn Iterator<Item = (String, Vec<f32>, i64)>,
        _simulated: bool,
    ) -> anyhow::Result<u64> {
        let rows: Vec<(String, Vec<f32>, i64)> = rows.collect();
        self.upsert_group(
            group,
            feature_names,
            rows.iter().map(|(id, v, t)| (id.clone(), v.as_slice(), *t)),
        )
    }

    fn describe(&self) -> String {
        self.path().display().to_string()
    }
}

/// The embedded default store: one SQLite file in the data directory.
///
/// Calls run on tokio's blocking pool so a slow disk never stalls the request workers.
/// Lookups go through a pool of reader connections (see [`SqliteStore::open_with_readers`]),
/// so concurrent misses are read in parallel instead of queueing on one connection;
/// writes (seeding, refreshes) have a connection of their own.
///
/// The store keeps a Bloom filter of the ids of each group ([`KnownIds`]), so an
/// unknown id is answered in memory ([`FeatureStore::may_hold`]). Writes through this
/// store add their ids to it at once. Writes by another process (`modelwatch features
/// load` while `serve` runs) bump the store's id generation, and
/// [`SqliteStore::watch_ids`] rebuilds the filters when it changes: their new ids are
/// served within one poll interval.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    readers: Readers,
    /// Serves writes (seeding, refreshes). In WAL mode a writer never blocks the
    /// readers, so a refresh of every entity never stalls the request path.
    writer: Mutex<Connection>,
    /// The ids each group holds, as of the generation they were built from.
    known: RwLock<Arc<KnownIds>>,
    /// Held by a rebuild of `known`, so two never race to swap in older filters.
    rebuilding: Mutex<()>,
}

/// A fixed set of reader connections. A caller takes one for the length of a query
/// and gives it back; when every connection is out, it waits for one.
#[derive(Debug)]
struct Readers {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
    size: usize,
}

/// A reader connection taken from the pool; it goes back when dropped.
struct Reader<'a> {
    pool: &'a Readers,
    conn: Option<Connection>,
}

impl Readers {
    fn take(&self) -> Reader<'_> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(conn) = idle.pop() {
                return Reader {
                    pool: self,
                    conn: Some(conn),
                };
            }
            idle = self.returned.wait(idle).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a reader holds its connection until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
            self.pool.returned.notify_one();
        }
    }
}

/// The default number of reader connections: one per core this process may use.
pub fn default_readers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS feature_values (
    feature_group TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    event_time INTEGER NOT NULL,
    feature_values BLOB NOT NULL,
    PRIMARY KEY (feature_group, entity_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feature_groups (
    feature_group TEXT PRIMARY KEY,
    feature_names TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS id_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT OR IGNORE INTO id_generation (id, generation) VALUES (1, 0);
";

fn sql_error(e: rusqlite::Error) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, e.to_string())
}

/// Encodes values as little-endian f32s.
pub fn encode_values(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Decodes little-endian f32s, checking the width.
pub fn decode_values(bytes: &[u8], expected: usize) -> Result<Box<[f32]>, StoreError> {
    if bytes.len() != expected * 4 {
        return Err(StoreError::new(
            StoreErrorKind::Decode,
            format!(
                "expected {expected} values ({} bytes), found {} bytes",
                expected * 4,
                bytes.len()
            ),
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`, with [`default_readers`] reader
    /// connections.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Self::open_with_readers(path, default_readers())
    }

    /// Opens (or creates) the store at `path` with `readers` reader connections (at
    /// least one) and one writer.
    pub fn open_with_readers(path: &Path, readers: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(
            readers >= 1,
            "the feature store needs at least one reader connection"
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("cannot create data directory {}: {e}", dir.display())
            })?;
        }
        let open = || {
            Connection::open(path)
                .map_err(|e| anyhow::anyhow!("cannot open feature store {}: {e}", path.display()))
        };
        let writer = open()?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        writer.busy_timeout(std::time::Duration::from_secs(5))?;
        writer.execute_batch(SCHEMA)?;
        let idle = (0..readers)
            .map(|_| {
                let conn = open()?;
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
                Ok(conn)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let store = Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                readers: Readers {
                    idle: Mutex::new(idle),
                    returned: Condvar::new(),
                    size: readers,
                },
                writer: Mutex::new(writer),
                // Generation -1: the first rebuild below always builds.
                known: RwLock::new(Arc::new(KnownIds::build(-1, &[], std::iter::empty()))),
                rebuilding: Mutex::new(()),
            }),
        };
        store.rebuild_known_ids()?;
        Ok(store)
    }

    /// The filters in use.
    pub fn known_ids(&self) -> Arc<KnownIds> {
        self.inner
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Rebuilds the known-id filters from the file when its id generation changed
    /// since they were built (another process wrote ids); `Ok(true)` when it did.
    ///
    /// The generation and the ids are read in one transaction, so a write that
    /// commits during the scan changes the generation the next call sees.
    pub fn rebuild_known_ids(&self) -> Result<bool, StoreError> {
        let _one = self
            .inner
            .rebuilding
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let built = self.known_ids().generation;
        let conn = self.lock();
        let tx = conn.unchecked_transaction().map_err(sql_error)?;
        let generation: i64 = tx
            .query_row(
                "SELECT generation FROM id_generation WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .map_err(sql_error)?;
        if generation == built {
            return Ok(false);
        }
        let counts = {
            let mut stmt = tx
                .prepare(
                    "SELECT feature_group, COUNT(*) FROM feature_values GROUP BY feature_group",
                )
                .map_err(sql_error)?;
            stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
            })
            .map_err(sql_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_error)?
        };
        let mut stmt = tx
            .prepare("SELECT feature_group, entity_id FROM feature_values")
            .map_err(sql_error)?;
        let mut rows = stmt.query([]).map_err(sql_error)?;
        let mut known = KnownIds::build(generation, &counts, std::iter::empty());
        while let Some(row) = rows.next().map_err(sql_error)? {
            let group = row
                .get_ref(0)
                .and_then(|v| Ok(v.as_str()?))
                .map_err(sql_error)?;
            let id = row
                .get_ref(1)
                .and_then(|v| Ok(v.as_str()?))
                .map_err(sql_error)?;
            known.insert(group, id);
        }
        for (group, filter) in known.groups() {
            tracing::debug!(
                group,
                ids = filter.ids(),
                bytes = filter.bytes(),
                generation,
                "known-id filter built"
            );
        }
        *self.inner.known.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(known);
        Ok(true)
    }

    /// Checks the id generation every `every` and rebuilds the known-id filters when
    /// another process wrote ids, until the task is aborted.
    pub async fn watch_ids(self, every: Duration) {
        let mut ticker = tokio::time::interval(every.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let store = self.clone();
            match blocking(move || store.rebuild_known_ids()).await {
                Ok(true) => tracing::info!(
                    generation = self.known_ids().generation,
                    "new feature store ids: known-id filters rebuilt"
                ),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the feature store's ids; keeping the filters")
                }
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How many reader connections serve lookups.
    pub fn readers(&self) -> usize {
        self.inner.readers.size
    }

    fn lock(&self) -> Reader<'_> {
        self.inner.readers.take()
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.inner.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entities stored for `group`.
    pub fn count(&self, group: &str) -> anyhow::Result<u64> {
        let n: i64 = self.lock().query_row(
            "SELECT COUNT(*) FROM feature_values WHERE feature_group = ?1",
            params![group],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Writes (or replaces) every row of one group in one transaction, and records
    /// the group's feature names.
    pub fn upsert_group<'r>(
        &self,
        group: &str,
        feature_names: &[&str],
        rows: impl IntoIterator<Item = (String, &'r [f32], i64)>,
    ) -> anyhow::Result<u64> {
        let known = self.known_ids();
        let mut conn = self.lock_writer();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE id_generation SET generation = generation + 1 WHERE id = 1",
            [],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO feature_groups (feature_group, feature_names) VALUES (?1, ?2)",
            params![group, feature_names.join(",")],
        )?;
        let mut written = 0;
        {
            let mut stmt = tx.prepare(
                "INSERT OR REPLACE INTO feature_values (feature_group, entity_id, event_time, feature_values) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (entity, values, event_time) in rows {
                anyhow::ensure!(
                    values.len() == feature_names.len(),
                    "group {group}: entity {entity} has {} values for {} features",
                    values.len(),
                    feature_names.len()
                );
                stmt.execute(params![group, entity, event_time, encode_values(values)])?;
                // Into the filters before the commit makes the row readable, so no
                // lookup ever finds the row in the file but not in the filter.
                if let Some(filter) = known.group(group) {
                    filter.insert(&entity);
                }
                written += 1;
            }
        }
        tx.commit()?;
        drop(conn);
        // Resized to the group's new count (and a new group gets its filter).
        self.rebuild_known_ids()?;
        Ok(written)
    }

    /// The feature names recorded for `group`.
    pub fn group_features(&self, group: &str) -> anyhow::Result<Option<Vec<String>>> {
        let names: Option<String> = self
            .lock()
            .query_row(
                "SELECT feature_names FROM feature_groups WHERE feature_group = ?1",
                params![group],
                |r| r.get(0),
            )
            .optional()?;
        Ok(names.map(|n| n.split(',').map(str::to_string).collect()))
    }

    fn get_blocking(&self, group: &str, entity: &str) -> Result<Option<GroupValues>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT v.event_time, v.feature_values, g.feature_names FROM feature_values v \
                 JOIN feature_groups g ON g.feature_group = v.feature_group \
                 WHERE v.feature_group = ?1 AND v.entity_id = ?2",
            )
            .map_err(sql_error)?;
        let row = stmt
            .query_row(params![group, entity], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .optional()
            .map_err(sql_error)?;
        match row {
            None => Ok(None),
            Some((event_time, blob, names)) => {
                let width = names.split(',').count();
                Ok(Some(GroupValues {
                    values: decode_values(&blob, width)?,
                    event_time,
                }))
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        StoreError::new(
            StoreErrorKind::Unavailable,
            format!("store task failed: {e}"),
        )
    })?
}

impl FeatureStore for SqliteStore {
    fn get<'a>(
        &'a self,
        group: &'a str,
        entity: &'a str,
    ) -> BoxFuture<'a, Result<Option<GroupValues>, StoreError>> {
        let store = self.clone();
        let (group, entity) = (group.to_string(), entity.to_string());
        Box::pin(blocking(move || store.get_blocking(&group, &entity)))
    }

    fn may_hold(&self, group: &str, entity: &str) -> bool {
        self.inner
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .may_contain(group, entity)
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        let store = self.clone();
        Box::pin(blocking(move || {
            store
                .lock()
                .query_row("SELECT COUNT(*) FROM feature_groups", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(sql_error)
                .map(|_| ())
        }))
    }

    fn touch_group<'a>(
        &'a self,
        group: &'a str,
        event_time: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let store = self.clone();
        let group = group.to_string();
        Box::pin(blocking(move || {
            store
                .lock_writer()
                .execute(
                    "UPDATE feature_values SET event_time = ?1 WHERE feature_group = ?2",
                    params![event_time, group],
                )
                .map(|n| n as u64)
                .map_err(sql_error)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_unknown_entity() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("f.sqlite")).unwrap();
        let values = [1.0f32, 2.5];
        store
            .upsert_group(
                "customer",
                &["a", "b"],
                [("C1".to_string(), &values[..], 100)],
            )
            .unwrap();
        let got = store.get("customer", "C1").await.unwrap().unwrap();
        assert_eq!(&*got.values, &values);
        assert_eq!(got.event_time, 100);
        assert_eq!(store.get("customer", "C2").await.unwrap(), None);
        assert_eq!(store.touch_group("customer", 200).await.unwrap(), 1);
        assert_eq!(
            store
                .get("customer", "C1")
                .await
                .unwrap()
                .unwrap()
                .event_time,
            200
        );
        store.ping().await.unwrap();
    }

    #[tokio::test]
    async fn a_reader_taken_out_leaves_the_others_serving() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_with_readers(&dir.path().join("f.sqlite"), 2).unwrap();
        assert_eq!(store.readers(), 2);
        let values = [3.0f32];
        store
            .upsert_group("terminal", &["x"], [("T00001".to_string(), &values[..], 7)])
            .unwrap();
        // With one connection held (a slow query), lookups still answer through the
        // other; a single shared connection would wait here for ever.
        let held = store.lock();
        for _ in 0..10 {
            let got = store.get("terminal", "T00001").await.unwrap().unwrap();
            assert_eq!(&*got.values, &values);
            assert_eq!(store.get("terminal", "T99999").await.unwrap(), None);
        }
        drop(held);
        assert_eq!(store.inner.readers.idle.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn unknown_ids_are_answered_in_memory_and_stored_ones_never_are() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("f.sqlite")).unwrap();
        let ids: Vec<String> = (0..5_000).map(|i| format!("C{i:06}")).collect();
        let values = [1.0f32];
        store
            .upsert_group(
                "customer",
                &["a"],
                ids.iter().map(|id| (id.clone(), &values[..], 1)),
            )
            .unwrap();
        assert!(
            ids.iter().all(|id| store.may_hold("customer", id)),
            "a stored id was filtered out"
        );
        let passed = (0..50_000)
            .filter(|i| store.may_hold("customer", &format!("C{:06}", 100_000 + i)))
            .count();
        assert!(passed < 1_000, "{passed} of 50000 unknown ids passed");
        // A group the store has never held is not filtered (nothing is known of it).
        assert!(store.may_hold("merchant", "M1"));
    }

    #[tokio::test]
    async fn ids_another_process_writes_are_seen_after_the_next_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.sqlite");
        let serving = SqliteStore::open(&path).unwrap();
        let values = [2.0f32];
        serving
            .upsert_group("terminal", &["x"], [("T00001".to_string(), &values[..], 1)])
            .unwrap();
        // Nothing changed since the last build: no rebuild.
        assert!(!serving.rebuild_known_ids().unwrap());
        // `modelwatch features load` in another process: its own connections.
        let loader = SqliteStore::open(&path).unwrap();
        let new: Vec<String> = (0..1_000).map(|i| format!("T{:05}", 10_000 + i)).collect();
        loader
            .upsert_group(
                "terminal",
                &["x"],
                new.iter().map(|id| (id.clone(), &values[..], 2)),
            )
            .unwrap();
        let before = new
            .iter()
            .filter(|id| serving.may_hold("terminal", id))
            .count();
        assert!(
            before < 100,
            "{before} of 1000 unseen ids passed before the rebuild"
        );
        assert!(serving.rebuild_known_ids().unwrap());
        assert!(new.iter().all(|id| serving.may_hold("terminal", id)));
        assert_eq!(
            serving
                .get("terminal", "T10999")
                .await
                .unwrap()
                .unwrap()
                .event_time,
            2
        );
        assert_eq!(
            serving.known_ids().generation,
            loader.known_ids().generation
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watch_picks_up_another_process_s_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.sqlite");
        let serving = SqliteStore::open(&path).unwrap();
        let watch = tokio::spawn(serving.clone().watch_ids(Duration::from_millis(100)));
        let loader = SqliteStore::open(&path).unwrap();
        let values = [2.0f32];
        let ids: Vec<String> = (0..200).map(|i| format!("C{i:06}")).collect();
        loader
            .upsert_group(
                "customer",
                &["a"],
                ids.iter().map(|id| (id.clone(), &values[..], 2)),
            )
            .unwrap();
        // Bounded: 300 polls of 50 ms, the watch ticks every 100 ms.
        let seen = async {
            for _ in 0..300 {
                if ids.iter().all(|id| serving.may_hold("customer", id)) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        };
        assert!(seen.await, "the watch never rebuilt the filters");
        watch.abort();
    }

    #[test]
    fn a_failed_rebuild_keeps_the_filters_it_had() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        let values = [1.0f32];
        store
            .upsert_group(
                "customer",
                &["a"],
                [("C000001".to_string(), &values[..], 1)],
            )
            .unwrap();
        let before = store.known_ids().generation;
        // Another process breaks the file under the server: the generation is gone.
        Connection::open(&path)
            .unwrap()
            .execute_batch("DROP TABLE id_generation")
            .unwrap();
        let err = store.rebuild_known_ids().unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
        // The ids it knew still pass; made-up ones are still answered in memory.
        assert_eq!(store.known_ids().generation, before);
        assert!(store.may_hold("customer", "C000001"));
        let passed = (0..1_000)
            .filter(|i| store.may_hold("customer", &format!("C{:06}", 500_000 + i)))
            .count();
        assert!(passed < 50, "{passed} of 1000 unknown ids passed");
    }

    #[test]
    fn zero_readers_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = SqliteStore::open_with_readers(&dir.path().join("f.sqlite"), 0).unwrap_err();
        assert!(err.to_string().contains("at least one reader"), "{err}");
    }

    #[test]
    fn wrong_width_is_a_decode_error() {
        let err = decode_values(&[0u8; 12], 2).unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Decode);
    }
}
