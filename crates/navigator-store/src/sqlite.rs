//! The SQLite backend: the embedded default.
//!
//! Main type: [`SqliteStore`]. Key design choices:
//! - Two pools on one database file: a writer pool of exactly one connection, through which every
//!   write transaction runs (started with `BEGIN IMMEDIATE`, so the write lock is taken up front and
//!   a read never has to be upgraded mid-transaction, which SQLite cannot wait for), and a reader
//!   pool for plain reads, which WAL mode lets run beside the writer. One process therefore never
//!   fights itself for the write lock; several processes queue on it through `busy_timeout`.
//! - `BEGIN IMMEDIATE` is also what makes claims exclusive across processes: the select of the
//!   earliest eligible job and its compare-and-set happen under the write lock.
//! - `sqlite::memory:` uses one pool of one connection for both roles: every connection to a
//!   private in-memory database would otherwise see its own empty database.
//! - Audit log appends read the chain's head and insert after it under that same write lock, so
//!   writers in any number of processes extend one chain; triggers make the table append-only.
//! - Keyword search is an FTS5 table kept in step with live chunks inside the same transactions
//!   (no triggers); vector search is brute-force cosine (see the `search` module).

mod jobs;
mod migrations;
mod rows;
mod search;

use crate::{
    ApiKeyRecord, AuditFilter, AuditRecord, AuditSealer, Budget, ChunkHit, ChunkRecord, Created,
    DataKeyRecord, DocumentRecord, Embedding, JobEvent, JobRecord, MigrationInfo, NewAuditEntry,
    NewChunk, NewDocument, OwnerScope, Progress, QueueStats, RemoteParseRecord, SearchQuery, Store,
    StoreError, StoreResult, TextToEmbed, Transition, UsageRecord, UsageSummary,
};
use jobs::Cas;
use navigator_domain::{DocumentId, ErrorCode, JobId, JobStatus, OwnerId, Sha256Hex, Stage};
use rows::{
    api_key_columns, audit_columns, budget_columns, chunk_columns, data_key_columns,
    document_select, job_columns, remote_parse_columns, to_ms,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Notify;

/// Statements whose plans matter, kept here so the plan tests check the very text that runs.
mod queries {
    use super::rows::usage_sums;

    /// Uses the unique `documents_owner_sha256` (owner_id, sha256): at most one row matches,
    /// so there is nothing to order (an `ORDER BY id` would invite a walk of the owner's
    /// documents in id order instead).
    pub(super) const PARSED_DUPLICATE_OF_OWNER: &str = "SELECT id FROM documents \
         WHERE owner_id = ?4 AND sha256 = ?1 AND parser = ?2 AND pages IS NOT NULL \
         AND id <> ?3";
    /// Uses `documents_sha256_parser` (sha256, parser) WHERE pages IS NOT NULL.
    pub(super) const PARSED_DUPLICATE_OF_ANY_OWNER: &str = "SELECT id FROM documents \
         WHERE sha256 = ?1 AND parser = ?2 AND pages IS NOT NULL AND id <> ?3 \
         ORDER BY id LIMIT 1";
    /// Uses `usage_ledger_owner_id_at` (owner_id, at).
    pub(super) const USAGE_OF_OWNER: &str = concat!(
        "SELECT owner_id, document_id, ",
        usage_sums!(),
        " FROM usage_ledger WHERE owner_id = ?3 AND at >= ?1 AND at < ?2 \
         GROUP BY owner_id, document_id"
    );
    /// Uses `usage_ledger_at` (at).
    pub(super) const USAGE_OF_ALL: &str = concat!(
        "SELECT owner_id, document_id, ",
        usage_sums!(),
        " FROM usage_ledger WHERE at >= ?1 AND at < ?2 GROUP BY owner_id, document_id"
    );
    /// Uses `webhook_deliveries_received_at`.
    pub(super) const PRUNE_WEBHOOK_DELIVERIES: &str =
        "DELETE FROM webhook_deliveries WHERE received_at < ?1";
    /// Uses `jobs_status_wake_at` (status, wake_at); `?2` is [`crate::WAKE_BATCH`].
    pub(super) const WAKE_DUE: &str = "SELECT id FROM jobs \
         WHERE status = 'waiting' AND wake_at <= ?1 ORDER BY wake_at, id LIMIT ?2";
}

/// How long a statement waits for another process's write lock before failing as transient.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader connections for a file database.
pub const DEFAULT_READER_CONNECTIONS: u32 = 8;

/// The SQLite implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection: every write transaction, in order.
    writer: SqlitePool,
    /// Plain reads. The same pool as `writer` for an in-memory database.
    reader: SqlitePool,
}

/// SQLite's extended result code for a constraint raised by a trigger (`SQLITE_CONSTRAINT_TRIGGER`).
const SQLITE_CONSTRAINT_TRIGGER: &str = "1811";

/// Maps a sqlx error onto the store's classes: constraint violations are conflicts, decoding
/// problems corrupt rows, and everything else (I/O, `SQLITE_BUSY`, a closed pool) transient.
pub(crate) fn db_err(error: sqlx::Error) -> StoreError {
    use sqlx::error::ErrorKind;
    match error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation
            | ErrorKind::ForeignKeyViolation
            | ErrorKind::NotNullViolation
            | ErrorKind::CheckViolation => StoreError::Conflict(db.message().to_owned()),
            // A trigger's RAISE(ABORT, …), e.g. a write to the append-only audit log.
            _ if db.code().as_deref() == Some(SQLITE_CONSTRAINT_TRIGGER) => {
                StoreError::Conflict(db.message().to_owned())
            }
            _ => StoreError::Database(db.message().to_owned()),
        },
        e @ (sqlx::Error::Decode(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }) => StoreError::CorruptRow(e.to_string()),
        e => StoreError::Database(e.to_string()),
    }
}

