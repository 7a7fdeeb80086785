//! Module implementing the mixin's settings. See [`MixinConfig`] for details.
//!
//! Every threshold, selector and duration of the generated rules, alerts and
//! dashboard comes from here, and every field has a default: an empty TOML file is a
//! valid config. `modelwatch mixin --print-default-config` prints the defaults.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// Settings of the generated mixin; see each field for its meaning and default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MixinConfig {
    /// Label matchers, without braces, that select modelwatch's own series in every
    /// query, for example `job="modelwatch"` (the default) or
    /// `job="modelwatch", namespace="fraud"`. Empty selects every job.
    pub selector: String,
    /// Multiplies every range window, offset and `for:` duration (default 1). Tests
    /// and scenario runs set it below 1 so that incidents play out in minutes: at
    /// `1/60`, the 1 h drift window becomes 1 m and a 15 m `for:` becomes 15 s.
    /// Scaled durations are rounded to whole seconds, at least 1 s; a rate window
    /// must still span two scrapes. Rule names keep their nominal windows
    /// (`rate5m` stays `rate5m`), so dashboards and queries do not change.
    pub time_scale: f64,
    /// The service level objectives behind the burn-rate alerts.
    pub slo: SloConfig,
    /// Score and feature drift.
    pub drift: DriftConfig,
    /// Feature freshness and quality.
    pub features: FeatureConfig,
    /// Serving thresholds that are not SLOs.
    pub serving: ServingConfig,
    /// How long each alert's condition must hold before it fires (`for:`).
    pub alert_for: AlertForConfig,
    /// Where the alerts' runbook links point.
    pub runbook: RunbookConfig,
    /// The Grafana dashboard's identity and defaults.
    pub dashboard: DashboardConfig,
}

impl Default for MixinConfig {
    fn default() -> Self {
        Self {
            selector: r#"job="modelwatch""#.into(),
            time_scale: 1.0,
            slo: SloConfig::default(),
            drift: DriftConfig::default(),
            features: FeatureConfig::default(),
            serving: ServingConfig::default(),
            alert_for: AlertForConfig::default(),
            runbook: RunbookConfig::default(),
            dashboard: DashboardConfig::default(),
        }
    }
}

/// The two SLOs: availability and latency, both over valid requests (neither
/// rejected nor cancelled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SloConfig {
    /// Fraction of valid requests (every status but `rejected` and `cancelled`) that must succeed,
    /// default 0.999. `error`, `timeout` and `overloaded` spend the error budget.
    pub availability_target: f64,
    /// The latency SLO threshold in seconds, default 0.025; must be one of
    /// `latency_buckets_seconds` so that it is an exact `le` bucket.
    pub latency_threshold_seconds: f64,
    /// Fraction of valid requests that must finish within the threshold, default 0.99.
    pub latency_target: f64,
    /// The latency bucket bounds your servers export, default the library's
    /// `modelwatch::buckets::LATENCY_SECONDS`. Only used to check the threshold.
    pub latency_buckets_seconds: Vec<f64>,
}

impl Default for SloConfig {
    fn default() -> Self {
        Self {
            availability_target: 0.999,
            latency_threshold_seconds: 0.025,
            latency_target: 0.99,
            latency_buckets_seconds: modelwatch::buckets::LATENCY_SECONDS.to_vec(),
        }
    }
}

/// Drift of the score and feature distributions against the model's reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftConfig {
    /// PSI above which a drift alert warns, default 0.1 ("moderate shift").
    pub psi_warning: f64,
    /// PSI above which a drift alert is critical, default 0.25 ("major shift").
    pub psi_critical: f64,
    /// The window the fleet's current distributions and approval ratio are measured
    /// over, default `1h`.
    pub window: PromDuration,
    /// How far back the week-over-week comparisons look, default `7d`.
    pub comparison_offset: PromDuration,
    /// Fewest predictions a drift window must hold before a drift alert or the
    /// approval-shift alert may fire, default 200. Over fewer, a PSI or a ratio is
    /// mostly sampling noise (see docs/drift.md).
    pub min_count: u64,
    /// How a drift statistic is compared with `psi_warning` and `psi_critical`:
    /// `noise` (the default) adds `noise_k` times the statistic's no-drift level for
    /// the window's count, `(bins - 1) / count` for PSI; `fixed` compares with the
    /// threshold alone.
    pub threshold: ThresholdMode,
    /// How many noise levels `threshold = "noise"` adds to each threshold, default 3.
    pub noise_k: f64,
}

