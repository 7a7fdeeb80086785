//! The population (customers and terminals) and the labelled transaction history.

use std::sync::Arc;

use rand::Rng;

use crate::config::SimConfig;
use crate::dist::{self, Stream};
use crate::ids::{CustomerId, TerminalId};
use crate::{DAY_SECS, SimError};

/// Mean and standard deviation of a transaction's time of day, in seconds after
/// midnight: most payments happen around noon, a few at night.
pub(crate) const TIME_OF_DAY_MEAN: f64 = 43_200.0;
pub(crate) const TIME_OF_DAY_STD: f64 = 20_000.0;

/// A customer (card holder) and their spending profile.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerProfile {
    /// The customer's identifier; its number is the index in the population.
    pub id: CustomerId,
    /// Home location on the map.
    pub x: f64,
    /// Home location on the map.
    pub y: f64,
    /// Mean amount of a genuine transaction.
    pub mean_amount: f64,
    /// Standard deviation of a genuine transaction's amount.
    pub std_amount: f64,
    /// Mean number of transactions per day.
    pub tx_per_day: f64,
    /// The terminals within the radius of home, in increasing id order. The customer
    /// pays only there; a customer with none never transacts.
    pub terminals: Vec<TerminalId>,
}

/// A payment terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct Terminal {
    /// The terminal's identifier; its number is the index in the population.
    pub id: TerminalId,
    /// Location on the map.
    pub x: f64,
    /// Location on the map.
    pub y: f64,
}

/// Why a transaction is fraud, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FraudScenario {
    /// A genuine transaction.
    #[default]
    Genuine = 0,
    /// Pattern 1: the amount is above the fraud threshold.
    HighAmount = 1,
    /// Pattern 2: made on a compromised terminal.
    CompromisedTerminal = 2,
    /// Pattern 3: made with a compromised card, at an inflated amount.
    CompromisedCustomer = 3,
}

impl FraudScenario {
    /// The scenario's number: 0 for genuine, 1 to 3 for the fraud patterns.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// A short snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Genuine => "genuine",
            Self::HighAmount => "high_amount",
            Self::CompromisedTerminal => "compromised_terminal",
            Self::CompromisedCustomer => "compromised_customer",
        }
    }
}

/// One simulated payment.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// Position of the transaction in the generated history (0, 1, ...).
    pub tx_id: u64,
    /// Unix timestamp in seconds (UTC).
    pub timestamp: i64,
    /// Who paid.
    pub customer_id: CustomerId,
    /// Where.
    pub terminal_id: TerminalId,
    /// How much, in whole cents.
    pub amount: f64,
    /// The ground-truth label.
    pub is_fraud: bool,
    /// Which fraud pattern made it fraud ([`FraudScenario::Genuine`] if none).
    pub fraud_scenario: FraudScenario,
}

/// What was compromised in a [`Compromise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompromiseKind {
    /// A terminal: every transaction on it is fraud.
    Terminal(TerminalId),
    /// A card: a share of its transactions is fraud, at inflated amounts.
    Customer(CustomerId),
}

/// A terminal or card compromised during `[start, end)` (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Compromise {
    /// The terminal or card.
    pub kind: CompromiseKind,
    /// First second of the compromise.
    pub start: i64,
    /// First second after it.
    pub end: i64,
}

impl Compromise {
    /// Whether the compromise is in force at `timestamp`.
    pub fn active_at(&self, timestamp: i64) -> bool {
        self.start <= timestamp && timestamp < self.end
    }
}

/// A labelled transaction history, sorted by timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The configuration that produced it.
    pub config: SimConfig,
    /// Every transaction, sorted by timestamp (ties keep generation order).
    pub transactions: Vec<Transaction>,
    /// Every compromise, in order of start.
    pub compromises: Vec<Compromise>,
}

