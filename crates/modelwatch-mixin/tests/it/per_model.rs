//! Every rule keeps the `model` label (issue 12): with two models served side by side,
//! a recording rule records one series per model and an alert fires for the model that
//! is unhealthy, never for "all models" at once. The live fleet test
//! (crates/modelwatch-cli/tests/fleet.rs) checks the recorded series with a real
//! Prometheus; this checks every expression's aggregations, so a rule added later that
//! sums the models together fails here, before any Prometheus runs.

use modelwatch_mixin::MixinConfig;
use modelwatch_mixin::alerts::alerting_rules;
use modelwatch_mixin::recording::recording_rules;
use modelwatch_mixin::rules::Rule;

const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];

/// The label list of a `by (...)` or `without (...)` clause at the start of `rest`.
fn grouping(rest: &str) -> Option<(&'static str, Vec<String>)> {
    let rest = rest.trim_start();
    for keyword in ["by", "without"] {
        if let Some(after) = rest.strip_prefix(keyword) {
            let after = after.trim_start();
            if let Some(list) = after.strip_prefix('(') {
                let end = list.find(')')?;
                let labels = list[..end]
                    .split(',')
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect();
                return Some((keyword, labels));
            }
        }
    }
    None
}

/// The index just past the parenthesis that closes the one at `open`.
fn closing(expr: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in expr[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Every aggregation of `expr` that drops the `model` label, as text.
fn model_dropping_aggregations(expr: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = expr.as_bytes();
    for op in AGGREGATIONS {
        let mut from = 0;
        while let Some(at) = expr[from..].find(op).map(|i| from + i) {
            from = at + op.len();
            // A whole word: not `sum_over_time`, not a metric name's part.
            // A whole word: not `sum_over_time`, not part of a metric name such as
            // `level:metric:max`.
            let before_ok = at == 0
                || !(bytes[at - 1].is_ascii_alphanumeric() || b"_:".contains(&bytes[at - 1]));
            let after = &expr[from..];
            let next = after.trim_start();
            let word_end = after
                .chars()
                .next()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
            if !before_ok || !word_end {
                continue;
            }
            // `op by (...) (...)`, or `op (...) by (...)`.
            let clause = grouping(after).or_else(|| {
                let open = from + (after.len() - next.len());
                if !next.starts_with('(') {
                    return None;
                }
                closing(expr, open).and_then(|end| grouping(&expr[end..]))
            });
            let keeps_model = match &clause {
                Some(("by", labels)) => labels.iter().any(|l| l == "model"),
                Some((_, labels)) => !labels.iter().any(|l| l == "model"),
                None => false,
            };
            if !keeps_model {
                let end = (at + 60).min(expr.len());
                found.push(expr[at..end].to_string());
            }
        }
    }
    found
}

#[test]
fn the_check_sees_an_aggregation_that_sums_the_models_together() {
    assert!(model_dropping_aggregations("sum by (model) (rate(x[5m]))").is_empty());
    assert!(model_dropping_aggregations("sum(rate(x[5m])) by (model, version)").is_empty());
    assert!(model_dropping_aggregations("max without (instance) (x)").is_empty());
    assert!(model_dropping_aggregations("sum_over_time(x[5m])").is_empty());
    assert!(model_dropping_aggregations("a:b:max{g=\"t\"} > 300").is_empty());
    assert_eq!(model_dropping_aggregations("sum(rate(x[5m]))").len(), 1);
    assert_eq!(model_dropping_aggregations("sum by (bin) (x)").len(), 1);
    assert_eq!(
        model_dropping_aggregations("max(x) without (model)").len(),
        1
    );
}

#[test]
fn every_rule_and_alert_keeps_the_model_label() {
    let config = MixinConfig::default();
    let mut offenders = Vec::new();
    let mut checked = 0;
    for group in recording_rules(&config)
        .into_iter()
        .chain(alerting_rules(&config))
    {
        for rule in group.rules {
            let (name, expr) = match &rule {
                Rule::Record(r) => (r.record, r.expr.clone()),
                Rule::Alert(a) => (a.alert, a.expr.clone()),
            };
            checked += 1;
            for aggregation in model_dropping_aggregations(&expr) {
                offenders.push(format!("{name}: {aggregation}"));
            }
        }
    }
    assert!(checked > 30, "only {checked} rules checked");
    assert!(
        offenders.is_empty(),
        "aggregations that drop the model label:\n{}",
        offenders.join("\n")
    );
}
