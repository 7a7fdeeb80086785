//! Module implementing `modelwatch features load`: an entity group of the embedded
//! store written from rows keyed by entity id and stamped with their event time. See
//! [`write_group`] for details.
//!
//! [`write_group`] is the one writer of a group: `features load` calls it with the
//! rows of a CSV file, and the simulator's seeding of the bundled model calls it with
//! the simulated population.

use crate::features::{EntityGroup, FeatureLayout, MAX_ENTITY_LEN};
use crate::store::SqliteStore;
use anyhow::Context as _;
use modelwatch_runtime::ModelCard;
use std::path::{Path, PathBuf};

/// `modelwatch features`: fill the feature store of a model's entity groups.
#[derive(Debug, clap::Args)]
pub struct FeaturesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: FeaturesCommand,
}

/// The `features` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum FeaturesCommand {
    /// Write one entity group of the embedded store from a CSV file: one row per
    /// entity, a column per feature of the group, the entity id and the event time
    Load(LoadArgs),
}

/// `modelwatch features load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The model card whose group is loaded.
    #[arg(long, env = "MODELWATCH_MODEL", value_name = "CARD")]
    pub model: PathBuf,
    /// The store group to write (a `store` group of the card).
    #[arg(long, value_name = "NAME")]
    pub group: String,
    /// The column holding the entity id. Default: the group's `entity_key`.
    #[arg(long, value_name = "COLUMN")]
    pub entity_column: Option<String>,
    /// The column holding each row's event time (RFC 3339, or Unix seconds), which
    /// `model_feature_age_seconds` measures from.
    #[arg(long, value_name = "COLUMN", default_value = "event_time")]
    pub event_time_column: String,
    /// Directory of the embedded feature store (as `serve --data-dir`).
    #[arg(long, env = "MODELWATCH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The CSV file, with a header row.
    #[arg(value_name = "FILE.csv")]
    pub file: PathBuf,
}

/// Runs `modelwatch features ...`.
///
/// # Errors
/// When the card, the group or the file is unusable; the message names the row and
/// column, and says what to do.
pub fn run(args: &FeaturesArgs) -> anyhow::Result<()> {
    match &args.command {
        FeaturesCommand::Load(load) => {
            let card = ModelCard::load(&load.model)?;
            let data_dir = load
                .data_dir
                .clone()
                .unwrap_or_else(crate::config::default_data_dir);
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("cannot create {}", data_dir.display()))?;
            let store = SqliteStore::open(&data_dir.join("features.sqlite"))?;
            let written = load_csv(
                &store,
                &card,
                &load.group,
                &load.file,
                load.entity_column.as_deref(),
                &load.event_time_column,
            )?;
            eprintln!(
                "{}: {written} entities of group {} written to {}",
                card.name,
                load.group,
                store.path().display()
            );
            Ok(())
        }
    }
}

/// The store group `name` of the card's layout.
///
/// # Errors
/// When the card has no such store group; the message lists those it has.
pub fn store_group(layout: &FeatureLayout, name: &str) -> anyhow::Result<EntityGroup> {
    layout
        .entity_groups
        .iter()
        .find(|(_, g)| g.name == name)
        .map(|(_, g)| g.clone())
        .ok_or_else(|| {
            let known: Vec<&str> = layout
                .entity_groups
                .iter()
                .map(|(_, g)| g.name.as_str())
                .collect();
            anyhow::anyhow!(
                "the card has no store group {name:?}\nhint: its store groups are: {}",
                known.join(", ")
            )
        })
}

/// Writes the rows of one CSV file into group `group` of `store`: the entity id from
/// `entity_column` (default: the group's `entity_key`), the event time from
/// `time_column`, and one column per feature of the group, found by name (others
/// are ignored). An empty cell is a missing value (NaN). Returns the rows written.
///
/// # Errors
/// A missing column, an empty or oversized entity id, a cell that is not a number, or
/// an event time that is neither RFC 3339 nor Unix seconds, naming row and column.
pub fn load_csv(
    store: &SqliteStore,
    card: &ModelCard,
    group: &str,
    path: &Path,
    entity_column: Option<&str>,
    time_column: &str,
) -> anyhow::Result<u64> {
    let layout = FeatureLayout::from_card(card)?;
    let group = store_group(&layout, group)?;
    let entity_column = entity_column.unwrap_or(&group.key).to_string();
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("{}: no header row", path.display()))?
        .clone();
    let column = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no column {name:?}\nhint: the header has: {}",
                path.display(),
                header.iter().collect::<Vec<_>>().join(", ")
            )
        })
    };
    let entity_at = column(&entity_column)?;
    let time_at = column(time_column)?;
    let feature_at: Vec<usize> = group
        .features
        .iter()
        .map(|f| column(f))
        .collect::<anyhow::Result<_>>()?;
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // Line numbers as an editor shows them: the header is line 1.
        let line = i + 2;
        let record = record.with_context(|| format!("{}: line {line}", path.display()))?;
        let cell = |at: usize| record.get(at).unwrap_or("").trim();
        let at = |col: &str, reason: String| {
            anyhow::anyhow!("{}: line {line}, column {col:?}: {reason}", path.display())
        };
        let entity = cell(entity_at);
        if entity.is_empty() || entity.len() > MAX_ENTITY_LEN {
            return Err(at(
                &entity_column,
                format!("an entity id has 1 to {MAX_ENTITY_LEN} bytes"),
            ));
        }
        let event_time = parse_time(cell(time_at)).ok_or_else(|| {
            at(
                time_column,
                format!("{:?} is neither RFC 3339 nor Unix seconds", cell(time_at)),
            )
        })?;
        let mut values = Vec::with_capacity(feature_at.len());
        for (name, &c) in group.features.iter().zip(&feature_at) {
            let text = cell(c);
            let value = if text.is_empty() {
                f32::NAN
            } else {
                text.parse::<f32>()
                    .map_err(|_| at(name, format!("{text:?} is not a number")))?
            };
            values.push(value);
        }
        rows.push((entity.to_string(), values, event_time));
    }
    write_group(store, &group, rows)
}

