//! A mock OpenAI-compatible embeddings API (`navigator mock openai`).
//!
//! Serves the wire contract of [`navigator_remote::openai`]: `POST /v1/embeddings` (also
//! `POST /embeddings`) and `GET /v1/models`, plus `GET /health` and the `/_mock/*` control routes
//! (see the crate docs).
//!
//! Vectors are [`navigator_embed::HashEmbedder::embedding_with_dimensions`] of each input: a
//! pure function of the text and the dimensions, never of the batch, L2-normalised. At 384
//! dimensions they are bit-identical to the test embedder's.
//!
//! Every request that passes authentication and validation (and the real rate limiter) draws
//! one number from the seeded RNG and gets at most one fault, checked in this order with
//! cumulative probabilities: timeout, each injected status (ascending), injected 429, malformed
//! JSON, wrong count, wrong dimensions, non-finite value, shuffled index. While the rates add
//! up to at most 1, each rate is exactly that fault's probability.

use crate::common::{
    self, Conn, Control, DEFAULT_SEED, Dice, Running, bearer_matches, check_rate, lock,
    merge_knobs, sleep_unless_cancelled,
};
use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use navigator_embed::HashEmbedder;
use navigator_remote::openai::wire;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Dimensions when neither the request nor `--dimensions` says otherwise (text-embedding-3-small).
pub const DEFAULT_DIMENSIONS: usize = 1536;
/// Most inputs one request may carry (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;
/// Most dimensions a request may ask for.
pub const MAX_DIMENSIONS: usize = 16_384;
/// Default `--hang-secs`.
pub const DEFAULT_HANG_SECS: u64 = 30;
/// Default `--retry-after-secs`.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 1;
/// `x-ratelimit-limit-requests` advertised when `rpm_limit` is 0 (unlimited).
pub const NOMINAL_RPM: u64 = 1_000_000;
/// `x-ratelimit-limit-tokens` advertised when `tpm_limit` is 0 (unlimited).
pub const NOMINAL_TPM: u64 = 100_000_000;
/// A non-finite value in the answer: valid JSON, but it overflows `f32` to infinity when decoded
/// into the wire's `Vec<f32>`, so only a client that checks `is_finite` catches it.
pub const NON_FINITE_LITERAL: &str = "1e39";

const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
const WINDOW: Duration = Duration::from_secs(60);
/// Stand-in written into the vector and then replaced by [`NON_FINITE_LITERAL`] in the JSON
/// (no unit vector component is anywhere near it).
const NON_FINITE_MARKER: f32 = f32::MAX;

/// Command-line flags of `navigator mock openai` (all faults off by default).
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Require `Authorization: Bearer KEY`; a missing or wrong key gets 401.
    #[arg(long, env = "NAVIGATOR_MOCK_OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Seed of the RNG behind fault draws and latency jitter.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Vector size when the request does not ask for one.
    #[arg(long, default_value_t = DEFAULT_DIMENSIONS)]
    pub dimensions: usize,
    /// Added delay before every answer.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Extra random delay, uniform in 0..=N ms.
    #[arg(long, default_value_t = 0)]
    pub latency_jitter_ms: u64,
    /// Answer with STATUS (an OpenAI-style error) with probability RATE; repeatable.
    #[arg(long = "fail", value_name = "STATUS=RATE", value_parser = parse_fail)]
    pub fail: Vec<(u16, f64)>,
    /// Probability of an injected 429 with `retry-after: --retry-after-secs`.
    #[arg(long, default_value_t = 0.0, value_parser = common::parse_rate)]
    pub rate_limit_rate: f64,
    /// `retry-after` of injected 429s, in seconds.
    #[arg(long, default_value_t = DEFAULT_RETRY_AFTER_SECS)]
    pub retry_after_secs: u64,
    /// Real limiter: requests admitted per sliding minute (0 = unlimited); beyond it 429 with
    /// the real remaining wait.
    #[arg(long, default_value_t = 0)]
    pub rpm_limit: u64,
    /// Real limiter: prompt tokens admitted per sliding minute (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    pub tpm_limit: u64,
    /// Probability of hanging `--hang-secs` and then dropping the connection unanswered.
    #[arg(long, default_value_t = 0.0, value_parser = common::parse_rate)]
    pub timeout_rate: f64,
    /// How long a timeout fault hangs before dropping the connection.
    #[arg(long, default_value_t = DEFAULT_HANG_SECS)]
    pub hang_secs: u64,
    /// Probability of a 200 whose body is not valid JSON.
    #[arg(long, default_value_t = 0.0, value_parser = common::parse_rate)]
    pub malformed_rate: f64,
    /// Probability of a 200 with one vector missing.
    #[arg(long, default_value_t = 0.0, value_parser = common::parse_rate)]
    pub wrong_count_rate: f64,
    /// Probability of a 200 whose last vector is one component short.
    #[arg(long, default_value_t = 0.0, value_parser = common::parse_rate)]
    pub wrong_dimensions_rate: f64,
    /// Probability of a 200 with a non-finite component (`1e39`, infinite as f32).
    #[arg(long, default_value_t = 0.0, value_parser = common::parse_rate)]
    pub non_finite_rate: f64,
    /// Probability of a 200 whose `data` is out of order with a duplicated `index`.
    #[arg(long, default_value_t = 0.0, value_parser = common::parse_rate)]
    pub shuffled_index_rate: f64,
}

