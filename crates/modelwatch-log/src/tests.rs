use super::*;

fn prediction(id: &str, score: f64, decision: Decision, unix_time: f64) -> PredictionRecord {
    PredictionRecord {
        prediction_id: id.into(),
        model: "fraud".into(),
        version: "3".into(),
        score,
        decision,
        unix_time,
        features: None,
    }
}

fn label(id: &str, positive: bool, unix_time: f64) -> LabelRecord {
    LabelRecord {
        prediction_id: id.into(),
        truth: Truth::Class(positive),
        unix_time,
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn a_label_joins_its_prediction_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = PredictionLog::open(LogConfig::new(dir.path().join("log.redb"))).unwrap();
    let t = now();
    let mut p = prediction("a", 0.9, Decision::AtOrAbove, t - 60.0);
    p.features = Some(vec![1.5, f32::NAN, -2.0]);
    assert!(log.record(p));
    assert!(log.record(prediction("b", 0.1, Decision::Below, t - 30.0)));
    let outcomes = log
        .label_blocking(vec![
            label("a", true, t),
            label("a", false, t),
            label("zzz", true, t),
        ])
        .unwrap();
    let LabelOutcome::Matched(joined) = &outcomes[0] else {
        panic!("{outcomes:?}");
    };
    assert_eq!(joined.prediction.decision, Decision::AtOrAbove);
    assert!((joined.delay_seconds - 60.0).abs() < 0.01);
    let row = joined.prediction.features.as_ref().unwrap();
    assert_eq!((row[0], row[2]), (1.5, -2.0));
    assert!(row[1].is_nan());
    assert!(matches!(outcomes[1], LabelOutcome::Duplicate(_)));
    assert_eq!(outcomes[2], LabelOutcome::Unmatched);
    // The first label stands.
    assert_eq!(log.label("a").unwrap().unwrap().truth, Truth::Class(true));
    assert_eq!(log.label("b").unwrap(), None);
    let (predictions, labels, bytes) = log.stats().unwrap();
    assert_eq!((predictions, labels), (2, 2));
    assert!(bytes > 0);
}

#[test]
fn a_label_past_late_after_is_late() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::new(dir.path().join("log.redb"));
    config.late_after = Duration::from_secs(3600);
    let log = PredictionLog::open(config).unwrap();
    let t = now();
    log.record(prediction("old", 0.5, Decision::AtOrAbove, t - 7200.0));
    let outcomes = log.label_blocking(vec![label("old", false, t)]).unwrap();
    assert!(matches!(outcomes[0], LabelOutcome::Late(_)), "{outcomes:?}");
    assert_eq!(
        log.label("old").unwrap().unwrap().outcome,
        OutcomeKind::Late
    );
}

#[test]
fn labels_and_flushed_predictions_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    {
        let log = PredictionLog::open(LogConfig::new(&path)).unwrap();
        log.record(prediction("a", 0.9, Decision::AtOrAbove, now()));
        log.label_blocking(vec![label("a", true, now())]).unwrap();
        log.record(prediction("b", 0.2, Decision::Below, now()));
        log.close();
        // Closed: records drop, labels are refused.
        assert!(!log.record(prediction("c", 0.2, Decision::Below, now())));
    }
    let log = PredictionLog::open(LogConfig::new(&path)).unwrap();
    assert!(log.prediction("b").unwrap().is_some());
    let outcomes = log.label_blocking(vec![label("a", true, now())]).unwrap();
    assert!(matches!(outcomes[0], LabelOutcome::Duplicate(_)));
    assert_eq!(log.labels().unwrap().len(), 1);
}

#[test]
fn retention_deletes_old_predictions_and_bounds_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::new(dir.path().join("log.redb"));
    config.retention = Duration::from_secs(3600);
    config.max_bytes = 20_000;
    let log = PredictionLog::open(config.clone()).unwrap();
    let t = now();
    log.record(prediction("expired", 0.5, Decision::Below, t - 7200.0));
    for i in 0..1000 {
        log.record(prediction(
            &format!("p{i:04}"),
            0.5,
            Decision::Below,
            t - 1000.0 + i as f64,
        ));
    }
    log.label_blocking(vec![label("expired", true, t)]).unwrap();
    let (_, _, bytes) = log.stats().unwrap();
    assert!(bytes > 20_000, "{bytes}");
    drop(log);
    sweep_file(&config);
    let log = PredictionLog::open(config).unwrap();
    let (_, _, after) = log.stats().unwrap();
    assert!(after <= 20_000, "{after}");
    assert_eq!(log.prediction("expired").unwrap(), None);
    assert_eq!(log.label("expired").unwrap(), None);
    // The newest are kept, the oldest went.
    assert!(log.prediction("p0999").unwrap().is_some());
    assert_eq!(log.prediction("p0000").unwrap(), None);
}

