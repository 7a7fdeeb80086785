//! `modelwatch features load`: the real binary writes a CSV group into the store that
//! `serve --data-dir` reads, and refuses a bad one with a hint.

use modelwatch_server::store::{FeatureStore as _, SqliteStore};
use modelwatch_testkit::store::STORE_FILE;
use std::process::Command;

fn modelwatch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(args)
        .output()
        .expect("modelwatch runs")
}

#[tokio::test]
async fn a_csv_group_is_loaded_and_a_bad_group_gets_a_hint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let card =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fraud.card.json");
    let card = card.to_str().expect("utf-8 path");
    let data = dir.path().to_str().expect("utf-8 path");
    let csv = dir.path().join("customers.csv");
    std::fs::write(
        &csv,
        "customer_id,event_time,customer_nb_tx_1d,customer_avg_amount_1d,customer_nb_tx_7d,customer_avg_amount_7d,customer_nb_tx_30d,customer_avg_amount_30d\n\
         C777777,2026-12-01T00:00:00Z,2,35.5,9,40,31,42.25\n",
    )
    .expect("csv");
    let csv = csv.to_str().expect("utf-8 path");

    let out = modelwatch(&[
        "features",
        "load",
        "--model",
        card,
        "--group",
        "customer",
        "--data-dir",
        data,
        csv,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = SqliteStore::open(&dir.path().join(STORE_FILE)).expect("store");
    let values = store
        .get("customer", "C777777")
        .await
        .expect("read")
        .expect("the loaded customer");
    assert_eq!(*values.values, [2.0, 35.5, 9.0, 40.0, 31.0, 42.25]);
    assert_eq!(values.event_time, 1_796_083_200);

    let out = modelwatch(&[
        "features",
        "load",
        "--model",
        card,
        "--group",
        "merchant",
        "--data-dir",
        data,
        csv,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "no store group \"merchant\"\nhint: its store groups are: customer, terminal"
        ),
        "{stderr}"
    );
}
