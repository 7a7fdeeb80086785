//! Simulator configuration.

use crate::SimError;

/// 2026-01-01T00:00:00Z as Unix seconds: the default first day of a history.
pub const DEFAULT_START_UNIX: i64 = 1_767_225_600;

/// Everything that determines a simulated population and its history.
///
/// Build one with struct update syntax so that new fields keep their defaults:
///
/// ```
/// use modelwatch_sim::SimConfig;
/// let config = SimConfig { seed: 1, customers: 100, terminals: 200, days: 30, ..SimConfig::default() };
/// assert_eq!(config.radius, 5.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed of every random draw. The same configuration gives the same output.
    pub seed: u64,
    /// Number of customers (cards).
    pub customers: usize,
    /// Number of payment terminals.
    pub terminals: usize,
    /// Number of simulated days.
    pub days: u32,
    /// Unix timestamp (seconds, UTC) of the start of the first day. Must be a midnight.
    pub start_unix: i64,
    /// Side of the square map on which customers and terminals are placed.
    pub map_size: f64,
    /// A customer pays only at terminals within this distance of their home.
    pub radius: f64,
    /// Range of a customer's mean transaction amount, drawn uniformly.
    pub mean_amount_range: (f64, f64),
    /// A customer's amount standard deviation, as a fraction of their mean amount.
    pub std_amount_ratio: f64,
    /// Range of a customer's mean number of transactions per day, drawn uniformly.
    pub tx_per_day_range: (f64, f64),
    /// Fraud patterns and their rates.
    pub fraud: FraudConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            customers: 5_000,
            terminals: 10_000,
            days: 120,
            start_unix: DEFAULT_START_UNIX,
            map_size: 100.0,
            radius: 5.0,
            mean_amount_range: (5.0, 100.0),
            std_amount_ratio: 0.5,
            tx_per_day_range: (0.0, 4.0),
            fraud: FraudConfig::default(),
        }
    }
}

impl SimConfig {
    /// Checks that every value is in its valid range.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |msg: &str| Err(SimError::InvalidConfig(msg.to_owned()));
        if self.customers == 0 || self.customers > 1_000_000 {
            return bad("customers must be between 1 and 1,000,000");
        }
        if self.terminals == 0 || self.terminals > 1_000_000 {
            return bad("terminals must be between 1 and 1,000,000");
        }
        if self.days == 0 || self.days > 3_660 {
            return bad("days must be between 1 and 3,660");
        }
        if self.start_unix.rem_euclid(crate::DAY_SECS) != 0 {
            return bad("start_unix must be a midnight (UTC)");
        }
        if !(self.map_size.is_finite() && self.map_size > 0.0) {
            return bad("map_size must be a positive number");
        }
        if !(self.radius.is_finite() && self.radius > 0.0) {
            return bad("radius must be a positive number");
        }
        let (lo, hi) = self.mean_amount_range;
        if !(lo.is_finite() && hi.is_finite() && 0.0 < lo && lo <= hi) {
            return bad("mean_amount_range must satisfy 0 < low <= high");
        }
        if !(self.std_amount_ratio.is_finite() && self.std_amount_ratio >= 0.0) {
            return bad("std_amount_ratio must be >= 0");
        }
        let (lo, hi) = self.tx_per_day_range;
        if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi && hi <= 1_000.0) {
            return bad("tx_per_day_range must satisfy 0 <= low <= high <= 1000");
        }
        self.fraud.validate()
    }
}

/// The three fraud patterns.
///
/// 1. Any amount above [`amount_threshold`](Self::amount_threshold) is fraud.
/// 2. Each day a fraction of the terminals is compromised: every transaction on them
///    for the next [`terminal_compromise_days`](Self::terminal_compromise_days) is
///    fraud.
/// 3. Each day a fraction of the customers is compromised: a share of their
///    transactions in the next
///    [`customer_compromise_days`](Self::customer_compromise_days) has its amount
///    multiplied and is fraud.
///
/// The defaults give a fraud rate near 1% once the compromise windows are full.
#[derive(Debug, Clone, PartialEq)]
pub struct FraudConfig {
    /// Pattern 1: amounts strictly above this are fraud.
    pub amount_threshold: f64,
    /// Pattern 2: expected share of all terminals compromised each day.
    pub terminal_compromise_rate: f64,
    /// Pattern 2: how long a terminal stays compromised, in days.
    pub terminal_compromise_days: u32,
    /// Pattern 3: expected share of all customers compromised each day.
    pub customer_compromise_rate: f64,
    /// Pattern 3: how long a card stays compromised, in days.
    pub customer_compromise_days: u32,
    /// Pattern 3: the share of a compromised card's transactions that are fraud.
    pub customer_fraud_share: f64,
    /// Pattern 3: the fraudulent transactions' amounts are multiplied by this.
    pub customer_amount_multiplier: f64,
}

impl Default for FraudConfig {
    fn default() -> Self {
        Self {
            amount_threshold: 220.0,
            terminal_compromise_rate: 2.5e-4,
            terminal_compromise_days: 28,
            customer_compromise_rate: 7e-4,
            customer_compromise_days: 14,
            customer_fraud_share: 1.0 / 3.0,
            customer_amount_multiplier: 5.0,
        }
    }
}

impl FraudConfig {
    /// Checks that every value is in its valid range.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |msg: &str| Err(SimError::InvalidConfig(msg.to_owned()));
        if !(self.amount_threshold.is_finite() && self.amount_threshold > 0.0) {
            return bad("fraud.amount_threshold must be a positive number");
        }
        for (name, rate) in [
            ("terminal_compromise_rate", self.terminal_compromise_rate),
            ("customer_compromise_rate", self.customer_compromise_rate),
            ("customer_fraud_share", self.customer_fraud_share),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(SimError::InvalidConfig(format!(
                    "fraud.{name} must be between 0 and 1"
                )));
            }
        }
        if !(self.customer_amount_multiplier.is_finite() && self.customer_amount_multiplier >= 1.0)
        {
            return bad("fraud.customer_amount_multiplier must be >= 1");
        }
        Ok(())
    }
}
