//! Live traffic: an endless stream of plausible transactions from a history's
//! population, with knobs that incident scenarios turn while it runs.

use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::DAY_SECS;
use crate::config::FraudConfig;
use crate::dist::{self, Stream};
use crate::ids::{CustomerId, TerminalId};
use crate::sim::{CompromiseKind, FraudScenario, History, Population, Simulator, genuine_amount};

/// What a scenario can change in live traffic. The defaults reproduce the history's
/// own mix.
///
/// The amount knobs change what the model sees, not the ground truth: a transaction's
/// label is decided on its amount before scaling and shifting, as when prices drift for
/// reasons that have nothing to do with fraud.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TrafficKnobs {
    /// Multiplies the probability of each fraud pattern (1 = the history's mix, 0 = no
    /// fraud). The total fraud probability is capped at 1.
    pub fraud_multiplier: f64,
    /// Every amount is multiplied by this, then [`amount_shift`](Self::amount_shift)
    /// is added (the result is at least one cent).
    pub amount_scale: f64,
    /// Added to every amount after scaling.
    pub amount_shift: f64,
    /// Share of transactions (0 to 1) whose customer the feature store has never seen.
    pub unknown_customer_fraction: f64,
    /// Share of transactions (0 to 1) whose terminal the feature store has never seen.
    pub unknown_terminal_fraction: f64,
}

impl Default for TrafficKnobs {
    fn default() -> Self {
        Self {
            fraud_multiplier: 1.0,
            amount_scale: 1.0,
            amount_shift: 0.0,
            unknown_customer_fraction: 0.0,
            unknown_terminal_fraction: 0.0,
        }
    }
}

impl TrafficKnobs {
    /// The same knobs brought into their valid ranges: non-finite values fall back to
    /// the default, the multiplier and the scale are at least 0, fractions are clamped
    /// to 0..=1.
    pub fn sanitized(self) -> Self {
        let d = Self::default();
        let finite = |v: f64, default: f64| if v.is_finite() { v } else { default };
        Self {
            fraud_multiplier: finite(self.fraud_multiplier, d.fraud_multiplier).max(0.0),
            amount_scale: finite(self.amount_scale, d.amount_scale).max(0.0),
            amount_shift: finite(self.amount_shift, d.amount_shift),
            unknown_customer_fraction: finite(self.unknown_customer_fraction, 0.0).clamp(0.0, 1.0),
            unknown_terminal_fraction: finite(self.unknown_terminal_fraction, 0.0).clamp(0.0, 1.0),
        }
    }
}

/// One live transaction, with its ground truth for delayed feedback.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LiveTransaction {
    /// Who paid (possibly unknown to the feature store, see [`Self::known_customer`]).
    pub customer_id: CustomerId,
    /// Where (possibly unknown to the feature store, see [`Self::known_terminal`]).
    pub terminal_id: TerminalId,
    /// How much, in whole cents, after the amount knobs.
    pub amount: f64,
    /// Unix timestamp in seconds (UTC).
    pub timestamp: i64,
    /// The ground-truth label.
    pub is_fraud: bool,
    /// Which fraud pattern made it fraud.
    pub fraud_scenario: FraudScenario,
    /// Whether the customer belongs to the simulated population.
    pub known_customer: bool,
    /// Whether the terminal belongs to the simulated population.
    pub known_terminal: bool,
}

/// An endless iterator of live transactions from a simulator's population.
///
/// Fraud follows the history: terminals and cards that are compromised at the end of
/// the history stay compromised, and each pattern occurs with the share it had in the
/// history's last 30 days, times [`TrafficKnobs::fraud_multiplier`]. Genuine
/// transactions avoid compromised terminals and stay under the amount threshold, so the
/// fraud mix is exactly what the knobs say.
///
/// [`Iterator::next`] advances a simulated clock by exponential gaps at the configured
/// rate; [`generate_at`](Self::generate_at) takes the timestamp from the caller (a load
/// generator on a real clock).
#[derive(Debug, Clone)]
pub struct TrafficGenerator {
    population: Arc<Population>,
    fraud: FraudConfig,
    rng: ChaCha8Rng,
    seed: u64,
    knobs: TrafficKnobs,
    clock: f64,
    rate_per_sec: f64,
    /// Customers that can transact, and the running sum of their daily rates.
    active: Vec<u32>,
    cumulative: Vec<f64>,
    compromised_terminals: Vec<TerminalId>,
    is_compromised_terminal: Vec<bool>,
    compromised_customers: Vec<CustomerId>,
    /// Share of each fraud pattern, indexed by [`FraudScenario::code`] (0 unused).
    shares: [f64; 4],
}