/// How a drift alert's threshold depends on the window's sample size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    /// The configured threshold alone, whatever the window's count.
    Fixed,
    /// The configured threshold plus `noise_k` times the no-drift noise level.
    Noise,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            psi_warning: 0.1,
            psi_critical: 0.25,
            window: PromDuration::from_secs(3600),
            comparison_offset: PromDuration::from_secs(7 * 86_400),
            min_count: 200,
            threshold: ThresholdMode::Noise,
            noise_k: 3.0,
        }
    }
}

/// Feature freshness and missing values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureConfig {
    /// Largest acceptable feature age for a group not listed in `max_age`, default
    /// `1h`.
    pub max_age_default: PromDuration,
    /// Largest acceptable feature age per feature group, default `transaction = 5m`
    /// (computed from the request itself, so it is never old).
    pub max_age: BTreeMap<String, PromDuration>,
    /// Fraction of predictions with a feature missing above which the missing-value
    /// alert fires, default 0.05.
    pub missing_ratio_max: f64,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            max_age_default: PromDuration::from_secs(3600),
            max_age: BTreeMap::from([("transaction".to_string(), PromDuration::from_secs(300))]),
            missing_ratio_max: 0.05,
        }
    }
}

/// Serving thresholds outside the SLOs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServingConfig {
    /// Feature cache hit ratio below which the cache is said to collapse, default 0.9.
    pub cache_hit_ratio_min: f64,
    /// Largest acceptable change of the approval ratio against `comparison_offset`
    /// ago, as an absolute fraction, default 0.05 (five points).
    pub approval_delta_max: f64,
    /// The `decision` values that count as approved: each served model's decision
    /// below its threshold (`task.decisions.below` in its card). Default `approved`
    /// (the bundled fraud model) and `negative` (a card's default).
    pub approved_decisions: Vec<String>,
    /// Fewest feature cache lookups in the 5m window before the cache-collapse alert
    /// may fire, default 100: a hit ratio over a handful of lookups is noise.
    pub cache_min_lookups: u64,
}

impl Default for ServingConfig {
    fn default() -> Self {
        Self {
            cache_hit_ratio_min: 0.9,
            approval_delta_max: 0.05,
            approved_decisions: vec!["approved".into(), "negative".into()],
            cache_min_lookups: 100,
        }
    }
}

/// The `for:` duration of each alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertForConfig {
    /// Page on a 14.4x burn over 1h and 5m, default `2m`.
    pub burn_page_1h: PromDuration,
    /// Page on a 6x burn over 6h and 30m, default `15m`.
    pub burn_page_6h: PromDuration,
    /// Ticket on a 3x burn over 1d and 2h, default `1h`.
    pub burn_ticket_1d: PromDuration,
    /// Ticket on a 1x burn over 3d and 6h, default `3h`.
    pub burn_ticket_3d: PromDuration,
    /// Score drift (warning and critical), default `15m`.
    pub score_drift: PromDuration,
    /// Feature drift (warning and critical), default `30m`.
    pub feature_drift: PromDuration,
    /// A feature group older than its maximum age, default `5m`.
    pub stale_features: PromDuration,
    /// A burst of missing feature values, default `10m`.
    pub missing_values: PromDuration,
    /// The approval ratio moved against last week, default `30m`.
    pub approval_shift: PromDuration,
    /// The feature cache hit ratio below its floor, default `15m`.
    pub cache_collapse: PromDuration,
    /// A model that serves no request, default `10m`.
    pub no_traffic: PromDuration,
    /// A scrape target down, default `5m`.
    pub target_down: PromDuration,
    /// More than one version of a model serving traffic, default `2h` (longer than
    /// a normal canary or rollout).
    pub version_skew: PromDuration,
    /// The collector dropping prediction events, default `10m`.
    pub observations_dropped: PromDuration,
}

