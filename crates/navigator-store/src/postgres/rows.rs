//! Row mapping: SQL values back into validated domain types. Anything that does not parse is a
//! [`StoreError::CorruptRow`], never a panic. Timestamps are BIGINT unix milliseconds, exactly as
//! in the SQLite schema, so both backends round instants the same way.

use crate::{
    ChunkRecord, DocumentRecord, DocumentStatus, JobError, JobEvent, JobRecord, Progress,
    StoreError, StoreResult,
};
use navigator_domain::{
    ChunkId, DocumentId, ErrorCode, JobId, JobStatus, MediaType, OwnerId, Sha256Hex, Stage,
};
use sqlx::postgres::PgRow;
use sqlx::{Decode, Postgres, Row, Type};
use std::time::Duration;
use time::OffsetDateTime;

/// Columns of a job row, in the order [`job`] expects them (also used in `RETURNING`).
macro_rules! job_columns {
    () => {
        "id, document_id, owner_id, status, stage, attempts, run_at, wake_at, lease_owner, \
         lease_expires_at, error_code, error_message, pages, chunks_total, chunks_embedded, \
         created_at, updated_at, finished_at"
    };
}
pub(super) use job_columns;

/// A document joined with its current job's status and its live chunk count.
macro_rules! document_select {
    () => {
        "SELECT d.id, d.owner_id, d.filename, d.media_type, d.bytes, d.sha256, d.pages, \
         d.metadata::text AS metadata, d.current_job_id, d.created_at, d.updated_at, \
         j.status AS job_status, \
         (SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id) AS live_chunks \
         FROM documents d JOIN jobs j ON j.id = d.current_job_id"
    };
}
pub(super) use document_select;

/// Columns of a chunk row (staged or live), in the order [`chunk`] expects them.
macro_rules! chunk_columns {
    () => {
        "id, document_id, ord, text, text_sha256, page_start, page_end, section, token_count, \
         chunker, chunker_version"
    };
}
pub(super) use chunk_columns;

pub(super) fn to_ms(at: OffsetDateTime) -> i64 {
    // Milliseconds since 1970 fit an i64 for ±292 million years.
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(super) fn from_ms(ms: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| corrupt(format!("timestamp out of range: {ms}")))
}

pub(super) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

pub(super) use crate::cas::add;

pub(super) fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::CorruptRow(message.into())
}

pub(super) fn get<'r, T>(row: &'r PgRow, column: &str) -> StoreResult<T>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(column)
        .map_err(|e| corrupt(format!("column {column}: {e}")))
}

pub(super) fn get_u32(row: &PgRow, column: &str) -> StoreResult<u32> {
    let value: i64 = get(row, column)?;
    u32::try_from(value).map_err(|_| corrupt(format!("column {column}: {value} out of range")))
}

fn get_opt_u32(row: &PgRow, column: &str) -> StoreResult<Option<u32>> {
    let value: Option<i64> = get(row, column)?;
    value
        .map(|v| {
            u32::try_from(v).map_err(|_| corrupt(format!("column {column}: {v} out of range")))
        })
        .transpose()
}

pub(super) fn get_time(row: &PgRow, column: &str) -> StoreResult<OffsetDateTime> {
    from_ms(get(row, column)?)
}

fn get_opt_time(row: &PgRow, column: &str) -> StoreResult<Option<OffsetDateTime>> {
    let value: Option<i64> = get(row, column)?;
    value.map(from_ms).transpose()
}

pub(super) fn parse_with<T>(
    row: &PgRow,
    column: &str,
    parse: impl Fn(&str) -> Result<T, navigator_domain::ids::InvalidId>,
) -> StoreResult<T> {
    let text: String = get(row, column)?;
    parse(&text).map_err(|e| corrupt(format!("column {column}: {e}")))
}

pub(super) fn status(text: &str) -> StoreResult<JobStatus> {
    JobStatus::parse(text).ok_or_else(|| corrupt(format!("unknown job status {text:?}")))
}

pub(super) fn get_status(row: &PgRow, column: &str) -> StoreResult<JobStatus> {
    status(&get::<String>(row, column)?)
}

fn get_stage(row: &PgRow, column: &str) -> StoreResult<Stage> {
    let text: String = get(row, column)?;
    Stage::parse(&text).ok_or_else(|| corrupt(format!("unknown stage {text:?}")))
}

fn get_opt_error_code(row: &PgRow, column: &str) -> StoreResult<Option<ErrorCode>> {
    let text: Option<String> = get(row, column)?;
    text.map(|t| ErrorCode::parse(&t).ok_or_else(|| corrupt(format!("unknown error code {t:?}"))))
        .transpose()
}

