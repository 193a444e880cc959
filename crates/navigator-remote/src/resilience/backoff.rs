//! Exponential backoff with full jitter, and the providers' "wait this long" headers.

use rand::Rng;
use std::time::{Duration, SystemTime};

/// Exponential backoff with full jitter: the n-th retry waits a uniformly random time in
/// `[0, min(cap, base * 2^n)]`, unless the provider said how long to wait: then exactly that,
/// up to `max_retry_after` (which may exceed `cap`: the provider knows its own quota). A caller
/// should not retry in-call at all when the provider asks for more than `max_retry_after`
/// (see [`Backoff::honours`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    /// Longest computed (jittered) wait.
    pub cap: Duration,
    /// Longest provider-requested wait honoured in-call.
    pub max_retry_after: Duration,
}

impl Backoff {
    /// `max_retry_after` starts equal to `cap`; see [`Backoff::with_max_retry_after`].
    pub fn new(base: Duration, cap: Duration) -> Self {
        let cap = cap.max(base);
        Self {
            base,
            cap,
            max_retry_after: cap,
        }
    }

    /// The longest provider-requested wait honoured in-call.
    pub fn with_max_retry_after(mut self, max_retry_after: Duration) -> Self {
        self.max_retry_after = max_retry_after;
        self
    }

    /// Whether a provider-requested wait is short enough to wait for in-call.
    pub fn honours(&self, hint: Duration) -> bool {
        hint <= self.max_retry_after
    }

    /// The wait before retry number `retry` (0 for the first retry).
    pub fn delay(&self, retry: u32, hint: Option<Duration>) -> Duration {
        self.delay_with(retry, hint, &mut rand::rng())
    }

    /// [`Backoff::delay`] with the random source given (for tests).
    pub fn delay_with(&self, retry: u32, hint: Option<Duration>, rng: &mut impl Rng) -> Duration {
        if let Some(hint) = hint {
            return hint.min(self.max_retry_after);
        }
        let ceiling = self.ceiling(retry);
        if ceiling.is_zero() {
            return Duration::ZERO;
        }
        let nanos = rng.random_range(0..=ceiling.as_nanos().min(u64::MAX as u128) as u64);
        Duration::from_nanos(nanos)
    }

    /// `min(cap, base * 2^retry)`: the most the jittered wait can be.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }
}

/// The provider's requested wait: `retry-after-ms` (milliseconds, possibly fractional) when
/// present, else `retry-after` as delta-seconds or an HTTP date (relative to `now`).
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64((ms / 1000.0).min(86_400.0)));
    }
    let value = get("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn jittered_delays_stay_within_the_exponential_ceiling_and_the_cap() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        assert_eq!(backoff.ceiling(0), Duration::from_millis(100));
        assert_eq!(backoff.ceiling(3), Duration::from_millis(800));
        assert_eq!(backoff.ceiling(10), Duration::from_secs(2));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(2));
        for retry in 0..12 {
            for _ in 0..50 {
                let d = backoff.delay_with(retry, None, &mut rng);
                assert!(d <= backoff.ceiling(retry), "{d:?} at retry {retry}");
            }
        }
        // Full jitter really spreads: not every draw is the ceiling.
        let draws: Vec<_> = (0..20)
            .map(|_| backoff.delay_with(5, None, &mut rng))
            .collect();
        assert!(draws.iter().any(|d| *d < Duration::from_secs(1)));
    }

    #[test]
    fn a_provider_hint_is_used_as_is_beyond_the_cap_up_to_max_retry_after() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
            .with_max_retry_after(Duration::from_secs(120));
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let hint = Some(Duration::from_secs(3));
        assert_eq!(
            backoff.delay_with(0, hint, &mut rng),
            Duration::from_secs(3)
        );
        let hint = Some(Duration::from_secs(60));
        assert_eq!(
            backoff.delay_with(0, hint, &mut rng),
            Duration::from_secs(60),
            "a Retry-After over the backoff cap is honoured"
        );
        assert!(backoff.honours(Duration::from_secs(120)));
        assert!(!backoff.honours(Duration::from_secs(121)));
        let hint = Some(Duration::from_secs(600));
        assert_eq!(
            backoff.delay_with(0, hint, &mut rng),
            Duration::from_secs(120)
        );
        // Computed waits stay under the cap.
        assert!(backoff.delay_with(20, None, &mut rng) <= Duration::from_secs(10));
        // Without a separate bound the cap applies to hints too.
        let plain = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        assert_eq!(
            plain.delay_with(0, Some(Duration::from_secs(60)), &mut rng),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn retry_after_headers_in_every_form() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            h
        };
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")]), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "1.5")]), now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after-ms", "250"), ("retry-after", "9")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &date)]), now),
            Some(Duration::from_secs(7))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &past)]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")]), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
