//! A mock LlamaParse-compatible parsing API (`navigator mock llamaparse`).
//!
//! Serves the wire contract of [`navigator_remote::llamaparse`]: `POST /api/v1/parsing/upload`
//! (multipart `file`, `result_type`, optional `webhook_url` and `webhook_secret`) answers
//! `{"id", "status": "PENDING"}`; after `latency_ms` the document is parsed for real with the
//! built-in parsers ([`navigator_parse::sniff`] then [`navigator_parse::parse`], on the blocking
//! pool), giving pages `{"page", "md"}` or a job in `ERROR` whose `error_code` is the
//! [`navigator_parse::ParseError`]'s code (`corrupt_document`, `no_text_layer`, …).
//! `GET /api/v1/parsing/job/{id}` answers the job, `GET /api/v1/parsing/job/{id}/result/json`
//! the pages (404 for an unknown id, 400 until the job succeeded).
//!
//! When the upload named a `webhook_url`, the finished job is POSTed there as a
//! [`wire::WebhookBody`] with the [`navigator_remote::webhook`] headers: a fresh delivery id,
//! the timestamp, and (when a `webhook_secret` was given) the signature over
//! `"{delivery_id}.{timestamp}.{body}"` ([`webhook::sign`]). One attempt per
//! delivery; the client polls for anything lost.
//!
//! Faults: `fail_rate` (500) and `rate_limit_rate` (429 + `retry-after`) apply to every API call
//! (one draw, cumulative); `parse_error_rate` (drawn at upload) forces `ERROR`;
//! `undelivered_rate` skips the webhook and `duplicate_rate` sends the same signed request twice
//! (both drawn at delivery).

use crate::common::{
    self, Control, DEFAULT_SEED, Dice, Running, bearer_matches, check_rate, lock, merge_knobs,
    sleep_unless_cancelled, unix_now,
};
use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use navigator_parse::ParseError;
use navigator_remote::llamaparse::wire;
use navigator_remote::webhook;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Default `--retry-after-secs`.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 1;
/// Default `--parse-error-code`: the `error_code` of a forced parse failure.
pub const DEFAULT_PARSE_ERROR_CODE: &str = "corrupt_document";
/// Timeout of one webhook delivery.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

const MAX_UPLOAD_BYTES: usize = 512 * 1024 * 1024;

/// Command-line flags of `navigator mock llamaparse` (all faults off by default).
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Require `Authorization: Bearer KEY` on API calls; a missing or wrong key gets 401.
    #[arg(
        long,
        env = "NAVIGATOR_MOCK_LLAMAPARSE_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Seed of the RNG behind fault draws.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// How long a job stays PENDING before it is parsed.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Probability that a job ends in ERROR whatever the document.
    #[arg(long, default_value_t = 0.0, value_parser = common::parse_rate)]
    pub parse_error_rate: f64,
    /// `error_code` of forced parse failures.
    #[arg(long, default_value = DEFAULT_PARSE_ERROR_CODE)]
    pub parse_error_code: String,
    /// Probability that a finished job's webhook is not sent (the client must poll).
    #[arg(long, default_value_t = 0.0, value_parser = common::parse_rate)]
    pub undelivered_rate: f64,
    /// Probability that a webhook is delivered twice (same signed request, same delivery id).
    #[arg(long, default_value_t = 0.0, value_parser = common::parse_rate)]
    pub duplicate_rate: f64,
    /// Delay between a job finishing and its webhook.
    #[arg(long, default_value_t = 0)]
    pub webhook_delay_ms: u64,
    /// Probability of a 500 on any API call.
    #[arg(long, default_value_t = 0.0, value_parser = common::parse_rate)]
    pub fail_rate: f64,
    /// Probability of a 429 with `retry-after: --retry-after-secs` on any API call.
    #[arg(long, default_value_t = 0.0, value_parser = common::parse_rate)]
    pub rate_limit_rate: f64,
    /// `retry-after` of injected 429s, in seconds.
    #[arg(long, default_value_t = DEFAULT_RETRY_AFTER_SECS)]
    pub retry_after_secs: u64,
}

