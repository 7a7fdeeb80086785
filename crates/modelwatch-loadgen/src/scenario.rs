//! Module implementing incident scenarios: a timeline of phases, each with simulator
//! knobs and server faults. See [`Scenario`] for details.
//!
//! Every scenario starts with a clean baseline (the first 30% of the run), then the
//! incident runs to the end, so the alert it names has time to fire. Faults are set
//! through the server's `/admin/faults` (only present with
//! `--enable-fault-injection`) and cleared when the run ends.

use modelwatch_mixin::names::alert;
use modelwatch_sim::TrafficKnobs;
use std::time::Duration;

/// One phase of a scenario.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Short name, shown in the progress bar.
    pub name: &'static str,
    /// When it starts, as a fraction of the run.
    pub start_fraction: f64,
    /// Simulator knobs while it lasts.
    pub knobs: TrafficKnobs,
    /// Faults to set on the server (JSON for `/admin/faults`), or `None` to leave them.
    pub faults: Option<serde_json::Value>,
    /// A shell command run when the phase starts (the `store_down` scenario stops
    /// and restarts a real store with the commands given to loadgen).
    pub command: Option<String>,
}

/// A named incident timeline.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name, as given to `--scenario`.
    pub name: &'static str,
    /// What happens, in a sentence.
    pub description: &'static str,
    /// The alert that must fire (the `alertname`), or `None` for clean traffic.
    pub expected_alert: Option<&'static str>,
    /// Phases in start order.
    pub phases: Vec<Phase>,
}

/// Where the incident starts, as a fraction of the run.
pub const INCIDENT_START: f64 = 0.3;

fn no_faults() -> serde_json::Value {
    serde_json::json!({})
}

fn incident(
    name: &'static str,
    description: &'static str,
    expected_alert: &'static str,
    knobs: TrafficKnobs,
    faults: serde_json::Value,
) -> Scenario {
    Scenario {
        name,
        description,
        expected_alert: Some(expected_alert),
        phases: vec![
            Phase {
                name: "baseline",
                start_fraction: 0.0,
                knobs: TrafficKnobs::default(),
                faults: Some(no_faults()),
                command: None,
            },
            Phase {
                name,
                start_fraction: INCIDENT_START,
                knobs,
                faults: Some(faults),
                command: None,
            },
        ],
    }
}

/// The names of every scenario, for `--help` and errors.
pub const NAMES: &[&str] = &[
    "clean",
    "score_drift",
    "feature_drift",
    "stale_features",
    "null_burst",
    "slow_store",
    "error_burst",
    "approval_shift",
    "cache_collapse",
    "store_down",
    "concept_drift",
    "label_delay",
];

/// Where the store comes back in the `store_down` scenario, as a fraction of the run.
pub const STORE_RESTORED: f64 = 0.8;

