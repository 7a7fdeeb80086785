//! Module implementing model repositories for tests: the bundled fraud model and a
//! second, different model served beside it. See [`two_model_repository`].

use std::path::{Path, PathBuf};

/// The second model's name: the random-forest fixture (`models/fixtures/rf.onnx`)
/// over the fraud model's features, with decisions of its own.
pub const SECOND_MODEL: &str = "fraud_rf";

/// The second model's decision names (the fraud model's are approved/declined).
pub const SECOND_DECISIONS: [&str; 2] = ["cleared", "held"];

/// Writes a model repository into `dir` (created if needed) and returns it: the
/// bundled `fraud` model, and [`SECOND_MODEL`], the random-forest fixture with the
/// fraud card's features, its own name, decision names and threshold, and the
/// fraud model's feature reference.
pub fn two_model_repository(dir: &Path) -> PathBuf {
    let unpacked = tempfile::tempdir().expect("a temporary directory");
    let card = modelwatch_server::load::unpack_bundled(unpacked.path()).expect("bundled model");
    let models = card.parent().expect("the card's directory");
    std::fs::create_dir_all(dir).expect("the repository directory");
    for entry in std::fs::read_dir(models).expect("unpacked models") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("a file name");
        std::fs::copy(&path, dir.join(name)).expect("copy the bundled model");
    }
    let root = crate::workspace_root();
    std::fs::copy(
        root.join("models/fixtures/rf.onnx"),
        dir.join(format!("{SECOND_MODEL}.onnx")),
    )
    .expect("the random-forest fixture");
    let mut second: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("models/fraud.card.json")).expect("fraud card"),
    )
    .expect("card JSON");
    second["name"] = SECOND_MODEL.into();
    second["version"] = "0.3.0".into();
    second["architecture"] = "random_forest(n_estimators=30,max_depth=8)".into();
    second["onnx"]["file"] = format!("{SECOND_MODEL}.onnx").into();
    second["task"]["threshold"] = 0.5.into();
    second["task"]["decisions"] =
        serde_json::json!({"below": SECOND_DECISIONS[0], "at_or_above": SECOND_DECISIONS[1]});
    std::fs::write(
        dir.join(format!("{SECOND_MODEL}.card.json")),
        serde_json::to_string_pretty(&second).expect("card"),
    )
    .expect("write the second card");
    std::fs::copy(
        dir.join("fraud.reference.json"),
        dir.join(format!("{SECOND_MODEL}.reference.json")),
    )
    .expect("the second model's reference");
    dir.to_path_buf()
}

/// The monitor-only model's name in [`monitor_only_card`].
pub const MONITORED_MODEL: &str = "fraud_watch";

/// Writes a monitor-only card into `dir` (created if needed): the fraud card's
/// features, groups, task and decisions under the name [`MONITORED_MODEL`], with no
/// ONNX file, and the fraud model's reference next to it. Returns the card's path.
pub fn monitor_only_card(dir: &Path) -> PathBuf {
    let root = crate::workspace_root();
    std::fs::create_dir_all(dir).expect("the repository directory");
    let mut card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("models/fraud.card.json")).expect("fraud card"),
    )
    .expect("card JSON");
    card["name"] = MONITORED_MODEL.into();
    card["version"] = "2.1.0".into();
    card["framework"] = "sklearn (served by FastAPI)".into();
    card.as_object_mut().expect("a card object").remove("onnx");
    let path = dir.join(format!("{MONITORED_MODEL}.card.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&card).expect("card"))
        .expect("write the card");
    std::fs::copy(
        root.join("models/fraud.reference.json"),
        dir.join(format!("{MONITORED_MODEL}.reference.json")),
    )
    .expect("the monitored model's reference");
    path
}