/// The mock's behaviour; `POST /_mock/config` takes any subset of these fields as JSON.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    pub api_key: Option<String>,
    pub seed: u64,
    pub latency_ms: u64,
    pub parse_error_rate: f64,
    pub parse_error_code: String,
    pub undelivered_rate: f64,
    pub duplicate_rate: f64,
    pub webhook_delay_ms: u64,
    pub fail_rate: f64,
    pub rate_limit_rate: f64,
    pub retry_after_secs: u64,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            api_key: None,
            seed: DEFAULT_SEED,
            latency_ms: 0,
            parse_error_rate: 0.0,
            parse_error_code: DEFAULT_PARSE_ERROR_CODE.to_owned(),
            undelivered_rate: 0.0,
            duplicate_rate: 0.0,
            webhook_delay_ms: 0,
            fail_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
        }
    }
}

impl From<Args> for Knobs {
    fn from(args: Args) -> Self {
        Self {
            api_key: args.api_key,
            seed: args.seed,
            latency_ms: args.latency_ms,
            parse_error_rate: args.parse_error_rate,
            parse_error_code: args.parse_error_code,
            undelivered_rate: args.undelivered_rate,
            duplicate_rate: args.duplicate_rate,
            webhook_delay_ms: args.webhook_delay_ms,
            fail_rate: args.fail_rate,
            rate_limit_rate: args.rate_limit_rate,
            retry_after_secs: args.retry_after_secs,
        }
    }
}

impl Knobs {
    /// Rates are probabilities; the forced error code is non-empty.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("parse_error_rate", self.parse_error_rate),
            ("undelivered_rate", self.undelivered_rate),
            ("duplicate_rate", self.duplicate_rate),
            ("fail_rate", self.fail_rate),
            ("rate_limit_rate", self.rate_limit_rate),
        ] {
            check_rate(name, rate)?;
        }
        if self.parse_error_code.trim().is_empty() {
            return Err("parse_error_code must not be empty".to_owned());
        }
        Ok(())
    }

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
    /// Calls to the API routes (upload, job, result), whatever became of them.
    pub requests_total: u64,
    /// API answers by status (`"200"`, `"429"`, …).
    pub responses_by_status: BTreeMap<String, u64>,
    /// Injected 500s (`fail_rate`).
    pub errors_injected: u64,
    /// Injected 429s (`rate_limit_rate`).
    pub rate_limited_injected: u64,
    /// Jobs created (accepted uploads).
    pub uploads: u64,
    /// Calls to `GET /api/v1/parsing/job/{id}` (faulted ones included).
    pub job_polls: u64,
    /// Calls to `GET /api/v1/parsing/job/{id}/result/json` (faulted ones included).
    pub result_fetches: u64,
    /// Jobs created since the last reset, by current status (`PENDING`, `SUCCESS`, `ERROR`).
    pub jobs_by_status: BTreeMap<String, u64>,
    /// Jobs forced into ERROR by `parse_error_rate`.
    pub parse_errors_injected: u64,
    /// Pages of jobs that succeeded.
    pub pages_parsed: u64,
    /// Webhook requests sent (duplicates included).
    pub webhooks_sent: u64,
    /// Statuses the webhook receiver answered (`"error"` when no answer came).
    pub webhook_responses_by_status: BTreeMap<String, u64>,
    /// Webhooks not sent because of `undelivered_rate`.
    pub webhooks_skipped: u64,
    /// Second copies sent because of `duplicate_rate`.
    pub duplicates_sent: u64,
}

struct Job {
    status: &'static str,
    error_code: Option<String>,
    pages: Vec<wire::Page>,
    /// Reset generation the job was created in (only current ones are in `jobs_by_status`).
    epoch: u64,
}

struct Mock {
    knobs: Mutex<Knobs>,
    dice: Dice,
    stats: Mutex<Stats>,
    jobs: Mutex<HashMap<String, Job>>,
    epoch: AtomicU64,
    cancel: CancellationToken,
    http: reqwest::Client,
}

impl Mock {
    fn knobs(&self) -> Knobs {
        lock(&self.knobs).clone()
    }

    fn count(&self, update: impl FnOnce(&mut Stats)) {
        update(&mut lock(&self.stats));
    }