/// `STATUS=RATE` for `--fail`, e.g. `500=0.2`.
fn parse_fail(text: &str) -> Result<(u16, f64), String> {
    let (status, rate) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not STATUS=RATE (e.g. 500=0.2)"))?;
    let status: u16 = status
        .trim()
        .parse()
        .map_err(|_| format!("`{status}` is not an HTTP status"))?;
    check_status(status)?;
    Ok((status, common::parse_rate(rate)?))
}

fn check_status(status: u16) -> Result<(), String> {
    if (400..=599).contains(&status) {
        Ok(())
    } else {
        Err(format!("injected status {status} is not a 4xx/5xx error"))
    }
}

/// The mock's behaviour; `POST /_mock/config` takes any subset of these fields as JSON.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    pub api_key: Option<String>,
    pub seed: u64,
    pub dimensions: usize,
    pub latency_ms: u64,
    pub latency_jitter_ms: u64,
    /// Injected error status → probability, e.g. `{"500": 0.2, "503": 0.1}`.
    pub error_rates: BTreeMap<u16, f64>,
    pub rate_limit_rate: f64,
    pub retry_after_secs: u64,
    pub rpm_limit: u64,
    pub tpm_limit: u64,
    pub timeout_rate: f64,
    pub hang_secs: u64,
    pub malformed_rate: f64,
    pub wrong_count_rate: f64,
    pub wrong_dimensions_rate: f64,
    pub non_finite_rate: f64,
    pub shuffled_index_rate: f64,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            api_key: None,
            seed: DEFAULT_SEED,
            dimensions: DEFAULT_DIMENSIONS,
            latency_ms: 0,
            latency_jitter_ms: 0,
            error_rates: BTreeMap::new(),
            rate_limit_rate: 0.0,
            retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
            rpm_limit: 0,
            tpm_limit: 0,
            timeout_rate: 0.0,
            hang_secs: DEFAULT_HANG_SECS,
            malformed_rate: 0.0,
            wrong_count_rate: 0.0,
            wrong_dimensions_rate: 0.0,
            non_finite_rate: 0.0,
            shuffled_index_rate: 0.0,
        }
    }
}

impl From<Args> for Knobs {
    fn from(args: Args) -> Self {
        Self {
            api_key: args.api_key,
            seed: args.seed,
            dimensions: args.dimensions,
            latency_ms: args.latency_ms,
            latency_jitter_ms: args.latency_jitter_ms,
            // A repeated status keeps its last rate.
            error_rates: args.fail.into_iter().collect(),
            rate_limit_rate: args.rate_limit_rate,
            retry_after_secs: args.retry_after_secs,
            rpm_limit: args.rpm_limit,
            tpm_limit: args.tpm_limit,
            timeout_rate: args.timeout_rate,
            hang_secs: args.hang_secs,
            malformed_rate: args.malformed_rate,
            wrong_count_rate: args.wrong_count_rate,
            wrong_dimensions_rate: args.wrong_dimensions_rate,
            non_finite_rate: args.non_finite_rate,
            shuffled_index_rate: args.shuffled_index_rate,
        }
    }
}

