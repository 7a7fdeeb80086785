//! ML-model observability for Rust model servers.
//!
//! `modelwatch` declares the metric schema of a model in production (latency per
//! inference stage, score distribution, feature cache and store health, what model
//! is loaded) on a [`prometheus_client`] registry that the caller owns. The library
//! never starts a server: expose the registry on your own `/metrics` listener (see
//! `examples/axum.rs`).
//!
//! ```
//! use modelwatch::{Decision, DecisionNames, Format, Metrics, MetricsConfig, ModelSpec, Stage, Status};
//! use prometheus_client::registry::Registry;
//!
//! let mut registry = Registry::default();
//! let metrics = Metrics::register(&mut registry, &MetricsConfig::default())?;
//! // Resolve the handles once per model; the hot path then does no label lookups.
//! let fraud = metrics.model(&ModelSpec {
//!     name: "fraud".into(),
//!     version: "3".into(),
//!     // The `decision` label's values, from the model card.
//!     decisions: Some(DecisionNames::new("approved", "declined")?),
//!     ..ModelSpec::default()
//! });
//!
//! let request = fraud.start_request();
//! let score = fraud.time_stage(Stage::Inference, || 0.03);
//! fraud.observe_score(score);
//! request.finish(Status::Success, Decision::for_score(score, 0.25));
//!
//! let mut body = String::new();
//! Format::PrometheusText.encode(&registry, &mut body)?;
//! assert!(body.contains(
//!     r#"model_requests_total{model="fraud",version="3",status="success",decision="approved"} 1"#
//! ));
//! assert_eq!(fraud.requests(Status::Success, Decision::Below), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod buckets;
pub mod drift;
pub mod drift_metrics;
pub mod exposition;
pub mod guard;
pub mod histogram;
pub mod instrument;
pub mod labels;
pub mod metrics;
pub mod observations;
pub mod process;
pub mod schema;
pub mod window;

pub use buckets::Buckets;
pub use drift::{DriftError, DriftStats, FeatureReference, ModelReference, ReferenceBins};
pub use drift_metrics::{DriftConfig, DriftHandle, DriftMetrics, NOT_USED};
pub use exposition::Format;
pub use guard::CardinalityGuard;
pub use histogram::AtomicHistogram;
pub use instrument::{RequestGuard, StageTimer};
pub use labels::{
    CacheOperation, Decision, DecisionNames, GuardedLabel, IgnoredField, ObservationOutcome, Stage,
    Status, StoreErrorKind,
};
pub use metrics::{Metrics, MetricsConfig, ModelHandle, ModelSpec};
pub use observations::{ObservationHandle, ObservationMetrics};
pub use prometheus_client;
pub use window::{Clock, ManualClock, SystemClock};

/// Errors from configuring the library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bucket preset is unusable.
    #[error("invalid {name} buckets: {reason}")]
    Buckets {
        /// Which preset.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A decision name is not a usable label value.
    #[error("invalid decision name {name:?}: {reason}")]
    DecisionName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}
