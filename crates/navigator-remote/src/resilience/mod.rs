//! The resilience layer every outbound call goes through.
//!
//! One [`Resilience`] per client (service) holds what all its calls share: the
//! [`CircuitBreaker`], the [`AdaptiveLimiter`] (AIMD concurrency), the [`RateLimiter`] (requests
//! and tokens per minute, plus provider-requested pauses) and the [`Backoff`] policy.
//! [`Resilience::call`] runs one logical call through them:
//!
//! breaker → concurrency permit → buckets → send (per-request timeout) → classify → retry
//! transient failures with backoff, up to `max_attempts` requests.
//!
//! Classification: 2xx whose body decodes and validates is a success; 429 → `RateLimited`;
//! 5xx, timeouts and connect errors → `Unavailable`; other statuses → `Rejected` (never
//! retried); a 2xx that does not decode or validate → `BadResponse`. Errors carry statuses and
//! kinds only, never bodies, URLs or keys.
//!
//! Retries follow the call's [`Idempotency`]: an [`Idempotency::Idempotent`] call retries every
//! transient failure; an [`Idempotency::CreatesResource`] call (one that creates, and may bill,
//! something at the provider) retries only when the request certainly was not processed — a
//! 429 or a connect error — and otherwise fails, leaving the retry to the caller's job level.
//!
//! A 429 is backpressure: it halves the concurrency limit and pauses the client for its
//! `Retry-After`, but does not count toward opening the breaker. A provider's `Retry-After`
//! (on a 429 or a 5xx) is honoured up to `max_retry_after`, which may exceed `backoff_cap`; a
//! longer one ends the call at once with `RateLimited { retry_after: Some(..) }` so the caller
//! can reschedule.

pub mod backoff;
pub mod breaker;
pub mod bucket;
pub mod concurrency;
pub mod metrics;

pub use backoff::Backoff;
pub use breaker::{BreakerState, CircuitBreaker, Verdict};
pub use bucket::RateLimiter;
pub use concurrency::{AdaptiveLimiter, ConcurrencySettings, Signal};
pub use metrics::Outcome;

use navigator_domain::ErrorCode;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// What one logical call cost: HTTP requests sent and how many of them were retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    pub requests: u32,
    pub retries: u32,
}

impl std::ops::Add for CallStats {
    type Output = CallStats;

    fn add(self, other: CallStats) -> CallStats {
        CallStats {
            requests: self.requests + other.requests,
            retries: self.retries + other.retries,
        }
    }
}

/// Why an outbound call failed. Messages are content-free: statuses, counts, error kinds.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RemoteError {
    #[error("rate limited by the provider")]
    RateLimited { retry_after: Option<Duration> },
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    #[error("provider answer broke the contract: {0}")]
    BadResponse(String),
    #[error("provider refused the request with status {status}")]
    Rejected { status: u16 },
    #[error("circuit breaker open; no call made")]
    CircuitOpen,
}

impl RemoteError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RemoteError::RateLimited { .. } => ErrorCode::UpstreamRateLimited,
            RemoteError::Unavailable(_) => ErrorCode::UpstreamUnavailable,
            RemoteError::BadResponse(_) => ErrorCode::UpstreamBadResponse,
            RemoteError::Rejected { .. } => ErrorCode::UpstreamRejected,
            RemoteError::CircuitOpen => ErrorCode::CircuitOpen,
        }
    }

    /// Whether another attempt may succeed (everything but a rejection).
    pub fn is_transient(&self) -> bool {
        !matches!(self, RemoteError::Rejected { .. })
    }
}

/// Whether a call may be repeated when its outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Idempotency {
    /// Repeating the request is harmless (a read, or a computation like embeddings): every
    /// transient failure is retried.
    #[default]
    Idempotent,
    /// The request creates (and may bill) something at the provider, so it is retried only when
    /// it certainly was not processed: a 429, or a connect error (no connection, nothing sent).
    /// A timeout, a 5xx, a dropped connection or a 2xx that fails validation ends the call.
    CreatesResource,
}

/// Settings in a client's configuration that are invalid (empty model, bad URL, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid remote client settings: {0}")]
pub struct SettingsError(pub String);

/// How a client protects itself and its provider. Shared by every call of the client.
#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceSettings {
    /// Per request, connect to last body byte. Default 30 s.
    pub request_timeout: Duration,
    /// Requests per logical call, first one included. Default 4 (minimum 1).
    pub max_attempts: u32,
    /// Backoff base. Default 500 ms.
    pub backoff_base: Duration,
    /// Longest computed wait between attempts. Default 30 s.
    pub backoff_cap: Duration,
    /// Longest provider `Retry-After` waited for in-call (it may exceed `backoff_cap`). A longer
    /// one ends the call with `RateLimited { retry_after: Some(..) }`. Default 120 s.
    pub max_retry_after: Duration,
    /// Consecutive transient failures that open the breaker. Default 5.
    pub breaker_threshold: u32,
    /// How long the breaker stays open before a probe. Default 30 s.
    pub breaker_open_for: Duration,
    /// AIMD concurrency: default min 1, max 16, initial 4, latency target 10 s.
    pub concurrency: ConcurrencySettings,
    /// Client-side request budget. Default none.
    pub requests_per_minute: Option<u32>,
    /// Client-side token budget (embedders only). Default none.
    pub tokens_per_minute: Option<u32>,
}

