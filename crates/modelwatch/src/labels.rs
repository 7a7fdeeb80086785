//! Module implementing the label sets. See [`Stage`], [`Status`], [`Decision`],
//! [`CacheOperation`] and [`StoreErrorKind`] for details.
//!
//! A closed set is an enum, so a label value can never come from a request: the type
//! system bounds the cardinality. The `decision` label is bounded the same way, with
//! names from configuration: [`Decision`] says which side of the threshold a score
//! fell on, and each model's [`DecisionNames`] (from its card) name the two sides.

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use std::fmt::Write as _;

macro_rules! closed_set {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in index order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The number of values.
            pub const COUNT: usize = Self::ALL.len();

            /// The label value as exposed.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Dense index in `0..COUNT`, for handle arrays.
            pub const fn index(self) -> usize {
                self as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownLabelValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownLabelValue {
                        label: stringify!($name),
                        value: s.to_string(),
                    })
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    };
}

/// A label value that is not part of a closed set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {label} value {value:?}")]
pub struct UnknownLabelValue {
    /// Which set was asked.
    pub label: &'static str,
    /// The rejected value.
    pub value: String,
}

closed_set! {
    /// A stage of the inference pipeline, timed in `model_stage_duration_seconds`.
    Stage {
        /// Waiting in the micro-batcher.
        Queue => "queue",
        /// Reading features from the cache or the feature store.
        FeatureFetch => "feature_fetch",
        /// Running the model.
        Inference => "inference",
        /// Applying the threshold and building the response.
        Postprocess => "postprocess",
    }
}

closed_set! {
    /// How a request ended, the `status` label of `model_requests_total`.
    Status {
        /// Answered with a prediction.
        Success => "success",
        /// Failed inside the server.
        Error => "error",
        /// Answered past its deadline.
        Timeout => "timeout",
        /// Refused because the input was invalid (a 4xx).
        Rejected => "rejected",
        /// Refused because the queue was full (a 429).
        Overloaded => "overloaded",
        /// The client went away before the answer. Like `rejected`, outside the SLOs:
        /// a hang-up is the client's behaviour, not the server's failure.
        Cancelled => "cancelled",
    }
}

closed_set! {
    /// What the collector did with one prediction event, the `outcome` label of
    /// `model_observations_total`.
    ObservationOutcome {
        /// Valid and queued for recording.
        Accepted => "accepted",
        /// Refused by its index in the batch (the answer says why).
        Invalid => "invalid",
        /// Valid, but the recording queue was full: the batch was answered 429.
        Dropped => "dropped",
    }
}

closed_set! {
    /// A kind of name an event carried that the card does not declare, the `field`
    /// label of `model_observation_ignored_total`.
    IgnoredField {
        /// A key of `features`.
        Feature => "feature",
        /// A key of `feature_times`.
        FeatureGroup => "feature_group",
        /// A key of `stages`.
        Stage => "stage",
    }
}

impl Status {
    /// The outcomes that count in the availability and latency SLOs: every status
    /// but `rejected` (bad input) and `cancelled` (the client hung up).
    pub const fn in_slo(self) -> bool {
        !matches!(self, Status::Rejected | Status::Cancelled)
    }

    /// The statuses left out of the SLOs (see [`Status::in_slo`]).
    pub const OUTSIDE_SLO: [Status; 2] = [Status::Rejected, Status::Cancelled];
}

/// What a binary classifier decided, the `decision` label of
/// `model_requests_total`. The label values are the model's own names
/// ([`DecisionNames`]); [`Decision::None`] is always `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Decision {
    /// Score below the threshold (the fraud model: `approved`).
    Below,
    /// Score at or above the threshold (the fraud model: `declined`).
    AtOrAbove,
    /// No decision: the request failed or was refused, or the model is a regressor.
    None,
}

impl Decision {
    /// The decision for `score` against `threshold`.
    pub fn for_score(score: f64, threshold: f64) -> Self {
        if score < threshold {
            Decision::Below
        } else {
            Decision::AtOrAbove
        }
    }
}

/// The `decision` value of a request that decided nothing.
pub const NO_DECISION: &str = "none";

/// Longest decision name, in bytes.
pub const MAX_DECISION_LEN: usize = 32;

/// Checks one decision name: `[a-z][a-z0-9_]*`, at most [`MAX_DECISION_LEN`] bytes,
/// and not `none`.
///
/// # Errors
/// [`crate::Error::DecisionName`] saying which rule the name breaks.
pub fn check_decision_name(name: &str) -> Result<(), crate::Error> {
    let mut chars = name.chars();
    let safe = matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= MAX_DECISION_LEN;
    let reason = if !safe {
        format!("write [a-z][a-z0-9_]*, at most {MAX_DECISION_LEN} bytes")
    } else if name == NO_DECISION {
        "`none` is reserved for requests that decided nothing".to_string()
    } else {
        return Ok(());
    };
    Err(crate::Error::DecisionName {
        name: name.to_string(),
        reason,
    })
}

/// A binary classifier's two decision names, the `decision` label values: bounded
/// (two per model, plus `none`), label-safe and distinct.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecisionNames {
    below: String,
    at_or_above: String,
}

