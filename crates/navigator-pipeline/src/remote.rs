//! Remote parsing: submitting a document to a service such as LlamaParse, and taking its result
//! when it arrives — by a signed webhook ([`deliver`]) or by the worker's polling, whichever
//! comes first. Both paths end in [`accept_result`], so a late or duplicate delivery changes
//! nothing and the pages are charged once.
//!
//! While the service works the job is `waiting` (no worker or lease is held); a delivery moves it
//! back to `queued`, and so does its `wake_at` when no delivery came, to poll.

use crate::usage::Consumed;
use crate::vault::{BlobKind, VaultError};
use crate::worker::Pipeline;
use navigator_domain::{ErrorCode, JobId, JobStatus};
use navigator_parse::{ParsedDocument, ParsedPage};
use navigator_remote::parser::{RemoteParse, RemoteParser, WebhookTarget};
use navigator_remote::webhook::{self, Received, WebhookError};
use navigator_store::{JobRecord, OwnerScope, StoreError, Transition, UsageKind};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info};

/// How a remote parser is used.
pub struct RemoteParsing {
    pub parser: Arc<dyn RemoteParser>,
    /// Set when the service can call back (`server.public_url` and `parser.webhook_secret`).
    pub callbacks: Option<Callbacks>,
    /// Pause between polls while no webhook has come.
    pub poll_interval: Duration,
    /// After this long since submission an unfinished parse fails with `parser_timeout`.
    pub timeout: Duration,
}

/// Where callbacks reach this deployment and the master secret their per-job secrets come from.
pub struct Callbacks {
    /// e.g. `https://nav.example.com` (no trailing slash needed).
    pub public_url: String,
    pub master_secret: String,
}

impl std::fmt::Debug for RemoteParsing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteParsing")
            .field("parser", &self.parser.name())
            .field("callbacks", &self.callbacks.is_some())
            .field("poll_interval", &self.poll_interval)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RemoteParsing {
    /// The job's callback secret, when callbacks are configured.
    pub fn job_secret(&self, job_id: JobId) -> Option<String> {
        self.callbacks
            .as_ref()
            .map(|c| webhook::job_secret(c.master_secret.as_bytes(), &job_id.to_string()))
    }

    /// Where and how the service should call back for `job_id`.
    pub fn webhook_target(&self, job_id: JobId) -> Option<WebhookTarget> {
        let callbacks = self.callbacks.as_ref()?;
        Some(WebhookTarget {
            url: format!(
                "{}/v1/webhooks/parser/{job_id}",
                callbacks.public_url.trim_end_matches('/')
            ),
            secret: self.job_secret(job_id)?,
        })
    }
}

/// What a webhook delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// The result was stored and the job woken.
    Accepted,
    /// Valid, but the result had already arrived (or belongs to an earlier submission): no change.
    AlreadyProcessed,
}

/// Why a webhook delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No remote parser with callbacks is configured, or the job is not waiting on one.
    #[error("no remote parse awaits this callback")]
    NotFound,
    #[error(transparent)]
    Signature(#[from] WebhookError),
    #[error("webhook delivery already received")]
    Replayed,
    #[error("callback body does not follow the contract: {0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] VaultError),
}

impl DeliveryError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DeliveryError::NotFound => ErrorCode::NotFound,
            DeliveryError::Signature(WebhookError::Forged) => ErrorCode::WebhookSignatureInvalid,
            DeliveryError::Signature(WebhookError::Stale) => ErrorCode::WebhookStale,
            DeliveryError::Replayed => ErrorCode::WebhookReplayed,
            DeliveryError::Malformed(_) => ErrorCode::InvalidRequest,
            DeliveryError::Store(e) if e.is_transient() => ErrorCode::ServiceUnavailable,
            DeliveryError::Store(StoreError::NotFound) => ErrorCode::NotFound,
            DeliveryError::Store(_) => ErrorCode::Internal,
            DeliveryError::Blob(e) => e.code(),
        }
    }
}

