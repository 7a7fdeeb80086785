//! Module implementing the sliding windows behind the per-replica drift gauges and the
//! clock they read. See [`Clock`] for details.
//!
//! # How a window works
//!
//! A window of length W is a ring of N slots, each W / N seconds wide (whole seconds).
//! Time `t` (Unix seconds) belongs to slot epoch `e = t / width`, stored at ring
//! position `e mod N`. Each slot holds a stamp (the epoch it counts for) and a row of
//! counters. The window at time `t` is every slot whose epoch is one of the last N,
//! the current, partly filled one included: it covers between W − width and W
//! seconds of history.
//!
//! Writers never lock. A writer loads the slot's stamp; when it is the current epoch
//! it increments counters with relaxed atomic adds. When the stamp is older, the slot
//! is stale: the first writer to swap the stamp to a "clearing" marker zeroes the row
//! and then publishes the new epoch (release); writers that see the marker leave their
//! prediction out of the window rather than wait. Readers (the scrape) add up the live
//! slots and re-check each stamp after reading, dropping a slot that was recycled
//! meanwhile.
//!
//! # Tolerance
//!
//! The window is a monitoring estimate, not a ledger. It can be off by:
//! - the predictions that arrive during the few hundred nanoseconds a slot is being
//!   cleared, once per slot width (they are still counted in the counters);
//! - a writer descheduled for longer than W − width between reading the stamp and
//!   adding, whose prediction then lands in a recycled slot;
//! - a scrape that runs while a writer is adding, which sees part of that prediction.
//!
//! A prediction that carries a time older than its slot's current epoch (a clock that
//! went backwards) is left out of the window.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering, fence};
use std::time::{SystemTime, UNIX_EPOCH};

/// The source of "now" for windows and feature ages, in Unix seconds.
///
/// The library reads it at scrape time; the hot path takes the time as a parameter
/// (get it from [`crate::DriftHandle::now`]) so that one reading serves a batch.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Seconds since the Unix epoch.
    fn unix_seconds(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_seconds(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }
}