impl Default for AlertForConfig {
    fn default() -> Self {
        let m = |minutes: u64| PromDuration::from_secs(minutes * 60);
        Self {
            burn_page_1h: m(2),
            burn_page_6h: m(15),
            burn_ticket_1d: m(60),
            burn_ticket_3d: m(180),
            score_drift: m(15),
            feature_drift: m(30),
            stale_features: m(5),
            missing_values: m(10),
            approval_shift: m(30),
            cache_collapse: m(15),
            no_traffic: m(10),
            target_down: m(5),
            version_skew: m(120),
            observations_dropped: m(10),
        }
    }
}

/// Where runbook links point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunbookConfig {
    /// URL of the rendered `runbook.md`; each alert links to
    /// `<base_url>#<alert name in lower case>`. Default: the file in the project's
    /// repository.
    pub base_url: String,
}

impl Default for RunbookConfig {
    fn default() -> Self {
        Self {
            base_url: "https://github.com/modelwatch/modelwatch/blob/main/mixin/runbook.md".into(),
        }
    }
}

/// The Grafana dashboard's identity and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Stable dashboard uid, so links and provisioning survive regeneration, default
    /// `modelwatch-model-health`.
    pub uid: String,
    /// Dashboard title, default `ModelWatch / Model health`.
    pub title: String,
    /// Auto-refresh interval, default `30s`.
    pub refresh: String,
    /// Start of the default time range, default `now-6h` (the range ends at `now`).
    pub time_from: String,
    /// Label matchers, without braces, that select the model server's containers in
    /// cAdvisor and DCGM exporter series for the infrastructure row, default
    /// `container="modelwatch"`.
    pub infrastructure_selector: String,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            uid: "modelwatch-model-health".into(),
            title: "ModelWatch / Model health".into(),
            refresh: "30s".into(),
            time_from: "now-6h".into(),
            infrastructure_selector: r#"container="modelwatch""#.into(),
        }
    }
}

