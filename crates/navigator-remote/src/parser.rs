//! The remote-parser seam: upload a document, get a provider job id, and collect the result by
//! webhook or by polling. One implementation per kind of service ([`crate::llamaparse`] today;
//! docling-serve or Unstructured's API would be more).

use crate::resilience::{CallStats, RemoteError};
use bytes::Bytes;
use navigator_domain::MediaType;
use navigator_parse::ParsedPage;

/// Where and how the service should call back when the result is ready. Its `Debug` output
/// never shows the secret.
#[derive(Clone)]
pub struct WebhookTarget {
    /// `{server.public_url}/v1/webhooks/parser/{job_id}`.
    pub url: String,
    /// The job's own signing secret ([`crate::webhook::job_secret`]).
    pub secret: String,
}

/// A document to submit. No filename is sent: the service gets `document.{ext}` from the media
/// type, so the client's filename never leaves Navigator. Its `Debug` output shows the size of
/// the document, never its bytes (nor the webhook secret).
#[derive(Clone)]
pub struct Submission {
    pub bytes: Bytes,
    pub media_type: MediaType,
    /// `None` when `server.public_url` is unset: the result is then collected by polling only.
    pub webhook: Option<WebhookTarget>,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission")
            .field("bytes", &format_args!("{} bytes", self.bytes.len()))
            .field("media_type", &self.media_type)
            .field("webhook", &self.webhook)
            .finish()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_shows_neither_the_secret_nor_the_document() {
        let submission = Submission {
            bytes: Bytes::from_static(b"%PDF-1.7 confidential contents"),
            media_type: MediaType::Pdf,
            webhook: Some(WebhookTarget {
                url: "https://navigator.example/v1/webhooks/parser/j1".into(),
                secret: "per-job-secret-0123456789".into(),
            }),
        };
        for shown in [format!("{submission:?}"), format!("{submission:#?}")] {
            assert!(!shown.contains("per-job-secret"), "{shown}");
            assert!(!shown.contains("confidential"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(shown.contains("30 bytes"), "{shown}");
            assert!(
                shown.contains("https://navigator.example/v1/webhooks/parser/j1"),
                "{shown}"
            );
            assert!(shown.contains("Pdf"), "{shown}");
        }
        let polled = Submission {
            webhook: None,
            ..submission
        };
        assert_eq!(
            format!("{polled:?}"),
            "Submission { bytes: 30 bytes, media_type: Pdf, webhook: None }"
        );
    }
}
