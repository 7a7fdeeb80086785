//! An unknown-id flood must not sink the server (issue 11): the SQLite store's
//! known-id filter answers made-up ids without a read; a store without one reads an
//! unknown entity once and then serves it from the negative cache; concurrent lookups
//! go through the reader pool; and a store that never answers never holds a request
//! past its deadline.

use crate::support::{CUSTOMER, Options, TERMINAL, TestApp, transaction};
use axum::http::StatusCode;
use modelwatch_server::store::{BoxFuture, FeatureStore, GroupValues, SqliteStore, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The real store, counting the lookups that reach it, per (group, entity).
#[derive(Debug)]
struct CountingStore {
    inner: SqliteStore,
    reads: Mutex<HashMap<(String, String), u64>>,
    /// Whether the store's known-id filter is consulted (else every id may be held,
    /// as for a store without one).
    filtered: bool,
}

impl CountingStore {
    fn reads(&self, group: &str, entity: &str) -> u64 {
        let reads = self.reads.lock().expect("lock");
        reads
            .get(&(group.to_string(), entity.to_string()))
            .copied()
            .unwrap_or(0)
    }

    fn total(&self) -> u64 {
        self.reads.lock().expect("lock").values().sum()
    }
}

impl FeatureStore for CountingStore {
    fn get<'a>(
        &'a self,
        group: &'a str,
        entity: &'a str,
    ) -> BoxFuture<'a, Result<Option<GroupValues>, StoreError>> {
        *self
            .reads
            .lock()
            .expect("lock")
            .entry((group.to_string(), entity.to_string()))
            .or_default() += 1;
        self.inner.get(group, entity)
    }

    fn may_hold(&self, group: &str, entity: &str) -> bool {
        !self.filtered || self.inner.may_hold(group, entity)
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

/// A store whose lookups never answer (a hung connection, a lost packet).
#[derive(Debug)]
struct HangingStore;

impl FeatureStore for HangingStore {
    fn get<'a>(
        &'a self,
        _group: &'a str,
        _entity: &'a str,
    ) -> BoxFuture<'a, Result<Option<GroupValues>, StoreError>> {
        Box::pin(std::future::pending())
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn touch_group<'a>(
        &'a self,
        _group: &'a str,
        _event_time: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async { Ok(0) })
    }
}

/// `n` concurrent `/v1/predict` requests, request `i` for the (customer, terminal)
/// `ids(i)`, amount 20; their answers in completion order.
async fn concurrent_predictions(
    app: &Arc<TestApp>,
    n: u32,
    ids: fn(u32) -> (String, String),
) -> Vec<(StatusCode, serde_json::Value)> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let app = app.clone();
        tasks.spawn(async move {
            let (customer, terminal) = ids(i);
            app.call(
                "POST",
                "/v1/predict",
                transaction(&customer, &terminal, 20.0),
            )
            .await
        });
    }
    let mut answers = Vec::with_capacity(n as usize);
    while let Some(joined) = tasks.join_next().await {
        answers.push(joined.expect("request task"));
    }
    answers
}

/// The test app over a counting store without the known-id filter (the negative
/// cache's path).
async fn counting_app() -> (TestApp, Arc<CountingStore>) {
    counting_app_with(false).await
}

async fn counting_app_with(filtered: bool) -> (TestApp, Arc<CountingStore>) {
    let slot = Arc::new(Mutex::new(None));
    let keep = slot.clone();
    let app = TestApp::with_store(Options::default(), move |inner| {
        let store = Arc::new(CountingStore {
            inner,
            reads: Mutex::default(),
            filtered,
        });
        *keep.lock().expect("lock") = Some(store.clone());
        store
    })
    .await;
    let store = slot.lock().expect("lock").take().expect("wrapped");
    (app, store)
}

