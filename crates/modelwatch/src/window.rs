//! Module implementing the sliding windows behind the per-replica drift gauges and the
//! clock they read. See [`Clock`] for details.
//!
//! # How a window works
//!
//! The hot path only increments cumulative counters (the `*_bin_total` counters and
//! two internal ones, predictions and approvals). A window is the difference between
//! the counters now and a snapshot of them taken when the window began.
//!
//! A window of length W is a ring of N slots, each W / N whole seconds wide. Time `t`
//! (Unix seconds) falls in slot epoch `e = t / width`, kept at ring position `e mod N`.
//! The first prediction of a new epoch copies every cumulative counter into that
//! slot's snapshot row, before counting itself, and stamps the slot with the epoch.
//! So the snapshot of epoch `e` holds the counts of all predictions before `e`.
//!
//! The window at time `t` spans the current epoch and the N − 1 before it, so it covers
//! between W − width and W seconds of history. Its counts are the counters now minus
//! the snapshot of the oldest live slot. A live epoch without a snapshot had no
//! predictions, so the oldest snapshot that exists marks the window's start exactly.
//! When no slot is live, the window is empty. The scrape reads that snapshot, then
//! re-checks the stamp and moves to the next slot when the row was recycled meanwhile.
//! The work is O(N + counters) per scrape. Nothing is added per slot.
//!
//! Each slot also keeps per-cell maxima (the feature ages), raised with a load and,
//! rarely, a `fetch_max`.
//!
//! # Writers never wait
//!
//! The current epoch and its ring position are packed into one atomic word. A
//! prediction in that epoch does one relaxed load and a comparison, with no division.
//! At an epoch change, the writer that wins a compare-and-swap on the slot's stamp
//! takes the snapshot, clears the maxima and publishes the new stamp and word with
//! release ordering. Writers that arrive while a slot is being cleared skip only their
//! age update. Their counts go to the counters as always.
//!
//! # Tolerance
//!
//! The window is a monitoring estimate. Its counts can be off by:
//! - the predictions recorded by other threads while a snapshot is being copied,
//!   once per slot width (a few at most): they may be counted as just before or just
//!   after the slot boundary;
//! - a writer that is descheduled across a slot boundary between reading the time
//!   and counting: its prediction counts in the later slot;
//! - a scrape that runs while a prediction is being recorded, which sees part of it.
//!
//! A prediction whose time lies before the newest epoch (a clock that went back)
//! counts as part of the newest slot and leaves the ages alone. The counters
//! themselves are exact.

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

    /// Seconds since the Unix epoch when the wall clock reads `wall`: the system
    /// clock takes it (a caller that has read the time already saves a read), any
    /// other clock answers [`Clock::unix_seconds`].
    fn unix_seconds_of(&self, wall: SystemTime) -> i64 {
        let _ = wall;
        self.unix_seconds()
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_seconds(&self) -> i64 {
        self.unix_seconds_of(SystemTime::now())
    }

    fn unix_seconds_of(&self, wall: SystemTime) -> i64 {
        match wall.duration_since(UNIX_EPOCH) {
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
/// Value of a maximum cell that no prediction raised.
pub(crate) const NO_AGE: i64 = i64::MIN;
/// Bits of the packed current word that hold the ring position.
const POSITION_BITS: u32 = 16;
/// Most slots a window can have: positions fit in [`POSITION_BITS`].
pub(crate) const MAX_SLOTS: usize = 1 << POSITION_BITS;

/// A ring of epoch-stamped slots, each holding a snapshot of `counters` cumulative
/// counters and `ages` maxima.
#[derive(Debug)]
pub(crate) struct SlidingWindow {
    width: i64,
    slots: usize,
    counters: usize,
    ages: usize,
    /// `(epoch + 1) << POSITION_BITS | position` of the newest stamped slot, 0 before
    /// the first prediction.
    current: AtomicU64,
    stamps: Box<[AtomicU64]>,
    snapshots: Box<[AtomicU64]>,
    maxima: Box<[AtomicI64]>,
}

/// The maxima row of the current slot, for a writer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot<'a> {
    maxima: &'a [AtomicI64],
}

impl Slot<'_> {
    /// Raises cell `index` to `value` if it is lower.
    #[inline]
    pub(crate) fn raise(&self, index: usize, value: i64) {
        let cell = &self.maxima[index];
        // A plain load first: most predictions do not beat the slot's maximum, and a
        // load is far cheaper than the compare-and-swap loop of fetch_max.
        if value > cell.load(Ordering::Relaxed) {
            cell.fetch_max(value, Ordering::Relaxed);
        }
    }
}

impl SlidingWindow {
    /// A window of `slots` slots of `width` seconds, snapshotting `counters` counters
    /// and keeping `ages` maxima per slot.
    pub(crate) fn new(width: i64, slots: usize, counters: usize, ages: usize) -> Self {
        assert!(width > 0, "a slot is at least a second wide");
        assert!((1..=MAX_SLOTS).contains(&slots), "1 to {MAX_SLOTS} slots");
        Self {
            width,
            slots,
            counters,
            ages,
            current: AtomicU64::new(0),
            stamps: (0..slots).map(|_| AtomicU64::new(NEVER)).collect(),
            snapshots: (0..slots * counters).map(|_| AtomicU64::new(0)).collect(),
            maxima: (0..slots * ages).map(|_| AtomicI64::new(NO_AGE)).collect(),
        }
    }

    fn epoch(&self, now: i64) -> u64 {
        // Times before 1970 share epoch 0; they only occur with a broken clock.
        now.max(0).unsigned_abs() / self.width.unsigned_abs()
    }

    fn snapshot_row(&self, position: usize) -> &[AtomicU64] {
        &self.snapshots[position * self.counters..(position + 1) * self.counters]
    }

    fn maxima_row(&self, position: usize) -> &[AtomicI64] {
        &self.maxima[position * self.ages..(position + 1) * self.ages]
    }

    /// Enters the slot of time `now`; call it before counting a prediction. At the
    /// first prediction of an epoch, `snapshot` is called to copy the cumulative
    /// counters into the row it is given. Returns the slot's maxima, or `None` when
    /// they are not to be touched (the slot is being cleared, or `now` is older than
    /// the slot's epoch).
    #[inline]
    pub(crate) fn enter(&self, now: i64, snapshot: impl FnOnce(&[AtomicU64])) -> Option<Slot<'_>> {
        let current = self.current.load(Ordering::Acquire);
        let epoch_plus_one = current >> POSITION_BITS;
        // The fast path: `now` lies in the newest epoch, [e·width, (e+1)·width).
        let end = epoch_plus_one.saturating_mul(self.width.unsigned_abs());
        let now_unsigned = now.max(0).unsigned_abs();
        if current != 0 && now_unsigned < end && now_unsigned + self.width.unsigned_abs() >= end {
            let position = (current & (MAX_SLOTS as u64 - 1)) as usize;
            return Some(Slot {
                maxima: self.maxima_row(position),
            });
        }
        self.enter_slow(now, snapshot)
    }

    #[cold]
    fn enter_slow(&self, now: i64, snapshot: impl FnOnce(&[AtomicU64])) -> Option<Slot<'_>> {
        let epoch = self.epoch(now);
        let position = (epoch % self.slots as u64) as usize;
        let wanted = epoch + 1;
        if wanted < self.current.load(Ordering::Acquire) >> POSITION_BITS {
            // A time before the newest epoch (a late writer or a clock that went
            // back): a snapshot taken now would hold later counts than the next one.
            return None;
        }
        let stamp = &self.stamps[position];
        let seen = stamp.load(Ordering::Acquire);
        if seen == CLEARING || seen > wanted {
            return None;
        }
        if seen < wanted {
            if stamp
                .compare_exchange(seen, CLEARING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                // Another writer is taking this epoch's snapshot; it will publish it.
                return None;
            }
            snapshot(self.snapshot_row(position));
            self.maxima_row(position)
                .iter()
                .for_each(|m| m.store(NO_AGE, Ordering::Relaxed));
            stamp.store(wanted, Ordering::Release);
        }
        // Newer epochs pack into larger words, so fetch_max never moves time back.
        self.current
            .fetch_max(wanted << POSITION_BITS | position as u64, Ordering::AcqRel);
        Some(Slot {
            maxima: self.maxima_row(position),
        })
    }

    /// Whether a slot stamped `stamp` is one of the `span` most recent epochs at `now`.
    fn is_live(&self, stamp: u64, now: i64, span: usize) -> bool {
        stamp != NEVER && stamp != CLEARING && stamp - 1 + span as u64 > self.epoch(now)
    }

    /// Writes the window's counts at `now` into `out`: `cumulative` (the counters now)
    /// minus the snapshot at the window's start. Returns `false`, leaving `out` at 0,
    /// when no prediction fell in the window.
    pub(crate) fn counts(&self, now: i64, cumulative: &[u64], out: &mut [u64]) -> bool {
        assert_eq!(cumulative.len(), self.counters, "one value per counter");
        assert_eq!(out.len(), self.counters, "one count per counter");
        out.iter_mut().for_each(|o| *o = 0);
        let mut live: Vec<(u64, usize)> = self
            .stamps
            .iter()
            .enumerate()
            .map(|(position, stamp)| (stamp.load(Ordering::Acquire), position))
            .filter(|(stamp, _)| self.is_live(*stamp, now, self.slots))
            .collect();
        live.sort_unstable();
        for (stamp, position) in live {
            for ((o, c), s) in out
                .iter_mut()
                .zip(cumulative)
                .zip(self.snapshot_row(position))
            {
                *o = c.saturating_sub(s.load(Ordering::Relaxed));
            }
            fence(Ordering::Acquire);
            if self.stamps[position].load(Ordering::Relaxed) == stamp {
                return true;
            }
        }
        out.iter_mut().for_each(|o| *o = 0);
        false
    }

    /// The largest value of each maximum cell over the `span` most recent slots at
    /// `now`, [`NO_AGE`] where no prediction raised it.
    pub(crate) fn max_ages(&self, now: i64, span: usize, out: &mut [i64]) {
        assert_eq!(out.len(), self.ages, "one maximum per cell");
        out.iter_mut().for_each(|o| *o = NO_AGE);
        let mut row = vec![NO_AGE; self.ages];
        for (position, stamp) in self.stamps.iter().enumerate() {
            let before = stamp.load(Ordering::Acquire);
            if !self.is_live(before, now, span.min(self.slots)) {
                continue;
            }
            for (r, m) in row.iter_mut().zip(self.maxima_row(position)) {
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

    #[test]
    fn the_system_clock_takes_the_time_given_and_a_manual_clock_keeps_its_own() {
        let wall = UNIX_EPOCH + std::time::Duration::from_secs(1_764_000_123);
        assert_eq!(SystemClock.unix_seconds_of(wall), 1_764_000_123);
        assert_eq!(ManualClock::new(42).unix_seconds_of(wall), 42);
    }

    /// Cumulative counters kept by the test, as the caller of a window keeps them.
    struct Counted {
        window: SlidingWindow,
        totals: Vec<AtomicU64>,
    }

    impl Counted {
        fn new(width: i64, slots: usize, counters: usize) -> Self {
            Self {
                window: SlidingWindow::new(width, slots, counters, 1),
                totals: (0..counters).map(|_| AtomicU64::new(0)).collect(),
            }
        }

        fn record(&self, now: i64, counter: usize) -> bool {
            let slot = self.window.enter(now, |row| {
                for (r, t) in row.iter().zip(&self.totals) {
                    r.store(t.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            });
            self.totals[counter].fetch_add(1, Ordering::Relaxed);
            slot.is_some()
        }

        fn counts(&self, now: i64) -> Option<Vec<u64>> {
            let cumulative: Vec<u64> = self
                .totals
                .iter()
                .map(|t| t.load(Ordering::Relaxed))
                .collect();
            let mut out = vec![0; cumulative.len()];
            self.window
                .counts(now, &cumulative, &mut out)
                .then_some(out)
        }
    }

    #[test]
    fn old_slots_expire_and_are_recycled() {
        // 5 slots of 10 s: a 50 s window.
        let w = Counted::new(10, 5, 2);
        let start = 1_700_000_000;
        assert_eq!(w.counts(start), None);
        assert!(w.record(start, 0));
        assert!(w.record(start + 10, 1));
        assert_eq!(w.counts(start + 10), Some(vec![1, 1]));
        // 40 s later the first slot is the oldest of the five; 50 s later it is gone.
        assert_eq!(w.counts(start + 49), Some(vec![1, 1]));
        assert_eq!(w.counts(start + 50), Some(vec![0, 1]));
        assert_eq!(w.counts(start + 60), None);
        // Writing to a recycled position replaces what the previous lap left there.
        assert!(w.record(start + 50, 1));
        assert!(w.record(start + 55, 1));
        assert_eq!(w.counts(start + 55), Some(vec![0, 3]));
        assert_eq!(w.counts(start + 59), Some(vec![0, 3]));
        assert_eq!(w.counts(start + 60), Some(vec![0, 2]));
        assert_eq!(w.counts(start + 99), Some(vec![0, 2]));
        assert_eq!(w.counts(start + 100), None);
    }

    #[test]
    fn idle_slots_in_between_do_not_shorten_the_window() {
        let w = Counted::new(10, 6, 1);
        w.record(1_000, 0);
        w.record(1_005, 0);
        // Three idle slots, then one more prediction.
        w.record(1_040, 0);
        assert_eq!(w.counts(1_040), Some(vec![3]));
        assert_eq!(w.counts(1_059), Some(vec![3]));
        assert_eq!(w.counts(1_060), Some(vec![1]));
    }

    #[test]
    fn a_time_older_than_the_slot_still_counts_but_touches_no_maximum() {
        let w = Counted::new(10, 5, 1);
        assert!(w.record(1_000, 0));
        assert!(w.record(1_050, 0));
        assert!(!w.record(1_000, 0));
        assert_eq!(w.counts(1_050), Some(vec![2]));
    }

    #[test]
    fn ages_keep_the_maximum_of_recent_slots() {
        let window = SlidingWindow::new(10, 6, 0, 2);
        let now = 10_000;
        let slot = window.enter(now, |_| {}).expect("slot");
        slot.raise(0, 30);
        slot.raise(0, 5);
        window.enter(now + 10, |_| {}).expect("slot").raise(0, 7);
        let mut out = [0; 2];
        window.max_ages(now + 10, 2, &mut out);
        assert_eq!(out, [30, NO_AGE]);
        window.max_ages(now + 20, 2, &mut out);
        assert_eq!(out, [7, NO_AGE]);
    }

    #[test]
    fn concurrent_writers_lose_no_count_and_at_most_a_race_at_the_snapshot() {
        let w = Counted::new(1, 4, 1);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for i in 0..20_000 {
                        w.record(5_000 + i / 10_000, 0);
                    }
                });
            }
        });
        assert_eq!(w.totals[0].load(Ordering::Relaxed), 40_000);
        // The first snapshot races with the other thread's first prediction at most.
        let whole = w.counts(5_001).expect("live")[0];
        assert!((39_999..=40_000).contains(&whole), "{whole}");
        assert!(w.counts(5_004).is_some());
        assert_eq!(w.counts(5_005), None);
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