    fn stats(&self) -> Stats {
        let mut stats = lock(&self.stats).clone();
        let epoch = self.epoch.load(Ordering::SeqCst);
        for job in lock(&self.jobs).values().filter(|job| job.epoch == epoch) {
            *stats
                .jobs_by_status
                .entry(job.status.to_owned())
                .or_insert(0) += 1;
        }
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
        *lock(&self.stats) = Stats::default();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.dice.reseed(lock(&self.knobs).seed);
    }

    fn finish(&self, response: Response) -> Response {
        let status = response.status().as_u16().to_string();
        self.count(|s| *s.responses_by_status.entry(status).or_insert(0) += 1);
        response
    }

    /// Authentication, then the per-call fault draw. `Some` is the answer to send instead.
    fn gate(&self, knobs: &Knobs, headers: &HeaderMap) -> Option<Response> {
        if let Some(key) = &knobs.api_key
            && !bearer_matches(headers, key)
        {
            return Some(detail(
                StatusCode::UNAUTHORIZED,
                "Invalid authentication token",
            ));
        }
        let draw = self.dice.draw();
        if draw < knobs.fail_rate {
            self.count(|s| s.errors_injected += 1);
            return Some(detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "injected failure (navigator mock)",
            ));
        }
        if draw < knobs.fail_rate + knobs.rate_limit_rate {
            self.count(|s| s.rate_limited_injected += 1);
            let mut response = detail(
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit exceeded (injected by navigator mock)",
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(knobs.retry_after_secs),
            );
            return Some(response);
        }
        None
    }

    fn job_object(&self, id: &str) -> Option<wire::Job> {
        lock(&self.jobs).get(id).map(|job| wire::Job {
            id: id.to_owned(),
            status: job.status.to_owned(),
            error_code: job.error_code.clone(),
        })
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

/// A FastAPI-style error body, as LlamaCloud sends.
fn detail(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"detail": message}))).into_response()
}

struct Upload {
    file: Bytes,
    text_too: bool,
    webhook: Option<Hook>,
}

#[derive(Clone)]
struct Hook {
    url: reqwest::Url,
    secret: Option<String>,
}

async fn read_upload(mut multipart: Multipart) -> Result<Upload, String> {
    let mut file = None;
    let mut result_type = None;
    let mut webhook_url = None;
    let mut webhook_secret = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| format!("unreadable multipart body: {e}"))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                file = Some(
                    field
                        .bytes()
                        .await
                        .map_err(|e| format!("unreadable file field: {e}"))?,
                );
            }
            "result_type" | "webhook_url" | "webhook_secret" => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| format!("unreadable {name} field: {e}"))?;
                let slot = match name.as_str() {
                    "result_type" => &mut result_type,
                    "webhook_url" => &mut webhook_url,
                    _ => &mut webhook_secret,
                };
                *slot = Some(text);
            }
            // Other LlamaParse options are accepted and ignored.
            _ => {
                field
                    .bytes()
                    .await
                    .map_err(|e| format!("unreadable {name} field: {e}"))?;
            }
        }
    }
    let file = file.ok_or("the multipart field `file` is required")?;
    let text_too = match result_type.as_deref().map(str::trim) {
        None | Some("" | "markdown" | "md") => false,
        Some("text") => true,
        Some(other) => return Err(format!("unsupported result_type `{other}`")),
    };
    let webhook = match webhook_url.map(|u| u.trim().to_owned()) {
        None => None,
        Some(url) if url.is_empty() => None,
        Some(url) => {
            let url = reqwest::Url::parse(&url).map_err(|_| "webhook_url is not a URL")?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err("webhook_url must be http or https".to_owned());
            }
            Some(Hook {
                url,
                secret: webhook_secret.filter(|s| !s.is_empty()),
            })
        }
    };
    Ok(Upload {
        file,
        text_too,
        webhook,
    })
}

