//! Module implementing the promtool unit tests (`tests/*-test.yaml`). See
//! [`test_files`] for details.
//!
//! The tests are generated from the same config and rules as the mixin, so a
//! threshold change moves the tests with it. For every alert rule, a scenario feeds
//! series that make its condition true from a known evaluation `t1` on, then
//! asserts that nothing fires one step before `t1 + for` (the alert is pending) and
//! that the alert fires at `t1 + for` with its exact labels and annotations. The
//! expected annotations are the rule's templates rendered here with the scenario's
//! labels and value. Value tests check the drift rules against
//! `modelwatch::drift::{psi, jensen_shannon}` computed in Rust from the same inputs.
//!
//! Scenario inputs are counters that grow by a fixed amount per step from 0, so a
//! rate is defined from the second sample (`t1` = one step) and ratios of rates are
//! exact; gauges are constant, so their conditions hold from `t1` = 0.

use crate::alerts::{BURN_RATES, BurnRate, Slo};
use crate::config::{MixinConfig, PromDuration, ThresholdMode};
use crate::names::{alert, external, record};
use crate::noise;
use crate::promql::{num, quote};
use crate::rules::{AlertingRule, Rule, RuleGroup};
use crate::yaml::Yaml;
use crate::{ALERTS_PATH, ConfigError, Error, RULES_PATH};
use modelwatch::drift::{self, ReferenceBins};
use modelwatch::labels::NO_DECISION;
use modelwatch::schema::{self, label};
use modelwatch::{CacheOperation, Status, StoreErrorKind};

/// The model every scenario uses.
pub const MODEL: &str = "fraud";
/// Its version.
pub const VERSION: &str = "3";
/// The two replicas every fleet scenario spreads its series over.
pub const REPLICAS: [&str; 2] = ["replica-a:9464", "replica-b:9464"];

/// Labels in order, as `(name, value)`.
type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// One `tests:` entry: input series and what to assert.
#[derive(Debug)]
struct TestGroup {
    name: String,
    interval: u64,
    series: Vec<(String, String)>,
    alerts: Vec<AlertTest>,
    exprs: Vec<ExprTest>,
}

#[derive(Debug)]
struct AlertTest {
    at: u64,
    alertname: &'static str,
    expected: Vec<Labels>,
    annotations: Vec<Labels>,
}

#[derive(Debug)]
struct ExprTest {
    expr: String,
    at: u64,
    samples: Vec<(String, String)>,
}

/// What a scenario builder needs: the config, the alert rules, the selector's
/// labels and the evaluation step.
struct Ctx<'a> {
    config: &'a MixinConfig,
    /// Every rule group, recording groups first: promtool evaluates groups in an
    /// unspecified order unless told, and alerts read the recorded series.
    group_order: Vec<String>,
    alerts: Vec<&'a AlertingRule>,
    /// `name="value"` matchers of the selector, put on every input series.
    selector: Labels,
    step: u64,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Parses the equality matchers of a selector such as `job="modelwatch", ns="x"`.
fn selector_labels(selector: &str) -> Result<Labels, ConfigError> {
    let bad = || ConfigError {
        field: "selector".into(),
        reason: "promtool tests need equality matchers only (name=\"value\", ...)".into(),
    };
    let mut out = Vec::new();
    let mut rest = selector.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=').ok_or_else(bad)?;
        let name = name.trim();
        let after = after.trim_start();
        if name.is_empty() || name.ends_with('!') || after.starts_with('~') {
            return Err(bad());
        }
        let after = after.strip_prefix('"').ok_or_else(bad)?;
        let (value, tail) = after.split_once('"').ok_or_else(bad)?;
        if value.contains('\\') {
            return Err(bad());
        }
        out.push((name.to_string(), value.to_string()));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Ok(out)
}

impl<'a> Ctx<'a> {
    /// The rules named `name`.
    fn rules(&self, name: &str) -> Vec<&'a AlertingRule> {
        self.alerts
            .iter()
            .copied()
            .filter(|a| a.alert == name)
            .collect()
    }

    fn rule(&self, name: &str) -> &'a AlertingRule {
        match self.rules(name).first() {
            Some(rule) => rule,
            None => panic!("no alert named {name}"),
        }
    }

    /// A series text with the selector's labels, `instance` and `extra`.
    fn series(&self, name: &str, instance: Option<&str>, extra: &[(&str, &str)]) -> String {
        let mut all: Vec<String> = self
            .selector
            .iter()
            .map(|(k, v)| format!("{k}={}", quote(v)))
            .collect();
        if let Some(instance) = instance {
            all.push(format!("instance={}", quote(instance)));
        }
        all.extend(extra.iter().map(|(k, v)| format!("{k}={}", quote(v))));
        format!("{name}{{{}}}", all.join(", "))
    }
}

/// `0+<per_step>x<steps>`: a counter from 0.
fn counter(per_step: u64, steps: u64) -> String {
    format!("0+{per_step}x{steps}")
}

/// `0+<per_step>x<steps>` with a fractional step, for windows of few events.
fn scaled_counter(per_step: f64, steps: u64) -> String {
    format!("0+{}x{steps}", num(per_step))
}

/// `<value>x<steps>`: a constant gauge.
fn gauge(value: f64, steps: u64) -> String {
    format!("{}x{steps}", num(value))
}

/// The alert's labels: the rule's, then the series labels, with `alertname`.
fn alert_labels(rule: &AlertingRule, series: &[(&str, &str)]) -> Labels {
    let mut out = labels(&[("alertname", rule.alert)]);
    out.extend(rule.labels.iter().cloned());
    out.extend(labels(series));
    out
}

/// The rule's annotations rendered for a series with `series` labels and `value`.
fn rendered(rule: &AlertingRule, series: &[(&str, &str)], value: f64) -> Result<Labels, Error> {
    rule.annotations
        .iter()
        .map(|(k, v)| Ok((k.clone(), render(v, series, value)?)))
        .collect()
}

/// A pending-then-firing pair of alert tests for `rule`: nothing fires one step
/// before `t1 + for`, and exactly `firing` fires at it.
fn boundary(
    ctx: &Ctx<'_>,
    rule: &AlertingRule,
    t1: u64,
    firing: Vec<(Labels, Labels)>,
) -> [AlertTest; 2] {
    let at = t1 + rule.for_.as_secs();
    let (expected, annotations) = firing.into_iter().unzip();
    [
        AlertTest {
            at: at - ctx.step,
            alertname: rule.alert,
            expected: Vec::new(),
            annotations: Vec::new(),
        },
        AlertTest {
            at,
            alertname: rule.alert,
            expected,
            annotations,
        },
    ]
}

/// `abs(<expr> - <expected>) < bool 1e-9` returns 1 for the given labels.
fn close_to(expr: &str, expected: f64, at: u64, series: &[(&str, &str)]) -> ExprTest {
    let text: Vec<String> = series
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect();
    ExprTest {
        expr: format!("abs({expr} - {expected:e}) < bool 1e-9"),
        at,
        samples: vec![(format!("{{{}}}", text.join(", ")), "1".into())],
    }
}

