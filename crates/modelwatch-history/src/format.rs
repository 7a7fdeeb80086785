//! Module implementing the import formats a long-term store reads. See [`Format`] for
//! details.

use crate::{History, Series};
use modelwatch::schema::Kind;
use std::io::Write;

/// How a history is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// OpenMetrics text with timestamps, ending in `# EOF`, for
    /// `promtool tsdb create-blocks-from openmetrics`; VictoriaMetrics also imports it
    /// on `/api/v1/import/prometheus`.
    Openmetrics,
    /// VictoriaMetrics' JSON lines (one series per line), for `/api/v1/import`.
    VmJsonl,
}

/// Writes `history` to `out` in `format`.
///
/// # Errors
/// When `out` fails.
pub fn write(history: &History, format: Format, out: &mut impl Write) -> std::io::Result<()> {
    match format {
        Format::Openmetrics => openmetrics(history, out),
        Format::VmJsonl => vm_jsonl(history, out),
    }
}

/// A label value as the text formats write it between quotes.
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels_text(series: &Series) -> String {
    let pairs: Vec<String> = series
        .labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// The OpenMetrics family name: counters drop `_total`, info metrics `_info`.
fn family_name(series: &Series) -> &'static str {
    let def = series.family;
    match def.kind {
        Kind::Counter => def.name.strip_suffix("_total").unwrap_or(def.name),
        Kind::Info => def.name.strip_suffix("_info").unwrap_or(def.name),
        Kind::Gauge | Kind::Histogram => def.name,
    }
}

fn openmetrics(history: &History, out: &mut impl Write) -> std::io::Result<()> {
    // Families must be contiguous: group the series by family, keeping their order.
    let mut families: Vec<&'static str> = Vec::new();
    for s in &history.series {
        if !families.contains(&s.family.name) {
            families.push(s.family.name);
        }
    }
    for family in families {
        let members: Vec<&Series> = history
            .series
            .iter()
            .filter(|s| s.family.name == family)
            .collect();
        let first = members[0];
        let name = family_name(first);
        writeln!(out, "# TYPE {name} {}", first.family.kind.as_str())?;
        writeln!(out, "# HELP {name} {}", escape(first.family.help))?;
        for s in members {
            let labels = labels_text(s);
            for (t, v) in history.timestamps.iter().zip(&s.values) {
                writeln!(out, "{}{labels} {v} {t}", s.name)?;
            }
        }
    }
    writeln!(out, "# EOF")
}

fn vm_jsonl(history: &History, out: &mut impl Write) -> std::io::Result<()> {
    let timestamps: Vec<i64> = history.timestamps.iter().map(|t| t * 1000).collect();
    let timestamps = serde_json::to_string(&timestamps)?;
    for s in &history.series {
        let mut metric = serde_json::Map::new();
        metric.insert("__name__".into(), s.name.clone().into());
        for (k, v) in &s.labels {
            metric.insert(k.clone(), v.clone().into());
        }
        let values = serde_json::to_string(&s.values)?;
        writeln!(
            out,
            "{{\"metric\":{},\"values\":{values},\"timestamps\":{timestamps}}}",
            serde_json::Value::Object(metric)
        )?;
    }
    Ok(())
}
