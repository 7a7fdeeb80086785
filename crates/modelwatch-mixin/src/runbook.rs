//! Module implementing the runbook (`runbook.md`). See [`runbook`] for details.
//!
//! One section per alert name, headed `## <AlertName>` so that its anchor is the
//! name in lower case, the fragment of every `runbook_url`.

use crate::alerts::{BURN_RATES, percent_text, seconds_text};
use crate::config::{MixinConfig, ThresholdMode};
use crate::names::{alert, record};
use crate::promql::num;
use crate::rules::{Rule, RuleGroup};
use modelwatch::schema;
use std::fmt::Write as _;

/// What the on-call engineer reads for one alert.
struct Entry {
    meaning: String,
    checks: [String; 3],
    queries: Vec<String>,
}

/// When a drift alert may fire at all: the sample-size guard on `count`, and the
/// noise margin `noise` in noise mode.
fn guard_text(config: &MixinConfig, count: &str, noise: &str) -> String {
    let mut text = format!(
        " It needs at least {} predictions in the window (`{count}`, setting `drift.min_count`): over fewer, the statistic is mostly sampling noise and the alert stays silent.",
        config.drift.min_count
    );
    if config.drift.threshold == ThresholdMode::Noise {
        let _ = write!(
            text,
            " Each threshold is raised by {} times the statistic's no-drift level for the window's count (`{noise}`, which is `(bins - 1) / count` for PSI; setting `drift.noise_k`), so a quiet window needs a larger shift to page. docs/drift.md#sample-size derives the level and shows the simulation behind it.",
            num(config.drift.noise_k),
        );
    }
    text
}

