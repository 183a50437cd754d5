//! Success sampling: which successes are recorded in full (`sampled_success`), decided by a tiny
//! xorshift PRNG seeded from the instance id, so no external randomness is needed per request.

/// Decides, per success, whether to record it in full.
#[derive(Debug, Clone)]
pub struct Sampler {
    state: u64,
    /// Sample when the next random u64 is below this (0 = never).
    threshold: u64,
    /// Rate 1.0: every success (no threshold below 2^64 expresses it).
    always: bool,
}

impl Sampler {
    /// A sampler keeping `rate` (0.0..=1.0) of successes, seeded with `seed` (any value).
    pub fn new(rate: f64, seed: u64) -> Self {
        let rate = if rate.is_finite() {
            rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
        // The float-to-int cast saturates; 2^64 * rate fits for every rate < 1.
        let threshold = (rate * 18_446_744_073_709_551_616.0) as u64;
        // xorshift must not start at zero: it would stay there.
        let state = if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        };
        Self {
            state,
            threshold,
            always: rate >= 1.0,
        }
    }

    /// Whether this success is recorded in full.
    pub fn sample(&mut self) -> bool {
        if self.always {
            return true;
        }
        if self.threshold == 0 {
            return false;
        }
        self.next_u64() < self.threshold
    }

    /// xorshift64*: fast, good enough for sampling, never zero.
    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_never_samples_and_one_always_does() {
        let mut never = Sampler::new(0.0, 7);
        let mut always = Sampler::new(1.0, 7);
        for _ in 0..10_000 {
            assert!(!never.sample());
            assert!(always.sample());
        }
    }

    #[test]
    fn rate_is_respected_roughly() {
        for (rate, seed) in [(0.01, 1), (0.1, 42), (0.5, 0), (0.9, u64::MAX)] {
            let mut sampler = Sampler::new(rate, seed);
            let n = 200_000;
            let hits = (0..n).filter(|_| sampler.sample()).count();
            let got = hits as f64 / f64::from(n);
            assert!(
                (got - rate).abs() < 0.01 + rate * 0.1,
                "rate {rate}: got {got}"
            );
        }
    }

    #[test]
    fn different_seeds_differ() {
        let mut a = Sampler::new(0.5, 1);
        let mut b = Sampler::new(0.5, 2);
        let sa: Vec<bool> = (0..64).map(|_| a.sample()).collect();
        let sb: Vec<bool> = (0..64).map(|_| b.sample()).collect();
        assert_ne!(sa, sb);
    }

    #[test]
    fn nonsense_rates_are_clamped() {
        assert!(!Sampler::new(f64::NAN, 1).sample());
        assert!(Sampler::new(2.0, 1).sample());
        assert!(!Sampler::new(-1.0, 1).sample());
    }
}