fn is_memory_url(url: &str) -> bool {
    url.starts_with("sqlite::memory:") || url.contains("mode=memory")
}

impl SqliteStore {
    /// Opens (creating if missing, parent directories included) `sqlite://PATH`, or a private
    /// in-memory database for `sqlite::memory:`. Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("invalid sqlite url: {e}")))?
            .foreign_keys(true)
            .busy_timeout(DEFAULT_BUSY_TIMEOUT);

        if is_memory_url(url) {
            // One connection kept forever: the database lives exactly as long as the store.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .map_err(db_err)?;
            return Ok(Self {
                writer: pool.clone(),
                reader: pool,
            });
        }

        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Database(format!("cannot create database directory: {e}"))
            })?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                options
                    .clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal),
            )
            .await
            .map_err(db_err)?;
        // Opened after the writer, so the file exists and is already in WAL mode (a persistent
        // setting); `query_only` makes an accidental write through a reader fail loudly.
        let reader = SqlitePoolOptions::new()
            .max_connections(DEFAULT_READER_CONNECTIONS)
            .connect_with(
                options
                    .synchronous(SqliteSynchronous::Normal)
                    .pragma("query_only", "ON"),
            )
            .await
            .map_err(db_err)?;
        Ok(Self { writer, reader })
    }

    /// Closes both pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// A write transaction holding the database write lock from its first statement.
    async fn begin(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)
    }
}

async fn fetch_document(
    conn: &mut SqliteConnection,
    scope: &OwnerScope,
    id: DocumentId,
) -> StoreResult<DocumentRecord> {
    let row = sqlx::query(concat!(
        document_select!(),
        " WHERE d.id = ?1 AND (?2 IS NULL OR d.owner_id = ?2)"
    ))
    .bind(id.to_string())
    .bind(scope.owner_param())
    .fetch_optional(conn)
    .await
    .map_err(db_err)?
    .ok_or(StoreError::NotFound)?;
    rows::document(&row)
}

async fn fetch_scoped_job(
    conn: &mut SqliteConnection,
    scope: &OwnerScope,
    id: JobId,
) -> StoreResult<JobRecord> {
    let job = jobs::fetch(conn, id).await?.ok_or(StoreError::NotFound)?;
    if scope.includes(&job.owner) {
        Ok(job)
    } else {
        Err(StoreError::NotFound)
    }
}

async fn document_exists(conn: &mut SqliteConnection, id: DocumentId) -> StoreResult<bool> {
    Ok(sqlx::query("SELECT 1 FROM documents WHERE id = ?1")
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(db_err)?
        .is_some())
}

async fn insert_audit(conn: &mut SqliteConnection, record: &AuditRecord) -> StoreResult<()> {
    sqlx::query(concat!(
        "INSERT INTO audit_log (",
        audit_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))
    .bind(record.seq)
    .bind(to_ms(record.at))
    .bind(record.actor.as_str())
    .bind(record.action.as_str())
    .bind(record.resource_type.as_str())
    .bind(record.resource_id.as_deref())
    .bind(record.outcome.as_str())
    .bind(record.request_id.as_deref())
    .bind(record.source_ip.as_deref())
    .bind(record.entry.as_slice())
    .bind(record.prev_hash.as_slice())
    .bind(record.hash.as_slice())
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

fn to_i64(value: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Conflict(format!("{what} out of range")))
}

