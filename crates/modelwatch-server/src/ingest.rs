//! Module implementing `modelwatch features load`: an entity group of the embedded
//! store written from rows keyed by entity id and stamped with their event time. See
//! [`write_group`] for details.
//!
//! [`write_group`] is the one writer of a group: `features load` calls it with the
//! rows of a CSV file, and the simulator's seeding of the bundled model calls it with
//! the simulated population.

use crate::features::{EntityGroup, FeatureLayout, MAX_ENTITY_LEN};
use crate::store::{GroupWriter, SqliteStore};
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
    /// Write one entity group of the embedded store from a CSV or Parquet file: one
    /// row per entity, a column per feature of the group, the entity id and the
    /// event time
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
    /// The store written (as `serve --feature-store`): the embedded SQLite file by
    /// default, or Redis in modelwatch's layout.
    #[command(flatten)]
    pub store: crate::config::StoreArgs,
    /// The file: CSV with a header row, or Parquet (`.parquet`, `.pq`; columns by
    /// name, nulls are missing values, timestamps are event times).
    #[arg(value_name = "FILE")]
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
            let (store, _runtime) = open_writer(&load.store, &data_dir, &card)?;
            let written = load_file(
                &*store,
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
                store.describe()
            );
            Ok(())
        }
    }
}

/// The store `features load` writes: SQLite, or Redis in our layout (connected on a
/// small runtime of its own; the writes themselves are blocking).
fn open_writer(
    args: &crate::config::StoreArgs,
    data_dir: &Path,
    card: &ModelCard,
) -> anyhow::Result<(Box<dyn GroupWriter>, Option<tokio::runtime::Runtime>)> {
    use crate::config::StoreLocation;
    match args.parse(data_dir)? {
        StoreLocation::Sqlite(path) => Ok((Box::new(SqliteStore::open(&path)?), None)),
        StoreLocation::Redis { target, prefix } => {
            let layout = FeatureLayout::from_card(card)?;
            let features = layout
                .entity_groups
                .iter()
                .map(|(_, g)| (g.name.clone(), g.features.clone()))
                .collect();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let store = runtime.block_on(crate::store::redis::RedisStore::connect(
                &target,
                crate::store::redis::Layout::Own { prefix },
                features,
                std::time::Duration::from_secs(5),
            ))?;
            // The connection manager's task lives on this runtime (kept by the
            // caller); the writes use blocking connections of their own.
            Ok((Box::new(store), Some(runtime)))
        }
        StoreLocation::Feast { .. } => anyhow::bail!(
            "features load does not write Feast's online store\nhint: Feast writes it (feast materialize); use --feature-store redis://... for modelwatch's own layout"
        ),
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

/// One cell of an input table, as the file holds it.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    /// Empty (CSV) or null (Parquet): a missing value.
    Missing,
    /// Text: an id, an RFC 3339 time, or a number written out (CSV).
    Text(String),
    /// A number (a Parquet numeric or boolean column).
    Number(f64),
    /// A point in time, in Unix seconds (a Parquet timestamp or date column).
    Seconds(i64),
}

impl Cell {
    fn describe(&self) -> String {
        match self {
            Cell::Missing => "an empty cell".into(),
            Cell::Text(t) => format!("{t:?}"),
            Cell::Number(n) => n.to_string(),
            Cell::Seconds(s) => format!("the time {s} (Unix seconds)"),
        }
    }
}

/// A file of rows: its column names, and each row's cells in that order.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<Cell>>,
    /// How a row is named in messages: `line N` (CSV) or `row N` (Parquet).
    row_name: fn(usize) -> String,
}

