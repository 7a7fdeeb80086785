//! Module implementing a parser of the Prometheus text exposition format (0.0.4) and
//! of OpenMetrics text. See [`parse`] for details.
//!
//! It is strict where a test wants to notice a fault: a malformed line, an unknown
//! escape, a second `TYPE` for one family, or the same series twice is an error,
//! never a skipped line. Samples are grouped into families by their `TYPE`:
//! a histogram's `_bucket`, `_sum`, `_count` (and `_created`), a summary's `_sum` and
//! `_count`, a counter's `_total`, an info metric's `_info`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A family's declared type (`# TYPE name type`); `Untyped` when none was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram` (OpenMetrics).
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `info` (OpenMetrics; the 0.0.4 text format writes info metrics as gauges).
    Info,
    /// `stateset` (OpenMetrics).
    StateSet,
    /// `untyped`, `unknown`, or no `TYPE` line.
    Untyped,
}

impl MetricType {
    /// The name a `TYPE` line gives it (`untyped` for [`MetricType::Untyped`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::GaugeHistogram => "gaugehistogram",
            Self::Summary => "summary",
            Self::Info => "info",
            Self::StateSet => "stateset",
            Self::Untyped => "untyped",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "gaugehistogram" => Self::GaugeHistogram,
            "summary" => Self::Summary,
            "info" => Self::Info,
            "stateset" => Self::StateSet,
            "untyped" | "unknown" => Self::Untyped,
            _ => return None,
        })
    }

    /// The suffixes a sample name may add to its family's name.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            Self::Counter => &["_total", "_created"],
            Self::Histogram => &["_bucket", "_sum", "_count", "_created"],
            Self::GaugeHistogram => &["_bucket", "_gsum", "_gcount"],
            Self::Summary => &["_sum", "_count", "_created"],
            Self::Info => &["_info"],
            Self::Gauge | Self::StateSet | Self::Untyped => &[],
        }
    }
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name, suffix included (`model_batch_size_bucket`).
    pub name: String,
    /// Its labels, unescaped (`le` included for buckets).
    pub labels: BTreeMap<String, String>,
    /// The label names in the order the line wrote them.
    pub label_order: Vec<String>,
    /// Its value (`NaN` and infinities included).
    pub value: f64,
    /// Its timestamp as written (milliseconds in 0.0.4, seconds in OpenMetrics).
    pub timestamp: Option<f64>,
}

impl Sample {
    /// A label's value, or "" when the sample has no such label.
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }

    /// Whether every `(name, value)` pair is one of its labels.
    pub fn matches(&self, labels: &[(&str, &str)]) -> bool {
        labels
            .iter()
            .all(|(k, v)| self.labels.get(*k).is_some_and(|have| have == v))
    }
}

/// A metric family: its `HELP`, `TYPE`, `UNIT` and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family name as declared (`model_requests_total` in 0.0.4,
    /// `model_requests` in OpenMetrics).
    pub name: String,
    /// The declared type.
    pub kind: MetricType,
    /// The `HELP` text, unescaped.
    pub help: Option<String>,
    /// The `UNIT` (OpenMetrics).
    pub unit: Option<String>,
    /// The samples, in exposition order.
    pub samples: Vec<Sample>,
}

/// One classic histogram series (one label set without `le`).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// The labels, `le` left out.
    pub labels: BTreeMap<String, String>,
    /// `(le, cumulative count)`, sorted by `le`; the last is `+Inf`.
    pub buckets: Vec<(f64, f64)>,
    /// The `_sum` sample.
    pub sum: f64,
    /// The `_count` sample.
    pub count: f64,
}

/// A parsed exposition.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exposition {
    /// The families, in exposition order.
    pub families: Vec<Family>,
}