impl Default for ResilienceSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_attempts: 4,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            breaker_threshold: 5,
            breaker_open_for: Duration::from_secs(30),
            concurrency: ConcurrencySettings::default(),
            requests_per_minute: None,
            tokens_per_minute: None,
        }
    }
}

/// Largest response body read for any call; a larger one is a bad response.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// One client's shared resilience state.
#[derive(Debug)]
pub struct Resilience {
    service: &'static str,
    breaker: CircuitBreaker,
    limiter: AdaptiveLimiter,
    rate: RateLimiter,
    backoff: Backoff,
    max_attempts: u32,
    request_timeout: Duration,
}

/// How one attempt ended.
enum Attempt<T> {
    Done(T),
    Failed {
        error: RemoteError,
        hint: Option<Duration>,
        /// The provider certainly did not process the request (429, connect error).
        unprocessed: bool,
    },
}

impl Resilience {
    /// `service` is the metrics label (`openai`, `llamaparse`).
    pub fn new(service: &'static str, settings: &ResilienceSettings) -> Self {
        Self {
            service,
            breaker: CircuitBreaker::new(
                service,
                settings.breaker_threshold,
                settings.breaker_open_for,
            ),
            limiter: AdaptiveLimiter::new(service, settings.concurrency),
            rate: RateLimiter::new(settings.requests_per_minute, settings.tokens_per_minute),
            backoff: Backoff::new(settings.backoff_base, settings.backoff_cap)
                .with_max_retry_after(settings.max_retry_after),
            max_attempts: settings.max_attempts.max(1),
            request_timeout: settings.request_timeout,
        }
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    pub fn limiter(&self) -> &AdaptiveLimiter {
        &self.limiter
    }

    /// Runs one logical call. `build` makes a fresh request for each attempt; `decode` turns a
    /// 2xx body into the value or says (content-free) why it breaks the contract. `tokens` is
    /// what one request costs against the tokens-per-minute bucket. Bodies over `max_body`
    /// bytes are bad responses. `idempotency` decides which failures are retried.
    pub async fn call<T>(
        &self,
        operation: &'static str,
        idempotency: Idempotency,
        tokens: u64,
        max_body: usize,
        build: impl Fn() -> reqwest::RequestBuilder,
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<(T, CallStats), RemoteError> {
        let mut stats = CallStats::default();
        let mut last: Option<(RemoteError, Option<Duration>)> = None;
        for attempt in 0..self.max_attempts {
            if let Some((_, hint)) = &last {
                // The provider's Retry-After (on a 429 or a 5xx) wins over our own schedule.
                tokio::time::sleep(self.backoff.delay(attempt - 1, *hint)).await;
            }
            let permit = match self.breaker.try_acquire() {
                Ok(permit) => permit,
                Err(open) => {
                    metrics::request(self.service, operation, Outcome::CircuitOpen, None);
                    // Report what opened the breaker when this call saw it.
                    return Err(last.map_or(open, |(error, _)| error));
                }
            };
            if attempt > 0 {
                stats.retries += 1;
                metrics::retry(self.service, operation);
            }
            let mut slot = self.limiter.acquire().await;
            self.rate.acquire(tokens).await;
            stats.requests += 1;
            match self
                .attempt(operation, max_body, build(), &decode, permit, &mut slot)
                .await
            {
                Attempt::Done(value) => return Ok((value, stats)),
                Attempt::Failed {
                    error,
                    hint,
                    unprocessed,
                } => {
                    if let Some(hint) = hint
                        && !self.backoff.honours(hint)
                    {
                        // Longer than we wait in-call: the caller reschedules.
                        return Err(RemoteError::RateLimited {
                            retry_after: Some(hint),
                        });
                    }
                    let retryable = match idempotency {
                        Idempotency::Idempotent => error.is_transient(),
                        Idempotency::CreatesResource => unprocessed,
                    };
                    if !retryable {
                        return Err(error);
                    }
                    last = Some((error, hint));
                }
            }
        }
        Err(last.map_or(RemoteError::CircuitOpen, |(error, _)| error))
    }

    async fn attempt<T>(
        &self,
        operation: &'static str,
        max_body: usize,
        request: reqwest::RequestBuilder,
        decode: &impl Fn(&[u8]) -> Result<T, String>,
        permit: breaker::BreakerPermit<'_>,
        slot: &mut concurrency::ConcurrencyPermit<'_>,
    ) -> Attempt<T> {
        let started = Instant::now();
        let exchanged =
            tokio::time::timeout(self.request_timeout, exchange(request, max_body)).await;
        let elapsed = started.elapsed();
        let (outcome, verdict, signal, result) = match exchanged {
            Err(_) => (
                Outcome::Timeout,
                Verdict::Failure,
                Signal::Overload,
                Attempt::Failed {
                    error: RemoteError::Unavailable("request timed out".into()),
                    hint: None,
                    unprocessed: false,
                },
            ),
            Ok(Err(Transport::Timeout)) => (
                Outcome::Timeout,
                Verdict::Failure,
                Signal::Overload,
                Attempt::Failed {
                    error: RemoteError::Unavailable("request timed out".into()),
                    hint: None,
                    unprocessed: false,
                },
            ),
            Ok(Err(Transport::Connect)) => (
                Outcome::ConnectError,
                Verdict::Failure,
                Signal::Neutral,
                Attempt::Failed {
                    error: RemoteError::Unavailable("connect error".into()),
                    hint: None,
                    // No connection was made: nothing reached the provider.
                    unprocessed: true,
                },
            ),
            Ok(Err(Transport::Other)) => (
                Outcome::ConnectError,
                Verdict::Failure,
                Signal::Neutral,
                Attempt::Failed {
                    error: RemoteError::Unavailable("transport error".into()),
                    hint: None,
                    unprocessed: false,
                },
            ),
            Ok(Err(Transport::TooLarge)) => (
                Outcome::BadResponse,
                Verdict::Failure,
                Signal::Neutral,
                Attempt::Failed {
                    error: RemoteError::BadResponse(format!("response body over {max_body} bytes")),
                    hint: None,
                    unprocessed: false,
                },
            ),
            Ok(Ok(answer)) => {
                self.rate.observe(&answer.headers);
                let status = answer.status.as_u16();
                let hint = backoff::retry_after(&answer.headers, SystemTime::now());
                if answer.status.is_success() {
                    match decode(answer.body.as_deref().unwrap_or_default()) {
                        Ok(value) => (
                            Outcome::Success,
                            Verdict::Healthy,
                            Signal::Success(elapsed),
                            Attempt::Done(value),
                        ),
                        Err(why) => (
                            Outcome::BadResponse,
                            Verdict::Failure,
                            Signal::Neutral,
                            Attempt::Failed {
                                error: RemoteError::BadResponse(why),
                                hint: None,
                                unprocessed: false,
                            },
                        ),
                    }
                } else if status == 429 {
                    if let Some(hint) = hint {
                        self.rate.pause_for(hint.min(self.backoff.max_retry_after));
                    }
                    (
                        Outcome::RateLimited,
                        Verdict::Backpressure,
                        Signal::Overload,
                        Attempt::Failed {
                            error: RemoteError::RateLimited { retry_after: hint },
                            hint,
                            // A rate-limited request is refused before it is processed.
                            unprocessed: true,
                        },
                    )
                } else if answer.status.is_server_error() {
                    (
                        Outcome::ServerError,
                        Verdict::Failure,
                        Signal::Neutral,
                        Attempt::Failed {
                            error: RemoteError::Unavailable(format!("status {status}")),
                            hint,
                            unprocessed: false,
                        },
                    )
                } else {
                    (
                        Outcome::ClientError,
                        Verdict::Healthy,
                        Signal::Neutral,
                        Attempt::Failed {
                            error: RemoteError::Rejected { status },
                            hint: None,
                            unprocessed: false,
                        },
                    )
                }
            }
        };
        metrics::request(self.service, operation, outcome, Some(elapsed));
        if let Attempt::Failed { error, .. } = &result {
            tracing::debug!(
                service = self.service,
                operation,
                outcome = outcome.as_str(),
                error = %error,
                "external request failed"
            );
        }
        permit.record(verdict);
        slot.set_signal(signal);
        result
    }
}

struct Answer {
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
    /// Read for 2xx answers only.
    body: Option<Vec<u8>>,
}

enum Transport {
    Timeout,
    Connect,
    Other,
    TooLarge,
}

impl From<reqwest::Error> for Transport {
    // Only the kind is kept: a reqwest error's text names the URL.
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            Transport::Timeout
        } else if e.is_connect() {
            Transport::Connect
        } else {
            Transport::Other
        }
    }
}

async fn exchange(request: reqwest::RequestBuilder, max_body: usize) -> Result<Answer, Transport> {
    let mut response = request.send().await?;
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    if !status.is_success() {
        return Ok(Answer {
            status,
            headers,
            body: None,
        });
    }
    if response
        .content_length()
        .is_some_and(|len| len > max_body as u64)
    {
        return Err(Transport::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max_body {
            return Err(Transport::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        headers,
        body: Some(body),
    })
}
