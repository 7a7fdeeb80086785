//! Module implementing the typed rule files. See [`RuleGroup`] for details.

use crate::config::PromDuration;
use crate::yaml::Yaml;

/// One rule group: rules evaluated in order, so a rule may use the series recorded
/// by the rules before it at the same evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    /// The group name, unique in a file.
    pub name: String,
    /// The rules in evaluation order.
    pub rules: Vec<Rule>,
}

/// A recording or an alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Records the result of `expr` under a new name.
    Record(RecordingRule),
    /// Fires when `expr` returns series for `for`.
    Alert(AlertingRule),
}

/// A recording rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingRule {
    /// The recorded series name, one of [`crate::names::record`].
    pub record: &'static str,
    /// The PromQL expression.
    pub expr: String,
    /// Labels added to every recorded series.
    pub labels: Vec<(String, String)>,
}

/// An alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertingRule {
    /// The alert name, one of [`crate::names::alert`].
    pub alert: &'static str,
    /// The PromQL condition.
    pub expr: String,
    /// How long the condition must hold before the alert fires.
    pub for_: PromDuration,
    /// Labels: `severity` first, then any that tell variants apart.
    pub labels: Vec<(String, String)>,
    /// `summary`, `description` and `runbook_url`, in that order.
    pub annotations: Vec<(String, String)>,
}

impl AlertingRule {
    /// The value of a label, if set.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of an annotation, if set.
    pub fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Rule {
    /// The PromQL expression.
    pub fn expr(&self) -> &str {
        match self {
            Rule::Record(r) => &r.expr,
            Rule::Alert(a) => &a.expr,
        }
    }
}

/// The rule file text of `groups`.
pub fn rule_file(groups: &[RuleGroup]) -> String {
    let groups = groups
        .iter()
        .map(|g| {
            Yaml::map([
                ("name", Yaml::str(&g.name)),
                ("rules", Yaml::List(g.rules.iter().map(rule_yaml).collect())),
            ])
        })
        .collect();
    Yaml::map([("groups", Yaml::List(groups))]).to_document()
}

fn rule_yaml(rule: &Rule) -> Yaml {
    match rule {
        Rule::Record(r) => {
            let mut entries = vec![
                ("record", Yaml::plain(r.record)),
                ("expr", Yaml::Block(r.expr.clone())),
            ];
            if !r.labels.is_empty() {
                entries.push(("labels", Yaml::string_map(&r.labels)));
            }
            Yaml::map(entries)
        }
        Rule::Alert(a) => Yaml::map([
            ("alert", Yaml::plain(a.alert)),
            ("expr", Yaml::Block(a.expr.clone())),
            ("for", Yaml::plain(a.for_)),
            ("labels", Yaml::string_map(&a.labels)),
            ("annotations", Yaml::string_map(&a.annotations)),
        ]),
    }
}
