//! `modelwatch status`: is the model healthy? A verdict in 10 seconds or less, with the
//! key numbers and the reasons, from Prometheus (the recording rules and the firing
//! alerts) or, without Prometheus, from two scrapes of a server's `/metrics`.
//!
//! Verdicts and exit codes: `HEALTHY` 0, `DEGRADED` 1, `UNHEALTHY` 2, and
//! [`CANNOT_JUDGE`] (3) for every failure to judge: a usage error, an unreadable or
//! invalid config, a source that cannot be read. A script can tell "the model is
//! unhealthy" from "status could not look". Thresholds are the mixin's (`--config
//! mixin.toml`), so the terminal and the alerts agree.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cli;
pub mod scrape;
pub mod source;

use modelwatch_mixin::MixinConfig;
use serde::Serialize;

/// The exit code when no verdict could be reached (never a [`Verdict`]'s).
pub const CANNOT_JUDGE: u8 = 3;

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Nothing wrong.
    Healthy,
    /// Something needs attention soon.
    Degraded,
    /// Something needs attention now.
    Unhealthy,
}

impl Verdict {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Healthy => 0,
            Verdict::Degraded => 1,
            Verdict::Unhealthy => 2,
        }
    }

    /// As printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "HEALTHY",
            Verdict::Degraded => "DEGRADED",
            Verdict::Unhealthy => "UNHEALTHY",
        }
    }
}

/// A firing alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiringAlert {
    /// `alertname`.
    pub name: String,
    /// `severity` label.
    pub severity: String,
    /// The other identifying labels (`model`, `feature`, ...), as `k=v`.
    pub labels: Vec<String>,
}

/// The key numbers. `None` means the source had no value (no traffic yet, no week of
/// history, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Requests per second.
    pub rps: Option<f64>,
    /// Failed over valid requests.
    pub error_ratio: Option<f64>,
    /// End-to-end p99 in seconds.
    pub p99_seconds: Option<f64>,
    /// Score PSI against the reference.
    pub score_psi: Option<f64>,
    /// The worst feature PSI and its feature.
    pub worst_feature_psi: Option<(String, f64)>,
    /// Approval ratio minus the same window a week ago.
    pub approval_delta: Option<f64>,
    /// The oldest feature age in seconds, and its group.
    pub worst_feature_age: Option<(String, f64)>,
    /// Feature cache hit ratio.
    pub cache_hit_ratio: Option<f64>,
}

/// A complete reading.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where it came from.
    pub source: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The numbers.
    pub figures: Figures,
    /// Why the verdict is not HEALTHY (or notes).
    pub reasons: Vec<String>,
    /// Alerts firing (Prometheus source only).
    pub firing: Vec<FiringAlert>,
}

