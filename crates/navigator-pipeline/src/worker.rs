//! The worker runtime: claim a job, run its stages in order under a renewed lease, classify any
//! error, and move the job on with compare-and-set transitions.
//!
//! Work is at-least-once and every stage's effect is idempotent (deterministic chunk ids, staged
//! rows replaced wholesale, content-addressed embeddings, an atomic publish), so a stage that is
//! re-run after a crash or a lost lease yields the same rows.
//!
//! [`Worker::run_one`] claims and runs one job and is what tests drive directly; [`Worker::run`]
//! loops it until shutdown.

use crate::blob::BlobError;
use crate::chunk::{CHUNKER_NAME, CHUNKER_VERSION, ChunkerConfig, chunk_document};
use crate::remote::{self, DeliveryError, RemoteParsing};
use crate::usage::{self, Attribution, Consumed, UsagePolicy};
use crate::vault::{BlobKind, DocumentBlobs, VaultError};
use bytes::Bytes;
use futures::StreamExt;
use navigator_domain::error_code::Retryability;
use navigator_domain::retry::RetryDecision;
use navigator_domain::{
    ChunkId, Clock, ErrorCode, JobId, JobStatus, MediaType, RetryPolicy, Sha256Hex, Stage,
};
use navigator_embed::{EmbedError, EmbedUsage, Embedder};
use navigator_parse::sandbox::SandboxLimits;
use navigator_parse::{ParseError, ParsedDocument};
use navigator_remote::parser::{RemoteParse, Submission};
use navigator_remote::resilience::{CallStats, RemoteError};
use navigator_store::{
    DocumentRecord, Embedding, JobError, JobRecord, NewChunk, OwnerScope, Progress,
    RemoteParseRecord, Store, StoreError, Transition, UsageKind,
};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Texts fetched and embedded per round of the embed stage. Larger rounds let the embedder group
/// inputs of similar length into its forward passes (less padding) and cost fewer round trips;
/// progress is recorded after each round, and a crash loses at most one round.
pub const DEFAULT_EMBED_ROUND: usize = 128;

/// How the parse stage runs a parser.
#[derive(Debug, Clone)]
pub enum ParserRunner {
    /// In this process, on a blocking thread, for trusted input only: a parser that balloons
    /// takes the process with it, and one that loops keeps a blocking thread busy. The job itself
    /// still fails with `parser_timeout` after `timeout`, so its lease is not held forever.
    InProcess { timeout: Duration },
    /// In a child process bounded in time and memory (the default).
    Sandbox {
        program: PathBuf,
        args: Vec<String>,
        limits: SandboxLimits,
    },
    /// A remote service (LlamaParse…): the job waits while it works.
    Remote(Arc<RemoteParsing>),
}

/// The name the built-in parsers' artifacts are recorded under: a new release may parse
/// differently, so the parse cache never mixes releases.
pub const BUILTIN_PARSER: &str = concat!("builtin@", env!("CARGO_PKG_VERSION"));

impl ParserRunner {
    /// Which parser produces the artifacts (recorded with them, and the parse-cache key).
    pub fn name(&self) -> &str {
        match self {
            ParserRunner::Remote(remote) => remote.parser.name(),
            _ => BUILTIN_PARSER,
        }
    }

    /// Who is charged in the usage ledger (the key of `usage.prices`): `builtin` or the remote
    /// service's name.
    pub fn provider(&self) -> &str {
        match self {
            ParserRunner::Remote(remote) => remote.parser.name(),
            _ => "builtin",
        }
    }

    async fn parse(&self, media: MediaType, bytes: Bytes) -> Result<ParsedDocument, ParseError> {
        match self {
            ParserRunner::InProcess { timeout } => {
                let parse =
                    tokio::task::spawn_blocking(move || navigator_parse::parse(media, &bytes));
                match tokio::time::timeout(*timeout, parse).await {
                    Ok(joined) => joined.unwrap_or(Err(ParseError::Crashed)),
                    Err(_) => Err(ParseError::Timeout),
                }
            }
            ParserRunner::Sandbox {
                program,
                args,
                limits,
            } => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                navigator_parse::sandbox::parse_in_sandbox(program, &args, media, &bytes, limits)
                    .await
            }
            ParserRunner::Remote(_) => unreachable!("remote parsing goes through the waiting flow"),
        }
    }
}