fn count(row: &sqlx::sqlite::SqliteRow, column: &str) -> StoreResult<u32> {
    let value: i64 = row.try_get(column).map_err(db_err)?;
    u32::try_from(value).map_err(|_| rows::corrupt(format!("{column} out of range")))
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        migrations::migrate(&self.writer).await
    }

    async fn migration_status(&self) -> StoreResult<Vec<MigrationInfo>> {
        migrations::status(&self.reader).await
    }

    async fn prune_orphan_embeddings(&self) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let removed = sqlx::query(
            "DELETE FROM embeddings \
             WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.text_sha256 = embeddings.text_sha256) \
               AND NOT EXISTS (SELECT 1 FROM staged_chunks s WHERE s.text_sha256 = embeddings.text_sha256)",
        )
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        tx.commit().await.map_err(db_err)?;
        Ok(removed)
    }

    async fn try_lead(&self) -> StoreResult<Option<Box<dyn crate::Leadership>>> {
        Ok(Some(Box::new(crate::AlwaysLeading)))
    }

    async fn listen_for_work(&self, _wake: Arc<Notify>) -> StoreResult<bool> {
        // SQLite has no cross-process signal: workers in this process are woken directly by the
        // upload path, and other processes poll.
        Ok(false)
    }

    fn pool_stats(&self) -> crate::PoolStats {
        let pools = [&self.writer, &self.reader];
        crate::PoolStats {
            size: pools.iter().map(|p| p.size()).sum(),
            idle: pools.iter().map(|p| p.num_idle() as u32).sum(),
            max: pools
                .iter()
                .map(|p| p.options().get_max_connections())
                .sum(),
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn create_document(&self, new: NewDocument, now: OffsetDateTime) -> StoreResult<Created> {
        let mut tx = self.begin().await?;
        let existing = sqlx::query(
            "SELECT id FROM documents WHERE owner_id = ?1 \
             AND (sha256 = ?2 OR (?3 IS NOT NULL AND idempotency_key = ?3)) \
             ORDER BY idempotency_key IS ?3 DESC LIMIT 1",
        )
        .bind(new.owner.as_str())
        .bind(new.sha256.as_str())
        .bind(new.idempotency_key.as_deref())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if let Some(row) = existing {
            let id: String = row.try_get("id").map_err(db_err)?;
            let id = DocumentId::parse(&id).map_err(|e| rows::corrupt(e.to_string()))?;
            let document = fetch_document(&mut tx, &OwnerScope::All, id).await?;
            let job = jobs::fetch(&mut tx, document.current_job_id)
                .await?
                .ok_or_else(|| rows::corrupt("document without its current job"))?;
            tx.commit().await.map_err(db_err)?;
            return Ok(Created {
                document,
                job,
                duplicate: true,
            });
        }

        let now_ms = to_ms(now);
        sqlx::query(
            "INSERT INTO jobs (id, document_id, owner_id, status, stage, attempts, run_at, \
             created_at, updated_at) VALUES (?1, ?2, ?3, 'queued', 'parse', 0, ?4, ?4, ?4)",
        )
        .bind(new.job_id.to_string())
        .bind(new.id.to_string())
        .bind(new.owner.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO documents (id, owner_id, filename, media_type, bytes, sha256, metadata, \
             idempotency_key, current_job_id, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        )
        .bind(new.id.to_string())
        .bind(new.owner.as_str())
        .bind(new.filename.as_str())
        .bind(new.media_type.as_str())
        .bind(to_i64(new.bytes, "byte count")?)
        .bind(new.sha256.as_str())
        .bind(new.metadata.to_string())
        .bind(new.idempotency_key.as_deref())
        .bind(new.job_id.to_string())
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        jobs::insert_event(
            &mut tx,
            &jobs::Event {
                job_id: new.job_id,
                from: None,
                to: JobStatus::Queued,
                stage: Stage::Parse,
                worker: None,
                duration: None,
                detail: Some("created"),
                error_code: None,
                at: now,
            },
        )
        .await?;
        let document = fetch_document(&mut tx, &OwnerScope::All, new.id).await?;
        let job = jobs::fetch(&mut tx, new.job_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Created {
            document,
            job,
            duplicate: false,
        })
    }

    async fn get_document(
        &self,
        scope: &OwnerScope,
        id: DocumentId,
    ) -> StoreResult<DocumentRecord> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        fetch_document(&mut conn, scope, id).await
    }

    async fn list_documents(
        &self,
        scope: &OwnerScope,
        after: Option<DocumentId>,
        limit: u32,
    ) -> StoreResult<Vec<DocumentRecord>> {
        sqlx::query(concat!(
            document_select!(),
            " WHERE (?1 IS NULL OR d.owner_id = ?1) AND (?2 IS NULL OR d.id > ?2) \
             ORDER BY d.id LIMIT ?3"
        ))
        .bind(scope.owner_param())
        .bind(after.map(|a| a.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::document)
        .collect()
    }

    async fn delete_document(
        &self,
        scope: &OwnerScope,
        id: DocumentId,
        now: OffsetDateTime,
    ) -> StoreResult<DocumentRecord> {
        let mut tx = self.begin().await?;
        let document = fetch_document(&mut tx, scope, id).await?;
        if let Some(job) = jobs::fetch(&mut tx, document.current_job_id).await?
            && !job.status.is_terminal()
        {
            let cas = Cas {
                detail: Some("document deleted"),
                ..Cas::new(job.status, JobStatus::Cancelled)
            };
            jobs::compare_and_set(&mut tx, job.id, &cas, now).await?;
        }
        let doc_id = id.to_string();
        // Its data key goes with it, in this transaction: once committed, whatever was encrypted
        // under it (blobs, backups of them) is unreadable (crypto-shredding).
        sqlx::query("DELETE FROM data_keys WHERE document_id = ?1")
            .bind(&doc_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        // Its remote parse goes with it; usage and webhook delivery rows stay (history).
        sqlx::query("DELETE FROM remote_parses WHERE document_id = ?1 OR job_id = ?2")
            .bind(&doc_id)
            .bind(document.current_job_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        // Embeddings first, while the document's chunks still say which texts it used.
        sqlx::query(
            "DELETE FROM embeddings WHERE text_sha256 IN ( \
                 SELECT text_sha256 FROM chunks WHERE document_id = ?1 \
                 UNION SELECT text_sha256 FROM staged_chunks WHERE document_id = ?1) \
             AND NOT EXISTS (SELECT 1 FROM chunks c \
                 WHERE c.text_sha256 = embeddings.text_sha256 AND c.document_id <> ?1) \
             AND NOT EXISTS (SELECT 1 FROM staged_chunks s \
                 WHERE s.text_sha256 = embeddings.text_sha256 AND s.document_id <> ?1)",
        )
        .bind(&doc_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        for statement in [
            "DELETE FROM chunks_fts WHERE rowid IN (SELECT pk FROM chunks WHERE document_id = ?1)",
            "DELETE FROM chunks WHERE document_id = ?1",
            "DELETE FROM staged_chunks WHERE document_id = ?1",
            "DELETE FROM documents WHERE id = ?1",
        ] {
            sqlx::query(statement)
                .bind(&doc_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(document)
    }

    async fn set_document_parsed(
        &self,
        id: DocumentId,
        pages: u32,
        parser: &str,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE documents SET pages = ?1, parser = ?2 WHERE id = ?3")
            .bind(i64::from(pages))
            .bind(parser)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await.map_err(db_err)
    }

    async fn find_parsed_duplicate(
        &self,
        sha256: &Sha256Hex,
        parser: &str,
        except: DocumentId,
        owner: Option<&OwnerId>,
    ) -> StoreResult<Option<DocumentId>> {
        // Two statements rather than `(?4 IS NULL OR owner_id = ?4)`, so each has a plan that
        // uses its index (see `queries`).
        let query = match owner {
            Some(owner) => sqlx::query_scalar(queries::PARSED_DUPLICATE_OF_OWNER)
                .bind(sha256.as_str())
                .bind(parser)
                .bind(except.to_string())
                .bind(owner.as_str()),
            None => sqlx::query_scalar(queries::PARSED_DUPLICATE_OF_ANY_OWNER)
                .bind(sha256.as_str())
                .bind(parser)
                .bind(except.to_string()),
        };
        let id: Option<String> = query.fetch_optional(&self.reader).await.map_err(db_err)?;
        id.map(|id| DocumentId::parse(&id).map_err(|e| rows::corrupt(format!("column id: {e}"))))
            .transpose()
    }

    async fn put_remote_parse(&self, record: &RemoteParseRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(concat!(
            "INSERT INTO remote_parses (",
            remote_parse_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (job_id) DO UPDATE SET document_id = excluded.document_id, \
             parser = excluded.parser, provider_job_id = excluded.provider_job_id, \
             submitted_at = excluded.submitted_at, delivered_at = excluded.delivered_at, \
             polls = excluded.polls"
        ))
        .bind(record.job_id.to_string())
        .bind(record.document_id.to_string())
        .bind(record.parser.as_str())
        .bind(record.provider_job_id.as_str())
        .bind(to_ms(record.submitted_at))
        .bind(record.delivered_at.map(to_ms))
        .bind(i64::from(record.polls))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn get_remote_parse(&self, job_id: JobId) -> StoreResult<Option<RemoteParseRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            remote_parse_columns!(),
            " FROM remote_parses WHERE job_id = ?1"
        ))
        .bind(job_id.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(rows::remote_parse)
        .transpose()
    }

    async fn mark_remote_parse_delivered(
        &self,
        job_id: JobId,
        provider_job_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let set = sqlx::query(
            "UPDATE remote_parses SET delivered_at = ?1 \
             WHERE job_id = ?2 AND provider_job_id = ?3 AND delivered_at IS NULL",
        )
        .bind(to_ms(now))
        .bind(job_id.to_string())
        .bind(provider_job_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        let exists = set
            || sqlx::query("SELECT 1 FROM remote_parses WHERE job_id = ?1")
                .bind(job_id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .is_some();
        tx.commit().await.map_err(db_err)?;
        if exists {
            Ok(set)
        } else {
            Err(StoreError::NotFound)
        }
    }

    async fn count_remote_parse_poll(&self, job_id: JobId) -> StoreResult<u32> {
        let mut tx = self.begin().await?;
        let polls: Option<i64> = sqlx::query_scalar(
            "UPDATE remote_parses SET polls = polls + 1 WHERE job_id = ?1 RETURNING polls",
        )
        .bind(job_id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let polls = polls.ok_or(StoreError::NotFound)?;
        let polls = u32::try_from(polls).map_err(|_| rows::corrupt("poll count out of range"))?;
        tx.commit().await.map_err(db_err)?;
        Ok(polls)
    }

    async fn delete_remote_parse(&self, job_id: JobId) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM remote_parses WHERE job_id = ?1")
            .bind(job_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn record_webhook_delivery(
        &self,
        delivery_id: &str,
        job_id: JobId,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO webhook_deliveries (delivery_id, job_id, received_at) \
             VALUES (?1, ?2, ?3) ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(delivery_id)
        .bind(job_id.to_string())
        .bind(to_ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        tx.commit().await.map_err(db_err)?;
        Ok(inserted == 1)
    }

    async fn prune_webhook_deliveries(&self, received_before: OffsetDateTime) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let removed = sqlx::query(queries::PRUNE_WEBHOOK_DELIVERIES)
            .bind(to_ms(received_before))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        tx.commit().await.map_err(db_err)?;
        Ok(removed)
    }

    async fn wake_due(&self, now: OffsetDateTime) -> StoreResult<Vec<JobId>> {
        let mut tx = self.begin().await?;
        let woken = jobs::wake_due(&mut tx, now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(woken)
    }

    async fn wake_waiting(
        &self,
        owner: &OwnerId,
        reason: ErrorCode,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<JobId>> {
        let mut tx = self.begin().await?;
        let woken = jobs::wake_waiting(&mut tx, owner, reason, now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(woken)
    }

    async fn record_usage(&self, record: &UsageRecord) -> StoreResult<()> {
        let counts = rows::UsageParams::of(record)?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO usage_ledger (owner_id, document_id, job_id, kind, provider, model, \
             pages, tokens, requests, retries, cost_micro_usd, saved_pages, saved_tokens, \
             saved_cost_micro_usd, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )
        .bind(record.owner.as_str())
        .bind(record.document_id.map(|d| d.to_string()))
        .bind(record.job_id.map(|j| j.to_string()))
        .bind(record.kind.as_str())
        .bind(record.provider.as_str())
        .bind(record.model.as_str())
        .bind(counts.pages)
        .bind(counts.tokens)
        .bind(counts.requests)
        .bind(counts.retries)
        .bind(record.cost_micro_usd)
        .bind(counts.saved_pages)
        .bind(counts.saved_tokens)
        .bind(record.saved_cost_micro_usd)
        .bind(to_ms(record.at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn usage(
        &self,
        scope: &OwnerScope,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<UsageSummary> {
        // One statement per scope shape: `(?1 IS NULL OR owner_id = ?1)` would keep SQLite from
        // using the (owner_id, at) index for a single owner.
        let query = match scope.owner() {
            Some(owner) => sqlx::query(queries::USAGE_OF_OWNER)
                .bind(to_ms(from))
                .bind(to_ms(to))
                .bind(owner.as_str()),
            None => sqlx::query(queries::USAGE_OF_ALL)
                .bind(to_ms(from))
                .bind(to_ms(to)),
        };
        let groups = query.fetch_all(&self.reader).await.map_err(db_err)?;
        rows::usage_summary(&groups)
    }

    async fn owner_spend(&self, owner: &OwnerId, since: OffsetDateTime) -> StoreResult<i64> {
        sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(cost_micro_usd), 0) AS BIGINT) FROM usage_ledger \
             WHERE owner_id = ?1 AND at >= ?2",
        )
        .bind(owner.as_str())
        .bind(to_ms(since))
        .fetch_one(&self.reader)
        .await
        .map_err(db_err)
    }

    async fn get_budget(&self, owner: &OwnerId) -> StoreResult<Option<Budget>> {
        sqlx::query(concat!(
            "SELECT ",
            budget_columns!(),
            " FROM budgets WHERE owner_id = ?1"
        ))
        .bind(owner.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(rows::budget)
        .transpose()
    }

    async fn set_budget(&self, budget: &Budget) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(concat!(
            "INSERT INTO budgets (",
            budget_columns!(),
            ") VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (owner_id) DO UPDATE SET soft_micro_usd = excluded.soft_micro_usd, \
             hard_micro_usd = excluded.hard_micro_usd, updated_at = excluded.updated_at"
        ))
        .bind(budget.owner.as_str())
        .bind(budget.soft_micro_usd)
        .bind(budget.hard_micro_usd)
        .bind(to_ms(budget.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<Option<JobRecord>> {
        let mut tx = self.begin().await?;
        let claimed = jobs::claim(&mut tx, worker, lease, now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(claimed)
    }

    async fn renew_lease(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires_at = ?1, updated_at = ?2 \
             WHERE id = ?3 AND status = 'running' AND lease_owner = ?4",
        )
        .bind(to_ms(rows::add(now, lease)?))
        .bind(to_ms(now))
        .bind(id.to_string())
        .bind(worker)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            let current = jobs::fetch(&mut tx, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            return Err(crate::cas::stale_lease(worker, &current));
        }
        tx.commit().await.map_err(db_err)
    }

    async fn advance_stage(
        &self,
        id: JobId,
        worker: &str,
        next: Stage,
        stage_duration: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<JobRecord> {
        let mut tx = self.begin().await?;
        let current = jobs::fetch(&mut tx, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let updated = sqlx::query(concat!(
            "UPDATE jobs SET stage = ?1, attempts = 1, updated_at = ?2 \
             WHERE id = ?3 AND status = 'running' AND lease_owner = ?4 RETURNING ",
            job_columns!()
        ))
        .bind(next.as_str())
        .bind(to_ms(now))
        .bind(id.to_string())
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = updated else {
            return Err(crate::cas::stale_lease(worker, &current));
        };
        let record = rows::job(&row)?;
        let detail = format!("stage {} complete", current.stage);
        jobs::insert_event(
            &mut tx,
            &jobs::Event {
                job_id: id,
                from: Some(JobStatus::Running),
                to: JobStatus::Running,
                stage: current.stage,
                worker: Some(worker),
                duration: Some(stage_duration),
                detail: Some(&detail),
                error_code: None,
                at: now,
            },
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(record)
    }

    async fn transition(
        &self,
        id: JobId,
        change: Transition,
        now: OffsetDateTime,
    ) -> StoreResult<JobRecord> {
        let cas = Cas {
            expect_lease: change.lease_owner.as_deref(),
            run_at: change.run_at,
            wake_at: change.wake_at,
            error: change.error.as_ref(),
            detail: change.detail.as_deref(),
            duration: change.stage_duration,
            ..Cas::new(change.from, change.to)
        };
        let mut tx = self.begin().await?;
        let record = jobs::compare_and_set(&mut tx, id, &cas, now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(record)
    }

    async fn rescue_expired(&self, now: OffsetDateTime) -> StoreResult<Vec<JobId>> {
        let mut tx = self.begin().await?;
        let rescued = jobs::rescue_expired(&mut tx, now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(rescued)
    }

    async fn retry_job(
        &self,
        scope: &OwnerScope,
        id: JobId,
        now: OffsetDateTime,
    ) -> StoreResult<JobRecord> {
        let mut tx = self.begin().await?;
        fetch_scoped_job(&mut tx, scope, id).await?;
        let cas = Cas {
            run_at: Some(now),
            detail: Some("manual retry"),
            ..Cas::new(JobStatus::Failed, JobStatus::Queued)
        };
        let record = jobs::compare_and_set(&mut tx, id, &cas, now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(record)
    }

    async fn get_job(&self, scope: &OwnerScope, id: JobId) -> StoreResult<JobRecord> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        fetch_scoped_job(&mut conn, scope, id).await
    }

    async fn list_jobs(
        &self,
        scope: &OwnerScope,
        status: Option<JobStatus>,
        after: Option<JobId>,
        limit: u32,
    ) -> StoreResult<Vec<JobRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE (?1 IS NULL OR owner_id = ?1) AND (?2 IS NULL OR status = ?2) \
             AND (?3 IS NULL OR id > ?3) ORDER BY id LIMIT ?4"
        ))
        .bind(scope.owner_param())
        .bind(status.map(JobStatus::as_str))
        .bind(after.map(|a| a.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::job)
        .collect()
    }

    async fn job_events(&self, id: JobId, after_seq: i64) -> StoreResult<Vec<JobEvent>> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        let events = sqlx::query(
            "SELECT seq, job_id, from_status, to_status, stage, worker, duration_ms, detail, \
             error_code, at FROM job_events WHERE job_id = ?1 AND seq > ?2 ORDER BY seq",
        )
        .bind(id.to_string())
        .bind(after_seq)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::event)
        .collect::<StoreResult<Vec<_>>>()?;
        if events.is_empty() && jobs::fetch(&mut conn, id).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        Ok(events)
    }

    async fn set_progress(&self, id: JobId, progress: Progress) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET pages = ?1, chunks_total = ?2, chunks_embedded = ?3 WHERE id = ?4",
        )
        .bind(progress.pages.map(i64::from))
        .bind(progress.chunks_total.map(i64::from))
        .bind(i64::from(progress.chunks_embedded))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await.map_err(db_err)
    }

    async fn queue_stats(&self, now: OffsetDateTime) -> StoreResult<QueueStats> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        let counts = sqlx::query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        let mut by_status: Vec<(JobStatus, u64)> = JobStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for row in &counts {
            let status: String = row.try_get("status").map_err(db_err)?;
            let status = rows::status(&status)?;
            let n: i64 = row.try_get("n").map_err(db_err)?;
            if let Some(slot) = by_status.iter_mut().find(|(s, _)| *s == status) {
                slot.1 = u64::try_from(n).unwrap_or(0);
            }
        }
        let oldest: Option<i64> = sqlx::query(
            "SELECT MIN(run_at) AS oldest FROM jobs \
             WHERE status IN ('queued', 'retrying') AND run_at <= ?1",
        )
        .bind(to_ms(now))
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?
        .try_get("oldest")
        .map_err(db_err)?;
        let oldest_eligible_age = match oldest {
            Some(ms) => {
                let waited = now - rows::from_ms(ms)?;
                Some(Duration::try_from(waited).unwrap_or(Duration::ZERO))
            }
            None => None,
        };
        Ok(QueueStats {
            by_status,
            oldest_eligible_age,
        })
    }

    async fn stage_chunks(
        &self,
        document_id: DocumentId,
        owner: &OwnerId,
        chunks: &[NewChunk],
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let doc_owner: Option<String> =
            sqlx::query_scalar("SELECT owner_id FROM documents WHERE id = ?1")
                .bind(document_id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        match doc_owner {
            None => return Err(StoreError::NotFound),
            Some(o) if o != owner.as_str() => {
                return Err(StoreError::Conflict(
                    "owner does not match the document".to_owned(),
                ));
            }
            Some(_) => {}
        }
        let doc_id = document_id.to_string();
        sqlx::query("DELETE FROM staged_chunks WHERE document_id = ?1")
            .bind(&doc_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for chunk in chunks {
            sqlx::query(concat!(
                "INSERT INTO staged_chunks (",
                chunk_columns!(),
                ", owner_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))
            .bind(chunk.id.to_string())
            .bind(&doc_id)
            .bind(i64::from(chunk.ord))
            .bind(chunk.text.as_str())
            .bind(chunk.text_sha256.as_str())
            .bind(i64::from(chunk.page_start))
            .bind(i64::from(chunk.page_end))
            .bind(chunk.section.as_str())
            .bind(i64::from(chunk.token_count))
            .bind(chunk.chunker.as_str())
            .bind(chunk.chunker_version.as_str())
            .bind(owner.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn staged_texts_missing_embedding(
        &self,
        document_id: DocumentId,
        model: &str,
        limit: u32,
    ) -> StoreResult<Vec<TextToEmbed>> {
        let rows = sqlx::query(
            "SELECT s.text_sha256, MIN(s.text) AS text FROM staged_chunks s \
             WHERE s.document_id = ?1 AND NOT EXISTS ( \
                 SELECT 1 FROM embeddings e WHERE e.model = ?2 AND e.text_sha256 = s.text_sha256) \
             GROUP BY s.text_sha256 ORDER BY MIN(s.ord) LIMIT ?3",
        )
        .bind(document_id.to_string())
        .bind(model)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let sha: String = row.try_get("text_sha256").map_err(db_err)?;
                Ok(TextToEmbed {
                    text_sha256: Sha256Hex::parse(&sha)
                        .map_err(|e| rows::corrupt(format!("column text_sha256: {e}")))?,
                    text: row.try_get("text").map_err(db_err)?,
                })
            })
            .collect()
    }

    async fn staged_embedding_progress(
        &self,
        document_id: DocumentId,
        model: &str,
    ) -> StoreResult<(u32, u32)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS total, COUNT(e.text_sha256) AS embedded FROM staged_chunks s \
             LEFT JOIN embeddings e ON e.model = ?2 AND e.text_sha256 = s.text_sha256 \
             WHERE s.document_id = ?1",
        )
        .bind(document_id.to_string())
        .bind(model)
        .fetch_one(&self.reader)
        .await
        .map_err(db_err)?;
        Ok((count(&row, "total")?, count(&row, "embedded")?))
    }

    async fn put_embeddings(&self, model: &str, embeddings: &[Embedding]) -> StoreResult<()> {
        if embeddings.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT dims FROM embeddings WHERE model = ?1 LIMIT 1")
                .bind(model)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let dims = match existing {
            Some(d) => d,
            None => i64::try_from(embeddings[0].vector.len()).unwrap_or(i64::MAX),
        };
        for embedding in embeddings {
            let len = i64::try_from(embedding.vector.len()).unwrap_or(i64::MAX);
            if len == 0 || len != dims {
                return Err(StoreError::Conflict(format!(
                    "embedding has {len} dimensions, model {model} uses {dims}"
                )));
            }
            if embedding.vector.iter().any(|v| !v.is_finite()) {
                return Err(StoreError::Conflict("embedding is not finite".to_owned()));
            }
            sqlx::query(
                "INSERT INTO embeddings (model, text_sha256, dims, vector) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (model, text_sha256) DO NOTHING",
            )
            .bind(model)
            .bind(embedding.text_sha256.as_str())
            .bind(dims)
            .bind(rows::encode_vector(&embedding.vector))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn publish_staged(
        &self,
        document_id: DocumentId,
        model: &str,
        now: OffsetDateTime,
    ) -> StoreResult<u32> {
        let mut tx = self.begin().await?;
        if !document_exists(&mut tx, document_id).await? {
            return Err(StoreError::NotFound);
        }
        let doc_id = document_id.to_string();
        let staged = sqlx::query(
            "SELECT COUNT(*) AS total, COUNT(e.text_sha256) AS embedded FROM staged_chunks s \
             LEFT JOIN embeddings e ON e.model = ?2 AND e.text_sha256 = s.text_sha256 \
             WHERE s.document_id = ?1",
        )
        .bind(&doc_id)
        .bind(model)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let (total, embedded) = (count(&staged, "total")?, count(&staged, "embedded")?);
        if total > embedded {
            return Err(StoreError::Conflict(format!(
                "{} staged chunks lack an embedding for model {model}",
                total - embedded
            )));
        }
        if total == 0 {
            // Nothing staged: the index stage already ran (work is at-least-once). Publishing
            // an empty set would wipe the live version, so this is a no-op.
            let live: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM chunks WHERE document_id = ?1")
                    .bind(&doc_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            return u32::try_from(live).map_err(|_| rows::corrupt("live chunk count"));
        }
        for statement in [
            "DELETE FROM chunks_fts WHERE rowid IN (SELECT pk FROM chunks WHERE document_id = ?1)",
            "DELETE FROM chunks WHERE document_id = ?1",
            concat!(
                "INSERT INTO chunks (",
                chunk_columns!(),
                ", owner_id, published_at) SELECT ",
                chunk_columns!(),
                ", owner_id, ?2 FROM staged_chunks WHERE document_id = ?1 ORDER BY ord"
            ),
            "INSERT INTO chunks_fts (rowid, text, chunk_id) \
             SELECT pk, text, id FROM chunks WHERE document_id = ?1",
            "DELETE FROM staged_chunks WHERE document_id = ?1",
            "UPDATE documents SET updated_at = ?2 WHERE id = ?1",
        ] {
            sqlx::query(statement)
                .bind(&doc_id)
                .bind(to_ms(now))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(total)
    }

    async fn live_chunks(&self, document_id: DocumentId) -> StoreResult<Vec<ChunkRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            chunk_columns!(),
            " FROM chunks WHERE document_id = ?1 ORDER BY ord"
        ))
        .bind(document_id.to_string())
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::chunk)
        .collect()
    }

    async fn keyword_search(&self, query: &SearchQuery<'_>) -> StoreResult<Vec<ChunkHit>> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        search::keyword(&mut conn, query).await
    }

    async fn vector_search(
        &self,
        query: &SearchQuery<'_>,
        model: &str,
        vector: &[f32],
    ) -> StoreResult<Vec<ChunkHit>> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db_err)?;
        let hits = search::vector(&mut tx, query, model, vector).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(hits)
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(concat!(
            "INSERT INTO api_keys (",
            api_key_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (id) DO NOTHING"
        ))
        .bind(key.id.as_str())
        .bind(key.owner.as_str())
        .bind(rows::roles_param(&key.roles))
        .bind(key.secret_sha256.as_slice())
        .bind(key.label.as_str())
        .bind(to_ms(key.created_at))
        .bind(key.expires_at.map(to_ms))
        .bind(key.revoked_at.map(to_ms))
        .bind(key.last_used_at.map(to_ms))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Conflict("api key id exists".to_owned()));
        }
        tx.commit().await.map_err(db_err)
    }

    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE id = ?1"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(rows::api_key)
        .transpose()
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys ORDER BY created_at, id"
        ))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::api_key)
        .collect()
    }

    async fn revoke_api_key(&self, id: &str, now: OffsetDateTime) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE id = ?1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .ok_or(StoreError::NotFound)?;
        let key = rows::api_key(&row)?;
        if key.revoked_at.is_none() {
            sqlx::query("UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL")
                .bind(to_ms(now))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(key.is_active(now))
    }

    async fn touch_api_key(&self, id: &str, now: OffsetDateTime) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, ?1), ?1) WHERE id = ?2",
        )
        .bind(to_ms(now))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await.map_err(db_err)
    }

    async fn put_data_key(&self, key: &DataKeyRecord) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(concat!(
            "INSERT INTO data_keys (",
            data_key_columns!(),
            ") VALUES (?1, ?2, ?3, ?4) ON CONFLICT (document_id) DO NOTHING"
        ))
        .bind(key.document_id.to_string())
        .bind(key.kek_id.as_str())
        .bind(key.wrapped.as_slice())
        .bind(to_ms(key.created_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        tx.commit().await.map_err(db_err)?;
        Ok(inserted == 1)
    }

    async fn get_data_key(&self, document_id: DocumentId) -> StoreResult<Option<DataKeyRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            data_key_columns!(),
            " FROM data_keys WHERE document_id = ?1"
        ))
        .bind(document_id.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(rows::data_key)
        .transpose()
    }

    async fn data_keys_wrapped_by_other_than(
        &self,
        kek_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<DataKeyRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            data_key_columns!(),
            " FROM data_keys WHERE kek_id <> ?1 ORDER BY document_id LIMIT ?2"
        ))
        .bind(kek_id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::data_key)
        .collect()
    }

    async fn rewrap_data_key(
        &self,
        document_id: DocumentId,
        old_kek_id: &str,
        old_wrapped: &[u8],
        new: &DataKeyRecord,
    ) -> StoreResult<bool> {
        if new.document_id != document_id {
            return Err(StoreError::Conflict(
                "the new data key is for another document".to_owned(),
            ));
        }
        let mut tx = self.begin().await?;
        let swapped = sqlx::query(
            "UPDATE data_keys SET kek_id = ?1, wrapped = ?2 \
             WHERE document_id = ?3 AND kek_id = ?4 AND wrapped = ?5",
        )
        .bind(new.kek_id.as_str())
        .bind(new.wrapped.as_slice())
        .bind(document_id.to_string())
        .bind(old_kek_id)
        .bind(old_wrapped)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        tx.commit().await.map_err(db_err)?;
        Ok(swapped == 1)
    }

    async fn count_data_keys_by_kek(&self) -> StoreResult<Vec<(String, u64)>> {
        sqlx::query("SELECT kek_id, COUNT(*) AS n FROM data_keys GROUP BY kek_id ORDER BY kek_id")
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?
            .iter()
            .map(rows::kek_count)
            .collect()
    }

    async fn append_audit(
        &self,
        entry: &NewAuditEntry,
        sealer: &dyn AuditSealer,
        genesis: &[u8; 32],
    ) -> StoreResult<AuditRecord> {
        // `BEGIN IMMEDIATE`: the write lock is held from here to the commit, so no other
        // connection (in this process or another) can append between reading the head and
        // inserting after it.
        let mut tx = self.begin().await?;
        let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .map(|row| {
                Ok::<_, StoreError>((rows::get(&row, "seq")?, rows::get_hash(&row, "hash")?))
            })
            .transpose()?;
        let record = rows::next_audit(entry, sealer, genesis, head)?;
        insert_audit(&mut tx, &record).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(record)
    }

    async fn audit_entries(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE seq > ?1 \
             AND (?3 IS NULL OR actor = ?3) AND (?4 IS NULL OR action = ?4) \
             AND (?5 IS NULL OR resource_id = ?5) \
             AND (?6 IS NULL OR at >= ?6) AND (?7 IS NULL OR at < ?7) \
             ORDER BY seq LIMIT ?2"
        ))
        .bind(filter.after_seq)
        .bind(i64::from(filter.limit))
        .bind(filter.actor.as_deref())
        .bind(filter.action.as_deref())
        .bind(filter.resource_id.as_deref())
        .bind(filter.from.map(to_ms))
        .bind(filter.to.map(to_ms))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::audit)
        .collect()
    }

    async fn audit_chain(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::audit)
        .collect()
    }

    #[cfg(feature = "conformance")]
    async fn execute_raw_for_tests(&self, sql: &str) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let affected = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        tx.commit().await.map_err(db_err)?;
        Ok(affected)
    }

    #[cfg(feature = "conformance")]
    async fn tamper_audit_for_tests(&self, sql: &str) -> StoreResult<u64> {
        // SQLite cannot disable a trigger: drop the audit log's triggers, run `sql`, and
        // recreate them from their stored definitions, all in one transaction (SQLite DDL is
        // transactional, so no other connection ever sees the log unguarded).
        let mut tx = self.begin().await?;
        let triggers: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        for (name, _) in &triggers {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TRIGGER \"{name}\"")))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let affected = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        for (_, definition) in triggers {
            sqlx::raw_sql(sqlx::AssertSqlSafe(definition))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(affected)
    }
}