impl Knobs {
    /// Rates are probabilities, injected statuses are 4xx/5xx, dimensions are within bounds.
    pub fn validate(&self) -> Result<(), String> {
        if self.dimensions == 0 || self.dimensions > MAX_DIMENSIONS {
            return Err(format!(
                "dimensions must be in 1..={MAX_DIMENSIONS}, got {}",
                self.dimensions
            ));
        }
        for (&status, &rate) in &self.error_rates {
            check_status(status)?;
            check_rate(&format!("error_rates.{status}"), rate)?;
        }
        for (name, rate) in [
            ("rate_limit_rate", self.rate_limit_rate),
            ("timeout_rate", self.timeout_rate),
            ("malformed_rate", self.malformed_rate),
            ("wrong_count_rate", self.wrong_count_rate),
            ("wrong_dimensions_rate", self.wrong_dimensions_rate),
            ("non_finite_rate", self.non_finite_rate),
            ("shuffled_index_rate", self.shuffled_index_rate),
        ] {
            check_rate(name, rate)?;
        }
        Ok(())
    }

    /// A copy safe to show (`GET /_mock/config`): the API key is masked.
    fn redacted(&self) -> Self {
        let mut knobs = self.clone();
        if knobs.api_key.is_some() {
            knobs.api_key = Some("<redacted>".to_owned());
        }
        knobs
    }
}

/// Counters served at `GET /_mock/stats` (zeroed by `POST /_mock/reset`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Stats {
    /// Requests to the API routes (`/v1/embeddings`, `/v1/models`), whatever became of them.
    pub requests_total: u64,
    /// Answers sent, by status (`"200"`, `"429"`, …); faulty 200s included, timeouts not.
    pub responses_by_status: BTreeMap<String, u64>,
    /// Requests left hanging and dropped without an answer.
    pub timeouts: u64,
    /// Injected error statuses (from `error_rates`).
    pub errors_injected: u64,
    /// Injected 429s (from `rate_limit_rate`).
    pub rate_limited_injected: u64,
    /// 429s from the real limiter (`rpm_limit`, `tpm_limit`).
    pub rate_limited_by_limiter: u64,
    pub malformed: u64,
    pub wrong_count: u64,
    pub wrong_dimensions: u64,
    pub non_finite: u64,
    pub shuffled_index: u64,
    /// Correct 200 embedding answers.
    pub successes: u64,
    /// Inputs in correct 200 answers.
    pub inputs_embedded: u64,
    /// Prompt tokens in correct 200 answers.
    pub prompt_tokens: u64,
    /// Distinct texts (by sha256) returned in a correct answer.
    pub distinct_texts_embedded: u64,
    /// Most correct answers any one text was returned in.
    pub max_successes_per_text: u64,
    /// Texts returned in more than one correct answer (work a client paid for twice).
    pub texts_embedded_more_than_once: u64,
    /// Embedding requests being handled now.
    pub in_flight: u64,
    /// Most embedding requests handled at once.
    pub max_in_flight: u64,
}

#[derive(Default)]
struct Counters {
    stats: Stats,
    successes_per_text: HashMap<[u8; 32], u64>,
}

#[derive(Default)]
struct Windows {
    requests: VecDeque<Instant>,
    tokens: VecDeque<(Instant, u64)>,
}

impl Windows {
    fn expire(&mut self, now: Instant) {
        while self
            .requests
            .front()
            .is_some_and(|&at| now.duration_since(at) >= WINDOW)
        {
            self.requests.pop_front();
        }
        while self
            .tokens
            .front()
            .is_some_and(|&(at, _)| now.duration_since(at) >= WINDOW)
        {
            self.tokens.pop_front();
        }
    }

    fn tokens_used(&self) -> u64 {
        self.tokens.iter().map(|&(_, n)| n).sum()
    }
}

