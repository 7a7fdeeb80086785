//! `modelwatch reference`: score a holdout CSV with the model and write its reference
//! distributions.

use crate::card::ModelCard;
use crate::error::RuntimeError;
use crate::model::load_card_and_model;
use crate::reference::Reference;
use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// Rows scored per call to the model.
const BATCH_ROWS: usize = 4096;

/// Arguments of `modelwatch reference`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReferenceArgs {
    /// Model card of the model (its .onnx sits next to it)
    #[arg(
        long,
        env = "MODELWATCH_MODEL",
        default_value = "models/fraud.card.json"
    )]
    pub model: PathBuf,

    /// Holdout CSV with a header; columns named like the card's features (other
    /// columns are ignored; an empty cell, NaN or NA is a missing value)
    #[arg(
        long,
        env = "MODELWATCH_HOLDOUT",
        default_value = "models/fraud.holdout.csv"
    )]
    pub holdout: PathBuf,

    /// Number of quantile bins per distribution (discrete values can give fewer)
    #[arg(long, env = "MODELWATCH_REFERENCE_BINS", default_value_t = 10,
          value_parser = clap::value_parser!(u16).range(2..=1000))]
    pub bins: u16,

    /// The holdout's label column (1 or true for the positive class), whose labels
    /// give the score bins their calibration for the live performance estimate
    /// [default: `is_fraud` or `label`, when the header has one]
    #[arg(long, env = "MODELWATCH_LABEL_COLUMN")]
    pub label_column: Option<String>,

    /// Where to write the reference [default: NAME.reference.json next to the card]
    #[arg(long, env = "MODELWATCH_REFERENCE_OUT")]
    pub out: Option<PathBuf>,
}

/// Reads the holdout, scores it with the card's model, builds the reference and writes
/// it. Prints a one-line summary per distribution to stderr.
///
/// # Errors
/// When the card, model or holdout cannot be read, a feature column is missing or a
/// cell is not a number, or the reference cannot be written.
pub fn run_reference(args: &ReferenceArgs) -> anyhow::Result<()> {
    let card = ModelCard::load(&args.model)?;
    let (rows, csv_scores) = read_columns(&args.holdout, &card)?;
    let labels = read_labels(&args.holdout, args.label_column.as_deref())?;
    let n = rows.len() / card.features.len().max(1);
    // A monitor-only card has no model to score with: the holdout carries the
    // scores of the team's own model.
    let (scores, model) = if card.onnx.is_none() {
        let scores = csv_scores.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the card {} is monitor-only (no `onnx`), so the holdout must carry the model's output in a `score` column\nhint: write your model's score (or value, for a regressor) of each holdout row into a column named score",
                args.holdout.display(),
                args.model.display()
            )
        })?;
        (scores, None)
    } else {
        let (_, model) = load_card_and_model(&args.model)?;
        let mut scores = vec![0f32; n];
        for (input, out) in rows
            .chunks(BATCH_ROWS * card.features.len())
            .zip(scores.chunks_mut(BATCH_ROWS))
        {
            model.predict(input, out)?;
        }
        (scores, Some(model))
    };
    let mut reference = Reference::build(&card, &rows, &scores, usize::from(args.bins))?;
    if let Some((column, labels)) = &labels {
        reference.calibrate(&scores, labels, card.threshold())?;
        let positives = labels.iter().filter(|p| **p).count();
        eprintln!(
            "calibration from column `{column}`: {positives} positive of {} rows, {} score bins",
            labels.len(),
            reference.score.bin_count()
        );
    }
    let out = args.out.clone().unwrap_or_else(|| {
        args.model
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(format!("{}.reference.json", card.name))
    });
    reference
        .save(&out)
        .with_context(|| format!("writing the reference for {}", card.name))?;

    match &model {
        Some(model) => eprintln!(
            "{} {}: {n} holdout rows scored ({:?}), reference written to {}",
            card.name,
            card.version,
            model.backend(),
            out.display()
        ),
        None => eprintln!(
            "{} {} (monitor-only): {n} holdout rows with their `score` column, reference written to {}",
            card.name,
            card.version,
            out.display()
        ),
    }
    if let Some(expected) = csv_scores.filter(|_| model.is_some()) {
        // The training pipeline writes its own (onnxruntime) score next to the features.
        let worst = expected
            .iter()
            .zip(&scores)
            .map(|(e, s)| (e - s).abs())
            .fold(0f32, f32::max);
        eprintln!("the holdout's `score` column and ours differ by at most {worst:e}");
        if worst > 1e-5 {
            eprintln!("warning: that is more than 1e-5; is the CSV from another model version?");
        }
    }
    if let Some(rows) = card.metrics.holdout_rows.filter(|r| *r != n as u64) {
        eprintln!(
            "note: the card's metrics were computed on {rows} holdout rows, this file has {n}"
        );
    }
    for d in std::iter::once(&reference.score).chain(&reference.features) {
        eprintln!(
            "  {:<28} {:>2} bins  range [{}, {}]  missing {:.2}%",
            d.name,
            d.bin_count(),
            d.min as f32,
            d.max as f32,
            100.0 * d.missing_fraction
        );
    }
    Ok(())
}

