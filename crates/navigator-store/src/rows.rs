//! Row mapping shared by every backend: SQL values back into validated domain types. Anything that
//! does not parse is a [`StoreError::CorruptRow`], never a panic.
//!
//! Both schemas store the same values in the same shapes (ids, hashes and enums as text,
//! timestamps as BIGINT unix milliseconds, counts as BIGINT), so a backend only has to say how to
//! read a text, integer or float column from its row type ([`Columns`], via [`columns_for_row!`]);
//! every decoder below is written once.

use crate::{
    ApiKeyRecord, AuditRecord, Budget, ChunkRecord, DataKeyRecord, DocumentRecord, DocumentStatus,
    DocumentUsage, JobError, JobEvent, JobRecord, OwnerUsage, Progress, RemoteParseRecord,
    StoreError, StoreResult, UsageRecord, UsageSummary, UsageTotals,
};
use navigator_domain::{
    ChunkId, DocumentId, ErrorCode, JobId, JobStatus, MediaType, OwnerId, Sha256Hex, Stage,
};
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
pub(crate) use job_columns;

/// Columns of a chunk row (staged or live), in the order [`chunk`] expects them.
macro_rules! chunk_columns {
    () => {
        "id, document_id, ord, text, text_sha256, page_start, page_end, section, token_count, \
         chunker, chunker_version"
    };
}
pub(crate) use chunk_columns;

/// Columns of a `remote_parses` row, in the order [`remote_parse`] expects them.
macro_rules! remote_parse_columns {
    () => {
        "job_id, document_id, parser, provider_job_id, submitted_at, delivered_at, polls"
    };
}
pub(crate) use remote_parse_columns;

/// Columns of an `api_keys` row, in the order [`api_key`] expects them.
macro_rules! api_key_columns {
    () => {
        "id, owner_id, roles, secret_sha256, label, created_at, expires_at, revoked_at, \
         last_used_at"
    };
}
pub(crate) use api_key_columns;

/// Columns of a `data_keys` row, in the order [`data_key`] expects them.
macro_rules! data_key_columns {
    () => {
        "document_id, kek_id, wrapped, created_at"
    };
}
pub(crate) use data_key_columns;

/// Columns of an `audit_log` row, in the order [`audit`] expects them.
macro_rules! audit_columns {
    () => {
        "seq, at, actor, action, resource_type, resource_id, outcome, request_id, source_ip, \
         entry, prev_hash, hash"
    };
}
pub(crate) use audit_columns;

/// Columns of a `budgets` row, in the order [`budget`] expects them.
macro_rules! budget_columns {
    () => {
        "owner_id, soft_micro_usd, hard_micro_usd, updated_at"
    };
}
pub(crate) use budget_columns;

/// The usage ledger sums [`usage_totals`] reads, as BIGINT on both backends (PostgreSQL's `SUM`
/// of a BIGINT is NUMERIC).
macro_rules! usage_sums {
    () => {
        "CAST(SUM(pages) AS BIGINT) AS pages, CAST(SUM(tokens) AS BIGINT) AS tokens, \
         CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(retries) AS BIGINT) AS retries, \
         CAST(SUM(cost_micro_usd) AS BIGINT) AS cost_micro_usd, \
         CAST(SUM(saved_pages) AS BIGINT) AS saved_pages, \
         CAST(SUM(saved_tokens) AS BIGINT) AS saved_tokens, \
         CAST(SUM(saved_cost_micro_usd) AS BIGINT) AS saved_cost_micro_usd"
    };
}
pub(crate) use usage_sums;

pub(crate) fn to_ms(at: OffsetDateTime) -> i64 {
    // Milliseconds since 1970 fit an i64 for ±292 million years.
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn from_ms(ms: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| corrupt(format!("timestamp out of range: {ms}")))
}

pub(crate) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) use crate::cas::add;

pub(crate) fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::CorruptRow(message.into())
}

/// Reads one column of a backend's row in the few SQL types the schemas use.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> StoreResult<String>;
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>>;
    fn int(&self, column: &str) -> StoreResult<i64>;
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>>;
    fn float(&self, column: &str) -> StoreResult<f64>;
    fn blob(&self, column: &str) -> StoreResult<Vec<u8>>;
}