#[test]
fn a_full_queue_drops_predictions_and_refuses_labels_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::new(dir.path().join("log.redb"));
    config.queue_capacity = 1;
    let log = PredictionLog::open(config).unwrap();
    // Hold the writer inside a callback so the queue cannot drain.
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
    log.submit_labels(
        vec![],
        Box::new(move |_| {
            entered_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        }),
    )
    .unwrap();
    entered_rx.recv().unwrap();
    assert!(log.record(prediction("x", 0.1, Decision::Below, now())));
    assert!(!log.record(prediction("y", 0.1, Decision::Below, now())));
    assert_eq!(log.dropped(), 1);
    let refused = log.submit_labels(vec![label("x", true, now())], Box::new(|_| {}));
    assert!(matches!(refused, Err(LogError::Full)));
    release_tx.send(()).unwrap();
    // Once the writer drains its queue, the label goes in (bounded retries).
    let mut outcomes = None;
    for _ in 0..1000 {
        match log.label_blocking(vec![label("x", true, now())]) {
            Ok(o) => {
                outcomes = Some(o);
                break;
            }
            Err(LogError::Full) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(matches!(outcomes.unwrap()[0], LabelOutcome::Matched(_)));
}

#[test]
fn predictions_linger_for_one_commit_and_a_label_ends_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::new(dir.path().join("log.redb"));
    // Long enough that only a label (or a close) can end the wait in this test.
    config.linger = Duration::from_secs(3600);
    let log = PredictionLog::open(config).unwrap();
    let t = now();
    assert!(log.record(prediction("a", 0.9, Decision::AtOrAbove, t)));
    assert!(log.record(prediction("b", 0.1, Decision::Below, t)));
    // The writer has taken them and waits for more: nothing is committed yet.
    std::thread::sleep(Duration::from_millis(50));
    assert!(log.prediction("a").unwrap().is_none());
    assert_eq!(log.stats().unwrap().0, 0);
    // A label commits the batch it joins, its own prediction included. (Bounded:
    // a writer that waited out the linger would fail here, not hang the suite.)
    let (tx, rx) = std::sync::mpsc::channel();
    log.submit_labels(
        vec![label("a", true, t)],
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    )
    .unwrap();
    let Ok(outcomes) = rx.recv_timeout(Duration::from_secs(60)) else {
        // Dropping the log would close it, which waits for the same writer.
        std::mem::forget(log);
        panic!("the label did not end the linger");
    };
    let outcomes = outcomes.unwrap();
    assert!(
        matches!(outcomes[0], LabelOutcome::Matched(_)),
        "{outcomes:?}"
    );
    assert_eq!(log.stats().unwrap().0, 2);
    assert!(log.prediction("b").unwrap().is_some());
}

#[test]
fn close_ends_the_linger_and_keeps_what_waited() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    let mut config = LogConfig::new(&path);
    config.linger = Duration::from_secs(3600);
    let log = PredictionLog::open(config).unwrap();
    assert!(log.record(prediction("a", 0.5, Decision::Below, now())));
    std::thread::sleep(Duration::from_millis(50));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        log.close();
        drop(log);
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("close ended the linger");
    let reopened = PredictionLog::open(LogConfig::new(&path)).unwrap();
    assert!(reopened.prediction("a").unwrap().is_some());
}

#[test]
fn a_full_batch_commits_without_waiting_out_the_linger() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::new(dir.path().join("log.redb"));
    // The writer is parked while it lingers; only every WAKE_EVERYth prediction wakes
    // it, and a full batch (MAX_BATCH) commits at once.
    config.linger = Duration::from_secs(3600);
    let log = PredictionLog::open(config).unwrap();
    let t = now();
    for i in 0..MAX_BATCH {
        assert!(log.record(prediction(&format!("p{i}"), 0.5, Decision::Below, t)));
    }
    let last = format!("p{}", MAX_BATCH - 1);
    // Bounded: a writer that slept through the linger fails here instead of hanging.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while log.prediction(&last).unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "a full batch waited for the linger"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(log.stats().unwrap().0, MAX_BATCH as u64);
    assert_eq!(log.dropped(), 0);
}