fn entry(config: &MixinConfig, name: &str) -> Option<Entry> {
    let window = config.scaled(config.drift.window);
    let offset = config.scaled(config.drift.comparison_offset);
    let budget = percent_text(1.0 - config.slo.availability_target);
    let s = |text: &str| text.to_string();
    Some(match name {
        alert::ERROR_BUDGET_BURN => Entry {
            meaning: format!(
                "Valid requests (every status but `rejected` and `cancelled`) fail (`error`, `timeout` or `overloaded`) fast enough to spend the {} availability SLO's {budget} error budget too soon. Critical variants page: at 14.4x the budget is gone in about two days. Warning variants are tickets for a slow burn. The `long_window` and `short_window` labels say which variant fired.",
                percent_text(config.slo.availability_target)
            ),
            checks: [
                s(
                    "Which status dominates: the \"Requests by status\" panel. `timeout` points at a slow stage or feature store, `overloaded` at too little capacity, `error` at the server logs.",
                ),
                s(
                    "Whether one version or one replica is responsible: split the query below by `version`, or by `instance` on the raw counter. A new version points at a rollback.",
                ),
                s(
                    "Feature store errors (`model_kind:model_feature_store_errors:rate5m`) and the p95 by stage: a failing dependency shows there first.",
                ),
            ],
            queries: vec![format!(
                "{}{{model=\"<model>\"}}",
                record::burn_window(3600).errors
            )],
        },
        alert::LATENCY_BUDGET_BURN => Entry {
            meaning: format!(
                "Too many valid requests take longer than {} end to end: the {} latency SLO's budget burns too fast. Critical variants page, warning variants are tickets.",
                seconds_text(config.slo.latency_threshold_seconds),
                percent_text(config.slo.latency_target)
            ),
            checks: [
                s(
                    "Which stage got slower: the \"p95 latency by stage\" panel (queue, feature_fetch, inference, postprocess).",
                ),
                s(
                    "`queue` slow: the micro-batcher waits or the replicas are saturated; check the request rate and CPU per pod. `feature_fetch` slow: the feature store or a cache collapse.",
                ),
                format!(
                    "`inference` slow: a new model version, batch sizes (`{}`) or CPU/GPU throttling in the infrastructure row.",
                    schema::BATCH_SIZE.name
                ),
            ],
            queries: vec![format!(
                "{}{{model=\"<model>\", quantile=\"0.99\"}}",
                record::STAGE_DURATION_QUANTILE
            )],
        },
        alert::SCORE_DRIFT_WARNING | alert::SCORE_DRIFT_CRITICAL => Entry {
            meaning: format!(
                "The fleet's score distribution over the last {window} moved away from the model's reference distribution: PSI above {} (warning) or {} (critical). The model sees different data than it was validated on, or behaves differently.{}",
                num(config.drift.psi_warning),
                num(config.drift.psi_critical),
                guard_text(config, record::SCORE_COUNT, record::SCORE_PSI_NOISE)
            ),
            checks: [
                s(
                    "Feature drift alerts and the \"Feature drift (PSI)\" panel: a score shift usually follows one or two features.",
                ),
                s(
                    "The approval ratio against last week: does the shift change decisions? Then involve the model owners now.",
                ),
                format!(
                    "Deploys and traffic mix: a new version (`version` label), a new client or market. Compare with the same window {offset} ago (`{}`).",
                    record::SCORE_PSI_OFFSET
                ),
            ],
            queries: vec![format!("{}{{model=\"<model>\"}}", record::SCORE_BIN_RATIO)],
        },
        alert::FEATURE_DRIFT_WARNING | alert::FEATURE_DRIFT_CRITICAL => Entry {
            meaning: format!(
                "The distribution of one input feature over the last {window} moved away from its reference: PSI above {} (warning) or {} (critical).{}",
                num(config.drift.psi_warning),
                num(config.drift.psi_critical),
                guard_text(config, record::FEATURE_COUNT, record::FEATURE_PSI_NOISE)
            ),
            checks: [
                s(
                    "Missing and out-of-range ratios of the same feature: a pipeline bug often shows as nulls or values outside the reference range.",
                ),
                s(
                    "Feature freshness of the feature's group: stale values drift as the world moves on.",
                ),
                s(
                    "Upstream changes: a new unit, encoding or source for the feature. Compare the current bins with the reference in the query below.",
                ),
            ],
            queries: vec![
                format!(
                    "{}{{model=\"<model>\", feature=\"<feature>\"}}",
                    record::FEATURE_BIN_RATIO
                ),
                format!(
                    "{}{{model=\"<model>\", feature=\"<feature>\"}}",
                    record::FEATURE_REFERENCE_RATIO
                ),
            ],
        },
        alert::FEATURES_STALE => Entry {
            meaning: format!(
                "Recent predictions used feature values older than their group allows. The model decides on an outdated view of the customer or terminal. Maximum ages: {}.",
                max_ages(config)
            ),
            checks: [
                s(
                    "The job that materialises the group into the online store: did it run, did it fail?",
                ),
                s(
                    "Feature store errors and the cache hit ratio: a cache that cannot refresh serves old values.",
                ),
                format!(
                    "Whether every replica is affected: `{}` by `instance`.",
                    schema::FEATURE_AGE_SECONDS.name
                ),
            ],
            queries: vec![format!("{}{{model=\"<model>\"}}", record::FEATURE_AGE_MAX)],
        },
        alert::FEATURE_VALUES_MISSING => Entry {
            meaning: format!(
                "A feature was null or missing in more than {} of the predictions: the model imputes it, and its scores degrade.",
                percent_text(config.features.missing_ratio_max)
            ),
            checks: [
                s(
                    "Whether the feature's whole group is missing (a store or entity lookup problem) or one column (a pipeline bug).",
                ),
                s("Feature store errors by kind and recent deploys of the feature pipeline."),
                s("The score drift and approval panels: does the gap change decisions?"),
            ],
            queries: vec![format!("{}{{model=\"<model>\"}}", record::MISSING_RATIO)],
        },
        alert::APPROVAL_RATIO_SHIFT => Entry {
            meaning: format!(
                "The share of approved predictions over the last {window} differs from the same window {offset} earlier by more than {}. The business outcome changed, whatever the cause. Both windows need at least {} decided predictions (`{}` and `{}`, setting `drift.min_count`){}.",
                percent_text(config.serving.approval_delta_max),
                config.drift.min_count,
                record::APPROVAL_COUNT,
                record::APPROVAL_COUNT_OFFSET,
                if config.drift.threshold == ThresholdMode::Noise {
                    format!(
                        ", and the limit widens by {} times the delta's standard deviation for their counts (`{}`, `sqrt(r (1 - r) (1/count + 1/count_offset))`)",
                        num(config.drift.noise_k),
                        record::APPROVAL_RATIO_DELTA_NOISE
                    )
                } else {
                    String::new()
                }
            ),
            checks: [
                s("Score drift and feature drift: a model-side cause."),
                s(
                    "A new version or a changed threshold: compare `model_version:model_approval:ratio` by version.",
                ),
                s(
                    "The calendar: a holiday, campaign or incident last week makes the comparison itself unusual.",
                ),
            ],
            queries: vec![
                format!("{}{{model=\"<model>\"}}", record::APPROVAL_RATIO),
                format!("{}{{model=\"<model>\"}}", record::APPROVAL_RATIO_OFFSET),
            ],
        },
        alert::FEATURE_CACHE_COLLAPSE => Entry {
            meaning: format!(
                "Fewer than {} of feature lookups hit the in-process cache, so most go to the feature store: latency and store load rise. It needs at least {} lookups in 5 minutes (`{}`, setting `serving.cache_min_lookups`): a freshly started replica's first handful of lookups cannot page{}.",
                percent_text(config.serving.cache_hit_ratio_min),
                config.serving.cache_min_lookups,
                record::CACHE_LOOKUPS,
                if config.drift.threshold == ThresholdMode::Noise {
                    format!(
                        ", and the floor is lowered by {} times the hit ratio's standard deviation at the floor for that many lookups (`sqrt(floor (1 - floor) / lookups)`)",
                        num(config.drift.noise_k)
                    )
                } else {
                    String::new()
                }
            ),
            checks: [
                s("Recent restarts or scale-ups: new replicas start cold."),
                s(
                    "A change in traffic: many new customers or terminals (a campaign, an attack) miss the cache by nature.",
                ),
                s(
                    "Cache settings (capacity, TTL) in the last deploy, and the feature_fetch stage latency.",
                ),
            ],
            queries: vec![format!("{}{{model=\"<model>\"}}", record::CACHE_HIT_RATIO)],
        },
        alert::FEATURE_STORE_FAILING => Entry {
            meaning: format!(
                "Feature store calls fail faster than {} per second (setting `serving.store_errors_per_second_max`): the store (SQLite, Redis or Feast's online store in Redis) errs, times out, or the circuit breaker is open and refuses calls. With `--store-failure shed` requests get 503 (`status=\"error\"`); with `defaults` they are scored with the store's features missing, so scores degrade silently. Service comes back by itself within about a breaker cooldown once the store answers.",
                num(config.serving.store_errors_per_second_max)
            ),
            checks: [
                s(
                    "Which kind fails (`kind` label): `unavailable` (refused, down, auth), `timeout` (slow store or network, past `--store-timeout`), `circuit_open` (the breaker refusing after repeated failures), `decode` (values in an unexpected format).",
                ),
                s(
                    "The store itself: is Redis up (`redis-cli PING`), out of memory, failing over, or reloading after a restart; is the password or certificate still valid.",
                ),
                format!(
                    "`{}` per replica, and the serve log's `circuit breaker opened/closed` lines.",
                    schema::FEATURE_STORE_BREAKER_OPEN.name
                ),
            ],
            queries: vec![
                format!("{}{{model=\"<model>\"}}", record::STORE_ERRORS_RATE5M),
                format!(
                    "{}{{model=\"<model>\"}}",
                    modelwatch::schema::FEATURE_STORE_BREAKER_OPEN.name
                ),
            ],
        },
        alert::NO_TRAFFIC => Entry {
            meaning: s(
                "The model's servers are up and scraped but receive no prediction request: callers route around the model or cannot reach it.",
            ),
            checks: [
                s(
                    "The callers: their errors, their routing, a feature flag that bypasses the model.",
                ),
                s("The path in front of the servers: load balancer, ingress, network policy."),
                s(
                    "Whether traffic moved to another model name or version (`model_version:model_requests:rate5m`).",
                ),
            ],
            queries: vec![format!("sum by (model) ({})", record::REQUESTS_RATE5M)],
        },
        alert::TARGET_DOWN => Entry {
            meaning: s(
                "Prometheus cannot scrape a modelwatch metrics endpoint: the replica is down, or its metrics listener is unreachable. Every other alert is blind for that replica.",
            ),
            checks: [
                s(
                    "The target's error on the Prometheus targets page (`/targets`): refused, timeout, or bad response.",
                ),
                s("The process or pod: crash loops, OOM kills, readiness."),
                s(
                    "The metrics listener address (`--metrics-listen`) against the scrape config or ServiceMonitor port.",
                ),
            ],
            queries: vec![format!(
                "{}{{{}}}",
                crate::names::external::UP,
                config.selector
            )],
        },
        alert::VERSION_SKEW => Entry {
            meaning: format!(
                "Several versions of one model have served traffic together for more than {}: a rollout stalled, or an old replica survived.",
                config.scaled(config.alert_for.version_skew)
            ),
            checks: [
                s(
                    "The rollout: is a canary meant to run this long? Then raise `alert_for.version_skew`.",
                ),
                format!(
                    "Which replicas serve which version: `{}` by `instance`.",
                    schema::INFO.name
                ),
                s("Whether the versions behave alike: approval ratio and score PSI by version."),
            ],
            queries: vec![format!("{} > 0", record::REQUESTS_RATE5M)],
        },
        alert::OBSERVATIONS_DROPPED => Entry {
            meaning: format!(
                "The collector answered 429 to a monitor-only model's events for {}: its recording queue (`--observation-queue` events per model) was full, and the events of those requests are not in any metric. The model itself is unaffected; its dashboard undercounts.",
                config.scaled(config.alert_for.observations_dropped)
            ),
            checks: [
                format!(
                    "How much is lost: `{}` by `outcome` (accepted, invalid, dropped).",
                    schema::OBSERVATIONS_TOTAL.name
                ),
                s(
                    "The collector replicas' CPU: one recording thread per model and replica; add replicas behind the Service (any replica takes any event), or raise `--observation-queue` for bursts.",
                ),
                s(
                    "The sender: does the client retry 429 with backoff? The Python client counts what it drops in `stats()`.",
                ),
            ],
            queries: vec![format!(
                "sum by (model, outcome) (rate({}[5m]))",
                schema::OBSERVATIONS_TOTAL.name
            )],
        },
        alert::PRECISION_LOW | alert::RECALL_LOW => {
            let day = record::TRUTH_WINDOWS[0];
            let what = if name == alert::PRECISION_LOW {
                "precision"
            } else {
                "recall"
            };
            Entry {
                meaning: format!(
                    "The {what} computed from the labels joined over the last {} (`{}`, at least {} labels, setting `ground_truth.min_labels`) fell below {} of the holdout's {what} (setting `ground_truth.floor_fraction`; the holdout figure comes from the reference file's calibration). Labels arrive late, so this describes predictions made up to the label delay earlier.",
                    config.scaled(crate::config::PromDuration::from_secs(86_400)),
                    schema::FEEDBACK_TOTAL.name,
                    config.ground_truth.min_labels,
                    percent_text(config.ground_truth.floor_fraction)
                ),
                checks: [
                    s(
                        "The estimate beside it on the ground-truth row: if the estimate fell too, the scores moved (see the score drift alerts and the features); if only the realized value fell, see ModelWatchConceptDrift.",
                    ),
                    s(
                        "The label mix: a burst of positive labels (a fraud wave) or labels from one source only shifts the realized figures.",
                    ),
                    s(
                        "A new version: split by `version`; roll back if the drop follows a rollout.",
                    ),
                ],
                queries: vec![
                    (if name == alert::PRECISION_LOW {
                        day.precision
                    } else {
                        day.recall
                    })
                    .to_string(),
                    day.labels.to_string(),
                ],
            }
        }
        alert::ESTIMATED_PERFORMANCE_LOW => {
            let day = record::TRUTH_WINDOWS[0];
            Entry {
                meaning: format!(
                    "The precision or recall (label `metric`) expected from the scores of the last {} fell below {} of the holdout's. The estimate (CBPE-style) weighs each score bin's count by the share of positives the holdout had in that bin (`{}`): it assumes that calibration still holds, so it sees changes in the scores, not changes in what a score means. It warns before any label arrives.",
                    config.scaled(crate::config::PromDuration::from_secs(86_400)),
                    percent_text(config.ground_truth.floor_fraction),
                    schema::REFERENCE_SCORE_POSITIVE_RATIO.name
                ),
                checks: [
                    s(
                        "Score and feature drift: the estimate moves only when the score distribution does.",
                    ),
                    s(
                        "Which bins gained mass: the score heatmap and the fleet's score fractions per bin.",
                    ),
                    s(
                        "Whether the labels confirm it once they arrive: the realized lines on the ground-truth row.",
                    ),
                ],
                queries: vec![
                    day.estimated_precision.to_string(),
                    day.estimated_recall.to_string(),
                ],
            }
        }
        alert::CONCEPT_DRIFT => {
            let day = record::TRUTH_WINDOWS[0];
            Entry {
                meaning: format!(
                    "The realized precision or recall (label `metric`) over the last {} is more than {} points below the estimate from the same window's scores (setting `ground_truth.concept_drift_margin`). The scores did not move enough to explain it: the relation between scores and outcomes changed (a new fraud pattern the model does not see), so the holdout calibration no longer holds.",
                    config.scaled(crate::config::PromDuration::from_secs(86_400)),
                    num(config.ground_truth.concept_drift_margin * 100.0)
                ),
                checks: [
                    format!(
                        "Which cells of the confusion matrix moved: `{}` by `predicted` and `actual`; missed positives point at a new pattern.",
                        schema::FEEDBACK_TOTAL.name
                    ),
                    s(
                        "Whether the labels are right: a change in the labelling process (a new chargeback source, a relabelling) looks the same.",
                    ),
                    s(
                        "Retraining on recent labelled data; until then, consider a lower threshold.",
                    ),
                ],
                queries: vec![
                    format!("{} - {}", day.precision, day.estimated_precision),
                    format!("{} - {}", day.recall, day.estimated_recall),
                ],
            }
        }
        alert::LABEL_COVERAGE_LOW => {
            let day = record::TRUTH_WINDOWS[0];
            Entry {
                meaning: format!(
                    "Fewer than {} of the predictions of the last {} got a label, though labels arrived over the last week: the label feed stalled, so the realized figures go stale.",
                    percent_text(config.ground_truth.coverage_min),
                    config.scaled(crate::config::PromDuration::from_secs(86_400))
                ),
                checks: [
                    s(
                        "The label pipeline that calls `POST /v1/feedback`: is it running, and do its calls get 2xx?",
                    ),
                    format!(
                        "Unmatched labels (`{}`): labels sent to another replica, or for predictions past the log's retention, match nothing.",
                        schema::FEEDBACK_UNMATCHED_TOTAL.name
                    ),
                    format!(
                        "Dropped predictions (`{}`): a full prediction log queue leaves labels nothing to join.",
                        schema::PREDICTION_LOG_DROPPED_TOTAL.name
                    ),
                ],
                queries: vec![day.coverage.to_string(), day.labels.to_string()],
            }
        }
        _ => return None,
    })
}