struct Mock {
    knobs: Mutex<Knobs>,
    dice: Dice,
    counters: Mutex<Counters>,
    windows: Mutex<Windows>,
    in_flight: AtomicU64,
    cancel: CancellationToken,
}

impl Mock {
    fn knobs(&self) -> Knobs {
        lock(&self.knobs).clone()
    }

    fn count(&self, update: impl FnOnce(&mut Stats)) {
        update(&mut lock(&self.counters).stats);
    }

    fn stats(&self) -> Stats {
        let mut stats = lock(&self.counters).stats.clone();
        stats.in_flight = self.in_flight.load(Ordering::SeqCst);
        stats
    }

    fn set_knobs(&self, knobs: Knobs) -> Result<(), String> {
        knobs.validate()?;
        let mut current = lock(&self.knobs);
        if current.seed != knobs.seed {
            self.dice.reseed(knobs.seed);
        }
        *current = knobs;
        Ok(())
    }

    fn reset_counters(&self) {
        let mut counters = lock(&self.counters);
        let max_in_flight = self.in_flight.load(Ordering::SeqCst);
        *counters = Counters::default();
        counters.stats.max_in_flight = max_in_flight;
        *lock(&self.windows) = Windows::default();
        self.dice.reseed(lock(&self.knobs).seed);
    }