/// The promtool test files as `(file name, text)`.
pub fn test_files(
    config: &MixinConfig,
    recording: &[RuleGroup],
    alerting: &[RuleGroup],
) -> Result<Vec<(String, String)>, Error> {
    let alerts: Vec<&AlertingRule> = alerting
        .iter()
        .flat_map(|g| &g.rules)
        .filter_map(|r| match r {
            Rule::Alert(a) => Some(a),
            Rule::Record(_) => None,
        })
        .collect();
    // One step divides every `for:`, so the boundary falls on an evaluation.
    let step = alerts.iter().fold(60, |acc, a| gcd(acc, a.for_.as_secs()));
    let shortest_window = config.scaled(PromDuration::from_secs(300)).as_secs();
    if step > shortest_window {
        return Err(ConfigError {
            field: "time_scale".into(),
            reason: format!(
                "the 5m window scales to {shortest_window}s, shorter than the {step}s test step"
            ),
        }
        .into());
    }
    let group_order = recording
        .iter()
        .chain(alerting)
        .map(|g| g.name.clone())
        .collect();
    let ctx = Ctx {
        config,
        group_order,
        alerts,
        selector: selector_labels(&config.selector)?,
        step,
    };
    let mut files = Vec::new();
    let mut slo = Vec::new();
    for kind in [Slo::Availability, Slo::Latency] {
        for (i, rate) in BURN_RATES.iter().enumerate() {
            slo.push(burn_scenario(&ctx, kind, i, rate)?);
        }
    }
    files.push(("slo-test.yaml".to_string(), test_file(&ctx, &slo)));
    let mut model = Vec::new();
    for d in [Distribution::Score, Distribution::Feature] {
        model.push(drift_scenario(&ctx, d, false)?);
        model.push(drift_scenario(&ctx, d, true)?);
        model.push(drift_value_scenario(&ctx, d));
        model.push(drift_small_window_scenario(&ctx, d)?);
        model.extend(drift_noise_margin_scenario(&ctx, d)?);
    }
    files.push(("drift-test.yaml".to_string(), test_file(&ctx, &model)));
    // The approval test spans the comparison offset (a week by default): a coarser
    // step keeps promtool's evaluations few.
    let approval = ctx.rule(alert::APPROVAL_RATIO_SHIFT).for_.as_secs();
    let approval_ctx = Ctx {
        step: gcd(
            gcd(approval, config.scaled(config.drift.window).as_secs() / 2),
            config.scaled(config.drift.comparison_offset).as_secs(),
        )
        .max(1),
        ..ctx
    };
    // The scenario changes the approval ratio once and needs the comparison window
    // to stay before the change while the alert's `for:` elapses.
    let window = config.scaled(config.drift.window).as_secs();
    let offset = config.scaled(config.drift.comparison_offset).as_secs();
    let approval_file = if offset >= window + approval + approval_ctx.step {
        test_file(
            &approval_ctx,
            &[
                approval_scenario(&approval_ctx, Approval::Full)?,
                approval_scenario(&approval_ctx, Approval::Few)?,
            ],
        )
    } else {
        format!(
            "# No approval shift test for this config: it needs drift.comparison_offset\n\
             # ({offset}s scaled) to be at least drift.window plus alert_for.approval_shift\n\
             # ({}s scaled).\n{}",
            window + approval + approval_ctx.step,
            test_file(&approval_ctx, &[])
        )
    };
    files.push(("approval-test.yaml".to_string(), approval_file));
    let ctx = Ctx {
        step,
        ..approval_ctx
    };
    let mut features = stale_scenarios(&ctx)?;
    features.push(missing_scenario(&ctx)?);
    features.push(cache_scenario(&ctx, false)?);
    features.push(cache_scenario(&ctx, true)?);
    files.push(("features-test.yaml".to_string(), test_file(&ctx, &features)));
    let serving = vec![
        store_failing_scenario(&ctx)?,
        no_traffic_scenario(&ctx)?,
        target_down_scenario(&ctx)?,
        version_skew_scenario(&ctx)?,
        observations_dropped_scenario(&ctx)?,
    ];
    files.push(("serving-test.yaml".to_string(), test_file(&ctx, &serving)));
    files.push((
        "ground-truth-test.yaml".to_string(),
        test_file(&ctx, &ground_truth_scenarios(&ctx)?),
    ));
    Ok(files)
}

fn test_file(ctx: &Ctx<'_>, groups: &[TestGroup]) -> String {
    let step = ctx.step;
    let d = |secs: u64| Yaml::plain(PromDuration::from_secs(secs).to_string_or_zero());
    let tests = groups
        .iter()
        .map(|g| {
            let series = g
                .series
                .iter()
                .map(|(s, v)| Yaml::map([("series", Yaml::str(s)), ("values", Yaml::str(v))]))
                .collect();
            let mut entries = vec![
                ("name", Yaml::str(&g.name)),
                ("interval", d(g.interval)),
                ("input_series", Yaml::List(series)),
            ];
            if !g.alerts.is_empty() {
                let tests = g
                    .alerts
                    .iter()
                    .map(|t| {
                        let expected = t
                            .expected
                            .iter()
                            .zip(&t.annotations)
                            .map(|(l, a)| {
                                Yaml::map([
                                    ("exp_labels", Yaml::string_map(l)),
                                    ("exp_annotations", Yaml::string_map(a)),
                                ])
                            })
                            .collect();
                        Yaml::map([
                            ("eval_time", d(t.at)),
                            ("alertname", Yaml::plain(t.alertname)),
                            ("exp_alerts", Yaml::List(expected)),
                        ])
                    })
                    .collect();
                entries.push(("alert_rule_test", Yaml::List(tests)));
            }
            if !g.exprs.is_empty() {
                let tests = g
                    .exprs
                    .iter()
                    .map(|t| {
                        let samples = t
                            .samples
                            .iter()
                            .map(|(l, v)| {
                                Yaml::map([("labels", Yaml::str(l)), ("value", Yaml::plain(v))])
                            })
                            .collect();
                        Yaml::map([
                            ("expr", Yaml::Block(t.expr.clone())),
                            ("eval_time", d(t.at)),
                            ("exp_samples", Yaml::List(samples)),
                        ])
                    })
                    .collect();
                entries.push(("promql_expr_test", Yaml::List(tests)));
            }
            Yaml::map(entries)
        })
        .collect();
    Yaml::map([
        (
            "rule_files",
            Yaml::List(vec![
                Yaml::str(format!("../{RULES_PATH}")),
                Yaml::str(format!("../{ALERTS_PATH}")),
            ]),
        ),
        ("evaluation_interval", d(step)),
        (
            "group_eval_order",
            Yaml::List(ctx.group_order.iter().map(Yaml::str).collect()),
        ),
        ("tests", Yaml::List(tests)),
    ])
    .to_document()
}

impl PromDuration {
    /// Like `Display`, but `0s` for zero (an evaluation time).
    fn to_string_or_zero(self) -> String {
        if self.as_secs() == 0 {
            "0s".into()
        } else {
            self.to_string()
        }
    }
}

/// Number of steps of input to cover `until` seconds, with one spare.
fn steps(ctx: &Ctx<'_>, until: u64) -> u64 {
    until / ctx.step + 1
}