/// A configuration that cannot produce a sound mixin.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid mixin config: {field}: {reason}")]
pub struct ConfigError {
    /// The offending field, as written in TOML (`slo.latency_target`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}

impl MixinConfig {
    /// Reads a config from TOML text; missing fields take their defaults.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| invalid("(file)", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The defaults as commented TOML: what `--print-default-config` writes.
    pub fn default_toml() -> String {
        let body = toml::to_string(&Self::default()).unwrap_or_default();
        let mut out = String::from(
            "# modelwatch mixin settings. Every field is optional; these are the defaults.\n",
        );
        let mut section = String::new();
        for line in body.lines() {
            let key = if let Some(name) = line.strip_prefix('[') {
                section = name.trim_end_matches(']').to_string();
                Some(section.clone())
            } else {
                line.split_once(" = ").map(|(k, _)| {
                    if section.is_empty() {
                        k.to_string()
                    } else {
                        format!("{section}.{k}")
                    }
                })
            };
            if let Some(doc) = key.and_then(|k| field_doc(&k)) {
                if line.starts_with('[') {
                    out.push('\n');
                }
                out.push_str("# ");
                out.push_str(doc);
                out.push('\n');
            } else if line.starts_with('[') {
                out.push('\n');
            }
            if !line.is_empty() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Checks that thresholds are in range and that the selector and label values
    /// can be placed in PromQL.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.time_scale > 0.0 && self.time_scale <= 1.0) {
            return Err(invalid("time_scale", "must be in (0, 1]"));
        }
        if self.selector.contains(['{', '}']) {
            return Err(invalid("selector", "write the matchers without braces"));
        }
        let fraction = |field: &str, v: f64| {
            if v > 0.0 && v < 1.0 {
                Ok(())
            } else {
                Err(invalid(field, format!("{v} is not a fraction in (0, 1)")))
            }
        };
        fraction("slo.availability_target", self.slo.availability_target)?;
        fraction("slo.latency_target", self.slo.latency_target)?;
        fraction(
            "features.missing_ratio_max",
            self.features.missing_ratio_max,
        )?;
        fraction(
            "serving.cache_hit_ratio_min",
            self.serving.cache_hit_ratio_min,
        )?;
        fraction(
            "serving.approval_delta_max",
            self.serving.approval_delta_max,
        )?;
        if self.serving.approved_decisions.is_empty() {
            return Err(invalid(
                "serving.approved_decisions",
                "name at least one decision (a card's task.decisions.below)",
            ));
        }
        for name in &self.serving.approved_decisions {
            // The same rule as a card's decision names.
            if let Err(e) = modelwatch::labels::check_decision_name(name) {
                return Err(invalid("serving.approved_decisions", e.to_string()));
            }
        }
        let threshold = self.slo.latency_threshold_seconds;
        if !self.slo.latency_buckets_seconds.contains(&threshold) {
            return Err(invalid(
                "slo.latency_threshold_seconds",
                format!(
                    "{threshold} is not a latency bucket bound; choose one of {:?}",
                    self.slo.latency_buckets_seconds
                ),
            ));
        }
        if !(self.drift.psi_warning > 0.0 && self.drift.psi_warning < self.drift.psi_critical) {
            return Err(invalid(
                "drift.psi_warning",
                "must be positive and below drift.psi_critical",
            ));
        }
        if self.drift.min_count == 0 {
            return Err(invalid(
                "drift.min_count",
                "must be at least 1 (a window without predictions has no distribution)",
            ));
        }
        if !(self.drift.noise_k.is_finite() && self.drift.noise_k >= 0.0) {
            return Err(invalid(
                "drift.noise_k",
                format!("{} is not a non-negative number", self.drift.noise_k),
            ));
        }
        if self.serving.cache_min_lookups == 0 {
            return Err(invalid("serving.cache_min_lookups", "must be at least 1"));
        }
        for group in self.features.max_age.keys() {
            if group.is_empty() || group.contains(['"', '\\']) {
                return Err(invalid(
                    "features.max_age",
                    format!("{group:?} is not a feature group name"),
                ));
            }
        }
        if self.dashboard.infrastructure_selector.contains(['{', '}']) {
            return Err(invalid(
                "dashboard.infrastructure_selector",
                "write the matchers without braces",
            ));
        }
        for (field, value) in [
            ("dashboard.uid", &self.dashboard.uid),
            ("dashboard.title", &self.dashboard.title),
            ("dashboard.refresh", &self.dashboard.refresh),
            ("dashboard.time_from", &self.dashboard.time_from),
            ("runbook.base_url", &self.runbook.base_url),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(field, "must not be empty"));
            }
        }
        if self.runbook.base_url.contains('#') {
            return Err(invalid(
                "runbook.base_url",
                "the alert anchor is appended; drop the '#' fragment",
            ));
        }
        Ok(())
    }

    /// `d` scaled by [`MixinConfig::time_scale`], as written in PromQL.
    pub fn scaled(&self, d: PromDuration) -> PromDuration {
        d.scaled(self.time_scale)
    }

    /// The largest acceptable age of `group`.
    pub fn max_age(&self, group: &str) -> PromDuration {
        self.features
            .max_age
            .get(group)
            .copied()
            .unwrap_or(self.features.max_age_default)
    }
}