impl Default for DecisionNames {
    /// `negative` below the threshold, `positive` at or above it.
    fn default() -> Self {
        Self {
            below: "negative".into(),
            at_or_above: "positive".into(),
        }
    }
}

impl DecisionNames {
    /// Names for the two sides of the threshold.
    ///
    /// # Errors
    /// [`crate::Error::DecisionName`] when a name is not `[a-z][a-z0-9_]*` of at most
    /// [`MAX_DECISION_LEN`] bytes, is `none`, or both names are the same.
    pub fn new(
        below: impl Into<String>,
        at_or_above: impl Into<String>,
    ) -> Result<Self, crate::Error> {
        let (below, at_or_above) = (below.into(), at_or_above.into());
        check_decision_name(&below)?;
        check_decision_name(&at_or_above)?;
        if below == at_or_above {
            return Err(crate::Error::DecisionName {
                name: below,
                reason: "both decisions have this name; they must differ".into(),
            });
        }
        Ok(Self { below, at_or_above })
    }

    /// The name below the threshold.
    pub fn below(&self) -> &str {
        &self.below
    }

    /// The name at or above the threshold.
    pub fn at_or_above(&self) -> &str {
        &self.at_or_above
    }

    /// The label value of `decision`.
    pub fn name(&self, decision: Decision) -> &str {
        match decision {
            Decision::Below => &self.below,
            Decision::AtOrAbove => &self.at_or_above,
            Decision::None => NO_DECISION,
        }
    }
}

closed_set! {
    /// Result of a feature cache lookup.
    CacheOperation {
        /// Answered in the process, without the store: from the cache, or by the
        /// store's known-id filter (an id the store certainly does not hold).
        Hit => "hit",
        /// The store was asked (it answered with values, with "unknown", or failed).
        Miss => "miss",
    }
}

closed_set! {
    /// Why a feature store call failed.
    StoreErrorKind {
        /// The call passed its deadline.
        Timeout => "timeout",
        /// The store could not be reached.
        Unavailable => "unavailable",
        /// The stored value could not be decoded.
        Decode => "decode",
        /// Not asked: the circuit breaker is open after repeated failures, and the
        /// call failed at once instead of waiting for its deadline.
        CircuitOpen => "circuit_open",
    }
}

closed_set! {
    /// Open labels that a cardinality guard protects.
    GuardedLabel {
        /// `model`.
        Model => "model",
        /// `version`.
        Version => "version",
    }
}

/// Every closed set and its values, for the generated documentation.
pub const CLOSED_SETS: &[(&str, &[&str])] = &[
    (
        crate::schema::label::STAGE,
        &["queue", "feature_fetch", "inference", "postprocess"],
    ),
    (
        crate::schema::label::STATUS,
        &[
            "success",
            "error",
            "timeout",
            "rejected",
            "overloaded",
            "cancelled",
        ],
    ),
    (crate::schema::label::OPERATION, &["hit", "miss"]),
    (
        crate::schema::label::KIND,
        &["timeout", "unavailable", "decode", "circuit_open"],
    ),
    (crate::schema::label::LABEL, &["model", "version"]),
    (
        crate::schema::label::OUTCOME,
        &["accepted", "invalid", "dropped"],
    ),
    (
        crate::schema::label::FIELD,
        &["feature", "feature_group", "stage"],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn values<T: Copy>(all: &[T], f: fn(T) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|v| f(*v)).collect()
    }

    #[test]
    fn documented_sets_match_the_enums() {
        let enums = [
            values(Stage::ALL, Stage::as_str),
            values(Status::ALL, Status::as_str),
            values(CacheOperation::ALL, CacheOperation::as_str),
            values(StoreErrorKind::ALL, StoreErrorKind::as_str),
            values(GuardedLabel::ALL, GuardedLabel::as_str),
            values(ObservationOutcome::ALL, ObservationOutcome::as_str),
            values(IgnoredField::ALL, IgnoredField::as_str),
        ];
        assert_eq!(CLOSED_SETS.len(), enums.len());
        for ((_, documented), actual) in CLOSED_SETS.iter().zip(enums.iter()) {
            assert_eq!(documented, &actual.as_slice());
        }
    }

    #[test]
    fn decision_names_are_bounded_and_label_safe() {
        let names = DecisionNames::new("approved", "declined").unwrap();
        assert_eq!(names.name(Decision::for_score(0.1, 0.5)), "approved");
        assert_eq!(names.name(Decision::for_score(0.5, 0.5)), "declined");
        assert_eq!(names.name(Decision::None), "none");
        assert_eq!(DecisionNames::default().below(), "negative");
        for (below, above) in [
            ("Approved", "declined"),
            ("ok", "x".repeat(33).as_str()),
            ("none", "fraud"),
            ("same", "same"),
            ("", "fraud"),
        ] {
            assert!(DecisionNames::new(below, above).is_err(), "{below} {above}");
        }
    }

    #[test]
    fn parse_round_trips_and_rejects_unknown() {
        for s in Stage::ALL {
            assert_eq!(s.as_str().parse::<Stage>(), Ok(*s));
            assert_eq!(Stage::ALL[s.index()], *s);
        }
        let err = "gpu".parse::<Stage>().unwrap_err();
        assert_eq!(err.to_string(), "unknown Stage value \"gpu\"");
    }
}