fn max_ages(config: &MixinConfig) -> String {
    let mut limits: Vec<String> = config
        .features
        .max_age
        .iter()
        .map(|(group, limit)| format!("`{group}` {limit}"))
        .collect();
    limits.push(format!(
        "any other group {}",
        config.features.max_age_default
    ));
    limits.join(", ")
}

/// The runbook text for the alert names in `alerting`, in file order.
///
/// # Panics
///
/// When an alert has no runbook entry: add one to this module.
pub fn runbook(config: &MixinConfig, alerting: &[RuleGroup]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for group in alerting {
        for rule in &group.rules {
            if let Rule::Alert(a) = rule {
                if !names.contains(&a.alert) {
                    names.push(a.alert);
                }
            }
        }
    }
    let mut out = String::from(
        "# ModelWatch runbook\n\n\
         Generated by `modelwatch mixin`; do not edit. One section per alert: what it\n\
         means, the first three things to check, and a query to start from (replace\n\
         `<model>` and `<feature>`). The dashboard \"ModelWatch / Model health\" shows\n\
         every signal named here.\n",
    );
    for name in names {
        let Some(e) = entry(config, name) else {
            panic!("alert {name} has no runbook entry");
        };
        let _ = write!(out, "\n## {name}\n\n{}\n\nFirst checks:\n\n", e.meaning);
        for (i, check) in e.checks.iter().enumerate() {
            let _ = writeln!(out, "{}. {check}", i + 1);
        }
        out.push_str("\nQueries:\n");
        for query in &e.queries {
            let _ = write!(out, "\n```promql\n{query}\n```\n");
        }
        if name == alert::ERROR_BUDGET_BURN || name == alert::LATENCY_BUDGET_BURN {
            out.push_str("\nVariants (long and short window, severity):\n\n");
            for rate in BURN_RATES {
                let _ = writeln!(
                    out,
                    "- {}x over {} and {}: {}",
                    num(rate.factor),
                    config.scaled(crate::config::PromDuration::from_secs(rate.long)),
                    config.scaled(crate::config::PromDuration::from_secs(rate.short)),
                    rate.severity
                );
            }
        }
    }
    out
}
