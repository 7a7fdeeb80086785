//! The model's features: their fixed order and groups, the offline builder (one row
//! per historical transaction) and the online snapshot (what a feature store holds).
//!
//! Train/serve consistency is by construction: a transaction's customer and terminal
//! features are exactly what [`FeatureBuilder::snapshot`] returns for its timestamp,
//! because both use only transactions strictly before that instant and the same
//! integer arithmetic.

use std::ops::Range;

use crate::DAY_SECS;
use crate::ids::{CustomerId, TerminalId};
use crate::sim::{EntityIndex, History};

/// A group of features that are fetched and refreshed together, with one event
/// timestamp (the time the values were computed as of).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FeatureGroup {
    /// Computed from the request itself: amount and time.
    Transaction,
    /// The customer's recent spending profile (from the feature store).
    Customer,
    /// The terminal's recent fraud risk (from the feature store).
    Terminal,
}

impl FeatureGroup {
    /// The group's name, as used in metric labels and model cards.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Transaction => "transaction",
            Self::Customer => "customer",
            Self::Terminal => "terminal",
        }
    }

    /// The group's columns in a [`FeatureRow`].
    pub const fn range(self) -> Range<usize> {
        match self {
            Self::Transaction => 0..TRANSACTION_FEATURES,
            Self::Customer => TRANSACTION_FEATURES..TRANSACTION_FEATURES + CUSTOMER_FEATURES,
            Self::Terminal => TRANSACTION_FEATURES + CUSTOMER_FEATURES..N_FEATURES,
        }
    }

    /// The group's features, in row order.
    pub fn features(self) -> &'static [FeatureDef] {
        &FEATURES[self.range()]
    }

    /// The group with this name, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        FEATURE_GROUPS.iter().copied().find(|g| g.name() == name)
    }
}

/// One feature: its name and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeatureDef {
    /// Column name, as in the training CSV and the model card.
    pub name: &'static str,
    /// The group it is fetched with.
    pub group: FeatureGroup,
}

const fn def(name: &'static str, group: FeatureGroup) -> FeatureDef {
    FeatureDef { name, group }
}

/// Number of features in the transaction group.
pub const TRANSACTION_FEATURES: usize = 4;
/// Number of features in the customer group.
pub const CUSTOMER_FEATURES: usize = 6;
/// Number of features in the terminal group.
pub const TERMINAL_FEATURES: usize = 6;
/// Number of features in a row.
pub const N_FEATURES: usize = TRANSACTION_FEATURES + CUSTOMER_FEATURES + TERMINAL_FEATURES;

/// Every feature, in the order of a model's input row.
///
/// - `amount`: the transaction amount;
/// - `hour`: hour of day, 0 to 23 (UTC); `is_weekend`: Saturday or Sunday (0/1);
///   `is_night`: hour before [`NIGHT_END_HOUR`] (0/1);
/// - `customer_nb_tx_Nd`, `customer_avg_amount_Nd`: number and mean amount of the
///   customer's transactions in the N days before the transaction (0 when none);
/// - `terminal_nb_tx_Nd`, `terminal_risk_Nd`: number of the terminal's transactions
///   and the share of them that were fraud, in an N-day window that ends
///   [`LABEL_DELAY_SECS`] before the transaction, because labels arrive late.
pub const FEATURES: &[FeatureDef] = &[
    def("amount", FeatureGroup::Transaction),
    def("hour", FeatureGroup::Transaction),
    def("is_weekend", FeatureGroup::Transaction),
    def("is_night", FeatureGroup::Transaction),
    def("customer_nb_tx_1d", FeatureGroup::Customer),
    def("customer_avg_amount_1d", FeatureGroup::Customer),
    def("customer_nb_tx_7d", FeatureGroup::Customer),
    def("customer_avg_amount_7d", FeatureGroup::Customer),
    def("customer_nb_tx_30d", FeatureGroup::Customer),
    def("customer_avg_amount_30d", FeatureGroup::Customer),
    def("terminal_nb_tx_1d", FeatureGroup::Terminal),
    def("terminal_risk_1d", FeatureGroup::Terminal),
    def("terminal_nb_tx_7d", FeatureGroup::Terminal),
    def("terminal_risk_7d", FeatureGroup::Terminal),
    def("terminal_nb_tx_30d", FeatureGroup::Terminal),
    def("terminal_risk_30d", FeatureGroup::Terminal),
];

