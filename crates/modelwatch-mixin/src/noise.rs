//! Module implementing the no-drift noise levels of the drift statistics, and the
//! simulation that checks them. See [`psi_noise`] and [`simulate`] for details.
//!
//! A window of `N` predictions drawn from the reference itself still has a PSI
//! above zero: its fractions are a multinomial sample of the reference. For small
//! deviations `ln(p / q) ≈ (p − q) / q`, so
//! `PSI = Σ (p − q) ln(p / q) ≈ Σ (p − q)² / q = X² / N`, where `X²` is Pearson's
//! chi-square statistic of the window's counts against the reference, which has
//! `B − 1` degrees of freedom over `B` bins. Hence, with no drift,
//! `E[PSI] ≈ (B − 1) / N` and `sd[PSI] ≈ sqrt(2 (B − 1)) / N`. The same expansion
//! gives Jensen-Shannon in nats `≈ X² / (8N)`, and total variation
//! `½ Σ |p − q|` has `E ≈ Σ sqrt(q (1 − q)) / sqrt(2πN) ≤ sqrt((B − 1) / (2πN))`.
//! These are what the recording rules compute; docs/drift.md has the derivation and
//! the simulation table.

use modelwatch::drift::{self, ReferenceBins};

/// PSI's expectation for a window of `n` predictions over `bins` bins with no drift.
pub fn psi_noise(bins: usize, n: u64) -> f64 {
    (bins as f64 - 1.0) / n as f64
}

/// PSI's standard deviation for the same window.
pub fn psi_noise_sd(bins: usize, n: u64) -> f64 {
    (2.0 * (bins as f64 - 1.0)).sqrt() / n as f64
}

/// Jensen-Shannon's expectation (nats) with no drift.
pub fn jensen_shannon_noise(bins: usize, n: u64) -> f64 {
    psi_noise(bins, n) / 8.0
}

/// Total variation's expectation with no drift, for the reference `ratios`.
pub fn total_variation_noise_exact(ratios: &[f64], n: u64) -> f64 {
    ratios.iter().map(|q| (q * (1.0 - q)).sqrt()).sum::<f64>()
        / (2.0 * std::f64::consts::PI * n as f64).sqrt()
}

/// The upper bound of [`total_variation_noise_exact`] that depends on `bins` alone,
/// as recorded by the rules.
pub fn total_variation_noise(bins: usize, n: u64) -> f64 {
    ((bins as f64 - 1.0) / (2.0 * std::f64::consts::PI * n as f64)).sqrt()
}

/// What [`simulate`] measured over its draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseSample {
    /// Mean PSI.
    pub psi: f64,
    /// Standard deviation of PSI.
    pub psi_sd: f64,
    /// Mean Jensen-Shannon divergence (nats).
    pub jensen_shannon: f64,
    /// Mean total variation distance.
    pub total_variation: f64,
    /// Fraction of draws with PSI above `threshold`.
    pub above_fixed: f64,
    /// Fraction of draws with PSI above `threshold + k · psi_noise`.
    pub above_noise: f64,
}

/// A small deterministic generator (SplitMix64), so the simulation needs no crate.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A uniform number in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Draws `replicates` windows of `n` predictions from `reference` itself and
/// measures PSI, Jensen-Shannon and total variation of each against it, with
/// `modelwatch::drift`. `threshold` and `k` give the two exceedance rates.
pub fn simulate(
    reference: &ReferenceBins,
    n: u64,
    replicates: u32,
    threshold: f64,
    k: f64,
    rng: &mut SplitMix64,
) -> NoiseSample {
    let q = &reference.ratios;
    let mut cumulative = Vec::with_capacity(q.len());
    let mut acc = 0.0;
    for r in q {
        acc += r;
        cumulative.push(acc);
    }
    let limit = threshold + k * psi_noise(q.len(), n);
    let (mut sum, mut sum_sq, mut js, mut tv) = (0.0, 0.0, 0.0, 0.0);
    let (mut above_fixed, mut above_noise) = (0u32, 0u32);
    let mut counts = vec![0u64; q.len()];
    let mut p = vec![0.0; q.len()];
    for _ in 0..replicates {
        counts.iter_mut().for_each(|c| *c = 0);
        for _ in 0..n {
            let u = rng.next_f64() * acc;
            let bin = cumulative.partition_point(|c| *c <= u).min(q.len() - 1);
            counts[bin] += 1;
        }
        drift::fractions(&counts, &mut p);
        let psi = drift::psi(&p, q);
        sum += psi;
        sum_sq += psi * psi;
        js += drift::jensen_shannon(&p, q);
        tv += 0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>();
        above_fixed += u32::from(psi > threshold);
        above_noise += u32::from(psi > limit);
    }
    let r = f64::from(replicates);
    let mean = sum / r;
    NoiseSample {
        psi: mean,
        psi_sd: (sum_sq / r - mean * mean).max(0.0).sqrt(),
        jensen_shannon: js / r,
        total_variation: tv / r,
        above_fixed: f64::from(above_fixed) / r,
        above_noise: f64::from(above_noise) / r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(bins: usize) -> ReferenceBins {
        ReferenceBins {
            edges: (1..bins).map(|i| i as f64).collect(),
            ratios: vec![1.0 / bins as f64; bins],
            min: 0.0,
            max: bins as f64,
        }
    }

    #[test]
    fn simulated_psi_matches_chi_square_over_n_once_bins_are_full() {
        let mut rng = SplitMix64::new(7);
        for (bins, n) in [(10, 1000), (10, 10_000), (4, 2000)] {
            let s = simulate(&uniform(bins), n, 400, 0.1, 3.0, &mut rng);
            let expected = psi_noise(bins, n);
            assert!(
                (s.psi / expected - 1.0).abs() < 0.1,
                "B={bins} N={n}: mean PSI {} against {expected}",
                s.psi
            );
            assert!((s.psi_sd / psi_noise_sd(bins, n) - 1.0).abs() < 0.25);
            assert!((s.jensen_shannon / jensen_shannon_noise(bins, n) - 1.0).abs() < 0.1);
            let tv = total_variation_noise_exact(&uniform(bins).ratios, n);
            assert!((s.total_variation / tv - 1.0).abs() < 0.1);
            assert!(tv <= total_variation_noise(bins, n) + 1e-12);
        }
    }

    #[test]
    fn the_generator_is_splitmix64_and_uniform() {
        // SplitMix64's published first output for seed 0 is 0xE220A8397B1DCDAF.
        let first = SplitMix64::new(0).next_f64();
        assert_eq!(
            first,
            (0xE220_A839_7B1D_CDAF_u64 >> 11) as f64 / (1u64 << 53) as f64
        );
        // 100,000 draws: the mean's standard deviation is 0.0009, so 0.005 is over
        // five of them (10,000 draws of seed 1 sit 3.6 deviations low, by chance).
        let mut rng = SplitMix64::new(1);
        let mean: f64 = (0..100_000).map(|_| rng.next_f64()).sum::<f64>() / 100_000.0;
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
    }
}
