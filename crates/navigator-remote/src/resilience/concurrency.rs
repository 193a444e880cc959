//! Adaptive concurrency (AIMD): how many requests of one client may be in flight.
//!
//! Additive increase: `limit` successes under the latency target raise the limit by one.
//! Multiplicative decrease: a 429, a timeout or a success over the latency target halves it,
//! at most once per congestion event: every decrease starts a new generation, and an overload
//! reported by a request sent before the last decrease (a sibling of the one that already
//! caused it) is ignored. So when many in-flight requests hit the same overload together the
//! limit halves once, not once per response.
//! The limit stays within `[min, max]`.

use super::metrics;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencySettings {
    pub min: usize,
    pub max: usize,
    pub initial: usize,
    /// A success slower than this counts as overload.
    pub latency_target: Duration,
}

impl Default for ConcurrencySettings {
    fn default() -> Self {
        Self {
            min: 1,
            max: 16,
            initial: 4,
            latency_target: Duration::from_secs(10),
        }
    }
}

/// What a finished request says about the provider's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A success that took this long.
    Success(Duration),
    /// 429 or timeout.
    Overload,
    /// Says nothing about load (a 4xx, a 5xx, a connect error, a cancelled call).
    Neutral,
}

#[derive(Debug)]
struct State {
    limit: usize,
    in_flight: usize,
    successes: usize,
    /// Bumped by every decrease; permits remember the generation they were issued in.
    generation: u64,
}

#[derive(Debug)]
pub struct AdaptiveLimiter {
    service: &'static str,
    min: usize,
    max: usize,
    latency_target: Duration,
    state: Mutex<State>,
    freed: Notify,
}

impl AdaptiveLimiter {
    pub fn new(service: &'static str, settings: ConcurrencySettings) -> Self {
        let min = settings.min.max(1);
        let max = settings.max.max(min);
        let limit = settings.initial.clamp(min, max);
        metrics::concurrency_limit(service, limit);
        Self {
            service,
            min,
            max,
            latency_target: settings.latency_target,
            state: Mutex::new(State {
                limit,
                in_flight: 0,
                successes: 0,
                generation: 0,
            }),
            freed: Notify::new(),
        }
    }

    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Waits for a free slot under the current limit.
    pub async fn acquire(&self) -> ConcurrencyPermit<'_> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut state = self.lock();
                if state.in_flight < state.limit {
                    state.in_flight += 1;
                    return ConcurrencyPermit {
                        limiter: self,
                        signal: Signal::Neutral,
                        generation: state.generation,
                    };
                }
            }
            freed.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, signal: Signal, generation: u64) {
        let mut state = self.lock();
        state.in_flight -= 1;
        let before = state.limit;
        match signal {
            Signal::Success(latency) if latency <= self.latency_target => {
                state.successes += 1;
                if state.successes >= state.limit {
                    state.successes = 0;
                    state.limit = (state.limit + 1).min(self.max);
                }
            }
            // Sent before the last decrease: the same congestion event, already accounted for.
            Signal::Success(_) | Signal::Overload if generation != state.generation => {}
            Signal::Success(_) | Signal::Overload => {
                state.successes = 0;
                state.limit = (state.limit / 2).max(self.min);
                state.generation += 1;
            }
            Signal::Neutral => {}
        }
        if state.limit != before {
            metrics::concurrency_limit(self.service, state.limit);
        }
        drop(state);
        self.freed.notify_waiters();
    }
}

/// One in-flight request's slot; freed on drop, with the signal set by [`Self::set_signal`].
#[derive(Debug)]
pub struct ConcurrencyPermit<'a> {
    limiter: &'a AdaptiveLimiter,
    signal: Signal,
    generation: u64,
}

impl ConcurrencyPermit<'_> {
    pub fn set_signal(&mut self, signal: Signal) {
        self.signal = signal;
    }
}

impl Drop for ConcurrencyPermit<'_> {
    fn drop(&mut self) {
        self.limiter.release(self.signal, self.generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(min: usize, max: usize, initial: usize) -> AdaptiveLimiter {
        AdaptiveLimiter::new(
            "test",
            ConcurrencySettings {
                min,
                max,
                initial,
                latency_target: Duration::from_secs(1),
            },
        )
    }

    async fn finish(l: &AdaptiveLimiter, signal: Signal) {
        let mut p = l.acquire().await;
        p.set_signal(signal);
    }

    #[tokio::test]
    async fn additive_increase_per_limit_fast_successes_up_to_max() {
        let l = limiter(1, 6, 4);
        for _ in 0..3 {
            finish(&l, Signal::Success(Duration::from_millis(10))).await;
        }
        assert_eq!(l.limit(), 4);
        finish(&l, Signal::Success(Duration::from_millis(10))).await;
        assert_eq!(l.limit(), 5);
        for _ in 0..100 {
            finish(&l, Signal::Success(Duration::from_millis(10))).await;
        }
        assert_eq!(l.limit(), 6);
        finish(&l, Signal::Neutral).await;
        assert_eq!(l.limit(), 6);
    }

    #[tokio::test]
    async fn multiplicative_decrease_on_overload_or_slowness_down_to_min() {
        let l = limiter(2, 16, 16);
        finish(&l, Signal::Overload).await;
        assert_eq!(l.limit(), 8);
        finish(&l, Signal::Success(Duration::from_secs(5))).await;
        assert_eq!(l.limit(), 4);
        finish(&l, Signal::Overload).await;
        finish(&l, Signal::Overload).await;
        assert_eq!(l.limit(), 2);
        assert_eq!(limiter(3, 1, 0).limit(), 3, "settings are clamped");
    }

    #[tokio::test]
    async fn many_overloads_from_one_congestion_event_halve_the_limit_once() {
        let l = limiter(1, 16, 8);
        let mut permits = Vec::new();
        for _ in 0..8 {
            permits.push(l.acquire().await);
        }
        assert_eq!(l.in_flight(), 8);
        for mut p in permits {
            p.set_signal(Signal::Overload);
        }
        assert_eq!(l.limit(), 4, "halved once, not eight times");

        // Slow successes of the same generation count as the same event too.
        let mut old = Vec::new();
        for _ in 0..4 {
            old.push(l.acquire().await);
        }
        let mut first = old.pop().unwrap();
        first.set_signal(Signal::Overload);
        drop(first);
        assert_eq!(l.limit(), 2);
        for mut p in old {
            p.set_signal(Signal::Success(Duration::from_secs(5)));
        }
        assert_eq!(l.limit(), 2);

        // A request sent after the decrease that still sees overload is a new event.
        finish(&l, Signal::Overload).await;
        assert_eq!(l.limit(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_requests_are_gated_by_the_limit() {
        let l = std::sync::Arc::new(limiter(1, 4, 2));
        let a = l.acquire().await;
        let _b = l.acquire().await;
        assert_eq!(l.in_flight(), 2);
        let waiter = {
            let l = l.clone();
            tokio::spawn(async move {
                let _c = l.acquire().await;
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished(), "a third request waits for a slot");
        drop(a);
        waiter.await.unwrap();
        assert_eq!(l.in_flight(), 1);
    }
}