/// The feature groups, in row order.
pub const FEATURE_GROUPS: &[FeatureGroup] = &[
    FeatureGroup::Transaction,
    FeatureGroup::Customer,
    FeatureGroup::Terminal,
];

/// Lengths of the customer and terminal windows, in days.
pub const WINDOW_DAYS: [i64; 3] = [1, 7, 30];

/// Terminal windows end this long before the transaction: the fraud labels of the
/// last week are not known yet when a transaction is scored.
pub const LABEL_DELAY_SECS: i64 = 7 * DAY_SECS;

/// `is_night` is 1 for hours `0..NIGHT_END_HOUR` (UTC).
pub const NIGHT_END_HOUR: u32 = 6;

/// One model input row, in [`FEATURES`] order.
pub type FeatureRow = [f32; N_FEATURES];
/// The customer group's values, in [`FEATURES`] order.
pub type CustomerFeatures = [f32; CUSTOMER_FEATURES];
/// The terminal group's values, in [`FEATURES`] order.
pub type TerminalFeatures = [f32; TERMINAL_FEATURES];

/// Hour of day (0 to 23, UTC) of a Unix timestamp.
pub fn hour_of_day(unix_ts: i64) -> u32 {
    (unix_ts.rem_euclid(DAY_SECS) / 3_600) as u32
}

/// Whether a Unix timestamp falls on a Saturday or Sunday (UTC).
pub fn is_weekend(unix_ts: i64) -> bool {
    // 1970-01-01 was a Thursday: day 0 is weekday 3 when Monday is 0.
    let weekday = (unix_ts.div_euclid(DAY_SECS) + 3).rem_euclid(7);
    weekday >= 5
}

/// The transaction group, computed from the request alone:
/// `[amount, hour, is_weekend, is_night]`.
///
/// ```
/// // 2026-01-03 (a Saturday) at 02:30 UTC.
/// let f = modelwatch_sim::transaction_features(42.5, 1_767_407_400);
/// assert_eq!(f, [42.5, 2.0, 1.0, 1.0]);
/// ```
pub fn transaction_features(amount: f64, unix_ts: i64) -> [f32; TRANSACTION_FEATURES] {
    let hour = hour_of_day(unix_ts);
    [
        amount as f32,
        hour as f32,
        f32::from(u8::from(is_weekend(unix_ts))),
        f32::from(u8::from(hour < NIGHT_END_HOUR)),
    ]
}

/// Puts the three groups together into one row in [`FEATURES`] order.
pub fn assemble_row(
    transaction: &[f32; TRANSACTION_FEATURES],
    customer: &CustomerFeatures,
    terminal: &TerminalFeatures,
) -> FeatureRow {
    let mut row = [0.0; N_FEATURES];
    row[FeatureGroup::Transaction.range()].copy_from_slice(transaction);
    row[FeatureGroup::Customer.range()].copy_from_slice(customer);
    row[FeatureGroup::Terminal.range()].copy_from_slice(terminal);
    row
}

/// What an online feature store holds at one instant: the customer and terminal
/// groups for every known customer and terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSnapshot {
    /// The instant (Unix seconds) the values were computed as of: the event timestamp
    /// of both groups. Only transactions strictly before it count.
    pub as_of: i64,
    /// Customer group values, indexed by [`CustomerId::index`].
    pub customers: Vec<CustomerFeatures>,
    /// Terminal group values, indexed by [`TerminalId::index`].
    pub terminals: Vec<TerminalFeatures>,
}

impl FeatureSnapshot {
    /// The customer group of a known customer.
    pub fn customer(&self, id: CustomerId) -> Option<&CustomerFeatures> {
        self.customers.get(id.index())
    }

    /// The terminal group of a known terminal.
    pub fn terminal(&self, id: TerminalId) -> Option<&TerminalFeatures> {
        self.terminals.get(id.index())
    }

    /// Every customer with its values, in id order.
    pub fn iter_customers(&self) -> impl Iterator<Item = (CustomerId, &CustomerFeatures)> {
        self.customers
            .iter()
            .enumerate()
            .map(|(i, f)| (CustomerId(i as u32), f))
    }

    /// Every terminal with its values, in id order.
    pub fn iter_terminals(&self) -> impl Iterator<Item = (TerminalId, &TerminalFeatures)> {
        self.terminals
            .iter()
            .enumerate()
            .map(|(i, f)| (TerminalId(i as u32), f))
    }