async fn upload(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    mock.count(|s| s.requests_total += 1);
    let knobs = mock.knobs();
    if let Some(response) = mock.gate(&knobs, &headers) {
        return mock.finish(response);
    }
    let upload = match multipart {
        Ok(multipart) => read_upload(multipart).await,
        Err(rejection) => Err(format!("expected a multipart/form-data body: {rejection}")),
    };
    let upload = match upload {
        Ok(upload) => upload,
        Err(message) => return mock.finish(detail(StatusCode::BAD_REQUEST, &message)),
    };
    let id = uuid::Uuid::now_v7().to_string();
    let forced_error = mock.dice.draw() < knobs.parse_error_rate;
    lock(&mock.jobs).insert(
        id.clone(),
        Job {
            status: wire::STATUS_PENDING,
            error_code: None,
            pages: Vec::new(),
            epoch: mock.epoch.load(Ordering::SeqCst),
        },
    );
    mock.count(|s| s.uploads += 1);
    tokio::spawn(run_job(mock.clone(), id.clone(), upload, forced_error));
    let job = wire::Job {
        id,
        status: wire::STATUS_PENDING.to_owned(),
        error_code: None,
    };
    mock.finish(Json(job).into_response())
}

/// Parses `bytes` with the built-in parsers; `Err` is the error code.
async fn parse_document(bytes: Bytes) -> Result<Vec<navigator_parse::ParsedPage>, String> {
    let parsed = tokio::task::spawn_blocking(move || {
        let media = navigator_parse::sniff(&bytes).ok_or(ParseError::Unsupported)?;
        navigator_parse::parse(media, &bytes)
    })
    .await;
    match parsed {
        Ok(Ok(document)) => Ok(document.pages),
        Ok(Err(e)) => Err(e.code().as_str().to_owned()),
        Err(_) => Err(ParseError::Crashed.code().as_str().to_owned()),
    }
}

async fn run_job(mock: Arc<Mock>, id: String, upload: Upload, forced_error: bool) {
    let knobs = mock.knobs();
    if !sleep_unless_cancelled(Duration::from_millis(knobs.latency_ms), &mock.cancel).await {
        return;
    }
    let outcome = if forced_error {
        mock.count(|s| s.parse_errors_injected += 1);
        Err(knobs.parse_error_code.clone())
    } else {
        parse_document(upload.file).await
    };
    let body = match outcome {
        Ok(pages) => {
            let pages: Vec<wire::Page> = pages
                .into_iter()
                .map(|page| wire::Page {
                    page: page.number,
                    text: upload.text_too.then(|| page.text.clone()),
                    md: page.text,
                })
                .collect();
            mock.count(|s| s.pages_parsed += pages.len() as u64);
            wire::WebhookBody {
                id: id.clone(),
                status: wire::STATUS_SUCCESS.to_owned(),
                pages,
                error_code: None,
            }
        }
        Err(code) => wire::WebhookBody {
            id: id.clone(),
            status: wire::STATUS_ERROR.to_owned(),
            pages: Vec::new(),
            error_code: Some(code),
        },
    };
    if let Some(job) = lock(&mock.jobs).get_mut(&id) {
        job.status = if body.status == wire::STATUS_SUCCESS {
            wire::STATUS_SUCCESS
        } else {
            wire::STATUS_ERROR
        };
        job.error_code = body.error_code.clone();
        job.pages = body.pages.clone();
    }
    if let Some(hook) = upload.webhook {
        deliver(&mock, hook, &body).await;
    }
}

async fn deliver(mock: &Mock, hook: Hook, body: &wire::WebhookBody) {
    let knobs = mock.knobs();
    if !sleep_unless_cancelled(Duration::from_millis(knobs.webhook_delay_ms), &mock.cancel).await {
        return;
    }
    // Both drawn every time, so one knob does not shift the other's sequence.
    let skip = mock.dice.draw() < knobs.undelivered_rate;
    let duplicate = mock.dice.draw() < knobs.duplicate_rate;
    if skip {
        mock.count(|s| s.webhooks_skipped += 1);
        return;
    }
    let bytes = match serde_json::to_vec(body) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "mock could not serialise a webhook body");
            return;
        }
    };
    let delivery_id = uuid::Uuid::now_v7().to_string();
    let timestamp = unix_now();
    let signature = hook
        .secret
        .as_deref()
        .map(|secret| webhook::sign(secret, &delivery_id, timestamp, &bytes));
    for copy in 0..if duplicate { 2 } else { 1 } {
        let mut request = mock
            .http
            .post(hook.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(webhook::HEADER_ID, &delivery_id)
            .header(webhook::HEADER_TIMESTAMP, timestamp.to_string());
        if let Some(signature) = &signature {
            request = request.header(webhook::HEADER_SIGNATURE, signature);
        }
        let sent = tokio::select! {
            sent = request.body(bytes.clone()).send() => sent,
            () = mock.cancel.cancelled() => return,
        };
        let status = match sent {
            Ok(response) => response.status().as_u16().to_string(),
            Err(e) => {
                tracing::debug!(error = %e, "mock webhook delivery failed");
                "error".to_owned()
            }
        };
        mock.count(|s| {
            s.webhooks_sent += 1;
            if copy > 0 {
                s.duplicates_sent += 1;
            }
            *s.webhook_responses_by_status.entry(status).or_insert(0) += 1;
        });
    }
}