impl Scenario {
    /// The scenario called `name`.
    pub fn named(name: &str) -> Result<Self, String> {
        let base = TrafficKnobs::default();
        let scenario = match name {
            "clean" => Scenario {
                name: "clean",
                description: "steady traffic from the reference population; nothing must fire",
                expected_alert: None,
                phases: vec![Phase {
                    name: "clean",
                    start_fraction: 0.0,
                    knobs: base,
                    faults: None,
                    command: None,
                }],
            },
            "score_drift" => incident(
                "score_drift",
                "the fraud mix rises thirtyfold (an attack wave): the score distribution shifts",
                alert::SCORE_DRIFT_CRITICAL,
                TrafficKnobs {
                    fraud_multiplier: 30.0,
                    ..base
                },
                no_faults(),
            ),
            "feature_drift" => incident(
                "feature_drift",
                "amounts fall to a third (a currency or upstream unit change)",
                alert::FEATURE_DRIFT_CRITICAL,
                TrafficKnobs {
                    amount_scale: 0.3,
                    ..base
                },
                no_faults(),
            ),
            "stale_features" => incident(
                "stale_features",
                "the batch pipeline stops refreshing the terminal feature group",
                alert::FEATURES_STALE,
                base,
                serde_json::json!({"paused_groups": ["terminal"]}),
            ),
            "null_burst" => incident(
                "null_burst",
                "an upstream join breaks: terminal_risk_7d goes missing in every prediction",
                alert::FEATURE_VALUES_MISSING,
                base,
                serde_json::json!({"missing_feature": "terminal_risk_7d"}),
            ),
            "slow_store" => incident(
                "slow_store",
                "the feature store slows to 40 ms per call and the cache is bypassed",
                alert::LATENCY_BUDGET_BURN,
                base,
                serde_json::json!({"store_delay_ms": 40, "cache_disabled": true}),
            ),
            "error_burst" => incident(
                "error_burst",
                "one prediction in five fails inside the server",
                alert::ERROR_BUDGET_BURN,
                base,
                serde_json::json!({"error_ratio": 0.2}),
            ),
            "approval_shift" => incident(
                "approval_shift",
                "amounts rise 2.5x upstream (a pricing or currency change): the model declines far more than last week",
                alert::APPROVAL_RATIO_SHIFT,
                TrafficKnobs {
                    amount_scale: 2.5,
                    ..base
                },
                no_faults(),
            ),
            "cache_collapse" => incident(
                "cache_collapse",
                "the feature cache stops serving (every lookup goes to the store)",
                alert::FEATURE_CACHE_COLLAPSE,
                base,
                serde_json::json!({"cache_disabled": true}),
            ),
            "store_down" => {
                let mut s = incident(
                    "store_down",
                    "the feature store goes down (every lookup fails), then comes back",
                    alert::FEATURE_STORE_FAILING,
                    base,
                    serde_json::json!({"store_down": true, "cache_disabled": true}),
                );
                s.phases.push(Phase {
                    name: "store_restored",
                    start_fraction: STORE_RESTORED,
                    knobs: base,
                    faults: Some(no_faults()),
                    command: None,
                });
                s
            }
            "concept_drift" => incident(
                "concept_drift",
                "a new fraud pattern the features do not show: the labels say fraud where the scores do not (send labels with --label-delay)",
                alert::CONCEPT_DRIFT,
                base,
                no_faults(),
            ),
            "label_delay" => incident(
                "label_delay",
                "the label feed stops: predictions go on, no label arrives (send labels with --label-delay)",
                alert::LABEL_COVERAGE_LOW,
                base,
                no_faults(),
            ),
            other => {
                return Err(format!(
                    "unknown scenario {other:?}\nhint: choose one of {}",
                    NAMES.join(", ")
                ));
            }
        };
        Ok(scenario)
    }

    /// The phase in force at `offset` into a run of `total`.
    pub fn phase_at_fraction(&self, fraction: f64) -> Option<(usize, &Phase)> {
        self.phases
            .iter()
            .enumerate()
            .rev()
            .find(|(_, p)| p.start_fraction <= fraction)
    }

    /// The `store_down` scenario against a real store: `stop` runs when the
    /// incident starts and `start` when the store comes back (shell commands, such as
    /// `kill -KILL $(cat redis.pid)` and a restart), instead of the `store_down`
    /// fault. Other scenarios are unchanged.
    pub fn with_store_commands(mut self, stop: &str, start: &str) -> Self {
        if self.name != "store_down" {
            return self;
        }
        for phase in &mut self.phases {
            match phase.name {
                "store_down" => {
                    phase.command = Some(stop.to_string());
                    phase.faults = Some(serde_json::json!({"cache_disabled": true}));
                }
                "store_restored" => phase.command = Some(start.to_string()),
                _ => {}
            }
        }
        self
    }

    /// Whether the incident is in the labels (its [`label_mode`] leaves the ground
    /// truth: `concept_drift`, `label_delay`): its alert reads delayed labels, so the
    /// traffic must send them.
    pub fn needs_labels(&self) -> bool {
        label_mode(self.name, 1.0) != LabelMode::Truth
    }

    /// Whether any phase sets faults on the server.
    pub fn injects_faults(&self) -> bool {
        self.phases.iter().any(|p| {
            p.faults
                .as_ref()
                .and_then(|f| f.as_object())
                .is_some_and(|o| !o.is_empty())
        })
    }

    /// When the incident starts in a run of `total`, if there is one.
    pub fn incident_start(&self, total: Duration) -> Option<Duration> {
        self.expected_alert.map(|_| total.mul_f64(INCIDENT_START))
    }
}

/// What the delayed labels report in a phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LabelMode {
    /// The simulator's ground truth.
    Truth,
    /// No label at all (the label feed stopped).
    Stopped,
    /// A new fraud pattern the features do not show: besides the simulator's frauds,
    /// this share of the genuine transactions turn out to be fraud. The scores stay
    /// put, so only the labels see it.
    NewFraud(f64),
}

/// Share of genuine transactions labelled fraud in `concept_drift`: five times the
/// simulator's fraud rate, so recall falls far below its estimate.
pub const CONCEPT_DRIFT_NEW_FRAUD: f64 = 0.05;