    /// The full row for a transaction from the snapshot, or `None` when the customer or
    /// the terminal is unknown.
    pub fn row(
        &self,
        customer: CustomerId,
        terminal: TerminalId,
        amount: f64,
        unix_ts: i64,
    ) -> Option<FeatureRow> {
        Some(assemble_row(
            &transaction_features(amount, unix_ts),
            self.customer(customer)?,
            self.terminal(terminal)?,
        ))
    }
}

/// Computes features from a history: one row per transaction for training, or a
/// snapshot at any instant for the online store.
///
/// Per customer and per terminal, each window is a pair of pointers that only move
/// forward, over prefix sums, so building every row costs O(transactions x windows).
#[derive(Debug)]
pub struct FeatureBuilder<'a> {
    history: &'a History,
    by_customer: EntityIndex,
    by_terminal: EntityIndex,
}

/// Window sizes in seconds.
const WINDOWS: [i64; 3] = [
    WINDOW_DAYS[0] * DAY_SECS,
    WINDOW_DAYS[1] * DAY_SECS,
    WINDOW_DAYS[2] * DAY_SECS,
];

/// Count and sum (amount in cents, or frauds) of the transactions in one window.
#[derive(Debug, Clone, Copy, Default)]
struct WindowStat {
    count: u32,
    sum: i64,
}

fn customer_values(stats: [WindowStat; 3]) -> CustomerFeatures {
    let mut out = [0.0; CUSTOMER_FEATURES];
    for (i, s) in stats.iter().enumerate() {
        out[2 * i] = s.count as f32;
        out[2 * i + 1] = if s.count == 0 {
            0.0
        } else {
            (s.sum as f64 / 100.0 / f64::from(s.count)) as f32
        };
    }
    out
}

fn terminal_values(stats: [WindowStat; 3]) -> TerminalFeatures {
    let mut out = [0.0; TERMINAL_FEATURES];
    for (i, s) in stats.iter().enumerate() {
        out[2 * i] = s.count as f32;
        out[2 * i + 1] = if s.count == 0 {
            0.0
        } else {
            (s.sum as f64 / f64::from(s.count)) as f32
        };
    }
    out
}

/// Reusable per-entity buffers: timestamps and prefix sums of the values.
#[derive(Default)]
struct Series {
    times: Vec<i64>,
    prefix: Vec<i64>,
}

impl Series {
    fn load(&mut self, positions: &[u32], mut item: impl FnMut(usize) -> (i64, i64)) {
        self.times.clear();
        self.prefix.clear();
        self.prefix.push(0);
        let mut acc = 0;
        for &p in positions {
            let (t, v) = item(p as usize);
            self.times.push(t);
            acc += v;
            self.prefix.push(acc);
        }
    }

    fn stat(&self, lo: usize, hi: usize) -> WindowStat {
        WindowStat {
            count: (hi - lo) as u32,
            sum: self.prefix[hi] - self.prefix[lo],
        }
    }

    /// Stats of the windows `[end - w, end)` for one `end`, by binary search.
    fn at(&self, end: i64) -> [WindowStat; 3] {
        let hi = self.times.partition_point(|&t| t < end);
        WINDOWS.map(|w| self.stat(self.times.partition_point(|&t| t < end - w), hi))
    }

    /// Stats of the windows `[end - w, end)` for every transaction, where
    /// `end = own timestamp - delay` never decreases: pointers only move forward.
    fn sweep(&self, delay: i64, mut emit: impl FnMut(usize, usize, WindowStat)) {
        for (k, w) in WINDOWS.iter().enumerate() {
            let (mut lo, mut hi) = (0, 0);
            for (j, &t) in self.times.iter().enumerate() {
                let end = t - delay;
                while hi < self.times.len() && self.times[hi] < end {
                    hi += 1;
                }
                while lo < hi && self.times[lo] < end - w {
                    lo += 1;
                }
                emit(j, k, self.stat(lo, hi));
            }
        }
    }
}

fn cents(amount: f64) -> i64 {
    crate::dist::to_cents(amount)
}

impl<'a> FeatureBuilder<'a> {
    /// Indexes the history by customer and by terminal.
    pub fn new(history: &'a History) -> Self {
        let txs = &history.transactions;
        Self {
            history,
            by_customer: EntityIndex::new(
                history.config.customers,
                txs.iter().map(|tx| tx.customer_id.index()),
            ),
            by_terminal: EntityIndex::new(
                history.config.terminals,
                txs.iter().map(|tx| tx.terminal_id.index()),
            ),
        }
    }