async fn job(
    State(mock): State<Arc<Mock>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    mock.count(|s| {
        s.requests_total += 1;
        s.job_polls += 1;
    });
    let knobs = mock.knobs();
    if let Some(response) = mock.gate(&knobs, &headers) {
        return mock.finish(response);
    }
    let response = match mock.job_object(&id) {
        Some(job) => Json(job).into_response(),
        None => detail(StatusCode::NOT_FOUND, "job not found"),
    };
    mock.finish(response)
}

async fn result(
    State(mock): State<Arc<Mock>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    mock.count(|s| {
        s.requests_total += 1;
        s.result_fetches += 1;
    });
    let knobs = mock.knobs();
    if let Some(response) = mock.gate(&knobs, &headers) {
        return mock.finish(response);
    }
    let response = match lock(&mock.jobs).get(&id) {
        None => detail(StatusCode::NOT_FOUND, "job not found"),
        Some(job) if job.status == wire::STATUS_SUCCESS => Json(wire::JsonResult {
            pages: job.pages.clone(),
        })
        .into_response(),
        Some(job) => detail(
            StatusCode::BAD_REQUEST,
            &format!("job is {}, no result available", job.status),
        ),
    };
    mock.finish(response)
}

/// A running mock LlamaParse API.
pub struct MockLlamaParse {
    running: Running,
    mock: Arc<Mock>,
}

impl MockLlamaParse {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr()
    }

    /// `http://{addr}`: the `base_url` a LlamaParse client is configured with.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
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

    /// Zeroes the counters and re-seeds the RNG (`POST /_mock/reset`); jobs stay readable.
    pub fn reset(&self) {
        self.mock.reset_counters();
    }

    /// Stops gracefully; pending jobs and webhooks are abandoned.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.running.stop().await
    }
}

/// Serves the mock on `listener` in the background.
pub async fn serve(listener: TcpListener, knobs: Knobs) -> anyhow::Result<MockLlamaParse> {
    knobs.validate().map_err(anyhow::Error::msg)?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(WEBHOOK_TIMEOUT)
        .build()
        .context("building the webhook HTTP client")?;
    let cancel = CancellationToken::new();
    let mock = Arc::new(Mock {
        dice: Dice::new(knobs.seed),
        knobs: Mutex::new(knobs),
        stats: Mutex::default(),
        jobs: Mutex::default(),
        epoch: AtomicU64::new(0),
        cancel: cancel.clone(),
        http,
    });
    let router = Router::new()
        .route(wire::UPLOAD_PATH, post(upload))
        .route(wire::JOB_PATH, get(job))
        .route(wire::RESULT_PATH, get(result))
        .merge(common::control_routes::<Mock>())
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(mock.clone());
    let running = Running::spawn(listener, router, cancel)?;
    Ok(MockLlamaParse { running, mock })
}

/// `navigator mock llamaparse --listen ADDR`: binds, logs the address, serves until `shutdown`
/// completes, then stops gracefully and logs the final counters.
pub async fn run(
    args: Args,
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the mock LlamaParse API to {listen}"))?;
    let mock = serve(listener, args.into()).await?;
    tracing::info!(addr = %mock.addr(), base_url = %mock.url(), "mock LlamaParse API listening");
    let state = mock.mock.clone();
    mock.running.run_until(shutdown).await?;
    tracing::info!(stats = %state.stats_json(), "mock LlamaParse API stopped");
    Ok(())
}