fn cache_ops(app: &TestApp, operation: &str) -> f64 {
    app.value(
        "model_feature_cache_operations_total",
        &[("model", &app.model().card.name), ("operation", operation)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_made_up_ids_is_answered_without_store_reads() {
    let (app, store) = counting_app_with(true).await;
    let app = Arc::new(app);
    // The zero-history answer for this amount, read once through the store.
    let (_, expected) = app
        .call(
            "POST",
            "/v1/predict",
            transaction("C900000", "T90000", 20.0),
        )
        .await;
    let first_reads = store.total();
    let flood = 1_000u32;
    // The store's format, never seen before: C000000.. and T00000.. are stored.
    let answers = concurrent_predictions(&app, flood, |i| {
        (
            format!("C{:06}", 500_000 + i),
            format!("T{:05}", 60_000 + i),
        )
    })
    .await;
    for (status, body) in answers {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["score"], expected["score"], "{body}");
    }
    // 2,000 made-up ids; about 0.8% pass a Bloom filter and are read.
    let reads = store.total() - first_reads;
    assert!(
        reads < 60,
        "{reads} store reads for {} made-up ids",
        2 * flood
    );
    assert_eq!(cache_ops(&app, "miss") - first_reads as f64, reads as f64);
    // Stored ids still reach the store.
    let (status, body) = app
        .call("POST", "/v1/predict", transaction(CUSTOMER, TERMINAL, 20.0))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(store.reads("customer", CUSTOMER), 1);
    assert_eq!(store.reads("terminal", TERMINAL), 1);
}

#[tokio::test]
async fn an_unknown_id_is_read_from_the_store_once_then_from_the_negative_cache() {
    let (app, store) = counting_app().await;
    for amount in [10.0, 11.0, 12.0, 13.0, 14.0] {
        let (status, body) = app
            .call(
                "POST",
                "/v1/predict",
                transaction("C999999", TERMINAL, amount),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["score"].as_f64().is_some(), "{body}");
    }
    // Before the fix every request went to the store: 5 reads.
    assert_eq!(store.reads("customer", "C999999"), 1);
    assert_eq!(store.reads("terminal", TERMINAL), 1);
    // Two groups a request: the first request misses both, the four after it hit
    // both, the unknown customer included (a negative hit).
    assert_eq!(cache_ops(&app, "miss"), 2.0);
    assert_eq!(cache_ops(&app, "hit"), 8.0);
    // The unknown customer was served its defaults, not an error.
    let store_errors = app.scrape();
    assert!(
        !store_errors
            .lines()
            .any(|l| l.starts_with("model_feature_store_errors_total{") && !l.ends_with(" 0")),
        "no store error expected:\n{store_errors}"
    );
}

#[tokio::test]
async fn the_negative_cache_answers_like_the_store_did() {
    // A negative entry must not turn into a known entity's values (or the reverse):
    // the score of an unknown customer is the same from the store and from the cache.
    let (app, store) = counting_app().await;
    let body = transaction("C424242", TERMINAL, 50.0);
    let (_, first) = app.call("POST", "/v1/predict", body.clone()).await;
    let (_, second) = app.call("POST", "/v1/predict", body).await;
    assert_eq!(first["score"], second["score"]);
    let (_, known) = app
        .call("POST", "/v1/predict", transaction(CUSTOMER, TERMINAL, 50.0))
        .await;
    assert_ne!(
        first["score"], known["score"],
        "a known customer's values differ from an unknown one's zeros"
    );
    assert_eq!(store.reads("customer", "C424242"), 1);
    assert_eq!(store.reads("customer", CUSTOMER), 1);
}

#[tokio::test]
async fn concurrent_lookups_of_many_unknown_ids_through_the_pool_all_answer_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_with_readers(&dir.path().join("f.sqlite"), 4).unwrap());
    assert_eq!(store.readers(), 4);
    let known: Vec<(String, [f32; 2])> = (0..200)
        .map(|i| (format!("C{i:06}"), [i as f32, i as f32 * 0.5]))
        .collect();
    store
        .upsert_group(
            "customer",
            &["a", "b"],
            known.iter().map(|(id, v)| (id.clone(), &v[..], 1_001)),
        )
        .unwrap();
    // 2,000 lookups in flight at once (a bounded flood): every tenth a known id,
    // the rest unknown ids in the store's format.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..2_000u32 {
        let store = store.clone();
        tasks.spawn(async move {
            let entity = if i % 10 == 0 {
                format!("C{:06}", i / 10)
            } else {
                format!("C{:06}", 500_000 + i)
            };
            let got = store.get("customer", &entity).await;
            (i, entity, got)
        });
    }
    let (mut hits, mut unknown) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        let (i, entity, got) = joined.expect("lookup task");
        match got.unwrap_or_else(|e| panic!("{entity}: {e}")) {
            Some(values) => {
                assert_eq!(i % 10, 0, "{entity} is not in the store");
                let n = (i / 10) as f32;
                assert_eq!(&*values.values, &[n, n * 0.5], "{entity}");
                hits += 1;
            }
            None => {
                assert_ne!(i % 10, 0, "{entity} is in the store");
                unknown += 1;
            }
        }
    }
    assert_eq!((hits, unknown), (200, 1_800));
}