/// Handles `POST /v1/webhooks/parser/{job_id}`: checks the signature and timestamp, refuses a
/// replayed delivery id, stores the result and wakes the job. Nothing changes unless every check
/// passes.
pub async fn deliver(
    pipeline: &Pipeline,
    job_id: JobId,
    received: Received<'_>,
    body: &[u8],
) -> Result<Delivered, DeliveryError> {
    let remote = pipeline.remote().ok_or(DeliveryError::NotFound)?;
    let secret = remote.job_secret(job_id).ok_or(DeliveryError::NotFound)?;
    let now = pipeline.clock.now();
    let delivery_id = webhook::verify(&secret, received, body, now.unix_timestamp())?;
    let store = &pipeline.store;
    let record = store
        .get_remote_parse(job_id)
        .await?
        .ok_or(DeliveryError::NotFound)?;
    let delivery = remote
        .parser
        .decode_delivery(body)
        .map_err(|e| DeliveryError::Malformed(e.to_string()))?;
    if record.delivered_at.is_some() || delivery.provider_job_id != record.provider_job_id {
        if !store
            .record_webhook_delivery(delivery_id, job_id, now)
            .await?
        {
            return Err(DeliveryError::Replayed);
        }
        debug!(job_id = %job_id, "late or superseded parser callback ignored");
        return Ok(Delivered::AlreadyProcessed);
    }
    let job = store.get_job(&OwnerScope::All, job_id).await?;
    match delivery.result {
        RemoteParse::Pending => {}
        RemoteParse::Done(pages) => {
            accept_result(
                pipeline,
                &job,
                &record.provider_job_id,
                remote.parser.name(),
                pages,
            )
            .await?;
            wake(pipeline, job_id, now).await?;
        }
        // The worker polls the service, sees the failure and fails the job with its code.
        RemoteParse::Failed(_) => wake(pipeline, job_id, now).await?,
    }
    // Recorded last: a delivery that failed half-way (a database or storage outage) can be sent
    // again under the same id, and everything above is idempotent.
    if !store
        .record_webhook_delivery(delivery_id, job_id, now)
        .await?
    {
        return Err(DeliveryError::Replayed);
    }
    info!(job_id = %job_id, "parser callback accepted");
    Ok(Delivered::Accepted)
}

async fn wake(
    pipeline: &Pipeline,
    job_id: JobId,
    now: time::OffsetDateTime,
) -> Result<(), DeliveryError> {
    let wake = Transition::new(JobStatus::Waiting, JobStatus::Queued).detail("parser callback");
    match pipeline.store.transition(job_id, wake, now).await {
        Ok(_) => pipeline.wake.notify_waiters(),
        // Not waiting (a worker is polling it right now, or it already moved on): the worker
        // that has it finds the result stored, or wakes it after parking it.
        Err(StoreError::StaleState { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Stores a remote parse result as the document's parsed artifact and marks the remote parse
/// delivered; the pages are charged by whichever caller (webhook or poll) marked it first.
/// Returns the page count.
pub(crate) async fn accept_result(
    pipeline: &Pipeline,
    job: &JobRecord,
    provider_job_id: &str,
    parser: &str,
    pages: Vec<ParsedPage>,
) -> Result<u32, DeliveryError> {
    if pages.is_empty() {
        return Err(DeliveryError::Malformed("no pages".to_owned()));
    }
    let store = &pipeline.store;
    let document = store
        .get_document(&OwnerScope::All, job.document_id)
        .await?;
    let count = pages.len() as u32;
    let parsed = ParsedDocument {
        media_type: document.media_type,
        pages,
    };
    let json = serde_json::to_vec(&parsed)
        .map_err(|_| DeliveryError::Malformed("result could not be serialised".to_owned()))?;
    pipeline
        .blobs
        .put(job.document_id, BlobKind::Parsed, &json)
        .await?;
    let first = match store
        .mark_remote_parse_delivered(job.id, provider_job_id, pipeline.clock.now())
        .await
    {
        Ok(first) => first,
        Err(StoreError::NotFound) => {
            // The document was deleted meanwhile (its remote parse went with it): leave no text.
            pipeline.blobs.delete_all(job.document_id).await?;
            return Err(StoreError::NotFound.into());
        }
        Err(e) => return Err(e.into()),
    };
    if first {
        pipeline
            .charge(
                job,
                UsageKind::Parse,
                parser,
                Consumed {
                    pages: u64::from(count),
                    ..Consumed::default()
                },
            )
            .await?;
    }
    Ok(count)
}
