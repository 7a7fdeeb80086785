//! Every generated query parses, and every metric it names is declared: in the
//! schema, in the recording rules, or on the allow-list of other exporters.

use crate::support::mixin_dir;
use modelwatch_mixin::names::external;
use modelwatch_mixin::recording::recording_rules;
use modelwatch_mixin::rules::Rule;
use modelwatch_mixin::{MixinConfig, alerts::alerting_rules};
use modelwatch_testkit::dashboard::{queries as dashboard_queries, substitute};
use promql_parser::parser::{self, Expr};
use std::collections::BTreeSet;

/// Grafana's variables and the values the tests give them.
pub const VARIABLES: &[(&str, &str)] = &[
    ("__rate_interval", "1m"),
    ("__interval", "1m"),
    ("__range", "1h"),
    ("model", "fraud"),
    ("version", "3"),
];

/// Metric names a parsed query selects.
fn metric_names(expr: &Expr, out: &mut BTreeSet<String>) {
    match expr {
        Expr::Aggregate(a) => {
            metric_names(&a.expr, out);
            if let Some(p) = &a.param {
                metric_names(p, out);
            }
        }
        Expr::Unary(u) => metric_names(&u.expr, out),
        Expr::Binary(b) => {
            metric_names(&b.lhs, out);
            metric_names(&b.rhs, out);
        }
        Expr::Paren(p) => metric_names(&p.expr, out),
        Expr::Subquery(s) => metric_names(&s.expr, out),
        Expr::VectorSelector(v) => {
            out.insert(v.name.clone().expect("every selector names its metric"));
        }
        Expr::MatrixSelector(m) => {
            out.insert(m.vs.name.clone().expect("every selector names its metric"));
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| metric_names(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The names a query may use.
fn declared(config: &MixinConfig) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = modelwatch::schema::ALL
        .iter()
        .flat_map(|d| d.series_names())
        .collect();
    for group in recording_rules(config) {
        for rule in group.rules {
            if let Rule::Record(r) = rule {
                names.insert(r.record.to_string());
            }
        }
    }
    names.extend(external::ALLOWED.iter().map(|s| s.to_string()));
    names
}

/// Parses `query` and checks its metric names; returns the names.
#[track_caller]
pub fn check_query(origin: &str, query: &str, declared: &BTreeSet<String>) -> BTreeSet<String> {
    let text = substitute(query, VARIABLES);
    let expr =
        parser::parse(&text).unwrap_or_else(|e| panic!("{origin}: does not parse: {e}\n{text}"));
    let mut names = BTreeSet::new();
    metric_names(&expr, &mut names);
    for name in &names {
        assert!(
            declared.contains(name),
            "{origin}: {name} is neither in modelwatch::schema, a recording rule, nor on the allow-list\n{text}"
        );
    }
    names
}

pub fn committed_dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(mixin_dir().join(modelwatch_mixin::DASHBOARD_PATH))
        .expect("the dashboard is committed");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

fn rule_queries(config: &MixinConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for group in recording_rules(config)
        .into_iter()
        .chain(alerting_rules(config))
    {
        for rule in &group.rules {
            let name = match rule {
                Rule::Record(r) => r.record.to_string(),
                Rule::Alert(a) => a.alert.to_string(),
            };
            out.push((format!("{} / {name}", group.name), rule.expr().to_string()));
        }
    }
    out
}

#[test]
fn rule_and_alert_queries_parse_and_use_declared_metrics() {
    for config in [MixinConfig::default(), crate::support::scaled_config()] {
        let declared = declared(&config);
        let mut used = BTreeSet::new();
        for (origin, expr) in rule_queries(&config) {
            used.extend(check_query(&origin, &expr, &declared));
        }
        // The rules read the families they are about.
        for def in [
            &modelwatch::schema::REQUESTS_TOTAL,
            &modelwatch::schema::SCORE_BIN_TOTAL,
            &modelwatch::schema::REFERENCE_FEATURE_RATIO,
            &modelwatch::schema::FEATURE_AGE_SECONDS,
        ] {
            assert!(used.contains(def.name), "no rule reads {}", def.name);
        }
    }
}

#[test]
fn dashboard_queries_parse_and_use_declared_metrics() {
    let declared = declared(&MixinConfig::default());
    let dashboard = committed_dashboard();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() > 20, "{} queries", queries.len());
    for (title, expr) in &queries {
        check_query(&format!("panel {title:?}"), expr, &declared);
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if variable["type"] == "query" {
            let query = variable["query"]["query"].as_str().expect("a query");
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(selector, _)| selector)
                .expect("label_values(selector, label)");
            check_query(&format!("variable {}", variable["name"]), inner, &declared);
        }
    }
}

#[test]
fn runbook_queries_parse_and_use_declared_metrics() {
    let declared = declared(&MixinConfig::default());
    let runbook = std::fs::read_to_string(mixin_dir().join(modelwatch_mixin::RUNBOOK_PATH))
        .expect("the runbook is committed");
    let blocks: Vec<&str> = runbook
        .split("```promql\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or_default())
        .collect();
    assert!(blocks.len() >= 13, "{} queries", blocks.len());
    for block in blocks {
        check_query("runbook", block.trim(), &declared);
    }
}

/// A metric name is spelled only in modelwatch::schema: this crate's code refers to
/// the constants.
#[test]
fn no_schema_metric_name_is_spelled_in_the_generator() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let names: Vec<String> = modelwatch::schema::ALL
        .iter()
        .flat_map(|d| d.series_names())
        .collect();
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    for entry in std::fs::read_dir(&src).expect("src/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("source");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in code.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for name in &names {
                for (at, _) in line.match_indices(name.as_str()) {
                    let before = line[..at].chars().next_back();
                    let after = line[at + name.len()..].chars().next();
                    assert!(
                        before.is_some_and(is_name_char) || after.is_some_and(is_name_char),
                        "{}:{}: spells {name}; use the modelwatch::schema constant",
                        path.display(),
                        number + 1
                    );
                }
            }
        }
    }
}
