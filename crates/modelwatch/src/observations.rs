//! Module implementing the collector's own counters: what happened to the prediction
//! events a server that is not ours sends. See [`ObservationMetrics`] and
//! [`ObservationHandle`] for details.
//!
//! An accepted event is recorded through the model's ordinary [`crate::ModelHandle`]
//! and [`crate::DriftHandle`], exactly as a served prediction; these counters only
//! say how many events were accepted, refused or dropped, and how many names in them
//! the card does not declare.

use crate::labels::{IgnoredField, ObservationOutcome};
use crate::metrics::ModelHandle;
use crate::schema;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    model: String,
    outcome: ObservationOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IgnoredLabels {
    model: String,
    field: IgnoredField,
}

/// The collector's families, registered once per process.
#[derive(Debug, Clone, Default)]
pub struct ObservationMetrics {
    outcomes: Family<OutcomeLabels, Counter>,
    ignored: Family<IgnoredLabels, Counter>,
}

impl ObservationMetrics {
    /// Creates the families and registers them on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let def = &schema::OBSERVATIONS_TOTAL;
        registry.register(
            def.registration_name(),
            def.registration_help(),
            metrics.outcomes.clone(),
        );
        let def = &schema::OBSERVATION_IGNORED_TOTAL;
        registry.register(
            def.registration_name(),
            def.registration_help(),
            metrics.ignored.clone(),
        );
        metrics
    }

    /// Resolves one monitor-only model's counters (its `model` label is `model`'s,
    /// after the cardinality guard) and creates every series at zero.
    pub fn model(&self, model: &ModelHandle) -> ObservationHandle {
        let name = model.model().to_string();
        ObservationHandle {
            outcomes: std::array::from_fn(|i| {
                self.outcomes.get_or_create_owned(&OutcomeLabels {
                    model: name.clone(),
                    outcome: ObservationOutcome::ALL[i],
                })
            }),
            ignored: std::array::from_fn(|i| {
                self.ignored.get_or_create_owned(&IgnoredLabels {
                    model: name.clone(),
                    field: IgnoredField::ALL[i],
                })
            }),
            enabled: model.enabled(),
        }
    }
}

/// One model's collector counters, resolved: counting does no lookup.
#[derive(Debug, Clone)]
pub struct ObservationHandle {
    outcomes: [Counter; ObservationOutcome::COUNT],
    ignored: [Counter; IgnoredField::COUNT],
    enabled: bool,
}

impl ObservationHandle {
    /// Counts `n` events with `outcome`.
    pub fn count(&self, outcome: ObservationOutcome, n: u64) {
        if self.enabled && n > 0 {
            self.outcomes[outcome.index()].inc_by(n);
        }
    }

    /// Counts `n` names of kind `field` that the card does not declare.
    pub fn ignored(&self, field: IgnoredField, n: u64) {
        if self.enabled && n > 0 {
            self.ignored[field.index()].inc_by(n);
        }
    }
}
