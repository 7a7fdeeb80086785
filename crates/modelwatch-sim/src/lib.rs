//! A deterministic credit-card transaction simulator for modelwatch.
//!
//! One seeded population of customers and terminals feeds three consumers:
//!
//! - **training data**: [`Simulator::generate`] produces a labelled [`History`] of
//!   transactions over a number of days, with three fraud patterns (high amounts,
//!   compromised terminals, compromised cards), and [`FeatureBuilder::rows`] turns it
//!   into one feature row per transaction ([`FEATURES`], in a fixed order);
//! - **the online feature store**: [`FeatureBuilder::snapshot`] computes, as of a
//!   point in time, the customer-profile and terminal-risk features that a store would
//!   hold, and [`transaction_features`] computes the request-time features;
//! - **live traffic**: [`TrafficGenerator`] yields plausible transactions from the same
//!   population, with [`TrafficKnobs`] that incident scenarios turn.
//!
//! Everything is reproducible: the same [`SimConfig`] gives the same bytes, on any run.
//!
//! ```
//! use modelwatch_sim::{FeatureBuilder, SimConfig, Simulator, TrafficKnobs, FEATURES};
//!
//! let sim = Simulator::new(SimConfig {
//!     seed: 7,
//!     customers: 200,
//!     terminals: 400,
//!     days: 40,
//!     ..SimConfig::default()
//! })?;
//! let history = sim.generate();
//! let features = FeatureBuilder::new(&history);
//! let rows = features.rows();
//! assert_eq!(rows.len(), history.transactions.len());
//! assert_eq!(rows[0].len(), FEATURES.len());
//!
//! // What an online feature store holds at the end of the history.
//! let snapshot = features.snapshot(history.end_timestamp());
//! assert_eq!(snapshot.customers.len(), 200);
//!
//! // Live traffic that continues where the history stops.
//! let mut live = sim.traffic(&history, history.end_timestamp()).with_rate(10.0);
//! live.set_knobs(TrafficKnobs { fraud_multiplier: 3.0, ..TrafficKnobs::default() });
//! let tx = live.next().expect("the generator never ends");
//! assert!(tx.customer_id.to_string().starts_with('C'));
//! # Ok::<(), modelwatch_sim::SimError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cli;
mod config;
mod dist;
mod features;
mod ids;
pub mod population;
mod sim;
mod traffic;

pub use config::{DEFAULT_START_UNIX, FraudConfig, SimConfig};
pub use features::{
    CUSTOMER_FEATURES, CustomerFeatures, FEATURE_GROUPS, FEATURES, FeatureBuilder, FeatureDef,
    FeatureGroup, FeatureRow, FeatureSnapshot, LABEL_DELAY_SECS, N_FEATURES, NIGHT_END_HOUR,
    TERMINAL_FEATURES, TRANSACTION_FEATURES, TerminalFeatures, WINDOW_DAYS, assemble_row,
    hour_of_day, is_weekend, transaction_features,
};
pub use ids::{CustomerId, IdParseError, TerminalId};
pub use sim::{
    Compromise, CompromiseKind, CustomerProfile, FraudScenario, History, Simulator, Terminal,
    Transaction,
};
pub use traffic::{LiveTransaction, TrafficGenerator, TrafficKnobs};

/// Seconds in a day.
pub const DAY_SECS: i64 = 86_400;

/// Why a simulator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A configuration value is outside its valid range.
    #[error("invalid simulator configuration: {0}")]
    InvalidConfig(String),
}
