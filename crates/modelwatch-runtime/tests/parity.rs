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
    /// The probability output; by default the loader's choice.
    #[serde(default)]
    output: Option<String>,
    /// The column of that output; by default the loader's choice.
    #[serde(default)]
    positive_class_index: Option<usize>,
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
        output: parity.output.clone(),
        class_index: parity.positive_class_index,
    };
    let model = load_model_with(&dir.join(&parity.model), &options)
        .unwrap_or_else(|e| panic!("{}: {e}", parity_path.display()));
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

/// The second bundled model (training/train_spend.py): a scikit-learn
/// GradientBoostingRegressor, output `variable`, column 0.
#[test]
fn spend_regressor_matches_onnxruntime() {
    let (_, backend) = max_abs_diff(&models_dir().join("fixtures/spend.parity.json"));
    assert!(matches!(backend, Backend::TreeEnsemble(_)));
}

#[test]
fn mlp_matches_onnxruntime() {
    let (_, backend) = max_abs_diff(&models_dir().join("fixtures/mlp.parity.json"));
    assert_eq!(backend, Backend::Tract);
}

/// Parity fixtures in `dir` whose file name starts with `prefix`.
fn fixtures(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".parity.json"))
        })
        .collect();
    paths.sort();
    paths
}

/// The corner cases from `training/fixtures_extra.py`: every node mode, NaN routing,
/// base_values of length 2, class-1-only weights, SOFTMAX_ZERO, regressors with AVERAGE,
/// PROBIT and graph Sigmoid/Mul nodes, and a scikit-learn GradientBoostingRegressor.
#[test]
fn extra_tree_fixtures_match_onnxruntime() {
    let paths = fixtures(&models_dir().join("fixtures"), "extra_");
    assert!(
        paths.len() >= 9,
        "expected the fixtures_extra.py set, found {paths:?}"
    );
    for p in paths {
        let (_, backend) = max_abs_diff(&p);
        assert!(
            matches!(backend, Backend::TreeEnsemble(_)),
            "{}",
            p.display()
        );
    }
}

/// Every `*.parity.json` in `MODELWATCH_PARITY_DIR` (for checking new exports by hand):
/// `MODELWATCH_PARITY_DIR=/some/dir cargo test -p modelwatch-runtime --test parity -- --ignored --nocapture`
#[test]
#[ignore = "needs MODELWATCH_PARITY_DIR"]
fn every_fixture_in_a_directory() {
    let dir = std::env::var_os("MODELWATCH_PARITY_DIR").expect("MODELWATCH_PARITY_DIR is set");
    let paths = fixtures(Path::new(&dir), "");
    assert!(
        !paths.is_empty(),
        "no *.parity.json in {}",
        Path::new(&dir).display()
    );
    let mut failed = Vec::new();
    for p in paths {
        if std::panic::catch_unwind(|| max_abs_diff(&p)).is_err() {
            failed.push(p);
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}
