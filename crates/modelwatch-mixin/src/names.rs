//! Module implementing the names the mixin declares: recording rules, alerts, and
//! the allow-list of metrics from other exporters. See [`record`] and [`alert`].
//!
//! Recording rules follow `level:metric:operations`: the labels the result keeps,
//! the metric it derives from, and what was done to it. Names never depend on the
//! config, so dashboards and ad-hoc queries survive a threshold change; where a
//! window is configurable (the drift window, the comparison offset) the name says
//! what it measures rather than how long.

/// Recording rule names.
pub mod record {
    /// Requests per second by model and version, over 5m.
    pub const REQUESTS_RATE5M: &str = "model_version:model_requests:rate5m";
    /// Requests per second by model, version and status, over 5m.
    pub const REQUESTS_BY_STATUS_RATE5M: &str = "model_version_status:model_requests:rate5m";
    /// End-to-end latency quantiles (`quantile` label 0.5, 0.95, 0.99), over 5m.
    pub const REQUEST_DURATION_QUANTILE: &str =
        "model_version:model_request_duration_seconds:histogram_quantile_rate5m";
    /// Per-stage latency quantiles (`quantile` label 0.5, 0.95, 0.99), over 5m.
    pub const STAGE_DURATION_QUANTILE: &str =
        "model_version_stage:model_stage_duration_seconds:histogram_quantile_rate5m";
    /// Feature cache hits over all lookups, by model, over 5m.
    pub const CACHE_HIT_RATIO: &str = "model:model_feature_cache_hit:ratio_rate5m";
    /// Feature cache lookups (hits and misses) by model, over 5m: the sample size of
    /// [`CACHE_HIT_RATIO`].
    pub const CACHE_LOOKUPS: &str = "model:model_feature_cache_lookups:increase5m";
    /// Feature store failures per second by model and kind, over 5m.
    pub const STORE_ERRORS_RATE5M: &str = "model_kind:model_feature_store_errors:rate5m";

    /// Approved over decided predictions by model and version, over the drift window.
    pub const APPROVAL_RATIO_BY_VERSION: &str = "model_version:model_approval:ratio";
    /// Approved over decided predictions by model, over the drift window.
    pub const APPROVAL_RATIO: &str = "model:model_approval:ratio";
    /// [`APPROVAL_RATIO`] for the same window one comparison offset (7d) earlier.
    pub const APPROVAL_RATIO_OFFSET: &str = "model:model_approval:ratio_offset";
    /// [`APPROVAL_RATIO`] minus [`APPROVAL_RATIO_OFFSET`], in absolute fraction.
    pub const APPROVAL_RATIO_DELTA: &str = "model:model_approval:ratio_delta";
    /// Decided predictions by model over the drift window: the sample size of
    /// [`APPROVAL_RATIO`].
    pub const APPROVAL_COUNT: &str = "model:model_approval:count";
    /// [`APPROVAL_COUNT`] one comparison offset earlier.
    pub const APPROVAL_COUNT_OFFSET: &str = "model:model_approval:count_offset";
    /// The standard deviation of [`APPROVAL_RATIO_DELTA`] when nothing changed:
    /// `sqrt(r (1 - r) (1 / count + 1 / count_offset))`.
    pub const APPROVAL_RATIO_DELTA_NOISE: &str = "model:model_approval:ratio_delta_noise";

