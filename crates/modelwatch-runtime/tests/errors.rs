//! Each failure names what the user must fix: the path, the field, the operator and
//! node, the widths.

use modelwatch_runtime::{
    LoadOptions, ModelCard, RuntimeError, load_card_and_model, load_model, load_model_with,
};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures")
}

/// A valid card for `extra_sklearn_gbr.onnx` (6 features, one `variable` column), as
/// JSON, so tests can break one field at a time.
fn card_json() -> serde_json::Value {
    serde_json::json!({
        "format_version": 1, "name": "gbr", "version": "0.1.0",
        "framework": "scikit-learn 1.9.1", "training_date": "2026-11-24",
        "architecture": "GradientBoostingRegressor(40 trees)",
        "onnx_file": "extra_sklearn_gbr.onnx", "input_name": "features",
        "features": (0..6).map(|i| serde_json::json!({"name": format!("f{i}"), "group": "g"}))
            .collect::<Vec<_>>(),
        "positive_class_output": "variable", "positive_class_index": 0,
        "threshold": 0.5, "threshold_rule": "fixed",
        "metrics": {"auc": 0.9, "precision": 0.8, "recall": 0.7, "holdout_rows": 300,
                    "fraud_rate": 0.1},
        "training": {}
    })
}

fn card_error(card: &serde_json::Value) -> String {
    ModelCard::from_json_str(&card.to_string())
        .expect_err("card must be rejected")
        .to_string()
}

#[test]
fn wrong_input_width_names_both_widths() {
    let model = load_model(&fixtures().join("extra_sklearn_gbr.onnx")).expect("loads");
    assert_eq!(model.n_features(), 6);
    let mut out = [0f32; 2];
    let err = model.predict(&[0.0; 10], &mut out).expect_err("5 is not 6");
    assert!(matches!(
        err,
        RuntimeError::InputWidth {
            expected: 6,
            given: 5
        }
    ));
    assert_eq!(
        err.to_string(),
        "wrong input width: the model expects 6 features per row, got 5"
    );
    let err = model.predict_one(&[0.0; 7]).expect_err("7 is not 6");
    assert_eq!(
        err.to_string(),
        "wrong input width: the model expects 6 features per row, got 7"
    );
}

#[test]
fn unsupported_ops_name_op_and_node() {
    let err = load_model(&fixtures().join("error_zipmap.onnx")).expect_err("ZipMap");
    assert!(
        err.to_string().starts_with(
            "unsupported operator `ZipMap` (domain `ai.onnx.ml`) in node `zipmap`: ZipMap outputs maps"
        ),
        "{err}"
    );
    let err = load_model(&fixtures().join("error_scaler_trees.onnx")).expect_err("Scaler");
    assert_eq!(
        err.to_string(),
        "unsupported operator `Scaler` (domain `ai.onnx.ml`) in node `scaler`: only Identity or Cast to float may sit between the input and a tree ensemble"
    );
}

#[test]
fn missing_files_name_the_path() {
    let path = fixtures().join("no_such_model.onnx");
    let err = load_model(&path).expect_err("no file");
    assert!(matches!(err, RuntimeError::FileNotFound { .. }));
    assert_eq!(
        err.to_string(),
        format!("file not found: {}", path.display())
    );

    let card_path = fixtures().join("no_such.card.json");
    let err = load_card_and_model(&card_path).expect_err("no card");
    assert_eq!(
        err.to_string(),
        format!("file not found: {}", card_path.display())
    );

    // A card whose ONNX file is missing names the ONNX path.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut card = card_json();
    card["onnx_file"] = "gone.onnx".into();
    let card_path = dir.path().join("gbr.card.json");
    std::fs::write(&card_path, card.to_string()).expect("writes");
    let err = load_card_and_model(&card_path).expect_err("no onnx");
    assert_eq!(
        err.to_string(),
        format!("file not found: {}", dir.path().join("gone.onnx").display())
    );
}