/// Reads the card's feature columns from a holdout CSV into row-major `f32`s, NaN for
/// missing cells.
///
/// # Errors
/// [`RuntimeError::FileNotFound`] / [`RuntimeError::Io`] for the file, and
/// [`RuntimeError::Data`] naming the row and column of a bad cell, or a feature column
/// the header lacks.
pub fn read_holdout(path: &Path, card: &ModelCard) -> Result<Vec<f32>, RuntimeError> {
    read_columns(path, card).map(|(rows, _)| rows)
}

/// The feature columns, and the `score` column when the CSV has one.
fn read_columns(
    path: &Path,
    card: &ModelCard,
) -> Result<(Vec<f32>, Option<Vec<f32>>), RuntimeError> {
    let file = std::fs::File::open(path).map_err(|e| RuntimeError::io(path, e))?;
    let data_error = |reason: String| RuntimeError::Data {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(file);
    let header = reader
        .headers()
        .map_err(|e| data_error(format!("cannot read the header: {e}")))?
        .clone();
    let columns: Vec<usize> = card
        .features
        .iter()
        .map(|f| {
            header.iter().position(|h| h == f.name).ok_or_else(|| {
                data_error(format!(
                    "no column `{}` (the header has: {})",
                    f.name,
                    header.iter().collect::<Vec<_>>().join(", ")
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let score_column = header.iter().position(|h| h == "score");
    let mut scores = Vec::new();
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut line = 1u64;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(data_error(format!("after line {line}: {e}"))),
        }
        line = record.position().map_or(line + 1, csv::Position::line);
        for (&c, spec) in columns.iter().zip(&card.features) {
            let cell = record.get(c).unwrap_or("");
            let value = parse_cell(cell).ok_or_else(|| {
                data_error(format!(
                    "line {line}, column `{}`: `{cell}` is not a number",
                    spec.name
                ))
            })?;
            rows.push(value);
        }
        if let Some(c) = score_column {
            let cell = record.get(c).unwrap_or("");
            scores.push(parse_cell(cell).ok_or_else(|| {
                data_error(format!(
                    "line {line}, column `score`: `{cell}` is not a number"
                ))
            })?);
        }
    }
    if rows.is_empty() {
        return Err(data_error("no data rows".into()));
    }
    Ok((rows, score_column.map(|_| scores)))
}

/// The label column (`column`, else `is_fraud` or `label` when the header has one)
/// as booleans, with its name; `None` when there is none.
fn read_labels(
    path: &Path,
    column: Option<&str>,
) -> Result<Option<(String, Vec<bool>)>, RuntimeError> {
    let file = std::fs::File::open(path).map_err(|e| RuntimeError::io(path, e))?;
    let data_error = |reason: String| RuntimeError::Data {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(file);
    let header = reader
        .headers()
        .map_err(|e| data_error(format!("cannot read the header: {e}")))?
        .clone();
    let found = match column {
        Some(name) => Some(
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| data_error(format!("no label column `{name}` in the header")))?,
        ),
        None => ["is_fraud", "label"]
            .iter()
            .find_map(|name| header.iter().position(|h| h == *name)),
    };
    let Some(c) = found else {
        return Ok(None);
    };
    let mut labels = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| data_error(format!("row {}: {e}", i + 1)))?;
        let cell = record.get(c).unwrap_or("");
        let positive = match parse_cell(cell) {
            Some(1.0) => true,
            Some(0.0) => false,
            _ => {
                return Err(data_error(format!(
                    "row {}, label column `{}`: `{cell}` is not 0, 1, true or false",
                    i + 1,
                    &header[c]
                )));
            }
        };
        labels.push(positive);
    }
    Ok(Some((header[c].to_string(), labels)))
}

fn parse_cell(cell: &str) -> Option<f32> {
    match cell {
        "" | "NA" | "NaN" | "nan" | "null" | "None" => Some(f32::NAN),
        "true" | "True" => Some(1.0),
        "false" | "False" => Some(0.0),
        _ => cell.parse::<f32>().ok(),
    }
}