fn burn_scenario(
    ctx: &Ctx<'_>,
    kind: Slo,
    index: usize,
    rate: &BurnRate,
) -> Result<TestGroup, Error> {
    let config = ctx.config;
    let budget = kind.budget(config);
    // Between this variant's threshold and the next faster one's, so only variants
    // at or below this factor hold.
    let margin = match index.checked_sub(1).map(|i| BURN_RATES[i].factor) {
        Some(faster) => (faster / rate.factor).sqrt().min(1.5),
        None => 1.5,
    };
    const VALID: u64 = 100_000;
    let bad = (rate.factor * budget * margin * VALID as f64).round() as u64;
    let ratio = bad as f64 / VALID as f64;
    let long = PromDuration::from_secs(rate.long).to_string();
    let rules = ctx.rules(kind.alert());
    let variant = |r: &BurnRate| {
        let long = config.scaled(PromDuration::from_secs(r.long)).to_string();
        rules
            .iter()
            .copied()
            .find(|a| a.label("long_window") == Some(long.as_str()))
    };
    let Some(rule) = variant(rate) else {
        panic!("no {} rule for {long}", kind.alert());
    };
    let t1 = ctx.step;
    let at = t1 + rule.for_.as_secs();
    let n = steps(ctx, at);
    let series_labels = [(label::MODEL, MODEL), (label::VERSION, VERSION)];
    // Every variant whose threshold this ratio passes and whose `for:` has elapsed
    // by `time`: usually only this one, at `at`.
    let firing_at = |time: u64| -> Result<AlertTest, Error> {
        let mut expected = Vec::new();
        let mut annotations = Vec::new();
        for other in &BURN_RATES {
            let Some(other_rule) = variant(other) else {
                continue;
            };
            if ratio > other.factor * budget && t1 + other_rule.for_.as_secs() <= time {
                expected.push(alert_labels(other_rule, &series_labels));
                annotations.push(rendered(other_rule, &series_labels, ratio)?);
            }
        }
        Ok(AlertTest {
            at: time,
            alertname: rule.alert,
            expected,
            annotations,
        })
    };
    let alerts = vec![firing_at(at - ctx.step)?, firing_at(at)?];
    let mut series = Vec::new();
    let mut exprs = Vec::new();
    match kind {
        Slo::Availability => {
            let requests = |status: Status, decision: &str, per_step: u64| {
                (
                    ctx.series(
                        schema::REQUESTS_TOTAL.name,
                        Some(REPLICAS[0]),
                        &[
                            (label::MODEL, MODEL),
                            (label::VERSION, VERSION),
                            (label::STATUS, status.as_str()),
                            (label::DECISION, decision),
                        ],
                    ),
                    counter(per_step, n),
                )
            };
            series.push(requests(Status::Success, APPROVED, VALID - bad));
            series.push(requests(Status::Error, NO_DECISION, bad));
            // Rejected and cancelled requests are the client's doing: however many,
            // they must not dilute the error ratio.
            series.push(requests(Status::Rejected, NO_DECISION, VALID));
            series.push(requests(Status::Cancelled, NO_DECISION, VALID));
            if index == 0 {
                exprs.push(close_to(
                    record::burn_window(300).errors,
                    ratio,
                    at,
                    &series_labels,
                ));
            }
        }
        Slo::Latency => {
            let threshold = format!("{}", config.slo.latency_threshold_seconds);
            let name = |suffix: &str| format!("{}{suffix}", schema::REQUEST_DURATION_SECONDS.name);
            let base = [(label::MODEL, MODEL), (label::VERSION, VERSION)];
            let bucket = |le: &str| {
                let mut l = base.to_vec();
                l.push(("le", le));
                ctx.series(&name("_bucket"), Some(REPLICAS[0]), &l)
            };
            series.push((bucket(&threshold), counter(VALID - bad, n)));
            series.push((bucket("+Inf"), counter(VALID, n)));
            series.push((
                ctx.series(&name("_count"), Some(REPLICAS[0]), &base),
                counter(VALID, n),
            ));
            if index == 0 {
                exprs.push(close_to(
                    record::burn_window(300).slow,
                    ratio,
                    at,
                    &series_labels,
                ));
            }
        }
    }
    Ok(TestGroup {
        name: format!(
            "{}: {}x burn over {} and {} fires after its for",
            kind.alert(),
            num(rate.factor),
            rule.label("long_window").unwrap_or_default(),
            rule.label("short_window").unwrap_or_default()
        ),
        interval: ctx.step,
        series,
        alerts,
        exprs,
    })
}

/// The score or the features: the two binned distributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Distribution {
    Score,
    Feature,
}

/// The feature the feature scenarios drift.
/// The test model's decision names: the bundled fraud model's.
const APPROVED: &str = "approved";
const DECLINED: &str = "declined";
const FEATURE: &str = "amount";

impl Distribution {
    /// The reference these scenarios use.
    fn reference(self) -> ReferenceBins {
        match self {
            Distribution::Score => ReferenceBins {
                edges: vec![0.1, 0.3, 0.5],
                ratios: vec![0.4, 0.3, 0.2, 0.1],
                min: 0.0,
                max: 1.0,
            },
            Distribution::Feature => ReferenceBins {
                edges: vec![10.0, 50.0, 200.0],
                ratios: vec![0.25, 0.4, 0.25, 0.1],
                min: 0.0,
                max: 5000.0,
            },
        }
    }

    /// The labels that identify the distribution, `bin` excluded.
    fn keys(self) -> [(&'static str, &'static str); 2] {
        match self {
            Distribution::Score => [(label::MODEL, MODEL), (label::VERSION, VERSION)],
            Distribution::Feature => [(label::MODEL, MODEL), (label::FEATURE, FEATURE)],
        }
    }

    fn counter(self) -> &'static str {
        match self {
            Distribution::Score => schema::SCORE_BIN_TOTAL.name,
            Distribution::Feature => schema::FEATURE_BIN_TOTAL.name,
        }
    }

    fn reference_gauge(self) -> &'static str {
        match self {
            Distribution::Score => schema::REFERENCE_SCORE_RATIO.name,
            Distribution::Feature => schema::REFERENCE_FEATURE_RATIO.name,
        }
    }

    fn alert(self, critical: bool) -> &'static str {
        match (self, critical) {
            (Distribution::Score, false) => alert::SCORE_DRIFT_WARNING,
            (Distribution::Score, true) => alert::SCORE_DRIFT_CRITICAL,
            (Distribution::Feature, false) => alert::FEATURE_DRIFT_WARNING,
            (Distribution::Feature, true) => alert::FEATURE_DRIFT_CRITICAL,
        }
    }

    fn records(self) -> [&'static str; 3] {
        match self {
            Distribution::Score => [
                record::SCORE_PSI,
                record::SCORE_JENSEN_SHANNON,
                record::SCORE_TOTAL_VARIATION,
            ],
            Distribution::Feature => [
                record::FEATURE_PSI,
                record::FEATURE_JENSEN_SHANNON,
                record::FEATURE_TOTAL_VARIATION,
            ],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Distribution::Score => "score",
            Distribution::Feature => "feature",
        }
    }
}

fn fractions(counts: &[u64]) -> Vec<f64> {
    let mut p = vec![0.0; counts.len()];
    drift::fractions(counts, &mut p);
    p
}

fn total_variation(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

/// Per-step bin counts whose PSI against `reference` first reaches `target` as mass
/// moves into the first bin.
fn counts_reaching(reference: &ReferenceBins, target: f64) -> Option<Vec<u64>> {
    (0..=1000).find_map(|k| {
        let lambda = f64::from(k) / 1000.0;
        let counts: Vec<u64> = reference
            .ratios
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let first = if i == 0 { lambda } else { 0.0 };
                (1000.0 * ((1.0 - lambda) * q + first)).round() as u64
            })
            .collect();
        (drift::psi(&fractions(&counts), &reference.ratios) >= target).then_some(counts)
    })
}

/// The input series of a binned distribution spread over two replicas: per-step
/// `counts`, and the reference gauges that every replica exports.
fn binned_series(
    ctx: &Ctx<'_>,
    d: Distribution,
    counts: &[u64],
    scale: f64,
    n: u64,
) -> Vec<(String, String)> {
    let reference = d.reference();
    let keys = d.keys();
    let mut series = Vec::new();
    for ((bin, count), ratio) in reference
        .bin_labels()
        .iter()
        .zip(counts)
        .zip(&reference.ratios)
    {
        let mut l = keys.to_vec();
        l.push((label::BIN, bin));
        // Split unevenly, so only a fleet sum gives the right fractions.
        let a = count - count / 3;
        for (replica, per_step) in REPLICAS.iter().zip([a, count / 3]) {
            series.push((
                ctx.series(d.counter(), Some(replica), &l),
                scaled_counter(per_step as f64 * scale, n),
            ));
            series.push((
                ctx.series(d.reference_gauge(), Some(replica), &l),
                gauge(*ratio, n),
            ));
        }
    }
    series
}

fn drift_scenario(ctx: &Ctx<'_>, d: Distribution, critical: bool) -> Result<TestGroup, Error> {
    let config = ctx.config;
    let (warning, crit) = (config.drift.psi_warning, config.drift.psi_critical);
    let target = if critical {
        1.5 * crit
    } else {
        0.5 * (warning + crit)
    };
    let reference = d.reference();
    let Some(counts) = counts_reaching(&reference, target) else {
        return Err(ConfigError {
            field: "drift.psi_critical".into(),
            reason: format!("no test input reaches a PSI of {target}"),
        }
        .into());
    };
    let p = fractions(&counts);
    let psi = drift::psi(&p, &reference.ratios);
    let rule = ctx.rule(d.alert(critical));
    let t1 = ctx.step;
    let at = t1 + rule.for_.as_secs();
    let keys = d.keys();
    let firing = vec![(alert_labels(rule, &keys), rendered(rule, &keys, psi)?)];
    Ok(TestGroup {
        name: format!(
            "{}: {} PSI {:.3} across two replicas",
            rule.alert,
            d.name(),
            psi
        ),
        interval: ctx.step,
        series: binned_series(ctx, d, &counts, 1.0, steps(ctx, at)),
        alerts: boundary(ctx, rule, t1, firing).into(),
        exprs: vec![close_to(d.records()[0], psi, at, &keys)],
    })
}

