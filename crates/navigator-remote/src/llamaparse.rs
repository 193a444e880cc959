//! A [`crate::parser::RemoteParser`] for LlamaParse (LlamaCloud) and compatible services.
//!
//! Wire contract (LlamaCloud's v1 parsing API; what [`wire`] describes and what
//! `navigator mock llamaparse` serves), all with `Authorization: Bearer {api_key}`:
//! - `POST {base_url}/api/v1/parsing/upload`, multipart: `file` (named `document.{ext}`),
//!   `result_type=markdown`, and when callbacks are possible `webhook_url` plus Navigator's
//!   extension field `webhook_secret` (services that do not sign callbacks ignore it; their
//!   results then arrive by polling). Answer: `{"id", "status"}`. The upload creates a billed
//!   job, so it is retried in-call only after a 429 or a connect error
//!   ([`Idempotency::CreatesResource`]); polls and result fetches retry normally.
//! - `GET {base_url}/api/v1/parsing/job/{id}` → `{"id", "status": "PENDING" | "SUCCESS" |
//!   "ERROR" | "CANCELED", "error_code"?}`.
//! - `GET {base_url}/api/v1/parsing/job/{id}/result/json` → `{"pages": [{"page", "md",
//!   "text"?}]}` (page numbers 1-based).
//! - The callback (see [`crate::webhook`] for the headers) is a [`wire::WebhookBody`]: the job
//!   object with its pages.

use crate::openai::{http_client, validate_base_url};
use crate::parser::{Delivery, Metered, RemoteParse, RemoteParser, Submission};
use crate::resilience::{
    CallStats, DEFAULT_MAX_BODY_BYTES, Idempotency, RemoteError, Resilience, ResilienceSettings,
    SettingsError,
};
use navigator_domain::MediaType;
use navigator_parse::ParsedPage;
use std::time::Duration;

/// The `service` metrics label and [`RemoteParser::name`].
pub const SERVICE: &str = "llamaparse";
/// Most Markdown accepted for one document's pages, summed.
pub const MAX_RESULT_TEXT_BYTES: usize = 50 * 1024 * 1024;
/// Longest provider job id accepted.
pub const MAX_JOB_ID_LEN: usize = 128;

/// Configuration of a [`LlamaParseClient`].
#[derive(Clone, PartialEq)]
pub struct LlamaParseSettings {
    /// e.g. `https://api.cloud.llamaindex.ai`; the wire paths are appended.
    pub base_url: String,
    /// Sent as `Authorization: Bearer {api_key}` when set.
    pub api_key: Option<String>,
    /// `tokens_per_minute` is unused here.
    pub resilience: ResilienceSettings,
}

impl Default for LlamaParseSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.cloud.llamaindex.ai".into(),
            api_key: None,
            resilience: ResilienceSettings {
                request_timeout: Duration::from_secs(120),
                ..ResilienceSettings::default()
            },
        }
    }
}

impl std::fmt::Debug for LlamaParseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaParseSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("resilience", &self.resilience)
            .finish()
    }
}

/// A [`RemoteParser`] speaking LlamaCloud's v1 parsing API.
pub struct LlamaParseClient {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    resilience: Resilience,
}

impl std::fmt::Debug for LlamaParseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaParseClient").finish_non_exhaustive()
    }
}

impl LlamaParseClient {
    pub fn new(settings: LlamaParseSettings) -> Result<Self, SettingsError> {
        let base_url = validate_base_url(&settings.base_url)?;
        if let Some(key) = &settings.api_key
            && reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).is_err()
        {
            return Err(SettingsError("api_key is not a valid header value".into()));
        }
        Ok(Self {
            http: http_client()?,
            base_url,
            api_key: settings.api_key,
            resilience: Resilience::new(SERVICE, &settings.resilience),
        })
    }

    /// The shared resilience state (breaker, limiter), for health reporting.
    pub fn resilience(&self) -> &Resilience {
        &self.resilience
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    fn job_url(&self, template: &str, id: &str) -> String {
        format!("{}{}", self.base_url, template.replace("{id}", id))
    }

    async fn fetch_result(&self, id: &str) -> Result<(Vec<ParsedPage>, CallStats), RemoteError> {
        let url = self.job_url(wire::RESULT_PATH, id);
        self.resilience
            .call(
                "result",
                Idempotency::Idempotent,
                0,
                DEFAULT_MAX_BODY_BYTES,
                || self.authorized(self.http.get(&url)),
                |body| {
                    let result: wire::JsonResult =
                        serde_json::from_slice(body).map_err(|e| json_error("result", &e))?;
                    pages(result.pages)
                },
            )
            .await
    }
}

/// `document.{ext}` and the content type for a media type.
pub fn upload_name(media_type: MediaType) -> &'static str {
    match media_type {
        MediaType::Pdf => "document.pdf",
        MediaType::Docx => "document.docx",
        MediaType::Html => "document.html",
        MediaType::Markdown => "document.md",
        MediaType::Text => "document.txt",
    }
}