/// Why a text is not a valid exposition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Scrapes `{metrics_base}/metrics` (a server's metrics listener, `http://host:port`)
/// and parses it; panics with the text when the scrape fails or does not parse.
pub async fn scrape(client: &reqwest::Client, metrics_base: &str) -> Exposition {
    let text = client
        .get(format!("{metrics_base}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Parses a text exposition (0.0.4 or OpenMetrics).
pub fn parse(text: &str) -> Result<Exposition, ParseError> {
    let mut families: Vec<Family> = Vec::new();
    let mut declared: BTreeSet<String> = BTreeSet::new();
    let mut series: BTreeSet<(String, Vec<(String, String)>)> = BTreeSet::new();
    for (index, line) in text.lines().enumerate() {
        let err = |message: String| ParseError {
            line: index + 1,
            message,
        };
        if line.trim().is_empty() {
            continue;
        }
        if line == "# EOF" {
            break;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            let keyword = words.next().unwrap_or_default();
            if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
                continue; // a plain comment
            }
            let name = words
                .next()
                .filter(|n| is_metric_name(n))
                .ok_or_else(|| err(format!("{keyword} without a valid metric name")))?;
            let rest = words.next().unwrap_or_default();
            let family = family_for_declaration(&mut families, name);
            match keyword {
                "TYPE" => {
                    if !declared.insert(name.to_string()) {
                        return Err(err(format!("a second TYPE line for {name}")));
                    }
                    if !family.samples.is_empty() {
                        return Err(err(format!("TYPE of {name} after its samples")));
                    }
                    family.kind = MetricType::from_name(rest.trim())
                        .ok_or_else(|| err(format!("unknown type {rest:?} for {name}")))?;
                }
                "HELP" => {
                    if family.help.is_some() {
                        return Err(err(format!("a second HELP line for {name}")));
                    }
                    family.help = Some(unescape_help(rest).map_err(err)?);
                }
                _ => family.unit = Some(rest.to_string()),
            }
            continue;
        }
        let sample = parse_sample(line).map_err(err)?;
        let key = (
            sample.name.clone(),
            sample
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        if !series.insert(key) {
            return Err(err(format!("the series {line:?} appears twice")));
        }
        let belongs = families
            .last()
            .is_some_and(|f| belongs_to(&sample.name, &f.name, f.kind));
        if !belongs {
            families.push(Family {
                name: sample.name.clone(),
                kind: MetricType::Untyped,
                help: None,
                unit: None,
                samples: Vec::new(),
            });
        }
        families
            .last_mut()
            .expect("a family was just ensured")
            .samples
            .push(sample);
    }
    Ok(Exposition { families })
}

/// The family a HELP, TYPE or UNIT line for `name` describes: the current one if it
/// has that name and no samples yet, otherwise a new one.
fn family_for_declaration<'a>(families: &'a mut Vec<Family>, name: &str) -> &'a mut Family {
    let reuse = families
        .last()
        .is_some_and(|f| f.name == name && f.samples.is_empty());
    if !reuse {
        families.push(Family {
            name: name.to_string(),
            kind: MetricType::Untyped,
            help: None,
            unit: None,
            samples: Vec::new(),
        });
    }
    families.last_mut().expect("a family was just ensured")
}

fn belongs_to(sample: &str, family: &str, kind: MetricType) -> bool {
    match sample.strip_prefix(family) {
        Some("") => true,
        Some(suffix) => kind.suffixes().contains(&suffix),
        None => false,
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unescape_help(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            // OpenMetrics escapes quotes in HELP too.
            Some('"') => out.push('"'),
            other => return Err(format!("invalid escape \\{} in HELP", other.unwrap_or(' '))),
        }
    }
    Ok(out)
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' ', '\t'])
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    let mut label_order = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels, &mut label_order)?;
    }
    // An OpenMetrics exemplar (` # {labels} value`) follows the value; tests do not
    // read it.
    let rest = rest.split(" # ").next().unwrap_or_default();
    let mut fields = rest.split_ascii_whitespace();
    let value = fields
        .next()
        .ok_or_else(|| format!("no value in {line:?}"))
        .and_then(parse_value)?;
    let timestamp = fields
        .next()
        .map(|t| {
            t.parse::<f64>()
                .map_err(|_| format!("invalid timestamp {t:?}"))
        })
        .transpose()?;
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?} after the value in {line:?}"));
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        label_order,
        value,
        timestamp,
    })
}

