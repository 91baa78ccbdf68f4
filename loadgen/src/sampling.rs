//! What each request is about: which operation, which user, how much.

use std::sync::Arc;

use crate::args::{Distribution, Mix, Operation};
use crate::rng::SplitMix64;

/// Picks the user of a request, as an index from 0.
#[derive(Debug, Clone)]
pub enum UserSampler {
    Uniform {
        users: u32,
    },
    Hot,
    /// `cdf[k]` is the probability of picking one of users 0..=k; the last entry is exactly 1. Built once
    /// and shared by the workers, so a sample is one binary search.
    Zipf {
        cdf: Arc<[f64]>,
    },
}

impl UserSampler {
    pub fn new(distribution: Distribution, users: u32, zipf_exponent: f64) -> Self {
        match distribution {
            Distribution::Uniform => UserSampler::Uniform { users },
            Distribution::Hot => UserSampler::Hot,
            Distribution::Zipf => UserSampler::Zipf { cdf: zipf_cdf(users, zipf_exponent).into() },
        }
    }

    pub fn sample(&self, rng: &mut SplitMix64) -> u32 {
        match self {
            UserSampler::Uniform { users } => {
                let index = rng.below(u64::from(*users));
                u32::try_from(index).expect("below(users) is less than users, a u32")
            }
            UserSampler::Hot => 0,
            UserSampler::Zipf { cdf } => {
                let u = rng.next_f64();
                // The first user whose cumulative probability passes u. The last entry is 1.0 > u, so the
                // index is always a user.
                let index = cdf.partition_point(|&cumulative| cumulative <= u).min(cdf.len() - 1);
                u32::try_from(index).expect("the CDF has one entry per user, and users is a u32")
            }
        }
    }
}

/// The cumulative distribution of zipf over `users` users: user k (from 1) has weight 1 / k^exponent.
pub fn zipf_cdf(users: u32, exponent: f64) -> Vec<f64> {
    let weights: Vec<f64> = (1..=users).map(|rank| f64::from(rank).powf(-exponent)).collect();
    let total: f64 = weights.iter().sum();
    let mut running = 0.0;
    let mut cdf: Vec<f64> = weights
        .iter()
        .map(|weight| {
            running += weight;
            running / total
        })
        .collect();
    // Rounding may leave the sum a hair below 1; the sampler relies on the last entry being above any u.
    if let Some(last) = cdf.last_mut() {
        *last = 1.0;
    }
    cdf
}

/// Picks the operation of a request by the weights of the mix.
#[derive(Debug, Clone)]
pub struct OperationSampler {
    /// `(operation, cumulative weight)`, in order, for the operations with a weight above zero.
    thresholds: Vec<(Operation, u64)>,
    total: u64,
}

impl OperationSampler {
    pub fn new(mix: Mix) -> Self {
        let mut running = 0;
        let thresholds = Operation::ALL
            .into_iter()
            .filter(|&operation| mix.weight(operation) > 0)
            .map(|operation| {
                running += u64::from(mix.weight(operation));
                (operation, running)
            })
            .collect();
        Self { thresholds, total: mix.total() }
    }

    pub fn sample(&self, rng: &mut SplitMix64) -> Operation {
        let ticket = rng.below(self.total);
        self.thresholds
            .iter()
            .find(|&&(_, threshold)| ticket < threshold)
            .map_or(Operation::Add, |&(operation, _)| operation)
    }
}