/// The critical drift input over a window of about half `drift.min_count`
/// predictions: the PSI is far past both thresholds (and their noise margins), yet
/// neither drift alert fires, long after their `for:`.
fn drift_small_window_scenario(ctx: &Ctx<'_>, d: Distribution) -> Result<TestGroup, Error> {
    let config = ctx.config;
    let target = 1.5 * config.drift.psi_critical;
    let reference = d.reference();
    let Some(counts) = counts_reaching(&reference, target) else {
        return Err(ConfigError {
            field: "drift.psi_critical".into(),
            reason: format!("no test input reaches a PSI of {target}"),
        }
        .into());
    };
    let p = fractions(&counts);
    let psi = drift::psi(&p, &reference.ratios);
    let per_step: u64 = counts.iter().sum();
    let window_steps = config.scaled(config.drift.window).as_secs() / ctx.step;
    let scale = config.drift.min_count as f64 / (2.0 * per_step as f64 * (window_steps + 1) as f64);
    let (warning, critical) = (ctx.rule(d.alert(false)), ctx.rule(d.alert(true)));
    let at = 2 * (ctx.step + warning.for_.as_secs().max(critical.for_.as_secs()));
    let keys = d.keys();
    let count = match d {
        Distribution::Score => record::SCORE_COUNT,
        Distribution::Feature => record::FEATURE_COUNT,
    };
    let quiet = |rule: &AlertingRule| AlertTest {
        at,
        alertname: rule.alert,
        expected: Vec::new(),
        annotations: Vec::new(),
    };
    let text: Vec<String> = keys
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect();
    Ok(TestGroup {
        name: format!(
            "{} drift: PSI {psi:.3} over fewer than {} predictions fires nothing",
            d.name(),
            config.drift.min_count
        ),
        interval: ctx.step,
        series: binned_series(ctx, d, &counts, scale, steps(ctx, at)),
        alerts: vec![quiet(warning), quiet(critical)],
        exprs: vec![
            close_to(d.records()[0], psi, at, &keys),
            ExprTest {
                expr: format!("{count} < bool {}", config.drift.min_count),
                at,
                samples: vec![(format!("{{{}}}", text.join(", ")), "1".into())],
            },
        ],
    })
}

/// In noise mode: a PSI past the warning threshold but short of the threshold plus
/// `noise_k` times `(B - 1) / N`, over a full window of somewhat more than
/// `drift.min_count` predictions, fires nothing; the recorded count and noise level
/// are the expected ones.
fn drift_noise_margin_scenario(ctx: &Ctx<'_>, d: Distribution) -> Result<Option<TestGroup>, Error> {
    let config = ctx.config;
    if config.drift.threshold == ThresholdMode::Fixed {
        return Ok(None);
    }
    let reference = d.reference();
    let bins = reference.ratios.len();
    let n = (config.drift.min_count as f64 * 1.25).ceil() as u64;
    let margin = config.drift.noise_k * noise::psi_noise(bins, n);
    let target = config.drift.psi_warning + 0.5 * margin;
    let Some(counts) = counts_reaching(&reference, target) else {
        return Err(ConfigError {
            field: "drift.psi_warning".into(),
            reason: format!("no test input reaches a PSI of {target}"),
        }
        .into());
    };
    let psi = drift::psi(&fractions(&counts), &reference.ratios);
    if psi >= config.drift.psi_warning + margin || psi <= config.drift.psi_warning {
        // The input's PSI moves in steps too coarse for this margin.
        return Ok(None);
    }
    let per_step: u64 = counts.iter().sum();
    let window = config.scaled(config.drift.window).as_secs();
    let window_steps = window / ctx.step;
    let scale = n as f64 / (per_step as f64 * window_steps as f64);
    let rule = ctx.rule(d.alert(false));
    let at = window + ctx.step + rule.for_.as_secs();
    let keys = d.keys();
    let (count, noise_record) = match d {
        Distribution::Score => (record::SCORE_COUNT, record::SCORE_PSI_NOISE),
        Distribution::Feature => (record::FEATURE_COUNT, record::FEATURE_PSI_NOISE),
    };
    Ok(Some(TestGroup {
        name: format!(
            "{} drift: PSI {psi:.3} over {n} predictions is within {} + {} x (B-1)/N",
            d.name(),
            num(config.drift.psi_warning),
            num(config.drift.noise_k)
        ),
        interval: ctx.step,
        series: binned_series(ctx, d, &counts, scale, steps(ctx, at)),
        alerts: vec![AlertTest {
            at,
            alertname: rule.alert,
            expected: Vec::new(),
            annotations: Vec::new(),
        }],
        exprs: vec![
            close_to(d.records()[0], psi, at, &keys),
            close_to(count, n as f64, at, &keys),
            close_to(noise_record, noise::psi_noise(bins, n), at, &keys),
        ],
    }))
}

/// PSI, Jensen-Shannon and total variation with an empty current bin and an empty
/// reference bin, where the PSI clamp and the Jensen-Shannon guard matter.
fn drift_value_scenario(ctx: &Ctx<'_>, d: Distribution) -> TestGroup {
    let mut reference = d.reference();
    reference.ratios = vec![0.4, 0.3, 0.3, 0.0];
    let counts = [50, 30, 0, 20];
    let p = fractions(&counts);
    let q = &reference.ratios;
    let keys = d.keys();
    let at = 10 * ctx.step;
    let [psi, js, tv] = d.records();
    let mut series = Vec::new();
    let n = steps(ctx, at);
    for ((bin, count), ratio) in reference.bin_labels().iter().zip(counts).zip(q) {
        let mut l = keys.to_vec();
        l.push((label::BIN, bin));
        series.push((
            ctx.series(d.counter(), Some(REPLICAS[0]), &l),
            counter(count, n),
        ));
        series.push((
            ctx.series(d.reference_gauge(), Some(REPLICAS[0]), &l),
            gauge(*ratio, n),
        ));
    }
    TestGroup {
        name: format!(
            "{} drift rules equal modelwatch::drift with empty bins",
            d.name()
        ),
        interval: ctx.step,
        series,
        alerts: Vec::new(),
        exprs: vec![
            close_to(psi, drift::psi(&p, q), at, &keys),
            close_to(js, drift::jensen_shannon(&p, q), at, &keys),
            close_to(tv, total_variation(&p, q), at, &keys),
        ],
    }
}

/// The approval ratio over `[from, to]` of counters that grow by `approved(t)` and
/// `decided(t)` per step: what `rate() / rate()` gives once extrapolation cancels.
fn window_ratio(
    step: u64,
    from: i64,
    to: i64,
    per_step: impl Fn(u64) -> (f64, f64),
) -> Option<f64> {
    let first = from.max(0) as u64;
    let first = first.div_ceil(step) * step;
    let last = u64::try_from(to).ok()? / step * step;
    if last < first + step {
        return None;
    }
    let (mut approved, mut decided) = (0.0, 0.0);
    let mut t = first + step;
    while t <= last {
        let (a, d) = per_step(t);
        approved += a;
        decided += d;
        t += step;
    }
    Some(approved / decided)
}

/// The two approval scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Approval {
    /// Many decisions per window: the alert fires at its `for:` boundary.
    Full,
    /// A large shift over about half `drift.min_count` decisions: nothing fires.
    Few,
}

