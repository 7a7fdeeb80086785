//! Module implementing the alerting rules (`prometheus/alerts.yaml`). See
//! [`alerting_rules`] for details.
//!
//! Every alert has a `for:`, a `severity` label (`critical` pages, `warning` makes
//! a ticket), a static `summary`, a `description` templated with the alert's labels
//! and value, and a `runbook_url` pointing at its section of `runbook.md`.
//!
//! The SLO alerts are the SRE workbook's multiwindow, multi-burn-rate alerts: each
//! fires when the bad-event ratio exceeds `factor × (1 − target)` over both a long
//! and a short window, the short one making the alert stop soon after the problem
//! does. The four variants share one alert name and differ by `severity`,
//! `long_window` and `short_window`. A warning and a critical alert on the same
//! signal (drift) both fire past the critical threshold: inhibit one with the other
//! in Alertmanager if a single notification is wanted.
//!
//! Alerts on a statistic of a sample know the sample's size: drift and approval
//! alerts need `drift.min_count` predictions in their window and the cache alert
//! `serving.cache_min_lookups` lookups. With `drift.threshold = "noise"` (the
//! default) each limit also moves by `drift.noise_k` times the statistic's no-drift
//! level for that count (docs/drift.md derives them): PSI's expectation
//! `(B - 1) / N`, the approval delta's standard deviation, and for the cache the
//! hit ratio's standard deviation at the floor.

use crate::config::{AlertForConfig, MixinConfig, PromDuration, ThresholdMode};
use crate::names::{alert, record};
use crate::promql::{eq, none_of, num};
use crate::rules::{AlertingRule, Rule, RuleGroup};
use modelwatch::schema::{self, label};

/// Pages: someone must act now.
pub const CRITICAL: &str = "critical";
/// Tickets: someone must look within working hours.
pub const WARNING: &str = "warning";

/// One multiwindow burn-rate condition.
#[derive(Debug, Clone, Copy)]
pub struct BurnRate {
    /// How many times faster than the SLO allows the budget burns.
    pub factor: f64,
    /// The long window, nominal seconds.
    pub long: u64,
    /// The short window, nominal seconds.
    pub short: u64,
    /// `critical` or `warning`.
    pub severity: &'static str,
    /// Its `for:` duration.
    pub for_: fn(&AlertForConfig) -> PromDuration,
}

/// The SRE workbook's four burn rates for a 30-day SLO: 2% of the budget in 1h or
/// 5% in 6h pages, 10% in 1d or 10% in 3d makes a ticket.
pub const BURN_RATES: [BurnRate; 4] = [
    BurnRate {
        factor: 14.4,
        long: 3600,
        short: 300,
        severity: CRITICAL,
        for_: |f| f.burn_page_1h,
    },
    BurnRate {
        factor: 6.0,
        long: 21_600,
        short: 1800,
        severity: CRITICAL,
        for_: |f| f.burn_page_6h,
    },
    BurnRate {
        factor: 3.0,
        long: 86_400,
        short: 7200,
        severity: WARNING,
        for_: |f| f.burn_ticket_1d,
    },
    BurnRate {
        factor: 1.0,
        long: 259_200,
        short: 21_600,
        severity: WARNING,
        for_: |f| f.burn_ticket_3d,
    },
];

/// Which SLO a burn-rate alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slo {
    /// Failed over valid requests.
    Availability,
    /// Slower than the threshold over valid requests.
    Latency,
}

impl Slo {
    /// The alert name.
    pub fn alert(self) -> &'static str {
        match self {
            Slo::Availability => alert::ERROR_BUDGET_BURN,
            Slo::Latency => alert::LATENCY_BUDGET_BURN,
        }
    }

    /// The SLO target.
    pub fn target(self, config: &MixinConfig) -> f64 {
        match self {
            Slo::Availability => config.slo.availability_target,
            Slo::Latency => config.slo.latency_target,
        }
    }

    /// The recorded bad-event ratio over a burn window of `seconds`.
    pub fn ratio(self, seconds: u64) -> &'static str {
        let window = record::burn_window(seconds);
        match self {
            Slo::Availability => window.errors,
            Slo::Latency => window.slow,
        }
    }

    /// The allowed bad-event ratio, `1 − target`.
    pub fn budget(self, config: &MixinConfig) -> f64 {
        1.0 - self.target(config)
    }
}

/// A duration in words for a description: `25ms`, `2.5s`.
pub(crate) fn seconds_text(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{}ms", num(seconds * 1000.0))
    } else {
        format!("{}s", num(seconds))
    }
}

/// `0.05` as `5%`.
pub(crate) fn percent_text(fraction: f64) -> String {
    format!("{}%", num(fraction * 100.0))
}

struct AlertText<'a> {
    summary: &'a str,
    description: String,
}