impl Simulator {
    /// A live traffic generator from this simulator's population, continuing `history`
    /// (which must come from this simulator) from `start` (Unix seconds).
    ///
    /// The default rate is the history's average transactions per second; the random
    /// stream is derived from the configuration's seed (see
    /// [`TrafficGenerator::with_stream`] for independent parallel generators).
    pub fn traffic(&self, history: &History, start: i64) -> TrafficGenerator {
        let population = Arc::clone(&self.population);
        let end = history.end_timestamp();
        let span = (i64::from(history.config.days) * DAY_SECS) as f64;
        let rate_per_sec = (history.transactions.len() as f64 / span).max(1e-6);

        let mut compromised_terminals = Vec::new();
        let mut compromised_customers = Vec::new();
        for c in history.compromises.iter().filter(|c| c.active_at(end - 1)) {
            match c.kind {
                CompromiseKind::Terminal(t) if t.index() < population.terminals.len() => {
                    compromised_terminals.push(t);
                }
                CompromiseKind::Customer(c)
                    if population
                        .customers
                        .get(c.index())
                        .is_some_and(|p| !p.terminals.is_empty()) =>
                {
                    compromised_customers.push(c);
                }
                _ => {}
            }
        }
        compromised_terminals.sort_unstable();
        compromised_terminals.dedup();
        compromised_customers.sort_unstable();
        compromised_customers.dedup();
        let mut is_compromised_terminal = vec![false; population.terminals.len()];
        for t in &compromised_terminals {
            is_compromised_terminal[t.index()] = true;
        }

        let recent_from = end - 30 * DAY_SECS;
        let mut counts = [0usize; 4];
        let mut total = 0usize;
        for tx in history
            .transactions
            .iter()
            .filter(|tx| tx.timestamp >= recent_from)
        {
            counts[usize::from(tx.fraud_scenario.code())] += 1;
            total += 1;
        }
        let mut shares = [0.0; 4];
        for (share, count) in shares.iter_mut().zip(counts).skip(1) {
            *share = count as f64 / total.max(1) as f64;
        }
        if compromised_terminals.is_empty() {
            shares[FraudScenario::CompromisedTerminal as usize] = 0.0;
        }

        let mut active = Vec::new();
        let mut cumulative = Vec::new();
        let mut sum = 0.0;
        for c in population
            .customers
            .iter()
            .filter(|c| !c.terminals.is_empty())
        {
            sum += c.tx_per_day.max(1e-9);
            active.push(c.id.0);
            cumulative.push(sum);
        }

        let seed = self.config().seed;
        TrafficGenerator {
            population,
            fraud: self.config().fraud.clone(),
            rng: dist::rng(seed, Stream::Traffic, 0),
            seed,
            knobs: TrafficKnobs::default(),
            clock: start as f64,
            rate_per_sec,
            active,
            cumulative,
            compromised_terminals,
            is_compromised_terminal,
            compromised_customers,
            shares,
        }
    }
}

impl TrafficGenerator {
    /// Sets the mean rate of the simulated clock, in transactions per second.
    pub fn with_rate(mut self, tx_per_sec: f64) -> Self {
        if tx_per_sec.is_finite() && tx_per_sec > 0.0 {
            self.rate_per_sec = tx_per_sec;
        }
        self
    }

    /// Restarts the random stream on an independent sub-stream: generators with
    /// different stream numbers never repeat each other (one per load worker).
    pub fn with_stream(mut self, stream: u64) -> Self {
        self.rng = dist::rng(self.seed, Stream::Traffic, stream);
        self
    }

