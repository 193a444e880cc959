//! The remote-parser seam: upload a document, get a provider job id, and collect the result by
//! webhook or by polling. One implementation per kind of service ([`crate::llamaparse`] today;
//! docling-serve or Unstructured's API would be more).

use crate::resilience::{CallStats, RemoteError};
use bytes::Bytes;
use navigator_domain::MediaType;
use navigator_parse::ParsedPage;

/// Where and how the service should call back when the result is ready.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// `{server.public_url}/v1/webhooks/parser/{job_id}`.
    pub url: String,
    /// The job's own signing secret ([`crate::webhook::job_secret`]).
    pub secret: String,
}

/// A document to submit. No filename is sent: the service gets `document.{ext}` from the media
/// type, so the client's filename never leaves Navigator.
#[derive(Debug, Clone)]
pub struct Submission {
    pub bytes: Bytes,
    pub media_type: MediaType,
    /// `None` when `server.public_url` is unset: the result is then collected by polling only.
    pub webhook: Option<WebhookTarget>,
}

/// The state of a submitted parse.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteParse {
    /// Still running at the provider.
    Pending,
    /// Done: Markdown pages, 1-based, normalised to the built-in parsers' dialect.
    Done(Vec<ParsedPage>),
    /// The provider could not parse it (a permanent failure of this document). The message is
    /// content-free (the provider's status or error code, never its free text).
    Failed(String),
}

/// A callback body decoded (its signature was already checked by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The provider's job id; must match the one recorded at submission.
    pub provider_job_id: String,
    pub result: RemoteParse,
}

/// A value and what obtaining it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Metered<T> {
    pub value: T,
    pub calls: CallStats,
}

#[async_trait::async_trait]
pub trait RemoteParser: Send + Sync + 'static {
    /// Stable name of the service kind (`llamaparse`); recorded with the parsed artifact and in
    /// the usage ledger, and part of the parse-cache key.
    fn name(&self) -> &str;
    /// Uploads the document and returns the provider's job id.
    async fn submit(&self, submission: Submission) -> Result<Metered<String>, RemoteError>;
    /// Asks the provider for the state of a submitted job (and fetches the result when done).
    async fn poll(&self, provider_job_id: &str) -> Result<Metered<RemoteParse>, RemoteError>;
    /// Decodes a callback body. `Err(RemoteError::BadResponse)` when it breaks the contract.
    fn decode_delivery(&self, body: &[u8]) -> Result<Delivery, RemoteError>;
}