fn approval_scenario(ctx: &Ctx<'_>, kind: Approval) -> Result<TestGroup, Error> {
    let config = ctx.config;
    let step = ctx.step;
    let window = config.scaled(config.drift.window).as_secs();
    let offset = config.scaled(config.drift.comparison_offset).as_secs();
    let limit = config.serving.approval_delta_max;
    let window_steps = window / step;
    // So many decisions that the noise margin of `threshold = "noise"` (at most
    // `noise_k * sqrt(0.5 / DECIDED)` once both windows hold a step) is far below
    // the delta's change per step; or, for `Few`, half the minimum per window.
    let (decided, drop) = match kind {
        Approval::Full => (1e8, 2.0 * limit + 0.003),
        Approval::Few => (
            (config.drift.min_count as f64 / (2.0 * (window_steps + 1) as f64)),
            0.5,
        ),
    };
    let margin = match (kind, config.drift.threshold) {
        (Approval::Full, ThresholdMode::Noise) => config.drift.noise_k * (0.5 / decided).sqrt(),
        _ => 0.0,
    };
    // Approval drops by `drop` (twice the limit plus an odd bit, so that no step
    // lands on the threshold) once the comparison window is all in the past.
    let before = 0.9 * decided;
    let after = (0.9 - drop) * decided;
    let switch = offset;
    let per_step = |t: u64| (if t <= switch { before } else { after }, decided);
    let delta = |t: u64| {
        let t = t as i64;
        let (w, o) = (window as i64, offset as i64);
        let now = window_ratio(step, t - w, t, per_step)?;
        let then = window_ratio(step, t - o - w, t - o, per_step)?;
        Some(now - then)
    };
    let rule = ctx.rule(alert::APPROVAL_RATIO_SHIFT);
    let for_ = rule.for_.as_secs();
    let horizon = offset + 2 * window + for_ + step;
    let mut t1 = None;
    let mut t = step;
    while t <= horizon {
        if let Some(d) = delta(t) {
            let past = d.abs() - limit;
            if past > -1e-9 && past <= margin + 1e-9 {
                return Err(ConfigError {
                    field: "serving.approval_delta_max".into(),
                    reason: "the approval test lands on the threshold; pick another value".into(),
                }
                .into());
            }
            match (t1, past > 0.0) {
                (None, true) => t1 = Some(t),
                (Some(_), false) => {
                    return Err(ConfigError {
                        field: "serving.approval_delta_max".into(),
                        reason: "the approval test does not stay past the threshold".into(),
                    }
                    .into());
                }
                _ => {}
            }
            if t1.is_some_and(|t1| t >= t1 + for_) {
                break;
            }
        }
        t += step;
    }
    let Some(t1) = t1 else {
        return Err(ConfigError {
            field: "serving.approval_delta_max".into(),
            reason: "the approval test never passes the threshold".into(),
        }
        .into());
    };
    let at = t1 + for_;
    let value = delta(at).unwrap_or_default();
    let n = steps(ctx, at);
    let switch_steps = switch / step;
    let segments = |before_per_step: f64, after_per_step: f64| {
        format!(
            "0+{}x{switch_steps} {}+{}x{}",
            num(before_per_step),
            num(before_per_step * switch_steps as f64 + after_per_step),
            num(after_per_step),
            n.saturating_sub(switch_steps + 1)
        )
    };
    let requests = |status: Status, decision: &str| {
        ctx.series(
            schema::REQUESTS_TOTAL.name,
            Some(REPLICAS[0]),
            &[
                (label::MODEL, MODEL),
                (label::VERSION, VERSION),
                (label::STATUS, status.as_str()),
                (label::DECISION, decision),
            ],
        )
    };
    let series = vec![
        (requests(Status::Success, APPROVED), segments(before, after)),
        (
            requests(Status::Success, DECLINED),
            segments(decided - before, decided - after),
        ),
        // Failed and undecided requests are not decisions: they must not count.
        (requests(Status::Error, NO_DECISION), counter(500, n)),
        (requests(Status::Success, NO_DECISION), counter(500, n)),
    ];
    let keys = [(label::MODEL, MODEL)];
    let from_to = format!("{}% to {}%", num(90.0), num((0.9 - drop) * 100.0));
    Ok(match kind {
        Approval::Full => TestGroup {
            name: format!("{}: approval falls from {from_to} of decisions", rule.alert),
            interval: step,
            series,
            alerts: boundary(
                ctx,
                rule,
                t1,
                vec![(alert_labels(rule, &keys), rendered(rule, &keys, value)?)],
            )
            .into(),
            exprs: vec![close_to(record::APPROVAL_RATIO_DELTA, value, at, &keys)],
        },
        Approval::Few => TestGroup {
            name: format!(
                "{}: approval falls from {from_to} over fewer than {} decisions: nothing fires",
                rule.alert, config.drift.min_count
            ),
            interval: step,
            series,
            alerts: vec![AlertTest {
                at,
                alertname: rule.alert,
                expected: Vec::new(),
                annotations: Vec::new(),
            }],
            exprs: vec![
                close_to(record::APPROVAL_RATIO_DELTA, value, at, &keys),
                ExprTest {
                    expr: format!(
                        "{} < bool {}",
                        record::APPROVAL_COUNT,
                        config.drift.min_count
                    ),
                    at,
                    samples: vec![(format!("{{model={}}}", quote(MODEL)), "1".into())],
                },
            ],
        },
    })
}

fn percent(part: u64, whole: u64) -> String {
    format!("{}%", num(part as f64 * 100.0 / whole as f64))
}

fn stale_scenarios(ctx: &Ctx<'_>) -> Result<Vec<TestGroup>, Error> {
    let config = ctx.config;
    let rule = ctx.rule(alert::FEATURES_STALE);
    let at = rule.for_.as_secs();
    let n = steps(ctx, at);
    let default_limit = config.features.max_age_default.as_secs();
    // A group with its own limit, and one that takes the default.
    let mut cases: Vec<(String, u64)> = config
        .features
        .max_age
        .iter()
        .take(1)
        .map(|(g, l)| (g.clone(), l.as_secs()))
        .collect();
    let mut unlisted = "unlisted_group".to_string();
    while config.features.max_age.contains_key(&unlisted) {
        unlisted.push('_');
    }
    cases.push((unlisted, default_limit));
    let mut groups = Vec::new();
    for (group, limit) in cases {
        let age = limit + 100;
        let keys = [
            (label::MODEL, MODEL),
            (label::FEATURE_GROUP, group.as_str()),
        ];
        let age_series = |replica: &str, value: u64, group: &str| {
            (
                ctx.series(
                    schema::FEATURE_AGE_SECONDS.name,
                    Some(replica),
                    &[(label::MODEL, MODEL), (label::FEATURE_GROUP, group)],
                ),
                gauge(value as f64, n),
            )
        };
        let mut series = vec![
            // The oldest replica decides.
            age_series(REPLICAS[0], age, &group),
            age_series(REPLICAS[1], age / 2, &group),
        ];
        // A fresh group next to it stays quiet.
        let fresh = format!("{group}_fresh");
        if !config.features.max_age.contains_key(&fresh) {
            series.push(age_series(REPLICAS[0], 0, &fresh));
        }
        groups.push(TestGroup {
            name: format!(
                "{}: {group} features {age}s old against a {limit}s limit",
                rule.alert
            ),
            interval: ctx.step,
            series,
            alerts: boundary(
                ctx,
                rule,
                0,
                vec![(
                    alert_labels(rule, &keys),
                    rendered(rule, &keys, age as f64)?,
                )],
            )
            .into(),
            exprs: Vec::new(),
        });
    }
    Ok(groups)
}

