//! Module implementing Grafana's variable substitution in dashboard queries. See
//! [`substitute`] for details.
//!
//! The one place that turns a panel's `expr` into the PromQL that is sent: the
//! page of `modelwatch ui` uses it, and the tests that run every dashboard query
//! against a live Prometheus use it too, so both send what Grafana would.

/// A variable the query uses and the caller gave no value for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no value for the dashboard variable ${name} in {query:?}")]
pub struct UnknownVariable {
    /// The variable's name, without `$`.
    pub name: String,
    /// The query it appears in.
    pub query: String,
}

/// `query` with each Grafana variable (`$name`, `${name}` or `${name:format}`)
/// replaced by its value in `variables`, such as `[("model", "fraud"),
/// ("__rate_interval", "1m")]`, the way Grafana does before it sends the query.
/// A variable without a value is an error, so that a dashboard using a new
/// variable is noticed instead of sending `$it` to Prometheus. A `$` that starts no
/// name (a regex anchor) stays. Values are inserted as given: quote or escape them
/// for where they land (a regex matcher, a duration) before calling.
///
/// ```
/// use modelwatch_mixin::variables::substitute;
/// let vars = [("model", "fraud"), ("__rate_interval", "1m")];
/// assert_eq!(
///     substitute(r#"rate(x{model=~"$model"}[$__rate_interval])"#, &vars)?,
///     r#"rate(x{model=~"fraud"}[1m])"#
/// );
/// # Ok::<(), modelwatch_mixin::variables::UnknownVariable>(())
/// ```
pub fn substitute(query: &str, variables: &[(&str, &str)]) -> Result<String, UnknownVariable> {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                // `${name:format}`: the format does not change a single value.
                Some(end) => (braced[..end].split(':').next().unwrap_or_default(), end + 2),
                None => ("", 0),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        let value = variables
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| UnknownVariable {
                name: name.to_string(),
                query: query.to_string(),
            })?;
        out.push_str(value);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `value` as it must appear inside a PromQL regex matcher's double-quoted string
/// (`model=~"$model"`): regex metacharacters escaped so that the value matches only
/// itself, then backslashes and quotes escaped for the string literal.
pub fn regex_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            // One backslash for the regex, doubled for the PromQL string.
            out.push_str("\\\\");
            out.push(c);
        } else if c == '"' {
            out.push_str("\\\"");
        } else if c == '\n' {
            out.push_str("\\n");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARS: &[(&str, &str)] = &[
        ("model", "fraud"),
        ("version", "3"),
        ("__rate_interval", "20s"),
        ("__interval", "5s"),
        ("__range", "1m"),
    ];

    #[test]
    fn every_form_of_a_variable_is_replaced() {
        assert_eq!(
            substitute(
                r#"sum(rate(m{model="$model",version="${version}"}[$__rate_interval])) / ${__interval}"#,
                VARS
            )
            .unwrap(),
            r#"sum(rate(m{model="fraud",version="3"}[20s])) / 5s"#
        );
        assert_eq!(
            substitute("x[$__range] ${model:regex}", VARS).unwrap(),
            "x[1m] fraud"
        );
    }

    #[test]
    fn longer_names_are_not_cut_by_shorter_ones() {
        let vars = [("__interval", "5s"), ("__interval_ms", "5000")];
        assert_eq!(
            substitute("$__interval_ms $__interval", &vars).unwrap(),
            "5000 5s"
        );
    }

    #[test]
    fn a_lone_dollar_stays() {
        assert_eq!(substitute(r#"x{a=~"b$"}"#, VARS).unwrap(), r#"x{a=~"b$"}"#);
        assert_eq!(substitute("x ${", VARS).unwrap(), "x ${");
    }

    #[test]
    fn an_unknown_variable_is_an_error() {
        let e = substitute(r#"x{cluster="$cluster"}"#, VARS).unwrap_err();
        assert_eq!(e.name, "cluster");
        assert!(e.to_string().contains("$cluster"), "{e}");
    }

    #[test]
    fn regex_literals_match_only_themselves() {
        assert_eq!(regex_literal("fraud"), "fraud");
        assert_eq!(regex_literal("a.b"), r"a\\.b");
        assert_eq!(regex_literal(r#"x"|.*"#), r#"x\"\\|\\.\\*"#);
    }
}
