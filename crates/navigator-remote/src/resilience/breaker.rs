//! The circuit breaker shared by all calls of one client.
//!
//! Closed → open after `threshold` consecutive transient failures; while open every call fails
//! fast without a request; after `open_for` the breaker is half-open and lets exactly one probe
//! through: its success closes the breaker, its failure re-opens it.
//!
//! A 429 is backpressure, not failure ([`Verdict::Backpressure`]): the provider is up and asks
//! us to slow down, which the rate limiter and the adaptive concurrency handle. It neither
//! resets nor extends the failure streak; a probe answered with 429 decides nothing and frees
//! the probe slot.

use super::RemoteError;
use super::metrics;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The breaker's state, as exported by the `navigator_external_breaker_state` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    pub fn gauge_value(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// What a request's outcome means to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The service answered (a 2xx, or a 4xx rejection of our request: it is up).
    Healthy,
    /// 5xx, timeout, connect error, bad response.
    Failure,
    /// 429: the service is up but asks us to slow down. Counts neither way.
    Backpressure,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
pub struct CircuitBreaker {
    service: &'static str,
    threshold: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    pub fn new(service: &'static str, threshold: u32, open_for: Duration) -> Self {
        metrics::breaker_state(service, BreakerState::Closed.gauge_value());
        Self {
            service,
            threshold: threshold.max(1),
            open_for,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() < until => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Lets a request through, or refuses it with [`RemoteError::CircuitOpen`]. The permit must
    /// be given the request's verdict; dropped without one (the call was cancelled), a probe
    /// frees its slot for the next caller.
    pub fn try_acquire(&self) -> Result<BreakerPermit<'_>, RemoteError> {
        let mut inner = self.lock();
        let probe = match *inner {
            Inner::Closed { .. } => false,
            Inner::Open { until } if Instant::now() < until => {
                return Err(RemoteError::CircuitOpen);
            }
            Inner::Open { .. } | Inner::HalfOpen { probing: false } => {
                *inner = Inner::HalfOpen { probing: true };
                metrics::breaker_state(self.service, BreakerState::HalfOpen.gauge_value());
                true
            }
            Inner::HalfOpen { probing: true } => return Err(RemoteError::CircuitOpen),
        };
        Ok(BreakerPermit {
            breaker: self,
            probe,
            settled: false,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn settle(&self, probe: bool, verdict: Verdict) {
        let mut inner = self.lock();
        let next = match (&*inner, probe, verdict) {
            (Inner::Closed { .. }, _, Verdict::Healthy) => Inner::Closed { failures: 0 },
            (Inner::Closed { failures }, _, Verdict::Failure) => {
                let failures = failures + 1;
                if failures >= self.threshold {
                    self.open()
                } else {
                    Inner::Closed { failures }
                }
            }
            (Inner::HalfOpen { .. }, true, Verdict::Healthy) => {
                metrics::breaker_state(self.service, BreakerState::Closed.gauge_value());
                Inner::Closed { failures: 0 }
            }
            (Inner::HalfOpen { .. }, true, Verdict::Failure) => self.open(),
            // Neither healthy nor failing: the next caller may probe (after the rate-limit
            // pause the 429 set).
            (Inner::HalfOpen { .. }, true, Verdict::Backpressure) => {
                Inner::HalfOpen { probing: false }
            }
            (Inner::Closed { .. }, _, Verdict::Backpressure) => return,
            // A request let through before the breaker opened, finishing late: the probe
            // decides, not it.
            _ => return,
        };
        *inner = next;
    }

    fn release_probe(&self) {
        let mut inner = self.lock();
        if let Inner::HalfOpen { probing: true } = *inner {
            *inner = Inner::HalfOpen { probing: false };
        }
    }

    fn open(&self) -> Inner {
        tracing::warn!(
            service = self.service,
            open_for_ms = self.open_for.as_millis() as u64,
            "circuit breaker opened"
        );
        metrics::breaker_state(self.service, BreakerState::Open.gauge_value());
        Inner::Open {
            until: Instant::now() + self.open_for,
        }
    }
}

/// Leave to send one request; give it the verdict with [`BreakerPermit::record`].
#[derive(Debug)]
pub struct BreakerPermit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    settled: bool,
}

impl BreakerPermit<'_> {
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    pub fn record(mut self, verdict: Verdict) {
        self.settled = true;
        self.breaker.settle(self.probe, verdict);
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(b: &CircuitBreaker) {
        b.try_acquire().unwrap().record(Verdict::Failure);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_consecutive_failures_and_fails_fast() {
        let b = CircuitBreaker::new("test", 3, Duration::from_secs(30));
        fail(&b);
        fail(&b);
        b.try_acquire().unwrap().record(Verdict::Healthy); // resets the streak
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.try_acquire().unwrap_err(), RemoteError::CircuitOpen);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(b.try_acquire().unwrap_err(), RemoteError::CircuitOpen);
    }

    #[tokio::test(start_paused = true)]
    async fn backpressure_neither_opens_nor_resets_the_streak() {
        let b = CircuitBreaker::new("test", 3, Duration::from_secs(30));
        for _ in 0..50 {
            b.try_acquire().unwrap().record(Verdict::Backpressure);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        fail(&b);
        b.try_acquire().unwrap().record(Verdict::Backpressure); // does not reset
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);

        // A probe answered with 429 decides nothing and frees the slot.
        tokio::time::advance(Duration::from_secs(30)).await;
        let probe = b.try_acquire().unwrap();
        assert!(probe.is_probe());
        probe.record(Verdict::Backpressure);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_acquire().unwrap();
        assert!(probe.is_probe());
        probe.record(Verdict::Healthy);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_exactly_one_probe_and_its_result_decides() {
        let b = CircuitBreaker::new("test", 1, Duration::from_secs(30));
        fail(&b);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_acquire().unwrap();
        assert!(probe.is_probe());
        assert_eq!(b.try_acquire().unwrap_err(), RemoteError::CircuitOpen);
        probe.record(Verdict::Failure);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.try_acquire().unwrap_err(), RemoteError::CircuitOpen);

        tokio::time::advance(Duration::from_secs(30)).await;
        let probe = b.try_acquire().unwrap();
        probe.record(Verdict::Healthy);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(!b.try_acquire().unwrap().is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_the_slot_and_late_results_do_not_decide() {
        let b = CircuitBreaker::new("test", 1, Duration::from_secs(1));
        let early = b.try_acquire().unwrap(); // sent while closed, finishes late
        fail(&b);
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(b.try_acquire().unwrap()); // cancelled probe
        let probe = b.try_acquire().unwrap();
        assert!(probe.is_probe());
        early.record(Verdict::Healthy); // not the probe: ignored
        assert_eq!(b.state(), BreakerState::HalfOpen);
        probe.record(Verdict::Healthy);
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
