//! Module implementing the feature store interface and the embedded SQLite store. See
//! [`FeatureStore`] and [`SqliteStore`] for details.

use modelwatch::StoreErrorKind;
use rusqlite::{Connection, OptionalExtension, params};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};

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

    /// Sets the event time of every entity in `group` (the batch pipeline ran).
    fn touch_group<'a>(
        &'a self,
        group: &'a str,
        event_time: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
}

/// The embedded default store: one SQLite file in the data directory.
///
/// Calls run on tokio's blocking pool so a slow disk never stalls the request workers.
/// Lookups go through a pool of reader connections (see [`SqliteStore::open_with_readers`]),
/// so concurrent misses are read in parallel instead of queueing on one connection;
/// writes (seeding, refreshes) have a connection of their own.
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
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                readers: Readers {
                    idle: Mutex::new(idle),
                    returned: Condvar::new(),
                    size: readers,
                },
                writer: Mutex::new(writer),
            }),
        })
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
        let mut conn = self.lock_writer();
        let tx = conn.transaction()?;
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
                written += 1;
            }
        }
        tx.commit()?;
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