impl LabelMode {
    /// The label of transaction number `i`, or `None` when none is sent.
    pub fn truth(self, is_fraud: bool, i: u64) -> Option<bool> {
        match self {
            LabelMode::Truth => Some(is_fraud),
            LabelMode::Stopped => None,
            LabelMode::NewFraud(share) => {
                // A fixed spread over the transaction numbers, the same every run.
                let u = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
                Some(is_fraud || u < share)
            }
        }
    }
}

/// The labels of scenario `name` at `fraction` of the run: `label_delay` stops them
/// and `concept_drift` adds a new fraud pattern, both from [`INCIDENT_START`].
pub fn label_mode(name: &str, fraction: f64) -> LabelMode {
    match name {
        "label_delay" if fraction >= INCIDENT_START => LabelMode::Stopped,
        "concept_drift" if fraction >= INCIDENT_START => {
            LabelMode::NewFraud(CONCEPT_DRIFT_NEW_FRAUD)
        }
        _ => LabelMode::Truth,
    }
}

/// Sets faults on the server.
pub async fn apply_faults(
    client: &reqwest::Client,
    admin: &str,
    faults: &serde_json::Value,
) -> anyhow::Result<()> {
    let url = format!("{}/admin/faults", admin.trim_end_matches('/'));
    let response = client.post(&url).json(faults).send().await.map_err(|e| {
        anyhow::anyhow!("cannot reach {url}: {e}\nhint: start the server with --enable-fault-injection and pass its metrics address with --admin")
    })?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!(
            "{url} answered {status}: {body}\nhint: fault injection needs `modelwatch serve --enable-fault-injection`"
        );
    }
    Ok(())
}

/// Runs a phase's shell command (`sh -c`), off the runtime, failing when it fails.
pub async fn run_command(command: String) -> anyhow::Result<()> {
    let shown = command.clone();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .status()
    })
    .await??;
    anyhow::ensure!(
        status.success(),
        "the scenario's command `{shown}` failed ({status})\nhint: check --store-stop-command and --store-start-command"
    );
    Ok(())
}

/// Clears every fault on the server.
pub async fn clear_faults(client: &reqwest::Client, admin: &str) -> anyhow::Result<()> {
    let url = format!("{}/admin/faults", admin.trim_end_matches('/'));
    client.delete(&url).send().await?.error_for_status()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_scenario_exists_and_incidents_start_after_a_baseline() {
        for name in NAMES {
            let s = Scenario::named(name).unwrap();
            assert_eq!(s.name, *name);
            assert_eq!(s.phase_at_fraction(0.0).unwrap().0, 0);
            if s.expected_alert.is_some() {
                assert_eq!(s.phase_at_fraction(0.5).unwrap().1.name, *name);
                assert_eq!(s.phase_at_fraction(0.29).unwrap().1.name, "baseline");
            }
        }
        assert!(Scenario::named("gpu_melt").unwrap_err().contains("hint:"));
        assert!(!Scenario::named("clean").unwrap().injects_faults());
        assert!(Scenario::named("slow_store").unwrap().injects_faults());
        let real = Scenario::named("store_down")
            .unwrap()
            .with_store_commands("stop it", "start it");
        assert_eq!(
            real.phase_at_fraction(0.5).unwrap().1.command.as_deref(),
            Some("stop it")
        );
        let restored = real.phase_at_fraction(0.9).unwrap().1;
        assert_eq!(restored.name, "store_restored");
        assert_eq!(restored.command.as_deref(), Some("start it"));
        assert!(
            !real.phases[1]
                .faults
                .as_ref()
                .unwrap()
                .to_string()
                .contains("store_down")
        );
    }

    #[test]
    fn label_modes_follow_the_scenario() {
        assert_eq!(label_mode("label_delay", 0.1), LabelMode::Truth);
        assert!(Scenario::named("label_delay").unwrap().needs_labels());
        assert!(Scenario::named("concept_drift").unwrap().needs_labels());
        assert!(!Scenario::named("score_drift").unwrap().needs_labels());
        assert_eq!(label_mode("label_delay", 0.5).truth(true, 1), None);
        assert_eq!(label_mode("clean", 0.9).truth(true, 1), Some(true));
        let drifted = label_mode("concept_drift", 0.5);
        assert_eq!(drifted.truth(true, 7), Some(true));
        let new_fraud = (0..10_000)
            .filter(|i| drifted.truth(false, *i) == Some(true))
            .count();
        assert!((400..600).contains(&new_fraud), "{new_fraud}");
    }
}