/// Everything a worker needs; shared by all workers of a process.
pub struct Pipeline {
    pub store: Arc<dyn Store>,
    pub blobs: DocumentBlobs,
    pub embedder: Arc<dyn Embedder>,
    pub parser: ParserRunner,
    pub chunker: ChunkerConfig,
    pub clock: Arc<dyn Clock>,
    pub settings: WorkerSettings,
    /// Prices and budgets for the usage ledger.
    pub usage: UsagePolicy,
    /// Notified when new work is enqueued in this process, so idle workers wake at once.
    pub wake: Arc<Notify>,
}

impl Pipeline {
    /// Appends what `job`'s work consumed to the usage ledger, charged to its owner and
    /// document at the configured prices (see [`usage::record`]).
    pub(crate) async fn charge(
        &self,
        job: &JobRecord,
        kind: UsageKind,
        provider: &str,
        consumed: Consumed,
    ) -> Result<(), StoreError> {
        usage::record(
            self.store.as_ref(),
            &self.usage,
            self.clock.as_ref(),
            Attribution {
                owner: &job.owner,
                document_id: job.document_id,
                job_id: job.id,
            },
            kind,
            provider,
            consumed,
        )
        .await
    }

    /// The remote parser, when one is configured.
    pub fn remote(&self) -> Option<&RemoteParsing> {
        match &self.parser {
            ParserRunner::Remote(remote) => Some(remote),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub lease: Duration,
    pub poll_interval: Duration,
    pub retry: RetryPolicy,
    /// Texts per embed round (see [`DEFAULT_EMBED_ROUND`]); the embedder splits a round into its
    /// own forward-pass batches.
    pub embed_round: usize,
    /// How long an in-flight stage may keep running after shutdown is requested before it is
    /// abandoned and its job handed back.
    pub shutdown_grace: Duration,
    /// Let a document reuse the parsed artifact of another owner's identical file (single-tenant
    /// deployments); by default the parse cache is per owner.
    pub shared_parse_cache: bool,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            lease: DEFAULT_LEASE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            retry: RetryPolicy::default(),
            embed_round: DEFAULT_EMBED_ROUND,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            shared_parse_cache: false,
        }
    }
}

/// How a claimed job left this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Completed,
    Failed(ErrorCode),
    Retrying(ErrorCode),
    /// The job waits for an external event (a remote parser, a raised budget) or its `wake_at`.
    Waiting,
    /// Shutdown: the job went back to `queued` for another worker.
    HandedBack,
    /// The job was moved by someone else (lease lost, document deleted): this worker stopped.
    Superseded,
}

/// A stage failure, classified once.
#[derive(Debug, Clone)]
pub struct StageError {
    pub code: ErrorCode,
    /// Content-free: ids, counts and error kinds only.
    pub message: String,
}

impl StageError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for StageError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::Database(_) => ErrorCode::DatabaseError,
            StoreError::StaleState { .. } => ErrorCode::LeaseLost,
            StoreError::NotFound => ErrorCode::NotFound,
            StoreError::Conflict(_) | StoreError::CorruptRow(_) | StoreError::Illegal { .. } => {
                ErrorCode::IntegrityError
            }
        };
        StageError::new(code, e.to_string())
    }
}

impl From<BlobError> for StageError {
    fn from(e: BlobError) -> Self {
        StageError::new(e.code(), e.to_string())
    }
}

impl From<ParseError> for StageError {
    fn from(e: ParseError) -> Self {
        // ParseError messages are content-free by construction.
        StageError::new(e.code(), e.to_string())
    }
}

impl From<VaultError> for StageError {
    fn from(e: VaultError) -> Self {
        StageError::new(e.code(), e.to_string())
    }
}

impl From<RemoteError> for StageError {
    fn from(e: RemoteError) -> Self {
        StageError::new(e.code(), e.to_string())
    }
}

impl From<DeliveryError> for StageError {
    fn from(e: DeliveryError) -> Self {
        let code = match &e {
            // A result that breaks the contract is the provider's fault: retried.
            DeliveryError::Malformed(_) => ErrorCode::UpstreamBadResponse,
            other => other.code(),
        };
        StageError::new(code, e.to_string())
    }
}

/// How a stage that did not fail ended.
#[derive(Debug, Clone)]
enum StageDone {
    /// Move on to the next stage.
    Next,
    /// Release the job until `until` (or an earlier external event).
    Wait {
        until: time::OffsetDateTime,
        reason: Option<JobError>,
        detail: &'static str,
    },
}

impl From<EmbedError> for StageError {
    fn from(e: EmbedError) -> Self {
        StageError::new(e.code(), e.to_string())
    }
}

/// One worker: an id (the lease owner name) and the shared pipeline.
pub struct Worker {
    pub id: String,
    pipeline: Arc<Pipeline>,
}