/// Reads a CSV file with a header row.
fn read_csv(path: &Path) -> anyhow::Result<Table> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}: no header row", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // Line numbers as an editor shows them: the header is line 1.
        let record = record.with_context(|| format!("{}: line {}", path.display(), i + 2))?;
        rows.push(
            (0..header.len())
                .map(|c| match record.get(c).unwrap_or("").trim() {
                    "" => Cell::Missing,
                    text => Cell::Text(text.to_string()),
                })
                .collect(),
        );
    }
    Ok(Table {
        header,
        rows,
        row_name: |i| format!("line {}", i + 2),
    })
}

/// Reads a Parquet file's top-level columns (any compression the `snap` feature and
/// the format's own encodings cover: what pandas and Spark write by default).
fn read_parquet(path: &Path) -> anyhow::Result<Table> {
    use parquet::file::reader::{FileReader as _, SerializedFileReader};
    use parquet::record::Field;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let reader = SerializedFileReader::new(file)
        .with_context(|| format!("{}: not a Parquet file", path.display()))?;
    let header: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let mut rows = Vec::new();
    let iter = reader
        .get_row_iter(None)
        .with_context(|| format!("{}: cannot read its rows", path.display()))?;
    for (i, row) in iter.enumerate() {
        let row = row.with_context(|| format!("{}: row {}", path.display(), i + 1))?;
        let cells = row
            .get_column_iter()
            .map(|(_, field)| match field {
                Field::Null => Cell::Missing,
                Field::Bool(b) => Cell::Number(f64::from(u8::from(*b))),
                Field::Byte(v) => Cell::Number(f64::from(*v)),
                Field::Short(v) => Cell::Number(f64::from(*v)),
                Field::Int(v) => Cell::Number(f64::from(*v)),
                Field::Long(v) => Cell::Number(*v as f64),
                Field::UByte(v) => Cell::Number(f64::from(*v)),
                Field::UShort(v) => Cell::Number(f64::from(*v)),
                Field::UInt(v) => Cell::Number(f64::from(*v)),
                Field::ULong(v) => Cell::Number(*v as f64),
                Field::Float(v) => Cell::Number(f64::from(*v)),
                Field::Double(v) => Cell::Number(*v),
                Field::Str(s) => Cell::Text(s.clone()),
                Field::Bytes(b) => Cell::Text(String::from_utf8_lossy(b.data()).into_owned()),
                Field::TimestampMillis(ms) => Cell::Seconds(ms.div_euclid(1000)),
                Field::TimestampMicros(us) => Cell::Seconds(us.div_euclid(1_000_000)),
                Field::Date(days) => Cell::Seconds(i64::from(*days) * 86_400),
                other => Cell::Text(other.to_string()),
            })
            .collect();
        rows.push(cells);
    }
    Ok(Table {
        header,
        rows,
        row_name: |i| format!("row {}", i + 1),
    })
}

/// Whether `path` is read as Parquet (`.parquet`, `.pq`) rather than CSV.
fn is_parquet(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"))
}

