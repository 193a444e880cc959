//! Call metrics. Labels are fixed, low-cardinality names (`service`, `operation`, `outcome`):
//! never URLs, keys, texts or bodies.

use std::time::Duration;

pub const REQUEST_DURATION: &str = "navigator_external_request_duration_seconds";
pub const REQUESTS_TOTAL: &str = "navigator_external_requests_total";
pub const RETRIES_TOTAL: &str = "navigator_external_retries_total";
pub const BREAKER_STATE: &str = "navigator_external_breaker_state";
pub const CONCURRENCY_LIMIT: &str = "navigator_external_concurrency_limit";
pub const TOKENS_TOTAL: &str = "navigator_external_tokens_total";

/// How one request (or one refused attempt) ended; the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    ClientError,
    RateLimited,
    ServerError,
    Timeout,
    ConnectError,
    BadResponse,
    CircuitOpen,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "2xx",
            Outcome::ClientError => "4xx",
            Outcome::RateLimited => "429",
            Outcome::ServerError => "5xx",
            Outcome::Timeout => "timeout",
            Outcome::ConnectError => "connect_error",
            Outcome::BadResponse => "bad_response",
            Outcome::CircuitOpen => "circuit_open",
        }
    }
}

/// A request that was sent (or refused by the breaker, then `elapsed` is `None`).
pub fn request(
    service: &'static str,
    operation: &'static str,
    outcome: Outcome,
    elapsed: Option<Duration>,
) {
    if let Some(elapsed) = elapsed {
        metrics::histogram!(REQUEST_DURATION, "service" => service, "operation" => operation)
            .record(elapsed.as_secs_f64());
    }
    metrics::counter!(
        REQUESTS_TOTAL,
        "service" => service,
        "operation" => operation,
        "outcome" => outcome.as_str()
    )
    .increment(1);
}

pub fn retry(service: &'static str, operation: &'static str) {
    metrics::counter!(RETRIES_TOTAL, "service" => service, "operation" => operation).increment(1);
}

/// 0 closed, 1 half-open, 2 open.
pub fn breaker_state(service: &'static str, state: u8) {
    metrics::gauge!(BREAKER_STATE, "service" => service).set(f64::from(state));
}

pub fn concurrency_limit(service: &'static str, limit: usize) {
    metrics::gauge!(CONCURRENCY_LIMIT, "service" => service).set(limit as f64);
}

/// Tokens billed by the provider.
pub fn tokens(service: &'static str, tokens: u64) {
    metrics::counter!(TOKENS_TOTAL, "service" => service).increment(tokens);
}