/// Judges figures and firing alerts against the mixin's thresholds.
pub fn judge(
    figures: &Figures,
    firing: &[FiringAlert],
    config: &MixinConfig,
) -> (Verdict, Vec<String>) {
    let mut verdict = Verdict::Healthy;
    let mut reasons = Vec::new();
    let mut flag = |v: Verdict, reason: String| {
        verdict = verdict.max(v);
        reasons.push(reason);
    };
    for alert in firing {
        let v = if alert.severity == modelwatch_mixin::alerts::CRITICAL {
            Verdict::Unhealthy
        } else {
            Verdict::Degraded
        };
        flag(
            v,
            format!(
                "alert {} firing ({}) {}",
                alert.name,
                alert.severity,
                alert.labels.join(" ")
            ),
        );
    }
    match figures.rps {
        Some(rps) if rps > 0.0 => {}
        _ => flag(Verdict::Degraded, "no traffic".into()),
    }
    let budget = 1.0 - config.slo.availability_target;
    if let Some(e) = figures.error_ratio {
        if e > 14.4 * budget {
            flag(
                Verdict::Unhealthy,
                format!(
                    "error ratio {:.2}% burns the error budget over 14x too fast",
                    e * 100.0
                ),
            );
        } else if e > budget {
            flag(
                Verdict::Degraded,
                format!(
                    "error ratio {:.2}% is above the SLO's {:.2}%",
                    e * 100.0,
                    budget * 100.0
                ),
            );
        }
    }
    if let Some(p99) = figures.p99_seconds {
        if p99 > config.slo.latency_threshold_seconds {
            flag(
                Verdict::Degraded,
                format!(
                    "p99 {:.1} ms is above the {:.0} ms latency SLO threshold",
                    p99 * 1e3,
                    config.slo.latency_threshold_seconds * 1e3
                ),
            );
        }
    }
    let psi = |what: &str, value: f64, flag: &mut dyn FnMut(Verdict, String)| {
        if value >= config.drift.psi_critical {
            flag(
                Verdict::Unhealthy,
                format!(
                    "{what} PSI {value:.3} is at or above {}",
                    config.drift.psi_critical
                ),
            );
        } else if value >= config.drift.psi_warning {
            flag(
                Verdict::Degraded,
                format!(
                    "{what} PSI {value:.3} is at or above {}",
                    config.drift.psi_warning
                ),
            );
        }
    };
    if let Some(v) = figures.score_psi {
        psi("score", v, &mut flag);
    }
    if let Some((feature, v)) = &figures.worst_feature_psi {
        psi(&format!("feature {feature}"), *v, &mut flag);
    }
    if let Some(d) = figures.approval_delta {
        if d.abs() > config.serving.approval_delta_max {
            flag(
                Verdict::Degraded,
                format!(
                    "approval ratio moved {:+.1} points against a week ago",
                    d * 100.0
                ),
            );
        }
    }
    if let Some((group, age)) = &figures.worst_feature_age {
        let max = config
            .features
            .max_age
            .get(group)
            .unwrap_or(&config.features.max_age_default)
            .as_secs() as f64;
        if *age > max {
            flag(
                Verdict::Degraded,
                format!("feature group {group} is {age:.0} s old (limit {max:.0} s)"),
            );
        }
    }
    if let Some(h) = figures.cache_hit_ratio {
        if h < config.serving.cache_hit_ratio_min {
            flag(
                Verdict::Degraded,
                format!(
                    "feature cache hit ratio {:.2} is below {}",
                    h, config.serving.cache_hit_ratio_min
                ),
            );
        }
    }
    (verdict, reasons)
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

impl Report {
    /// The board, as printed in a terminal.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let f = &self.figures;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "modelwatch status: {}   ({})",
            self.verdict.as_str(),
            self.source
        );
        let rows = [
            ("requests/s", fmt_opt(f.rps, |v| format!("{v:.1}"))),
            (
                "error ratio",
                fmt_opt(f.error_ratio, |v| format!("{:.3} %", v * 100.0)),
            ),
            (
                "p99 latency",
                fmt_opt(f.p99_seconds, |v| format!("{:.2} ms", v * 1e3)),
            ),
            ("score PSI", fmt_opt(f.score_psi, |v| format!("{v:.4}"))),
            (
                "worst feature PSI",
                f.worst_feature_psi
                    .as_ref()
                    .map(|(n, v)| format!("{v:.4} ({n})"))
                    .unwrap_or_else(|| "-".into()),
            ),
            (
                "approval delta 7d",
                fmt_opt(f.approval_delta, |v| format!("{:+.2} pts", v * 100.0)),
            ),
            (
                "worst feature age",
                f.worst_feature_age
                    .as_ref()
                    .map(|(g, v)| format!("{v:.0} s ({g})"))
                    .unwrap_or_else(|| "-".into()),
            ),
            (
                "cache hit ratio",
                fmt_opt(f.cache_hit_ratio, |v| format!("{v:.3}")),
            ),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "  {name:<20} {value}");
        }
        if !self.reasons.is_empty() {
            let _ = writeln!(out, "reasons:");
            for r in &self.reasons {
                let _ = writeln!(out, "  - {r}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Figures {
        Figures {
            rps: Some(200.0),
            error_ratio: Some(0.0),
            p99_seconds: Some(0.002),
            score_psi: Some(0.01),
            worst_feature_psi: Some(("amount".into(), 0.02)),
            approval_delta: None,
            worst_feature_age: Some(("terminal".into(), 30.0)),
            cache_hit_ratio: Some(0.97),
        }
    }

    #[test]
    fn clean_figures_are_healthy() {
        let (v, reasons) = judge(&healthy(), &[], &MixinConfig::default());
        assert_eq!((v, reasons.len()), (Verdict::Healthy, 0), "{reasons:?}");
    }

    #[test]
    fn thresholds_map_to_verdicts() {
        let config = MixinConfig::default();
        let mut f = healthy();
        f.score_psi = Some(0.3);
        assert_eq!(judge(&f, &[], &config).0, Verdict::Unhealthy);
        f.score_psi = Some(0.15);
        assert_eq!(judge(&f, &[], &config).0, Verdict::Degraded);
        let mut f = healthy();
        f.cache_hit_ratio = Some(0.2);
        let (v, reasons) = judge(&f, &[], &config);
        assert_eq!(v, Verdict::Degraded);
        assert!(reasons[0].contains("cache hit ratio"));
        let mut f = healthy();
        f.rps = Some(0.0);
        assert_eq!(judge(&f, &[], &config).0, Verdict::Degraded);
    }

    #[test]
    fn firing_alerts_decide_by_severity() {
        let alert = |severity: &str| FiringAlert {
            name: "ModelWatchX".into(),
            severity: severity.into(),
            labels: vec![],
        };
        let config = MixinConfig::default();
        assert_eq!(
            judge(&healthy(), &[alert("warning")], &config).0,
            Verdict::Degraded
        );
        assert_eq!(
            judge(&healthy(), &[alert("critical")], &config).0,
            Verdict::Unhealthy
        );
        assert_eq!(Verdict::Unhealthy.exit_code(), 2);
        for v in [Verdict::Healthy, Verdict::Degraded, Verdict::Unhealthy] {
            assert_ne!(v.exit_code(), CANNOT_JUDGE);
        }
    }
}