    /// Admits a request of `tokens` under the real limiter, or says how long until it would be.
    fn admit(&self, knobs: &Knobs, tokens: u64) -> Result<(), Duration> {
        let now = Instant::now();
        let mut windows = lock(&self.windows);
        windows.expire(now);
        let mut wait = Duration::ZERO;
        if knobs.rpm_limit > 0 && windows.requests.len() as u64 >= knobs.rpm_limit {
            // The oldest requests leave the window first; enough of them must leave.
            let excess = windows.requests.len() as u64 - knobs.rpm_limit;
            if let Some(&at) = windows.requests.get(excess as usize) {
                wait = wait.max(WINDOW.saturating_sub(now.duration_since(at)));
            }
        }
        if knobs.tpm_limit > 0 {
            if tokens > knobs.tpm_limit {
                // Never admissible; tell the client to back off for a whole window.
                wait = wait.max(WINDOW);
            } else {
                let mut used = windows.tokens_used();
                for &(at, n) in &windows.tokens {
                    if used + tokens <= knobs.tpm_limit {
                        break;
                    }
                    used -= n;
                    wait = wait.max(WINDOW.saturating_sub(now.duration_since(at)));
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        windows.requests.push_back(now);
        windows.tokens.push_back((now, tokens));
        Ok(())
    }

    /// The `x-ratelimit-*` headers every answer carries.
    fn rate_headers(&self, knobs: &Knobs) -> Vec<(HeaderName, String)> {
        let now = Instant::now();
        let mut windows = lock(&self.windows);
        windows.expire(now);
        let rpm = if knobs.rpm_limit > 0 {
            knobs.rpm_limit
        } else {
            NOMINAL_RPM
        };
        let tpm = if knobs.tpm_limit > 0 {
            knobs.tpm_limit
        } else {
            NOMINAL_TPM
        };
        let until_free = |at: Option<Instant>| {
            at.map_or(Duration::ZERO, |at| {
                WINDOW.saturating_sub(now.duration_since(at))
            })
        };
        let reset_requests = until_free(windows.requests.front().copied());
        let reset_tokens = until_free(windows.tokens.front().map(|&(at, _)| at));
        let header = |name: &'static str| HeaderName::from_static(name);
        vec![
            (header("x-ratelimit-limit-requests"), rpm.to_string()),
            (
                header("x-ratelimit-remaining-requests"),
                rpm.saturating_sub(windows.requests.len() as u64)
                    .to_string(),
            ),
            (
                header("x-ratelimit-reset-requests"),
                format_reset(reset_requests),
            ),
            (header("x-ratelimit-limit-tokens"), tpm.to_string()),
            (
                header("x-ratelimit-remaining-tokens"),
                tpm.saturating_sub(windows.tokens_used()).to_string(),
            ),
            (
                header("x-ratelimit-reset-tokens"),
                format_reset(reset_tokens),
            ),
        ]
    }

    fn draw_fault(&self, knobs: &Knobs) -> Fault {
        let draw = self.dice.draw();
        let mut threshold = 0.0;
        let mut hit = |rate: f64| {
            threshold += rate;
            draw < threshold
        };
        if hit(knobs.timeout_rate) {
            return Fault::Timeout;
        }
        for (&status, &rate) in &knobs.error_rates {
            if hit(rate) {
                return Fault::Status(status);
            }
        }
        if hit(knobs.rate_limit_rate) {
            return Fault::RateLimit;
        }
        if hit(knobs.malformed_rate) {
            return Fault::Malformed;
        }
        if hit(knobs.wrong_count_rate) {
            return Fault::WrongCount;
        }
        if hit(knobs.wrong_dimensions_rate) {
            return Fault::WrongDimensions;
        }
        if hit(knobs.non_finite_rate) {
            return Fault::NonFinite;
        }
        if hit(knobs.shuffled_index_rate) {
            return Fault::ShuffledIndex;
        }
        Fault::None
    }

    fn record_success(&self, inputs: &[String], tokens: u64) {
        let hashes: HashSet<[u8; 32]> = inputs
            .iter()
            .map(|text| Sha256::digest(text.as_bytes()).into())
            .collect();
        let mut counters = lock(&self.counters);
        let Counters {
            stats,
            successes_per_text,
        } = &mut *counters;
        stats.successes += 1;
        stats.inputs_embedded += inputs.len() as u64;
        stats.prompt_tokens += tokens;
        for hash in hashes {
            let seen = successes_per_text.entry(hash).or_insert(0);
            *seen += 1;
            match *seen {
                1 => stats.distinct_texts_embedded += 1,
                2 => stats.texts_embedded_more_than_once += 1,
                _ => {}
            }
            stats.max_successes_per_text = stats.max_successes_per_text.max(*seen);
        }
    }

    /// Adds the rate-limit headers and counts the answer's status.
    fn finish(&self, knobs: &Knobs, mut response: Response) -> Response {
        for (name, value) in self.rate_headers(knobs) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        let status = response.status().as_u16().to_string();
        self.count(|s| *s.responses_by_status.entry(status).or_insert(0) += 1);
        response
    }

    /// The configured latency plus jitter; cut short when the mock stops.
    async fn delay(&self, knobs: &Knobs) {
        let jitter = self.dice.up_to(knobs.latency_jitter_ms);
        let total = Duration::from_millis(knobs.latency_ms.saturating_add(jitter));
        sleep_unless_cancelled(total, &self.cancel).await;
    }
}

impl Control for Mock {
    fn stats_json(&self) -> Value {
        serde_json::to_value(self.stats()).unwrap_or(Value::Null)
    }

    fn knobs_json(&self) -> Value {
        serde_json::to_value(self.knobs().redacted()).unwrap_or(Value::Null)
    }

    fn configure(&self, patch: &Value) -> Result<Value, String> {
        let knobs = merge_knobs(&self.knobs(), patch)?;
        self.set_knobs(knobs.clone())?;
        serde_json::to_value(knobs.redacted()).map_err(|e| e.to_string())
    }

    fn reset(&self) {
        self.reset_counters();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Timeout,
    Status(u16),
    RateLimit,
    Malformed,
    WrongCount,
    WrongDimensions,
    NonFinite,
    ShuffledIndex,
}

/// Counts an embedding request in flight for its lifetime.
struct InFlight<'a>(&'a Mock);

impl<'a> InFlight<'a> {
    fn enter(mock: &'a Mock) -> Self {
        let now = mock.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        mock.count(|s| {
            s.requests_total += 1;
            s.max_in_flight = s.max_in_flight.max(now);
        });
        Self(mock)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A reset interval as OpenAI writes it: `20ms`, `1s`, `6m0s`.
fn format_reset(wait: Duration) -> String {
    let ms = wait.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        if secs < 60 {
            format!("{secs}s")
        } else {
            format!("{}m{}s", secs / 60, secs % 60)
        }
    }
}

fn error_response(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    let body = wire::ErrorBody {
        error: wire::ErrorDetail {
            message: message.to_owned(),
            kind: kind.to_owned(),
            code: code.map(str::to_owned),
        },
    };
    (status, Json(body)).into_response()
}

fn rate_limited(wait: Duration, message: &str) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "requests",
        Some("rate_limit_exceeded"),
        message,
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    headers.insert(
        HeaderName::from_static("retry-after-ms"),
        HeaderValue::from(wait.as_millis() as u64),
    );
    response
}

fn injected_status(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    error_response(status, kind, None, "injected failure (navigator mock)")
}

fn json_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The request body: the wire's [`wire::EmbeddingRequest`], except that `input` may also be a
/// single string.
#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    model: Option<String>,
    input: Input,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

struct Valid {
    model: String,
    inputs: Vec<String>,
    dimensions: usize,
}

fn validate(body: &[u8], knobs: &Knobs) -> Result<Valid, String> {
    let request: Request = serde_json::from_slice(body).map_err(|e| {
        format!("could not parse the request body as an embeddings request (input must be a string or an array of strings): {e}")
    })?;
    let model = request
        .model
        .filter(|m| !m.is_empty())
        .ok_or("you must provide a model parameter")?;
    if let Some(format) = request.encoding_format.as_deref()
        && format != "float"
    {
        return Err(format!(
            "encoding_format `{format}` is not supported by the mock (only `float`)"
        ));
    }
    let inputs = match request.input {
        Input::One(text) => vec![text],
        Input::Many(texts) => texts,
    };
    if inputs.is_empty() {
        return Err("'$.input' is invalid: the input list must not be empty".to_owned());
    }
    if inputs.len() > MAX_INPUTS {
        return Err(format!(
            "'$.input' is invalid: at most {MAX_INPUTS} inputs per request, got {}",
            inputs.len()
        ));
    }
    if let Some(index) = inputs.iter().position(String::is_empty) {
        return Err(format!(
            "'$.input[{index}]' is invalid: inputs must be non-empty strings"
        ));
    }
    let dimensions = match request.dimensions {
        None => knobs.dimensions,
        Some(d) if d >= 1 && d <= MAX_DIMENSIONS as u64 => d as usize,
        Some(d) => {
            return Err(format!(
                "dimensions must be in 1..={MAX_DIMENSIONS}, got {d}"
            ));
        }
    };
    Ok(Valid {
        model,
        inputs,
        dimensions,
    })
}

/// What `usage.prompt_tokens` reports: whitespace-separated words, plus one per input.
pub fn prompt_tokens(inputs: &[String]) -> u64 {
    inputs
        .iter()
        .map(|text| text.split_whitespace().count() as u64 + 1)
        .sum()
}

async fn embeddings(
    State(mock): State<Arc<Mock>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = InFlight::enter(&mock);
    let knobs = mock.knobs();
    mock.delay(&knobs).await;
    if let Some(key) = &knobs.api_key
        && !bearer_matches(&headers, key)
    {
        let response = error_response(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided.",
        );
        return mock.finish(&knobs, response);
    }
    let request = match validate(&body, &knobs) {
        Ok(request) => request,
        Err(message) => {
            let response = error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                &message,
            );
            return mock.finish(&knobs, response);
        }
    };
    let tokens = prompt_tokens(&request.inputs);
    if let Err(wait) = mock.admit(&knobs, tokens) {
        mock.count(|s| s.rate_limited_by_limiter += 1);
        let response = rate_limited(wait, "Rate limit reached (navigator mock limiter).");
        return mock.finish(&knobs, response);
    }
    let fault = mock.draw_fault(&knobs);
    let response = match fault {
        Fault::Timeout => {
            mock.count(|s| s.timeouts += 1);
            sleep_unless_cancelled(Duration::from_secs(knobs.hang_secs), &mock.cancel).await;
            conn.drop_connection();
            // Never delivered: the connection fails before hyper can write it.
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        Fault::Status(status) => {
            mock.count(|s| s.errors_injected += 1);
            injected_status(status)
        }
        Fault::RateLimit => {
            mock.count(|s| s.rate_limited_injected += 1);
            rate_limited(
                Duration::from_secs(knobs.retry_after_secs),
                "Rate limit reached (injected by navigator mock).",
            )
        }
        _ => embedding_answer(&mock, &request, tokens, fault),
    };
    mock.finish(&knobs, response)
}

fn embedding_answer(mock: &Mock, request: &Valid, tokens: u64, fault: Fault) -> Response {
    let mut data: Vec<wire::EmbeddingData> = request
        .inputs
        .iter()
        .enumerate()
        .map(|(index, text)| wire::EmbeddingData {
            object: "embedding".to_owned(),
            index,
            embedding: HashEmbedder::embedding_with_dimensions(text, request.dimensions),
        })
        .collect();
    match fault {
        Fault::WrongCount => {
            mock.count(|s| s.wrong_count += 1);
            data.pop();
        }
        Fault::WrongDimensions => {
            mock.count(|s| s.wrong_dimensions += 1);
            if let Some(last) = data.last_mut() {
                last.embedding.pop();
            }
        }
        Fault::NonFinite => {
            mock.count(|s| s.non_finite += 1);
            if let Some(component) = data.last_mut().and_then(|d| d.embedding.first_mut()) {
                *component = NON_FINITE_MARKER;
            }
        }
        Fault::ShuffledIndex => {
            mock.count(|s| s.shuffled_index += 1);
            data.reverse();
            // Out of order alone is legal (clients sort by index); a duplicated index is not.
            // With one input the index points past the end instead.
            if data.len() >= 2 {
                data[1].index = data[0].index;
            } else {
                data[0].index = 1;
            }
        }
        Fault::Malformed => mock.count(|s| s.malformed += 1),
        Fault::None | Fault::Timeout | Fault::Status(_) | Fault::RateLimit => {}
    }
    let answer = wire::EmbeddingResponse {
        object: "list".to_owned(),
        data,
        model: request.model.clone(),
        usage: Some(wire::Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        }),
    };
    let mut body = match serde_json::to_string(&answer) {
        Ok(body) => body,
        Err(e) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                None,
                &format!("mock could not serialise its answer: {e}"),
            );
        }
    };
    match fault {
        Fault::Malformed => {
            // Cut off mid-way, as a proxy dropping the rest of the body would: not JSON.
            body.truncate(body.floor_char_boundary(body.len() / 2));
            body = body.trim_end_matches(['}', ']']).to_owned();
        }
        Fault::NonFinite => {
            let marker = serde_json::to_string(&NON_FINITE_MARKER).unwrap_or_default();
            body = body.replacen(&marker, NON_FINITE_LITERAL, 1);
        }
        Fault::None => mock.record_success(&request.inputs, tokens),
        _ => {}
    }
    json_response(body)
}

