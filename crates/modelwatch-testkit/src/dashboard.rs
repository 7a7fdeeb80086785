//! Module implementing what tests do with the dashboard's queries: list them
//! ([`queries`]) and replace Grafana's variables before running them against a
//! real Prometheus ([`substitute`], the mixin's one substitution).

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

/// The metrics of exporters that the tests do not run (NVIDIA's DCGM, cAdvisor):
/// the panels that read them have no data on a test machine.
pub const ABSENT_IN_TESTS: [&str; 4] = [
    modelwatch_mixin::names::external::DCGM_GPU_UTIL,
    modelwatch_mixin::names::external::DCGM_FB_USED,
    modelwatch_mixin::names::external::CONTAINER_CPU,
    modelwatch_mixin::names::external::CONTAINER_MEMORY,
];

/// [`queries`] without those that read a metric of [`ABSENT_IN_TESTS`]: the
/// queries that must return data against a real server.
pub fn live_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    queries(dashboard)
        .into_iter()
        .filter(|(_, expr)| !ABSENT_IN_TESTS.iter().any(|m| expr.contains(m)))
        .collect()
}

/// `query` with each Grafana variable (`$name`, `${name}` or `${name:format}`)
/// replaced by its value in `variables`, by the one substitution the page uses
/// ([`modelwatch_mixin::variables::substitute`]), so tests send what the page and
/// Grafana send. Panics on a variable without a value, so that a dashboard using a
/// new variable fails the test instead of sending `$it` to Prometheus.
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
    modelwatch_mixin::variables::substitute(query, variables).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "no value for the dashboard variable $cluster")]
    fn an_unknown_variable_fails() {
        substitute(r#"x{cluster="$cluster"}"#, &[("model", "fraud")]);
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