impl History {
    /// Builds a history from hand-made transactions (for tests and scenarios): sorts
    /// them by timestamp, keeping the given order for ties. Customer and terminal ids
    /// must be below `config.customers` and `config.terminals`.
    pub fn from_transactions(
        config: SimConfig,
        mut transactions: Vec<Transaction>,
    ) -> Result<Self, SimError> {
        if let Some(tx) = transactions.iter().find(|tx| {
            tx.customer_id.index() >= config.customers || tx.terminal_id.index() >= config.terminals
        }) {
            return Err(SimError::InvalidConfig(format!(
                "transaction {} refers to {} / {} outside the population",
                tx.tx_id, tx.customer_id, tx.terminal_id
            )));
        }
        transactions.sort_by_key(|tx| tx.timestamp);
        Ok(Self {
            config,
            transactions,
            compromises: Vec::new(),
        })
    }

    /// Unix timestamp of the start of the first simulated day.
    pub fn start_timestamp(&self) -> i64 {
        self.config.start_unix
    }

    /// Unix timestamp of the end of the last simulated day (exclusive).
    pub fn end_timestamp(&self) -> i64 {
        self.config.start_unix + i64::from(self.config.days) * DAY_SECS
    }

    /// Number of fraudulent transactions.
    pub fn fraud_count(&self) -> usize {
        self.transactions.iter().filter(|tx| tx.is_fraud).count()
    }

    /// Share of fraudulent transactions (0 for an empty history).
    pub fn fraud_rate(&self) -> f64 {
        if self.transactions.is_empty() {
            0.0
        } else {
            self.fraud_count() as f64 / self.transactions.len() as f64
        }
    }

    /// Number of transactions per fraud scenario, indexed by [`FraudScenario::code`].
    pub fn scenario_counts(&self) -> [usize; 4] {
        let mut counts = [0; 4];
        for tx in &self.transactions {
            counts[usize::from(tx.fraud_scenario.code())] += 1;
        }
        counts
    }
}

/// Customers and terminals, shared by the history generator and live traffic.
#[derive(Debug)]
pub(crate) struct Population {
    pub(crate) customers: Vec<CustomerProfile>,
    pub(crate) terminals: Vec<Terminal>,
}

/// A seeded simulator: builds the population once, then generates histories and live
/// traffic from it.
#[derive(Debug, Clone)]
pub struct Simulator {
    config: SimConfig,
    pub(crate) population: Arc<Population>,
}