async fn models(State(mock): State<Arc<Mock>>, headers: HeaderMap) -> Response {
    mock.count(|s| s.requests_total += 1);
    let knobs = mock.knobs();
    if let Some(key) = &knobs.api_key
        && !bearer_matches(&headers, key)
    {
        let response = error_response(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided.",
        );
        return mock.finish(&knobs, response);
    }
    let model =
        |id: &str| json!({"id": id, "object": "model", "created": 0, "owned_by": "navigator-mock"});
    let body = json!({
        "object": "list",
        "data": [model("text-embedding-3-small"), model("text-embedding-3-large"), model("text-embedding-ada-002")],
    });
    mock.finish(&knobs, Json(body).into_response())
}

/// A running mock OpenAI API.
pub struct MockOpenAi {
    running: Running,
    mock: Arc<Mock>,
}

impl MockOpenAi {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr()
    }

    /// `http://{addr}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `http://{addr}/v1`: the `base_url` an OpenAI client is configured with.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.url())
    }

    pub fn stats(&self) -> Stats {
        self.mock.stats()
    }

    pub fn knobs(&self) -> Knobs {
        self.mock.knobs()
    }

    /// Replaces the knobs at once (what `POST /_mock/config` does with a full object).
    pub fn set_knobs(&self, knobs: Knobs) -> anyhow::Result<()> {
        self.mock.set_knobs(knobs).map_err(anyhow::Error::msg)
    }

    /// Zeroes the counters and the limiter window and re-seeds the RNG (`POST /_mock/reset`).
    pub fn reset(&self) {
        self.mock.reset_counters();
    }

    /// Stops gracefully: hanging requests are cut short, open ones finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.running.stop().await
    }
}

