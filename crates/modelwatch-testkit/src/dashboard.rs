//! Module implementing what tests do with the dashboard's queries: list them
//! ([`queries`]) and replace Grafana's variables before running them against a
//! real Prometheus ([`substitute`]).

/// Every `expr` of the dashboard's panels (collapsed rows included), with the
/// panel's title. Panics on a target without `expr`: Grafana would have nothing
/// to run.
pub fn queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &[serde_json::Value], out: &mut Vec<(String, String)>) {
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or_default().to_string();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a target of panel {title:?} has no expr"));
                out.push((title.clone(), expr.to_string()));
            }
            walk(panel["panels"].as_array().map_or(&[], Vec::as_slice), out);
        }
    }
    let mut out = Vec::new();
    walk(
        dashboard["panels"]
            .as_array()
            .expect("the dashboard has panels"),
        &mut out,
    );
    out
}

/// `query` with each Grafana variable (`$name`, `${name}` or `${name:format}`)
/// replaced by its value in `variables`, such as `[("model", "fraud"),
/// ("__rate_interval", "1m")]`, the way Grafana does before it sends the query.
/// Panics on a variable without a value, so that a dashboard using a new variable
/// fails the test instead of sending `$it` to Prometheus.
///
/// ```
/// use modelwatch_testkit::dashboard::substitute;
/// let vars = [("model", "fraud"), ("__rate_interval", "1m")];
/// assert_eq!(
///     substitute(r#"rate(x{model="$model"}[$__rate_interval])"#, &vars),
///     r#"rate(x{model="fraud"}[1m])"#
/// );
/// ```
pub fn substitute(query: &str, variables: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced
                    .find('}')
                    .unwrap_or_else(|| panic!("an unclosed ${{ in {query:?}"));
                let inner = &braced[..end];
                // `${name:format}`: the format does not change a single value.
                (inner.split(':').next().unwrap_or_default(), end + 2)
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        if name.is_empty() {
            // A lone `$`, such as a regex anchor: not a variable.
            out.push('$');
            rest = after;
            continue;
        }
        let value = variables
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no value for the variable ${name} in {query:?}"));
        out.push_str(value);
        rest = &after[consumed..];
    }
    out.push_str(rest);
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
        ("datasource", ""),
    ];

    #[test]
    fn every_form_of_a_variable_is_replaced() {
        assert_eq!(
            substitute(
                r#"sum(rate(m{model="$model",version="${version}"}[$__rate_interval])) / ${__interval}"#,
                VARS
            ),
            r#"sum(rate(m{model="fraud",version="3"}[20s])) / 5s"#
        );
        assert_eq!(
            substitute("x[$__range] ${model:regex}", VARS),
            "x[1m] fraud"
        );
    }

    #[test]
    fn longer_names_are_not_cut_by_shorter_ones() {
        // `$__interval` must not eat the start of `$__interval_ms`.
        let vars = [("__interval", "5s"), ("__interval_ms", "5000")];
        assert_eq!(substitute("$__interval_ms $__interval", &vars), "5000 5s");
    }

    #[test]
    fn a_lone_dollar_stays() {
        assert_eq!(substitute(r#"x{a=~"b$"}"#, VARS), r#"x{a=~"b$"}"#);
    }

    #[test]
    #[should_panic(expected = "no value for the variable $cluster")]
    fn an_unknown_variable_fails() {
        substitute(r#"x{cluster="$cluster"}"#, VARS);
    }

    #[test]
    fn queries_walk_collapsed_rows() {
        let dashboard = serde_json::json!({"panels": [
            {"title": "a", "targets": [{"expr": "up"}]},
            {"title": "row", "panels": [{"title": "b", "targets": [{"expr": "x"}, {"expr": "y"}]}]},
        ]});
        assert_eq!(
            queries(&dashboard),
            [
                ("a".to_string(), "up".to_string()),
                ("b".to_string(), "x".to_string()),
                ("b".to_string(), "y".to_string())
            ]
        );
    }
}