fn missing_scenario(ctx: &Ctx<'_>) -> Result<TestGroup, Error> {
    let limit = ctx.config.features.missing_ratio_max;
    let ratio = (2.0 * limit).min(0.5 * (1.0 + limit));
    const PREDICTIONS: u64 = 1000;
    let missing = (ratio * PREDICTIONS as f64).round() as u64;
    let ratio = missing as f64 / PREDICTIONS as f64;
    let rule = ctx.rule(alert::FEATURE_VALUES_MISSING);
    let t1 = ctx.step;
    let at = t1 + rule.for_.as_secs();
    let n = steps(ctx, at);
    let keys = [(label::MODEL, MODEL), (label::FEATURE, FEATURE)];
    let count_name = format!("{}_count", schema::PREDICTION_SCORE.name);
    let mut series = Vec::new();
    for (replica, share) in REPLICAS.iter().zip([missing - missing / 4, missing / 4]) {
        series.push((
            ctx.series(schema::FEATURE_MISSING_TOTAL.name, Some(replica), &keys),
            counter(share, n),
        ));
    }
    let halves = [PREDICTIONS - PREDICTIONS / 4, PREDICTIONS / 4];
    for (replica, share) in REPLICAS.iter().zip(halves) {
        series.push((
            ctx.series(
                &count_name,
                Some(replica),
                &[(label::MODEL, MODEL), (label::VERSION, VERSION)],
            ),
            counter(share, n),
        ));
    }
    Ok(TestGroup {
        name: format!(
            "{}: {FEATURE} missing in {} of predictions",
            rule.alert,
            percent(missing, PREDICTIONS)
        ),
        interval: ctx.step,
        series,
        alerts: boundary(
            ctx,
            rule,
            t1,
            vec![(alert_labels(rule, &keys), rendered(rule, &keys, ratio)?)],
        )
        .into(),
        exprs: vec![close_to(record::MISSING_RATIO, ratio, at, &keys)],
    })
}

/// The cache hit ratio at 80% of its floor: the alert fires at its `for:`
/// boundary, or, over about half `serving.cache_min_lookups` lookups per window
/// (`few`), never.
fn cache_scenario(ctx: &Ctx<'_>, few: bool) -> Result<TestGroup, Error> {
    const LOOKUPS: u64 = 1000;
    let config = ctx.config;
    let hits = (0.8 * config.serving.cache_hit_ratio_min * LOOKUPS as f64).round() as u64;
    let ratio = hits as f64 / LOOKUPS as f64;
    let window_steps = config.scaled(PromDuration::from_secs(300)).as_secs() / ctx.step;
    let scale = if few {
        config.serving.cache_min_lookups as f64 / (2.0 * LOOKUPS as f64 * (window_steps + 1) as f64)
    } else {
        1.0
    };
    let rule = ctx.rule(alert::FEATURE_CACHE_COLLAPSE);
    let t1 = ctx.step;
    let at = if few {
        2 * (t1 + rule.for_.as_secs())
    } else {
        t1 + rule.for_.as_secs()
    };
    let n = steps(ctx, at);
    let keys = [(label::MODEL, MODEL)];
    let op = |operation: CacheOperation, per_step: u64| {
        (
            ctx.series(
                schema::FEATURE_CACHE_OPERATIONS_TOTAL.name,
                Some(REPLICAS[0]),
                &[
                    (label::MODEL, MODEL),
                    (label::OPERATION, operation.as_str()),
                ],
            ),
            scaled_counter(per_step as f64 * scale, n),
        )
    };
    let series = vec![
        op(CacheOperation::Hit, hits),
        op(CacheOperation::Miss, LOOKUPS - hits),
    ];
    Ok(if few {
        TestGroup {
            name: format!(
                "{}: {} of fewer than {} lookups hit: nothing fires",
                rule.alert,
                percent(hits, LOOKUPS),
                config.serving.cache_min_lookups
            ),
            interval: ctx.step,
            series,
            alerts: vec![AlertTest {
                at,
                alertname: rule.alert,
                expected: Vec::new(),
                annotations: Vec::new(),
            }],
            exprs: vec![ExprTest {
                expr: format!(
                    "{} < bool {}",
                    record::CACHE_LOOKUPS,
                    config.serving.cache_min_lookups
                ),
                at,
                samples: vec![(format!("{{model={}}}", quote(MODEL)), "1".into())],
            }],
        }
    } else {
        TestGroup {
            name: format!("{}: {} of lookups hit", rule.alert, percent(hits, LOOKUPS)),
            interval: ctx.step,
            series,
            alerts: boundary(
                ctx,
                rule,
                t1,
                vec![(alert_labels(rule, &keys), rendered(rule, &keys, ratio)?)],
            )
            .into(),
            exprs: Vec::new(),
        }
    })
}

fn requests_series(
    ctx: &Ctx<'_>,
    model: &str,
    version: &str,
    per_step: u64,
    n: u64,
) -> (String, String) {
    (
        ctx.series(
            schema::REQUESTS_TOTAL.name,
            Some(REPLICAS[0]),
            &[
                (label::MODEL, model),
                (label::VERSION, version),
                (label::STATUS, Status::Success.as_str()),
                (label::DECISION, APPROVED),
            ],
        ),
        counter(per_step, n),
    )
}

/// The store fails from the start on one replica, far above the limit: pending at
/// the first rate (one step in), firing `for:` later; a model whose store fails
/// below the limit never fires.
fn store_failing_scenario(ctx: &Ctx<'_>) -> Result<TestGroup, Error> {
    let rule = ctx.rule(alert::FEATURE_STORE_FAILING);
    let t1 = ctx.step;
    let at = t1 + rule.for_.as_secs();
    let n = steps(ctx, at);
    let window = ctx.config.scaled(PromDuration::from_secs(300)).as_secs() as f64;
    let limit = ctx.config.serving.store_errors_per_second_max;
    // Ten times the limit even over the first step's extrapolated increase.
    let failing = (limit * window * 10.0).ceil() as u64 + 1;
    let quiet = limit * ctx.step as f64 / 10.0;
    let keys = [(label::MODEL, MODEL)];
    let errors = |model: &str, kind: StoreErrorKind| {
        ctx.series(
            schema::FEATURE_STORE_ERRORS_TOTAL.name,
            Some(REPLICAS[0]),
            &[(label::MODEL, model), (label::KIND, kind.as_str())],
        )
    };
    Ok(TestGroup {
        name: format!(
            "{}: the store of {MODEL} fails, another's barely",
            rule.alert
        ),
        interval: ctx.step,
        series: vec![
            (
                errors(MODEL, StoreErrorKind::Unavailable),
                counter(failing, n),
            ),
            (
                errors(MODEL, StoreErrorKind::CircuitOpen),
                counter(failing, n),
            ),
            (
                errors("steady", StoreErrorKind::Timeout),
                scaled_counter(quiet, n),
            ),
        ],
        alerts: boundary(
            ctx,
            rule,
            t1,
            vec![(alert_labels(rule, &keys), rendered(rule, &keys, 0.0)?)],
        )
        .into(),
        exprs: Vec::new(),
    })
}

fn no_traffic_scenario(ctx: &Ctx<'_>) -> Result<TestGroup, Error> {
    let rule = ctx.rule(alert::NO_TRAFFIC);
    let t1 = ctx.step;
    let at = t1 + rule.for_.as_secs();
    let n = steps(ctx, at);
    let keys = [(label::MODEL, MODEL)];
    Ok(TestGroup {
        name: format!("{}: {MODEL} idle while another model serves", rule.alert),
        interval: ctx.step,
        series: vec![
            requests_series(ctx, MODEL, VERSION, 0, n),
            requests_series(ctx, "busy", "1", 100, n),
        ],
        alerts: boundary(
            ctx,
            rule,
            t1,
            vec![(alert_labels(rule, &keys), rendered(rule, &keys, 0.0)?)],
        )
        .into(),
        exprs: Vec::new(),
    })
}

fn target_down_scenario(ctx: &Ctx<'_>) -> Result<TestGroup, Error> {
    let rule = ctx.rule(alert::TARGET_DOWN);
    let at = rule.for_.as_secs();
    let n = steps(ctx, at);
    let mut keys: Vec<(&str, &str)> = ctx
        .selector
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    keys.push(("instance", REPLICAS[1]));
    Ok(TestGroup {
        name: format!("{}: one of two replicas down", rule.alert),
        interval: ctx.step,
        series: vec![
            (
                ctx.series(external::UP, Some(REPLICAS[0]), &[]),
                gauge(1.0, n),
            ),
            (
                ctx.series(external::UP, Some(REPLICAS[1]), &[]),
                gauge(0.0, n),
            ),
        ],
        alerts: boundary(
            ctx,
            rule,
            0,
            vec![(alert_labels(rule, &keys), rendered(rule, &keys, 0.0)?)],
        )
        .into(),
        exprs: Vec::new(),
    })
}