/// Implements [`Columns`] for a sqlx row type with `try_get`.
macro_rules! columns_for_row {
    ($row:ty) => {
        impl $crate::rows::Columns for $row {
            fn text(&self, column: &str) -> $crate::StoreResult<String> {
                $crate::rows::decoded(column, sqlx::Row::try_get(self, column))
            }
            fn opt_text(&self, column: &str) -> $crate::StoreResult<Option<String>> {
                $crate::rows::decoded(column, sqlx::Row::try_get(self, column))
            }
            fn int(&self, column: &str) -> $crate::StoreResult<i64> {
                $crate::rows::decoded(column, sqlx::Row::try_get(self, column))
            }
            fn opt_int(&self, column: &str) -> $crate::StoreResult<Option<i64>> {
                $crate::rows::decoded(column, sqlx::Row::try_get(self, column))
            }
            fn float(&self, column: &str) -> $crate::StoreResult<f64> {
                $crate::rows::decoded(column, sqlx::Row::try_get(self, column))
            }
            fn blob(&self, column: &str) -> $crate::StoreResult<Vec<u8>> {
                $crate::rows::decoded(column, sqlx::Row::try_get(self, column))
            }
        }
    };
}
pub(crate) use columns_for_row;

pub(crate) fn decoded<T>(column: &str, value: Result<T, sqlx::Error>) -> StoreResult<T> {
    value.map_err(|e| corrupt(format!("column {column}: {e}")))
}

/// A value [`get`] can read: one of the SQL types the schemas use.
pub(crate) trait FromColumn: Sized {
    fn read(row: &impl Columns, column: &str) -> StoreResult<Self>;
}

impl FromColumn for String {
    fn read(row: &impl Columns, column: &str) -> StoreResult<Self> {
        row.text(column)
    }
}

impl FromColumn for Option<String> {
    fn read(row: &impl Columns, column: &str) -> StoreResult<Self> {
        row.opt_text(column)
    }
}

impl FromColumn for i64 {
    fn read(row: &impl Columns, column: &str) -> StoreResult<Self> {
        row.int(column)
    }
}

impl FromColumn for Option<i64> {
    fn read(row: &impl Columns, column: &str) -> StoreResult<Self> {
        row.opt_int(column)
    }
}

impl FromColumn for Vec<u8> {
    fn read(row: &impl Columns, column: &str) -> StoreResult<Self> {
        row.blob(column)
    }
}

impl FromColumn for f64 {
    fn read(row: &impl Columns, column: &str) -> StoreResult<Self> {
        row.float(column)
    }
}

pub(crate) fn get<T: FromColumn>(row: &impl Columns, column: &str) -> StoreResult<T> {
    T::read(row, column)
}

pub(crate) fn get_u32(row: &impl Columns, column: &str) -> StoreResult<u32> {
    let value: i64 = get(row, column)?;
    u32::try_from(value).map_err(|_| corrupt(format!("column {column}: {value} out of range")))
}

pub(crate) fn get_opt_u32(row: &impl Columns, column: &str) -> StoreResult<Option<u32>> {
    let value: Option<i64> = get(row, column)?;
    value
        .map(|v| {
            u32::try_from(v).map_err(|_| corrupt(format!("column {column}: {v} out of range")))
        })
        .transpose()
}

pub(crate) fn get_time(row: &impl Columns, column: &str) -> StoreResult<OffsetDateTime> {
    from_ms(get(row, column)?)
}

pub(crate) fn get_opt_time(
    row: &impl Columns,
    column: &str,
) -> StoreResult<Option<OffsetDateTime>> {
    let value: Option<i64> = get(row, column)?;
    value.map(from_ms).transpose()
}

pub(crate) fn parse_with<T>(
    row: &impl Columns,
    column: &str,
    parse: impl Fn(&str) -> Result<T, navigator_domain::ids::InvalidId>,
) -> StoreResult<T> {
    let text: String = get(row, column)?;
    parse(&text).map_err(|e| corrupt(format!("column {column}: {e}")))
}

pub(crate) fn status(text: &str) -> StoreResult<JobStatus> {
    JobStatus::parse(text).ok_or_else(|| corrupt(format!("unknown job status {text:?}")))
}

pub(crate) fn get_status(row: &impl Columns, column: &str) -> StoreResult<JobStatus> {
    status(&get::<String>(row, column)?)
}

pub(crate) fn get_stage(row: &impl Columns, column: &str) -> StoreResult<Stage> {
    let text: String = get(row, column)?;
    Stage::parse(&text).ok_or_else(|| corrupt(format!("unknown stage {text:?}")))
}

pub(crate) fn get_opt_error_code(
    row: &impl Columns,
    column: &str,
) -> StoreResult<Option<ErrorCode>> {
    let text: Option<String> = get(row, column)?;
    text.map(|t| ErrorCode::parse(&t).ok_or_else(|| corrupt(format!("unknown error code {t:?}"))))
        .transpose()
}

