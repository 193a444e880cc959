//! The PostgreSQL backend: for deployments with several API and worker processes, and for
//! corpora whose vector search needs an index.
//!
//! Main type: [`PgStore`]. Key design choices:
//! - One pool; every write is one transaction under READ COMMITTED. Job status changes lock the
//!   job row (`SELECT … FOR UPDATE`) and then compare-and-set it with an
//!   `UPDATE … WHERE id AND status [AND lease_owner]` guard, recording the event in the same
//!   transaction — the same single code path as the SQLite backend (`jobs::compare_and_set`).
//! - Claims pick the earliest eligible job with `FOR UPDATE SKIP LOCKED`, so any number of
//!   workers in any number of processes claim side by side and never share a job.
//! - Audit log appends take a transaction-level advisory lock as their first statement, then read
//!   the chain's head and insert after it: appenders in every process queue on the lock, so the
//!   chain never forks (and a unique `prev_hash` would refuse a fork). Row triggers refuse UPDATE
//!   and DELETE, a statement trigger TRUNCATE.
//! - The schema mirrors SQLite's: text uuids (`COLLATE "C"`, so id order is time order), BIGINT
//!   unix-millisecond timestamps, the same migration versions and descriptions.
//! - Keyword search is a generated `tsvector` column with a GIN index, ranked by `ts_rank_cd`;
//!   vector search is pgvector cosine distance, through a partial HNSW index for 384-dimension
//!   models and an exact scan otherwise (see the `search` module).
//! - Batched writes (`stage_chunks`, `put_embeddings`) send whole arrays and `UNNEST` them: one
//!   round trip per call, whatever the batch size.

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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Postgres, Transaction};
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
         WHERE owner_id = $4 AND sha256 = $1 AND parser = $2 AND pages IS NOT NULL \
         AND id <> $3";
    /// Uses `documents_sha256_parser` (sha256, parser) WHERE pages IS NOT NULL.
    pub(super) const PARSED_DUPLICATE_OF_ANY_OWNER: &str = "SELECT id FROM documents \
         WHERE sha256 = $1 AND parser = $2 AND pages IS NOT NULL AND id <> $3 \
         ORDER BY id LIMIT 1";
    /// Uses `usage_ledger_owner_id_at` (owner_id, at).
    pub(super) const USAGE_OF_OWNER: &str = concat!(
        "SELECT owner_id, document_id, ",
        usage_sums!(),
        " FROM usage_ledger WHERE owner_id = $3 AND at >= $1 AND at < $2 \
         GROUP BY owner_id, document_id"
    );
    /// Uses `usage_ledger_at` (at).
    pub(super) const USAGE_OF_ALL: &str = concat!(
        "SELECT owner_id, document_id, ",
        usage_sums!(),
        " FROM usage_ledger WHERE at >= $1 AND at < $2 GROUP BY owner_id, document_id"
    );
    /// Uses `webhook_deliveries_received_at`.
    pub(super) const PRUNE_WEBHOOK_DELIVERIES: &str =
        "DELETE FROM webhook_deliveries WHERE received_at < $1";
    /// Uses `jobs_waiting_wake_at` (wake_at, id) WHERE status = 'waiting'; `$2` is
    /// [`crate::WAKE_BATCH`]. Rows another sweep holds are skipped (it wakes them).
    pub(super) const WAKE_DUE: &str = "SELECT id FROM jobs \
         WHERE status = 'waiting' AND wake_at <= $1 \
         ORDER BY wake_at, id LIMIT $2 FOR UPDATE SKIP LOCKED";
}

/// Connections per process.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// How long a call waits for a free connection before failing as transient.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Server-side limit on any one statement.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The PostgreSQL implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// Maps a sqlx error onto the store's classes: integrity violations (SQLSTATE class 23) and
/// data exceptions (class 22: a NUL byte in text, a malformed vector) are conflicts — retrying
/// cannot help; decoding problems are corrupt rows; everything else (I/O, serialization
/// failures, deadlocks, timeouts, a closed pool) is transient.
pub(crate) fn db_err(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if code.starts_with("23") || code.starts_with("22") {
                StoreError::Conflict(db.message().to_owned())
            } else {
                StoreError::Database(db.message().to_owned())
            }
        }
        e @ (sqlx::Error::Decode(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }) => StoreError::CorruptRow(e.to_string()),
        e => StoreError::Database(e.to_string()),
    }
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db)
        if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// The advisory-lock key of the maintenance leader ("navmaint" in ASCII).
const MAINTENANCE_LOCK_KEY: i64 = 0x6e61_766d_6169_6e74;

/// The transaction-level advisory-lock key that serialises audit log appends ("navaudit" in
/// ASCII).
const AUDIT_LOCK_KEY: i64 = 0x6e61_7661_7564_6974;

/// Holds the maintenance advisory lock on its own connection.
struct PgLeadership {
    conn: sqlx::PgConnection,
}

#[async_trait::async_trait]
impl crate::Leadership for PgLeadership {
    async fn still_leading(&mut self) -> bool {
        // The lock is the session's: if the session still answers, it still holds it.
        sqlx::query("SELECT 1")
            .execute(&mut self.conn)
            .await
            .is_ok()
    }
}