/// Writes the rows of one file, CSV or Parquet (by its extension), into group `group`
/// of `store`: the entity id from `entity_column` (default: the group's
/// `entity_key`), the event time from `time_column`, and one column per feature of
/// the group, found by name (others are ignored). An empty cell or a null is a
/// missing value (NaN). Returns the rows written.
///
/// # Errors
/// A missing column, an empty or oversized entity id, a cell that is not a number, or
/// an event time that is neither RFC 3339 nor Unix seconds (nor a Parquet timestamp),
/// naming row and column.
pub fn load_file(
    store: &dyn GroupWriter,
    card: &ModelCard,
    group: &str,
    path: &Path,
    entity_column: Option<&str>,
    time_column: &str,
) -> anyhow::Result<u64> {
    let layout = FeatureLayout::from_card(card)?;
    let group = store_group(&layout, group)?;
    let entity_column = entity_column.unwrap_or(&group.key).to_string();
    let table = if is_parquet(path) {
        read_parquet(path)?
    } else {
        read_csv(path)?
    };
    let column = |name: &str| {
        table.header.iter().position(|h| h == name).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no column {name:?}\nhint: the header has: {}",
                path.display(),
                table.header.join(", ")
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
    let mut rows = Vec::with_capacity(table.rows.len());
    for (i, record) in table.rows.iter().enumerate() {
        let cell = |at: usize| record.get(at).unwrap_or(&Cell::Missing);
        let at = |col: &str, reason: String| {
            anyhow::anyhow!(
                "{}: {}, column {col:?}: {reason}",
                path.display(),
                (table.row_name)(i)
            )
        };
        let entity = match cell(entity_at) {
            Cell::Text(t) => t.clone(),
            Cell::Number(n) if n.fract() == 0.0 => format!("{n}"),
            _ => String::new(),
        };
        if entity.is_empty() || entity.len() > MAX_ENTITY_LEN {
            return Err(at(
                &entity_column,
                format!("an entity id has 1 to {MAX_ENTITY_LEN} bytes"),
            ));
        }
        let time = cell(time_at);
        let event_time = match time {
            Cell::Seconds(s) => Some(*s),
            Cell::Number(n) if n.is_finite() => Some(*n as i64),
            Cell::Text(t) => parse_time(t),
            _ => None,
        }
        .ok_or_else(|| {
            at(
                time_column,
                format!("{} is neither RFC 3339 nor Unix seconds", time.describe()),
            )
        })?;
        let mut values = Vec::with_capacity(feature_at.len());
        for (name, &c) in group.features.iter().zip(&feature_at) {
            let value = match cell(c) {
                Cell::Missing => f32::NAN,
                Cell::Number(n) => *n as f32,
                Cell::Text(text) => text
                    .parse::<f32>()
                    .map_err(|_| at(name, format!("{text:?} is not a number")))?,
                other => return Err(at(name, format!("{} is not a number", other.describe()))),
            };
            values.push(value);
        }
        rows.push((entity, values, event_time));
    }
    write_group(store, &group, rows, false)
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
    store: &dyn GroupWriter,
    group: &EntityGroup,
    rows: impl IntoIterator<Item = (String, Vec<f32>, i64)>,
    simulated: bool,
) -> anyhow::Result<u64> {
    let names: Vec<&str> = group.features.iter().map(String::as_str).collect();
    store.write_rows(&group.name, &names, &mut rows.into_iter(), simulated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FeatureStore as _;

    fn card() -> ModelCard {
        ModelCard::from_json_str(crate::load::bundled::CARD).unwrap()
    }

    const TERMINAL_HEADER: &str = "terminal_id,event_time,terminal_risk_30d,terminal_nb_tx_1d,terminal_risk_1d,terminal_nb_tx_7d,terminal_risk_7d,terminal_nb_tx_30d,extra";

    /// Writes a snappy-compressed Parquet file of terminals: id (UTF-8), event time
    /// (a microsecond timestamp, as pandas writes one), the six features (doubles,
    /// the 30-day risk nullable) and an extra column.
    fn write_terminals_parquet(
        path: &Path,
        ids: &[&str],
        micros: &[i64],
        risk_30d: &[Option<f64>],
    ) {
        use parquet::basic::Compression;
        use parquet::column::writer::ColumnWriter;
        use parquet::data_type::ByteArray;
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        use std::sync::Arc;
        let schema = Arc::new(
            parquet::schema::parser::parse_message_type(
                "message terminals {
                    required binary terminal_id (UTF8);
                    required int64 event_time (TIMESTAMP(MICROS, true));
                    optional double terminal_risk_30d;
                    required double terminal_nb_tx_1d;
                    required double terminal_risk_1d;
                    required double terminal_nb_tx_7d;
                    required double terminal_risk_7d;
                    required int64 terminal_nb_tx_30d;
                    required binary extra (UTF8);
                }",
            )
            .unwrap(),
        );
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build(),
        );
        let file = std::fs::File::create(path).unwrap();
        let mut writer = SerializedFileWriter::new(file, schema, props).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let n = ids.len();
        let mut index = 0;
        while let Some(mut column) = group.next_column().unwrap() {
            match column.untyped() {
                ColumnWriter::ByteArrayColumnWriter(w) => {
                    let values: Vec<ByteArray> = if index == 0 {
                        ids.iter().map(|id| ByteArray::from(*id)).collect()
                    } else {
                        (0..n).map(|_| ByteArray::from("x")).collect()
                    };
                    w.write_batch(&values, None, None).unwrap();
                }
                ColumnWriter::Int64ColumnWriter(w) => {
                    let values: Vec<i64> = if index == 1 {
                        micros.to_vec()
                    } else {
                        (0..n as i64).map(|i| 30 + i).collect()
                    };
                    w.write_batch(&values, None, None).unwrap();
                }
                ColumnWriter::DoubleColumnWriter(w) if index == 2 => {
                    let present: Vec<f64> = risk_30d.iter().flatten().copied().collect();
                    let levels: Vec<i16> =
                        risk_30d.iter().map(|r| i16::from(r.is_some())).collect();
                    w.write_batch(&present, Some(&levels), None).unwrap();
                }
                ColumnWriter::DoubleColumnWriter(w) => {
                    let values: Vec<f64> = (0..n).map(|i| index as f64 + i as f64 / 10.0).collect();
                    w.write_batch(&values, None, None).unwrap();
                }
                _ => unreachable!("no other column type in the schema"),
            }
            column.close().unwrap();
            index += 1;
        }
        group.close().unwrap();
        writer.close().unwrap();
    }

    #[tokio::test]
    async fn a_parquet_group_is_read_like_a_csv_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("features.sqlite")).unwrap();
        let file = dir.path().join("terminal.parquet");
        write_terminals_parquet(
            &file,
            &["T00001", "T00002"],
            &[1_795_514_400_000_000, 1_700_000_000_500_000],
            &[Some(0.5), None],
        );
        let written = load_file(&store, &card(), "terminal", &file, None, "event_time").unwrap();
        assert_eq!(written, 2);
        let t1 = store.get("terminal", "T00001").await.unwrap().unwrap();
        // Columns 3 to 6 hold index + row / 10; nb_tx_30d is the int64 30 + row.
        // The card's order: nb_tx_1d, risk_1d, nb_tx_7d, risk_7d, nb_tx_30d, risk_30d.
        assert_eq!(*t1.values, [3.0, 4.0, 5.0, 6.0, 30.0, 0.5]);
        assert_eq!(t1.event_time, 1_795_514_400);
        let t2 = store.get("terminal", "T00002").await.unwrap().unwrap();
        assert_eq!(t2.values[0], 3.1);
        assert!(t2.values[5].is_nan(), "a null is a missing value");
        assert_eq!(t2.event_time, 1_700_000_000);
        // The loaded ids pass the store's known-id filter at once.
        assert!(store.may_hold("terminal", "T00002"));
    }

    #[test]
    fn a_parquet_file_without_the_key_column_names_what_it_has() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("features.sqlite")).unwrap();
        let file = dir.path().join("terminal.parquet");
        write_terminals_parquet(&file, &["T00001"], &[0], &[Some(0.1)]);
        let err = load_file(
            &store,
            &card(),
            "terminal",
            &file,
            Some("tid"),
            "event_time",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no column \"tid\"") && err.contains("terminal_id"),
            "{err}"
        );
        let not_parquet = dir.path().join("bad.parquet");
        std::fs::write(&not_parquet, "terminal_id,event_time\n").unwrap();
        let err = load_file(
            &store,
            &card(),
            "terminal",
            &not_parquet,
            None,
            "event_time",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not a Parquet file"), "{err}");
    }

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
        let written = load_file(&store, &card(), "terminal", &csv, None, "event_time").unwrap();
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
                load_file(&store, &card(), group, &csv, None, "event_time").unwrap_err()
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