/// A clock that moves only when told to, for tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock stopped at `unix_seconds`.
    pub fn new(unix_seconds: i64) -> Self {
        Self(AtomicI64::new(unix_seconds))
    }

    /// Moves the clock to `unix_seconds`.
    pub fn set(&self, unix_seconds: i64) {
        self.0.store(unix_seconds, Ordering::Relaxed);
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn unix_seconds(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Stamp of a slot that was never written.
const NEVER: u64 = 0;
/// Stamp of a slot that a writer is clearing.
const CLEARING: u64 = u64::MAX;
/// Value of an age cell that no prediction set.
pub(crate) const NO_AGE: i64 = i64::MIN;

/// A ring of slots, each holding `counters` counters and `ages` age maxima.
#[derive(Debug)]
pub(crate) struct SlidingWindow {
    width: i64,
    slots: usize,
    counters: usize,
    ages: usize,
    stamps: Box<[AtomicU64]>,
    counts: Box<[AtomicU64]>,
    maxima: Box<[AtomicI64]>,
}

/// The current slot of a window, ready for a writer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot<'a> {
    counts: &'a [AtomicU64],
    maxima: &'a [AtomicI64],
}

impl Slot<'_> {
    /// Adds one to counter `index`.
    #[inline]
    pub(crate) fn add(&self, index: usize) {
        self.counts[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Raises age cell `index` to `age` if it is lower.
    #[inline]
    pub(crate) fn raise(&self, index: usize, age: i64) {
        let cell = &self.maxima[index];
        // A plain load first: most predictions do not beat the slot's maximum, and a
        // load is far cheaper than the compare-and-swap loop of fetch_max.
        if age > cell.load(Ordering::Relaxed) {
            cell.fetch_max(age, Ordering::Relaxed);
        }
    }
}

impl SlidingWindow {
    /// A window of `slots` slots of `width` seconds, with `counters` counters and
    /// `ages` age cells per slot.
    pub(crate) fn new(width: i64, slots: usize, counters: usize, ages: usize) -> Self {
        assert!(
            width > 0 && slots > 0,
            "a window has slots of at least a second"
        );
        Self {
            width,
            slots,
            counters,
            ages,
            stamps: (0..slots).map(|_| AtomicU64::new(NEVER)).collect(),
            counts: (0..slots * counters).map(|_| AtomicU64::new(0)).collect(),
            maxima: (0..slots * ages).map(|_| AtomicI64::new(NO_AGE)).collect(),
        }
    }

    fn epoch(&self, now: i64) -> u64 {
        // Times before 1970 share epoch 0; they only occur with a broken clock.
        u64::try_from(now.max(0) / self.width).unwrap_or(0)
    }

    fn rows(&self, position: usize) -> (&[AtomicU64], &[AtomicI64]) {
        (
            &self.counts[position * self.counters..(position + 1) * self.counters],
            &self.maxima[position * self.ages..(position + 1) * self.ages],
        )
    }

    /// The slot that counts time `now`, cleared first if it held an older epoch, or
    /// `None` when the prediction is to be left out (see the module docs).
    #[inline]
    pub(crate) fn slot(&self, now: i64) -> Option<Slot<'_>> {
        let epoch = self.epoch(now);
        let position = (epoch % self.slots as u64) as usize;
        let wanted = epoch + 1;
        let stamp = &self.stamps[position];
        let seen = stamp.load(Ordering::Acquire);
        if seen != wanted {
            if seen == CLEARING || seen > wanted {
                return None;
            }
            if stamp
                .compare_exchange(seen, CLEARING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                // Another writer got there first: use the slot only if it is done.
                if stamp.load(Ordering::Acquire) != wanted {
                    return None;
                }
            } else {
                let (counts, maxima) = self.rows(position);
                counts.iter().for_each(|c| c.store(0, Ordering::Relaxed));
                maxima
                    .iter()
                    .for_each(|m| m.store(NO_AGE, Ordering::Relaxed));
                stamp.store(wanted, Ordering::Release);
            }
        }
        let (counts, maxima) = self.rows(position);
        Some(Slot { counts, maxima })
    }

    /// Whether a slot stamped `stamp` is one of the `span` most recent epochs at `now`.
    fn is_live(&self, stamp: u64, now: i64, span: usize) -> bool {
        stamp != NEVER && stamp != CLEARING && stamp - 1 + span as u64 > self.epoch(now)
    }

    /// Adds the counters of every live slot at `now` into `totals` (one per counter).
    pub(crate) fn sum(&self, now: i64, totals: &mut [u64]) {
        assert_eq!(totals.len(), self.counters, "one total per counter");
        totals.iter_mut().for_each(|t| *t = 0);
        let mut row = vec![0u64; self.counters];
        for (position, stamp) in self.stamps.iter().enumerate() {
            let before = stamp.load(Ordering::Acquire);
            if !self.is_live(before, now, self.slots) {
                continue;
            }
            let (counts, _) = self.rows(position);
            for (r, c) in row.iter_mut().zip(counts) {
                *r = c.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if stamp.load(Ordering::Relaxed) != before {
                continue;
            }
            for (t, r) in totals.iter_mut().zip(&row) {
                *t += r;
            }
        }
    }

    /// The largest value of each age cell over the `span` most recent slots at `now`,
    /// [`NO_AGE`] where no prediction set it.
    pub(crate) fn max_ages(&self, now: i64, span: usize, out: &mut [i64]) {
        assert_eq!(out.len(), self.ages, "one maximum per age cell");
        out.iter_mut().for_each(|o| *o = NO_AGE);
        let mut row = vec![NO_AGE; self.ages];
        for (position, stamp) in self.stamps.iter().enumerate() {
            let before = stamp.load(Ordering::Acquire);
            if !self.is_live(before, now, span.min(self.slots)) {
                continue;
            }
            let (_, maxima) = self.rows(position);
            for (r, m) in row.iter_mut().zip(maxima) {
                *r = m.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if stamp.load(Ordering::Relaxed) != before {
                continue;
            }
            for (o, r) in out.iter_mut().zip(&row) {
                *o = (*o).max(*r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(window: &SlidingWindow, now: i64) -> Vec<u64> {
        let mut out = vec![0; window.counters];
        window.sum(now, &mut out);
        out
    }

    #[test]
    fn old_slots_expire_and_are_recycled() {
        // 5 slots of 10 s: a 50 s window.
        let window = SlidingWindow::new(10, 5, 2, 1);
        let start = 1_700_000_000;
        window.slot(start).expect("fresh slot").add(0);
        window.slot(start + 10).expect("next slot").add(1);
        assert_eq!(totals(&window, start + 10), [1, 1]);
        // 40 s later the first slot is the oldest of the five; 50 s later it is gone.
        assert_eq!(totals(&window, start + 40), [1, 1]);
        assert_eq!(totals(&window, start + 50), [0, 1]);
        assert_eq!(totals(&window, start + 60), [0, 0]);
        // Writing to a recycled position clears what the previous lap left there.
        window.slot(start + 50).expect("recycled").add(1);
        assert_eq!(totals(&window, start + 50), [0, 2]);
        assert_eq!(totals(&window, start + 60), [0, 1]);
    }

    #[test]
    fn a_time_older_than_the_slot_is_left_out() {
        let window = SlidingWindow::new(10, 5, 1, 0);
        window.slot(1_000).expect("slot").add(0);
        window.slot(1_050).expect("same position, next lap").add(0);
        assert!(window.slot(1_000).is_none());
        assert_eq!(totals(&window, 1_050), [1]);
    }

    #[test]
    fn ages_keep_the_maximum_of_recent_slots() {
        let window = SlidingWindow::new(10, 6, 0, 2);
        let now = 10_000;
        let slot = window.slot(now).expect("slot");
        slot.raise(0, 30);
        slot.raise(0, 5);
        window.slot(now + 10).expect("slot").raise(0, 7);
        let mut out = [0; 2];
        window.max_ages(now + 10, 2, &mut out);
        assert_eq!(out, [30, NO_AGE]);
        window.max_ages(now + 20, 2, &mut out);
        assert_eq!(out, [7, NO_AGE]);
    }

    #[test]
    fn concurrent_writers_lose_nothing_within_a_slot() {
        let window = SlidingWindow::new(60, 4, 1, 0);
        // The first write clears the slot; concurrent writers then only add.
        window.slot(600).expect("slot");
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        window.slot(600).expect("slot").add(0);
                    }
                });
            }
        });
        assert_eq!(totals(&window, 600), [20_000]);
    }

    #[test]
    fn manual_clock_moves_when_told() {
        let clock = ManualClock::new(100);
        clock.advance(20);
        assert_eq!(clock.unix_seconds(), 120);
        clock.set(7);
        assert_eq!(clock.unix_seconds(), 7);
        assert!(SystemClock.unix_seconds() > 1_600_000_000);
    }
}