/// Serves the mock on `listener` in the background.
pub async fn serve(listener: TcpListener, knobs: Knobs) -> anyhow::Result<MockOpenAi> {
    knobs.validate().map_err(anyhow::Error::msg)?;
    let cancel = CancellationToken::new();
    let mock = Arc::new(Mock {
        dice: Dice::new(knobs.seed),
        knobs: Mutex::new(knobs),
        counters: Mutex::default(),
        windows: Mutex::default(),
        in_flight: AtomicU64::new(0),
        cancel: cancel.clone(),
    });
    let router = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .route("/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .merge(common::control_routes::<Mock>())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(mock.clone());
    let running = Running::spawn(listener, router, cancel)?;
    Ok(MockOpenAi { running, mock })
}

/// `navigator mock openai --listen ADDR`: binds, logs the address, serves until `shutdown`
/// completes, then stops gracefully and logs the final counters.
pub async fn run(
    args: Args,
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the mock OpenAI API to {listen}"))?;
    let mock = serve(listener, args.into()).await?;
    tracing::info!(addr = %mock.addr(), base_url = %mock.base_url(), "mock OpenAI embeddings API listening");
    let state = mock.mock.clone();
    mock.running.run_until(shutdown).await?;
    tracing::info!(stats = %state.stats_json(), "mock OpenAI embeddings API stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_intervals_are_written_as_openai_does() {
        assert_eq!(format_reset(Duration::ZERO), "0ms");
        assert_eq!(format_reset(Duration::from_millis(20)), "20ms");
        assert_eq!(format_reset(Duration::from_millis(1000)), "1s");
        assert_eq!(format_reset(Duration::from_millis(1500)), "2s");
        assert_eq!(format_reset(Duration::from_secs(360)), "6m0s");
    }

    #[test]
    fn fail_flags_parse_status_and_rate() {
        assert_eq!(parse_fail("500=0.2"), Ok((500, 0.2)));
        assert!(parse_fail("200=0.5").is_err());
        assert!(parse_fail("500=1.5").is_err());
        assert!(parse_fail("500").is_err());
    }

    #[test]
    fn the_non_finite_marker_is_replaced_by_a_literal_that_decodes_to_infinity() {
        let marker = serde_json::to_string(&NON_FINITE_MARKER).unwrap();
        assert_ne!(marker, NON_FINITE_LITERAL);
        let decoded: Vec<f32> = serde_json::from_str(&format!("[{NON_FINITE_LITERAL}]")).unwrap();
        assert!(!decoded[0].is_finite());
    }

    #[test]
    fn the_limiter_reports_the_wait_until_the_oldest_request_leaves() {
        let mock = Mock {
            knobs: Mutex::default(),
            dice: Dice::new(1),
            counters: Mutex::default(),
            windows: Mutex::default(),
            in_flight: AtomicU64::new(0),
            cancel: CancellationToken::new(),
        };
        let knobs = Knobs {
            rpm_limit: 2,
            ..Knobs::default()
        };
        assert_eq!(mock.admit(&knobs, 1), Ok(()));
        assert_eq!(mock.admit(&knobs, 1), Ok(()));
        let wait = mock.admit(&knobs, 1).unwrap_err();
        assert!(wait > Duration::from_secs(59) && wait <= WINDOW, "{wait:?}");
        let knobs = Knobs {
            tpm_limit: 10,
            ..Knobs::default()
        };
        *lock(&mock.windows) = Windows::default();
        assert_eq!(mock.admit(&knobs, 6), Ok(()));
        assert!(mock.admit(&knobs, 6).is_err());
        assert_eq!(mock.admit(&knobs, 4), Ok(()));
    }
}