fn json_error(what: &str, e: &serde_json::Error) -> String {
    format!(
        "{what} is not valid JSON of the expected shape (line {}, column {})",
        e.line(),
        e.column()
    )
}

/// A provider job id we are willing to put in a URL path and store.
fn valid_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_JOB_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && id != "."
        && id != ".."
}

/// A provider error code, if it is a short identifier (never free text).
fn content_free(code: Option<&str>, status: &str) -> String {
    code.filter(|c| {
        !c.is_empty()
            && c.len() <= 64
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    })
    .unwrap_or(status)
    .to_string()
}

/// Validates a successful job's pages (non-empty, numbered from 1 strictly increasing, bounded
/// in total) and normalises their Markdown.
pub fn pages(pages: Vec<wire::Page>) -> Result<Vec<ParsedPage>, String> {
    if pages.is_empty() {
        return Err("successful result has no pages".into());
    }
    let mut total = 0usize;
    let mut previous = 0u32;
    let mut out = Vec::with_capacity(pages.len());
    for (position, page) in pages.into_iter().enumerate() {
        if page.page == 0 || page.page <= previous {
            return Err(format!(
                "page at position {position} is numbered {} (must be >= 1 and increasing)",
                page.page
            ));
        }
        previous = page.page;
        total = total.saturating_add(page.md.len());
        if total > MAX_RESULT_TEXT_BYTES {
            return Err(format!("result text over {MAX_RESULT_TEXT_BYTES} bytes"));
        }
        out.push(ParsedPage {
            number: page.page,
            text: navigator_parse::normalize::normalize_markdown(&page.md),
        });
    }
    Ok(out)
}

/// What a job's status means, given its pages when it succeeded.
fn job_state(
    status: &str,
    error_code: Option<&str>,
    pages_if_done: impl FnOnce() -> Result<Vec<ParsedPage>, RemoteError>,
) -> Result<RemoteParse, RemoteError> {
    match status {
        wire::STATUS_PENDING => Ok(RemoteParse::Pending),
        wire::STATUS_SUCCESS => Ok(RemoteParse::Done(pages_if_done()?)),
        wire::STATUS_ERROR | wire::STATUS_CANCELED => {
            Ok(RemoteParse::Failed(content_free(error_code, status)))
        }
        _ => Err(RemoteError::BadResponse("unknown job status".into())),
    }
}

#[async_trait::async_trait]
impl RemoteParser for LlamaParseClient {
    fn name(&self) -> &str {
        SERVICE
    }

    async fn submit(&self, submission: Submission) -> Result<Metered<String>, RemoteError> {
        let url = format!("{}{}", self.base_url, wire::UPLOAD_PATH);
        let file_name = upload_name(submission.media_type);
        let content_type = submission.media_type.as_str();
        let build = || {
            let length = submission.bytes.len() as u64;
            let file =
                reqwest::multipart::Part::stream_with_length(submission.bytes.clone(), length)
                    .file_name(file_name);
            let file = match file.mime_str(content_type) {
                Ok(file) => file,
                // Unreachable: every MediaType is a valid MIME type.
                Err(_) => {
                    reqwest::multipart::Part::stream_with_length(submission.bytes.clone(), length)
                        .file_name(file_name)
                }
            };
            let mut form = reqwest::multipart::Form::new()
                .part("file", file)
                .text("result_type", "markdown");
            if let Some(webhook) = &submission.webhook {
                form = form
                    .text("webhook_url", webhook.url.clone())
                    .text("webhook_secret", webhook.secret.clone());
            }
            self.authorized(self.http.post(&url)).multipart(form)
        };
        // The upload creates (and bills) a provider job: it is retried only when it certainly
        // was not processed (429, connect error); after a timeout, a 5xx, a dropped connection
        // or a malformed answer a job may exist, so the job-level retry decides instead.
        let (id, calls) = self
            .resilience
            .call(
                "upload",
                Idempotency::CreatesResource,
                0,
                1024 * 1024,
                build,
                |body| {
                    let job: wire::Job = serde_json::from_slice(body)
                        .map_err(|e| json_error("upload answer", &e))?;
                    if !valid_job_id(&job.id) {
                        return Err("upload answer has an invalid job id".into());
                    }
                    Ok(job.id)
                },
            )
            .await?;
        Ok(Metered { value: id, calls })
    }

    async fn poll(&self, provider_job_id: &str) -> Result<Metered<RemoteParse>, RemoteError> {
        if !valid_job_id(provider_job_id) {
            return Err(RemoteError::BadResponse("invalid job id".into()));
        }
        let url = self.job_url(wire::JOB_PATH, provider_job_id);
        let (job, calls) = self
            .resilience
            .call(
                "job",
                Idempotency::Idempotent,
                0,
                1024 * 1024,
                || self.authorized(self.http.get(&url)),
                |body| {
                    let job: wire::Job =
                        serde_json::from_slice(body).map_err(|e| json_error("job", &e))?;
                    if job.id != provider_job_id {
                        return Err("job answer is for another job".into());
                    }
                    Ok(job)
                },
            )
            .await?;
        if job.status == wire::STATUS_SUCCESS {
            let (pages, more) = self.fetch_result(provider_job_id).await?;
            return Ok(Metered {
                value: RemoteParse::Done(pages),
                calls: calls + more,
            });
        }
        let value = job_state(&job.status, job.error_code.as_deref(), || {
            Err(RemoteError::BadResponse("unreachable".into()))
        })?;
        Ok(Metered { value, calls })
    }