impl Simulator {
    /// Validates the configuration and draws the population.
    pub fn new(config: SimConfig) -> Result<Self, SimError> {
        config.validate()?;
        let population = Arc::new(Population::generate(&config));
        Ok(Self { config, population })
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The customers, indexed by [`CustomerId::index`].
    pub fn customers(&self) -> &[CustomerProfile] {
        &self.population.customers
    }

    /// The terminals, indexed by [`TerminalId::index`].
    pub fn terminals(&self) -> &[Terminal] {
        &self.population.terminals
    }

    /// Generates the full labelled history: genuine transactions for every day, then
    /// the three fraud patterns on top.
    pub fn generate(&self) -> History {
        let config = &self.config;
        let mut transactions = self.genuine_transactions();
        transactions.sort_by_key(|tx| tx.timestamp);
        for (i, tx) in transactions.iter_mut().enumerate() {
            tx.tx_id = i as u64;
        }
        let compromises = self.inject_fraud(&mut transactions);
        History {
            config: config.clone(),
            transactions,
            compromises,
        }
    }

    fn genuine_transactions(&self) -> Vec<Transaction> {
        let config = &self.config;
        let expected: f64 = self
            .population
            .customers
            .iter()
            .map(|c| c.tx_per_day)
            .sum::<f64>()
            * f64::from(config.days);
        let mut transactions = Vec::with_capacity((expected * 1.05) as usize + 16);
        let mut rng = dist::rng(config.seed, Stream::Transactions, 0);
        for customer in &self.population.customers {
            if customer.terminals.is_empty() {
                continue;
            }
            for day in 0..config.days {
                let day_start = config.start_unix + i64::from(day) * DAY_SECS;
                let count = dist::poisson(&mut rng, customer.tx_per_day);
                for _ in 0..count {
                    let time_of_day =
                        dist::normal(&mut rng, TIME_OF_DAY_MEAN, TIME_OF_DAY_STD).round();
                    let amount = genuine_amount(&mut rng, customer);
                    let terminal =
                        customer.terminals[rng.random_range(0..customer.terminals.len())];
                    if !(0.0..DAY_SECS as f64).contains(&time_of_day) {
                        // Outside the day: dropped, which thins the night a little more.
                        continue;
                    }
                    transactions.push(Transaction {
                        tx_id: 0,
                        timestamp: day_start + time_of_day as i64,
                        customer_id: customer.id,
                        terminal_id: terminal,
                        amount,
                        is_fraud: false,
                        fraud_scenario: FraudScenario::Genuine,
                    });
                }
            }
        }
        transactions
    }

    /// Applies the three fraud patterns in order (a later pattern relabels an earlier
    /// one) and returns the compromises.
    fn inject_fraud(&self, transactions: &mut [Transaction]) -> Vec<Compromise> {
        let config = &self.config;
        let fraud = &config.fraud;
        for tx in transactions.iter_mut() {
            if tx.amount > fraud.amount_threshold {
                tx.is_fraud = true;
                tx.fraud_scenario = FraudScenario::HighAmount;
            }
        }
        let by_terminal = EntityIndex::new(
            config.terminals,
            transactions.iter().map(|tx| tx.terminal_id.index()),
        );
        let by_customer = EntityIndex::new(
            config.customers,
            transactions.iter().map(|tx| tx.customer_id.index()),
        );
        let mut rng = dist::rng(config.seed, Stream::Fraud, 0);
        let mut compromises = Vec::new();
        let mut window = Vec::new();
        for day in 0..config.days {
            let start = config.start_unix + i64::from(day) * DAY_SECS;

            let end = start + i64::from(fraud.terminal_compromise_days) * DAY_SECS;
            let count = dist::round_expected(
                &mut rng,
                fraud.terminal_compromise_rate * config.terminals as f64,
            );
            for t in rand::seq::index::sample(&mut rng, config.terminals, count) {
                compromises.push(Compromise {
                    kind: CompromiseKind::Terminal(TerminalId(t as u32)),
                    start,
                    end,
                });
                for &pos in by_terminal.between(t, transactions, start, end) {
                    let tx = &mut transactions[pos as usize];
                    tx.is_fraud = true;
                    tx.fraud_scenario = FraudScenario::CompromisedTerminal;
                }
            }

            let end = start + i64::from(fraud.customer_compromise_days) * DAY_SECS;
            let count = dist::round_expected(
                &mut rng,
                fraud.customer_compromise_rate * config.customers as f64,
            );
            for c in rand::seq::index::sample(&mut rng, config.customers, count) {
                compromises.push(Compromise {
                    kind: CompromiseKind::Customer(CustomerId(c as u32)),
                    start,
                    end,
                });
                // Transactions already inflated by an overlapping compromise are left alone.
                window.clear();
                window.extend(
                    by_customer
                        .between(c, transactions, start, end)
                        .iter()
                        .copied()
                        .filter(|&pos| {
                            transactions[pos as usize].fraud_scenario
                                != FraudScenario::CompromisedCustomer
                        }),
                );
                let n_fraud = (window.len() as f64 * fraud.customer_fraud_share).floor() as usize;
                for i in rand::seq::index::sample(&mut rng, window.len(), n_fraud) {
                    let tx = &mut transactions[window[i] as usize];
                    tx.amount = dist::round_cents(tx.amount * fraud.customer_amount_multiplier);
                    tx.is_fraud = true;
                    tx.fraud_scenario = FraudScenario::CompromisedCustomer;
                }
            }
        }
        compromises
    }
}

/// A genuine amount for a customer: normal around their mean, redrawn uniformly
/// below twice the mean when negative, in whole cents and at least one cent.
pub(crate) fn genuine_amount(rng: &mut impl Rng, customer: &CustomerProfile) -> f64 {
    let mut amount = dist::normal(rng, customer.mean_amount, customer.std_amount);
    if amount < 0.0 {
        amount = 2.0 * customer.mean_amount * dist::open01(rng);
    }
    dist::round_cents(amount).max(0.01)
}

/// A uniform draw in `[lo, hi)` (or `lo` when the range is empty).
fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * dist::open01(rng)
}

