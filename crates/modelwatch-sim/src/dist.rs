//! The few distributions the simulator needs, written out so that the exact sequence
//! of draws (and so the output for a seed) depends on this crate alone.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Independent random streams, one per purpose, so that changing how one part of the
/// simulation draws does not shift the numbers of another.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Population = 1,
    Transactions = 2,
    Fraud = 3,
    Traffic = 4,
}

/// A ChaCha8 generator for `seed` on the given stream.
pub(crate) fn rng(seed: u64, stream: Stream, sub: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((stream as u64) << 48) | (sub & 0xFFFF_FFFF_FFFF));
    rng
}

/// A uniform draw in the open interval (0, 1): never 0, so its logarithm is finite.
pub(crate) fn open01(rng: &mut impl RngCore) -> f64 {
    // 53 random bits, shifted by half a step away from 0.
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// A standard normal draw (Box-Muller, one of the pair).
pub(crate) fn std_normal(rng: &mut impl RngCore) -> f64 {
    let u1 = open01(rng);
    let u2 = open01(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A normal draw with the given mean and standard deviation.
pub(crate) fn normal(rng: &mut impl RngCore, mean: f64, std: f64) -> f64 {
    mean + std * std_normal(rng)
}

/// An exponential draw with the given mean.
pub(crate) fn exponential(rng: &mut impl RngCore, mean: f64) -> f64 {
    -mean * open01(rng).ln()
}

/// A Poisson draw. Exact (multiplication of uniforms) for small means, a rounded
/// normal approximation above 30.
pub(crate) fn poisson(rng: &mut impl RngCore, mean: f64) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        let x = normal(rng, mean, mean.sqrt()).round();
        return x.max(0.0) as u32;
    }
    let limit = (-mean).exp();
    let mut product = open01(rng);
    let mut count = 0;
    while product > limit {
        product *= open01(rng);
        count += 1;
    }
    count
}

/// Rounds an expected count with a fractional part to an integer whose mean is the
/// expected count: the floor, plus one with probability equal to the fraction.
pub(crate) fn round_expected(rng: &mut impl Rng, expected: f64) -> usize {
    let floor = expected.floor();
    let extra = rng.random_bool((expected - floor).clamp(0.0, 1.0));
    floor as usize + usize::from(extra)
}

/// Rounds an amount to whole cents.
pub(crate) fn to_cents(amount: f64) -> i64 {
    (amount * 100.0).round() as i64
}

/// Rounds an amount to whole cents, as a float.
pub(crate) fn round_cents(amount: f64) -> f64 {
    to_cents(amount) as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_and_normal_have_the_right_moments() {
        let mut r = rng(1, Stream::Population, 0);
        let n = 50_000;
        let mean_p = (0..n).map(|_| f64::from(poisson(&mut r, 2.5))).sum::<f64>() / n as f64;
        assert!((mean_p - 2.5).abs() < 0.05, "{mean_p}");
        let xs: Vec<f64> = (0..n).map(|_| normal(&mut r, 10.0, 3.0)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 10.0).abs() < 0.1, "{mean}");
        assert!((var.sqrt() - 3.0).abs() < 0.1, "{var}");
        let mean_e = (0..n).map(|_| exponential(&mut r, 4.0)).sum::<f64>() / n as f64;
        assert!((mean_e - 4.0).abs() < 0.15, "{mean_e}");
    }

    #[test]
    fn streams_differ() {
        let a = rng(1, Stream::Population, 0).next_u64();
        let b = rng(1, Stream::Transactions, 0).next_u64();
        let c = rng(1, Stream::Population, 1).next_u64();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, rng(1, Stream::Population, 0).next_u64());
    }
}
