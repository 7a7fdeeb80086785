//! Module implementing a small parser for the Prometheus text format, enough to read
//! modelwatch's own exposition. See [`parse`] for details.

use std::collections::BTreeMap;

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Series name (`model_requests_total`, `..._bucket`).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

impl Sample {
    /// A label's value, or "".
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }
}

fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => {
                    let (_, e) = chars.next()?;
                    value.push(match e {
                        'n' => '\n',
                        other => other,
                    });
                }
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').trim().to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

/// Parses every sample line; comments and malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = match value.trim() {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().ok()?,
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
                None => (series, BTreeMap::new()),
            };
            Some(Sample {
                name: name.to_string(),
                labels,
                value,
            })
        })
        .collect()
}

/// The `q` quantile of a classic histogram given cumulative `(le, count)` pairs, by
/// linear interpolation within the bucket, as PromQL's `histogram_quantile` does.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut buckets = buckets.to_vec();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut previous = (0.0, 0.0);
    for &(le, count) in &buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(previous.0);
            }
            let width = count - previous.1;
            let fraction = if width > 0.0 {
                (rank - previous.1) / width
            } else {
                1.0
            };
            return Some(previous.0 + (le - previous.0) * fraction);
        }
        previous = (le, count);
    }
    Some(previous.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_escapes() {
        let s = parse(
            "# HELP x\nm_total{a=\"1\",b=\"q\\\"x\"} 3\nplain 2.5\nh_bucket{le=\"+Inf\"} 4\n",
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].label("b"), "q\"x");
        assert_eq!(s[1].value, 2.5);
        assert_eq!(s[2].label("le"), "+Inf");
    }

    #[test]
    fn quantile_interpolates_like_promql() {
        let b = [(0.1, 50.0), (0.2, 90.0), (f64::INFINITY, 100.0)];
        assert!((histogram_quantile(0.5, &b).unwrap() - 0.1).abs() < 1e-12);
        assert!((histogram_quantile(0.7, &b).unwrap() - 0.15).abs() < 1e-12);
        assert_eq!(histogram_quantile(0.99, &b), Some(0.2));
        assert_eq!(histogram_quantile(0.5, &[(0.1, 0.0)]), None);
    }
}