/// Pool limits and server-side timeouts for [`PgStore::connect_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgPoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
    pub idle_in_transaction_timeout: Duration,
    /// TLS to the server (libpq's `sslmode`). An `sslmode` in the URL (or `PGSSLMODE`) that is
    /// stricter wins, so a default here never weakens what the URL asks for.
    pub tls_mode: PgTlsMode,
    /// PEM file of the CA(s) the server's certificate must chain to (libpq's `sslrootcert`);
    /// `None` keeps the URL's `sslrootcert`, if any.
    pub tls_ca_path: Option<std::path::PathBuf>,
}

/// libpq's `sslmode` (without `allow`, which only downgrades).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PgTlsMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, else plain; the certificate is not checked.
    #[default]
    Prefer,
    /// TLS or fail; the certificate is checked only when a CA file is given (as verify-ca).
    Require,
    /// TLS, the certificate chained to the CA file.
    VerifyCa,
    /// TLS, the certificate chained to the CA file and naming the host connected to.
    VerifyFull,
}

impl PgTlsMode {
    /// The stricter of this mode and `other` (from the URL).
    fn at_least(self, other: sqlx::postgres::PgSslMode) -> sqlx::postgres::PgSslMode {
        use sqlx::postgres::PgSslMode;
        let rank = |mode: PgSslMode| match mode {
            PgSslMode::Disable => 0,
            PgSslMode::Allow => 1,
            PgSslMode::Prefer => 2,
            PgSslMode::Require => 3,
            PgSslMode::VerifyCa => 4,
            PgSslMode::VerifyFull => 5,
        };
        let ours = self.ssl_mode();
        if rank(other) > rank(ours) {
            other
        } else {
            ours
        }
    }

    fn ssl_mode(self) -> sqlx::postgres::PgSslMode {
        use sqlx::postgres::PgSslMode;
        match self {
            Self::Disable => PgSslMode::Disable,
            Self::Prefer => PgSslMode::Prefer,
            Self::Require => PgSslMode::Require,
            Self::VerifyCa => PgSslMode::VerifyCa,
            Self::VerifyFull => PgSslMode::VerifyFull,
        }
    }
}

/// Server-side cap on a transaction left idle.
pub const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for PgPoolSettings {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            idle_in_transaction_timeout: DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT,
            tls_mode: PgTlsMode::default(),
            tls_ca_path: None,
        }
    }
}

impl PgStore {
    /// Connects to `postgres://…` with the default [`PgPoolSettings`]. Does not migrate: call
    /// [`Store::migrate`].
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, &PgPoolSettings::default()).await
    }

    /// Connects with explicit pool limits and server-side timeouts.
    pub async fn connect_with(url: &str, settings: &PgPoolSettings) -> StoreResult<Self> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("invalid postgres url: {e}")))?;
        let ssl_mode = settings.tls_mode.at_least(options.get_ssl_mode());
        options = options.ssl_mode(ssl_mode);
        if let Some(ca) = &settings.tls_ca_path {
            options = options.ssl_root_cert(ca);
        }
        let options = options.application_name("navigator").options([
            (
                "statement_timeout",
                format!("{}ms", settings.statement_timeout.as_millis()),
            ),
            (
                "idle_in_transaction_session_timeout",
                format!("{}ms", settings.idle_in_transaction_timeout.as_millis()),
            ),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(db_err)?;
        Ok(Self { pool })
    }

    /// Wraps an existing pool (its connection settings are the caller's).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(db_err)
    }

    /// Commits `tx` when `result` is `Ok`, and otherwise rolls it back *now*. A dropped
    /// transaction's ROLLBACK is only sent when the pool's release task gets to it; until then
    /// its row locks stay held, and a `SKIP LOCKED` claim would pass over a job that a stale
    /// compare-and-set merely looked at.
    async fn finish<T>(
        tx: Transaction<'static, Postgres>,
        result: StoreResult<T>,
    ) -> StoreResult<T> {
        match result {
            Ok(value) => {
                tx.commit().await.map_err(db_err)?;
                Ok(value)
            }
            Err(error) => {
                let _ = tx.rollback().await;
                Err(error)
            }
        }
    }

    /// One attempt of [`Store::create_document`]; a unique violation (a concurrent upload of the
    /// same bytes or key won the race) is returned raw so the caller can look again.
    async fn try_create_document(
        &self,
        new: &NewDocument,
        now: OffsetDateTime,
    ) -> Result<StoreResult<Created>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let existing = sqlx::query(
            "SELECT id FROM documents WHERE owner_id = $1 \
             AND (sha256 = $2 OR ($3::text IS NOT NULL AND idempotency_key = $3)) \
             ORDER BY (idempotency_key IS NOT DISTINCT FROM $3) DESC LIMIT 1",
        )
        .bind(new.owner.as_str())
        .bind(new.sha256.as_str())
        .bind(new.idempotency_key.as_deref())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let result = async {
                let id = rows::parse_with(&row, "id", DocumentId::parse)?;
                let document = fetch_document(&mut tx, &OwnerScope::All, id).await?;
                let job = jobs::fetch(&mut tx, document.current_job_id)
                    .await?
                    .ok_or_else(|| rows::corrupt("document without its current job"))?;
                Ok(Created {
                    document,
                    job,
                    duplicate: true,
                })
            }
            .await;
            tx.commit().await?;
            return Ok(result);
        }

        let now_ms = to_ms(now);
        let bytes = match to_i64(new.bytes, "byte count") {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        sqlx::query(
            "INSERT INTO jobs (id, document_id, owner_id, status, stage, attempts, run_at, \
             created_at, updated_at) VALUES ($1, $2, $3, 'queued', 'parse', 0, $4, $4, $4)",
        )
        .bind(new.job_id.to_string())
        .bind(new.id.to_string())
        .bind(new.owner.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(jobs::WORK_CHANNEL)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO documents (id, owner_id, filename, media_type, bytes, sha256, metadata, \
             idempotency_key, current_job_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $10)",
        )
        .bind(new.id.to_string())
        .bind(new.owner.as_str())
        .bind(new.filename.as_str())
        .bind(new.media_type.as_str())
        .bind(bytes)
        .bind(new.sha256.as_str())
        .bind(new.metadata.to_string())
        .bind(new.idempotency_key.as_deref())
        .bind(new.job_id.to_string())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let result = async {
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
            Ok(Created {
                document,
                job,
                duplicate: false,
            })
        }
        .await;
        if result.is_ok() {
            tx.commit().await?;
        }
        Ok(result)
    }
}

