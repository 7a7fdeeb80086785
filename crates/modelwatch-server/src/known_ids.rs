//! Module implementing the store's known-id filter: one Bloom filter per feature
//! group of the ids the store holds. See [`KnownIds`] for details.
//!
//! A flood of made-up entity ids (a scraper, a replayed log with new ids, an attack)
//! would otherwise turn every request into a store read, and fill the cache with
//! negative entries that push the hot set out. The filter answers "certainly not in
//! the store" in memory: such a lookup never reaches SQLite and is not cached. It
//! never says "absent" for an id the store holds (a Bloom filter has no false
//! negatives); about 1% of absent ids pass it and are read from the store as before.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bits per expected id: 10 bits and 7 probes give about 0.8% false positives.
const BITS_PER_ID: usize = 10;
/// Probes per id.
const PROBES: u64 = 7;
/// The smallest filter, so a near-empty group still has a sensible false-positive rate
/// for the ids written into it before the next rebuild.
const MIN_BITS: usize = 1 << 16;

/// A fixed-size Bloom filter over entity ids. Inserts take `&self` (the bits are
/// atomic), so ids written by this process go in without a lock.
#[derive(Debug)]
pub struct IdFilter {
    bits: Box<[AtomicU64]>,
    /// Number of bits, a multiple of 64.
    len: u64,
    ids: AtomicU64,
}

/// SipHash with fixed keys: the positions must be the same for every call, and the
/// ids are not attacker-chosen in a way a collision helps (a collision only sends an
/// absent id on to the store, as without the filter).
fn hash(id: &str) -> u64 {
    let mut hasher =
        std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().build_hasher();
    hasher.write(id.as_bytes());
    hasher.finish()
}

impl IdFilter {
    /// An empty filter sized for `expected` ids.
    pub fn with_capacity(expected: usize) -> Self {
        let bits = expected
            .saturating_mul(BITS_PER_ID)
            .max(MIN_BITS)
            .next_multiple_of(64);
        Self {
            bits: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            len: bits as u64,
            ids: AtomicU64::new(0),
        }
    }

    /// The bit positions of `id` (double hashing: `h1 + i * h2`).
    fn positions(&self, id: &str) -> impl Iterator<Item = (usize, u64)> + use<'_> {
        let h = hash(id);
        let (h1, h2) = (h & 0xffff_ffff, (h >> 32) | 1);
        (0..PROBES).map(move |i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % self.len;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    /// Adds `id`.
    pub fn insert(&self, id: &str) {
        for (word, mask) in self.positions(id) {
            self.bits[word].fetch_or(mask, Ordering::Relaxed);
        }
        self.ids.fetch_add(1, Ordering::Relaxed);
    }

    /// `false` when `id` was certainly never inserted; `true` when it may have been.
    pub fn may_contain(&self, id: &str) -> bool {
        self.positions(id)
            .all(|(word, mask)| self.bits[word].load(Ordering::Relaxed) & mask != 0)
    }

    /// Ids inserted so far.
    pub fn ids(&self) -> u64 {
        self.ids.load(Ordering::Relaxed)
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.bits.len() * 8
    }
}

/// The filters of every group, as of one state of the store (its id generation).
#[derive(Debug)]
pub struct KnownIds {
    /// The store's id generation these filters were built from.
    pub generation: i64,
    groups: Vec<(Box<str>, IdFilter)>,
}

impl KnownIds {
    /// Filters built from `ids`: (group, entity id) pairs, with each group's count
    /// known up front (`counts`) so every filter is sized once.
    pub fn build<'a>(
        generation: i64,
        counts: &[(String, usize)],
        ids: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let mut known = Self {
            generation,
            groups: counts
                .iter()
                .map(|(group, n)| (group.as_str().into(), IdFilter::with_capacity(*n)))
                .collect(),
        };
        for (group, id) in ids {
            known.filter_or_add(group).insert(id);
        }
        known
    }

    /// Adds `id` to `group`'s filter (a group not counted up front gets a small one).
    pub fn insert(&mut self, group: &str, id: &str) {
        self.filter_or_add(group).insert(id);
    }

    fn filter_or_add(&mut self, group: &str) -> &IdFilter {
        let index = match self.groups.iter().position(|(g, _)| &**g == group) {
            Some(index) => index,
            None => {
                self.groups.push((group.into(), IdFilter::with_capacity(0)));
                self.groups.len() - 1
            }
        };
        &self.groups[index].1
    }

    /// The filter of `group`, if the store held the group when these were built.
    pub fn group(&self, group: &str) -> Option<&IdFilter> {
        self.groups
            .iter()
            .find(|(g, _)| &**g == group)
            .map(|(_, f)| f)
    }

    /// `false` when the store certainly does not hold `entity` in `group`. A group
    /// the filters do not know (created after they were built) may hold anything.
    pub fn may_contain(&self, group: &str, entity: &str) -> bool {
        self.group(group).is_none_or(|f| f.may_contain(entity))
    }

    /// Every group with its filter, for the log.
    pub fn groups(&self) -> impl Iterator<Item = (&str, &IdFilter)> {
        self.groups.iter().map(|(g, f)| (&**g, f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inserted_id_is_found_and_most_others_are_not() {
        let filter = IdFilter::with_capacity(10_000);
        let known: Vec<String> = (0..10_000).map(|i| format!("C{i:05}")).collect();
        known.iter().for_each(|id| filter.insert(id));
        assert!(
            known.iter().all(|id| filter.may_contain(id)),
            "a false negative"
        );
        let passed = (0..100_000)
            .filter(|i| filter.may_contain(&format!("U{i:08}")))
            .count();
        // 10 bits per id and 7 probes: about 0.8% of absent ids pass.
        assert!(
            passed < 2_000,
            "{passed} of 100000 absent ids passed the filter"
        );
        assert_eq!(filter.ids(), 10_000);
    }

    #[test]
    fn a_group_unknown_to_the_filters_lets_everything_through() {
        let known = KnownIds::build(
            3,
            &[("customer".to_string(), 2)],
            [("customer", "C1"), ("customer", "C2"), ("terminal", "T1")],
        );
        assert_eq!(known.generation, 3);
        assert!(known.may_contain("customer", "C1"));
        assert!(!known.may_contain("customer", "C404"));
        // Not counted up front, still filtered.
        assert!(known.may_contain("terminal", "T1"));
        assert!(!known.may_contain("terminal", "T404"));
        assert!(known.may_contain("merchant", "M1"));
    }
}