pub(super) fn get_sha(row: &PgRow, column: &str) -> StoreResult<Sha256Hex> {
    parse_with(row, column, Sha256Hex::parse)
}

fn get_owner(row: &PgRow, column: &str) -> StoreResult<OwnerId> {
    parse_with(row, column, OwnerId::parse)
}

pub(super) fn job(row: &PgRow) -> StoreResult<JobRecord> {
    let error = match get_opt_error_code(row, "error_code")? {
        Some(code) => Some(JobError {
            code,
            message: get::<Option<String>>(row, "error_message")?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(JobRecord {
        id: parse_with(row, "id", JobId::parse)?,
        document_id: parse_with(row, "document_id", DocumentId::parse)?,
        owner: get_owner(row, "owner_id")?,
        status: get_status(row, "status")?,
        stage: get_stage(row, "stage")?,
        attempts: get_u32(row, "attempts")?,
        run_at: get_time(row, "run_at")?,
        wake_at: get_opt_time(row, "wake_at")?,
        lease_owner: get(row, "lease_owner")?,
        lease_expires_at: get_opt_time(row, "lease_expires_at")?,
        error,
        progress: Progress {
            pages: get_opt_u32(row, "pages")?,
            chunks_total: get_opt_u32(row, "chunks_total")?,
            chunks_embedded: get_u32(row, "chunks_embedded")?,
        },
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
        finished_at: get_opt_time(row, "finished_at")?,
    })
}

pub(super) fn document(row: &PgRow) -> StoreResult<DocumentRecord> {
    let media_type: String = get(row, "media_type")?;
    let metadata: String = get(row, "metadata")?;
    let bytes: i64 = get(row, "bytes")?;
    Ok(DocumentRecord {
        id: parse_with(row, "id", DocumentId::parse)?,
        owner: get_owner(row, "owner_id")?,
        filename: get(row, "filename")?,
        media_type: MediaType::ALL
            .into_iter()
            .find(|m| m.as_str() == media_type)
            .ok_or_else(|| corrupt(format!("unknown media type {media_type:?}")))?,
        bytes: u64::try_from(bytes).map_err(|_| corrupt("negative byte count"))?,
        sha256: get_sha(row, "sha256")?,
        pages: get_opt_u32(row, "pages")?,
        chunks: get_u32(row, "live_chunks")?,
        status: DocumentStatus::from_job(get_status(row, "job_status")?),
        current_job_id: parse_with(row, "current_job_id", JobId::parse)?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| corrupt(format!("column metadata: {e}")))?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

pub(super) fn event(row: &PgRow) -> StoreResult<JobEvent> {
    let from: Option<String> = get(row, "from_status")?;
    let duration: Option<i64> = get(row, "duration_ms")?;
    Ok(JobEvent {
        seq: get(row, "seq")?,
        job_id: parse_with(row, "job_id", JobId::parse)?,
        from: from.as_deref().map(status).transpose()?,
        to: get_status(row, "to_status")?,
        stage: get_stage(row, "stage")?,
        worker: get(row, "worker")?,
        duration_ms: duration
            .map(|d| u64::try_from(d).map_err(|_| corrupt("negative duration")))
            .transpose()?,
        detail: get(row, "detail")?,
        error_code: get_opt_error_code(row, "error_code")?,
        at: get_time(row, "at")?,
    })
}

pub(super) fn chunk(row: &PgRow) -> StoreResult<ChunkRecord> {
    Ok(ChunkRecord {
        id: parse_with(row, "id", ChunkId::parse)?,
        document_id: parse_with(row, "document_id", DocumentId::parse)?,
        ord: get_u32(row, "ord")?,
        text: get(row, "text")?,
        text_sha256: get_sha(row, "text_sha256")?,
        page_start: get_u32(row, "page_start")?,
        page_end: get_u32(row, "page_end")?,
        section: get(row, "section")?,
        token_count: get_u32(row, "token_count")?,
        chunker: get(row, "chunker")?,
        chunker_version: get(row, "chunker_version")?,
    })
}

/// The hit columns shared by keyword and vector search; the score is read from `score`.
pub(super) fn hit(row: &PgRow) -> StoreResult<crate::ChunkHit> {
    Ok(crate::ChunkHit {
        chunk_id: parse_with(row, "id", ChunkId::parse)?,
        document_id: parse_with(row, "document_id", DocumentId::parse)?,
        filename: get(row, "filename")?,
        page_start: get_u32(row, "page_start")?,
        page_end: get_u32(row, "page_end")?,
        section: get(row, "section")?,
        text: get(row, "text")?,
        score: get(row, "score")?,
    })
}