fn version_skew_scenario(ctx: &Ctx<'_>) -> Result<TestGroup, Error> {
    let rule = ctx.rule(alert::VERSION_SKEW);
    let t1 = ctx.step;
    let at = t1 + rule.for_.as_secs();
    let n = steps(ctx, at);
    let keys = [(label::MODEL, MODEL)];
    Ok(TestGroup {
        name: format!("{}: two versions serve together", rule.alert),
        interval: ctx.step,
        series: vec![
            requests_series(ctx, MODEL, VERSION, 90, n),
            requests_series(ctx, MODEL, "4", 10, n),
        ],
        alerts: boundary(
            ctx,
            rule,
            t1,
            vec![(alert_labels(rule, &keys), rendered(rule, &keys, 2.0)?)],
        )
        .into(),
        exprs: Vec::new(),
    })
}

fn observations_dropped_scenario(ctx: &Ctx<'_>) -> Result<TestGroup, Error> {
    let rule = ctx.rule(alert::OBSERVATIONS_DROPPED);
    let t1 = ctx.step;
    let at = t1 + rule.for_.as_secs();
    let n = steps(ctx, at);
    let keys = [(label::MODEL, MODEL)];
    let observations = |model: &str, outcome: modelwatch::ObservationOutcome, per_step: u64| {
        (
            ctx.series(
                schema::OBSERVATIONS_TOTAL.name,
                Some(REPLICAS[0]),
                &[(label::MODEL, model), (label::OUTCOME, outcome.as_str())],
            ),
            counter(per_step, n),
        )
    };
    // 30 events dropped per step of this model; another model only accepts.
    let per_second = 30.0 / ctx.step as f64;
    Ok(TestGroup {
        name: format!("{}: a full recording queue", rule.alert),
        interval: ctx.step,
        series: vec![
            observations(MODEL, modelwatch::ObservationOutcome::Accepted, 900),
            observations(MODEL, modelwatch::ObservationOutcome::Dropped, 30),
            observations("calm", modelwatch::ObservationOutcome::Accepted, 900),
            observations("calm", modelwatch::ObservationOutcome::Dropped, 0),
        ],
        alerts: boundary(
            ctx,
            rule,
            t1,
            vec![(
                alert_labels(rule, &keys),
                rendered(rule, &keys, per_second)?,
            )],
        )
        .into(),
        exprs: Vec::new(),
    })
}

/// Renders the template constructs the alerts use: `{{ $labels.NAME }}` and
/// `{{ $value | F }}` with F one of `humanize`, `humanizePercentage`,
/// `humanizeDuration` and `printf "%.3f"`, as Prometheus does.
pub fn render(template: &str, labels: &[(&str, &str)], value: f64) -> Result<String, Error> {
    let unsupported = |what: &str| {
        Error::from(ConfigError {
            field: "(annotation template)".into(),
            reason: format!("the test generator cannot render {what:?}"),
        })
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| unsupported(rest))?;
        let action = after[..end].trim();
        if let Some(name) = action.strip_prefix("$labels.") {
            let value = labels
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| unsupported(action))?;
            out.push_str(value);
        } else if let Some(function) = action.strip_prefix("$value |") {
            out.push_str(&match function.trim() {
                "humanize" => humanize(value),
                "humanizePercentage" => format!("{}%", go_g4(value * 100.0)),
                "humanizeDuration" => humanize_duration(value),
                "printf \"%.3f\"" => format!("{value:.3}"),
                other => return Err(unsupported(other)),
            });
        } else {
            return Err(unsupported(action));
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Go's `%.4g`: four significant digits, trailing zeros dropped, exponent form
/// below 1e-4 and from 1e4.
fn go_g4(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let scientific = format!("{value:.3e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if !(-4..4).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mantissa.to_string()), exponent.abs());
    }
    let decimals = usize::try_from(3 - exponent).unwrap_or(0);
    let rounded: f64 = scientific.parse().unwrap_or(value);
    trim(format!("{rounded:.decimals$}"))
}

/// Prometheus' `humanize`: SI prefixes for large and small values.
fn humanize(mut value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return go_g4(value);
    }
    let mut prefix = "";
    if value.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if value.abs() < 1000.0 {
                break;
            }
            prefix = p;
            value /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if value.abs() >= 1.0 {
                break;
            }
            prefix = p;
            value *= 1000.0;
        }
    }
    format!("{}{prefix}", go_g4(value))
}

/// Prometheus' `humanizeDuration` for durations of a second or more.
fn humanize_duration(value: f64) -> String {
    let sign = if value < 0.0 { "-" } else { "" };
    let v = value.abs();
    let whole = v as i64;
    let (days, hours, minutes, seconds) = (
        whole / 86_400,
        (whole / 3600) % 24,
        (whole / 60) % 60,
        whole % 60,
    );
    if days != 0 {
        format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
    } else if hours != 0 {
        format!("{sign}{hours}h {minutes}m {seconds}s")
    } else if minutes != 0 {
        format!("{sign}{minutes}m {seconds}s")
    } else {
        format!("{sign}{}s", go_g4(v))
    }
}

/// The calibration every ground-truth scenario uses: three score bins, the first
/// approved, with their reference ratios and positive ratios. The holdout's
/// precision is then 0.625 and its recall about 0.874.
const CALIBRATION: [(&str, &str, f64, f64); 3] = [
    ("0.1", APPROVED, 0.9, 0.01),
    ("0.5", DECLINED, 0.05, 0.3),
    ("+Inf", DECLINED, 0.05, 0.95),
];

/// The confusion cells of one scenario, per step: (predicted, actual, labels).
type Cells = [(&'static str, &'static str, f64); 4];

fn truth_series(ctx: &Ctx<'_>, n: u64, cells: &Cells, bins: &[u64; 3]) -> Vec<(String, String)> {
    let mv = [(label::MODEL, MODEL), (label::VERSION, VERSION)];
    let mut series = Vec::new();
    for (bin, decision, reference, positive) in CALIBRATION {
        let keys = [mv[0], mv[1], (label::BIN, bin)];
        series.push((
            ctx.series(schema::REFERENCE_SCORE_RATIO.name, Some(REPLICAS[0]), &keys),
            gauge(reference, n),
        ));
        let with_decision = [keys[0], keys[1], keys[2], (label::DECISION, decision)];
        series.push((
            ctx.series(
                schema::REFERENCE_SCORE_POSITIVE_RATIO.name,
                Some(REPLICAS[0]),
                &with_decision,
            ),
            gauge(positive, n),
        ));
    }
    for ((bin, ..), per_step) in CALIBRATION.iter().zip(bins) {
        series.push((
            ctx.series(
                schema::SCORE_BIN_TOTAL.name,
                Some(REPLICAS[0]),
                &[mv[0], mv[1], (label::BIN, bin)],
            ),
            counter(*per_step, n),
        ));
    }
    for (predicted, actual, per_step) in cells {
        series.push((
            ctx.series(
                schema::FEEDBACK_TOTAL.name,
                Some(REPLICAS[0]),
                &[
                    mv[0],
                    mv[1],
                    (label::PREDICTED, predicted),
                    (label::ACTUAL, actual),
                ],
            ),
            scaled_counter(*per_step, n),
        ));
    }
    let predictions: f64 = cells.iter().map(|c| c.2).sum();
    series.push((
        ctx.series(
            schema::REQUESTS_TOTAL.name,
            Some(REPLICAS[0]),
            &[
                mv[0],
                mv[1],
                (label::STATUS, Status::Success.as_str()),
                (label::DECISION, APPROVED),
            ],
        ),
        scaled_counter(predictions, n),
    ));
    series
}

fn cells(tp: f64, fp: f64, fn_: f64, tn: f64) -> Cells {
    [
        (DECLINED, DECLINED, tp),
        (DECLINED, APPROVED, fp),
        (APPROVED, DECLINED, fn_),
        (APPROVED, APPROVED, tn),
    ]
}