    /// The fleet's score fraction per reference bin, over the drift window.
    pub const SCORE_BIN_RATIO: &str = "model_version_bin:model_score_bin:ratio";
    /// [`SCORE_BIN_RATIO`] one comparison offset earlier.
    pub const SCORE_BIN_RATIO_OFFSET: &str = "model_version_bin:model_score_bin:ratio_offset";
    /// The score reference ratio per bin, deduplicated across replicas.
    pub const SCORE_REFERENCE_RATIO: &str = "model_version_bin:model_reference_score_ratio:max";
    /// Fleet score PSI against the reference.
    pub const SCORE_PSI: &str = "model_version:model_score:psi";
    /// Fleet score Jensen-Shannon divergence (nats) against the reference.
    pub const SCORE_JENSEN_SHANNON: &str = "model_version:model_score:jensen_shannon";
    /// Fleet score total variation distance against the reference (an upper bound of
    /// the binned KS statistic, see the crate docs).
    pub const SCORE_TOTAL_VARIATION: &str = "model_version:model_score:total_variation";
    /// Predictions by model and version over the drift window: the sample size of
    /// the score drift rules.
    pub const SCORE_COUNT: &str = "model_version:model_score:count";
    /// Reference bins of the score by model and version.
    pub const SCORE_BINS: &str = "model_version:model_score:bins";
    /// PSI's no-drift expectation for the window's count, `(bins - 1) / count`.
    pub const SCORE_PSI_NOISE: &str = "model_version:model_score:psi_noise";
    /// Jensen-Shannon's no-drift expectation, `(bins - 1) / (8 count)` nats.
    pub const SCORE_JENSEN_SHANNON_NOISE: &str = "model_version:model_score:jensen_shannon_noise";
    /// Total variation's no-drift upper bound, `sqrt((bins - 1) / (2 pi count))`.
    pub const SCORE_TOTAL_VARIATION_NOISE: &str = "model_version:model_score:total_variation_noise";
    /// Fleet score PSI of the drift window against the same window one comparison
    /// offset earlier (week over week).
    pub const SCORE_PSI_OFFSET: &str = "model_version:model_score:psi_offset";

    /// The fleet's feature fraction per reference bin, over the drift window.
    pub const FEATURE_BIN_RATIO: &str = "model_feature_bin:model_feature_bin:ratio";
    /// A feature's reference ratio per bin, deduplicated across replicas.
    pub const FEATURE_REFERENCE_RATIO: &str = "model_feature_bin:model_reference_feature_ratio:max";
    /// Fleet feature PSI against the reference.
    pub const FEATURE_PSI: &str = "model_feature:model_feature:psi";
    /// Fleet feature Jensen-Shannon divergence (nats) against the reference.
    pub const FEATURE_JENSEN_SHANNON: &str = "model_feature:model_feature:jensen_shannon";
    /// Fleet feature total variation distance against the reference.
    pub const FEATURE_TOTAL_VARIATION: &str = "model_feature:model_feature:total_variation";
    /// Predictions with a value of the feature over the drift window: the sample
    /// size of the feature drift rules.
    pub const FEATURE_COUNT: &str = "model_feature:model_feature:count";
    /// Reference bins of each feature.
    pub const FEATURE_BINS: &str = "model_feature:model_feature:bins";
    /// Feature PSI's no-drift expectation, `(bins - 1) / count`.
    pub const FEATURE_PSI_NOISE: &str = "model_feature:model_feature:psi_noise";
    /// Feature Jensen-Shannon's no-drift expectation, `(bins - 1) / (8 count)`.
    pub const FEATURE_JENSEN_SHANNON_NOISE: &str =
        "model_feature:model_feature:jensen_shannon_noise";
    /// Feature total variation's no-drift upper bound, `sqrt((bins - 1) / (2 pi count))`.
    pub const FEATURE_TOTAL_VARIATION_NOISE: &str =
        "model_feature:model_feature:total_variation_noise";

    /// Missing values of a feature over predictions, over 5m.
    pub const MISSING_RATIO: &str = "model_feature:model_feature_missing:ratio_rate5m";
    /// Out-of-range values of a feature over predictions, over 5m.
    pub const OUT_OF_RANGE_RATIO: &str = "model_feature:model_feature_out_of_range:ratio_rate5m";
    /// The oldest feature age of a group across replicas.
    pub const FEATURE_AGE_MAX: &str = "model_feature_group:model_feature_age_seconds:max";

    /// One window of the multiwindow burn-rate alerts, with the two SLO ratios
    /// recorded over it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct BurnWindow {
        /// The nominal window in seconds (before `time_scale`).
        pub seconds: u64,
        /// Failed over valid requests (the availability SLO's bad-event ratio).
        pub errors: &'static str,
        /// Requests slower than the threshold over valid requests (latency SLO).
        pub slow: &'static str,
    }

    macro_rules! burn_window {
        ($seconds:expr, $w:literal) => {
            BurnWindow {
                seconds: $seconds,
                errors: concat!("model_version:model_requests_errors:ratio_rate", $w),
                slow: concat!("model_version:model_requests_slow:ratio_rate", $w),
            }
        };
    }

    /// The windows of the SRE workbook's multiwindow, multi-burn-rate alerts.
    pub const BURN_WINDOWS: [BurnWindow; 7] = [
        burn_window!(300, "5m"),
        burn_window!(1800, "30m"),
        burn_window!(3600, "1h"),
        burn_window!(7200, "2h"),
        burn_window!(21_600, "6h"),
        burn_window!(86_400, "1d"),
        burn_window!(259_200, "3d"),
    ];

    /// The burn window of `seconds`.
    ///
    /// # Panics
    ///
    /// When no burn window has that length (a programming error in this crate).
    pub fn burn_window(seconds: u64) -> BurnWindow {
        match BURN_WINDOWS.iter().find(|w| w.seconds == seconds) {
            Some(w) => *w,
            None => panic!("no burn window of {seconds} s"),
        }
    }
}