    fn decode_delivery(&self, body: &[u8]) -> Result<Delivery, RemoteError> {
        if body.len() > DEFAULT_MAX_BODY_BYTES {
            return Err(RemoteError::BadResponse("callback body too large".into()));
        }
        let delivery: wire::WebhookBody = serde_json::from_slice(body)
            .map_err(|e| RemoteError::BadResponse(json_error("callback body", &e)))?;
        if !valid_job_id(&delivery.id) {
            return Err(RemoteError::BadResponse(
                "callback has an invalid job id".into(),
            ));
        }
        let wire::WebhookBody {
            id,
            status,
            pages: wire_pages,
            error_code,
        } = delivery;
        let result = job_state(&status, error_code.as_deref(), || {
            pages(wire_pages).map_err(RemoteError::BadResponse)
        })?;
        Ok(Delivery {
            provider_job_id: id,
            result,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(n: u32, md: &str) -> wire::Page {
        wire::Page {
            page: n,
            md: md.into(),
            text: None,
        }
    }

    #[test]
    fn pages_must_be_numbered_from_one_increasing_and_non_empty() {
        let ok = pages(vec![page(1, "# A  \n\n\n\nx"), page(3, "y")]).unwrap();
        assert_eq!(ok.iter().map(|p| p.number).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(
            ok[0].text,
            navigator_parse::normalize::normalize_markdown("# A  \n\n\n\nx")
        );
        assert!(pages(vec![]).is_err());
        assert!(pages(vec![page(0, "a")]).is_err());
        assert!(pages(vec![page(2, "a"), page(2, "b")]).is_err());
        assert!(pages(vec![page(2, "a"), page(1, "b")]).is_err());
    }

    #[test]
    fn deliveries_decode_by_status_and_never_echo_free_text() {
        let client = LlamaParseClient::new(LlamaParseSettings::default()).unwrap();
        let done = client
            .decode_delivery(br#"{"id":"job-1","status":"SUCCESS","pages":[{"page":1,"md":"hi"}]}"#)
            .unwrap();
        assert_eq!(done.provider_job_id, "job-1");
        assert!(matches!(done.result, RemoteParse::Done(ref p) if p.len() == 1));
        let failed = client
            .decode_delivery(br#"{"id":"job-1","status":"ERROR","error_code":"PDF_IS_BROKEN"}"#)
            .unwrap();
        assert_eq!(failed.result, RemoteParse::Failed("PDF_IS_BROKEN".into()));
        let chatty = client
            .decode_delivery(br#"{"id":"j","status":"ERROR","error_code":"secret text here"}"#)
            .unwrap();
        assert_eq!(chatty.result, RemoteParse::Failed("ERROR".into()));
        for bad in [
            &br#"{"id":"j","status":"SUCCESS","pages":[]}"#[..],
            br#"{"id":"j","status":"WHATEVER"}"#,
            br#"{"id":"../x","status":"PENDING"}"#,
            br#"not json"#,
        ] {
            let err = client.decode_delivery(bad).unwrap_err();
            assert!(matches!(err, RemoteError::BadResponse(_)), "{err:?}");
        }
    }

    #[test]
    fn upload_names_follow_the_media_type() {
        assert_eq!(upload_name(MediaType::Pdf), "document.pdf");
        assert_eq!(upload_name(MediaType::Docx), "document.docx");
        assert_eq!(upload_name(MediaType::Markdown), "document.md");
    }
}

pub mod wire {
    use serde::{Deserialize, Serialize};

    pub const UPLOAD_PATH: &str = "/api/v1/parsing/upload";
    /// `{id}` is replaced by the provider job id.
    pub const JOB_PATH: &str = "/api/v1/parsing/job/{id}";
    pub const RESULT_PATH: &str = "/api/v1/parsing/job/{id}/result/json";

    pub const STATUS_PENDING: &str = "PENDING";
    pub const STATUS_SUCCESS: &str = "SUCCESS";
    pub const STATUS_ERROR: &str = "ERROR";
    pub const STATUS_CANCELED: &str = "CANCELED";

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Job {
        pub id: String,
        pub status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub error_code: Option<String>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Page {
        pub page: u32,
        pub md: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub text: Option<String>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct JsonResult {
        pub pages: Vec<Page>,
    }

    /// What the service POSTs to the webhook URL.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct WebhookBody {
        pub id: String,
        pub status: String,
        #[serde(default)]
        pub pages: Vec<Page>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub error_code: Option<String>,
    }
}