    /// One feature row per transaction, in history order.
    pub fn rows(&self) -> Vec<FeatureRow> {
        let txs = &self.history.transactions;
        let mut rows: Vec<FeatureRow> = txs
            .iter()
            .map(|tx| {
                let mut row = [0.0; N_FEATURES];
                row[..TRANSACTION_FEATURES]
                    .copy_from_slice(&transaction_features(tx.amount, tx.timestamp));
                row
            })
            .collect();
        let mut series = Series::default();
        let mut stats: Vec<[WindowStat; 3]> = Vec::new();

        for e in 0..self.by_customer.len() {
            let positions = self.by_customer.of(e);
            series.load(positions, |p| (txs[p].timestamp, cents(txs[p].amount)));
            stats.clear();
            stats.resize(positions.len(), [WindowStat::default(); 3]);
            series.sweep(0, |j, k, s| stats[j][k] = s);
            for (&p, s) in positions.iter().zip(&stats) {
                rows[p as usize][FeatureGroup::Customer.range()]
                    .copy_from_slice(&customer_values(*s));
            }
        }
        for e in 0..self.by_terminal.len() {
            let positions = self.by_terminal.of(e);
            series.load(positions, |p| {
                (txs[p].timestamp, i64::from(txs[p].is_fraud))
            });
            stats.clear();
            stats.resize(positions.len(), [WindowStat::default(); 3]);
            series.sweep(LABEL_DELAY_SECS, |j, k, s| stats[j][k] = s);
            for (&p, s) in positions.iter().zip(&stats) {
                rows[p as usize][FeatureGroup::Terminal.range()]
                    .copy_from_slice(&terminal_values(*s));
            }
        }
        rows
    }

