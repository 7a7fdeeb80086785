//! Reference distributions: quantile bins, fractions, edge lookups, the file format and
//! the `reference` command end to end.

use modelwatch_runtime::cli::{ReferenceArgs, run_reference};
use modelwatch_runtime::{Distribution, ModelCard, Reference, RuntimeError};
use std::path::Path;

fn dist(values: &[f32], bins: usize) -> Distribution {
    Distribution::from_values("x", None, values.iter().copied(), bins).expect("builds")
}

fn assert_sums_to_one(d: &Distribution) {
    let sum: f64 = d.fractions.iter().sum();
    assert!((sum - 1.0).abs() < 1e-12, "{} sums to {sum}", d.name);
    assert_eq!(d.fractions.len(), d.edges.len() + 1);
}

#[test]
fn deciles_of_one_to_a_hundred() {
    let values: Vec<f32> = (1..=100).map(|v| v as f32).collect();
    let d = dist(&values, 10);
    assert_eq!(
        d.edges,
        [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
    );
    assert!(
        d.fractions.iter().all(|f| (f - 0.1).abs() < 1e-12),
        "{:?}",
        d.fractions
    );
    assert_sums_to_one(&d);
    assert_eq!((d.min, d.max, d.missing_fraction), (1.0, 100.0, 0.0));

    // Upper-inclusive bins: a value equal to an edge falls in the bin that edge closes.
    assert_eq!(d.bin_index(10.0), Some(0));
    assert_eq!(d.bin_index(10.000_001), Some(1));
    assert_eq!(d.bin_index(9.999_999), Some(0));
    assert_eq!(d.bin_index(90.0), Some(8));
    assert_eq!(d.bin_index(90.5), Some(9));
    // Open-ended first and last bins.
    assert_eq!(d.bin_index(f32::NEG_INFINITY), Some(0));
    assert_eq!(d.bin_index(-1e30), Some(0));
    assert_eq!(d.bin_index(1e30), Some(9));
    assert_eq!(d.bin_index(f32::INFINITY), Some(9));
    // NaN is missing.
    assert_eq!(d.bin_index(f32::NAN), None);
    assert!(d.is_out_of_range(0.5) && d.is_out_of_range(100.5) && !d.is_out_of_range(50.0));
}

#[test]
fn edges_are_short_decimals_between_holdout_values() {
    // 0.05, 0.15, ..., 9.95: cuts at 0.95, 1.95, ...; the next values are 1.05, 2.05, ...
    let values: Vec<f32> = (0..100).map(|i| 0.05 + 0.1 * i as f32).collect();
    let d = dist(&values, 10);
    assert_eq!(d.edges, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    assert_sums_to_one(&d);
    // Every holdout value is in the bin its raw quantile cut gives.
    for (i, v) in values.iter().enumerate() {
        assert_eq!(d.bin_index(*v), Some(i / 10), "value {v}");
    }
}

#[test]
fn discrete_features_get_one_bin_per_value() {
    // A 0/1 flag, 90% zeros.
    let flag: Vec<f32> = (0..1000)
        .map(|i| if i % 10 == 0 { 1.0 } else { 0.0 })
        .collect();
    let d = dist(&flag, 10);
    assert_eq!(d.edges, [0.0]);
    assert_eq!(d.fractions, [0.9, 0.1]);
    assert_eq!(d.bin_index(0.0), Some(0));
    assert_eq!(d.bin_index(1.0), Some(1));

    // Hour of day: 24 values, more than 10 bins, so quantile cuts on whole hours.
    let hours: Vec<f32> = (0..2400).map(|i| (i % 24) as f32).collect();
    let d = dist(&hours, 10);
    assert!(d.edges.iter().all(|e| e.fract() == 0.0), "{:?}", d.edges);
    assert!(d.edges.windows(2).all(|w| w[0] < w[1]));
    assert_sums_to_one(&d);

    // Heavy ties: 60% zeros, then spread values. The repeated zero cuts collapse.
    let mut tied = vec![0.0f32; 600];
    tied.extend((1..=400).map(|i| i as f32));
    let d = dist(&tied, 10);
    assert_eq!(d.edges[0], 0.0);
    assert!((d.fractions[0] - 0.6).abs() < 1e-12);
    assert_eq!(d.edges.len(), 4, "{:?}", d.edges);
    assert_sums_to_one(&d);

    // A constant: one bin.
    let d = dist(&[3.5; 50], 10);
    assert!(d.edges.is_empty());
    assert_eq!(d.fractions, [1.0]);
}

#[test]
fn missing_values_are_counted_apart() {
    let mut values: Vec<f32> = (1..=80).map(|v| v as f32).collect();
    values.extend([f32::NAN; 20]);
    let d = dist(&values, 4);
    assert!((d.missing_fraction - 0.2).abs() < 1e-12);
    assert_eq!(d.edges, [20.0, 40.0, 60.0]);
    assert_sums_to_one(&d);

    let err = Distribution::from_values("empty", None, [f32::NAN; 3], 10).expect_err("all missing");
    assert_eq!(
        err.to_string(),
        "reference field `empty`: no value present in 3 rows"
    );
    let err = Distribution::from_values("x", None, [1.0], 1).expect_err("one bin");
    assert!(matches!(err, RuntimeError::InvalidReference { .. }));
}

fn card() -> ModelCard {
    ModelCard::from_json_str(
        &serde_json::json!({
            "format_version": 1, "name": "toy", "version": "2.0.0",
            "framework": "none", "training_date": "2026-11-24", "architecture": "toy",
            "onnx_file": "toy.onnx", "input_name": "features",
            "features": [{"name": "amount", "group": "transaction"},
                         {"name": "is_night", "group": "transaction"}],
            "positive_class_output": "probabilities", "positive_class_index": 1,
            "threshold": 0.5,
            "metrics": {"auc": 0.5, "precision": 0.5, "recall": 0.5, "holdout_rows": 4,
                        "fraud_rate": 0.25}
        })
        .to_string(),
    )
    .expect("valid card")
}

#[test]
fn build_save_load_round_trip() {
    let card = card();
    let n = 500;
    let rows: Vec<f32> = (0..n)
        .flat_map(|i| [i as f32 * 1.5, if i % 4 == 0 { 1.0 } else { 0.0 }])
        .collect();
    let scores: Vec<f32> = (0..n).map(|i| i as f32 / n as f32).collect();
    let reference = Reference::build(&card, &rows, &scores, 10).expect("builds");
    assert_eq!(reference.model, "toy");
    assert_eq!(reference.version, "2.0.0");
    assert_eq!(reference.rows, 500);
    assert_eq!(reference.score.name, "score");
    assert_eq!(reference.score.bin_count(), 10);
    assert_eq!(reference.features.len(), 2);
    assert_eq!(reference.features[1].group.as_deref(), Some("transaction"));
    assert_eq!(reference.features[1].fractions, [0.75, 0.25]);
    for d in std::iter::once(&reference.score).chain(&reference.features) {
        assert_sums_to_one(d);
    }
    reference.check_card(&card).expect("matches its card");

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("toy.reference.json");
    reference.save(&path).expect("saves");
    let text = std::fs::read_to_string(&path).expect("reads");
    assert!(text.ends_with("}\n"));
    assert!(text.contains("\"missing_fraction\""));
    assert_eq!(Reference::load(&path).expect("loads"), reference);

    // A broken file is refused with the field named.
    let mut broken: serde_json::Value = serde_json::from_str(&text).expect("json");
    broken["features"][0]["fractions"][0] = 0.5.into();
    std::fs::write(&path, broken.to_string()).expect("writes");
    let err = Reference::load(&path).expect_err("does not sum to 1");
    assert!(
        err.to_string()
            .starts_with("reference field `features[0].fractions`: sum to"),
        "{err}"
    );
    let mut broken: serde_json::Value = serde_json::from_str(&text).expect("json");
    broken["score"]["edges"] = serde_json::json!([0.5, 0.2]);
    std::fs::write(&path, broken.to_string()).expect("writes");
    let err = Reference::load(&path).expect_err("decreasing");
    assert!(err.to_string().contains("not strictly increasing"), "{err}");

    let err = Reference::build(&card, &rows[1..], &scores, 10).expect_err("shape");
    assert!(matches!(err, RuntimeError::InvalidReference { .. }));
}

#[test]
fn the_reference_command_scores_a_holdout_csv() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        fixtures.join("extra_sklearn_gbr.onnx"),
        dir.path().join("gbr.onnx"),
    )
    .expect("copies");
    let card = serde_json::json!({
        "format_version": 1, "name": "gbr", "version": "0.1.0",
        "framework": "scikit-learn 1.9.1", "training_date": "2026-11-24",
        "architecture": "GradientBoostingRegressor", "onnx_file": "gbr.onnx",
        "input_name": "features",
        "features": (0..6).map(|i| serde_json::json!({"name": format!("f{i}"), "group": "g"}))
            .collect::<Vec<_>>(),
        "positive_class_output": "variable", "positive_class_index": 0, "threshold": 0.5,
        "metrics": {"auc": 0.9, "precision": 0.8, "recall": 0.7, "holdout_rows": 300,
                    "fraud_rate": 0.1}
    });
    let card_path = dir.path().join("gbr.card.json");
    std::fs::write(&card_path, card.to_string()).expect("writes card");

    // The parity rows as a holdout CSV: columns shuffled, an extra label column, and
    // empty cells for missing values.
    let parity: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("extra_sklearn_gbr.parity.json")).expect("reads"),
    )
    .expect("json");
    let mut csv = String::from("is_fraud,f5,f4,f3,f2,f1,f0\n");
    for row in parity["rows"].as_array().expect("rows") {
        let cells: Vec<String> = (0..6)
            .rev()
            .map(|j| row[j].as_f64().map_or(String::new(), |v| v.to_string()))
            .collect();
        csv.push_str(&format!("0,{}\n", cells.join(",")));
    }
    let holdout = dir.path().join("holdout.csv");
    std::fs::write(&holdout, csv).expect("writes csv");

    let args = ReferenceArgs {
        model: card_path.clone(),
        holdout: holdout.clone(),
        bins: 8,
        label_column: None,
        out: None,
    };
    run_reference(&args).expect("builds the reference");
    let reference = Reference::load(&dir.path().join("gbr.reference.json")).expect("written");
    assert_eq!(reference.rows, 300);
    assert_eq!(reference.bins, 8);
    // The CSV's is_fraud column (all 0) gives the score its calibration, with an
    // edge just below the card's threshold added to the 8 quantile bins.
    let calibration = reference
        .score
        .positive_fractions
        .as_ref()
        .expect("calibrated");
    assert_eq!(calibration.len(), reference.score.bin_count());
    assert!(calibration.iter().all(|p| *p == 0.0), "{calibration:?}");
    assert!((8..=9).contains(&reference.score.bin_count()));
    assert_eq!(reference.features.len(), 6);
    assert!(reference.features.iter().all(|f| f.missing_fraction > 0.0));
    let expected: Vec<f32> = parity["probabilities"]
        .as_array()
        .expect("probabilities")
        .iter()
        .map(|p| p.as_f64().expect("number") as f32)
        .collect();
    let reference_from_expected =
        Distribution::from_values("score", None, expected, 8).expect("builds");
    // The calibrated score keeps every quantile edge of the model's own scores (the
    // threshold's edge comes on top) and their range.
    for edge in &reference_from_expected.edges {
        assert!(
            reference.score.edges.contains(edge),
            "{edge} missing from {:?}",
            reference.score.edges
        );
    }
    assert_eq!(
        reference.score.edges.len(),
        reference_from_expected.edges.len() + 1
    );
    assert_eq!(reference.score.min, reference_from_expected.min);
    assert_eq!(reference.score.max, reference_from_expected.max);

    // A holdout without a card feature names the column.
    std::fs::write(&holdout, "f0,f1\n1,2\n").expect("writes");
    let err = run_reference(&args).expect_err("missing column");
    assert!(err.to_string().contains("no column `f2`"), "{err}");
    // A cell that is not a number names line and column.
    std::fs::write(&holdout, "f0,f1,f2,f3,f4,f5\n1,2,3,4,5,6\n1,2,x,4,5,6\n").expect("writes");
    let err = run_reference(&args).expect_err("bad cell");
    assert!(
        err.to_string()
            .ends_with("line 3, column `f2`: `x` is not a number"),
        "{err}"
    );
}
