//! Module implementing the Redis feature stores: our own layout and Feast's online
//! store layout, over one reconnecting connection. See [`RedisStore`] for details.
//!
//! Our layout (`--feature-store redis://host:port/db`), one hash per entity and group:
//!
//! - key `modelwatch:<group>:<entity id>` (the prefix is set with `?prefix=`);
//! - one field per feature of the group, named as the feature, holding the value as
//!   decimal text (`0.25`); an absent field is a missing value;
//! - the field `_event_time`, the group's event time in Unix seconds; a hash without
//!   it is an unknown entity.
//!
//! A lookup is one `HMGET` (one round trip). Feast's layout is read as
//! [`super::feast`] describes.

use super::feast::{self, FeastGroup};
use super::{BoxFuture, FeatureStore, GroupValues, GroupWriter, StoreError};
use modelwatch::StoreErrorKind;
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::time::Duration;

/// The event time field of our layout.
pub const EVENT_TIME_FIELD: &str = "_event_time";
/// The default key prefix of our layout.
pub const DEFAULT_PREFIX: &str = "modelwatch:";
/// Rows written per pipeline (seeding, `features load`, the refresher).
const WRITE_CHUNK: usize = 1_000;
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Which layout the hashes follow.
#[derive(Debug, Clone)]
pub enum Layout {
    /// Our own: `<prefix><group>:<entity>`, fields named as the features.
    Own {
        /// The key prefix (`modelwatch:`).
        prefix: String,
    },
    /// Feast's online store, for `project`; each card group maps to a feature view.
    Feast {
        /// The Feast project.
        project: String,
        /// The groups by card group name.
        groups: HashMap<String, FeastGroup>,
    },
}

/// How to reach Redis: the parsed `--feature-store` URL with its secrets.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// `redis://` or `rediss://` URL without password or query.
    pub url: String,
    /// The password (from a file or the environment, never a flag).
    pub password: Option<String>,
    /// PEM root certificate(s) that sign the server's certificate (`rediss://`).
    pub ca_pem: Option<Vec<u8>>,
}

/// The feature names of each group, as the card declares them (the store holds
/// values by name; the pipeline wants them in the card's order).
pub type GroupFeatures = HashMap<String, Vec<String>>;

/// A feature store in Redis: reads through a [`ConnectionManager`] (one multiplexed
/// connection that reconnects by itself after the server comes back), writes through
/// a blocking connection of their own.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    manager: ConnectionManager,
    layout: Layout,
    /// Pre-built `HMGET` field lists per group, so a lookup builds only its key.
    fields: std::sync::Arc<HashMap<String, Vec<Vec<u8>>>>,
    described: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("store", &self.described)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

fn redis_error(e: redis::RedisError) -> StoreError {
    let kind = if e.is_timeout() {
        StoreErrorKind::Timeout
    } else {
        StoreErrorKind::Unavailable
    };
    StoreError::new(kind, e.to_string())
}

fn client(target: &RedisTarget) -> anyhow::Result<redis::Client> {
    use redis::IntoConnectionInfo as _;
    let mut info = target
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| anyhow::anyhow!("invalid Redis URL {}: {e}", target.url))?;
    if let Some(password) = &target.password {
        let settings = info.redis_settings().clone().set_password(password);
        info = info.set_redis_settings(settings);
    }
    let client = match &target.ca_pem {
        Some(pem) => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        None => redis::Client::open(info),
    };
    client.map_err(|e| anyhow::anyhow!("invalid Redis settings for {}: {e}", target.url))
}