#[test]
fn bad_card_fields_are_named() {
    let mut card = card_json();
    card["format_version"] = 3.into();
    assert_eq!(
        card_error(&card),
        "model card field `format_version`: version 3 is not supported (this runtime reads versions 1 and 2)"
    );
    // A format 2 card is not a format 1 card with a new number: serde names what is
    // missing.
    let mut card = card_json();
    card["format_version"] = 2.into();
    assert!(card_error(&card).contains("missing field `task`"));

    let mut card = card_json();
    card["threshold"] = 1.5.into();
    assert_eq!(
        card_error(&card),
        "model card field `threshold`: 1.5 is outside [0, 1]"
    );

    let mut card = card_json();
    card["features"][3]["name"] = "f1".into();
    assert_eq!(
        card_error(&card),
        "model card field `features[3].name`: duplicate feature name `f1`"
    );

    let mut card = card_json();
    card["features"] = serde_json::json!([]);
    assert_eq!(
        card_error(&card),
        "model card field `features`: must list at least one feature"
    );

    let mut card = card_json();
    card["training_date"] = "24/11/2026".into();
    assert_eq!(
        card_error(&card),
        "model card field `training_date`: `24/11/2026` is not a YYYY-MM-DD date"
    );

    let mut card = card_json();
    card["onnx_file"] = "../../etc/model.onnx".into();
    assert!(card_error(&card).starts_with("model card field `onnx_file`"));

    // A missing or mistyped field: serde names it.
    let mut card = card_json();
    card.as_object_mut().expect("object").remove("input_name");
    assert!(
        card_error(&card).contains("missing field `input_name`"),
        "{}",
        card_error(&card)
    );
    let mut card = card_json();
    card["metrics"]["auc"] = "high".into();
    assert!(
        card_error(&card).contains("invalid type: string \"high\""),
        "{}",
        card_error(&card)
    );
}

#[test]
fn card_and_graph_must_agree() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        fixtures().join("extra_sklearn_gbr.onnx"),
        dir.path().join("extra_sklearn_gbr.onnx"),
    )
    .expect("copies");
    let write = |card: &serde_json::Value| {
        let p = dir.path().join("gbr.card.json");
        std::fs::write(&p, card.to_string()).expect("writes");
        p
    };

    let (card, model) = load_card_and_model(&write(&card_json())).expect("valid card loads");
    assert_eq!(card.name, "gbr");
    assert_eq!(model.n_features(), 6);

    let mut card = card_json();
    card["features"].as_array_mut().expect("array").pop();
    let err = load_card_and_model(&write(&card)).expect_err("5 features");
    assert_eq!(
        err.to_string(),
        "model card lists 5 features but the model takes 6 input columns"
    );

    let mut card = card_json();
    card["positive_class_output"] = "probabilities".into();
    let err = load_card_and_model(&write(&card)).expect_err("no such output");
    assert_eq!(
        err.to_string(),
        "model has no output named `probabilities`; it has: variable"
    );

    let mut card = card_json();
    card["input_name"] = "x".into();
    let err = load_card_and_model(&write(&card)).expect_err("no such input");
    assert_eq!(
        err.to_string(),
        "model has no input named `x`; it has: features"
    );

    let err = load_model_with(
        &dir.path().join("extra_sklearn_gbr.onnx"),
        &LoadOptions {
            class_index: Some(1),
            ..LoadOptions::default()
        },
    )
    .expect_err("one column");
    assert_eq!(
        err.to_string(),
        "positive class index 1 is out of range: output `variable` has 1 column(s)"
    );
}

#[test]
fn garbage_is_not_an_onnx_model() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("garbage.onnx");
    std::fs::write(&path, b"\xff\xff\xff not a protobuf").expect("writes");
    let err = load_model(&path).expect_err("garbage");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot decode ONNX model {}", path.display())),
        "{err}"
    );
}