async fn fetch_document(
    conn: &mut PgConnection,
    scope: &OwnerScope,
    id: DocumentId,
) -> StoreResult<DocumentRecord> {
    let row = sqlx::query(concat!(
        document_select!(),
        " WHERE d.id = $1 AND ($2::text IS NULL OR d.owner_id = $2)"
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
    conn: &mut PgConnection,
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

async fn insert_audit(conn: &mut PgConnection, record: &AuditRecord) -> StoreResult<()> {
    sqlx::query(concat!(
        "INSERT INTO audit_log (",
        audit_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
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

fn count(row: &PgRow, column: &str) -> StoreResult<u32> {
    rows::get_u32(row, column)
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> StoreResult<()> {
        migrations::migrate(&self.pool).await
    }

    async fn migration_status(&self) -> StoreResult<Vec<MigrationInfo>> {
        migrations::status(&self.pool).await
    }

    async fn try_lead(&self) -> StoreResult<Option<Box<dyn crate::Leadership>>> {
        // A dedicated connection, detached from the pool: the session-level advisory lock lives
        // exactly as long as this connection, so a leader that dies (or loses its connection)
        // releases it with no cleanup, and dropping the guard closes the connection.
        let mut conn = self.pool.acquire().await.map_err(db_err)?.detach();
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(MAINTENANCE_LOCK_KEY)
            .fetch_one(&mut conn)
            .await
            .map_err(db_err)?;
        Ok(locked.then(|| Box::new(PgLeadership { conn }) as Box<dyn crate::Leadership>))
    }

    async fn listen_for_work(&self, wake: Arc<Notify>) -> StoreResult<bool> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool)
            .await
            .map_err(db_err)?;
        listener.listen(jobs::WORK_CHANNEL).await.map_err(db_err)?;
        tokio::spawn(async move {
            loop {
                // `recv` reconnects by itself after a lost connection; a notification sent while
                // disconnected is missed, which the workers' poll interval covers.
                match listener.recv().await {
                    Ok(_) => wake.notify_waiters(),
                    Err(e) => {
                        tracing::warn!(error = %e, "work notification listener failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                if Arc::strong_count(&wake) == 1 {
                    return; // nobody left to wake
                }
            }
        });
        Ok(true)
    }

    fn pool_stats(&self) -> crate::PoolStats {
        crate::PoolStats {
            size: self.pool.size(),
            idle: self.pool.num_idle() as u32,
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn create_document(&self, new: NewDocument, now: OffsetDateTime) -> StoreResult<Created> {
        // Two concurrent uploads of the same bytes (or key): the loser's insert fails on the
        // unique index once the winner commits; looking again then finds the winner's document.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_create_document(&new, now).await {
                Ok(result) => return result,
                Err(e) if attempt < 3 && is_unique_violation(&e) => continue,
                Err(e) => return Err(db_err(e)),
            }
        }
    }

    async fn get_document(
        &self,
        scope: &OwnerScope,
        id: DocumentId,
    ) -> StoreResult<DocumentRecord> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
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
            " WHERE ($1::text IS NULL OR d.owner_id = $1) AND ($2::text IS NULL OR d.id > $2) \
             ORDER BY d.id LIMIT $3"
        ))
        .bind(scope.owner_param())
        .bind(after.map(|a| a.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        let result: StoreResult<_> = async {
            // Lock the document first: a concurrent publish or stage of it waits for the delete.
            let locked = sqlx::query("SELECT 1 FROM documents WHERE id = $1 FOR UPDATE")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            if locked.is_none() {
                return Err(StoreError::NotFound);
            }
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
            // Embeddings first, while the document's chunks still say which texts it used.
            sqlx::query(
                "DELETE FROM embeddings WHERE text_sha256 IN ( \
                     SELECT text_sha256 FROM chunks WHERE document_id = $1 \
                     UNION SELECT text_sha256 FROM staged_chunks WHERE document_id = $1) \
                 AND NOT EXISTS (SELECT 1 FROM chunks c \
                     WHERE c.text_sha256 = embeddings.text_sha256 AND c.document_id <> $1) \
                 AND NOT EXISTS (SELECT 1 FROM staged_chunks s \
                     WHERE s.text_sha256 = embeddings.text_sha256 AND s.document_id <> $1)",
            )
            .bind(&doc_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            // Its data key goes with it, in this transaction: once committed, whatever was
            // encrypted under it (blobs, backups of them) is unreadable (crypto-shredding).
            sqlx::query("DELETE FROM data_keys WHERE document_id = $1")
                .bind(&doc_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            // Its remote parse goes with it; usage and webhook delivery rows stay (history).
            sqlx::query("DELETE FROM remote_parses WHERE document_id = $1 OR job_id = $2")
                .bind(&doc_id)
                .bind(document.current_job_id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            for statement in [
                "DELETE FROM chunks WHERE document_id = $1",
                "DELETE FROM staged_chunks WHERE document_id = $1",
                "DELETE FROM documents WHERE id = $1",
            ] {
                sqlx::query(statement)
                    .bind(&doc_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            Ok(document)
        }
        .await;
        Self::finish(tx, result).await
    }

    async fn set_document_parsed(
        &self,
        id: DocumentId,
        pages: u32,
        parser: &str,
    ) -> StoreResult<()> {
        let done = sqlx::query("UPDATE documents SET pages = $1, parser = $2 WHERE id = $3")
            .bind(i64::from(pages))
            .bind(parser)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn find_parsed_duplicate(
        &self,
        sha256: &Sha256Hex,
        parser: &str,
        except: DocumentId,
        owner: Option<&OwnerId>,
    ) -> StoreResult<Option<DocumentId>> {
        // Two statements rather than `($4::text IS NULL OR owner_id = $4)`, so a generic plan
        // of each still uses its index (see `queries`).
        let query = match owner {
            Some(owner) => sqlx::query(queries::PARSED_DUPLICATE_OF_OWNER)
                .bind(sha256.as_str())
                .bind(parser)
                .bind(except.to_string())
                .bind(owner.as_str()),
            None => sqlx::query(queries::PARSED_DUPLICATE_OF_ANY_OWNER)
                .bind(sha256.as_str())
                .bind(parser)
                .bind(except.to_string()),
        };
        query
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|row| rows::parse_with(&row, "id", DocumentId::parse))
            .transpose()
    }

    async fn put_remote_parse(&self, record: &RemoteParseRecord) -> StoreResult<()> {
        sqlx::query(concat!(
            "INSERT INTO remote_parses (",
            remote_parse_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7) \
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
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn get_remote_parse(&self, job_id: JobId) -> StoreResult<Option<RemoteParseRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            remote_parse_columns!(),
            " FROM remote_parses WHERE job_id = $1"
        ))
        .bind(job_id.to_string())
        .fetch_optional(&self.pool)
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
        // A concurrent caller's UPDATE waits for the row lock, then re-checks `provider_job_id`
        // and `delivered_at IS NULL` against the committed row (a resubmission may have
        // replaced it meanwhile) and updates nothing: exactly one caller sets it.
        let set = sqlx::query(
            "UPDATE remote_parses SET delivered_at = $1 \
             WHERE job_id = $2 AND provider_job_id = $3 AND delivered_at IS NULL",
        )
        .bind(to_ms(now))
        .bind(job_id.to_string())
        .bind(provider_job_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        if set {
            return Ok(true);
        }
        let exists = sqlx::query("SELECT 1 FROM remote_parses WHERE job_id = $1")
            .bind(job_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .is_some();
        if exists {
            Ok(false)
        } else {
            Err(StoreError::NotFound)
        }
    }

    async fn count_remote_parse_poll(&self, job_id: JobId) -> StoreResult<u32> {
        let row = sqlx::query(
            "UPDATE remote_parses SET polls = polls + 1 WHERE job_id = $1 RETURNING polls",
        )
        .bind(job_id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or(StoreError::NotFound)?;
        rows::get_u32(&row, "polls")
    }

    async fn delete_remote_parse(&self, job_id: JobId) -> StoreResult<()> {
        sqlx::query("DELETE FROM remote_parses WHERE job_id = $1")
            .bind(job_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn record_webhook_delivery(
        &self,
        delivery_id: &str,
        job_id: JobId,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        // A concurrent insert of the same id waits on the unique index for the first to commit,
        // then does nothing: exactly one caller inserts.
        let inserted = sqlx::query(
            "INSERT INTO webhook_deliveries (delivery_id, job_id, received_at) \
             VALUES ($1, $2, $3) ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(delivery_id)
        .bind(job_id.to_string())
        .bind(to_ms(now))
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn prune_webhook_deliveries(&self, received_before: OffsetDateTime) -> StoreResult<u64> {
        Ok(sqlx::query(queries::PRUNE_WEBHOOK_DELIVERIES)
            .bind(to_ms(received_before))
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected())
    }

    async fn wake_due(&self, now: OffsetDateTime) -> StoreResult<Vec<JobId>> {
        let mut tx = self.begin().await?;
        let result = jobs::wake_due(&mut tx, now).await;
        Self::finish(tx, result).await
    }

    async fn wake_waiting(
        &self,
        owner: &OwnerId,
        reason: ErrorCode,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<JobId>> {
        let mut tx = self.begin().await?;
        let result = jobs::wake_waiting(&mut tx, owner, reason, now).await;
        Self::finish(tx, result).await
    }

    async fn record_usage(&self, record: &UsageRecord) -> StoreResult<()> {
        let counts = rows::UsageParams::of(record)?;
        sqlx::query(
            "INSERT INTO usage_ledger (owner_id, document_id, job_id, kind, provider, model, \
             pages, tokens, requests, retries, cost_micro_usd, saved_pages, saved_tokens, \
             saved_cost_micro_usd, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn usage(
        &self,
        scope: &OwnerScope,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<UsageSummary> {
        // One statement per scope shape: a generic plan of `($1::text IS NULL OR owner_id = $1)`
        // cannot use the (owner_id, at) index.
        let query = match scope.owner() {
            Some(owner) => sqlx::query(queries::USAGE_OF_OWNER)
                .bind(to_ms(from))
                .bind(to_ms(to))
                .bind(owner.as_str()),
            None => sqlx::query(queries::USAGE_OF_ALL)
                .bind(to_ms(from))
                .bind(to_ms(to)),
        };
        let groups = query.fetch_all(&self.pool).await.map_err(db_err)?;
        rows::usage_summary(&groups)
    }

    async fn owner_spend(&self, owner: &OwnerId, since: OffsetDateTime) -> StoreResult<i64> {
        sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(cost_micro_usd), 0) AS BIGINT) FROM usage_ledger \
             WHERE owner_id = $1 AND at >= $2",
        )
        .bind(owner.as_str())
        .bind(to_ms(since))
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn get_budget(&self, owner: &OwnerId) -> StoreResult<Option<Budget>> {
        sqlx::query(concat!(
            "SELECT ",
            budget_columns!(),
            " FROM budgets WHERE owner_id = $1"
        ))
        .bind(owner.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(rows::budget)
        .transpose()
    }

    async fn set_budget(&self, budget: &Budget) -> StoreResult<()> {
        sqlx::query(concat!(
            "INSERT INTO budgets (",
            budget_columns!(),
            ") VALUES ($1, $2, $3, $4) \
             ON CONFLICT (owner_id) DO UPDATE SET soft_micro_usd = excluded.soft_micro_usd, \
             hard_micro_usd = excluded.hard_micro_usd, updated_at = excluded.updated_at"
        ))
        .bind(budget.owner.as_str())
        .bind(budget.soft_micro_usd)
        .bind(budget.hard_micro_usd)
        .bind(to_ms(budget.updated_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<Option<JobRecord>> {
        let mut tx = self.begin().await?;
        let result = jobs::claim(&mut tx, worker, lease, now).await;
        Self::finish(tx, result).await
    }

    async fn renew_lease(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let result = async {
            let done = sqlx::query(
                "UPDATE jobs SET lease_expires_at = $1, updated_at = $2 \
                 WHERE id = $3 AND status = 'running' AND lease_owner = $4",
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
            Ok(())
        }
        .await;
        Self::finish(tx, result).await
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
        let result = async {
            let current = jobs::fetch_for_update(&mut tx, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            let updated = sqlx::query(concat!(
                "UPDATE jobs SET stage = $1, attempts = 1, updated_at = $2 \
             WHERE id = $3 AND status = 'running' AND lease_owner = $4 RETURNING ",
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
            Ok(record)
        }
        .await;
        Self::finish(tx, result).await
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
        let result = jobs::compare_and_set(&mut tx, id, &cas, now).await;
        Self::finish(tx, result).await
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
        let cas = Cas {
            run_at: Some(now),
            detail: Some("manual retry"),
            ..Cas::new(JobStatus::Failed, JobStatus::Queued)
        };
        let mut tx = self.begin().await?;
        let result = async {
            fetch_scoped_job(&mut tx, scope, id).await?;
            jobs::compare_and_set(&mut tx, id, &cas, now).await
        }
        .await;
        Self::finish(tx, result).await
    }

    async fn get_job(&self, scope: &OwnerScope, id: JobId) -> StoreResult<JobRecord> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
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
            " FROM jobs WHERE ($1::text IS NULL OR owner_id = $1) \
             AND ($2::text IS NULL OR status = $2) \
             AND ($3::text IS NULL OR id > $3) ORDER BY id LIMIT $4"
        ))
        .bind(scope.owner_param())
        .bind(status.map(JobStatus::as_str))
        .bind(after.map(|a| a.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::job)
        .collect()
    }

    async fn job_events(&self, id: JobId, after_seq: i64) -> StoreResult<Vec<JobEvent>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let events = sqlx::query(
            "SELECT seq, job_id, from_status, to_status, stage, worker, duration_ms, detail, \
             error_code, at FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY seq",
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
        let done = sqlx::query(
            "UPDATE jobs SET pages = $1, chunks_total = $2, chunks_embedded = $3 WHERE id = $4",
        )
        .bind(progress.pages.map(i64::from))
        .bind(progress.chunks_total.map(i64::from))
        .bind(i64::from(progress.chunks_embedded))
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn queue_stats(&self, now: OffsetDateTime) -> StoreResult<QueueStats> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let counts = sqlx::query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        let mut by_status: Vec<(JobStatus, u64)> = JobStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for row in &counts {
            let status = rows::get_status(row, "status")?;
            let n: i64 = rows::get(row, "n")?;
            if let Some(slot) = by_status.iter_mut().find(|(s, _)| *s == status) {
                slot.1 = u64::try_from(n).unwrap_or(0);
            }
        }
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(run_at) FROM jobs \
             WHERE status IN ('queued', 'retrying') AND run_at <= $1",
        )
        .bind(to_ms(now))
        .fetch_one(&mut *conn)
        .await
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
        let result: StoreResult<_> = async {
            let doc_id = document_id.to_string();
            // Locking the document serialises staging with publish and delete of the same document.
            let doc_owner: Option<String> =
                sqlx::query_scalar("SELECT owner_id FROM documents WHERE id = $1 FOR UPDATE")
                    .bind(&doc_id)
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
            sqlx::query("DELETE FROM staged_chunks WHERE document_id = $1")
                .bind(&doc_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if !chunks.is_empty() {
                let mut ids = Vec::with_capacity(chunks.len());
                let mut ords = Vec::with_capacity(chunks.len());
                let mut texts = Vec::with_capacity(chunks.len());
                let mut shas = Vec::with_capacity(chunks.len());
                let mut page_starts = Vec::with_capacity(chunks.len());
                let mut page_ends = Vec::with_capacity(chunks.len());
                let mut sections = Vec::with_capacity(chunks.len());
                let mut token_counts = Vec::with_capacity(chunks.len());
                let mut chunkers = Vec::with_capacity(chunks.len());
                let mut versions = Vec::with_capacity(chunks.len());
                for chunk in chunks {
                    ids.push(chunk.id.to_string());
                    ords.push(i64::from(chunk.ord));
                    texts.push(chunk.text.as_str());
                    shas.push(chunk.text_sha256.as_str());
                    page_starts.push(i64::from(chunk.page_start));
                    page_ends.push(i64::from(chunk.page_end));
                    sections.push(chunk.section.as_str());
                    token_counts.push(i64::from(chunk.token_count));
                    chunkers.push(chunk.chunker.as_str());
                    versions.push(chunk.chunker_version.as_str());
                }
                sqlx::query(concat!(
                    "INSERT INTO staged_chunks (",
                    chunk_columns!(),
                    ", owner_id) \
                     SELECT u.id, $1, u.ord, u.text, u.text_sha256, u.page_start, u.page_end, \
                     u.section, u.token_count, u.chunker, u.chunker_version, $2 \
                     FROM UNNEST($3::text[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], \
                     $8::bigint[], $9::text[], $10::bigint[], $11::text[], $12::text[]) \
                     AS u(id, ord, text, text_sha256, page_start, page_end, section, token_count, \
                     chunker, chunker_version)"
                ))
                .bind(&doc_id)
                .bind(owner.as_str())
                .bind(&ids)
                .bind(&ords)
                .bind(&texts)
                .bind(&shas)
                .bind(&page_starts)
                .bind(&page_ends)
                .bind(&sections)
                .bind(&token_counts)
                .bind(&chunkers)
                .bind(&versions)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            Ok(())
        }
        .await;
        Self::finish(tx, result).await
    }

    async fn staged_texts_missing_embedding(
        &self,
        document_id: DocumentId,
        model: &str,
        limit: u32,
    ) -> StoreResult<Vec<TextToEmbed>> {
        let rows = sqlx::query(
            "SELECT s.text_sha256, MIN(s.text) AS text FROM staged_chunks s \
             WHERE s.document_id = $1 AND NOT EXISTS ( \
                 SELECT 1 FROM embeddings e WHERE e.model = $2 AND e.text_sha256 = s.text_sha256) \
             GROUP BY s.text_sha256 ORDER BY MIN(s.ord) LIMIT $3",
        )
        .bind(document_id.to_string())
        .bind(model)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(TextToEmbed {
                    text_sha256: rows::get_sha(row, "text_sha256")?,
                    text: rows::get(row, "text")?,
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
             LEFT JOIN embeddings e ON e.model = $2 AND e.text_sha256 = s.text_sha256 \
             WHERE s.document_id = $1",
        )
        .bind(document_id.to_string())
        .bind(model)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok((count(&row, "total")?, count(&row, "embedded")?))
    }

    async fn put_embeddings(&self, model: &str, embeddings: &[Embedding]) -> StoreResult<()> {
        if embeddings.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let result: StoreResult<_> = async {
            // Serialises the first writers of a model, so they agree on its dimension.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(model)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let existing: Option<i32> =
                sqlx::query_scalar("SELECT dims FROM embeddings WHERE model = $1 LIMIT 1")
                    .bind(model)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            let dims = match existing {
                Some(d) => i64::from(d),
                None => i64::try_from(embeddings[0].vector.len()).unwrap_or(i64::MAX),
            };
            let mut shas = Vec::with_capacity(embeddings.len());
            let mut vectors = Vec::with_capacity(embeddings.len());
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
                shas.push(embedding.text_sha256.as_str());
                vectors.push(pgvector::Vector::from(embedding.vector.clone()));
            }
            let dims = i32::try_from(dims)
                .map_err(|_| StoreError::Conflict("embedding too long".to_owned()))?;
            sqlx::query(
                "INSERT INTO embeddings (model, text_sha256, dims, vector) \
                 SELECT $1, u.text_sha256, $2, u.vector \
                 FROM UNNEST($3::text[], $4::vector[]) AS u(text_sha256, vector) \
                 ON CONFLICT (model, text_sha256) DO NOTHING",
            )
            .bind(model)
            .bind(dims)
            .bind(&shas)
            .bind(&vectors)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            Ok(())
        }
        .await;
        Self::finish(tx, result).await
    }

    async fn publish_staged(
        &self,
        document_id: DocumentId,
        model: &str,
        now: OffsetDateTime,
    ) -> StoreResult<u32> {
        let mut tx = self.begin().await?;
        let result: StoreResult<_> = async {
            let doc_id = document_id.to_string();
            let exists = sqlx::query("SELECT 1 FROM documents WHERE id = $1 FOR UPDATE")
                .bind(&doc_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .is_some();
            if !exists {
                return Err(StoreError::NotFound);
            }
            let staged = sqlx::query(
                "SELECT COUNT(*) AS total, COUNT(e.text_sha256) AS embedded FROM staged_chunks s \
                 LEFT JOIN embeddings e ON e.model = $2 AND e.text_sha256 = s.text_sha256 \
                 WHERE s.document_id = $1",
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
                    sqlx::query_scalar("SELECT COUNT(*) FROM chunks WHERE document_id = $1")
                        .bind(&doc_id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db_err)?;
                return u32::try_from(live).map_err(|_| rows::corrupt("live chunk count"));
            }
            sqlx::query("DELETE FROM chunks WHERE document_id = $1")
                .bind(&doc_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query(concat!(
                "INSERT INTO chunks (",
                chunk_columns!(),
                ", owner_id, published_at) SELECT ",
                chunk_columns!(),
                ", owner_id, $2 FROM staged_chunks WHERE document_id = $1 ORDER BY ord"
            ))
            .bind(&doc_id)
            .bind(to_ms(now))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query("DELETE FROM staged_chunks WHERE document_id = $1")
                .bind(&doc_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query("UPDATE documents SET updated_at = $2 WHERE id = $1")
                .bind(&doc_id)
                .bind(to_ms(now))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            Ok(total)
        }
        .await;
        Self::finish(tx, result).await
    }

    async fn prune_orphan_embeddings(&self) -> StoreResult<u64> {
        let removed = sqlx::query(
            "DELETE FROM embeddings \
             WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.text_sha256 = embeddings.text_sha256) \
               AND NOT EXISTS (SELECT 1 FROM staged_chunks s WHERE s.text_sha256 = embeddings.text_sha256)",
        )
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(removed)
    }

    async fn live_chunks(&self, document_id: DocumentId) -> StoreResult<Vec<ChunkRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            chunk_columns!(),
            " FROM chunks WHERE document_id = $1 ORDER BY ord"
        ))
        .bind(document_id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::chunk)
        .collect()
    }

    async fn keyword_search(&self, query: &SearchQuery<'_>) -> StoreResult<Vec<ChunkHit>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        search::keyword(&mut conn, query).await
    }

    async fn vector_search(
        &self,
        query: &SearchQuery<'_>,
        model: &str,
        vector: &[f32],
    ) -> StoreResult<Vec<ChunkHit>> {
        let mut tx = self.begin().await?;
        let hits = search::vector(&mut tx, query, model, vector).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(hits)
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let inserted = sqlx::query(concat!(
            "INSERT INTO api_keys (",
            api_key_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING"
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
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Conflict("api key id exists".to_owned()));
        }
        Ok(())
    }

    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
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
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::api_key)
        .collect()
    }

    async fn revoke_api_key(&self, id: &str, now: OffsetDateTime) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let result = async {
            // Locked, so of concurrent revocations exactly one sees the key unrevoked.
            let row = sqlx::query(concat!(
                "SELECT ",
                api_key_columns!(),
                " FROM api_keys WHERE id = $1 FOR UPDATE"
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .ok_or(StoreError::NotFound)?;
            let key = rows::api_key(&row)?;
            if key.revoked_at.is_none() {
                sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(to_ms(now))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            Ok(key.is_active(now))
        }
        .await;
        Self::finish(tx, result).await
    }

    async fn touch_api_key(&self, id: &str, now: OffsetDateTime) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE api_keys SET last_used_at = GREATEST(last_used_at, $1) WHERE id = $2",
        )
        .bind(to_ms(now))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn put_data_key(&self, key: &DataKeyRecord) -> StoreResult<bool> {
        // A racing insert of the same document waits for the first to commit, then does nothing.
        let inserted = sqlx::query(concat!(
            "INSERT INTO data_keys (",
            data_key_columns!(),
            ") VALUES ($1, $2, $3, $4) ON CONFLICT (document_id) DO NOTHING"
        ))
        .bind(key.document_id.to_string())
        .bind(key.kek_id.as_str())
        .bind(key.wrapped.as_slice())
        .bind(to_ms(key.created_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn get_data_key(&self, document_id: DocumentId) -> StoreResult<Option<DataKeyRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            data_key_columns!(),
            " FROM data_keys WHERE document_id = $1"
        ))
        .bind(document_id.to_string())
        .fetch_optional(&self.pool)
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
            " FROM data_keys WHERE kek_id <> $1 ORDER BY document_id LIMIT $2"
        ))
        .bind(kek_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        // One statement: a concurrent rewrap of the same row waits, then re-checks the guard
        // against the committed row and matches nothing.
        let swapped = sqlx::query(
            "UPDATE data_keys SET kek_id = $1, wrapped = $2 \
             WHERE document_id = $3 AND kek_id = $4 AND wrapped = $5",
        )
        .bind(new.kek_id.as_str())
        .bind(new.wrapped.as_slice())
        .bind(document_id.to_string())
        .bind(old_kek_id)
        .bind(old_wrapped)
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(swapped == 1)
    }

    async fn count_data_keys_by_kek(&self) -> StoreResult<Vec<(String, u64)>> {
        sqlx::query("SELECT kek_id, COUNT(*) AS n FROM data_keys GROUP BY kek_id ORDER BY kek_id")
            .fetch_all(&self.pool)
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
        let mut tx = self.begin().await?;
        let result = async {
            // First statement: every appender in every process queues here until the previous
            // append commits; under READ COMMITTED the head read next then sees that append.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(AUDIT_LOCK_KEY)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
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
            Ok(record)
        }
        .await;
        Self::finish(tx, result).await
    }

    async fn audit_entries(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE seq > $1 \
             AND ($3::text IS NULL OR actor = $3) AND ($4::text IS NULL OR action = $4) \
             AND ($5::text IS NULL OR resource_id = $5) \
             AND ($6::bigint IS NULL OR at >= $6) AND ($7::bigint IS NULL OR at < $7) \
             ORDER BY seq LIMIT $2"
        ))
        .bind(filter.after_seq)
        .bind(i64::from(filter.limit))
        .bind(filter.actor.as_deref())
        .bind(filter.action.as_deref())
        .bind(filter.resource_id.as_deref())
        .bind(filter.from.map(to_ms))
        .bind(filter.to.map(to_ms))
        .fetch_all(&self.pool)
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
            " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::audit)
        .collect()
    }

    #[cfg(feature = "conformance")]
    async fn execute_raw_for_tests(&self, sql: &str) -> StoreResult<u64> {
        Ok(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected())
    }

    #[cfg(feature = "conformance")]
    async fn tamper_audit_for_tests(&self, sql: &str) -> StoreResult<u64> {
        // Disabling triggers is transactional (and locks the table): no other session ever
        // sees the log unguarded, and a failing `sql` leaves them enabled.
        let mut tx = self.begin().await?;
        let result = async {
            sqlx::raw_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let affected = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            sqlx::raw_sql("ALTER TABLE audit_log ENABLE TRIGGER USER")
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            Ok(affected)
        }
        .await;
        Self::finish(tx, result).await
    }
}

/// The statements in [`queries`] can use their index in a *generic* plan (the one a prepared
/// statement settles on after five executions), with sequential scans priced out so a small
/// table's plan shows what the planner can do, not what is cheapest on a handful of rows.
#[cfg(all(test, feature = "conformance"))]
mod plan_tests {
    use super::*;
    use sqlx::{Connection, Row};

    #[tokio::test]
    async fn plan_sensitive_statements_use_their_index_in_generic_plans() {
        let Some(admin) = crate::conformance::postgres_admin_url() else {
            eprintln!("postgres not configured; skipping");
            return;
        };
        let url = crate::conformance::fresh_postgres_database(&admin).await;
        let store = PgStore::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let mut conn = PgConnection::connect(&url).await.expect("connect");
        // Statistics of a ledger with many owners: on an empty, unanalysed table every index
        // costs the same and the choice says nothing.
        sqlx::raw_sql(
            "INSERT INTO usage_ledger (owner_id, kind, provider, model, pages, tokens, requests, \
             retries, cost_micro_usd, saved_pages, saved_tokens, saved_cost_micro_usd, at) \
             SELECT 'owner-' || (g % 100), 'parse', 'p', 'm', 1, 0, 1, 0, 1, 0, 0, 0, g * 1000 \
             FROM generate_series(1, 20000) g; \
             ANALYZE usage_ledger",
        )
        .execute(&mut conn)
        .await
        .expect("ledger rows");
        sqlx::raw_sql("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
            .execute(&mut conn)
            .await
            .expect("settings");
        for (n, (sql, types, args, index)) in [
            (
                queries::PARSED_DUPLICATE_OF_OWNER,
                "text, text, text, text",
                "'x', 'p', 'id', 'alice'",
                "documents_owner_sha256|documents_sha256_parser",
            ),
            (
                queries::PARSED_DUPLICATE_OF_ANY_OWNER,
                "text, text, text",
                "'x', 'p', 'id'",
                "documents_sha256_parser",
            ),
            (
                queries::USAGE_OF_OWNER,
                "bigint, bigint, text",
                "1, 2, 'alice'",
                "usage_ledger_owner_id_at",
            ),
            (
                queries::USAGE_OF_ALL,
                "bigint, bigint",
                "1, 2",
                "usage_ledger_at",
            ),
            (
                queries::PRUNE_WEBHOOK_DELIVERIES,
                "bigint",
                "1",
                "webhook_deliveries_received_at",
            ),
            (
                queries::WAKE_DUE,
                "bigint, bigint",
                "1, 500",
                "jobs_waiting_wake_at",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "PREPARE q{n} ({types}) AS {sql}"
            )))
            .execute(&mut conn)
            .await
            .expect("prepare");
            let plan = sqlx::query(sqlx::AssertSqlSafe(format!(
                "EXPLAIN EXECUTE q{n} ({args})"
            )))
            .fetch_all(&mut conn)
            .await
            .expect("explain")
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect::<Vec<_>>()
            .join("\n");
            assert!(
                index.split('|').any(|i| {
                    plan.contains(&format!("using {i} on "))
                        || plan.contains(&format!("Bitmap Index Scan on {i} "))
                }) && plan.contains("Index Cond")
                    && !plan.contains("Seq Scan"),
                "{sql}\nexpected an index scan of {index}, got:\n{plan}"
            );
        }
    }
}