fn make(
    config: &MixinConfig,
    name: &'static str,
    expr: String,
    for_: PromDuration,
    labels: &[(&str, &str)],
    text: AlertText<'_>,
) -> Rule {
    Rule::Alert(AlertingRule {
        alert: name,
        expr,
        for_: config.scaled(for_),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        annotations: vec![
            ("summary".into(), text.summary.into()),
            ("description".into(), text.description),
            (
                "runbook_url".into(),
                format!("{}#{}", config.runbook.base_url, alert::anchor(name)),
            ),
        ],
    })
}

/// Every alerting rule group, in file order.
pub fn alerting_rules(config: &MixinConfig) -> Vec<RuleGroup> {
    let mut slo = Vec::new();
    for kind in [Slo::Availability, Slo::Latency] {
        for rate in BURN_RATES {
            slo.push(burn_alert(config, kind, rate));
        }
    }
    vec![
        RuleGroup {
            name: "modelwatch-slo.alerts".into(),
            rules: slo,
        },
        RuleGroup {
            name: "modelwatch-model.alerts".into(),
            rules: model_alerts(config),
        },
        RuleGroup {
            name: "modelwatch-features.alerts".into(),
            rules: feature_alerts(config),
        },
        RuleGroup {
            name: "modelwatch-serving.alerts".into(),
            rules: serving_alerts(config),
        },
    ]
}

fn burn_alert(config: &MixinConfig, kind: Slo, rate: BurnRate) -> Rule {
    let threshold = format!("({} * {})", num(rate.factor), num(kind.budget(config)));
    let long = config.scaled(PromDuration::from_secs(rate.long));
    let short = config.scaled(PromDuration::from_secs(rate.short));
    let target = percent_text(kind.target(config));
    let (summary, description) = match kind {
        Slo::Availability => (
            "A model fails too many requests for its availability SLO.",
            format!(
                "Model {{{{ $labels.model }}}} version {{{{ $labels.version }}}} failed {{{{ $value | humanizePercentage }}}} of its valid requests over the last {long} (and over {short}), {}x the rate that its {target} availability SLO allows.",
                num(rate.factor)
            ),
        ),
        Slo::Latency => (
            "A model answers too many requests too slowly for its latency SLO.",
            format!(
                "{{{{ $value | humanizePercentage }}}} of the valid requests to model {{{{ $labels.model }}}} version {{{{ $labels.version }}}} took longer than {} over the last {long} (and over {short}), {}x the rate that its {target} latency SLO allows.",
                seconds_text(config.slo.latency_threshold_seconds),
                num(rate.factor)
            ),
        ),
    };
    make(
        config,
        kind.alert(),
        format!(
            "{} > {threshold}\nand\n{} > {threshold}",
            kind.ratio(rate.long),
            kind.ratio(rate.short)
        ),
        (rate.for_)(&config.alert_for),
        &[
            ("severity", rate.severity),
            ("long_window", &long.to_string()),
            ("short_window", &short.to_string()),
        ],
        AlertText {
            summary,
            description,
        },
    )
}

/// `stat` past `threshold`, or past `threshold` plus `noise_k` times the no-drift
/// level `noise` in `noise` mode, over a window of at least `drift.min_count`
/// predictions (`count`, matched on `keys`).
fn drift_condition(
    config: &MixinConfig,
    stat: &str,
    noise: &str,
    count: &str,
    keys: &str,
    threshold: f64,
) -> String {
    let limit = match config.drift.threshold {
        ThresholdMode::Fixed => num(threshold),
        ThresholdMode::Noise => format!(
            "({} + {} * {noise})",
            num(threshold),
            num(config.drift.noise_k)
        ),
    };
    format!(
        "{stat} > {limit}\nand on ({keys})\n{count} >= {}",
        config.drift.min_count
    )
}

/// How a drift description states its threshold.
fn threshold_text(config: &MixinConfig, severity: &str, threshold: f64) -> String {
    match config.drift.threshold {
        ThresholdMode::Fixed => format!("the {severity} threshold of {}", num(threshold)),
        ThresholdMode::Noise => format!(
            "the {severity} threshold of {} plus {} times its no-drift level for the window's predictions",
            num(threshold),
            num(config.drift.noise_k)
        ),
    }
}

/// ` plus 3 times <what>` in noise mode, empty in fixed mode.
fn noise_text(config: &MixinConfig, what: &str) -> String {
    match config.drift.threshold {
        ThresholdMode::Fixed => String::new(),
        ThresholdMode::Noise => format!(", widened by {} times {what}", num(config.drift.noise_k)),
    }
}

