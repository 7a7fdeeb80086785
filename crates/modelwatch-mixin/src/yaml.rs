//! Module implementing the YAML writer of rule and test files. See [`Yaml`] for
//! details.
//!
//! Prometheus rule files and promtool test files use a small part of YAML: maps,
//! lists, strings and numbers. Writing that part ourselves keeps the output stable
//! and readable, and avoids the deprecated serde YAML crates. Every string is
//! double-quoted with escapes, and PromQL expressions are literal block scalars
//! (`|-`), so that no PromQL character ever needs YAML quoting.

use std::fmt::Write as _;

/// A YAML value as the generated files use it.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    /// A double-quoted string.
    Str(String),
    /// A plain scalar written as is: a number, a duration or a rule name. The
    /// caller guarantees it needs no quoting.
    Plain(String),
    /// A literal block scalar (`|-`), for PromQL expressions.
    Block(String),
    /// A mapping, in insertion order.
    Map(Vec<(String, Yaml)>),
    /// A sequence.
    List(Vec<Yaml>),
}

impl Yaml {
    /// A map from `(key, value)` pairs.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Yaml)>) -> Self {
        Yaml::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A map of strings, such as alert labels.
    pub fn string_map(entries: &[(String, String)]) -> Self {
        Yaml::Map(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), Yaml::Str(v.clone())))
                .collect(),
        )
    }

    /// A double-quoted string.
    pub fn str(value: impl Into<String>) -> Self {
        Yaml::Str(value.into())
    }

    /// A plain scalar.
    pub fn plain(value: impl ToString) -> Self {
        Yaml::Plain(value.to_string())
    }

    /// The document text, ending with a newline.
    pub fn to_document(&self) -> String {
        let mut out = String::new();
        match self {
            Yaml::Map(entries) if !entries.is_empty() => write_map(&mut out, entries, 0),
            Yaml::List(items) if !items.is_empty() => write_list(&mut out, items, 0),
            scalar => {
                write_scalar(&mut out, scalar, 0);
                out.push('\n');
            }
        }
        out
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn is_empty_collection(value: &Yaml) -> bool {
    matches!(value, Yaml::Map(e) if e.is_empty()) || matches!(value, Yaml::List(i) if i.is_empty())
}

/// Writes `key: value` lines at `indent`.
fn write_map(out: &mut String, entries: &[(String, Yaml)], indent: usize) {
    for (i, (key, value)) in entries.iter().enumerate() {
        // The first key of a list item follows its "- " on the same line.
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str(key);
        out.push(':');
        write_value(out, value, indent);
    }
}

fn write_list(out: &mut String, items: &[Yaml], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push_str("- ");
        match item {
            Yaml::Map(entries) if !entries.is_empty() => write_map(out, entries, indent + 2),
            Yaml::List(inner) if !inner.is_empty() => {
                out.push('\n');
                write_list(out, inner, indent + 2);
            }
            scalar => {
                write_scalar(out, scalar, indent + 2);
                out.push('\n');
            }
        }
    }
}

/// Writes what follows `key:`, including the line break(s).
fn write_value(out: &mut String, value: &Yaml, indent: usize) {
    match value {
        Yaml::Map(entries) if !entries.is_empty() => {
            out.push('\n');
            write_map(out, entries, indent + 2);
        }
        Yaml::List(items) if !items.is_empty() => {
            out.push('\n');
            write_list(out, items, indent + 2);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar, indent + 2);
            out.push('\n');
        }
    }
}

fn write_scalar(out: &mut String, value: &Yaml, indent: usize) {
    match value {
        Yaml::Str(s) => write_quoted(out, s),
        Yaml::Plain(s) => out.push_str(s),
        Yaml::Block(text) => {
            out.push_str("|-");
            for line in text.trim_end().lines() {
                out.push('\n');
                if !line.is_empty() {
                    pad(out, indent);
                    out.push_str(line);
                }
            }
        }
        v if is_empty_collection(v) => out.push_str(if matches!(v, Yaml::Map(_)) {
            "{}"
        } else {
            "[]"
        }),
        Yaml::Map(_) | Yaml::List(_) => unreachable!("collections are written by their parent"),
    }
}

fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_maps_lists_and_blocks() {
        let doc = Yaml::map([(
            "groups",
            Yaml::List(vec![Yaml::map([
                ("name", Yaml::str("g")),
                (
                    "rules",
                    Yaml::List(vec![Yaml::map([
                        ("record", Yaml::plain("a:b:c")),
                        ("expr", Yaml::Block("sum(x)\n/\nsum(y)".into())),
                        ("labels", Yaml::string_map(&[("q".into(), "0.9".into())])),
                        ("empty", Yaml::List(vec![])),
                    ])]),
                ),
            ])]),
        )]);
        let expected = "groups:\n  - name: \"g\"\n    rules:\n      - record: a:b:c\n        expr: |-\n          sum(x)\n          /\n          sum(y)\n        labels:\n          q: \"0.9\"\n        empty: []\n";
        assert_eq!(doc.to_document(), expected);
    }

    #[test]
    fn strings_are_escaped() {
        let doc = Yaml::map([("d", Yaml::str("say \"{{ $value }}\"\\n\n"))]);
        assert_eq!(
            doc.to_document(),
            "d: \"say \\\"{{ $value }}\\\"\\\\n\\n\"\n"
        );
    }
}
