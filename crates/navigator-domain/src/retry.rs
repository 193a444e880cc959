//! The retry schedule: exponential backoff with full jitter (SPEC §3; defaults base 3 s, cap
//! 300 s, 5 attempts). "Full jitter" draws the delay uniformly from `[0, min(cap, base·2^(n-1))]`,
//! which spreads a thundering herd of failed jobs evenly instead of re-synchronising them.

use rand::Rng;
use std::time::Duration;

pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(3);
pub const DEFAULT_RETRY_CAP: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// Attempts of one stage before the job fails with `retries_exhausted`.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: DEFAULT_RETRY_BASE,
            cap: DEFAULT_RETRY_CAP,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// What to do after attempt `n` of a stage failed transiently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAfter(Duration),
    GiveUp,
}

impl RetryPolicy {
    /// The ceiling of the jitter window after the `attempt`-th failure (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        let factor = 1u64 << exp;
        let millis = (self.base.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(millis).min(self.cap)
    }

    /// Decides after the `attempt`-th failed attempt (1-based) using `rng` for the jitter.
    pub fn decide(&self, attempt: u32, rng: &mut impl Rng) -> RetryDecision {
        if attempt >= self.max_attempts {
            return RetryDecision::GiveUp;
        }
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        RetryDecision::RetryAfter(Duration::from_millis(rng.random_range(0..=ceiling)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    #[test]
    fn ceilings_double_from_the_base_and_stop_at_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(1), Duration::from_secs(3));
        assert_eq!(p.ceiling(2), Duration::from_secs(6));
        assert_eq!(p.ceiling(3), Duration::from_secs(12));
        assert_eq!(p.ceiling(10), Duration::from_secs(300));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn gives_up_at_the_last_attempt() {
        let p = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        assert!(matches!(
            p.decide(4, &mut rng),
            RetryDecision::RetryAfter(_)
        ));
        assert_eq!(p.decide(5, &mut rng), RetryDecision::GiveUp);
    }

    #[test]
    fn jitter_spreads_over_the_whole_window() {
        let p = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let delays: Vec<Duration> = (0..2000)
            .map(|_| match p.decide(3, &mut rng) {
                RetryDecision::RetryAfter(d) => d,
                RetryDecision::GiveUp => unreachable!(),
            })
            .collect();
        let low = delays
            .iter()
            .filter(|d| **d < Duration::from_secs(3))
            .count();
        let high = delays
            .iter()
            .filter(|d| **d > Duration::from_secs(9))
            .count();
        // Uniform on [0, 12 s]: about a quarter of draws in each of these tails.
        assert!(low > 350 && high > 350, "low={low} high={high}");
    }

    proptest! {
        #[test]
        fn every_delay_lies_within_its_window(attempt in 1u32..4, seed in any::<u64>()) {
            let p = RetryPolicy::default();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            match p.decide(attempt, &mut rng) {
                RetryDecision::RetryAfter(d) => prop_assert!(d <= p.ceiling(attempt)),
                RetryDecision::GiveUp => prop_assert!(false, "attempt {attempt} must retry"),
            }
        }
    }
}
