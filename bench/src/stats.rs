//! Medians, ranges and ratios over rounds. The machine is noisy, so every figure is reported as
//! the median with its min–max range, and a ratio of two scenarios as the ratio of their medians
//! with a bootstrap interval: how far that ratio moves when the rounds are resampled, i.e.
//! whether a difference is larger than the noise.

use serde::Serialize;

/// The median of `values` (mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return 0.0;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// Median and range of one figure over rounds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// Summarises `values`; all zero when empty.
    pub fn of(values: &[f64]) -> Self {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        let min = finite.clone().fold(f64::INFINITY, f64::min);
        let max = finite.fold(f64::NEG_INFINITY, f64::max);
        if min > max {
            return Self {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        Self {
            median: median(values),
            min,
            max,
        }
    }

    /// `median [min–max]` with `decimals` digits.
    pub fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} [{:.d$}–{:.d$}]",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }
}

/// A ratio of two scenarios' medians with its 90% bootstrap interval.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Ratio {
    /// median(a) / median(b).
    pub of_medians: f64,
    /// 5th percentile of the resampled ratios.
    pub low: f64,
    /// 95th percentile of the resampled ratios.
    pub high: f64,
}

impl Ratio {
    /// Bootstrap iterations: enough for stable 5th/95th percentiles.
    const RESAMPLES: usize = 2000;

    /// The ratio of the medians of `a` and `b` (independent samples), with the interval from
    /// resampling each with replacement. None when either is empty or `b`'s median is zero.
    pub fn of(a: &[f64], b: &[f64]) -> Option<Self> {
        let of_medians = median(a) / median(b);
        if a.is_empty() || b.is_empty() || !of_medians.is_finite() {
            return None;
        }
        // A fixed seed: the same samples always give the same interval.
        let mut rng = SplitMix64(0x6d65_7368_7768_7921);
        let mut resample = |values: &[f64]| -> f64 {
            let picked: Vec<f64> = (0..values.len())
                .map(|_| values[(rng.next() % values.len() as u64) as usize])
                .collect();
            median(&picked)
        };
        let mut ratios: Vec<f64> = (0..Self::RESAMPLES)
            .map(|_| resample(a) / resample(b))
            .filter(|r| r.is_finite())
            .collect();
        if ratios.is_empty() {
            return None;
        }
        ratios.sort_by(f64::total_cmp);
        let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
        Some(Self {
            of_medians,
            low: at(0.05),
            high: at(0.95),
        })
    }

    /// `ratio (low–high)`.
    pub fn show(&self) -> String {
        format!("{:.2} ({:.2}–{:.2})", self.of_medians, self.low, self.high)
    }
}

/// A tiny deterministic PRNG (SplitMix64) for the bootstrap; no dependency for one loop.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ranges() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        let spread = Spread::of(&[1.2, 0.9, 1.0]);
        assert_eq!((spread.median, spread.min, spread.max), (1.0, 0.9, 1.2));
        assert_eq!(spread.show(2), "1.00 [0.90–1.20]");
        assert_eq!(Spread::of(&[]).show(0), "0 [0–0]");
    }

    #[test]
    fn ratios_of_medians_with_an_interval() {
        let a = [110.0, 120.0, 130.0, 115.0, 125.0];
        let b = [100.0, 100.0, 100.0, 100.0, 100.0];
        let ratio = Ratio::of(&a, &b).unwrap();
        assert_eq!(ratio.of_medians, 1.2);
        assert!(ratio.low >= 1.1 && ratio.low <= 1.2 && ratio.high >= 1.2 && ratio.high <= 1.3);
        assert_eq!(Ratio::of(&a, &b), Ratio::of(&a, &b), "deterministic");
        assert!(Ratio::of(&a, &[]).is_none());
        assert!(Ratio::of(&a, &[0.0]).is_none());
    }
}