/// One comment per field and section of the default TOML.
const FIELD_DOCS: &[(&str, &str)] = &[
    (
        "selector",
        "Label matchers (no braces) that select modelwatch's own series.",
    ),
    (
        "time_scale",
        "Multiplies every window, offset and for: (tests use 1/60); rule names keep nominal windows.",
    ),
    (
        "slo",
        "SLOs over valid requests (every status but rejected and cancelled).",
    ),
    (
        "slo.availability_target",
        "Share of valid requests that must not fail (error, timeout, overloaded).",
    ),
    (
        "slo.latency_threshold_seconds",
        "Latency SLO threshold: must be a latency bucket bound.",
    ),
    (
        "slo.latency_target",
        "Share of valid requests that must finish within the threshold.",
    ),
    (
        "slo.latency_buckets_seconds",
        "The latency bucket bounds your servers export.",
    ),
    (
        "drift",
        "Score and feature drift against the model's reference.",
    ),
    ("drift.psi_warning", "PSI above which drift alerts warn."),
    (
        "drift.psi_critical",
        "PSI above which drift alerts are critical.",
    ),
    (
        "drift.window",
        "Window of the fleet's current distributions and approval ratio.",
    ),
    (
        "drift.comparison_offset",
        "How far back week-over-week comparisons look.",
    ),
    (
        "drift.min_count",
        "Fewest predictions in the window before drift or approval alerts may fire.",
    ),
    (
        "drift.threshold",
        "\"noise\": threshold + noise_k x the no-drift level for the count; \"fixed\": threshold alone.",
    ),
    (
        "drift.noise_k",
        "Noise levels added to each drift threshold when threshold = \"noise\".",
    ),
    ("features", "Feature freshness and missing values."),
    (
        "features.max_age_default",
        "Largest feature age of a group not listed in max_age.",
    ),
    (
        "features.missing_ratio_max",
        "Share of predictions missing a feature above which an alert fires.",
    ),
    ("features.max_age", "Largest feature age per feature group."),
    ("serving", "Serving thresholds outside the SLOs."),
    (
        "serving.cache_hit_ratio_min",
        "Feature cache hit ratio floor.",
    ),
    (
        "serving.approval_delta_max",
        "Largest change of the approval ratio against comparison_offset ago.",
    ),
    (
        "serving.approved_decisions",
        "Decision values that count as approved: each card's task.decisions.below.",
    ),
    (
        "serving.cache_min_lookups",
        "Fewest cache lookups in 5m before the cache-collapse alert may fire.",
    ),
    (
        "alert_for",
        "How long each alert's condition must hold (for:).",
    ),
    ("alert_for.burn_page_1h", "Page: 14.4x burn over 1h and 5m."),
    ("alert_for.burn_page_6h", "Page: 6x burn over 6h and 30m."),
    (
        "alert_for.burn_ticket_1d",
        "Ticket: 3x burn over 1d and 2h.",
    ),
    (
        "alert_for.burn_ticket_3d",
        "Ticket: 1x burn over 3d and 6h.",
    ),
    (
        "alert_for.score_drift",
        "Score drift, warning and critical.",
    ),
    (
        "alert_for.feature_drift",
        "Feature drift, warning and critical.",
    ),
    (
        "alert_for.stale_features",
        "A feature group older than its maximum age.",
    ),
    (
        "alert_for.missing_values",
        "A feature missing in too many predictions.",
    ),
    (
        "alert_for.approval_shift",
        "The approval ratio moved against comparison_offset ago.",
    ),
    (
        "alert_for.cache_collapse",
        "The cache hit ratio below its floor.",
    ),
    ("alert_for.no_traffic", "A model that serves no request."),
    ("alert_for.target_down", "A scrape target down."),
    (
        "alert_for.version_skew",
        "Several versions of a model serving together.",
    ),
    (
        "alert_for.observations_dropped",
        "The collector dropping a monitor-only model's events.",
    ),
    ("runbook", "Where alerts' runbook_url point."),
    (
        "runbook.base_url",
        "URL of runbook.md; each alert appends #<alertname in lower case>.",
    ),
    ("dashboard", "The Grafana dashboard."),
    (
        "dashboard.uid",
        "Stable uid, so links survive regeneration.",
    ),
    ("dashboard.title", "Dashboard title."),
    ("dashboard.refresh", "Auto-refresh interval."),
    (
        "dashboard.time_from",
        "Start of the default time range (it ends at now).",
    ),
    (
        "dashboard.infrastructure_selector",
        "Matchers (no braces) for cAdvisor and DCGM series of the model's containers.",
    ),
];

fn field_doc(key: &str) -> Option<&'static str> {
    FIELD_DOCS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, doc)| *doc)
}

/// A duration in whole seconds, written like a Prometheus duration (`90s`, `5m`,
/// `1h`, `7d`, `1w`) in TOML and in PromQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromDuration(u64);

