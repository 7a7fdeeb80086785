//! Module implementing `modelwatch card init`: a first model card for an ONNX file
//! and a CSV of its data. See [`skeleton`] for details.
//!
//! The card it writes is a starting point that loads and serves: every feature a
//! request field named like its CSV column, in the CSV's column order. The user then
//! moves features into store groups, marks the ones that may be missing, and sets the
//! threshold and decision names (docs/bring-your-model.md).

use crate::error::RuntimeError;
use crate::onnx;
use std::path::{Path, PathBuf};

/// What the model computes, as the card's `task.type` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskKind {
    /// A positive-class probability and a threshold.
    Binary,
    /// A predicted value.
    Regression,
}

/// Arguments of `modelwatch card init`.
#[derive(Debug, Clone, clap::Args)]
pub struct CardInitArgs {
    /// The exported model; the card is written next to it
    #[arg(long, value_name = "MODEL.onnx")]
    pub onnx: PathBuf,

    /// A CSV of the model's data with a header: every column not excluded is a
    /// feature, in the model's input order
    #[arg(long, value_name = "FILE.csv")]
    pub data: PathBuf,

    /// Columns of the CSV that are not features (the label, a score), comma-separated
    #[arg(long, value_delimiter = ',', default_value = "score,label,target")]
    pub exclude: Vec<String>,

    /// The model's name: its `model` label and its path in the API [default: the ONNX
    /// file's stem]
    #[arg(long)]
    pub name: Option<String>,

    /// The task [default: binary when the graph has a `probabilities` output, else
    /// regression]
    #[arg(long, value_enum)]
    pub task: Option<TaskKind>,

    /// Where to write the card [default: NAME.card.json next to the ONNX file]
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Replace a card that is already there
    #[arg(long)]
    pub force: bool,
}

/// Why a skeleton cannot be written from `path`.
fn data_error(path: &Path, reason: String) -> RuntimeError {
    RuntimeError::Data {
        path: path.to_path_buf(),
        reason,
    }
}

/// `modelwatch card`: model card tools.
#[derive(Debug, Clone, clap::Args)]
pub struct CardArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CardCommand,
}

/// The `modelwatch card` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CardCommand {
    /// Write a first card for an ONNX model from a CSV of its data: every column a
    /// request feature, in order (then edit it: see docs/bring-your-model.md)
    Init(CardInitArgs),
}

/// The skeleton card of `onnx_path` over the columns of `data` (less `exclude`), as
/// JSON: one request group, every feature a request field, a 0.5 threshold and the
/// default decision names for a binary model.
///
/// # Errors
/// The ONNX file or the CSV cannot be read; the graph has no single `[batch, F]`
/// input; the CSV has another number of feature columns than `F`.
pub fn skeleton(
    onnx_path: &Path,
    data: &Path,
    exclude: &[String],
    name: &str,
    task: Option<TaskKind>,
) -> Result<serde_json::Value, RuntimeError> {
    let model = onnx::read_model(onnx_path)?;
    let graph = onnx::graph(&model)?;
    let input = onnx::feature_input(graph, None)?;
    let width = onnx::input_width(input)?;
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let task = task.unwrap_or(if outputs.contains(&"probabilities") {
        TaskKind::Binary
    } else {
        TaskKind::Regression
    });
    let (output, column) = match task {
        TaskKind::Binary if outputs.contains(&"probabilities") => ("probabilities", 1),
        _ => match outputs.iter().find(|o| **o != "label") {
            Some(o) => (*o, 0),
            None => {
                return Err(data_error(
                    onnx_path,
                    "the graph has no output to read a score or value from".into(),
                ));
            }
        },
    };
    let mut reader = csv::Reader::from_path(data).map_err(|e| data_error(data, e.to_string()))?;
    let header = reader
        .headers()
        .map_err(|e| data_error(data, e.to_string()))?;
    let features: Vec<&str> = header
        .iter()
        .filter(|c| !exclude.iter().any(|e| e == c))
        .collect();
    if let Some(width) = width {
        if features.len() != width {
            return Err(data_error(
                data,
                format!(
                    "{} feature columns ({}) but the model takes {width} inputs; leave the others out with --exclude",
                    features.len(),
                    features.join(", ")
                ),
            ));
        }
    }
    // The exporter, as the ONNX file records it (skl2onnx writes its own name and
    // version).
    let framework = match (
        model.producer_name.as_str(),
        model.producer_version.as_str(),
    ) {
        ("", _) => "unknown".to_string(),
        (name, "") => name.to_string(),
        (name, version) => format!("{name}-{version}"),
    };
    // The day the ONNX file was written, a stand-in for the training date.
    let exported = std::fs::metadata(onnx_path)
        .and_then(|m| m.modified())
        .ok()
        .map(time::OffsetDateTime::from)
        .map_or_else(
            || "1970-01-01".to_string(),
            |t| {
                let d = t.date();
                format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
            },
        );
    let file = onnx_path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    let task = match task {
        TaskKind::Binary => serde_json::json!({
            "type": "binary_classification",
            "threshold": 0.5,
            "decisions": {"below": "negative", "at_or_above": "positive"},
        }),
        TaskKind::Regression => serde_json::json!({"type": "regression"}),
    };
    Ok(serde_json::json!({
        "format_version": 2,
        "name": name,
        "version": "0.1.0",
        "framework": framework,
        "training_date": exported,
        "architecture": "unknown",
        "onnx": {"file": file, "input": input.name, "output": output, "column": column},
        "task": task,
        "threshold_rule": "placeholder: choose the threshold on holdout data (docs/bring-your-model.md)",
        "groups": {"request": {"source": "request"}},
        "features": features
            .iter()
            .map(|f| serde_json::json!({"name": f, "group": "request"}))
            .collect::<Vec<_>>(),
    }))
}

