//! Rows and parameters crossing the store seam.

use navigator_domain::{
    ChunkId, DocumentId, ErrorCode, JobId, JobStatus, MediaType, OwnerId, Sha256Hex, Stage,
};
use serde::Serialize;
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Debug, Clone, Serialize)]
pub struct MigrationInfo {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

/// A document to create. The caller has already stored the original blob.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: DocumentId,
    pub job_id: JobId,
    pub owner: OwnerId,
    /// As the client sent it; shown back to its owner only, never logged.
    pub filename: String,
    pub media_type: MediaType,
    pub bytes: u64,
    pub sha256: Sha256Hex,
    pub metadata: serde_json::Value,
    pub idempotency_key: Option<String>,
}

/// What `create_document` did.
#[derive(Debug, Clone)]
pub struct Created {
    pub document: DocumentRecord,
    pub job: JobRecord,
    /// True when an existing live document (same owner and sha256, or same idempotency key) was
    /// returned instead of creating one.
    pub duplicate: bool,
}

/// A document as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentRecord {
    pub id: DocumentId,
    pub owner: OwnerId,
    pub filename: String,
    pub media_type: MediaType,
    pub bytes: u64,
    pub sha256: Sha256Hex,
    pub pages: Option<u32>,
    /// Live (searchable) chunks.
    pub chunks: u32,
    pub status: DocumentStatus,
    pub current_job_id: JobId,
    pub metadata: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Derived from the current job: `ready` once its chunks are live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    Processing,
    Ready,
    Failed,
    Cancelled,
}

impl DocumentStatus {
    pub fn from_job(status: JobStatus) -> Self {
        match status {
            JobStatus::Complete => DocumentStatus::Ready,
            JobStatus::Failed => DocumentStatus::Failed,
            JobStatus::Cancelled => DocumentStatus::Cancelled,
            _ => DocumentStatus::Processing,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobError {
    pub code: ErrorCode,
    /// Short, content-free description (no document text, filenames or secrets).
    pub message: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub pages: Option<u32>,
    pub chunks_total: Option<u32>,
    pub chunks_embedded: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    pub id: JobId,
    pub document_id: DocumentId,
    pub owner: OwnerId,
    pub status: JobStatus,
    pub stage: Stage,
    /// Attempts of the current stage, the one in progress included (1 while the first runs;
    /// 0 while queued after a manual retry).
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub run_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub wake_at: Option<OffsetDateTime>,
    pub lease_owner: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub lease_expires_at: Option<OffsetDateTime>,
    /// Set when failed; on `retrying`, the last transient error.
    pub error: Option<JobError>,
    pub progress: Progress,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// One recorded transition (or stage completion, where `from == to == running`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobEvent {
    /// Monotonic per store; used as the SSE event id.
    pub seq: i64,
    pub job_id: JobId,
    pub from: Option<JobStatus>,
    pub to: JobStatus,
    pub stage: Stage,
    pub worker: Option<String>,
    pub duration_ms: Option<u64>,
    pub detail: Option<String>,
    pub error_code: Option<navigator_domain::ErrorCode>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStats {
    /// Every status, zero counts included.
    pub by_status: Vec<(JobStatus, u64)>,
    /// How long the oldest eligible (claimable now) job has waited past its `run_at`.
    pub oldest_eligible_age: Option<Duration>,
}

/// A chunk produced by the chunker, before it is live.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    pub id: ChunkId,
    pub ord: u32,
    pub text: String,
    pub text_sha256: Sha256Hex,
    pub page_start: u32,
    pub page_end: u32,
    /// Heading path joined with " > ", empty when the text has no heading above it.
    pub section: String,
    pub token_count: u32,
    pub chunker: String,
    pub chunker_version: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRecord {
    pub id: ChunkId,
    pub document_id: DocumentId,
    pub ord: u32,
    pub text: String,
    pub text_sha256: Sha256Hex,
    pub page_start: u32,
    pub page_end: u32,
    pub section: String,
    pub token_count: u32,
    pub chunker: String,
    pub chunker_version: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TextToEmbed {
    pub text_sha256: Sha256Hex,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub text_sha256: Sha256Hex,
    pub vector: Vec<f32>,
}

/// Parameters shared by keyword and vector search.
#[derive(Debug, Clone)]
pub struct SearchQuery<'a> {
    pub scope: &'a OwnerScope,
    pub text: &'a str,
    /// Restrict to these documents (still within scope).
    pub document_ids: Option<&'a [DocumentId]>,
    pub limit: u32,
}

use crate::OwnerScope;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkHit {
    pub chunk_id: ChunkId,
    pub document_id: DocumentId,
    pub filename: String,
    pub page_start: u32,
    pub page_end: u32,
    pub section: String,
    pub text: String,
    /// Backend-specific relevance (bm25 negated, or cosine similarity): higher is better.
    pub score: f64,
}

/// Connection pool occupancy, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most the pool may open.
    pub max: u32,
}

/// A parse handed to a remote provider, kept until its result has been delivered and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteParseRecord {
    pub job_id: JobId,
    pub document_id: DocumentId,
    /// The parser (provider profile) the document was submitted to.
    pub parser: String,
    /// The provider's id for the submitted job.
    pub provider_job_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub submitted_at: OffsetDateTime,
    /// Set once by [`crate::Store::mark_remote_parse_delivered`] (webhook or poll, whichever
    /// comes first).
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    /// Status polls made so far.
    pub polls: u32,
}

/// What a usage ledger row paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageKind {
    Parse,
    Embed,
}

impl UsageKind {
    pub const ALL: [UsageKind; 2] = [UsageKind::Parse, UsageKind::Embed];