/// Parses `name="value",...}` and returns what follows the closing brace.
fn parse_labels<'a>(
    mut text: &'a str,
    labels: &mut BTreeMap<String, String>,
    order: &mut Vec<String>,
) -> Result<&'a str, String> {
    loop {
        text = text.trim_start();
        if let Some(after) = text.strip_prefix('}') {
            return Ok(after);
        }
        let (name, after) = text
            .split_once('=')
            .ok_or_else(|| format!("a label without '=' in {text:?}"))?;
        let name = name.trim();
        if !is_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        let after = after
            .trim_start()
            .strip_prefix('"')
            .ok_or_else(|| format!("the value of label {name} is not quoted"))?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars
                .next()
                .ok_or_else(|| format!("the value of label {name} is not closed"))?;
            match c {
                '"' => break i,
                '\\' => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => {
                        return Err(format!(
                            "invalid escape \\{} in label {name}",
                            other.map_or(' ', |(_, c)| c)
                        ));
                    }
                },
                c => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} appears twice"));
        }
        order.push(name.to_string());
        text = after[end + 1..].trim_start();
        if let Some(after) = text.strip_prefix(',') {
            text = after;
        } else if !text.starts_with('}') {
            return Err(format!("expected ',' or '}}' before {text:?}"));
        }
    }
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if text
            .chars()
            .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            Err(format!("invalid value {text:?}"))
        }
        _ => text.parse().map_err(|_| format!("invalid value {text:?}")),
    }
}