impl Population {
    fn generate(config: &SimConfig) -> Self {
        let mut rng = dist::rng(config.seed, Stream::Population, 0);
        let mut customers: Vec<CustomerProfile> = (0..config.customers)
            .map(|i| {
                let x = uniform(&mut rng, 0.0, config.map_size);
                let y = uniform(&mut rng, 0.0, config.map_size);
                let mean_amount = uniform(
                    &mut rng,
                    config.mean_amount_range.0,
                    config.mean_amount_range.1,
                );
                let tx_per_day = uniform(
                    &mut rng,
                    config.tx_per_day_range.0,
                    config.tx_per_day_range.1,
                );
                CustomerProfile {
                    id: CustomerId(i as u32),
                    x,
                    y,
                    mean_amount,
                    std_amount: mean_amount * config.std_amount_ratio,
                    tx_per_day,
                    terminals: Vec::new(),
                }
            })
            .collect();
        let terminals: Vec<Terminal> = (0..config.terminals)
            .map(|i| Terminal {
                id: TerminalId(i as u32),
                x: uniform(&mut rng, 0.0, config.map_size),
                y: uniform(&mut rng, 0.0, config.map_size),
            })
            .collect();
        let grid = Grid::new(config.map_size, config.radius, &terminals);
        for customer in &mut customers {
            customer.terminals = grid.within(customer.x, customer.y, config.radius, &terminals);
        }
        Self {
            customers,
            terminals,
        }
    }
}

/// Terminals bucketed in square cells at least one radius wide, so that a customer's
/// neighbours are found in the 3x3 cells around home.
struct Grid {
    cell: f64,
    side: usize,
    cells: Vec<Vec<u32>>,
}

impl Grid {
    fn new(map_size: f64, radius: f64, terminals: &[Terminal]) -> Self {
        let side = ((map_size / radius).floor() as usize).clamp(1, 1024);
        let cell = map_size / side as f64;
        let mut cells = vec![Vec::new(); side * side];
        let mut grid = Self {
            cell,
            side,
            cells: Vec::new(),
        };
        for t in terminals {
            let (cx, cy) = grid.cell_of(t.x, t.y);
            cells[cy * side + cx].push(t.id.0);
        }
        grid.cells = cells;
        grid
    }

    fn cell_of(&self, x: f64, y: f64) -> (usize, usize) {
        let clamp = |v: f64| ((v / self.cell).floor().max(0.0) as usize).min(self.side - 1);
        (clamp(x), clamp(y))
    }

    fn within(&self, x: f64, y: f64, radius: f64, terminals: &[Terminal]) -> Vec<TerminalId> {
        let (cx, cy) = self.cell_of(x, y);
        let r2 = radius * radius;
        let mut found = Vec::new();
        for gy in cy.saturating_sub(1)..=(cy + 1).min(self.side - 1) {
            for gx in cx.saturating_sub(1)..=(cx + 1).min(self.side - 1) {
                for &t in &self.cells[gy * self.side + gx] {
                    let term = &terminals[t as usize];
                    let (dx, dy) = (term.x - x, term.y - y);
                    if dx * dx + dy * dy <= r2 {
                        found.push(term.id);
                    }
                }
            }
        }
        found.sort_unstable();
        found
    }
}

/// Positions of each entity's transactions in a time-sorted slice, in time order
/// (compressed rows: one flat array and an offset per entity).
#[derive(Debug, Clone)]
pub(crate) struct EntityIndex {
    offsets: Vec<u32>,
    positions: Vec<u32>,
}

impl EntityIndex {
    /// Builds the index from each transaction's entity index, in history order.
    pub(crate) fn new(entities: usize, keys: impl Iterator<Item = usize> + Clone) -> Self {
        let mut offsets = vec![0u32; entities + 1];
        for k in keys.clone() {
            offsets[k + 1] += 1;
        }
        for i in 0..entities {
            offsets[i + 1] += offsets[i];
        }
        let mut next = offsets.clone();
        let mut positions = vec![0u32; offsets[entities] as usize];
        for (pos, k) in keys.enumerate() {
            positions[next[k] as usize] = pos as u32;
            next[k] += 1;
        }
        Self { offsets, positions }
    }

