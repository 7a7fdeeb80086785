//! Module implementing small PromQL builders: selectors, ranges, numbers and string
//! literals. See [`Promql`] for details.

use crate::config::{MixinConfig, PromDuration};
use modelwatch::schema::MetricDef;

/// Writes the pieces of PromQL that depend on the config: the selector of our own
/// series and windows scaled by `time_scale`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Promql<'a> {
    config: &'a MixinConfig,
}

impl<'a> Promql<'a> {
    pub(crate) fn new(config: &'a MixinConfig) -> Self {
        Self { config }
    }

    /// `series{<selector>, <matchers>}` for one series name of a schema family.
    pub(crate) fn select(&self, series: &str, matchers: &[String]) -> String {
        let mut all: Vec<&str> = Vec::new();
        let selector = self.config.selector.trim().trim_end_matches(',');
        if !selector.is_empty() {
            all.push(selector);
        }
        all.extend(matchers.iter().map(String::as_str));
        if all.is_empty() {
            return series.to_string();
        }
        format!("{series}{{{}}}", all.join(", "))
    }

    /// A counter or gauge of the schema with the selector and `matchers`.
    pub(crate) fn metric(&self, def: &MetricDef, matchers: &[String]) -> String {
        self.select(def.name, matchers)
    }

    /// `_bucket`, `_sum` or `_count` of a schema histogram.
    pub(crate) fn histogram_series(
        &self,
        def: &MetricDef,
        suffix: &str,
        matchers: &[String],
    ) -> String {
        debug_assert_eq!(def.kind, modelwatch::schema::Kind::Histogram);
        self.select(&format!("{}{suffix}", def.name), matchers)
    }

    /// `[<window>]`, scaled.
    pub(crate) fn range(&self, nominal: PromDuration) -> String {
        format!("[{}]", self.config.scaled(nominal))
    }

    /// A window of `secs` seconds, scaled, as PromQL text.
    pub(crate) fn duration(&self, nominal: PromDuration) -> String {
        self.config.scaled(nominal).to_string()
    }
}

/// `label="value"`.
pub(crate) fn eq(label: &str, value: &str) -> String {
    format!("{label}={}", quote(value))
}

/// `label=~"a|b"` matching exactly one of `values`.
pub(crate) fn one_of(label: &str, values: &[&str]) -> String {
    let alternatives: Vec<String> = values.iter().map(|v| regex_escape(v)).collect();
    format!("{label}=~{}", quote(&alternatives.join("|")))
}

/// `label!~"a|b"` matching none of `values`.
pub(crate) fn none_of(label: &str, values: &[&str]) -> String {
    let alternatives: Vec<String> = values.iter().map(|v| regex_escape(v)).collect();
    format!("{label}!~{}", quote(&alternatives.join("|")))
}

/// A PromQL double-quoted string literal.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `value` with RE2 metacharacters escaped, so that it matches only itself.
pub(crate) fn regex_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A number as written in PromQL and YAML: rounded to 12 significant digits, so
/// that `1 - 0.999` reads `0.001`, and without a trailing `.0`.
pub fn num(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let rounded: f64 = format!("{value:.11e}").parse().unwrap_or(value);
    format!("{rounded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_their_config() {
        assert_eq!(num(1.0 - 0.999), "0.001");
        assert_eq!(num(14.4 * (1.0 - 0.999)), "0.0144");
        assert_eq!(num(0.025), "0.025");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1e-4), "0.0001");
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(
            one_of("status", &["error", "a.b"]),
            r#"status=~"error|a\\.b""#
        );
    }

    #[test]
    fn selectors_join_the_configured_matchers() {
        let config = MixinConfig::default();
        let q = Promql::new(&config);
        assert_eq!(
            q.select("m", &[eq("a", "b")]),
            r#"m{job="modelwatch", a="b"}"#
        );
        let config = MixinConfig {
            selector: String::new(),
            ..MixinConfig::default()
        };
        assert_eq!(Promql::new(&config).select("m", &[]), "m");
    }
}
