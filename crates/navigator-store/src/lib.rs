//! The persistence seam.
//!
//! Main types: the [`Store`] trait (documents, the job queue, staged and live chunks, embeddings,
//! search candidates), [`StoreError`] (each variant classified transient or not), the SQLite
//! implementation [`sqlite::SqliteStore`], and — behind the `conformance` feature — the one test
//! suite every backend must pass ([`conformance`]).
//!
//! Key design choices:
//! - Every job status change is a compare-and-set on the expected status (and lease owner), checked
//!   against the domain transition table, and recorded in `job_events` in the same transaction.
//!   A mismatch is [`StoreError::StaleState`]; a move the table forbids is [`StoreError::Illegal`].
//! - Chunk ids are deterministic (UUIDv5), so chunks of a new run are written to a *staging* table
//!   and [`Store::publish_staged`] swaps them in for the live ones in one transaction: searches see
//!   either the old version or the new one, never a mix.
//! - Embeddings are content-addressed by `(model, sha256(text))`: identical text is embedded once,
//!   and a chunk's vector is found by joining on its text hash.
//! - The store holds no policy: retry limits, lease lengths and backoff come from the caller.
//! - Usage is an append-only ledger summed on read; usage rows and webhook delivery ids hold ids
//!   only and outlive the documents they mention (history), while a document's remote parse row
//!   goes with it.
//! - Security state: API keys are stored as SHA-256 of their secret only; each document's data
//!   key is stored wrapped by a key-encryption key and deleted with the document in the same
//!   transaction (crypto-shredding); the audit log is append-only (database triggers refuse
//!   UPDATE and DELETE) and hash-chained, each row sealed by a caller-supplied [`AuditSealer`]
//!   inside the serialised append transaction.

#![forbid(unsafe_code)]

mod cas;
pub mod keyword;
pub mod postgres;
mod rows;
pub mod sqlite;
mod types;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "test-support")]
pub mod test_databases;

pub use types::*;

use navigator_domain::{DocumentId, ErrorCode, JobId, JobStatus, OwnerId, Sha256Hex, Stage};
use std::time::Duration;
use time::OffsetDateTime;

/// The most jobs one [`Store::wake_due`] call wakes.
pub const WAKE_BATCH: usize = 500;

/// Which documents a caller may see: one owner's, or (operators, admins) everyone's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerScope {
    Owner(OwnerId),
    All,
}

impl OwnerScope {
    pub fn owner(&self) -> Option<&OwnerId> {
        match self {
            OwnerScope::Owner(o) => Some(o),
            OwnerScope::All => None,
        }
    }

    /// The owner filter as a query parameter: `NULL` (no filter) for [`OwnerScope::All`].
    pub fn owner_param(&self) -> Option<&str> {
        self.owner().map(OwnerId::as_str)
    }

