//! Per-principal rate limits on the expensive routes (uploads and searches): a token bucket per
//! principal and route kind, refilled continuously. Over the limit: 429 `rate_limited` with
//! `Retry-After`. In memory, per process: behind a load balancer with N API processes the
//! effective limit is up to N times the configured one.

use super::error::ApiError;
use navigator_domain::ErrorCode;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limited {
    Upload,
    Search,
}

/// Most keys one [`KeyedBuckets`] tracks at once; idle buckets (full again) are dropped first.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What [`KeyedBuckets::take`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Take {
    /// A token was taken.
    Taken,
    /// None left; one is back after this long.
    Wait(Duration),
    /// A new key, and every tracked key is active: nothing tracked, the caller decides.
    Full,
}

/// A token bucket per key, refilled continuously, holding `per_minute` tokens at most (the
/// burst). Memory is bounded: at most [`MAX_TRACKED`] keys.
pub(crate) struct KeyedBuckets<K> {
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + std::hash::Hash> KeyedBuckets<K> {
    pub(crate) fn new() -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token of `key`'s bucket (`per_minute` > 0).
    pub(crate) fn take(&self, key: K, per_minute: u32, now: Instant) -> Take {
        let capacity = f64::from(per_minute.max(1));
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= MAX_TRACKED {
            // Buckets that refilled completely carry no state worth keeping.
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * per_second < capacity
            });
            if buckets.len() >= MAX_TRACKED {
                return Take::Full;
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Take::Taken
        } else {
            Take::Wait(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

/// Requests per minute allowed for each kind (0: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    pub uploads_per_minute: u32,
    pub searches_per_minute: u32,
}

pub struct RateLimiter {
    limits: RateLimits,
    buckets: KeyedBuckets<(String, Limited)>,
}

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            buckets: KeyedBuckets::new(),
        }
    }

    fn per_minute(&self, kind: Limited) -> u32 {
        match kind {
            Limited::Upload => self.limits.uploads_per_minute,
            Limited::Search => self.limits.searches_per_minute,
        }
    }

    /// Takes one token for `principal`, or says how long until one is available.
    pub fn check(&self, principal: &str, kind: Limited) -> Result<(), Duration> {
        self.check_at(principal, kind, Instant::now())
    }

    fn check_at(&self, principal: &str, kind: Limited, now: Instant) -> Result<(), Duration> {
        let per_minute = self.per_minute(kind);
        if per_minute == 0 {
            return Ok(());
        }
        match self
            .buckets
            .take((principal.to_owned(), kind), per_minute, now)
        {
            Take::Taken => Ok(()),
            Take::Wait(wait) => Err(wait),
            // More active principals than tracked: let the untracked one through rather than
            // refuse everyone new.
            Take::Full => Ok(()),
        }
    }

    /// [`RateLimiter::check`] as an API error carrying the wait.
    pub fn enforce(&self, principal: &str, kind: Limited) -> Result<(), ApiError> {
        self.check(principal, kind).map_err(|wait| {
            metrics::counter!("navigator_rate_limited_total", "kind" => match kind {
                Limited::Upload => "upload",
                Limited::Search => "search",
            })
            .increment(1);
            ApiError::new(ErrorCode::RateLimited, "too many requests; retry later")
                .retry_after(wait.as_secs().max(1))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_gets_its_burst_then_waits_and_others_are_unaffected() {
        let limiter = RateLimiter::new(RateLimits {
            uploads_per_minute: 3,
            searches_per_minute: 0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("a", Limited::Upload, t0).is_ok());
        }
        let wait = limiter.check_at("a", Limited::Upload, t0).unwrap_err();
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(
            limiter.check_at("b", Limited::Upload, t0).is_ok(),
            "per principal"
        );
        assert!(
            limiter.check_at("a", Limited::Search, t0).is_ok(),
            "searches unlimited"
        );
        // One token is back after 20 s (3 per minute).
        assert!(
            limiter
                .check_at("a", Limited::Upload, t0 + Duration::from_secs(20))
                .is_ok()
        );
        assert!(
            limiter
                .check_at("a", Limited::Upload, t0 + Duration::from_secs(20))
                .is_err()
        );
    }
}