impl RedisStore {
    /// Connects to Redis (failing when it does not answer within a couple of seconds)
    /// and prepares the lookups of `features` (group name to feature names, in the
    /// card's order).
    pub async fn connect(
        target: &RedisTarget,
        layout: Layout,
        features: GroupFeatures,
        response_timeout: Duration,
    ) -> anyhow::Result<Self> {
        // rustls needs a process-wide crypto provider; the workspace's is ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = client(target)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(response_timeout))
            // Reconnect attempts back off from 50 ms to at most 1 s, so service comes
            // back within about a second of the server.
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(2);
        let manager = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach the feature store {}: {e}\nhint: start Redis, or check the URL, --redis-password-file (or MODELWATCH_REDIS_PASSWORD) and --redis-ca-file",
                    target.url
                )
            })?;
        let fields = features
            .iter()
            .map(|(group, names)| {
                let list = match &layout {
                    Layout::Own { .. } => std::iter::once(EVENT_TIME_FIELD.as_bytes().to_vec())
                        .chain(names.iter().map(|n| n.as_bytes().to_vec()))
                        .collect(),
                    Layout::Feast { groups, .. } => {
                        let g = groups.get(group).ok_or_else(|| {
                            anyhow::anyhow!("no Feast mapping for group {group:?}")
                        })?;
                        feast::hash_fields(&g.feature_view, names)
                    }
                };
                Ok((group.clone(), list))
            })
            .collect::<anyhow::Result<_>>()?;
        let described = match &layout {
            Layout::Own { .. } => target.url.clone(),
            Layout::Feast { project, .. } => format!("feast+{} (project {project})", target.url),
        };
        Ok(Self {
            client,
            manager,
            layout,
            fields: std::sync::Arc::new(fields),
            described,
        })
    }

    /// The layout read.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn key(&self, group: &str, entity: &str) -> Result<Vec<u8>, StoreError> {
        match &self.layout {
            Layout::Own { prefix } => Ok(format!("{prefix}{group}:{entity}").into_bytes()),
            Layout::Feast { project, groups } => {
                let g = groups.get(group).ok_or_else(|| {
                    StoreError::new(
                        StoreErrorKind::Decode,
                        format!("no Feast feature view for group {group:?}"),
                    )
                })?;
                Ok(feast::entity_key(&g.join_key, entity, project))
            }
        }
    }

    fn decode(
        &self,
        group: &str,
        raw: Vec<Option<Vec<u8>>>,
    ) -> Result<Option<GroupValues>, StoreError> {
        let decode = |m: String| StoreError::new(StoreErrorKind::Decode, m);
        match &self.layout {
            Layout::Own { .. } => {
                let mut raw = raw.into_iter();
                let Some(Some(time)) = raw.next() else {
                    return Ok(None);
                };
                let event_time = std::str::from_utf8(&time)
                    .ok()
                    .and_then(|t| t.trim().parse::<i64>().ok())
                    .ok_or_else(|| {
                        decode(format!("{group}: {EVENT_TIME_FIELD} is not Unix seconds"))
                    })?;
                let values = raw
                    .map(|v| match v {
                        None => Ok(f32::NAN),
                        Some(bytes) if bytes.is_empty() => Ok(f32::NAN),
                        Some(bytes) => std::str::from_utf8(&bytes)
                            .ok()
                            .and_then(|t| t.trim().parse::<f32>().ok())
                            .ok_or_else(|| decode(format!("{group}: a value is not a number"))),
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Some(GroupValues { values, event_time }))
            }
            Layout::Feast { .. } => {
                feast::decode_row(&raw).map_err(|m| decode(format!("{group}: {m}")))
            }
        }
    }

    fn connection(&self) -> anyhow::Result<redis::Connection> {
        self.client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("cannot reach the feature store {}: {e}", self.described))
    }

    fn own_prefix(&self) -> anyhow::Result<&str> {
        match &self.layout {
            Layout::Own { prefix } => Ok(prefix),
            Layout::Feast { .. } => anyhow::bail!(
                "the Feast online store is written by Feast (feast materialize), not by modelwatch\nhint: load features with feast, or use --feature-store redis://... for modelwatch's own layout"
            ),
        }
    }

    /// The keys of `group` in our layout, scanned without blocking the server.
    fn scan_keys(&self, conn: &mut redis::Connection, group: &str) -> anyhow::Result<Vec<Vec<u8>>> {
        let pattern = format!(
            "{}{}:*",
            glob_escape(self.own_prefix()?),
            glob_escape(group)
        );
        let keys: redis::Iter<'_, Vec<u8>> = redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(conn)?;
        let mut out = Vec::new();
        for key in keys {
            out.push(key?);
        }
        Ok(out)
    }

    fn seeded_marker(&self, group: &str) -> anyhow::Result<String> {
        Ok(format!("{}seeded:{group}", self.own_prefix()?))
    }

    /// Whether the simulator seeded `group` (so the refresher may date it), as
    /// opposed to a real pipeline or `features load`.
    pub fn simulated(&self, group: &str) -> anyhow::Result<bool> {
        let mut conn = self.connection()?;
        Ok(redis::cmd("EXISTS")
            .arg(self.seeded_marker(group)?)
            .query::<i64>(&mut conn)?
            == 1)
    }

    /// Marks `group` as seeded by the simulator (see [`RedisStore::simulated`]).
    pub fn mark_simulated(&self, group: &str, simulated: bool) -> anyhow::Result<()> {
        let mut conn = self.connection()?;
        let marker = self.seeded_marker(group)?;
        if simulated {
            redis::cmd("SET")
                .arg(marker)
                .arg(1)
                .query::<()>(&mut conn)?;
        } else {
            redis::cmd("DEL").arg(marker).query::<()>(&mut conn)?;
        }
        Ok(())
    }
}