/// Alert names.
pub mod alert {
    /// The availability SLO's error budget burns too fast.
    pub const ERROR_BUDGET_BURN: &str = "ModelWatchErrorBudgetBurn";
    /// The latency SLO's error budget burns too fast.
    pub const LATENCY_BUDGET_BURN: &str = "ModelWatchLatencyBudgetBurn";
    /// Score PSI above the warning threshold.
    pub const SCORE_DRIFT_WARNING: &str = "ModelWatchScoreDriftWarning";
    /// Score PSI above the critical threshold.
    pub const SCORE_DRIFT_CRITICAL: &str = "ModelWatchScoreDriftCritical";
    /// A feature's PSI above the warning threshold.
    pub const FEATURE_DRIFT_WARNING: &str = "ModelWatchFeatureDriftWarning";
    /// A feature's PSI above the critical threshold.
    pub const FEATURE_DRIFT_CRITICAL: &str = "ModelWatchFeatureDriftCritical";
    /// A feature group older than its maximum age.
    pub const FEATURES_STALE: &str = "ModelWatchFeaturesStale";
    /// A feature missing in too many predictions.
    pub const FEATURE_VALUES_MISSING: &str = "ModelWatchFeatureValuesMissing";
    /// The approval ratio moved against the comparison offset.
    pub const APPROVAL_RATIO_SHIFT: &str = "ModelWatchApprovalRatioShift";
    /// The feature cache hit ratio fell below its floor.
    pub const FEATURE_CACHE_COLLAPSE: &str = "ModelWatchFeatureCacheCollapse";
    /// A model serves no request.
    pub const NO_TRAFFIC: &str = "ModelWatchNoTraffic";
    /// A scrape target is down.
    pub const TARGET_DOWN: &str = "ModelWatchTargetDown";
    /// More than one version of a model serves traffic for too long.
    pub const VERSION_SKEW: &str = "ModelWatchVersionSkew";
    /// The collector drops prediction events of a monitor-only model (its recording
    /// queue is full).
    pub const OBSERVATIONS_DROPPED: &str = "ModelWatchObservationsDropped";

    /// The runbook anchor of an alert: its name in lower case, as a Markdown
    /// renderer derives it from the `## <name>` heading.
    pub fn anchor(name: &str) -> String {
        name.to_ascii_lowercase()
    }
}

/// Metrics from other exporters that the dashboard may query: Prometheus' own `up`,
/// the NVIDIA DCGM exporter's GPU metrics and cAdvisor's container metrics. Every
/// other name in a generated query comes from `modelwatch::schema` or [`record`].
pub mod external {
    /// Prometheus' scrape health of each target.
    pub const UP: &str = "up";
    /// GPU utilisation in percent (DCGM exporter).
    pub const DCGM_GPU_UTIL: &str = "DCGM_FI_DEV_GPU_UTIL";
    /// GPU framebuffer memory used in MiB (DCGM exporter).
    pub const DCGM_FB_USED: &str = "DCGM_FI_DEV_FB_USED";
    /// Container CPU time in seconds (cAdvisor, through the kubelet).
    pub const CONTAINER_CPU: &str = "container_cpu_usage_seconds_total";
    /// Container working-set memory in bytes (cAdvisor).
    pub const CONTAINER_MEMORY: &str = "container_memory_working_set_bytes";

    /// The allow-list: every metric outside the schema that generated queries use.
    pub const ALLOWED: &[&str] = &[
        UP,
        DCGM_GPU_UTIL,
        DCGM_FB_USED,
        CONTAINER_CPU,
        CONTAINER_MEMORY,
    ];
}