    /// Whether a row owned by `owner` is visible in this scope.
    pub fn includes(&self, owner: &OwnerId) -> bool {
        self.owner().is_none_or(|o| o == owner)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The row was not in the expected state (someone else moved it first, or the lease is gone).
    #[error("stale state: expected {expected}, found {actual}")]
    StaleState { expected: String, actual: String },
    /// The domain transition table forbids this move.
    #[error("illegal transition {from} -> {to}")]
    Illegal { from: JobStatus, to: JobStatus },
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database failed or was unreachable: worth retrying.
    #[error("database error: {0}")]
    Database(String),
    /// A stored row could not be decoded: a bug or manual tampering.
    #[error("corrupt row: {0}")]
    CorruptRow(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Database(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything Navigator persists, behind one object-safe trait (`Arc<dyn Store>`).
///
/// All methods are cancel-safe in the sense that each one is a single transaction: dropping the
/// future either commits the whole effect or none of it.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- lifecycle -------------------------------------------------------------------------

    /// Applies pending migrations. Idempotent.
    async fn migrate(&self) -> StoreResult<()>;
    /// `(version, description, applied)` for every known migration.
    async fn migration_status(&self) -> StoreResult<Vec<MigrationInfo>>;
    /// A cheap round trip, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;
    /// Tries to become the cluster's maintenance leader (the one process that runs the rescuer
    /// and sweeps). `None` while another process leads. Leadership lasts as long as the returned
    /// guard is kept and [`Leadership::still_leading`] says so; dropping it steps down.
    async fn try_lead(&self) -> StoreResult<Option<Box<dyn Leadership>>>;
    /// Connection pool occupancy (all of the store's pools together), for metrics.
    fn pool_stats(&self) -> PoolStats;
    /// Starts a background listener that calls `wake.notify_waiters()` whenever a job may have
    /// become claimable anywhere in the cluster (PostgreSQL LISTEN/NOTIFY). Returns `false` when
    /// the backend has no such signal and workers must rely on polling.
    async fn listen_for_work(&self, wake: std::sync::Arc<tokio::sync::Notify>)
    -> StoreResult<bool>;

    // ---- documents -------------------------------------------------------------------------

    /// Creates a document and its job (status `queued`, stage `parse`, `run_at = now`) in one
    /// transaction, unless the owner already has a live document with the same sha256 or the same
    /// idempotency key: then returns that one with `duplicate = true` and creates nothing.
    async fn create_document(&self, new: NewDocument, now: OffsetDateTime) -> StoreResult<Created>;
    async fn get_document(&self, scope: &OwnerScope, id: DocumentId)
    -> StoreResult<DocumentRecord>;
    /// Documents in id order (ids are time-ordered), strictly after `after`.
    async fn list_documents(
        &self,
        scope: &OwnerScope,
        after: Option<DocumentId>,
        limit: u32,
    ) -> StoreResult<Vec<DocumentRecord>>;
    /// Deletes the document and everything derived from it (staged and live chunks, search rows,
    /// embeddings no other chunk uses, its data key) and cancels its job if it is not terminal.
    /// Deleting the data key in the same transaction is what crypto-shreds the document's
    /// encrypted blobs, which are the caller's to delete. `NotFound` if it is not visible in
    /// `scope`.
    async fn delete_document(
        &self,
        scope: &OwnerScope,
        id: DocumentId,
        now: OffsetDateTime,
    ) -> StoreResult<DocumentRecord>;
    /// Records the page count found by the parser and which parser produced the stored parse
    /// artifact (what [`Store::find_parsed_duplicate`] matches on). `NotFound` if the document
    /// is gone.
    async fn set_document_parsed(
        &self,
        id: DocumentId,
        pages: u32,
        parser: &str,
    ) -> StoreResult<()>;
    /// The parse cache lookup: a live document with the same sha256, already parsed by `parser`
    /// (its page count is recorded), other than `except`. The earliest such document when there
    /// are several.
    ///
    /// `Some(owner)` restricts the match to that owner's documents; `None` matches any owner's.
    /// Reusing another owner's parse tells the uploader (by its speed and saved cost) that
    /// someone else uploaded the same file, so callers should scope to the uploader unless
    /// cross-owner reuse is explicitly wanted. Note that an owner has at most one live document
    /// per sha256 (see [`Store::create_document`]), so an owner-scoped lookup for that owner's
    /// own document finds nothing. Both shapes are index lookups on both backends.
    async fn find_parsed_duplicate(
        &self,
        sha256: &Sha256Hex,
        parser: &str,
        except: DocumentId,
        owner: Option<&OwnerId>,
    ) -> StoreResult<Option<DocumentId>>;

    // ---- remote parses and webhooks --------------------------------------------------------

    /// Records a parse submitted to a remote provider, keyed by job: a resubmission of the same
    /// job replaces the row (delivery and poll count included).
    async fn put_remote_parse(&self, record: &RemoteParseRecord) -> StoreResult<()>;
    async fn get_remote_parse(&self, job_id: JobId) -> StoreResult<Option<RemoteParseRecord>>;
    /// Sets `delivered_at` on the job's remote parse row if its `provider_job_id` matches and it
    /// is not delivered yet. Returns `true` only for the call that set it (so a result delivered
    /// by webhook and by poll at once is processed once); `false` if it was already delivered or
    /// if `provider_job_id` is not the job's current submission (a late result of a superseded
    /// submission, which must not mark the resubmission delivered). `NotFound` if the job has no
    /// remote parse row.
    async fn mark_remote_parse_delivered(
        &self,
        job_id: JobId,
        provider_job_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Counts one status poll; returns the new count. `NotFound` if there is no row.
    async fn count_remote_parse_poll(&self, job_id: JobId) -> StoreResult<u32>;
    /// Forgets the remote parse of `job_id`. Idempotent.
    async fn delete_remote_parse(&self, job_id: JobId) -> StoreResult<()>;
    /// Webhook replay protection: records `delivery_id` and returns `true` the first time it is
    /// seen, `false` (changing nothing) every later time. Race-free: of concurrent calls with the
    /// same id, exactly one returns `true`.
    async fn record_webhook_delivery(
        &self,
        delivery_id: &str,
        job_id: JobId,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Forgets webhook delivery ids received strictly before `received_before`; returns how many
    /// were removed. Callers pass `now - 10 minutes`: a delivery is only accepted within ±300 s
    /// of its signed timestamp, so a replay of an id received more than 600 s ago is already
    /// refused as stale and the id no longer needs to be remembered (the margin must also cover
    /// clock skew between the processes that record and prune).
    async fn prune_webhook_deliveries(&self, received_before: OffsetDateTime) -> StoreResult<u64>;

    // ---- waiting jobs ----------------------------------------------------------------------

    /// Moves `waiting` jobs whose `wake_at <= now` to `queued` with `run_at = now`, recording an
    /// event each (detail "wake_at reached"); a compare-and-set like the rescuer. Returns the
    /// woken ids, oldest `wake_at` first.
    ///
    /// At most [`WAKE_BATCH`] jobs are woken per call (oldest `wake_at` first), so one sweep is
    /// never one huge transaction. A result of exactly `WAKE_BATCH` ids means more may be due:
    /// call again (the maintenance loop's next tick does).
    async fn wake_due(&self, now: OffsetDateTime) -> StoreResult<Vec<JobId>>;
    /// Moves every `waiting` job of `owner` that waits for `reason` (its error code) to `queued`
    /// with `run_at = now`, recording an event each (detail "woken: {reason} cleared"). Returns
    /// the woken ids.
    async fn wake_waiting(
        &self,
        owner: &OwnerId,
        reason: ErrorCode,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<JobId>>;

    // ---- usage and budgets -----------------------------------------------------------------

    /// Appends a row to the usage ledger.
    async fn record_usage(&self, record: &UsageRecord) -> StoreResult<()>;
    /// Sums of the ledger rows visible in `scope` with `from <= at < to`, per owner and per
    /// (owner, document); rows without a document count only in their owner's totals.
    async fn usage(
        &self,
        scope: &OwnerScope,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<UsageSummary>;
    /// The owner's `cost_micro_usd` summed over ledger rows with `at >= since` (0 if none).
    async fn owner_spend(&self, owner: &OwnerId, since: OffsetDateTime) -> StoreResult<i64>;
    async fn get_budget(&self, owner: &OwnerId) -> StoreResult<Option<Budget>>;
    /// Creates or replaces the owner's budget.
    async fn set_budget(&self, budget: &Budget) -> StoreResult<()>;

    // ---- API keys --------------------------------------------------------------------------

    /// Stores a new API key. `Conflict` if a key with the same id exists (whatever its state;
    /// the existing row is left as it was).
    async fn create_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    /// The key with this id whatever its state (revoked, expired): the caller checks
    /// [`ApiKeyRecord::is_active`] and the secret.
    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Every key, revoked and expired ones included, by `created_at` (then id).
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Sets `revoked_at = now` unless the key is already revoked (the first revocation time is
    /// kept). Returns `true` if the key was active at `now` ([`ApiKeyRecord::is_active`]: not
    /// revoked and not expired), `false` otherwise — an expired key is still marked revoked.
    /// `NotFound` if there is no such key.
    async fn revoke_api_key(&self, id: &str, now: OffsetDateTime) -> StoreResult<bool>;
    /// Records a use of the key: `last_used_at` becomes `now`, unless it is already later (it
    /// never moves back, so concurrent requests may touch in any order). Applies whatever the
    /// key's state. `NotFound` if there is no such key.
    async fn touch_api_key(&self, id: &str, now: OffsetDateTime) -> StoreResult<()>;

    // ---- data keys (envelope encryption) ---------------------------------------------------

    /// Stores the document's data key unless it already has one. Returns `true` if this call
    /// stored it; `false` (changing nothing) if a key was already there — of two workers racing
    /// to create a document's key exactly one wins, and both must then use
    /// [`Store::get_data_key`]'s row. The document row need not exist yet (its blob is
    /// encrypted before [`Store::create_document`]); [`Store::delete_document`] deletes the key.
    async fn put_data_key(&self, key: &DataKeyRecord) -> StoreResult<bool>;
    async fn get_data_key(&self, document_id: DocumentId) -> StoreResult<Option<DataKeyRecord>>;
    /// At most `limit` data keys not wrapped by `kek_id`, in document id order: the next batch
    /// for `navigator keys rewrap` (rewrapped keys drop out, so calling again makes progress).
    async fn data_keys_wrapped_by_other_than(
        &self,
        kek_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<DataKeyRecord>>;
    /// Replaces the document's `(kek_id, wrapped)` with `new`'s if they are still
    /// `(old_kek_id, old_wrapped)`: a compare-and-set. Returns `false` (changing nothing) if
    /// they changed meanwhile or the key is gone. `created_at` is kept (the data key itself is
    /// the same). `Conflict` if `new.document_id` is not `document_id`.
    async fn rewrap_data_key(
        &self,
        document_id: DocumentId,
        old_kek_id: &str,
        old_wrapped: &[u8],
        new: &DataKeyRecord,
    ) -> StoreResult<bool>;
    /// `(kek_id, number of data keys it wraps)`, by kek id; key-encryption keys wrapping
    /// nothing are absent.
    async fn count_data_keys_by_kek(&self) -> StoreResult<Vec<(String, u64)>>;

    // ---- audit log -------------------------------------------------------------------------

    /// Appends one row to the hash-chained audit log in one transaction: `seq` is the previous
    /// row's `seq + 1` (1 for the first row), `prev_hash` the previous row's `hash` (`genesis`
    /// for the first row; ignored afterwards), and `hash = sealer.seal(seq, &prev_hash,
    /// &entry.entry)`, computed inside the transaction. Appends are serialised across every
    /// process sharing the database (PostgreSQL: a transaction-level advisory lock taken first;
    /// SQLite: the write lock of `BEGIN IMMEDIATE`), so the chain never forks; a unique
    /// `prev_hash` backs that up in the schema. The table refuses UPDATE, DELETE (and on
    /// PostgreSQL TRUNCATE) by trigger.
    async fn append_audit(
        &self,
        entry: &NewAuditEntry,
        sealer: &dyn AuditSealer,
        genesis: &[u8; 32],
    ) -> StoreResult<AuditRecord>;
    /// Rows matching `filter` (see [`AuditFilter`]), in seq order.
    async fn audit_entries(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>>;
    /// At most `limit` rows with `seq > after_seq`, in seq order, unfiltered: what a verifier
    /// walks to recompute the chain.
    async fn audit_chain(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRecord>>;

    // ---- test hooks (conformance builds only) ----------------------------------------------

    /// Runs `sql` on the store's own (write) connection and returns the rows it affected. For
    /// the conformance suite only: shows what the database itself refuses.
    #[doc(hidden)]
    #[cfg(feature = "conformance")]
    async fn execute_raw_for_tests(&self, sql: &str) -> StoreResult<u64>;
    /// Runs `sql` with the audit log's append-only triggers lifted, in one transaction that
    /// restores them before it commits: an attacker with database access, for the conformance
    /// suite's tampering cases only.
    #[doc(hidden)]
    #[cfg(feature = "conformance")]
    async fn tamper_audit_for_tests(&self, sql: &str) -> StoreResult<u64>;

    // ---- jobs ------------------------------------------------------------------------------

    /// Claims the eligible job (`queued`/`retrying`, `run_at <= now`) with the earliest `run_at`:
    /// sets `running`, `lease_owner = worker`, `lease_expires_at = now + lease`, `attempts += 1`.
    /// Two concurrent claims never return the same job.
    async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<Option<JobRecord>>;
    /// Extends the lease; `StaleState` if the job is no longer `running` under `worker`.
    async fn renew_lease(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Records that `worker` finished the job's current stage and moves it to `next`, keeping it
    /// `running` under the same lease; `attempts` becomes 1 (the next stage's first attempt is
    /// under way).
    async fn advance_stage(
        &self,
        id: JobId,
        worker: &str,
        next: Stage,
        stage_duration: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<JobRecord>;
    /// A compare-and-set status change, recorded in `job_events`. `running → queued` is a
    /// hand-back (shutdown) and refunds the attempt its claim counted; so does `running →
    /// waiting` (waiting on an external event is not a failed attempt), which also keeps
    /// `change.error` as the reason the job waits.
    async fn transition(
        &self,
        id: JobId,
        change: Transition,
        now: OffsetDateTime,
    ) -> StoreResult<JobRecord>;
    /// Moves every `running` job whose lease expired before `now` to `retrying` with
    /// `run_at = now`, recording why. Returns the rescued ids.
    async fn rescue_expired(&self, now: OffsetDateTime) -> StoreResult<Vec<JobId>>;
    /// Re-queues a `failed` job at the stage it failed in, attempts reset. `StaleState` otherwise.
    async fn retry_job(
        &self,
        scope: &OwnerScope,
        id: JobId,
        now: OffsetDateTime,
    ) -> StoreResult<JobRecord>;
    async fn get_job(&self, scope: &OwnerScope, id: JobId) -> StoreResult<JobRecord>;
    /// Jobs in id order strictly after `after`, optionally filtered by status.
    async fn list_jobs(
        &self,
        scope: &OwnerScope,
        status: Option<JobStatus>,
        after: Option<JobId>,
        limit: u32,
    ) -> StoreResult<Vec<JobRecord>>;
    /// Events of a job with `seq > after_seq`, in order.
    async fn job_events(&self, id: JobId, after_seq: i64) -> StoreResult<Vec<JobEvent>>;
    /// Overwrites the job's progress counters.
    async fn set_progress(&self, id: JobId, progress: Progress) -> StoreResult<()>;
    /// Counts by status and the age of the oldest eligible job, for metrics and autoscaling.
    async fn queue_stats(&self, now: OffsetDateTime) -> StoreResult<QueueStats>;

    // ---- chunks and embeddings -------------------------------------------------------------

    /// Replaces the document's staged chunks with `chunks` (idempotent: re-staging the same
    /// chunks yields the same rows).
    async fn stage_chunks(
        &self,
        document_id: DocumentId,
        owner: &OwnerId,
        chunks: &[NewChunk],
    ) -> StoreResult<()>;
    /// Distinct `(text_sha256, text)` of staged chunks that have no embedding for `model`,
    /// at most `limit`.
    async fn staged_texts_missing_embedding(
        &self,
        document_id: DocumentId,
        model: &str,
        limit: u32,
    ) -> StoreResult<Vec<TextToEmbed>>;
    /// `(total staged chunks, staged chunks with an embedding for model)`.
    async fn staged_embedding_progress(
        &self,
        document_id: DocumentId,
        model: &str,
    ) -> StoreResult<(u32, u32)>;
    /// Stores embeddings (content-addressed; an existing one for the same key is kept).
    async fn put_embeddings(&self, model: &str, embeddings: &[Embedding]) -> StoreResult<()>;
    /// Atomically replaces the document's live chunks with its staged ones (search rows
    /// included) and clears staging. Fails with `Conflict` if a staged chunk lacks an embedding
    /// for `model`. Returns the number of live chunks.
    async fn publish_staged(
        &self,
        document_id: DocumentId,
        model: &str,
        now: OffsetDateTime,
    ) -> StoreResult<u32>;
    /// Deletes embeddings that no staged or live chunk uses any more (left behind when a document
    /// is deleted while its embed stage is mid-round). Returns how many were removed.
    async fn prune_orphan_embeddings(&self) -> StoreResult<u64>;
    /// Live chunks of a document in order (for tests and exports).
    async fn live_chunks(&self, document_id: DocumentId) -> StoreResult<Vec<ChunkRecord>>;

    // ---- search ----------------------------------------------------------------------------

    /// Keyword search over live chunks visible in `scope`, best first (higher score is better).
    async fn keyword_search(&self, query: &SearchQuery<'_>) -> StoreResult<Vec<ChunkHit>>;
    /// Nearest live chunks by cosine similarity to `vector` for `model`, best first.
    async fn vector_search(
        &self,
        query: &SearchQuery<'_>,
        model: &str,
        vector: &[f32],
    ) -> StoreResult<Vec<ChunkHit>>;
}

/// Held by the maintenance leader; see [`Store::try_lead`].
#[async_trait::async_trait]
pub trait Leadership: Send {
    /// Whether this process still leads (the lock's session may have been lost, e.g. when the
    /// database restarted). Once it returns false, drop the guard and call `try_lead` again.
    async fn still_leading(&mut self) -> bool;
}

/// Leadership on a backend where every process may run maintenance (SQLite: one machine, and
/// every maintenance effect is a compare-and-set, so running it twice is harmless).
pub struct AlwaysLeading;

#[async_trait::async_trait]
impl Leadership for AlwaysLeading {
    async fn still_leading(&mut self) -> bool {
        true
    }
}

/// Transition parameters for [`Store::transition`].
#[derive(Debug, Clone)]
pub struct Transition {
    pub from: JobStatus,
    pub to: JobStatus,
    /// When set, the change applies only if the job is leased by this worker.
    pub lease_owner: Option<String>,
    /// For `queued`/`retrying`: when the job becomes eligible (defaults to now).
    pub run_at: Option<OffsetDateTime>,
    /// For `waiting`: when to wake it.
    pub wake_at: Option<OffsetDateTime>,
    /// Set on `failed`, kept as the last error on `retrying`, and the reason a job waits on
    /// `waiting` (e.g. `budget_exceeded`).
    pub error: Option<JobError>,
    /// Short, content-free note for the event (e.g. "lease expired", "shutdown").
    pub detail: Option<String>,
    pub stage_duration: Option<Duration>,
}

impl Transition {
    pub fn new(from: JobStatus, to: JobStatus) -> Self {
        Self {
            from,
            to,
            lease_owner: None,
            run_at: None,
            wake_at: None,
            error: None,
            detail: None,
            stage_duration: None,
        }
    }

    pub fn leased_by(mut self, worker: &str) -> Self {
        self.lease_owner = Some(worker.to_owned());
        self
    }

    pub fn run_at(mut self, at: OffsetDateTime) -> Self {
        self.run_at = Some(at);
        self
    }

    /// For `waiting`: when [`Store::wake_due`] wakes the job (`None`: only an explicit wake).
    pub fn wake_at(mut self, at: OffsetDateTime) -> Self {
        self.wake_at = Some(at);
        self
    }

    pub fn error(mut self, error: JobError) -> Self {
        self.error = Some(error);
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn took(mut self, duration: Duration) -> Self {
        self.stage_duration = Some(duration);
        self
    }
}
