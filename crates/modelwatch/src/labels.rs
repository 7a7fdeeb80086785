//! Module implementing the closed label sets. See [`Stage`], [`Status`],
//! [`Decision`], [`CacheOperation`] and [`StoreErrorKind`] for details.
//!
//! A closed set is an enum, so a label value can never come from a request: the type
//! system bounds the cardinality.

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

impl Status {
    /// The outcomes that count in the availability and latency SLOs: every status
    /// but `rejected` (bad input) and `cancelled` (the client hung up).
    pub const fn in_slo(self) -> bool {
        !matches!(self, Status::Rejected | Status::Cancelled)
    }

    /// The statuses left out of the SLOs (see [`Status::in_slo`]).
    pub const OUTSIDE_SLO: [Status; 2] = [Status::Rejected, Status::Cancelled];
}

closed_set! {
    /// What the model decided, the `decision` label of `model_requests_total`.
    Decision {
        /// Score below the threshold.
        Approved => "approved",
        /// Score at or above the threshold.
        Declined => "declined",
        /// No prediction was made (the request failed or was refused).
        None => "none",
    }
}

closed_set! {
    /// Result of a feature cache lookup.
    CacheOperation {
        /// Served from the in-process cache.
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
    (
        crate::schema::label::DECISION,
        &["approved", "declined", "none"],
    ),
    (crate::schema::label::OPERATION, &["hit", "miss"]),
    (
        crate::schema::label::KIND,
        &["timeout", "unavailable", "decode"],
    ),
    (crate::schema::label::LABEL, &["model", "version"]),
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
            values(Decision::ALL, Decision::as_str),
            values(CacheOperation::ALL, CacheOperation::as_str),
            values(StoreErrorKind::ALL, StoreErrorKind::as_str),
            values(GuardedLabel::ALL, GuardedLabel::as_str),
        ];
        for ((_, documented), actual) in CLOSED_SETS.iter().zip(enums.iter()) {
            assert_eq!(documented, &actual.as_slice());
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