    pub fn as_str(self) -> &'static str {
        match self {
            UsageKind::Parse => "parse",
            UsageKind::Embed => "embed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl std::fmt::Display for UsageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One append-only usage ledger row: what a provider call cost, and what a cache hit saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRecord {
    pub owner: OwnerId,
    pub document_id: Option<DocumentId>,
    pub job_id: Option<JobId>,
    pub kind: UsageKind,
    pub provider: String,
    pub model: String,
    pub pages: u64,
    pub tokens: u64,
    pub requests: u64,
    pub retries: u64,
    /// Millionths of a US dollar.
    pub cost_micro_usd: i64,
    /// Work a cache hit avoided (not billed).
    pub saved_pages: u64,
    pub saved_tokens: u64,
    pub saved_cost_micro_usd: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Sums of usage ledger rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UsageTotals {
    pub pages: u64,
    pub tokens: u64,
    pub requests: u64,
    pub retries: u64,
    pub cost_micro_usd: i64,
    pub saved_pages: u64,
    pub saved_tokens: u64,
    pub saved_cost_micro_usd: i64,
}

impl UsageTotals {
    /// Adds `other` in (saturating: the ledger cannot realistically overflow, and a report must
    /// not panic if it does).
    pub fn add(&mut self, other: &UsageTotals) {
        self.pages = self.pages.saturating_add(other.pages);
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.requests = self.requests.saturating_add(other.requests);
        self.retries = self.retries.saturating_add(other.retries);
        self.cost_micro_usd = self.cost_micro_usd.saturating_add(other.cost_micro_usd);
        self.saved_pages = self.saved_pages.saturating_add(other.saved_pages);
        self.saved_tokens = self.saved_tokens.saturating_add(other.saved_tokens);
        self.saved_cost_micro_usd = self
            .saved_cost_micro_usd
            .saturating_add(other.saved_cost_micro_usd);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerUsage {
    pub owner: OwnerId,
    pub totals: UsageTotals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentUsage {
    pub owner: OwnerId,
    pub document_id: DocumentId,
    pub totals: UsageTotals,
}

/// Usage over a time window: per owner (sorted by owner id) and per document (sorted by document
/// id, then owner id). Ledger rows without a document count only in their owner's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageSummary {
    pub owners: Vec<OwnerUsage>,
    pub documents: Vec<DocumentUsage>,
}

/// An owner's spending limits, in millionths of a US dollar. `None` means no limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub owner: OwnerId,
    /// Past this, warn.
    pub soft_micro_usd: Option<i64>,
    /// Past this, new paid work waits (error code `budget_exceeded`).
    pub hard_micro_usd: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A service API key. The secret itself is never stored, only its SHA-256: a database leak
/// reveals no usable credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The public part of the key (what a request names before proving the secret); unique.
    pub id: String,
    pub owner: OwnerId,
    /// Role names, in the order given (stored as a JSON array).
    pub roles: Vec<String>,
    /// SHA-256 of the secret half of the key.
    pub secret_sha256: [u8; 32],
    /// Free text for operators ("ingest service, staging").
    pub label: String,
    pub created_at: OffsetDateTime,
    /// After this instant the key no longer authenticates (checked by the caller).
    pub expires_at: Option<OffsetDateTime>,
    /// Set once by [`crate::Store::revoke_api_key`].
    pub revoked_at: Option<OffsetDateTime>,
    /// Kept up to date by [`crate::Store::touch_api_key`]; never moves back.
    pub last_used_at: Option<OffsetDateTime>,
}

impl ApiKeyRecord {
    /// Whether the key authenticates at `now`: not revoked, and not expired (`expires_at` is the
    /// first instant it no longer does).
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// A document's data key (envelope encryption): the key that encrypts the document's blobs,
/// wrapped (encrypted) by the key-encryption key `kek_id`. Opaque to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyRecord {
    pub document_id: DocumentId,
    /// Which key-encryption key wrapped `wrapped`.
    pub kek_id: String,
    pub wrapped: Vec<u8>,
    /// When the data key was made (kept when it is rewrapped).
    pub created_at: OffsetDateTime,
}

/// Computes the hash of an audit log row, inside the append transaction (so the row's `seq` and
/// predecessor are final when it runs). Typically an HMAC under a key the database never sees.
/// Must be deterministic and must not block: it runs while the log's write lock is held.
pub trait AuditSealer: Send + Sync {
    /// The hash of row `seq`, whose predecessor's hash is `prev_hash` (the genesis value for
    /// `seq == 1`), over the row's canonical `entry` bytes.
    fn seal(&self, seq: i64, prev_hash: &[u8; 32], entry: &[u8]) -> [u8; 32];
}

/// An audit log entry to append. The scalar fields are copies of what `entry` says, kept as
/// columns so the log can be filtered; `entry` is what is hashed and is stored verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    /// Canonical JSON of the whole entry, produced by the caller.
    pub entry: Vec<u8>,
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// 1, 2, 3, … with no gaps (unless someone with database access deleted rows, which the
    /// chain then shows).
    pub seq: i64,
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    pub entry: Vec<u8>,
    /// The previous row's `hash` (the genesis value for `seq == 1`).
    pub prev_hash: [u8; 32],
    /// `sealer.seal(seq, prev_hash, entry)`.
    pub hash: [u8; 32],
}

/// Which audit rows [`crate::Store::audit_entries`] returns: `seq > after_seq`, in seq order, at
/// most `limit` (0 returns nothing), and only rows matching every filter that is set
/// (`from <= at < to`, exact matches otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub after_seq: i64,
    pub limit: u32,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub resource_id: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}