    /// Sets the knobs for the transactions that follow (after [`TrafficKnobs::sanitized`]).
    pub fn with_knobs(mut self, knobs: TrafficKnobs) -> Self {
        self.set_knobs(knobs);
        self
    }

    /// Changes the knobs while running (after [`TrafficKnobs::sanitized`]).
    pub fn set_knobs(&mut self, knobs: TrafficKnobs) {
        self.knobs = knobs.sanitized();
    }

    /// The knobs in force.
    pub fn knobs(&self) -> TrafficKnobs {
        self.knobs
    }

    /// The simulated clock (Unix seconds) after the last generated transaction.
    pub fn clock(&self) -> f64 {
        self.clock
    }

    /// The mean rate of the simulated clock, in transactions per second.
    pub fn rate(&self) -> f64 {
        self.rate_per_sec
    }

    /// The terminals compromised at the end of the history.
    pub fn compromised_terminals(&self) -> &[TerminalId] {
        &self.compromised_terminals
    }

    /// The cards compromised at the end of the history.
    pub fn compromised_customers(&self) -> &[CustomerId] {
        &self.compromised_customers
    }

    /// The probability that the next transaction is fraud, with the current knobs.
    pub fn fraud_probability(&self) -> f64 {
        (self.shares.iter().sum::<f64>() * self.knobs.fraud_multiplier).min(1.0)
    }

    /// One transaction at the given timestamp; moves the simulated clock there.
    pub fn generate_at(&mut self, timestamp: i64) -> LiveTransaction {
        self.clock = timestamp as f64;
        let knobs = self.knobs;
        let total: f64 = self.shares.iter().sum::<f64>() * knobs.fraud_multiplier;
        let norm = if total > 1.0 { 1.0 / total } else { 1.0 };
        let p = self.shares.map(|s| s * knobs.fraud_multiplier * norm);
        let r = dist::open01(&mut self.rng);
        let scenario = if r < p[1] {
            FraudScenario::HighAmount
        } else if r < p[1] + p[2] {
            FraudScenario::CompromisedTerminal
        } else if r < p[1] + p[2] + p[3] && !self.compromised_customers.is_empty() {
            FraudScenario::CompromisedCustomer
        } else {
            FraudScenario::Genuine
        };

        let population = Arc::clone(&self.population);
        let threshold = self.fraud.amount_threshold;
        let (customer, terminal, amount, scenario) = match scenario {
            FraudScenario::CompromisedCustomer => {
                let i = self.rng.random_range(0..self.compromised_customers.len());
                let customer = self.compromised_customers[i];
                let profile = &population.customers[customer.index()];
                let terminal = self.genuine_terminal(&profile.terminals);
                let amount = self.genuine_amount(customer) * self.fraud.customer_amount_multiplier;
                (customer, terminal, amount, scenario)
            }
            FraudScenario::CompromisedTerminal => {
                let customer = self.pick_customer();
                let i = self.rng.random_range(0..self.compromised_terminals.len());
                let terminal = self.compromised_terminals[i];
                (customer, terminal, self.genuine_amount(customer), scenario)
            }
            FraudScenario::HighAmount => {
                let customer = self.pick_customer();
                let terminal = self.customer_terminal(customer);
                let amount = threshold + 0.01 + dist::exponential(&mut self.rng, 0.2 * threshold);
                (customer, terminal, amount, scenario)
            }
            FraudScenario::Genuine => {
                let customer = self.pick_customer();
                let terminal = self.customer_terminal(customer);
                let scenario = if self
                    .is_compromised_terminal
                    .get(terminal.index())
                    .copied()
                    .unwrap_or(false)
                {
                    // Every terminal of this customer is compromised.
                    FraudScenario::CompromisedTerminal
                } else {
                    FraudScenario::Genuine
                };
                (customer, terminal, self.genuine_amount(customer), scenario)
            }
        };

        let n_customers = population.customers.len();
        let n_terminals = population.terminals.len();
        let known_customer = !self.rng.random_bool(knobs.unknown_customer_fraction);
        let known_terminal = !self.rng.random_bool(knobs.unknown_terminal_fraction);
        let customer_id = if known_customer {
            customer
        } else {
            CustomerId(unknown_id(&mut self.rng, n_customers))
        };
        let terminal_id = if known_terminal {
            terminal
        } else {
            TerminalId(unknown_id(&mut self.rng, n_terminals))
        };
        let amount = dist::round_cents(amount * knobs.amount_scale + knobs.amount_shift).max(0.01);
        LiveTransaction {
            customer_id,
            terminal_id,
            amount,
            timestamp,
            is_fraud: scenario != FraudScenario::Genuine,
            fraud_scenario: scenario,
            known_customer,
            known_terminal,
        }
    }

