//! Client-side rate limiting: token buckets for requests and tokens per minute, plus pauses the
//! provider asks for through `x-ratelimit-remaining-*: 0` and `x-ratelimit-reset-*`.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// One bucket: holds up to `capacity` units, refilled continuously at `capacity` per minute.
#[derive(Debug)]
struct Bucket {
    capacity: f64,
    per_second: f64,
    available: f64,
    refilled_at: Instant,
}

impl Bucket {
    fn per_minute(per_minute: u32, now: Instant) -> Self {
        let capacity = f64::from(per_minute.max(1));
        Self {
            capacity,
            per_second: capacity / 60.0,
            available: capacity,
            refilled_at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.available = (self.available + elapsed * self.per_second).min(self.capacity);
        self.refilled_at = now;
    }

    /// How long until `amount` (at most the capacity) is available; zero when it is now.
    fn wait_for(&self, amount: f64) -> Duration {
        let missing = amount.min(self.capacity) - self.available;
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / self.per_second)
        }
    }

    fn take(&mut self, amount: f64) {
        self.available -= amount.min(self.capacity);
    }
}

#[derive(Debug)]
struct State {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    paused_until: Option<Instant>,
}

/// Requests-per-minute and tokens-per-minute buckets (each optional) shared by all calls of one
/// client. [`RateLimiter::acquire`] waits until both allow the request.
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<State>,
}

impl RateLimiter {
    pub fn new(requests_per_minute: Option<u32>, tokens_per_minute: Option<u32>) -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(State {
                requests: requests_per_minute.map(|n| Bucket::per_minute(n, now)),
                tokens: tokens_per_minute.map(|n| Bucket::per_minute(n, now)),
                paused_until: None,
            }),
        }
    }

    /// Waits until one request carrying `tokens` tokens may be sent, and takes them. A request
    /// larger than the whole token bucket waits for a full bucket (it can never get more).
    pub async fn acquire(&self, tokens: u64) {
        loop {
            let wait = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let paused = state
                    .paused_until
                    .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
                let mut wait = paused;
                if paused.is_zero() {
                    state.paused_until = None;
                    if let Some(bucket) = state.requests.as_mut() {
                        bucket.refill(now);
                        wait = wait.max(bucket.wait_for(1.0));
                    }
                    if let Some(bucket) = state.tokens.as_mut() {
                        bucket.refill(now);
                        wait = wait.max(bucket.wait_for(tokens as f64));
                    }
                    if wait.is_zero() {
                        if let Some(bucket) = state.requests.as_mut() {
                            bucket.take(1.0);
                        }
                        if let Some(bucket) = state.tokens.as_mut() {
                            bucket.take(tokens as f64);
                        }
                        return;
                    }
                }
                wait
            };
            // Never spin on rounding: wait at least a millisecond.
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// Holds every request back for `duration` from now (the provider said its quota is spent).
    pub fn pause_for(&self, duration: Duration) {
        let until = Instant::now() + duration.min(Duration::from_secs(3600));
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.paused_until = Some(state.paused_until.map_or(until, |u| u.max(until)));
    }

    /// Applies a provider's `x-ratelimit-*` headers: a spent quota pauses until its reset.
    pub fn observe(&self, headers: &reqwest::header::HeaderMap) {
        if let Some(pause) = quota_pause(headers) {
            self.pause_for(pause);
        }
    }
}

/// How long the provider's `x-ratelimit-remaining-{requests,tokens}: 0` +
/// `x-ratelimit-reset-{requests,tokens}` headers say to hold off, if a quota is spent.
pub fn quota_pause(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    ["requests", "tokens"]
        .into_iter()
        .filter(|kind| {
            get(&format!("x-ratelimit-remaining-{kind}"))
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|remaining| remaining <= 0.0)
        })
        .filter_map(|kind| get(&format!("x-ratelimit-reset-{kind}")).and_then(parse_reset))
        .max()
}

/// Parses a reset duration as providers write it: Go-style `1s`, `6m0s`, `20ms`, `1.5s`,
/// `1h2m3s`, or plain seconds (`2`, `0.5`).
pub fn parse_reset(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let mut total = 0.0f64;
    let mut rest = value;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn reset_durations_in_provider_formats() {
        assert_eq!(parse_reset("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_reset("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_reset("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_reset("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_reset("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_reset("2"), Some(Duration::from_secs(2)));
        for bad in ["", "s", "1x", "abc", "-1s", "1.2.3s"] {
            assert_eq!(parse_reset(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_a_spent_quota_pauses() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("5"),
        );
        h.insert("x-ratelimit-reset-requests", HeaderValue::from_static("1s"));
        h.insert(
            "x-ratelimit-remaining-tokens",
            HeaderValue::from_static("0"),
        );
        h.insert("x-ratelimit-reset-tokens", HeaderValue::from_static("6m0s"));
        assert_eq!(quota_pause(&h), Some(Duration::from_secs(360)));
        h.insert(
            "x-ratelimit-remaining-tokens",
            HeaderValue::from_static("10"),
        );
        assert_eq!(quota_pause(&h), None);
        h.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("0"),
        );
        assert_eq!(quota_pause(&h), Some(Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_request_bucket_spaces_requests_once_the_burst_is_spent() {
        let limiter = RateLimiter::new(Some(60), None); // one per second after a burst of 60
        let start = Instant::now();
        for _ in 0..60 {
            limiter.acquire(0).await;
        }
        assert_eq!(Instant::now(), start, "the burst is free");
        limiter.acquire(0).await;
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_millis(999) && waited <= Duration::from_millis(1010),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn both_buckets_must_allow_and_oversized_requests_wait_for_a_full_bucket() {
        let limiter = RateLimiter::new(Some(1000), Some(600)); // 10 tokens per second
        let start = Instant::now();
        limiter.acquire(600).await;
        assert_eq!(Instant::now(), start);
        limiter.acquire(100).await; // needs 10 s of refill
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_secs(10) && waited <= Duration::from_millis(10_010),
            "{waited:?}"
        );
        // Larger than the bucket: waits for a full bucket rather than forever.
        limiter.acquire(10_000).await;
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_secs(70) && waited <= Duration::from_millis(70_020),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_provider_pause_holds_requests_until_the_reset() {
        let limiter = RateLimiter::new(None, None);
        let start = Instant::now();
        limiter.acquire(1).await;
        assert_eq!(Instant::now(), start);
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("0"),
        );
        h.insert(
            "x-ratelimit-reset-requests",
            HeaderValue::from_static("1.5s"),
        );
        limiter.observe(&h);
        limiter.acquire(1).await;
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_millis(1500) && waited <= Duration::from_millis(1510),
            "{waited:?}"
        );
        limiter.acquire(1).await;
        assert_eq!(Instant::now() - start, waited, "the pause is over");
    }
}