fn model_alerts(config: &MixinConfig) -> Vec<Rule> {
    let window = config.scaled(config.drift.window);
    let offset = config.scaled(config.drift.comparison_offset);
    let levels = [
        (WARNING, config.drift.psi_warning),
        (CRITICAL, config.drift.psi_critical),
    ];
    let mut rules = Vec::new();
    for (severity, threshold) in levels {
        let name = if severity == CRITICAL {
            alert::SCORE_DRIFT_CRITICAL
        } else {
            alert::SCORE_DRIFT_WARNING
        };
        rules.push(make(
            config,
            name,
            drift_condition(
                config,
                record::SCORE_PSI,
                record::SCORE_PSI_NOISE,
                record::SCORE_COUNT,
                &format!("{}, {}", label::MODEL, label::VERSION),
                threshold,
            ),
            config.alert_for.score_drift,
            &[("severity", severity)],
            AlertText {
                summary: "The score distribution of a model drifted from its reference.",
                description: format!(
                    "The scores of model {{{{ $labels.model }}}} version {{{{ $labels.version }}}} over the last {window} have a PSI of {{{{ $value | printf \"%.3f\" }}}} against the reference, above {}.",
                    threshold_text(config, severity, threshold)
                ),
            },
        ));
    }
    let delta = match config.drift.threshold {
        ThresholdMode::Fixed => num(config.serving.approval_delta_max),
        ThresholdMode::Noise => format!(
            "({} + {} * {})",
            num(config.serving.approval_delta_max),
            num(config.drift.noise_k),
            record::APPROVAL_RATIO_DELTA_NOISE
        ),
    };
    rules.push(make(
        config,
        alert::APPROVAL_RATIO_SHIFT,
        format!(
            "(\n  {d} > {delta}\n  or\n  {d} < -{delta}\n)\nand on ({m})\n{c} >= {min}\nand on ({m})\n{o} >= {min}",
            d = record::APPROVAL_RATIO_DELTA,
            m = label::MODEL,
            c = record::APPROVAL_COUNT,
            o = record::APPROVAL_COUNT_OFFSET,
            min = config.drift.min_count,
        ),
        config.alert_for.approval_shift,
        &[("severity", WARNING)],
        AlertText {
            summary: "The approval ratio of a model moved against the same window last week.",
            description: format!(
                "The approval ratio of model {{{{ $labels.model }}}} over the last {window} differs by {{{{ $value | humanizePercentage }}}} from the same window {offset} earlier (limit ±{}{}).",
                percent_text(config.serving.approval_delta_max),
                noise_text(config, "the delta's standard deviation for the two windows' counts")
            ),
        },
    ));
    rules
}

fn feature_alerts(config: &MixinConfig) -> Vec<Rule> {
    let window = config.scaled(config.drift.window);
    let mut rules = Vec::new();
    for (severity, threshold) in [
        (WARNING, config.drift.psi_warning),
        (CRITICAL, config.drift.psi_critical),
    ] {
        let name = if severity == CRITICAL {
            alert::FEATURE_DRIFT_CRITICAL
        } else {
            alert::FEATURE_DRIFT_WARNING
        };
        rules.push(make(
            config,
            name,
            drift_condition(
                config,
                record::FEATURE_PSI,
                record::FEATURE_PSI_NOISE,
                record::FEATURE_COUNT,
                &format!("{}, {}", label::MODEL, label::FEATURE),
                threshold,
            ),
            config.alert_for.feature_drift,
            &[("severity", severity)],
            AlertText {
                summary: "The distribution of a feature drifted from its reference.",
                description: format!(
                    "Feature {{{{ $labels.feature }}}} of model {{{{ $labels.model }}}} has a PSI of {{{{ $value | printf \"%.3f\" }}}} over the last {window} against its reference, above {}.",
                    threshold_text(config, severity, threshold)
                ),
            },
        ));
    }
    // One rule for every group, so that a group has one alert identity whichever
    // limit applies; the per-group limits are listed in the runbook.
    let listed: Vec<&str> = config.features.max_age.keys().map(String::as_str).collect();
    let mut branches: Vec<String> = config
        .features
        .max_age
        .iter()
        .map(|(group, limit)| {
            format!(
                "{}{{{}}} > {}",
                record::FEATURE_AGE_MAX,
                eq(label::FEATURE_GROUP, group),
                limit.as_secs()
            )
        })
        .collect();
    let default_limit = config.features.max_age_default.as_secs();
    branches.push(if listed.is_empty() {
        format!("{} > {default_limit}", record::FEATURE_AGE_MAX)
    } else {
        format!(
            "{}{{{}}} > {default_limit}",
            record::FEATURE_AGE_MAX,
            none_of(label::FEATURE_GROUP, &listed)
        )
    });
    rules.push(make(
        config,
        alert::FEATURES_STALE,
        branches.join("\nor\n"),
        config.alert_for.stale_features,
        &[("severity", WARNING)],
        AlertText {
            summary: "A model makes predictions with feature values older than allowed.",
            description: "Model {{ $labels.model }} made predictions with {{ $labels.feature_group }} features {{ $value | humanizeDuration }} old, past the maximum age of the group (see the runbook for the limits).".into(),
        },
    ));
    rules.push(make(
        config,
        alert::FEATURE_VALUES_MISSING,
        format!(
            "{} > {}",
            record::MISSING_RATIO,
            num(config.features.missing_ratio_max)
        ),
        config.alert_for.missing_values,
        &[("severity", WARNING)],
        AlertText {
            summary: "A feature is missing in too many predictions.",
            description: format!(
                "Feature {{{{ $labels.feature }}}} was missing in {{{{ $value | humanizePercentage }}}} of the predictions of model {{{{ $labels.model }}}} over the last {} (limit {}).",
                config.scaled(PromDuration::from_secs(300)),
                percent_text(config.features.missing_ratio_max)
            ),
        },
    ));
    rules.push(make(
        config,
        alert::FEATURE_CACHE_COLLAPSE,
        {
            let floor = config.serving.cache_hit_ratio_min;
            let limit = match config.drift.threshold {
                ThresholdMode::Fixed => num(floor),
                ThresholdMode::Noise => format!(
                    "({} - {} * sqrt({} / {}))",
                    num(floor),
                    num(config.drift.noise_k),
                    num(floor * (1.0 - floor)),
                    record::CACHE_LOOKUPS
                ),
            };
            format!(
                "{} < {limit}\nand on ({m})\n{} >= {}",
                record::CACHE_HIT_RATIO,
                record::CACHE_LOOKUPS,
                config.serving.cache_min_lookups,
                m = label::MODEL,
            )
        },
        config.alert_for.cache_collapse,
        &[("severity", WARNING)],
        AlertText {
            summary: "The feature cache of a model hits far less than usual.",
            description: format!(
                "Only {{{{ $value | humanizePercentage }}}} of the feature cache lookups of model {{{{ $labels.model }}}} hit over the last {} (floor {}{}).",
                config.scaled(PromDuration::from_secs(300)),
                percent_text(config.serving.cache_hit_ratio_min),
                noise_text(config, "the ratio's standard deviation for the window's lookups")
            ),
        },
    ));
    rules
}