impl Worker {
    pub fn new(id: impl Into<String>, pipeline: Arc<Pipeline>) -> Self {
        Self {
            id: id.into(),
            pipeline,
        }
    }

    /// Claims one eligible job and runs it until it completes, fails, is scheduled for retry or is
    /// handed back. `Ok(None)` when there was nothing to do.
    pub async fn run_one(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Option<(JobId, JobOutcome)>, StoreError> {
        let p = &self.pipeline;
        let Some(job) = p
            .store
            .claim_job(&self.id, p.settings.lease, p.clock.now())
            .await?
        else {
            return Ok(None);
        };
        metrics::counter!("navigator_jobs_claimed_total").increment(1);
        debug!(job_id = %job.id, stage = %job.stage, attempt = job.attempts, worker = %self.id, "claimed job");
        let outcome = self.process(job.clone(), shutdown).await;
        Ok(Some((job.id, outcome)))
    }

    /// Runs `run_one` until `shutdown` is cancelled, sleeping `poll_interval` (or until woken)
    /// when idle. Database errors are logged and retried after the poll interval.
    pub async fn run(self, shutdown: CancellationToken) {
        info!(worker = %self.id, "worker started");
        while !shutdown.is_cancelled() {
            match self.run_one(&shutdown).await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => warn!(worker = %self.id, error = %e, "failed to claim a job"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.pipeline.wake.notified() => {}
                _ = tokio::time::sleep(self.pipeline.settings.poll_interval) => {}
            }
        }
        info!(worker = %self.id, "worker stopped");
    }

    async fn process(&self, mut job: JobRecord, shutdown: &CancellationToken) -> JobOutcome {
        let p = &self.pipeline;
        if job.attempts > p.settings.retry.max_attempts {
            // Rescued or handed back too often: the stage keeps dying mid-flight.
            let last = job
                .error
                .as_ref()
                .map(|e| e.code.as_str())
                .unwrap_or("lease expired");
            let error = StageError::new(
                ErrorCode::RetriesExhausted,
                format!(
                    "stage {} gave up after {} attempts; last error: {last}",
                    job.stage,
                    job.attempts - 1
                ),
            );
            return self.finish_failed(&job, error, None).await;
        }

        match self.over_hard_budget(&job).await {
            Ok(true) => {
                let until = p.clock.now() + p.usage.recheck;
                return self
                    .wait(
                        &job,
                        until,
                        Some(usage::budget_exceeded()),
                        "hard budget spent",
                    )
                    .await;
            }
            Ok(false) => {}
            Err(e) => return self.superseded_or_retry(&job, e).await,
        }

        let lease_lost = CancellationToken::new();
        let heartbeat = self.spawn_heartbeat(job.id, lease_lost.clone());
        let _stop_heartbeat = heartbeat.drop_guard();

        let mut progress = job.progress;
        loop {
            if shutdown.is_cancelled() {
                return self.hand_back(&job).await;
            }
            let started = Instant::now();
            let stage = job.stage;
            let result = {
                let work = self.run_stage(&job, &mut progress);
                tokio::pin!(work);
                tokio::select! {
                    r = &mut work => r,
                    _ = lease_lost.cancelled() => {
                        warn!(job_id = %job.id, worker = %self.id, "lease lost; abandoning job");
                        return JobOutcome::Superseded;
                    }
                    _ = shutdown.cancelled() => {
                        match tokio::time::timeout(p.settings.shutdown_grace, &mut work).await {
                            Ok(r) => r,
                            // The stage future is never polled again; it is dropped on return.
                            Err(_) => return self.hand_back(&job).await,
                        }
                    }
                }
            };
            let took = started.elapsed();
            metrics::histogram!("navigator_stage_duration_seconds", "stage" => stage.as_str())
                .record(took.as_secs_f64());
            match result {
                Ok(StageDone::Wait {
                    until,
                    reason,
                    detail,
                }) => return self.wait(&job, until, reason, detail).await,
                Ok(StageDone::Next) => match stage.next() {
                    Some(next) => {
                        match p
                            .store
                            .advance_stage(job.id, &self.id, next, took, p.clock.now())
                            .await
                        {
                            Ok(updated) => job = updated,
                            Err(e) => return self.superseded_or_retry(&job, e.into()).await,
                        }
                    }
                    None => {
                        let change = Transition::new(JobStatus::Running, JobStatus::Complete)
                            .leased_by(&self.id)
                            .took(took);
                        return match p.store.transition(job.id, change, p.clock.now()).await {
                            Ok(_) => {
                                metrics::counter!("navigator_jobs_finished_total", "status" => "complete").increment(1);
                                info!(job_id = %job.id, "job complete");
                                JobOutcome::Completed
                            }
                            Err(e) => self.superseded_or_retry(&job, e.into()).await,
                        };
                    }
                },
                Err(error) => {
                    metrics::counter!("navigator_errors_total", "code" => error.code.as_str())
                        .increment(1);
                    return match error.code.retryability() {
                        Retryability::Permanent => {
                            self.finish_failed(&job, error, Some(took)).await
                        }
                        Retryability::Transient => self.superseded_or_retry(&job, error).await,
                    };
                }
            }
        }
    }

    /// Whether the job is new work that the owner's hard budget holds back. Only work that has
    /// not started is held: a job past its parse (or with a remote parse already paid for) runs
    /// on, so nothing bought is thrown away.
    async fn over_hard_budget(&self, job: &JobRecord) -> Result<bool, StageError> {
        let p = &self.pipeline;
        if job.stage != Stage::Parse
            || (p.remote().is_some() && p.store.get_remote_parse(job.id).await?.is_some())
        {
            return Ok(false);
        }
        let standing = p
            .usage
            .standing(p.store.as_ref(), &job.owner, p.clock.now())
            .await?;
        Ok(standing.hard_exceeded())
    }

    fn spawn_heartbeat(&self, job_id: JobId, lease_lost: CancellationToken) -> CancellationToken {
        let stop = CancellationToken::new();
        let stop_child = stop.clone();
        let p = self.pipeline.clone();
        let worker = self.id.clone();
        tokio::spawn(async move {
            let every = (p.settings.lease / 3).max(Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = stop_child.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                match p
                    .store
                    .renew_lease(job_id, &worker, p.settings.lease, p.clock.now())
                    .await
                {
                    Ok(()) => {}
                    Err(StoreError::StaleState { .. } | StoreError::NotFound) => {
                        lease_lost.cancel();
                        return;
                    }
                    // A transient database error: keep trying until the lease really expires.
                    Err(e) => warn!(job_id = %job_id, error = %e, "failed to renew lease"),
                }
            }
        });
        stop
    }

    /// Releases the job to `waiting` until `until`; an external event may wake it earlier.
    async fn wait(
        &self,
        job: &JobRecord,
        until: time::OffsetDateTime,
        reason: Option<JobError>,
        detail: &str,
    ) -> JobOutcome {
        let p = &self.pipeline;
        let mut change = Transition::new(JobStatus::Running, JobStatus::Waiting)
            .leased_by(&self.id)
            .wake_at(until)
            .detail(detail);
        change.error = reason;
        match p.store.transition(job.id, change, p.clock.now()).await {
            Ok(_) => {
                debug!(job_id = %job.id, stage = %job.stage, "job waiting");
                self.wake_if_delivered(job).await;
                JobOutcome::Waiting
            }
            Err(_) => JobOutcome::Superseded,
        }
    }

    /// A callback that arrived while this worker was polling could not wake the job (it was not
    /// waiting yet): look once more now that it is, so the result is not left until `wake_at`.
    async fn wake_if_delivered(&self, job: &JobRecord) {
        let p = &self.pipeline;
        if job.stage != Stage::Parse || p.remote().is_none() {
            return;
        }
        let delivered = matches!(
            p.store.get_remote_parse(job.id).await,
            Ok(Some(record)) if record.delivered_at.is_some()
        );
        if delivered {
            let wake = Transition::new(JobStatus::Waiting, JobStatus::Queued)
                .detail("remote result already delivered");
            if p.store
                .transition(job.id, wake, p.clock.now())
                .await
                .is_ok()
            {
                p.wake.notify_waiters();
            }
        }
    }

    async fn hand_back(&self, job: &JobRecord) -> JobOutcome {
        let p = &self.pipeline;
        let change = Transition::new(JobStatus::Running, JobStatus::Queued)
            .leased_by(&self.id)
            .run_at(p.clock.now())
            .detail("handed back on shutdown");
        match p.store.transition(job.id, change, p.clock.now()).await {
            Ok(_) => {
                info!(job_id = %job.id, worker = %self.id, "handed job back on shutdown");
                JobOutcome::HandedBack
            }
            // If even this fails, the rescuer returns it when the lease expires.
            Err(e) => {
                warn!(job_id = %job.id, error = %e, "failed to hand job back; the rescuer will");
                JobOutcome::Superseded
            }
        }
    }

    async fn finish_failed(
        &self,
        job: &JobRecord,
        error: StageError,
        took: Option<Duration>,
    ) -> JobOutcome {
        let p = &self.pipeline;
        let mut change = Transition::new(JobStatus::Running, JobStatus::Failed)
            .leased_by(&self.id)
            .error(JobError {
                code: error.code,
                message: error.message.clone(),
            });
        change.stage_duration = took;
        match p.store.transition(job.id, change, p.clock.now()).await {
            Ok(_) => {
                metrics::counter!("navigator_jobs_finished_total", "status" => "failed")
                    .increment(1);
                warn!(job_id = %job.id, stage = %job.stage, code = %error.code, "job failed");
                JobOutcome::Failed(error.code)
            }
            Err(_) => JobOutcome::Superseded,
        }
    }

    /// A transient error: schedule a retry with full-jitter backoff, or give up.
    async fn superseded_or_retry(&self, job: &JobRecord, error: StageError) -> JobOutcome {
        if error.code == ErrorCode::LeaseLost || error.code == ErrorCode::NotFound {
            return JobOutcome::Superseded;
        }
        let p = &self.pipeline;
        let decision = p.settings.retry.decide(job.attempts, &mut rand::rng());
        match decision {
            RetryDecision::GiveUp => {
                let exhausted = StageError::new(
                    ErrorCode::RetriesExhausted,
                    format!(
                        "stage {} failed {} times; last error {}: {}",
                        job.stage, job.attempts, error.code, error.message
                    ),
                );
                self.finish_failed(job, exhausted, None).await
            }
            RetryDecision::RetryAfter(delay) => {
                let now = p.clock.now();
                let change = Transition::new(JobStatus::Running, JobStatus::Retrying)
                    .leased_by(&self.id)
                    .run_at(now + delay)
                    .error(JobError {
                        code: error.code,
                        message: error.message,
                    });
                match p.store.transition(job.id, change, now).await {
                    Ok(_) => {
                        info!(job_id = %job.id, code = %error.code, delay_ms = delay.as_millis() as u64, "job will retry");
                        JobOutcome::Retrying(error.code)
                    }
                    Err(_) => JobOutcome::Superseded,
                }
            }
        }
    }

    async fn run_stage(
        &self,
        job: &JobRecord,
        progress: &mut Progress,
    ) -> Result<StageDone, StageError> {
        match job.stage {
            Stage::Parse => self.parse(job, progress).await,
            Stage::Chunk => self.chunk(job, progress).await.map(|()| StageDone::Next),
            Stage::Embed => self.embed(job, progress).await.map(|()| StageDone::Next),
            Stage::Index => self.index(job).await.map(|()| StageDone::Next),
        }
    }

    async fn parse(
        &self,
        job: &JobRecord,
        progress: &mut Progress,
    ) -> Result<StageDone, StageError> {
        let p = &self.pipeline;
        let document = p
            .store
            .get_document(&OwnerScope::All, job.document_id)
            .await?;
        let parser = p.parser.name().to_owned();
        // A job whose remote parse is already submitted (and paid for) takes its own result.
        let submitted = match p.remote() {
            Some(_) => p.store.get_remote_parse(job.id).await?,
            None => None,
        };
        if submitted.is_none()
            && let Some(pages) = self.reuse_parsed(&document, &parser).await?
        {
            self.finish_parse(job, &parser, pages, progress).await?;
            p.charge(
                job,
                UsageKind::Parse,
                p.parser.provider(),
                Consumed {
                    saved_pages: u64::from(pages),
                    ..Consumed::default()
                },
            )
            .await?;
            return Ok(StageDone::Next);
        }
        if let ParserRunner::Remote(remote) = &p.parser {
            return self
                .parse_remotely(job, &document, remote, submitted, progress)
                .await;
        }
        let bytes = p.blobs.get(job.document_id, BlobKind::Original).await?;
        if bytes.is_empty() {
            return Err(ParseError::Empty.into());
        }
        let parsed = p.parser.parse(document.media_type, bytes).await?;
        let pages = parsed.pages.len() as u32;
        let json = serde_json::to_vec(&parsed).map_err(|_| {
            StageError::new(
                ErrorCode::IntegrityError,
                "parsed document could not be serialised",
            )
        })?;
        p.blobs
            .put(job.document_id, BlobKind::Parsed, &json)
            .await?;
        self.finish_parse(job, &parser, pages, progress).await?;
        p.charge(
            job,
            UsageKind::Parse,
            p.parser.provider(),
            Consumed {
                pages: u64::from(pages),
                ..Consumed::default()
            },
        )
        .await?;
        Ok(StageDone::Next)
    }

    /// The parse cache: another live document with the same bytes, parsed by the same parser,
    /// lends its artifact (copied, so deleting either leaves the other intact). Returns its page
    /// count, or `None` when there is nothing to reuse.
    async fn reuse_parsed(
        &self,
        document: &DocumentRecord,
        parser: &str,
    ) -> Result<Option<u32>, StageError> {
        let p = &self.pipeline;
        // Per owner unless shared: reuse across owners tells one tenant (by its savings, or by
        // speed) that another uploaded the same file.
        let owner = (!p.settings.shared_parse_cache).then_some(&document.owner);
        let Some(source) = p
            .store
            .find_parsed_duplicate(&document.sha256, parser, document.id, owner)
            .await?
        else {
            return Ok(None);
        };
        let raw = match p.blobs.get(source, BlobKind::Parsed).await {
            Ok(raw) => raw,
            // Deleted meanwhile: parse it ourselves.
            Err(VaultError::Blob(BlobError::NotFound) | VaultError::KeyDestroyed) => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let Ok(parsed) = serde_json::from_slice::<ParsedDocument>(&raw) else {
            return Ok(None);
        };
        // Sealed again under this document's own key.
        p.blobs.put(document.id, BlobKind::Parsed, &raw).await?;
        metrics::counter!("navigator_parse_cache_hits_total").increment(1);
        debug!(document_id = %document.id, source = %source, "reused a parsed artifact");
        Ok(Some(parsed.pages.len() as u32))
    }

    /// Records the parsed artifact's page count and parser; the artifact is already stored.
    async fn finish_parse(
        &self,
        job: &JobRecord,
        parser: &str,
        pages: u32,
        progress: &mut Progress,
    ) -> Result<(), StageError> {
        let p = &self.pipeline;
        // The document may have been deleted while the parser ran; its delete already removed the
        // blobs it knew of, so remove the text this stage just wrote rather than leave it behind.
        if let Err(e) = p
            .store
            .set_document_parsed(job.document_id, pages, parser)
            .await
        {
            if matches!(e, StoreError::NotFound) {
                p.blobs.delete_all(job.document_id).await?;
            }
            return Err(e.into());
        }
        progress.pages = Some(pages);
        p.store.set_progress(job.id, *progress).await?;
        metrics::counter!("navigator_pages_parsed_total").increment(u64::from(pages));
        Ok(())
    }

    /// Submits the document (first run, when `submitted` is `None`), then on each wake takes a
    /// delivered result or polls.
    async fn parse_remotely(
        &self,
        job: &JobRecord,
        document: &DocumentRecord,
        remote: &RemoteParsing,
        submitted: Option<RemoteParseRecord>,
        progress: &mut Progress,
    ) -> Result<StageDone, StageError> {
        let p = &self.pipeline;
        let parser = remote.parser.name().to_owned();
        let now = p.clock.now();
        let poll_later = StageDone::Wait {
            until: now + remote.poll_interval,
            reason: None,
            detail: "waiting for the remote parser",
        };
        let Some(record) = submitted.filter(|r| r.parser == parser) else {
            let bytes = p.blobs.get(job.document_id, BlobKind::Original).await?;
            if bytes.is_empty() {
                return Err(ParseError::Empty.into());
            }
            let submitted = remote
                .parser
                .submit(Submission {
                    bytes,
                    media_type: document.media_type,
                    webhook: remote.webhook_target(job.id),
                })
                .await?;
            p.store
                .put_remote_parse(&RemoteParseRecord {
                    job_id: job.id,
                    document_id: job.document_id,
                    parser: parser.clone(),
                    provider_job_id: submitted.value,
                    submitted_at: now,
                    delivered_at: None,
                    polls: 0,
                })
                .await?;
            self.record_calls(job, &parser, submitted.calls).await?;
            info!(job_id = %job.id, "submitted to the remote parser");
            return Ok(poll_later);
        };
        if record.delivered_at.is_none() {
            p.store.count_remote_parse_poll(job.id).await?;
            let polled = match remote.parser.poll(&record.provider_job_id).await {
                Ok(polled) => polled,
                Err(e) => {
                    if !e.is_transient() {
                        // The provider refuses to know the job (expired, key revoked): a retry
                        // must submit afresh rather than poll a dead id.
                        p.store.delete_remote_parse(job.id).await?;
                    }
                    return Err(e.into());
                }
            };
            self.record_calls(job, &parser, polled.calls).await?;
            match polled.value {
                RemoteParse::Pending if now - record.submitted_at > remote.timeout => {
                    p.store.delete_remote_parse(job.id).await?;
                    return Err(StageError::new(
                        ErrorCode::ParserTimeout,
                        format!(
                            "remote parser gave no result within {} s",
                            remote.timeout.as_secs()
                        ),
                    ));
                }
                RemoteParse::Pending => return Ok(poll_later),
                RemoteParse::Failed(reason) => {
                    // A retry submits afresh.
                    p.store.delete_remote_parse(job.id).await?;
                    return Err(StageError::new(
                        ErrorCode::RemoteParseFailed,
                        format!("remote parser could not parse the document ({reason})"),
                    ));
                }
                RemoteParse::Done(pages) => {
                    remote::accept_result(p, job, &record.provider_job_id, &parser, pages).await?;
                }
            }
        }
        let raw = p.blobs.get(job.document_id, BlobKind::Parsed).await?;
        let parsed: ParsedDocument = serde_json::from_slice(&raw).map_err(|_| {
            StageError::new(ErrorCode::IntegrityError, "parsed artifact unreadable")
        })?;
        self.finish_parse(job, &parser, parsed.pages.len() as u32, progress)
            .await?;
        Ok(StageDone::Next)
    }

    /// Charges the requests of a remote call to the job's document.
    async fn record_calls(
        &self,
        job: &JobRecord,
        provider: &str,
        calls: CallStats,
    ) -> Result<(), StageError> {
        let p = &self.pipeline;
        p.charge(
            job,
            UsageKind::Parse,
            provider,
            Consumed {
                requests: u64::from(calls.requests),
                retries: u64::from(calls.retries),
                ..Consumed::default()
            },
        )
        .await?;
        Ok(())
    }

    async fn chunk(&self, job: &JobRecord, progress: &mut Progress) -> Result<(), StageError> {
        let p = &self.pipeline;
        let raw = p.blobs.get(job.document_id, BlobKind::Parsed).await?;
        // serde's message can quote the artifact's text: keep only where it broke.
        let parsed: ParsedDocument = serde_json::from_slice(&raw).map_err(|e| {
            StageError::new(
                ErrorCode::IntegrityError,
                format!(
                    "parsed artifact unreadable ({:?} error at line {}, column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let embedder = p.embedder.clone();
        let config = p.chunker.clone();
        let drafts = tokio::task::spawn_blocking(move || {
            chunk_document(&parsed, embedder.as_ref(), &config)
        })
        .await
        .map_err(|_| StageError::new(ErrorCode::IntegrityError, "chunker panicked"))?;
        if drafts.is_empty() {
            return Err(ParseError::Empty.into());
        }
        let chunks: Vec<NewChunk> = drafts
            .into_iter()
            .map(|d| NewChunk {
                id: ChunkId::derive(job.document_id, CHUNKER_NAME, CHUNKER_VERSION, d.ord),
                ord: d.ord,
                text_sha256: Sha256Hex::of(d.text.as_bytes()),
                text: d.text,
                page_start: d.page_start,
                page_end: d.page_end,
                section: d.section,
                token_count: d.token_count,
                chunker: CHUNKER_NAME.to_owned(),
                chunker_version: CHUNKER_VERSION.to_owned(),
            })
            .collect();
        p.store
            .stage_chunks(job.document_id, &job.owner, &chunks)
            .await?;
        self.record_cache_savings(job, &chunks).await?;
        progress.chunks_total = Some(chunks.len() as u32);
        progress.chunks_embedded = 0;
        p.store.set_progress(job.id, *progress).await?;
        metrics::counter!("navigator_chunks_total").increment(chunks.len() as u64);
        Ok(())
    }

    async fn embed(&self, job: &JobRecord, progress: &mut Progress) -> Result<(), StageError> {
        let p = &self.pipeline;
        let model = p.embedder.model_id().to_owned();
        let round = p.settings.embed_round.max(1) as u32;
        loop {
            let todo = p
                .store
                .staged_texts_missing_embedding(job.document_id, &model, round)
                .await?;
            let todo_was_empty = todo.is_empty();
            if !todo_was_empty {
                self.embed_round(job, &model, todo).await?;
            }
            let (total, embedded) = p
                .store
                .staged_embedding_progress(job.document_id, &model)
                .await?;
            if total == 0 {
                // The document was deleted mid-round: the vectors just stored belong to nobody.
                p.store.prune_orphan_embeddings().await?;
                return Err(StoreError::NotFound.into());
            }
            progress.chunks_total = Some(total);
            progress.chunks_embedded = embedded;
            p.store.set_progress(job.id, *progress).await?;
            if embedded >= total {
                return Ok(());
            }
            if todo_was_empty {
                // Nothing left to embed yet chunks lack vectors: the store disagrees with itself.
                return Err(StageError::new(
                    ErrorCode::IntegrityError,
                    format!(
                        "{} of {total} staged chunks lack an embedding",
                        total - embedded
                    ),
                ));
            }
        }
    }

    /// Embeds one round in calls within the embedder's batch limits, all in flight together (the
    /// embedder bounds its own concurrency). Each call's vectors are stored as soon as it returns,
    /// so when one call fails the others' vectors are kept and never paid for twice.
    async fn embed_round(
        &self,
        job: &JobRecord,
        model: &str,
        todo: Vec<navigator_store::TextToEmbed>,
    ) -> Result<(), StageError> {
        let p = &self.pipeline;
        let embedder = p.embedder.as_ref();
        let counts: Vec<usize> = todo
            .iter()
            .map(|t| embedder.count_tokens(&t.text))
            .collect();
        let ranges = embedder.batch_limits().split(&counts);
        let calls = ranges.len().max(1);
        let todo = &todo;
        let mut results = futures::stream::iter(ranges)
            .map(|range| async move {
                let batch = &todo[range];
                let texts: Vec<String> = batch.iter().map(|t| t.text.clone()).collect();
                (batch, embedder.embed_metered(&texts).await)
            })
            .buffer_unordered(calls);
        let mut spent = EmbedUsage::default();
        let mut first_error: Option<StageError> = None;
        while let Some((batch, result)) = results.next().await {
            let stored = match result {
                Ok(embedded) => {
                    spent.tokens += embedded.usage.tokens;
                    spent.requests += embedded.usage.requests;
                    spent.retries += embedded.usage.retries;
                    self.store_vectors(model, batch, embedded.vectors).await
                }
                Err(e) => Err(e.into()),
            };
            if let Err(e) = stored {
                first_error.get_or_insert(e);
            }
        }
        p.charge(
            job,
            UsageKind::Embed,
            model,
            Consumed {
                tokens: spent.tokens,
                requests: u64::from(spent.requests),
                retries: u64::from(spent.retries),
                ..Consumed::default()
            },
        )
        .await?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn store_vectors(
        &self,
        model: &str,
        batch: &[navigator_store::TextToEmbed],
        vectors: Vec<Vec<f32>>,
    ) -> Result<(), StageError> {
        let p = &self.pipeline;
        if vectors.len() != batch.len()
            || vectors.iter().any(|v| v.len() != p.embedder.dimensions())
        {
            return Err(StageError::new(
                ErrorCode::EmbedderError,
                "embedder returned the wrong number or size of vectors",
            ));
        }
        let embeddings: Vec<Embedding> = batch
            .iter()
            .zip(vectors)
            .map(|(t, vector)| Embedding {
                text_sha256: t.text_sha256.clone(),
                vector,
            })
            .collect();
        p.store.put_embeddings(model, &embeddings).await?;
        metrics::counter!("navigator_embeddings_total").increment(embeddings.len() as u64);
        Ok(())
    }

    /// After staging: chunks whose text already has a vector (from another document or an
    /// earlier version) will cost nothing to embed; record the tokens the cache saved.
    async fn record_cache_savings(
        &self,
        job: &JobRecord,
        chunks: &[NewChunk],
    ) -> Result<(), StageError> {
        let p = &self.pipeline;
        let model = p.embedder.model_id();
        let missing: HashSet<_> = p
            .store
            .staged_texts_missing_embedding(job.document_id, model, u32::MAX)
            .await?
            .into_iter()
            .map(|t| t.text_sha256)
            .collect();
        let saved_tokens: u64 = chunks
            .iter()
            .filter(|c| !missing.contains(&c.text_sha256))
            .map(|c| u64::from(c.token_count))
            .sum();
        if saved_tokens > 0 {
            metrics::counter!("navigator_embedding_cache_saved_tokens_total")
                .increment(saved_tokens);
        }
        p.charge(
            job,
            UsageKind::Embed,
            model,
            Consumed {
                saved_tokens,
                ..Consumed::default()
            },
        )
        .await?;
        Ok(())
    }

    async fn index(&self, job: &JobRecord) -> Result<(), StageError> {
        let p = &self.pipeline;
        let live = p
            .store
            .publish_staged(job.document_id, p.embedder.model_id(), p.clock.now())
            .await?;
        debug!(job_id = %job.id, chunks = live, "published chunks");
        Ok(())
    }
}
