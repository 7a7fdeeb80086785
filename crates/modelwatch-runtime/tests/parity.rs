//! Parity with ONNX Runtime: each fixture holds rows and the positive-class
//! probabilities onnxruntime computed for them (written by `training/`).

use modelwatch_runtime::{Backend, LoadOptions, load_model_with};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Largest difference to onnxruntime we accept.
const TOLERANCE: f32 = 1e-6;

#[derive(Debug, Deserialize)]
struct Parity {
    model: String,
    input_name: String,
    feature_names: Vec<String>,
    /// `null` stands for a missing value (NaN).
    rows: Vec<Vec<Option<f32>>>,
    probabilities: Vec<f32>,
}

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// Loads the fixture's model, scores its rows in one batch and one by one, and returns
/// the largest absolute difference to onnxruntime and the backend used.
fn max_abs_diff(parity_path: &Path) -> (f32, Backend) {
    let text = std::fs::read_to_string(parity_path).expect("parity fixture is readable");
    let parity: Parity = serde_json::from_str(&text).expect("parity fixture parses");
    let dir = parity_path.parent().expect("fixture has a directory");
    let options = LoadOptions {
        input_name: Some(parity.input_name.clone()),
        n_features: Some(parity.feature_names.len()),
        ..LoadOptions::default()
    };
    let model = load_model_with(&dir.join(&parity.model), &options).expect("model loads");
    assert_eq!(model.n_features(), parity.feature_names.len());
    assert_eq!(parity.rows.len(), parity.probabilities.len());
    let flat: Vec<f32> = parity
        .rows
        .iter()
        .flat_map(|r| r.iter().map(|v| v.unwrap_or(f32::NAN)))
        .collect();
    let mut batch = vec![0f32; parity.rows.len()];
    model.predict(&flat, &mut batch).expect("batch predicts");
    let mut worst = 0f32;
    for (i, (row, expected)) in flat
        .chunks_exact(model.n_features())
        .zip(&parity.probabilities)
        .enumerate()
    {
        let one = model.predict_one(row).expect("row predicts");
        assert_eq!(
            one.to_bits(),
            batch[i].to_bits(),
            "row {i}: batch and single differ"
        );
        let diff = (batch[i] - expected).abs();
        assert!(
            diff <= TOLERANCE,
            "{}: row {i}: ours {} vs onnxruntime {expected} (diff {diff})",
            parity_path.display(),
            batch[i]
        );
        worst = worst.max(diff);
    }
    println!(
        "{}: {} rows, max abs diff {worst:e}, backend {:?}",
        parity_path.display(),
        parity.rows.len(),
        model.backend()
    );
    (worst, model.backend())
}

#[test]
fn bundled_gbdt_matches_onnxruntime() {
    let (_, backend) = max_abs_diff(&models_dir().join("fraud.parity.json"));
    assert!(matches!(backend, Backend::TreeEnsemble(_)));
}

#[test]
fn random_forest_matches_onnxruntime() {
    let (_, backend) = max_abs_diff(&models_dir().join("fixtures/rf.parity.json"));
    assert!(matches!(backend, Backend::TreeEnsemble(_)));
}

#[test]
fn mlp_matches_onnxruntime() {
    let (_, backend) = max_abs_diff(&models_dir().join("fixtures/mlp.parity.json"));
    assert_eq!(backend, Backend::Tract);
}

/// Every `*.parity.json` in `MODELWATCH_PARITY_DIR` (for checking new exports by hand):
/// `MODELWATCH_PARITY_DIR=/some/dir cargo test -p modelwatch-runtime --test parity -- --ignored --nocapture`
#[test]
#[ignore = "needs MODELWATCH_PARITY_DIR"]
fn every_fixture_in_a_directory() {
    let dir = std::env::var_os("MODELWATCH_PARITY_DIR").expect("MODELWATCH_PARITY_DIR is set");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("directory is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".parity.json"))
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no *.parity.json in {}",
        Path::new(&dir).display()
    );
    for p in paths {
        max_abs_diff(&p);
    }
}