impl PromDuration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs)
    }

    /// Length in seconds.
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// Multiplied by `factor`, rounded to whole seconds and at least 1 s.
    pub fn scaled(self, factor: f64) -> Self {
        if factor == 1.0 {
            return self;
        }
        Self(((self.0 as f64 * factor).round() as u64).max(1))
    }

    /// Parses `90s`, `5m`, `1h`, `7d`, `1w` or a compound such as `1h30m`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut total: u64 = 0;
        let mut number = String::new();
        if text.is_empty() {
            return Err("an empty duration".into());
        }
        for c in text.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => {
                    return Err(format!(
                        "{text:?}: unknown unit {c:?} (use s, m, h, d or w)"
                    ));
                }
            };
            let n: u64 = number
                .parse()
                .map_err(|_| format!("{text:?}: a unit without a number"))?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("{text:?} is too long"))?;
            number.clear();
        }
        if !number.is_empty() {
            return Err(format!("{text:?}: a number without a unit"));
        }
        if total == 0 {
            return Err(format!("{text:?} is zero"));
        }
        Ok(Self(total))
    }
}

impl fmt::Display for PromDuration {
    /// The largest single unit that divides the duration exactly: `7d`, `90m`, `45s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        for (unit, secs) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if s > 0 && s % secs == 0 {
                return write!(f, "{}{unit}", s / secs);
            }
        }
        write!(f, "{s}s")
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_through_their_text() {
        for (text, secs) in [("90s", 90), ("5m", 300), ("1h", 3600), ("7d", 604_800)] {
            let d = PromDuration::parse(text).unwrap();
            assert_eq!(d.as_secs(), secs);
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(PromDuration::parse("1h30m").unwrap().to_string(), "90m");
        assert_eq!(PromDuration::parse("1w").unwrap().to_string(), "7d");
        for bad in ["", "5", "m", "5x", "0s"] {
            assert!(PromDuration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scaling_rounds_to_whole_seconds_and_never_reaches_zero() {
        let scale = |text: &str, factor: f64| {
            PromDuration::parse(text)
                .unwrap()
                .scaled(factor)
                .to_string()
        };
        assert_eq!(scale("1h", 1.0 / 60.0), "1m");
        assert_eq!(scale("5m", 1.0 / 60.0), "5s");
        assert_eq!(scale("7d", 1.0 / 60.0), "168m");
        assert_eq!(scale("30s", 0.001), "1s");
    }

    #[test]
    fn the_default_config_round_trips_and_is_valid() {
        let text = MixinConfig::default_toml();
        assert_eq!(
            MixinConfig::from_toml(&text).unwrap(),
            MixinConfig::default()
        );
        assert_eq!(MixinConfig::from_toml("").unwrap(), MixinConfig::default());
    }

    #[test]
    fn every_printed_field_and_section_has_a_comment() {
        let text = MixinConfig::default_toml();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let is_field = line.contains(" = ") && !line.starts_with('#');
            let in_map = i > 0
                && lines[..i].iter().rev().find(|l| l.starts_with('['))
                    == Some(&"[features.max_age]");
            if (is_field && !in_map) || line.starts_with('[') {
                assert!(
                    i > 0 && lines[i - 1].starts_with("# "),
                    "no comment above {line:?} in\n{text}"
                );
            }
        }
    }

    #[test]
    fn unusable_settings_name_their_field() {
        let err = |text: &str| MixinConfig::from_toml(text).unwrap_err().field;
        assert_eq!(
            err("[slo]\nlatency_threshold_seconds = 0.03"),
            "slo.latency_threshold_seconds"
        );
        assert_eq!(
            err("[slo]\navailability_target = 99.9"),
            "slo.availability_target"
        );
        assert_eq!(err("time_scale = 0"), "time_scale");
        assert_eq!(err("[drift]\npsi_warning = 0.3"), "drift.psi_warning");
        assert_eq!(err("selector = '{job=\"x\"}'"), "selector");
        assert_eq!(err("[drift]\nwindow = \"1x\""), "(file)");
        assert_eq!(err("[drift]\nmin_count = 0"), "drift.min_count");
        assert_eq!(err("[drift]\nnoise_k = -1.0"), "drift.noise_k");
        assert_eq!(err("[drift]\nthreshold = \"loose\""), "(file)");
        assert_eq!(
            err("[serving]\ncache_min_lookups = 0"),
            "serving.cache_min_lookups"
        );
        assert_eq!(err("unknown = 1"), "(file)");
    }
}