fn parse_time(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(seconds);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Writes rows of `(entity id, values in the group's feature order, event time in
/// Unix seconds)` into `group` of `store`, in one transaction. Returns the rows
/// written.
///
/// # Errors
/// When a row has the wrong number of values, or the store cannot be written.
pub fn write_group(
    store: &SqliteStore,
    group: &EntityGroup,
    rows: impl IntoIterator<Item = (String, Vec<f32>, i64)>,
) -> anyhow::Result<u64> {
    let names: Vec<&str> = group.features.iter().map(String::as_str).collect();
    let rows: Vec<(String, Vec<f32>, i64)> = rows.into_iter().collect();
    store.upsert_group(
        &group.name,
        &names,
        rows.iter().map(|(id, v, t)| (id.clone(), v.as_slice(), *t)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FeatureStore as _;

    fn card() -> ModelCard {
        ModelCard::from_json_str(crate::load::bundled::CARD).unwrap()
    }

    const TERMINAL_HEADER: &str = "terminal_id,event_time,terminal_risk_30d,terminal_nb_tx_1d,terminal_risk_1d,terminal_nb_tx_7d,terminal_risk_7d,terminal_nb_tx_30d,extra";

    #[tokio::test]
    async fn a_csv_group_is_read_back_in_card_order_with_its_event_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("features.sqlite")).unwrap();
        let csv = dir.path().join("terminal.csv");
        std::fs::write(
            &csv,
            format!(
                "{TERMINAL_HEADER}\nT1,2026-11-24T10:00:00Z,0.5,1,0.1,7,0.2,30,x\nT2,1700000000,,2,0,8,0,31,y\n"
            ),
        )
        .unwrap();
        let written = load_csv(&store, &card(), "terminal", &csv, None, "event_time").unwrap();
        assert_eq!(written, 2);
        let t1 = store.get("terminal", "T1").await.unwrap().unwrap();
        // The card's order: nb_tx_1d, risk_1d, nb_tx_7d, risk_7d, nb_tx_30d, risk_30d.
        assert_eq!(*t1.values, [1.0, 0.1, 7.0, 0.2, 30.0, 0.5]);
        assert_eq!(t1.event_time, 1_795_514_400);
        let t2 = store.get("terminal", "T2").await.unwrap().unwrap();
        assert!(t2.values[5].is_nan());
        assert_eq!(t2.event_time, 1_700_000_000);
    }

    #[test]
    fn bad_files_name_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("features.sqlite")).unwrap();
        let csv = dir.path().join("t.csv");
        let err = |body: &str, group: &str| {
            std::fs::write(&csv, body).unwrap();
            format!(
                "{:#}",
                load_csv(&store, &card(), group, &csv, None, "event_time").unwrap_err()
            )
        };
        let ok_row = "T1,0,0.5,1,0.1,7,0.2,30,x";
        assert!(
            err(&format!("{TERMINAL_HEADER}\n{ok_row}\n"), "transaction").contains(
                "no store group \"transaction\"\nhint: its store groups are: customer, terminal"
            )
        );
        assert!(
            err("terminal_id,event_time\nT1,0\n", "terminal")
                .contains("no column \"terminal_nb_tx_1d\"")
        );
        assert!(
            err(
                &format!("{TERMINAL_HEADER}\nT1,0,high,1,0.1,7,0.2,30,x\n"),
                "terminal"
            )
            .contains("line 2, column \"terminal_risk_30d\": \"high\" is not a number")
        );
        assert!(
            err(
                &format!("{TERMINAL_HEADER}\nT1,noon,0.5,1,0.1,7,0.2,30,x\n"),
                "terminal"
            )
            .contains(
                "line 2, column \"event_time\": \"noon\" is neither RFC 3339 nor Unix seconds"
            )
        );
        assert!(
            err(
                &format!("{TERMINAL_HEADER}\n{ok_row}\n,0,0.5,1,0.1,7,0.2,30,x\n"),
                "terminal"
            )
            .contains("line 3, column \"terminal_id\"")
        );
    }
}
