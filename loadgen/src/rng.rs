//! A small, fast PRNG for the workers' choices: statistical quality is all a load generator needs, so
//! `SplitMix64` (Steele, Lea and Flood) instead of another dependency.

/// `SplitMix64`: 64 bits of state, every seed is good, full period of 2^64.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for worker `index` of a run: the streams of two workers do not overlap in practice,
    /// because each starts at a scrambled, distinct point of the sequence.
    pub fn for_worker(run_seed: u64, index: u32) -> Self {
        let mut mixer = Self::new(run_seed ^ u64::from(index).wrapping_mul(0xD1B5_4A32_D192_ED03));
        Self::new(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`: the top 53 bits, the precision of an `f64`.
    pub fn next_f64(&mut self) -> f64 {
        /// 2^-53, exactly.
        const UNIT: f64 = 1.0 / 9_007_199_254_740_992.0;
        #[expect(clippy::cast_precision_loss, reason = "a 53-bit integer is exact in an f64")]
        let mantissa = (self.next_u64() >> 11) as f64;
        mantissa * UNIT
    }

    /// Uniform in `[0, bound)`, for `bound > 0`, by Lemire's multiply-shift. Its bias is below
    /// bound / 2^64: invisible for the bounds used here.
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0, "below(0) has no value to return");
        let wide = u128::from(self.next_u64()) * u128::from(bound);
        // The high half of a u64 x u64 product: always a u64.
        (wide >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_workers_differ() {
        let mut a = SplitMix64::for_worker(7, 0);
        let mut b = SplitMix64::for_worker(7, 0);
        let mut c = SplitMix64::for_worker(7, 1);
        let first_a: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let first_b: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let first_c: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(first_a, first_b);
        assert_ne!(first_a, first_c);
    }

    #[test]
    fn floats_stay_in_the_unit_interval() {
        let mut rng = SplitMix64::new(1);
        for _ in 0..100_000 {
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x), "{x}");
        }
    }
}