#[tokio::test]
async fn concurrent_requests_with_unknown_ids_all_get_answers() {
    let (app, store) = counting_app().await;
    let app = Arc::new(app);
    let answers = concurrent_predictions(&app, 300, |i| {
        (
            format!("C{:06}", 100_000 + i % 100),
            format!("T{:05}", 50_000 + i),
        )
    })
    .await;
    for (status, body) in answers {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // 300 distinct terminals and 100 distinct customers: concurrent first lookups of
    // one customer may each reach the store, but never more than the requests.
    assert!(
        store.total() >= 400 && store.total() <= 600,
        "{}",
        store.total()
    );
    assert_eq!(cache_ops(&app, "hit") + cache_ops(&app, "miss"), 600.0);
    assert_eq!(
        app.requests("success", "approved") + app.requests("success", "declined"),
        300.0
    );
}

#[tokio::test]
async fn a_hanging_store_is_cut_at_the_store_deadline_and_counted() {
    let options = Options {
        store_timeout: Duration::from_millis(50),
        ..Options::default()
    };
    let app = TestApp::with_store(options, |_| Arc::new(HangingStore)).await;
    // Bounded: without the deadline this request would wait forever.
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(60),
        app.call("POST", "/v1/predict", transaction(CUSTOMER, TERMINAL, 10.0)),
    )
    .await
    .expect("the request was answered");
    assert_eq!(status, StatusCode::OK, "{body}");
    let model = &app.model().card.name;
    // Both groups were asked at once and both timed out.
    assert_eq!(
        app.value(
            "model_feature_store_errors_total",
            &[("model", model), ("kind", "timeout")]
        ),
        2.0
    );
    // A failure is not cached: the next request asks the store again.
    let _ = tokio::time::timeout(
        Duration::from_secs(60),
        app.call("POST", "/v1/predict", transaction(CUSTOMER, TERMINAL, 10.0)),
    )
    .await
    .expect("the request was answered");
    assert_eq!(cache_ops(&app, "miss"), 4.0);
}

#[tokio::test]
async fn a_hanging_store_never_holds_a_request_past_the_request_deadline() {
    let options = Options {
        store_timeout: Duration::from_secs(3600),
        request_timeout: Duration::from_millis(100),
        ..Options::default()
    };
    let app = TestApp::with_store(options, |_| Arc::new(HangingStore)).await;
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(60),
        app.call(
            "POST",
            "/v1/predict",
            transaction("C999999", TERMINAL, 10.0),
        ),
    )
    .await
    .expect("the request was answered");
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"]["type"], "timeout", "{body}");
    assert_eq!(app.requests("timeout", "none"), 1.0);
}