pub(crate) fn get_sha(row: &impl Columns, column: &str) -> StoreResult<Sha256Hex> {
    parse_with(row, column, Sha256Hex::parse)
}

pub(crate) fn get_owner(row: &impl Columns, column: &str) -> StoreResult<OwnerId> {
    parse_with(row, column, OwnerId::parse)
}

pub(crate) fn job(row: &impl Columns) -> StoreResult<JobRecord> {
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

pub(crate) fn document(row: &impl Columns) -> StoreResult<DocumentRecord> {
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

pub(crate) fn event(row: &impl Columns) -> StoreResult<JobEvent> {
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

pub(crate) fn chunk(row: &impl Columns) -> StoreResult<ChunkRecord> {
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

/// The hit columns shared by keyword and vector search.
pub(crate) fn hit(row: &impl Columns, score: f64) -> StoreResult<crate::ChunkHit> {
    Ok(crate::ChunkHit {
        chunk_id: parse_with(row, "id", ChunkId::parse)?,
        document_id: parse_with(row, "document_id", DocumentId::parse)?,
        filename: get(row, "filename")?,
        page_start: get_u32(row, "page_start")?,
        page_end: get_u32(row, "page_end")?,
        section: get(row, "section")?,
        text: get(row, "text")?,
        score,
    })
}

/// A `u64` count as the BIGINT the schemas store; `Conflict` past `i64::MAX`.
pub(crate) fn u64_param(value: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Conflict(format!("{what} out of range")))
}

pub(crate) fn get_u64(row: &impl Columns, column: &str) -> StoreResult<u64> {
    let value: i64 = get(row, column)?;
    u64::try_from(value).map_err(|_| corrupt(format!("column {column}: {value} out of range")))
}

pub(crate) fn remote_parse(row: &impl Columns) -> StoreResult<RemoteParseRecord> {
    Ok(RemoteParseRecord {
        job_id: parse_with(row, "job_id", JobId::parse)?,
        document_id: parse_with(row, "document_id", DocumentId::parse)?,
        parser: get(row, "parser")?,
        provider_job_id: get(row, "provider_job_id")?,
        submitted_at: get_time(row, "submitted_at")?,
        delivered_at: get_opt_time(row, "delivered_at")?,
        polls: get_u32(row, "polls")?,
    })
}

pub(crate) fn budget(row: &impl Columns) -> StoreResult<Budget> {
    Ok(Budget {
        owner: get_owner(row, "owner_id")?,
        soft_micro_usd: get(row, "soft_micro_usd")?,
        hard_micro_usd: get(row, "hard_micro_usd")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

/// The ledger row's values as bind parameters: the counts checked to fit a BIGINT.
pub(crate) struct UsageParams {
    pub pages: i64,
    pub tokens: i64,
    pub requests: i64,
    pub retries: i64,
    pub saved_pages: i64,
    pub saved_tokens: i64,
}

impl UsageParams {
    pub(crate) fn of(record: &UsageRecord) -> StoreResult<Self> {
        Ok(Self {
            pages: u64_param(record.pages, "pages")?,
            tokens: u64_param(record.tokens, "tokens")?,
            requests: u64_param(record.requests, "requests")?,
            retries: u64_param(record.retries, "retries")?,
            saved_pages: u64_param(record.saved_pages, "saved pages")?,
            saved_tokens: u64_param(record.saved_tokens, "saved tokens")?,
        })
    }
}

/// The [`usage_sums`] columns of one group.
pub(crate) fn usage_totals(row: &impl Columns) -> StoreResult<UsageTotals> {
    Ok(UsageTotals {
        pages: get_u64(row, "pages")?,
        tokens: get_u64(row, "tokens")?,
        requests: get_u64(row, "requests")?,
        retries: get_u64(row, "retries")?,
        cost_micro_usd: get(row, "cost_micro_usd")?,
        saved_pages: get_u64(row, "saved_pages")?,
        saved_tokens: get_u64(row, "saved_tokens")?,
        saved_cost_micro_usd: get(row, "saved_cost_micro_usd")?,
    })
}

/// Folds `(owner_id, document_id, sums…)` groups (one query, so one snapshot) into per-owner
/// and per-document totals, sorted by owner id and by document id (then owner id).
pub(crate) fn usage_summary<R: Columns>(groups: &[R]) -> StoreResult<UsageSummary> {
    let mut owners: std::collections::BTreeMap<String, (OwnerId, UsageTotals)> =
        std::collections::BTreeMap::new();
    let mut documents = Vec::new();
    for row in groups {
        let owner = get_owner(row, "owner_id")?;
        let document: Option<String> = get(row, "document_id")?;
        let totals = usage_totals(row)?;
        owners
            .entry(owner.as_str().to_owned())
            .or_insert_with(|| (owner.clone(), UsageTotals::default()))
            .1
            .add(&totals);
        if let Some(document) = document {
            let document_id = DocumentId::parse(&document)
                .map_err(|e| corrupt(format!("column document_id: {e}")))?;
            documents.push(DocumentUsage {
                owner,
                document_id,
                totals,
            });
        }
    }
    documents
        .sort_by(|a, b| (a.document_id, a.owner.as_str()).cmp(&(b.document_id, b.owner.as_str())));
    Ok(UsageSummary {
        owners: owners
            .into_values()
            .map(|(owner, totals)| OwnerUsage { owner, totals })
            .collect(),
        documents,
    })
}

pub(crate) fn get_hash(row: &impl Columns, column: &str) -> StoreResult<[u8; 32]> {
    let bytes: Vec<u8> = get(row, column)?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| corrupt(format!("column {column}: {} bytes, not 32", bytes.len())))
}

/// API key roles as stored: a JSON array of strings.
pub(crate) fn roles_param(roles: &[String]) -> String {
    serde_json::Value::from(roles.to_vec()).to_string()
}

pub(crate) fn api_key(row: &impl Columns) -> StoreResult<ApiKeyRecord> {
    let roles: String = get(row, "roles")?;
    Ok(ApiKeyRecord {
        id: get(row, "id")?,
        owner: get_owner(row, "owner_id")?,
        roles: serde_json::from_str(&roles).map_err(|e| corrupt(format!("column roles: {e}")))?,
        secret_sha256: get_hash(row, "secret_sha256")?,
        label: get(row, "label")?,
        created_at: get_time(row, "created_at")?,
        expires_at: get_opt_time(row, "expires_at")?,
        revoked_at: get_opt_time(row, "revoked_at")?,
        last_used_at: get_opt_time(row, "last_used_at")?,
    })
}

pub(crate) fn data_key(row: &impl Columns) -> StoreResult<DataKeyRecord> {
    Ok(DataKeyRecord {
        document_id: parse_with(row, "document_id", DocumentId::parse)?,
        kek_id: get(row, "kek_id")?,
        wrapped: get(row, "wrapped")?,
        created_at: get_time(row, "created_at")?,
    })
}

/// `(kek_id, n)` of a count by key-encryption key.
pub(crate) fn kek_count(row: &impl Columns) -> StoreResult<(String, u64)> {
    Ok((get(row, "kek_id")?, get_u64(row, "n")?))
}

pub(crate) fn audit(row: &impl Columns) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        seq: get(row, "seq")?,
        at: get_time(row, "at")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        resource_type: get(row, "resource_type")?,
        resource_id: get(row, "resource_id")?,
        outcome: get(row, "outcome")?,
        request_id: get(row, "request_id")?,
        source_ip: get(row, "source_ip")?,
        entry: get(row, "entry")?,
        prev_hash: get_hash(row, "prev_hash")?,
        hash: get_hash(row, "hash")?,
    })
}

/// The row [`crate::Store::append_audit`] inserts after `prev` (`(seq, hash)` of the head row,
/// `None` for an empty log).
pub(crate) fn next_audit(
    entry: &crate::NewAuditEntry,
    sealer: &dyn crate::AuditSealer,
    genesis: &[u8; 32],
    prev: Option<(i64, [u8; 32])>,
) -> StoreResult<AuditRecord> {
    let (seq, prev_hash) = match prev {
        Some((seq, hash)) => (
            seq.checked_add(1)
                .ok_or_else(|| corrupt("audit log sequence exhausted"))?,
            hash,
        ),
        None => (1, *genesis),
    };
    let hash = sealer.seal(seq, &prev_hash, &entry.entry);
    Ok(AuditRecord {
        seq,
        // As it reads back: timestamps are stored to the millisecond.
        at: from_ms(to_ms(entry.at))?,
        actor: entry.actor.clone(),
        action: entry.action.clone(),
        resource_type: entry.resource_type.clone(),
        resource_id: entry.resource_id.clone(),
        outcome: entry.outcome.clone(),
        request_id: entry.request_id.clone(),
        source_ip: entry.source_ip.clone(),
        entry: entry.entry.clone(),
        prev_hash,
        hash,
    })
}
