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