/// Escapes Redis glob characters.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl FeatureStore for RedisStore {
    fn get<'a>(
        &'a self,
        group: &'a str,
        entity: &'a str,
    ) -> BoxFuture<'a, Result<Option<GroupValues>, StoreError>> {
        Box::pin(async move {
            let key = self.key(group, entity)?;
            let Some(fields) = self.fields.get(group) else {
                return Err(StoreError::new(
                    StoreErrorKind::Decode,
                    format!("the store was not opened for group {group:?}"),
                ));
            };
            let mut conn = self.manager.clone();
            let raw: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
                .arg(&key)
                .arg(fields)
                .query_async(&mut conn)
                .await
                .map_err(redis_error)?;
            self.decode(group, raw)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = self.manager.clone();
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .map_err(redis_error)
        })
    }

    fn touch_group<'a>(
        &'a self,
        group: &'a str,
        event_time: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let store = self.clone();
        let group = group.to_string();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
                let mut conn = store.connection()?;
                let keys = store.scan_keys(&mut conn, &group)?;
                for chunk in keys.chunks(WRITE_CHUNK) {
                    let mut pipe = redis::pipe();
                    for key in chunk {
                        pipe.hset(key, EVENT_TIME_FIELD, event_time).ignore();
                    }
                    pipe.query::<()>(&mut conn)?;
                }
                Ok(keys.len() as u64)
            })
            .await
            .map_err(|e| StoreError::new(StoreErrorKind::Unavailable, e.to_string()))?
            .map_err(|e| StoreError::new(StoreErrorKind::Unavailable, e.to_string()))
        })
    }
}

impl GroupWriter for RedisStore {
    fn is_empty(&self, group: &str) -> anyhow::Result<bool> {
        let mut conn = self.connection()?;
        let pattern = format!(
            "{}{}:*",
            glob_escape(self.own_prefix()?),
            glob_escape(group)
        );
        let mut keys: redis::Iter<'_, Vec<u8>> = redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(&mut conn)?;
        Ok(keys.next().transpose()?.is_none())
    }

    fn write_rows(
        &self,
        group: &str,
        feature_names: &[&str],
        rows: &mut dyn Iterator<Item = (String, Vec<f32>, i64)>,
        simulated: bool,
    ) -> anyhow::Result<u64> {
        let prefix = self.own_prefix()?.to_string();
        let mut conn = self.connection()?;
        let mut written = 0u64;
        let mut pipe = redis::pipe();
        let mut in_pipe = 0;
        for (entity, values, event_time) in rows {
            anyhow::ensure!(
                values.len() == feature_names.len(),
                "group {group}: entity {entity} has {} values for {} features",
                values.len(),
                feature_names.len()
            );
            let key = format!("{prefix}{group}:{entity}");
            // A whole entity replaced: a missing value leaves no field behind.
            pipe.del(&key).ignore();
            let mut fields: Vec<(&str, String)> = vec![(EVENT_TIME_FIELD, event_time.to_string())];
            for (name, value) in feature_names.iter().zip(&values) {
                if !value.is_nan() {
                    fields.push((name, value.to_string()));
                }
            }
            pipe.hset_multiple(&key, &fields).ignore();
            in_pipe += 1;
            written += 1;
            if in_pipe == WRITE_CHUNK {
                pipe.query::<()>(&mut conn)?;
                pipe = redis::pipe();
                in_pipe = 0;
            }
        }
        if in_pipe > 0 {
            pipe.query::<()>(&mut conn)?;
        }
        self.mark_simulated(group, simulated)?;
        Ok(written)
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape("customer"), "customer");
    }
}