impl Exposition {
    /// Every sample, family after family.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.families.iter().flat_map(|f| f.samples.iter())
    }

    /// The family declared or sampled as `name`.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// The samples named `name` (suffix included) that carry every label of
    /// `labels`.
    pub fn select(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples()
            .filter(|s| s.name == name && s.matches(labels))
            .collect()
    }

    /// The sum of [`Exposition::select`]'s values (0 when nothing matches).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.select(name, labels).iter().map(|s| s.value).sum()
    }

    /// The value of the one sample [`Exposition::select`] finds, `None` when there
    /// is none. Panics when several match: the labels do not name one series.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.select(name, labels).as_slice() {
            [] => None,
            [one] => Some(one.value),
            many => panic!("{name} {labels:?} matches {} series: {many:?}", many.len()),
        }
    }

    /// The classic histograms of family `name` whose labels include `labels`, one
    /// per label set. Fails when a series has no `+Inf` bucket, no `_sum` or
    /// `_count`, buckets that decrease, or a `_count` other than its `+Inf` bucket.
    pub fn histograms(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Result<Vec<Histogram>, String> {
        let family = self
            .family(name)
            .ok_or_else(|| format!("no family {name}"))?;
        if family.kind != MetricType::Histogram {
            return Err(format!("{name} is a {:?}, not a histogram", family.kind));
        }
        let mut by_labels: BTreeMap<BTreeMap<String, String>, Histogram> = BTreeMap::new();
        for sample in family.samples.iter().filter(|s| s.matches(labels)) {
            let mut key = sample.labels.clone();
            let le = key.remove("le");
            let entry = by_labels.entry(key.clone()).or_insert_with(|| Histogram {
                labels: key,
                buckets: Vec::new(),
                sum: f64::NAN,
                count: f64::NAN,
            });
            match &sample.name[name.len()..] {
                "_bucket" => {
                    let le = le.ok_or_else(|| format!("a bucket of {name} without le"))?;
                    entry.buckets.push((parse_value(&le)?, sample.value));
                }
                "_sum" => entry.sum = sample.value,
                "_count" => entry.count = sample.value,
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (_, mut histogram) in by_labels {
            let what = format!("{name}{:?}", histogram.labels);
            histogram.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            let last = histogram.buckets.last().copied();
            if !last.is_some_and(|(le, _)| le == f64::INFINITY) {
                return Err(format!("{what} has no +Inf bucket"));
            }
            if histogram.buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(format!("{what} has decreasing buckets"));
            }
            if histogram.sum.is_nan() || histogram.count.is_nan() {
                return Err(format!("{what} lacks _sum or _count"));
            }
            if last.map(|(_, c)| c) != Some(histogram.count) {
                return Err(format!("{what}: _count differs from the +Inf bucket"));
            }
            out.push(histogram);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passes `promtool check metrics` without findings (see the test below).
    const VALID: &str = r#"# HELP model_requests_total Requests by outcome.
# TYPE model_requests_total counter
model_requests_total{model="fraud",status="success"} 7
model_requests_total{model="fraud",status="rejected"} 2
# HELP model_request_duration_seconds End-to-end latency.
# TYPE model_request_duration_seconds histogram
model_request_duration_seconds_bucket{model="fraud",le="0.005"} 1
model_request_duration_seconds_bucket{model="fraud",le="0.01"} 4
model_request_duration_seconds_bucket{model="fraud",le="+Inf"} 7
model_request_duration_seconds_sum{model="fraud"} 0.052
model_request_duration_seconds_count{model="fraud"} 7
# HELP model_info What is loaded: "quotes", a back\\slash and a\nnewline.
# TYPE model_info gauge
model_info{model="fraud",architecture="a \"quoted\" name",framework="C:\\sk\nlearn"} 1
# HELP model_active_requests In flight.
# TYPE model_active_requests gauge
model_active_requests{model="fraud"} 0
model_active_requests{model="other"} NaN
"#;

    #[test]
    fn the_fixture_is_valid_for_promtool() {
        let (ok, output) = crate::promtool::check_metrics(VALID);
        assert!(ok && output.trim().is_empty(), "promtool: {output}");
    }

    #[test]
    fn families_carry_their_type_help_and_samples() {
        let e = parse(VALID).expect("valid");
        let names: Vec<&str> = e.families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "model_requests_total",
                "model_request_duration_seconds",
                "model_info",
                "model_active_requests"
            ]
        );
        let histogram = e.family("model_request_duration_seconds").expect("family");
        assert_eq!(histogram.kind, MetricType::Histogram);
        assert_eq!(histogram.samples.len(), 5, "buckets, sum and count");
        assert_eq!(e.sum("model_requests_total", &[]), 9.0);
        assert_eq!(
            e.value("model_requests_total", &[("status", "rejected")]),
            Some(2.0)
        );
        assert_eq!(
            e.value("model_requests_total", &[("status", "error")]),
            None
        );
        assert!(
            e.value("model_active_requests", &[("model", "other")])
                .is_some_and(f64::is_nan)
        );
    }

    #[test]
    fn escapes_in_labels_and_help_are_undone() {
        let e = parse(VALID).expect("valid");
        let info = &e.family("model_info").expect("info").samples[0];
        assert_eq!(info.label("architecture"), r#"a "quoted" name"#);
        assert_eq!(info.label("framework"), "C:\\sk\nlearn");
        assert_eq!(
            e.family("model_info").and_then(|f| f.help.as_deref()),
            Some("What is loaded: \"quotes\", a back\\slash and a\nnewline.")
        );
    }

    #[test]
    fn histograms_come_back_whole_and_checked() {
        let e = parse(VALID).expect("valid");
        let h = e
            .histograms("model_request_duration_seconds", &[("model", "fraud")])
            .expect("a valid histogram");
        assert_eq!(h.len(), 1);
        assert_eq!(
            h[0].buckets,
            [(0.005, 1.0), (0.01, 4.0), (f64::INFINITY, 7.0)]
        );
        assert_eq!((h[0].sum, h[0].count), (0.052, 7.0));
        let broken = VALID.replace(
            "model_request_duration_seconds_count{model=\"fraud\"} 7",
            "model_request_duration_seconds_count{model=\"fraud\"} 6",
        );
        let e = parse(&broken).expect("still parses");
        assert!(e.histograms("model_request_duration_seconds", &[]).is_err());
    }

    #[test]
    fn openmetrics_families_hold_their_suffixed_samples() {
        let text = "# TYPE model_requests counter\n# HELP model_requests Requests.\nmodel_requests_total{status=\"ok\"} 3 # {trace_id=\"a\"} 1\nmodel_requests_created{status=\"ok\"} 1.7e9\n# TYPE model info\nmodel_info{version=\"1\"} 1\n# TYPE batch histogram\n# UNIT batch rows\nbatch_bucket{le=\"1\"} 0\nbatch_bucket{le=\"+Inf\"} 2\nbatch_count 2\nbatch_sum 5\n# EOF\n";
        let e = parse(text).expect("valid OpenMetrics");
        assert_eq!(e.families.len(), 3);
        assert_eq!(e.families[0].samples.len(), 2);
        assert_eq!(e.families[1].kind, MetricType::Info);
        assert_eq!(e.families[1].samples[0].name, "model_info");
        assert_eq!(e.families[2].unit.as_deref(), Some("rows"));
        assert_eq!(e.sum("model_requests_total", &[]), 3.0);
    }

    #[test]
    fn samples_without_type_are_untyped_families_and_timestamps_are_kept() {
        let e = parse("up 1 1700000000000\nother{a=\"b\",} 2\n").expect("valid");
        assert_eq!(e.families.len(), 2);
        assert_eq!(e.families[0].kind, MetricType::Untyped);
        assert_eq!(e.families[0].samples[0].timestamp, Some(1.7e12));
        assert_eq!(e.families[1].samples[0].label("a"), "b");
        let ordered = parse("x{b=\"1\",a=\"2\"} 1\n").expect("valid");
        assert_eq!(ordered.families[0].samples[0].label_order, ["b", "a"]);
        assert_eq!(ordered.families[0].kind.as_str(), "untyped");
    }

    #[test]
    fn faults_are_errors_with_their_line() {
        for (text, line, needle) in [
            ("ok 1\nbad{a=\"1} 2\n", 2, "not closed"),
            ("bad{a=\"\\t\"} 1\n", 1, "invalid escape"),
            ("bad{a=1} 1\n", 1, "not quoted"),
            ("bad{1a=\"x\"} 1\n", 1, "invalid label name"),
            ("bad{a=\"x\",a=\"y\"} 1\n", 1, "twice"),
            ("bad{a=\"x\"}\n", 1, "no value"),
            ("bad one\n", 1, "invalid value"),
            ("bad 1 2 3\n", 1, "unexpected"),
            ("x 1\nx 2\n", 2, "appears twice"),
            ("# TYPE x gauge\n# TYPE x gauge\n", 2, "second TYPE"),
            ("# TYPE x thing\n", 1, "unknown type"),
            ("# HELP x bad \\t escape\n", 1, "invalid escape"),
            ("9x 1\n", 1, "invalid metric name"),
        ] {
            let error = parse(text).expect_err(text);
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.message.contains(needle), "{text:?}: {error}");
        }
    }

    #[test]
    fn the_golden_exposition_parses_whole() {
        // crates/modelwatch/tests/golden/exposition.prom passes promtool (the
        // modelwatch crate's golden test checks that); every sample line must land.
        let path = crate::workspace_root().join("crates/modelwatch/tests/golden/exposition.prom");
        let text = std::fs::read_to_string(&path).expect("the golden file is committed");
        let e = parse(&text).expect("the golden exposition parses");
        let lines = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
        assert_eq!(e.samples().count(), lines);
        for family in e
            .families
            .iter()
            .filter(|f| f.kind == MetricType::Histogram)
        {
            e.histograms(&family.name, &[])
                .unwrap_or_else(|err| panic!("{err}"));
        }
        assert!(
            e.families.iter().all(|f| f.kind != MetricType::Untyped),
            "every golden family is typed"
        );
    }
}