/// Runs one sweep on a closed log's file, as the writer does every few seconds.
fn sweep_file(config: &LogConfig) {
    let db = Database::create(&config.path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut predictions = txn.open_table(PREDICTIONS).unwrap();
        let mut labels = txn.open_table(LABELS).unwrap();
        let mut retention_table = txn.open_table(RETENTION).unwrap();
        let mut meta = txn.open_table(META).unwrap();
        let bytes = meta.get(STORED_BYTES).unwrap().map_or(0, |v| v.value());
        let after = sweep(
            &mut predictions,
            &mut labels,
            &mut retention_table,
            bytes,
            config,
        )
        .unwrap();
        meta.insert(STORED_BYTES, after).unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn a_replaced_prediction_and_a_late_matched_label_age_by_their_newest_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::new(dir.path().join("log.redb"));
    config.retention = Duration::from_secs(3600);
    let log = PredictionLog::open(config.clone()).unwrap();
    let t = now();
    log.record(prediction("old", 0.5, Decision::Below, t - 7200.0));
    log.record(prediction("retried", 0.5, Decision::Below, t - 7200.0));
    // Labels commit at once: each step below is a commit (a retention row) of its own.
    let outcomes = log
        .label_blocking(vec![
            label("orphan", true, t - 7200.0),
            label("early", true, t - 7200.0),
        ])
        .unwrap();
    assert_eq!(
        outcomes,
        vec![LabelOutcome::Unmatched, LabelOutcome::Unmatched]
    );
    // A collector's retry of "retried" with a new time, and the prediction that
    // "early"'s label was waiting for.
    log.record(prediction("retried", 0.6, Decision::Below, t));
    log.record(prediction("early", 0.5, Decision::Below, t));
    log.label_blocking(vec![label("fresh", true, t)]).unwrap();
    drop(log);
    sweep_file(&config);
    let log = PredictionLog::open(config).unwrap();
    assert_eq!(log.prediction("old").unwrap(), None);
    assert_eq!(log.label("orphan").unwrap(), None);
    // Kept: the expired entries no longer describe what is stored.
    assert_eq!(log.prediction("retried").unwrap().unwrap().score, 0.6);
    assert!(log.prediction("early").unwrap().is_some());
    assert!(log.label("early").unwrap().is_some());
    assert!(log.label("fresh").unwrap().is_some());
    let (predictions, labels, _) = log.stats().unwrap();
    assert_eq!((predictions, labels), (2, 2));
}

#[test]
fn a_log_with_the_per_prediction_time_index_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::new(dir.path().join("log.redb"));
    config.retention = Duration::from_secs(3600);
    let t = now();
    // A file as the log wrote it before the retention rows: one (time, id) row per
    // prediction and per unmatched label.
    {
        let db = Database::create(&config.path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut predictions = txn.open_table(PREDICTIONS).unwrap();
            let mut labels = txn.open_table(LABELS).unwrap();
            let mut by_time = txn.open_table(LEGACY_BY_TIME).unwrap();
            let mut meta = txn.open_table(META).unwrap();
            let mut bytes = 0;
            for (id, time) in [("expired", t - 7200.0), ("kept", t - 60.0)] {
                let mut buf = Vec::new();
                codec::encode_prediction(&prediction(id, 0.5, Decision::Below, time), &mut buf);
                predictions.insert(id, buf.as_slice()).unwrap();
                by_time.insert((to_millis(time), id), ()).unwrap();
                bytes += bytes_of(id, &buf);
            }
            let mut buf = Vec::new();
            codec::encode_label(
                &StoredLabel {
                    truth: Truth::Class(true),
                    unix_time: t - 7000.0,
                    outcome: OutcomeKind::Unmatched,
                },
                &mut buf,
            );
            labels.insert("orphan", buf.as_slice()).unwrap();
            by_time
                .insert((to_millis(t - 7000.0), "orphan"), ())
                .unwrap();
            meta.insert(STORED_BYTES, bytes + bytes_of("orphan", &buf))
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let log = PredictionLog::open(config.clone()).unwrap();
    // Nothing is lost by the move itself.
    assert!(log.prediction("expired").unwrap().is_some());
    assert!(log.label("orphan").unwrap().is_some());
    drop(log);
    {
        use redb::TableHandle as _;
        let db = Database::create(&config.path).unwrap();
        let txn = db.begin_read().unwrap();
        let tables: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        assert!(!tables.contains(&"by_time".to_string()), "{tables:?}");
    }
    sweep_file(&config);
    let log = PredictionLog::open(config).unwrap();
    assert_eq!(log.prediction("expired").unwrap(), None);
    assert_eq!(log.label("orphan").unwrap(), None);
    assert!(log.prediction("kept").unwrap().is_some());
}