    /// A customer drawn in proportion to their daily rate.
    fn pick_customer(&mut self) -> CustomerId {
        match self.cumulative.last() {
            Some(&total) => {
                let x = dist::open01(&mut self.rng) * total;
                let i = self
                    .cumulative
                    .partition_point(|&c| c <= x)
                    .min(self.active.len() - 1);
                CustomerId(self.active[i])
            }
            None => CustomerId(
                self.rng
                    .random_range(0..self.population.customers.len() as u32),
            ),
        }
    }

    /// One of the customer's terminals, or any terminal for a customer without one.
    fn customer_terminal(&mut self, customer: CustomerId) -> TerminalId {
        let population = Arc::clone(&self.population);
        let own = &population.customers[customer.index()].terminals;
        if own.is_empty() {
            TerminalId(self.rng.random_range(0..population.terminals.len() as u32))
        } else {
            self.genuine_terminal(own)
        }
    }

    /// A terminal from `own` that is not compromised, if a few draws find one.
    fn genuine_terminal(&mut self, own: &[TerminalId]) -> TerminalId {
        let mut terminal = own[self.rng.random_range(0..own.len())];
        for _ in 0..16 {
            if !self.is_compromised_terminal[terminal.index()] {
                break;
            }
            terminal = own[self.rng.random_range(0..own.len())];
        }
        terminal
    }

    /// A genuine amount for the customer, below the fraud threshold.
    fn genuine_amount(&mut self, customer: CustomerId) -> f64 {
        let profile = &self.population.customers[customer.index()];
        let threshold = self.fraud.amount_threshold;
        for _ in 0..16 {
            let amount = genuine_amount(&mut self.rng, profile);
            if amount <= threshold {
                return amount;
            }
        }
        threshold
    }
}

/// An id outside the population: a customer or terminal the store has never seen.
fn unknown_id(rng: &mut ChaCha8Rng, population: usize) -> u32 {
    let span = population.max(1_000) * 9;
    (population + rng.random_range(0..span)) as u32
}

impl Iterator for TrafficGenerator {
    type Item = LiveTransaction;