fn serving_alerts(config: &MixinConfig) -> Vec<Rule> {
    let f = &config.alert_for;
    vec![
        make(
            config,
            alert::NO_TRAFFIC,
            format!(
                "sum by ({}) ({}) == 0",
                label::MODEL,
                record::REQUESTS_RATE5M
            ),
            f.no_traffic,
            &[("severity", CRITICAL)],
            AlertText {
                summary: "A model receives no prediction request.",
                description: format!(
                    "Model {{{{ $labels.model }}}} received no prediction request over the last {}, for {} in a row.",
                    config.scaled(PromDuration::from_secs(300)),
                    config.scaled(f.no_traffic)
                ),
            },
        ),
        make(
            config,
            alert::TARGET_DOWN,
            format!(
                "{} == 0",
                crate::promql::Promql::new(config).select(crate::names::external::UP, &[])
            ),
            f.target_down,
            &[("severity", WARNING)],
            AlertText {
                summary: "Prometheus cannot scrape a modelwatch target.",
                description: format!(
                    "Prometheus could not scrape {{{{ $labels.instance }}}} of job {{{{ $labels.job }}}} for {}.",
                    config.scaled(f.target_down)
                ),
            },
        ),
        make(
            config,
            alert::VERSION_SKEW,
            format!(
                "count by ({}) ({} > 0) > 1",
                label::MODEL,
                record::REQUESTS_RATE5M
            ),
            f.version_skew,
            &[("severity", WARNING)],
            AlertText {
                summary: "More than one version of a model serves traffic for longer than a rollout.",
                description: format!(
                    "{{{{ $value | humanize }}}} versions of model {{{{ $labels.model }}}} have served traffic together for more than {}.",
                    config.scaled(f.version_skew)
                ),
            },
        ),
        make(
            config,
            alert::OBSERVATIONS_DROPPED,
            {
                let q = crate::promql::Promql::new(config);
                format!(
                    "sum by ({}) (rate({}{})) > 0",
                    label::MODEL,
                    q.metric(
                        &schema::OBSERVATIONS_TOTAL,
                        &[eq(
                            label::OUTCOME,
                            modelwatch::ObservationOutcome::Dropped.as_str()
                        )]
                    ),
                    q.range(PromDuration::from_secs(300))
                )
            },
            f.observations_dropped,
            &[("severity", WARNING)],
            AlertText {
                summary: "The collector drops prediction events of a monitor-only model.",
                description: format!(
                    "The collector dropped {{{{ $value | humanize }}}} events/s of model {{{{ $labels.model }}}} (its recording queue was full, answered 429) for {}: its metrics undercount what the model served.",
                    config.scaled(f.observations_dropped)
                ),
            },
        ),
    ]
}