/// Writes the skeleton card of `args`, checks that it loads with its model, and
/// prints what to do next.
///
/// # Errors
/// As [`skeleton`]; a card already at the destination (without `--force`); a card
/// that does not load.
pub fn run_card_init(args: &CardInitArgs) -> anyhow::Result<()> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => args
            .onnx
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "cannot take a model name from {}\nhint: give one with --name",
                    args.onnx.display()
                )
            })?,
    };
    let card = skeleton(&args.onnx, &args.data, &args.exclude, &name, args.task)
        .map_err(|e| anyhow::anyhow!("{e}\nhint: --data takes the CSV the model was trained or validated on, with a header row"))?;
    let out = args.out.clone().unwrap_or_else(|| {
        args.onnx
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("{name}.card.json"))
    });
    anyhow::ensure!(
        args.force || !out.exists(),
        "{} already exists\nhint: pass --force to replace it, or --out to write elsewhere",
        out.display()
    );
    let text = serde_json::to_string_pretty(&card)? + "\n";
    // Written beside the destination (the card names its ONNX file relative to its
    // own directory) and loaded before it takes the card's name, so a card that does
    // not load is never left behind.
    let trial = out.with_extension("json.tmp");
    std::fs::write(&trial, text)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", trial.display()))?;
    if let Err(e) = crate::model::load_card_and_model(&trial) {
        let _ = std::fs::remove_file(&trial);
        anyhow::bail!(
            "the skeleton card for {} does not load: {e}",
            args.onnx.display()
        );
    }
    std::fs::rename(&trial, &out)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
    let n = card["features"].as_array().map_or(0, Vec::len);
    eprintln!(
        "wrote {} ({n} request features, task {})",
        out.display(),
        card["task"]["type"]
    );
    eprintln!(
        "next: move store-backed features into store groups, mark the ones that may be missing nullable, set the threshold; then\n  modelwatch reference --model {} --holdout {}",
        out.display(),
        args.data.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn a_regressor_and_its_holdout_give_a_card_that_loads() {
        let dir = tempfile::tempdir().unwrap();
        let onnx = dir.path().join("spend.onnx");
        std::fs::copy(root().join("models/fixtures/spend.onnx"), &onnx).unwrap();
        let args = CardInitArgs {
            onnx: onnx.clone(),
            data: root().join("models/fixtures/spend.holdout.csv"),
            exclude: vec!["amount".into(), "score".into()],
            name: None,
            task: None,
            out: None,
            force: false,
        };
        run_card_init(&args).unwrap();
        let card = crate::card::ModelCard::from_json_str(
            &std::fs::read_to_string(dir.path().join("spend.card.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(card.name, "spend");
        assert_eq!(card.features.len(), 6);
        assert!(card.threshold().is_none(), "a regressor has no threshold");
        // Written once; a second run refuses to overwrite.
        let again = run_card_init(&args).unwrap_err().to_string();
        assert!(
            again.contains("already exists") && again.contains("hint:"),
            "{again}"
        );
    }

    #[test]
    fn a_classifier_gets_a_threshold_and_a_wrong_width_is_refused() {
        let data = root().join("models/fraud.holdout.csv");
        let onnx = root().join("models/fraud.onnx");
        let card = skeleton(
            &onnx,
            &data,
            &["is_fraud".into(), "score".into()],
            "fraud",
            None,
        )
        .unwrap();
        assert_eq!(card["task"]["type"], "binary_classification");
        assert_eq!(card["onnx"]["output"], "probabilities");
        assert_eq!(card["onnx"]["column"], 1);
        assert_eq!(card["features"].as_array().unwrap().len(), 16);
        // Forgetting to leave out the label: 17 columns for 16 inputs.
        let err = skeleton(&onnx, &data, &["score".into()], "fraud", None).unwrap_err();
        assert!(err.to_string().contains("17 feature columns"), "{err}");
    }
}