/// An add's amount: whole cents from 1 to `max_cents`.
pub fn amount_cents(rng: &mut SplitMix64, max_cents: u64) -> u64 {
    1 + rng.below(max_cents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_cdf_rises_to_one_with_the_harmonic_shape() {
        let cdf = zipf_cdf(4, 1.0);
        // Weights 1, 1/2, 1/3, 1/4 over their sum 25/12.
        let expected = [12.0 / 25.0, 18.0 / 25.0, 22.0 / 25.0, 1.0];
        for (got, want) in cdf.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{cdf:?}");
        }
        let big = zipf_cdf(10_000, 1.2);
        assert!(big.windows(2).all(|pair| pair[0] < pair[1]), "strictly increasing");
        assert!((big.last().copied() == Some(1.0)));
        // The increments are the weights: each user is picked less often than the one before.
        let steps: Vec<f64> = big.windows(2).map(|pair| pair[1] - pair[0]).take(100).collect();
        assert!(steps.windows(2).all(|pair| pair[0] > pair[1]));
    }

    #[test]
    fn zipf_with_exponent_zero_is_uniform() {
        let cdf = zipf_cdf(5, 0.0);
        for (index, cumulative) in cdf.iter().enumerate() {
            let expected = f64::from(u32::try_from(index + 1).expect("small")) / 5.0;
            assert!((cumulative - expected).abs() < 1e-12, "{cdf:?}");
        }
    }

    #[test]
    fn zipf_samples_favour_the_first_users_and_stay_in_range() {
        let sampler = UserSampler::new(Distribution::Zipf, 1000, 1.0);
        let mut rng = SplitMix64::new(42);
        let mut counts = vec![0_u32; 1000];
        for _ in 0..200_000 {
            counts[usize::try_from(sampler.sample(&mut rng)).expect("fits")] += 1;
        }
        // P(user 0) = 1 / H(1000) ~ 0.1336; P(user 1) is half of that.
        let share_first = f64::from(counts[0]) / 200_000.0;
        assert!((share_first - 0.1336).abs() < 0.01, "{share_first}");
        let ratio = f64::from(counts[0]) / f64::from(counts[1]);
        assert!((ratio - 2.0).abs() < 0.15, "{ratio}");
    }

    #[test]
    fn uniform_samples_cover_every_user_and_no_other() {
        let sampler = UserSampler::new(Distribution::Uniform, 7, 1.0);
        let mut rng = SplitMix64::new(3);
        let mut seen = [0_u32; 7];
        for _ in 0..70_000 {
            let user = sampler.sample(&mut rng);
            assert!(user < 7);
            seen[usize::try_from(user).expect("fits")] += 1;
        }
        assert!(seen.iter().all(|&count| (9_000..11_000).contains(&count)), "{seen:?}");
        let single = UserSampler::new(Distribution::Uniform, 1, 1.0);
        assert!((0..100).all(|_| single.sample(&mut rng) == 0));
    }

    #[test]
    fn hot_always_picks_the_same_user() {
        let mut rng = SplitMix64::new(9);
        let sampler = UserSampler::new(Distribution::Hot, 1000, 1.0);
        assert!((0..1000).all(|_| sampler.sample(&mut rng) == 0));
    }

    #[test]
    fn amounts_span_one_cent_to_the_maximum() {
        let mut rng = SplitMix64::new(5);
        let amounts: Vec<u64> = (0..10_000).map(|_| amount_cents(&mut rng, 10)).collect();
        assert!(amounts.iter().all(|amount| (1..=10).contains(amount)));
        assert!(amounts.contains(&1) && amounts.contains(&10));
        assert!((0..100).all(|_| amount_cents(&mut rng, 1) == 1));
    }

    #[test]
    fn operations_follow_the_mix_weights() {
        let sampler = OperationSampler::new("add=80,balance=15,history=5".parse().expect("valid mix"));
        let mut rng = SplitMix64::new(11);
        let mut counts = [0_u32; 3];
        for _ in 0..100_000 {
            counts[sampler.sample(&mut rng) as usize] += 1;
        }
        assert!((79_000..81_000).contains(&counts[0]), "{counts:?}");
        assert!((14_300..15_700).contains(&counts[1]), "{counts:?}");
        assert!((4_500..5_500).contains(&counts[2]), "{counts:?}");
        let only_balance = OperationSampler::new("balance=1".parse().expect("valid mix"));
        assert!((0..1000).all(|_| only_balance.sample(&mut rng) == Operation::Balance));
    }
}