/// Scores per step in the calibration's bins, scaled so that one step holds
/// `drift.min_count` of them.
fn bin_counts(ctx: &Ctx<'_>, shares: [u64; 3]) -> [u64; 3] {
    let total: u64 = shares.iter().sum();
    let k = ctx.config.drift.min_count.div_ceil(total) + 1;
    shares.map(|s| s * k)
}

fn estimate_of(bins: &[u64; 3]) -> modelwatch::feedback::Estimate {
    let calibrated: Vec<_> = CALIBRATION
        .iter()
        .zip(bins)
        .map(
            |((_, decision, _, positive), count)| modelwatch::feedback::CalibratedBin {
                count: *count as f64,
                positive_ratio: *positive,
                positive_side: *decision == DECLINED,
            },
        )
        .collect();
    match modelwatch::feedback::estimate(&calibrated) {
        Some(e) => e,
        None => panic!("the scenario's bins have a positive side"),
    }
}

fn ground_truth_scenarios(ctx: &Ctx<'_>) -> Result<Vec<TestGroup>, Error> {
    let g = &ctx.config.ground_truth;
    let mv = [(label::MODEL, MODEL), (label::VERSION, VERSION)];
    // Enough labels per step that one step passes `ground_truth.min_labels`.
    let scale = (g.min_labels.div_ceil(100) + 1) as f64;
    let reference_bins = bin_counts(ctx, [90, 5, 5]);
    let mut groups = Vec::new();
    // Realized precision and recall below their floors, and the same with too few
    // labels: nothing fires.
    for (rule_name, tp, fp, fn_, value) in [
        (alert::PRECISION_LOW, 4.0, 6.0, 0.0, 0.4),
        (alert::RECALL_LOW, 4.0, 0.0, 6.0, 0.4),
    ] {
        let rule = ctx.rule(rule_name);
        let t1 = ctx.step;
        let at = t1 + rule.for_.as_secs();
        let n = steps(ctx, at);
        let tn = 90.0;
        let series = truth_series(
            ctx,
            n,
            &cells(tp * scale, fp * scale, fn_ * scale, tn * scale),
            &reference_bins,
        );
        groups.push(TestGroup {
            name: format!("{rule_name}: 40% over enough labels"),
            interval: ctx.step,
            series,
            alerts: boundary(
                ctx,
                rule,
                t1,
                vec![(alert_labels(rule, &mv), rendered(rule, &mv, value)?)],
            )
            .into(),
            exprs: Vec::new(),
        });
        // Half of min_labels over the whole run: silent.
        let k = g.min_labels as f64 / (2.0 * 10.0 * n as f64);
        let few = truth_series(
            ctx,
            n,
            &cells(tp * k, fp * k, fn_ * k, 0.0),
            &reference_bins,
        );
        groups.push(TestGroup {
            name: format!("{rule_name}: 40% over too few labels: nothing fires"),
            interval: ctx.step,
            series: few,
            alerts: vec![AlertTest {
                at,
                alertname: rule.alert,
                expected: Vec::new(),
                annotations: Vec::new(),
            }],
            exprs: Vec::new(),
        });
    }
    // The estimate: scores move into the 30% bin, the labels are fine.
    let rule = ctx.rule(alert::ESTIMATED_PERFORMANCE_LOW);
    let t1 = ctx.step;
    let at = t1 + rule.for_.as_secs();
    let n = steps(ctx, at);
    let shifted = bin_counts(ctx, [88, 10, 2]);
    let estimate = estimate_of(&shifted);
    let good = cells(9.0 * scale, scale, scale, 89.0 * scale);
    groups.push(TestGroup {
        name: format!(
            "{}: scores shift to a 30% bin (precision estimate {})",
            rule.alert,
            num(estimate.precision)
        ),
        interval: ctx.step,
        series: truth_series(ctx, n, &good, &shifted),
        alerts: boundary(
            ctx,
            rule,
            t1,
            vec![(
                alert_labels(rule, &mv),
                rendered(rule, &mv, estimate.precision)?,
            )],
        )
        .into(),
        exprs: {
            let w = record::TRUTH_WINDOWS[0];
            vec![
                close_to(w.estimated_precision, estimate.precision, at, &mv),
                close_to(w.estimated_recall, estimate.recall, at, &mv),
                close_to(w.estimated_positive_rate, estimate.positive_rate, at, &mv),
                close_to(record::REFERENCE_PRECISION, 0.625, at, &mv),
            ]
        },
    });
    // Concept drift: the scores stay as in the reference, the precision falls.
    let rule = ctx.rule(alert::CONCEPT_DRIFT);
    let at = t1 + rule.for_.as_secs();
    let n = steps(ctx, at);
    let drifted = cells(4.0 * scale, 6.0 * scale, 0.0, 90.0 * scale);
    groups.push(TestGroup {
        name: format!(
            "{}: realized precision 40% against an estimate of {}",
            rule.alert,
            num(estimate_of(&reference_bins).precision)
        ),
        interval: ctx.step,
        series: truth_series(ctx, n, &drifted, &reference_bins),
        alerts: boundary(
            ctx,
            rule,
            t1,
            vec![(alert_labels(rule, &mv), rendered(rule, &mv, 0.4)?)],
        )
        .into(),
        exprs: Vec::new(),
    });
    // Label coverage: one prediction in ten labelled.
    let rule = ctx.rule(alert::LABEL_COVERAGE_LOW);
    let at = t1 + rule.for_.as_secs();
    let n = steps(ctx, at);
    let mut series = truth_series(ctx, n, &good, &reference_bins);
    // Ten times the predictions: replace the requests series.
    let labelled: f64 = good.iter().map(|c| c.2).sum();
    if let Some(last) = series.last_mut() {
        last.1 = scaled_counter(labelled * 10.0, n);
    }
    groups.push(TestGroup {
        name: format!("{}: 10% of the predictions labelled", rule.alert),
        interval: ctx.step,
        series,
        alerts: boundary(
            ctx,
            rule,
            t1,
            vec![(alert_labels(rule, &mv), rendered(rule, &mv, 0.1)?)],
        )
        .into(),
        exprs: Vec::new(),
    });
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formatting_matches_prometheus() {
        assert_eq!(go_g4(2.0), "2");
        assert_eq!(go_g4(2.16), "2.16");
        assert_eq!(go_g4(0.42426), "0.4243");
        assert_eq!(go_g4(420_000.0), "4.2e+05");
        assert_eq!(humanize(4200.0), "4.2k");
        assert_eq!(humanize(2.0), "2");
        assert_eq!(humanize_duration(4200.0), "1h 10m 0s");
        assert_eq!(humanize_duration(400.0), "6m 40s");
    }

    #[test]
    fn templates_render_labels_and_values() {
        let text = render(
            "{{ $labels.model }} at {{ $value | humanizePercentage }}, {{ $value | printf \"%.3f\" }}",
            &[("model", "fraud")],
            0.0216,
        )
        .unwrap();
        assert_eq!(text, "fraud at 2.16%, 0.022");
        assert!(render("{{ $value | title }}", &[], 1.0).is_err());
        assert!(render("{{ $labels.nope }}", &[], 1.0).is_err());
    }

    #[test]
    fn selector_matchers_become_series_labels() {
        assert_eq!(
            selector_labels(r#"job="modelwatch", namespace="fraud""#).unwrap(),
            labels(&[("job", "modelwatch"), ("namespace", "fraud")])
        );
        assert!(selector_labels(r#"job=~"model.*""#).is_err());
        assert!(selector_labels(r#"job!="x""#).is_err());
        assert_eq!(selector_labels("").unwrap(), Vec::new());
    }

    #[test]
    fn the_approval_window_ratio_counts_whole_steps() {
        let ratio = window_ratio(60, -600, 600, |t| {
            if t <= 300 { (9.0, 10.0) } else { (8.0, 10.0) }
        });
        assert_eq!(ratio, Some(85.0 / 100.0));
        assert_eq!(window_ratio(60, -600, 30, |_| (1.0, 1.0)), None);
    }
}