    /// Number of entities.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The positions of entity `e`'s transactions, in time order.
    pub(crate) fn of(&self, e: usize) -> &[u32] {
        &self.positions[self.offsets[e] as usize..self.offsets[e + 1] as usize]
    }

    /// The positions of entity `e`'s transactions with a timestamp in `[start, end)`.
    fn between(&self, e: usize, transactions: &[Transaction], start: i64, end: i64) -> &[u32] {
        let all = self.of(e);
        let lo = all.partition_point(|&p| transactions[p as usize].timestamp < start);
        let hi = all.partition_point(|&p| transactions[p as usize].timestamp < end);
        &all[lo..hi]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimConfig {
        SimConfig {
            seed: 3,
            customers: 500,
            terminals: 1_000,
            days: 60,
            ..SimConfig::default()
        }
    }

    #[test]
    fn same_seed_same_history_other_seed_other_history() {
        let a = Simulator::new(small()).expect("valid").generate();
        let b = Simulator::new(small()).expect("valid").generate();
        assert_eq!(a, b);
        let c = Simulator::new(SimConfig { seed: 4, ..small() })
            .expect("valid")
            .generate();
        assert_ne!(a.transactions, c.transactions);
    }

    #[test]
    fn history_is_sorted_inside_the_days_and_well_formed() {
        let sim = Simulator::new(small()).expect("valid");
        let h = sim.generate();
        assert!(h.transactions.len() > 10_000);
        assert!(
            h.transactions
                .windows(2)
                .all(|w| w[0].timestamp <= w[1].timestamp)
        );
        for (i, tx) in h.transactions.iter().enumerate() {
            assert_eq!(tx.tx_id, i as u64);
            assert!(tx.timestamp >= h.start_timestamp() && tx.timestamp < h.end_timestamp());
            assert!(tx.amount >= 0.01);
            assert_eq!((tx.amount * 100.0).round() / 100.0, tx.amount);
            assert_eq!(tx.is_fraud, tx.fraud_scenario != FraudScenario::Genuine);
            let customer = &sim.customers()[tx.customer_id.index()];
            assert!(customer.terminals.contains(&tx.terminal_id));
        }
    }

    #[test]
    fn terminals_are_within_the_radius() {
        let sim = Simulator::new(small()).expect("valid");
        let r = sim.config().radius;
        for c in sim.customers().iter().take(50) {
            let brute: Vec<TerminalId> = sim
                .terminals()
                .iter()
                .filter(|t| (t.x - c.x).powi(2) + (t.y - c.y).powi(2) <= r * r)
                .map(|t| t.id)
                .collect();
            assert_eq!(c.terminals, brute);
        }
    }

    #[test]
    fn fraud_rate_is_plausible_and_every_pattern_occurs() {
        let h = Simulator::new(SimConfig {
            seed: 11,
            customers: 2_000,
            terminals: 4_000,
            days: 90,
            ..SimConfig::default()
        })
        .expect("valid")
        .generate();
        let rate = h.fraud_rate();
        assert!((0.005..0.02).contains(&rate), "fraud rate {rate}");
        let counts = h.scenario_counts();
        assert!(counts[1..].iter().all(|&n| n > 0), "{counts:?}");
        // Every transaction on a compromised terminal during its compromise is fraud.
        for comp in &h.compromises {
            if let CompromiseKind::Terminal(t) = comp.kind {
                for tx in h.transactions.iter().filter(|tx| tx.terminal_id == t) {
                    if comp.active_at(tx.timestamp) {
                        assert!(tx.is_fraud);
                    }
                }
            }
        }
    }

    #[test]
    fn invalid_configs_are_rejected() {
        for config in [
            SimConfig {
                customers: 0,
                ..small()
            },
            SimConfig { days: 0, ..small() },
            SimConfig {
                start_unix: 5,
                ..small()
            },
            SimConfig {
                radius: f64::NAN,
                ..small()
            },
        ] {
            assert!(Simulator::new(config).is_err());
        }
    }
}