    /// Advances the simulated clock by an exponential gap, which picks the day, and
    /// draws the time of day from the history's profile (a normal around noon, as
    /// [`crate::Simulator::generate`] does), so that `hour` and `is_night` keep their
    /// reference mix. Never returns `None`.
    fn next(&mut self) -> Option<LiveTransaction> {
        let gap = dist::exponential(&mut self.rng, 1.0 / self.rate_per_sec);
        let clock = self.clock + gap;
        let day_start = (clock / DAY_SECS as f64).floor() * DAY_SECS as f64;
        let time_of_day = loop {
            let t = dist::normal(
                &mut self.rng,
                crate::sim::TIME_OF_DAY_MEAN,
                crate::sim::TIME_OF_DAY_STD,
            )
            .round();
            if (0.0..DAY_SECS as f64).contains(&t) {
                break t;
            }
        };
        let tx = self.generate_at((day_start + time_of_day) as i64);
        self.clock = clock;
        Some(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FeatureBuilder, SimConfig};

    fn setup() -> (Simulator, History) {
        let sim = Simulator::new(SimConfig {
            seed: 21,
            customers: 1_000,
            terminals: 2_000,
            days: 60,
            ..SimConfig::default()
        })
        .expect("valid");
        let history = sim.generate();
        (sim, history)
    }

    #[test]
    fn traffic_is_deterministic_and_plausible() {
        let (sim, history) = setup();
        let start = history.end_timestamp();
        let a: Vec<_> = sim.traffic(&history, start).take(2_000).collect();
        let b: Vec<_> = sim.traffic(&history, start).take(2_000).collect();
        assert_eq!(a, b);
        let c: Vec<_> = sim
            .traffic(&history, start)
            .with_stream(1)
            .take(2_000)
            .collect();
        assert_ne!(a, c);
        // Days move forward; within a day, times follow the history's profile.
        let day = |t: i64| t.div_euclid(DAY_SECS);
        assert!(
            a.windows(2)
                .all(|w| day(w[0].timestamp) <= day(w[1].timestamp))
        );
        assert!(day(a[0].timestamp) >= day(start));
        let noonish = a
            .iter()
            .filter(|t| (6..18).contains(&crate::hour_of_day(t.timestamp)))
            .count();
        assert!(
            noonish > a.len() * 6 / 10,
            "{noonish} of {} between 6 and 18 h",
            a.len()
        );
        for tx in &a {
            assert!(tx.known_customer && tx.known_terminal);
            assert!(tx.customer_id.index() < 1_000);
            assert!(tx.terminal_id.index() < 2_000);
            assert!(tx.amount >= 0.01);
            assert_eq!(tx.is_fraud, tx.fraud_scenario != FraudScenario::Genuine);
            if !tx.is_fraud {
                assert!(tx.amount <= 220.0);
            }
        }
    }

    #[test]
    fn fraud_multiplier_scales_the_fraud_rate() {
        let (sim, history) = setup();
        let rate = |m: f64| {
            let n = 40_000;
            let frauds = sim
                .traffic(&history, 0)
                .with_knobs(TrafficKnobs {
                    fraud_multiplier: m,
                    ..TrafficKnobs::default()
                })
                .take(n)
                .filter(|tx| tx.is_fraud)
                .count();
            frauds as f64 / n as f64
        };
        let base = rate(1.0);
        assert!((0.004..0.03).contains(&base), "{base}");
        let five = rate(5.0);
        assert!((five / base - 5.0).abs() < 1.0, "{base} {five}");
        assert_eq!(rate(0.0), 0.0);
    }

    #[test]
    fn compromised_terminals_have_known_risk_in_the_snapshot() {
        let (sim, history) = setup();
        let snapshot = FeatureBuilder::new(&history).snapshot(history.end_timestamp());
        let generator = sim.traffic(&history, history.end_timestamp());
        assert!(!generator.compromised_terminals().is_empty());
        let risky = generator
            .compromised_terminals()
            .iter()
            .filter(|t| snapshot.terminal(**t).is_some_and(|f| f[5] > 0.0))
            .count();
        assert!(risky > 0);
    }

    #[test]
    fn knobs_shift_amounts_and_ids() {
        let (sim, history) = setup();
        let knobs = TrafficKnobs {
            amount_scale: 2.0,
            amount_shift: 10.0,
            unknown_customer_fraction: 0.5,
            unknown_terminal_fraction: 1.0,
            fraud_multiplier: f64::NAN,
        };
        let mut generator = sim.traffic(&history, 0).with_knobs(knobs);
        assert_eq!(generator.knobs().fraud_multiplier, 1.0);
        let txs: Vec<_> = generator.by_ref().take(4_000).collect();
        assert!(
            txs.iter()
                .all(|t| !t.known_terminal && t.terminal_id.index() >= 2_000)
        );
        let unknown = txs.iter().filter(|t| !t.known_customer).count();
        assert!((1_700..2_300).contains(&unknown), "{unknown}");
        assert!(txs.iter().all(|t| t.amount >= 10.0));
        generator.set_knobs(TrafficKnobs::default());
        let tx = generator.generate_at(123);
        assert_eq!(tx.timestamp, 123);
        assert!(tx.known_customer && tx.known_terminal);
    }
}