/// The statements in [`queries`] are index lookups (an empty database: SQLite plans from the
/// schema alone, so a plan here is the plan without statistics).
#[cfg(test)]
mod plan_tests {
    use super::*;

    async fn plan(store: &SqliteStore, sql: &str, args: &[&str]) -> String {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
        for arg in args {
            query = match arg.parse::<i64>() {
                Ok(n) => query.bind(n),
                Err(_) => query.bind(*arg),
            };
        }
        let rows = query.fetch_all(&store.reader).await.expect("explain");
        rows.iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn plan_sensitive_statements_search_their_index() {
        let store = SqliteStore::connect("sqlite::memory:")
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        let sha = "ab".repeat(32);
        for (sql, args, index) in [
            (
                queries::PARSED_DUPLICATE_OF_OWNER,
                &[sha.as_str(), "p", "id", "alice"][..],
                "documents_owner_sha256|documents_sha256_parser",
            ),
            (
                queries::PARSED_DUPLICATE_OF_ANY_OWNER,
                &[sha.as_str(), "p", "id"][..],
                "documents_sha256_parser",
            ),
            (
                queries::USAGE_OF_OWNER,
                &["1", "2", "alice"][..],
                "usage_ledger_owner_id_at",
            ),
            (queries::USAGE_OF_ALL, &["1", "2"][..], "usage_ledger_at"),
            (
                queries::PRUNE_WEBHOOK_DELIVERIES,
                &["1"][..],
                "webhook_deliveries_received_at",
            ),
            (queries::WAKE_DUE, &["1", "500"][..], "jobs_status_wake_at"),
        ] {
            let plan = plan(&store, sql, args).await;
            assert!(
                plan.lines().any(|l| l.starts_with("SEARCH")
                    && index.split('|').any(|i| l.contains(&format!("INDEX {i} ")))),
                "{sql}\nexpected a search of {index}, got:\n{plan}"
            );
        }
    }
}