    /// The customer and terminal groups of every customer and terminal as of `as_of`
    /// (Unix seconds): what an online feature store refreshed at that instant holds.
    pub fn snapshot(&self, as_of: i64) -> FeatureSnapshot {
        let txs = &self.history.transactions;
        let mut series = Series::default();
        let customers = (0..self.by_customer.len())
            .map(|e| {
                series.load(self.by_customer.of(e), |p| {
                    (txs[p].timestamp, cents(txs[p].amount))
                });
                customer_values(series.at(as_of))
            })
            .collect();
        let terminals = (0..self.by_terminal.len())
            .map(|e| {
                series.load(self.by_terminal.of(e), |p| {
                    (txs[p].timestamp, i64::from(txs[p].is_fraud))
                });
                terminal_values(series.at(as_of - LABEL_DELAY_SECS))
            })
            .collect();
        FeatureSnapshot {
            as_of,
            customers,
            terminals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DEFAULT_START_UNIX, FraudScenario, SimConfig, Simulator, Transaction};

    const T0: i64 = DEFAULT_START_UNIX;
    const H: i64 = 3_600;

    fn tx(ts: i64, customer: u32, terminal: u32, amount: f64, fraud: bool) -> Transaction {
        Transaction {
            tx_id: 0,
            timestamp: ts,
            customer_id: CustomerId(customer),
            terminal_id: TerminalId(terminal),
            amount,
            is_fraud: fraud,
            fraud_scenario: if fraud {
                FraudScenario::CompromisedTerminal
            } else {
                FraudScenario::Genuine
            },
        }
    }

    fn tiny(transactions: Vec<Transaction>) -> History {
        let config = SimConfig {
            customers: 2,
            terminals: 2,
            days: 60,
            ..SimConfig::default()
        };
        History::from_transactions(config, transactions).expect("ids in range")
    }

    fn value(row: &FeatureRow, name: &str) -> f32 {
        let i = FEATURES
            .iter()
            .position(|f| f.name == name)
            .expect("known feature");
        row[i]
    }

    #[test]
    fn features_are_ordered_and_grouped() {
        assert_eq!(FEATURES.len(), N_FEATURES);
        let mut covered = 0;
        for g in FEATURE_GROUPS {
            assert_eq!(g.range().start, covered);
            assert!(g.features().iter().all(|f| f.group == *g));
            assert_eq!(FeatureGroup::from_name(g.name()), Some(*g));
            covered = g.range().end;
        }
        assert_eq!(covered, N_FEATURES);
        let mut names: Vec<_> = FEATURES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), N_FEATURES);
    }

    #[test]
    fn time_features() {
        // 2026-01-01 is a Thursday.
        assert!(!is_weekend(T0));
        assert!(is_weekend(T0 + 2 * DAY_SECS));
        assert!(is_weekend(T0 + 3 * DAY_SECS + 23 * H));
        assert!(!is_weekend(T0 + 4 * DAY_SECS));
        assert_eq!(
            transaction_features(10.0, T0 + 5 * H + 59 * 60),
            [10.0, 5.0, 0.0, 1.0]
        );
        assert_eq!(
            transaction_features(10.0, T0 + 6 * H),
            [10.0, 6.0, 0.0, 0.0]
        );
        assert_eq!(hour_of_day(T0 - 1), 23);
    }

    #[test]
    fn customer_windows_on_a_hand_built_history() {
        // Customer 0: 10.00 at day 0 noon, 20.00 at day 5 noon, 30.00 at day 5 18:00,
        // then a transaction at day 6 10:00 whose features we check, and one at day 40.
        let h = tiny(vec![
            tx(T0 + 12 * H, 0, 0, 10.0, false),
            tx(T0 + 5 * DAY_SECS + 12 * H, 0, 1, 20.0, false),
            tx(T0 + 5 * DAY_SECS + 18 * H, 0, 0, 30.0, false),
            tx(T0 + 6 * DAY_SECS + 10 * H, 0, 1, 99.0, false),
            tx(T0 + 40 * DAY_SECS, 0, 1, 5.0, false),
            // Another customer, same instants: must not leak into customer 0.
            tx(T0 + 5 * DAY_SECS + 12 * H, 1, 0, 1000.0, false),
        ]);
        let rows = FeatureBuilder::new(&h).rows();
        let first = &rows[0];
        assert_eq!(value(first, "customer_nb_tx_30d"), 0.0);
        assert_eq!(value(first, "customer_avg_amount_30d"), 0.0);
        let pos = h
            .transactions
            .iter()
            .position(|t| t.amount == 99.0)
            .expect("present");
        let r = &rows[pos];
        // 1 day before day 6 10:00 is day 5 10:00: the 12:00 and 18:00 ones.
        assert_eq!(value(r, "customer_nb_tx_1d"), 2.0);
        assert_eq!(value(r, "customer_avg_amount_1d"), 25.0);
        assert_eq!(value(r, "customer_nb_tx_7d"), 3.0);
        assert_eq!(value(r, "customer_avg_amount_7d"), 20.0);
        assert_eq!(value(r, "customer_nb_tx_30d"), 3.0);
        assert_eq!(value(r, "amount"), 99.0);
        // Day 40: only the last 30 days count, i.e. nothing before day 10.
        let last = rows
            .iter()
            .zip(&h.transactions)
            .find(|(_, t)| t.amount == 5.0)
            .expect("present")
            .0;
        assert_eq!(value(last, "customer_nb_tx_30d"), 0.0);
    }

    #[test]
    fn same_instant_transactions_do_not_see_each_other() {
        let h = tiny(vec![
            tx(T0 + 10 * H, 0, 0, 10.0, false),
            tx(T0 + 10 * H, 0, 0, 20.0, false),
            tx(T0 + 11 * H, 0, 0, 30.0, false),
        ]);
        let rows = FeatureBuilder::new(&h).rows();
        assert_eq!(value(&rows[0], "customer_nb_tx_1d"), 0.0);
        assert_eq!(value(&rows[1], "customer_nb_tx_1d"), 0.0);
        assert_eq!(value(&rows[2], "customer_nb_tx_1d"), 2.0);
        assert_eq!(value(&rows[2], "customer_avg_amount_1d"), 15.0);
    }

    #[test]
    fn terminal_risk_respects_the_label_delay() {
        let day = |d: i64| T0 + d * DAY_SECS;
        let h = tiny(vec![
            // On terminal 0: two frauds and two genuine 10 to 9 days before day 20.
            tx(day(10) + H, 1, 0, 1.0, true),
            tx(day(10) + 2 * H, 1, 0, 1.0, false),
            tx(day(11), 1, 0, 1.0, true),
            tx(day(11) + H, 1, 0, 1.0, false),
            // A fraud 3 days before day 20: its label is not known yet.
            tx(day(17), 1, 0, 1.0, true),
            // The transaction we look at.
            tx(day(20) + 12 * H, 0, 0, 50.0, false),
        ]);
        let rows = FeatureBuilder::new(&h).rows();
        let r = &rows[5];
        // Windows end at day 13 12:00. 1 day: [day 12 12:00, day 13 12:00) is empty.
        assert_eq!(value(r, "terminal_nb_tx_1d"), 0.0);
        assert_eq!(value(r, "terminal_risk_1d"), 0.0);
        // 7 days: [day 6 12:00, day 13 12:00) holds the four of days 10 and 11.
        assert_eq!(value(r, "terminal_nb_tx_7d"), 4.0);
        assert_eq!(value(r, "terminal_risk_7d"), 0.5);
        assert_eq!(value(r, "terminal_nb_tx_30d"), 4.0);
        assert_eq!(value(r, "terminal_risk_30d"), 0.5);
        // The day-17 fraud itself sees nothing: every earlier one is within 7 days.
        assert_eq!(value(&rows[4], "terminal_nb_tx_30d"), 0.0);

        // A fraud exactly 7 days before counts, one a second later does not.
        let h = tiny(vec![
            tx(day(3), 1, 1, 1.0, true),
            tx(day(3) + 1, 1, 1, 1.0, true),
            tx(day(10), 0, 1, 1.0, false),
        ]);
        let rows = FeatureBuilder::new(&h).rows();
        assert_eq!(value(&rows[2], "terminal_nb_tx_1d"), 0.0);
        let h = tiny(vec![
            tx(day(3) - 1, 1, 1, 1.0, true),
            tx(day(3) + 1, 1, 1, 1.0, true),
            tx(day(10), 0, 1, 1.0, false),
        ]);
        let rows = FeatureBuilder::new(&h).rows();
        assert_eq!(value(&rows[2], "terminal_nb_tx_1d"), 1.0);
        assert_eq!(value(&rows[2], "terminal_risk_1d"), 1.0);
    }

    #[test]
    fn rows_equal_the_snapshot_at_the_transaction_time() {
        let sim = Simulator::new(SimConfig {
            seed: 5,
            customers: 300,
            terminals: 600,
            days: 50,
            ..SimConfig::default()
        })
        .expect("valid");
        let h = sim.generate();
        let builder = FeatureBuilder::new(&h);
        let rows = builder.rows();
        for i in (0..h.transactions.len()).step_by(h.transactions.len() / 40) {
            let tx = &h.transactions[i];
            let snap = builder.snapshot(tx.timestamp);
            let from_snapshot = snap
                .row(tx.customer_id, tx.terminal_id, tx.amount, tx.timestamp)
                .expect("known ids");
            assert_eq!(rows[i], from_snapshot, "transaction {i}");
        }
        let snap = builder.snapshot(h.end_timestamp());
        assert_eq!(snap.customers.len(), 300);
        assert_eq!(snap.terminals.len(), 600);
        assert!(snap.customer(CustomerId(300)).is_none());
        assert_eq!(snap.iter_terminals().count(), 600);
    }

    #[test]
    fn rows_match_a_brute_force_computation() {
        let sim = Simulator::new(SimConfig {
            seed: 9,
            customers: 60,
            terminals: 80,
            days: 45,
            ..SimConfig::default()
        })
        .expect("valid");
        let h = sim.generate();
        let rows = FeatureBuilder::new(&h).rows();
        for (i, tx) in h.transactions.iter().enumerate().step_by(7) {
            for (k, days) in WINDOW_DAYS.iter().enumerate() {
                let w = days * DAY_SECS;
                let mine: Vec<_> = h
                    .transactions
                    .iter()
                    .filter(|o| o.customer_id == tx.customer_id)
                    .filter(|o| o.timestamp < tx.timestamp && o.timestamp >= tx.timestamp - w)
                    .collect();
                let n = mine.len() as f32;
                assert_eq!(rows[i][4 + 2 * k], n);
                if !mine.is_empty() {
                    let avg = mine.iter().map(|o| o.amount).sum::<f64>() / mine.len() as f64;
                    assert!((f64::from(rows[i][5 + 2 * k]) - avg).abs() < 1e-3);
                }
                let end = tx.timestamp - LABEL_DELAY_SECS;
                let term: Vec<_> = h
                    .transactions
                    .iter()
                    .filter(|o| o.terminal_id == tx.terminal_id)
                    .filter(|o| o.timestamp < end && o.timestamp >= end - w)
                    .collect();
                assert_eq!(rows[i][10 + 2 * k], term.len() as f32);
                let frauds = term.iter().filter(|o| o.is_fraud).count();
                let risk = if term.is_empty() {
                    0.0
                } else {
                    frauds as f32 / term.len() as f32
                };
                assert!((rows[i][11 + 2 * k] - risk).abs() < 1e-6);
            }
        }
    }
}
