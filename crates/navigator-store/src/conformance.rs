//! The conformance suite every [`Store`] backend must pass.
//!
//! Main items: the [`store_conformance_tests!`](crate::store_conformance_tests) macro, which
//! stamps out one `#[tokio::test]` per case for a backend, and the cases themselves as
//! `pub async fn(Arc<dyn Store>)`, so a backend can also call them one by one.
//!
//! Key design choice: each case gets a fresh, migrated store from the backend's factory and drives
//! it only through the trait, with `now` injected (no sleeps). A case that passes on SQLite and
//! fails on another backend is a bug in that backend or in the contract's wording, never a flaky
//! test.
//!
//! ```ignore
//! navigator_store::store_conformance_tests!(|| async {
//!     SqliteStore::connect("sqlite::memory:").await.unwrap()
//! });
//! ```

use crate::{ApiKeyRecord, AuditFilter, AuditRecord, AuditSealer, DataKeyRecord, NewAuditEntry};
use crate::{
    Budget, Created, DocumentStatus, DocumentUsage, OwnerUsage, RemoteParseRecord, UsageKind,
    UsageRecord, UsageSummary, UsageTotals,
};
use crate::{
    Embedding, JobError, JobRecord, NewChunk, NewDocument, OwnerScope, SearchQuery, Store,
    StoreError, StoreResult, Transition,
};
use navigator_domain::job::{TRANSITIONS, transition_allowed};
use navigator_domain::{
    ChunkId, DocumentId, ErrorCode, JobStatus, MediaType, OwnerId, Sha256Hex, Stage,
};
use std::any::Any;
use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::datetime;

/// A store under test, plus whatever must live as long as it (a temporary directory, a
/// database handle to drop afterwards).
pub struct Fixture {
    store: Arc<dyn Store>,
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Fixture {
    pub fn new(store: impl Store) -> Self {
        Self {
            store: Arc::new(store),
            _guard: None,
        }
    }

    /// Keeps `guard` alive until the case has finished.
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

impl<S: Store> From<S> for Fixture {
    fn from(store: S) -> Self {
        Fixture::new(store)
    }
}

/// Stamps out one `#[tokio::test]` per conformance case. The argument is a factory: a closure
/// returning a future of a fresh store (`impl Store`) or of a [`Fixture`]. Each case migrates
/// its store first.
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!(@cases $factory;
            migrating_twice_is_harmless_and_every_migration_is_listed_as_applied,
            created_documents_can_be_fetched_and_listed_with_a_cursor,
            uploading_the_same_bytes_again_returns_the_existing_document,
            reusing_an_idempotency_key_returns_the_existing_document,
            another_owner_uploading_the_same_bytes_gets_a_new_document,
            other_owners_documents_and_jobs_are_not_found,
            jobs_can_be_listed_by_status_with_a_cursor,
            document_status_follows_its_current_job,
            page_counts_and_progress_are_stored,
            claim_returns_the_earliest_eligible_job_and_skips_future_ones,
            concurrent_claims_never_return_the_same_job,
            claim_skips_jobs_leased_by_another_worker,
            lease_renewal_by_another_worker_is_stale,
            every_transition_outside_the_table_is_refused_as_illegal,
            transition_from_a_stale_status_is_refused,
            transition_by_a_worker_that_lost_the_lease_is_refused,
            transitions_of_a_missing_job_are_not_found,
            a_job_becomes_running_only_through_a_claim,
            retrying_failing_completing_and_waiting_record_their_effects,
            rescue_moves_only_expired_leases_to_retrying,
            retry_is_only_allowed_from_failed_and_resets_attempts,
            advancing_a_stage_starts_its_first_attempt_and_records_an_event,
            handing_a_job_back_refunds_its_attempt,
            orphan_embeddings_are_pruned_and_used_ones_kept,
            job_events_are_returned_in_sequence_order,
            staging_chunks_is_idempotent_and_replaces_earlier_staging,
            missing_embeddings_are_deduplicated_and_shrink_after_put,
            publish_refuses_while_an_embedding_is_missing,
            publish_atomically_replaces_the_previous_live_set,
            publishing_again_with_nothing_staged_keeps_the_live_set,
            deleting_a_document_removes_everything_derived_from_it,
            deleting_a_document_keeps_embeddings_another_document_uses,
            keyword_search_ranks_the_chunk_with_the_words_first,
            keyword_search_is_owner_scoped_and_filters_documents,
            keyword_search_survives_hostile_queries,
            vector_search_returns_the_nearest_chunk_first,
            vector_search_respects_scope_and_document_filter,
            queue_stats_count_every_status_and_the_oldest_eligible_age,
            the_parse_cache_finds_a_live_copy_parsed_by_the_same_parser_for_any_owner,
            an_owner_scoped_parse_cache_lookup_matches_only_that_owners_documents,
            remote_parses_are_upserted_delivered_once_polled_and_deleted,
            a_superseded_submissions_result_does_not_mark_the_resubmission_delivered,
            deleting_a_document_forgets_its_remote_parse_and_keeps_the_history,
            webhook_deliveries_are_accepted_once_even_when_racing,
            webhook_deliveries_received_before_the_cutoff_are_pruned,
            waiting_refunds_the_attempt_and_keeps_its_reason_until_queued,
            wake_due_wakes_only_due_waiting_jobs_and_records_events,
            wake_due_wakes_every_due_job_oldest_first,
            wake_waiting_wakes_only_that_owners_jobs_waiting_for_that_reason,
            usage_is_summed_per_owner_and_document_within_the_window,
            owner_spend_sums_costs_since_a_time,
            budgets_are_upserted_per_owner,
            api_keys_are_created_fetched_listed_and_touched,
            revoking_an_api_key_reports_whether_it_was_active,
            racing_workers_get_one_data_key_per_document,
            rewrapping_a_data_key_is_a_compare_and_set,
            data_keys_to_rewrap_are_listed_in_batches_and_counted_by_kek,
            deleting_a_document_deletes_its_data_key,
            audit_appends_chain_each_row_to_the_previous_one,
            concurrent_audit_appends_never_fork_the_chain,
            audit_entries_are_filtered_and_paged,
            the_audit_log_refuses_updates_deletes_and_forks,
            tampering_with_the_audit_log_breaks_the_chain,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture = $crate::conformance::Fixture::from((($factory)()).await);
                let store = fixture.store();
                store.migrate().await.expect("migrate");
                $crate::conformance::$case(store).await;
                drop(fixture);
            }
        )*
    };
}

// ---- helpers -------------------------------------------------------------------------------

const MODEL: &str = "test-model";
const LEASE: Duration = Duration::from_secs(30);

fn t0() -> OffsetDateTime {
    datetime!(2030-01-01 00:00 UTC)
}

fn at(secs: i64) -> OffsetDateTime {
    t0() + time::Duration::seconds(secs)
}

fn owner(name: &str) -> OwnerId {
    OwnerId::parse(name).expect("owner id")
}

fn new_document(owner: &OwnerId, content: &str) -> NewDocument {
    NewDocument {
        id: DocumentId::new_v7(),
        job_id: navigator_domain::JobId::new_v7(),
        owner: owner.clone(),
        filename: "notes.txt".to_owned(),
        media_type: MediaType::Text,
        bytes: content.len() as u64,
        sha256: Sha256Hex::of(content.as_bytes()),
        metadata: serde_json::json!({ "source": "conformance" }),
        idempotency_key: None,
    }
}

async fn create(
    store: &Arc<dyn Store>,
    owner: &OwnerId,
    content: &str,
    now: OffsetDateTime,
) -> Created {
    let created = store
        .create_document(new_document(owner, content), now)
        .await
        .expect("create document");
    assert!(!created.duplicate, "{content:?} must be new");
    created
}

fn chunk(document: DocumentId, version: &str, ord: u32, text: &str) -> NewChunk {
    NewChunk {
        id: ChunkId::derive(document, "test", version, ord),
        ord,
        text: text.to_owned(),
        text_sha256: Sha256Hex::of(text.as_bytes()),
        page_start: ord + 1,
        page_end: ord + 1,
        section: format!("Section {ord}"),
        token_count: text.split_whitespace().count() as u32,
        chunker: "test".to_owned(),
        chunker_version: version.to_owned(),
    }
}

fn embedding(text: &str, vector: &[f32]) -> Embedding {
    Embedding {
        text_sha256: Sha256Hex::of(text.as_bytes()),
        vector: vector.to_vec(),
    }
}

/// Stages, embeds and publishes `texts` (with their vectors) as the live set of `created`.
async fn publish(
    store: &Arc<dyn Store>,
    created: &Created,
    version: &str,
    texts: &[(&str, [f32; 3])],
) -> Vec<NewChunk> {
    let doc = created.document.id;
    let chunks: Vec<NewChunk> = texts
        .iter()
        .enumerate()
        .map(|(i, (text, _))| chunk(doc, version, i as u32, text))
        .collect();
    store
        .stage_chunks(doc, &created.document.owner, &chunks)
        .await
        .expect("stage");
    let embeddings: Vec<Embedding> = texts.iter().map(|(t, v)| embedding(t, v)).collect();
    store
        .put_embeddings(MODEL, &embeddings)
        .await
        .expect("put embeddings");
    let published = store
        .publish_staged(doc, MODEL, t0())
        .await
        .expect("publish");
    assert_eq!(published as usize, texts.len());
    chunks
}

fn search<'a>(scope: &'a OwnerScope, text: &'a str) -> SearchQuery<'a> {
    SearchQuery {
        scope,
        text,
        document_ids: None,
        limit: 10,
    }
}

#[track_caller]
fn assert_not_found<T: Debug>(result: StoreResult<T>) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[track_caller]
fn assert_stale<T: Debug>(result: StoreResult<T>) {
    match result {
        Err(StoreError::StaleState { .. }) => {}
        other => panic!("expected StaleState, got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict<T: Debug>(result: StoreResult<T>) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
}

async fn job(store: &Arc<dyn Store>, created: &Created) -> JobRecord {
    store
        .get_job(&OwnerScope::All, created.job.id)
        .await
        .expect("get job")
}

async fn claim(store: &Arc<dyn Store>, worker: &str, now: OffsetDateTime) -> JobRecord {
    store
        .claim_job(worker, LEASE, now)
        .await
        .expect("claim")
        .expect("a job to claim")
}

fn error(code: ErrorCode, message: &str) -> JobError {
    JobError {
        code,
        message: message.to_owned(),
    }
}

// ---- lifecycle and documents ---------------------------------------------------------------

pub async fn migrating_twice_is_harmless_and_every_migration_is_listed_as_applied(
    store: Arc<dyn Store>,
) {
    store.migrate().await.expect("second migrate");
    let status = store.migration_status().await.expect("status");
    assert!(!status.is_empty());
    assert!(status.iter().all(|m| m.applied), "{status:?}");
    let versions: Vec<i64> = status.iter().map(|m| m.version).collect();
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(versions, sorted, "versions ascending and unique");
    store.ping().await.expect("ping");
}

pub async fn created_documents_can_be_fetched_and_listed_with_a_cursor(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let mut ids = Vec::new();
    for i in 0..5 {
        let created = create(&store, &alice, &format!("doc {i}"), at(i)).await;
        let doc = &created.document;
        assert_eq!(doc.owner, alice);
        assert_eq!(doc.status, DocumentStatus::Processing);
        assert_eq!(doc.chunks, 0);
        assert_eq!(doc.pages, None);
        assert_eq!(doc.current_job_id, created.job.id);
        assert_eq!(doc.created_at, at(i));
        assert_eq!(doc.metadata, serde_json::json!({ "source": "conformance" }));
        assert_eq!(created.job.status, JobStatus::Queued);
        assert_eq!(created.job.stage, Stage::Parse);
        assert_eq!(created.job.attempts, 0);
        assert_eq!(created.job.run_at, at(i));
        assert_eq!(created.job.document_id, doc.id);
        let fetched = store
            .get_document(&OwnerScope::Owner(alice.clone()), doc.id)
            .await
            .expect("get");
        assert_eq!(&fetched, doc);
        ids.push(doc.id);
    }
    ids.sort();

    let scope = OwnerScope::Owner(alice.clone());
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_documents(&scope, after, 2).await.expect("list");
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|d| d.id);
        seen.extend(page.into_iter().map(|d| d.id));
    }
    assert_eq!(seen, ids);
}

pub async fn uploading_the_same_bytes_again_returns_the_existing_document(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let first = create(&store, &alice, "same bytes", t0()).await;
    let mut again = new_document(&alice, "same bytes");
    again.filename = "renamed.txt".to_owned();
    let second = store.create_document(again, at(5)).await.expect("create");
    assert!(second.duplicate);
    assert_eq!(second.document.id, first.document.id);
    assert_eq!(second.document.filename, "notes.txt");
    assert_eq!(second.job.id, first.job.id);
    let jobs = store
        .list_jobs(&OwnerScope::All, None, None, 100)
        .await
        .expect("list jobs");
    assert_eq!(jobs.len(), 1, "a duplicate creates no job");
}

pub async fn reusing_an_idempotency_key_returns_the_existing_document(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let mut first = new_document(&alice, "version one");
    first.idempotency_key = Some("key-1".to_owned());
    let first = store.create_document(first, t0()).await.expect("create");
    assert!(!first.duplicate);

    let mut retry = new_document(&alice, "different bytes");
    retry.idempotency_key = Some("key-1".to_owned());
    let retry = store.create_document(retry, at(1)).await.expect("create");
    assert!(retry.duplicate);
    assert_eq!(retry.document.id, first.document.id);

    let mut other_key = new_document(&alice, "different bytes");
    other_key.idempotency_key = Some("key-2".to_owned());
    let other_key = store
        .create_document(other_key, at(2))
        .await
        .expect("create");
    assert!(!other_key.duplicate);

    let mut bob_doc = new_document(&owner("bob"), "bob's bytes");
    bob_doc.idempotency_key = Some("key-1".to_owned());
    let bob_doc = store.create_document(bob_doc, at(3)).await.expect("create");
    assert!(!bob_doc.duplicate, "idempotency keys are per owner");
}

pub async fn another_owner_uploading_the_same_bytes_gets_a_new_document(store: Arc<dyn Store>) {
    let alice_doc = create(&store, &owner("alice"), "shared bytes", t0()).await;
    let bob_doc = create(&store, &owner("bob"), "shared bytes", t0()).await;
    assert_ne!(alice_doc.document.id, bob_doc.document.id);
    assert_ne!(alice_doc.job.id, bob_doc.job.id);
    assert_eq!(alice_doc.document.sha256, bob_doc.document.sha256);
}

pub async fn other_owners_documents_and_jobs_are_not_found(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let bob = OwnerScope::Owner(owner("bob"));
    let created = create(&store, &alice, "alice's", t0()).await;
    let (doc, job_id) = (created.document.id, created.job.id);

    assert_not_found(store.get_document(&bob, doc).await);
    assert!(
        store
            .list_documents(&bob, None, 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_not_found(store.get_job(&bob, job_id).await);
    assert!(
        store
            .list_jobs(&bob, None, None, 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_not_found(store.delete_document(&bob, doc, at(1)).await);
    assert_not_found(store.retry_job(&bob, job_id, at(1)).await);

    // Nothing happened to it, and operators see it.
    let all = store
        .get_document(&OwnerScope::All, doc)
        .await
        .expect("get");
    assert_eq!(all, created.document);
    assert_eq!(
        store
            .list_documents(&OwnerScope::All, None, 10)
            .await
            .expect("list")
            .len(),
        1
    );
    assert_eq!(job(&store, &created).await, created.job);
}

pub async fn jobs_can_be_listed_by_status_with_a_cursor(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            create(&store, &alice, &format!("job {i}"), t0())
                .await
                .job
                .id,
        );
    }
    ids.sort();
    let running = claim(&store, "w1", at(1)).await;

    let scope = OwnerScope::Owner(alice);
    let first = store.list_jobs(&scope, None, None, 3).await.expect("list");
    let rest = store
        .list_jobs(&scope, None, first.last().map(|j| j.id), 3)
        .await
        .expect("list");
    let all: Vec<_> = first.iter().chain(&rest).map(|j| j.id).collect();
    assert_eq!(all, ids);

    let only_running = store
        .list_jobs(&scope, Some(JobStatus::Running), None, 10)
        .await
        .expect("list");
    assert_eq!(only_running.len(), 1);
    assert_eq!(only_running[0].id, running.id);
    let queued = store
        .list_jobs(&scope, Some(JobStatus::Queued), None, 10)
        .await
        .expect("list");
    assert_eq!(queued.len(), 3);
    assert!(queued.iter().all(|j| j.status == JobStatus::Queued));
}

pub async fn document_status_follows_its_current_job(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let scope = OwnerScope::All;
    let ok = create(&store, &alice, "will succeed", t0()).await;
    let running = claim(&store, "w1", at(1)).await;
    assert_eq!(running.id, ok.job.id);
    store
        .transition(
            ok.job.id,
            Transition::new(JobStatus::Running, JobStatus::Complete).leased_by("w1"),
            at(2),
        )
        .await
        .expect("complete");
    let doc = store
        .get_document(&scope, ok.document.id)
        .await
        .expect("get");
    assert_eq!(doc.status, DocumentStatus::Ready);

    let bad = create(&store, &alice, "will fail", at(3)).await;
    claim(&store, "w1", at(4)).await;
    store
        .transition(
            bad.job.id,
            Transition::new(JobStatus::Running, JobStatus::Failed)
                .leased_by("w1")
                .error(error(ErrorCode::CorruptDocument, "corrupt")),
            at(5),
        )
        .await
        .expect("fail");
    let doc = store
        .get_document(&scope, bad.document.id)
        .await
        .expect("get");
    assert_eq!(doc.status, DocumentStatus::Failed);
}

pub async fn page_counts_and_progress_are_stored(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "paged", t0()).await;
    store
        .set_document_parsed(created.document.id, 12, "local")
        .await
        .expect("pages");
    let progress = crate::Progress {
        pages: Some(12),
        chunks_total: Some(40),
        chunks_embedded: 17,
    };
    store
        .set_progress(created.job.id, progress)
        .await
        .expect("progress");
    let doc = store
        .get_document(&OwnerScope::All, created.document.id)
        .await
        .expect("get");
    assert_eq!(doc.pages, Some(12));
    assert_eq!(job(&store, &created).await.progress, progress);

    assert_not_found(
        store
            .set_document_parsed(DocumentId::new_v7(), 1, "local")
            .await,
    );
    assert_not_found(
        store
            .set_progress(navigator_domain::JobId::new_v7(), progress)
            .await,
    );
}

// ---- claims and leases ---------------------------------------------------------------------

pub async fn claim_returns_the_earliest_eligible_job_and_skips_future_ones(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let later = create(&store, &alice, "later", at(2)).await;
    let earlier = create(&store, &alice, "earlier", at(1)).await;
    let future = create(&store, &alice, "future", at(60)).await;

    let first = claim(&store, "w1", at(5)).await;
    assert_eq!(first.id, earlier.job.id);
    assert_eq!(first.status, JobStatus::Running);
    assert_eq!(first.lease_owner.as_deref(), Some("w1"));
    assert_eq!(first.lease_expires_at, Some(at(5) + LEASE));
    assert_eq!(first.attempts, 1);
    assert_eq!(first.wake_at, None);

    let second = claim(&store, "w2", at(5)).await;
    assert_eq!(second.id, later.job.id);

    assert!(
        store
            .claim_job("w3", LEASE, at(5))
            .await
            .expect("claim")
            .is_none()
    );
    let third = claim(&store, "w3", at(60)).await;
    assert_eq!(third.id, future.job.id, "eligible once run_at has passed");
}

pub async fn concurrent_claims_never_return_the_same_job(store: Arc<dyn Store>) {
    let alice = owner("alice");
    for i in 0..3 {
        create(&store, &alice, &format!("job {i}"), t0()).await;
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.claim_job(&format!("worker-{w}"), LEASE, at(1)).await
        }));
    }
    let mut claimed = Vec::new();
    let mut empty = 0;
    for task in tasks {
        match task.await.expect("task").expect("claim") {
            Some(job) => claimed.push(job.id),
            None => empty += 1,
        }
    }
    let distinct: HashSet<_> = claimed.iter().collect();
    assert_eq!(claimed.len(), 3);
    assert_eq!(distinct.len(), 3, "a job was claimed twice: {claimed:?}");
    assert_eq!(empty, 5);
}

pub async fn claim_skips_jobs_leased_by_another_worker(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "one job", t0()).await;
    claim(&store, "w1", at(1)).await;
    assert!(
        store
            .claim_job("w2", LEASE, at(2))
            .await
            .expect("claim")
            .is_none()
    );
    // Even past its lease, a running job is the rescuer's, not a claimer's.
    assert!(
        store
            .claim_job("w2", LEASE, at(120))
            .await
            .expect("claim")
            .is_none()
    );
    let rescued = store.rescue_expired(at(120)).await.expect("rescue");
    assert_eq!(rescued, vec![created.job.id]);
    let reclaimed = claim(&store, "w2", at(121)).await;
    assert_eq!(reclaimed.id, created.job.id);
    assert_eq!(reclaimed.lease_owner.as_deref(), Some("w2"));
    assert_eq!(reclaimed.attempts, 2);
}

pub async fn lease_renewal_by_another_worker_is_stale(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "leased", t0()).await;
    let id = created.job.id;
    claim(&store, "w1", at(1)).await;
    assert_stale(store.renew_lease(id, "w2", LEASE, at(10)).await);
    assert_eq!(
        job(&store, &created).await.lease_expires_at,
        Some(at(1) + LEASE)
    );
    store
        .renew_lease(id, "w1", LEASE, at(10))
        .await
        .expect("renew");
    let renewed = job(&store, &created).await;
    assert_eq!(renewed.lease_expires_at, Some(at(10) + LEASE));
    assert_eq!(renewed.lease_owner.as_deref(), Some("w1"));
    assert_not_found(
        store
            .renew_lease(navigator_domain::JobId::new_v7(), "w1", LEASE, at(10))
            .await,
    );

    store
        .transition(
            id,
            Transition::new(JobStatus::Running, JobStatus::Complete).leased_by("w1"),
            at(11),
        )
        .await
        .expect("complete");
    assert_stale(store.renew_lease(id, "w1", LEASE, at(12)).await);
}

// ---- the transition table ------------------------------------------------------------------

/// A fresh job driven into `status` through legal moves only. Leaves no other job claimable.
async fn job_in_status(store: &Arc<dyn Store>, status: JobStatus) -> Created {
    let created = create(store, &owner("alice"), &format!("job in {status}"), t0()).await;
    let id = created.job.id;
    let from_running = |to: JobStatus| Transition::new(JobStatus::Running, to).leased_by("w1");
    match status {
        JobStatus::Queued => {}
        JobStatus::Cancelled => {
            store
                .transition(id, Transition::new(JobStatus::Queued, status), at(1))
                .await
                .expect("cancel");
        }
        _ => {
            assert_eq!(claim(store, "w1", at(1)).await.id, id);
            let change = match status {
                JobStatus::Running => None,
                JobStatus::Waiting => Some(Transition {
                    wake_at: Some(at(3600)),
                    ..from_running(status)
                }),
                JobStatus::Retrying => Some(
                    from_running(status)
                        .run_at(at(3600))
                        .error(error(ErrorCode::Timeout, "timed out")),
                ),
                JobStatus::Failed => {
                    Some(from_running(status).error(error(ErrorCode::CorruptDocument, "corrupt")))
                }
                _ => Some(from_running(status)),
            };
            if let Some(change) = change {
                store.transition(id, change, at(2)).await.expect("drive");
            }
        }
    }
    assert_eq!(job(store, &created).await.status, status);
    created
}

pub async fn every_transition_outside_the_table_is_refused_as_illegal(store: Arc<dyn Store>) {
    let mut refused = 0;
    for from in JobStatus::ALL {
        let created = job_in_status(&store, from).await;
        let id = created.job.id;
        for to in JobStatus::ALL {
            if transition_allowed(from, to) {
                continue;
            }
            let before = job(&store, &created).await;
            let events_before = store.job_events(id, 0).await.expect("events").len();
            let mut change = Transition::new(from, to)
                .run_at(at(10))
                .error(error(ErrorCode::Internal, "illegal"))
                .detail("illegal");
            if before.lease_owner.is_some() {
                change = change.leased_by("w1");
            }
            match store.transition(id, change, at(10)).await {
                Err(StoreError::Illegal { from: f, to: t }) => {
                    assert_eq!((f, t), (from, to));
                }
                other => panic!("{from} -> {to} must be Illegal, got {other:?}"),
            }
            assert_eq!(
                job(&store, &created).await,
                before,
                "{from} -> {to} changed the row"
            );
            assert_eq!(
                store.job_events(id, 0).await.expect("events").len(),
                events_before,
                "{from} -> {to} recorded an event"
            );
            refused += 1;
        }
        // Park it so the next status's claim picks the next job.
        if from.is_claimable() || from == JobStatus::Running || from == JobStatus::Waiting {
            store
                .transition(id, Transition::new(from, JobStatus::Cancelled), at(20))
                .await
                .expect("park");
        }
    }
    assert_eq!(refused, 49 - TRANSITIONS.len());
}

pub async fn transition_from_a_stale_status_is_refused(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "queued job", t0()).await;
    let before = job(&store, &created).await;
    assert_stale(
        store
            .transition(
                created.job.id,
                Transition::new(JobStatus::Running, JobStatus::Complete),
                at(1),
            )
            .await,
    );
    assert_stale(
        store
            .transition(
                created.job.id,
                Transition::new(JobStatus::Failed, JobStatus::Queued),
                at(1),
            )
            .await,
    );
    assert_eq!(job(&store, &created).await, before);

    // The first of two racing cancellations wins; the second is stale.
    store
        .transition(
            created.job.id,
            Transition::new(JobStatus::Queued, JobStatus::Cancelled),
            at(2),
        )
        .await
        .expect("cancel");
    assert_stale(
        store
            .transition(
                created.job.id,
                Transition::new(JobStatus::Queued, JobStatus::Cancelled),
                at(3),
            )
            .await,
    );
}

pub async fn transition_by_a_worker_that_lost_the_lease_is_refused(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "contested", t0()).await;
    claim(&store, "w1", at(1)).await;
    let before = job(&store, &created).await;
    assert_stale(
        store
            .transition(
                created.job.id,
                Transition::new(JobStatus::Running, JobStatus::Complete).leased_by("w2"),
                at(2),
            )
            .await,
    );
    assert_eq!(job(&store, &created).await, before);
    assert_stale(
        store
            .advance_stage(created.job.id, "w2", Stage::Chunk, Duration::ZERO, at(2))
            .await,
    );
    assert_eq!(job(&store, &created).await, before);
}

pub async fn transitions_of_a_missing_job_are_not_found(store: Arc<dyn Store>) {
    let missing = navigator_domain::JobId::new_v7();
    assert_not_found(
        store
            .transition(
                missing,
                Transition::new(JobStatus::Queued, JobStatus::Cancelled),
                t0(),
            )
            .await,
    );
    assert_not_found(store.get_job(&OwnerScope::All, missing).await);
    assert_not_found(store.retry_job(&OwnerScope::All, missing, t0()).await);
    assert_not_found(
        store
            .advance_stage(missing, "w1", Stage::Chunk, Duration::ZERO, t0())
            .await,
    );
    assert_not_found(store.job_events(missing, 0).await);
}

pub async fn a_job_becomes_running_only_through_a_claim(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "no shortcut", t0()).await;
    let before = job(&store, &created).await;
    let result = store
        .transition(
            created.job.id,
            Transition::new(JobStatus::Queued, JobStatus::Running),
            at(1),
        )
        .await;
    assert!(result.is_err(), "a running job needs a lease: {result:?}");
    assert_eq!(job(&store, &created).await, before);
}

pub async fn retrying_failing_completing_and_waiting_record_their_effects(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "effects", t0()).await;
    let id = created.job.id;
    claim(&store, "w1", at(1)).await;

    let timeout = error(ErrorCode::Timeout, "upstream timed out");
    let retrying = store
        .transition(
            id,
            Transition::new(JobStatus::Running, JobStatus::Retrying)
                .leased_by("w1")
                .run_at(at(30))
                .error(timeout.clone()),
            at(2),
        )
        .await
        .expect("retrying");
    assert_eq!(retrying.status, JobStatus::Retrying);
    assert_eq!(retrying.run_at, at(30));
    assert_eq!(retrying.error, Some(timeout));
    assert_eq!(retrying.lease_owner, None);
    assert_eq!(retrying.lease_expires_at, None);
    assert_eq!(retrying.finished_at, None);
    assert!(
        store
            .claim_job("w2", LEASE, at(29))
            .await
            .expect("claim")
            .is_none()
    );

    let again = claim(&store, "w2", at(30)).await;
    assert_eq!(again.attempts, 2);
    let waiting = store
        .transition(
            id,
            Transition {
                wake_at: Some(at(600)),
                ..Transition::new(JobStatus::Running, JobStatus::Waiting).leased_by("w2")
            },
            at(31),
        )
        .await
        .expect("waiting");
    assert_eq!(waiting.wake_at, Some(at(600)));
    assert_eq!(waiting.lease_owner, None);
    assert!(
        store
            .claim_job("w3", LEASE, at(700))
            .await
            .expect("claim")
            .is_none()
    );

    let queued = store
        .transition(
            id,
            Transition::new(JobStatus::Waiting, JobStatus::Queued),
            at(40),
        )
        .await
        .expect("wake");
    assert_eq!(queued.run_at, at(40));
    assert_eq!(queued.wake_at, None);
    claim(&store, "w3", at(41)).await;

    let exhausted = error(ErrorCode::RetriesExhausted, "gave up");
    let failed = store
        .transition(
            id,
            Transition::new(JobStatus::Running, JobStatus::Failed)
                .leased_by("w3")
                .error(exhausted.clone())
                .took(Duration::from_millis(250)),
            at(42),
        )
        .await
        .expect("fail");
    assert_eq!(failed.error, Some(exhausted));
    assert_eq!(failed.finished_at, Some(at(42)));
    assert_eq!(failed.lease_owner, None);
    let events = store.job_events(id, 0).await.expect("events");
    let last = events.last().expect("event");
    assert_eq!(
        (last.from, last.to),
        (Some(JobStatus::Running), JobStatus::Failed)
    );
    assert_eq!(last.error_code, Some(ErrorCode::RetriesExhausted));
    assert_eq!(last.worker.as_deref(), Some("w3"));
    assert_eq!(last.duration_ms, Some(250));
    assert_eq!(last.at, at(42));

    let other = create(&store, &owner("alice"), "completes", at(50)).await;
    claim(&store, "w4", at(51)).await;
    let complete = store
        .transition(
            other.job.id,
            Transition::new(JobStatus::Running, JobStatus::Complete).leased_by("w4"),
            at(52),
        )
        .await
        .expect("complete");
    assert_eq!(complete.finished_at, Some(at(52)));
    assert_eq!(complete.error, None);
    assert_eq!(complete.lease_owner, None);
}

pub async fn rescue_moves_only_expired_leases_to_retrying(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let short = create(&store, &alice, "short lease", t0()).await;
    let long = create(&store, &alice, "long lease", at(1)).await;
    let queued = create(&store, &alice, "never claimed", at(500)).await;
    store
        .claim_job("w1", Duration::from_secs(30), at(2))
        .await
        .expect("claim")
        .expect("short");
    store
        .claim_job("w2", Duration::from_secs(300), at(2))
        .await
        .expect("claim")
        .expect("long");

    assert!(
        store
            .rescue_expired(at(32))
            .await
            .expect("rescue")
            .is_empty(),
        "not yet expired"
    );
    let rescued = store.rescue_expired(at(60)).await.expect("rescue");
    assert_eq!(rescued, vec![short.job.id]);

    let rescued_job = job(&store, &short).await;
    assert_eq!(rescued_job.status, JobStatus::Retrying);
    assert_eq!(rescued_job.run_at, at(60));
    assert_eq!(rescued_job.lease_owner, None);
    assert_eq!(rescued_job.lease_expires_at, None);
    assert!(
        rescued_job.error.is_some(),
        "the rescue is recorded as the last error"
    );
    let events = store.job_events(short.job.id, 0).await.expect("events");
    let last = events.last().expect("event");
    assert_eq!(
        (last.from, last.to),
        (Some(JobStatus::Running), JobStatus::Retrying)
    );
    assert!(
        last.detail.as_deref().unwrap_or_default().contains("lease"),
        "{last:?}"
    );
    assert_eq!(last.at, at(60));

    assert_eq!(job(&store, &long).await.status, JobStatus::Running);
    assert_eq!(job(&store, &queued).await.status, JobStatus::Queued);
    assert!(
        store
            .rescue_expired(at(60))
            .await
            .expect("rescue")
            .is_empty()
    );
}

pub async fn retry_is_only_allowed_from_failed_and_resets_attempts(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let scope = OwnerScope::Owner(alice.clone());
    let created = create(&store, &alice, "flaky", t0()).await;
    let id = created.job.id;
    assert_stale(store.retry_job(&scope, id, at(1)).await);

    claim(&store, "w1", at(1)).await;
    assert_stale(store.retry_job(&scope, id, at(2)).await);
    store
        .advance_stage(id, "w1", Stage::Chunk, Duration::from_secs(1), at(2))
        .await
        .expect("advance");
    store
        .transition(
            id,
            Transition::new(JobStatus::Running, JobStatus::Retrying).leased_by("w1"),
            at(3),
        )
        .await
        .expect("retrying");
    claim(&store, "w1", at(4)).await;
    store
        .transition(
            id,
            Transition::new(JobStatus::Running, JobStatus::Failed)
                .leased_by("w1")
                .error(error(ErrorCode::RetriesExhausted, "gave up")),
            at(5),
        )
        .await
        .expect("fail");
    // `chunk` started its first attempt when `parse` finished, then its second on the re-claim.
    assert_eq!(job(&store, &created).await.attempts, 2);

    assert_not_found(
        store
            .retry_job(&OwnerScope::Owner(owner("bob")), id, at(6))
            .await,
    );
    let retried = store.retry_job(&scope, id, at(10)).await.expect("retry");
    assert_eq!(retried.status, JobStatus::Queued);
    assert_eq!(
        retried.stage,
        Stage::Chunk,
        "retries resume at the failed stage"
    );
    assert_eq!(retried.attempts, 0);
    assert_eq!(retried.error, None);
    assert_eq!(retried.run_at, at(10));
    assert_eq!(retried.finished_at, None);
    assert_stale(store.retry_job(&scope, id, at(11)).await);
    assert_eq!(claim(&store, "w2", at(10)).await.id, id);
}

pub async fn advancing_a_stage_starts_its_first_attempt_and_records_an_event(
    store: Arc<dyn Store>,
) {
    let created = create(&store, &owner("alice"), "staged", t0()).await;
    let id = created.job.id;
    let claimed = claim(&store, "w1", at(1)).await;
    assert_eq!(claimed.attempts, 1);
    let advanced = store
        .advance_stage(id, "w1", Stage::Chunk, Duration::from_millis(1500), at(3))
        .await
        .expect("advance");
    assert_eq!(advanced.status, JobStatus::Running);
    assert_eq!(advanced.stage, Stage::Chunk);
    assert_eq!(
        advanced.attempts, 1,
        "the next stage's first attempt is under way"
    );
    assert_eq!(advanced.lease_owner.as_deref(), Some("w1"));
    assert_eq!(advanced.lease_expires_at, claimed.lease_expires_at);

    let events = store.job_events(id, 0).await.expect("events");
    let last = events.last().expect("event");
    assert_eq!(
        (last.from, last.to),
        (Some(JobStatus::Running), JobStatus::Running)
    );
    assert_eq!(
        last.stage,
        Stage::Parse,
        "the event names the stage that completed"
    );
    assert_eq!(last.worker.as_deref(), Some("w1"));
    assert_eq!(last.duration_ms, Some(1500));
    assert_eq!(last.detail.as_deref(), Some("stage parse complete"));
    assert_eq!(last.at, at(3));
}

pub async fn job_events_are_returned_in_sequence_order(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "eventful", t0()).await;
    let id = created.job.id;
    claim(&store, "w1", at(1)).await;
    for (next, t) in [(Stage::Chunk, 2), (Stage::Embed, 3), (Stage::Index, 4)] {
        store
            .advance_stage(id, "w1", next, Duration::from_secs(1), at(t))
            .await
            .expect("advance");
    }
    store
        .transition(
            id,
            Transition::new(JobStatus::Running, JobStatus::Complete).leased_by("w1"),
            at(5),
        )
        .await
        .expect("complete");

    let events = store.job_events(id, 0).await.expect("events");
    let moves: Vec<_> = events.iter().map(|e| (e.from, e.to)).collect();
    use JobStatus::*;
    assert_eq!(
        moves,
        vec![
            (None, Queued),
            (Some(Queued), Running),
            (Some(Running), Running),
            (Some(Running), Running),
            (Some(Running), Running),
            (Some(Running), Complete),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(events.iter().all(|e| e.job_id == id));
    let stages: Vec<_> = events.iter().map(|e| e.stage).collect();
    assert_eq!(
        stages,
        vec![
            Stage::Parse,
            Stage::Parse,
            Stage::Parse,
            Stage::Chunk,
            Stage::Embed,
            Stage::Index
        ]
    );

    let tail = store.job_events(id, events[3].seq).await.expect("tail");
    assert_eq!(tail, events[4..].to_vec());
    assert!(
        store
            .job_events(id, events[5].seq)
            .await
            .expect("none")
            .is_empty()
    );
}

// ---- chunks and embeddings -----------------------------------------------------------------

pub async fn staging_chunks_is_idempotent_and_replaces_earlier_staging(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "to chunk", t0()).await;
    let doc = created.document.id;
    let alice = &created.document.owner;
    let chunks: Vec<_> = ["one", "two", "three"]
        .iter()
        .enumerate()
        .map(|(i, t)| chunk(doc, "1", i as u32, t))
        .collect();
    store
        .stage_chunks(doc, alice, &chunks)
        .await
        .expect("stage");
    let first = store
        .staged_texts_missing_embedding(doc, MODEL, 100)
        .await
        .expect("missing");
    store
        .stage_chunks(doc, alice, &chunks)
        .await
        .expect("stage again");
    let second = store
        .staged_texts_missing_embedding(doc, MODEL, 100)
        .await
        .expect("missing");
    assert_eq!(first, second);
    assert_eq!(second.len(), 3);
    assert_eq!(
        store
            .staged_embedding_progress(doc, MODEL)
            .await
            .expect("progress"),
        (3, 0)
    );

    store
        .stage_chunks(doc, alice, &chunks[..2])
        .await
        .expect("restage");
    assert_eq!(
        store
            .staged_embedding_progress(doc, MODEL)
            .await
            .expect("progress"),
        (2, 0)
    );
    assert!(
        store.live_chunks(doc).await.expect("live").is_empty(),
        "staging is not live"
    );

    assert_not_found(
        store
            .stage_chunks(DocumentId::new_v7(), alice, &chunks)
            .await,
    );
}

pub async fn missing_embeddings_are_deduplicated_and_shrink_after_put(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "repetitive", t0()).await;
    let doc = created.document.id;
    let chunks = vec![
        chunk(doc, "1", 0, "same text"),
        chunk(doc, "1", 1, "other text"),
        chunk(doc, "1", 2, "same text"),
    ];
    store
        .stage_chunks(doc, &created.document.owner, &chunks)
        .await
        .expect("stage");
    let missing = store
        .staged_texts_missing_embedding(doc, MODEL, 100)
        .await
        .expect("missing");
    assert_eq!(missing.len(), 2, "identical text is embedded once");
    let texts: HashSet<_> = missing.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, HashSet::from(["same text", "other text"]));
    for m in &missing {
        assert_eq!(m.text_sha256, Sha256Hex::of(m.text.as_bytes()));
    }
    assert_eq!(
        store
            .staged_texts_missing_embedding(doc, MODEL, 1)
            .await
            .expect("limit")
            .len(),
        1
    );

    store
        .put_embeddings(MODEL, &[embedding("same text", &[1.0, 0.0, 0.0])])
        .await
        .expect("put");
    let missing = store
        .staged_texts_missing_embedding(doc, MODEL, 100)
        .await
        .expect("missing");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].text, "other text");
    assert_eq!(
        store
            .staged_embedding_progress(doc, MODEL)
            .await
            .expect("progress"),
        (3, 2)
    );
    // Another model has nothing yet.
    assert_eq!(
        store
            .staged_embedding_progress(doc, "other-model")
            .await
            .expect("progress"),
        (3, 0)
    );

    // Putting the same key again keeps the first vector and is not an error.
    store
        .put_embeddings(
            MODEL,
            &[
                embedding("same text", &[0.0, 1.0, 0.0]),
                embedding("other text", &[0.0, 0.0, 1.0]),
            ],
        )
        .await
        .expect("put again");
    assert!(
        store
            .staged_texts_missing_embedding(doc, MODEL, 100)
            .await
            .expect("missing")
            .is_empty()
    );
    assert_eq!(
        store
            .staged_embedding_progress(doc, MODEL)
            .await
            .expect("progress"),
        (3, 3)
    );
}

pub async fn publish_refuses_while_an_embedding_is_missing(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "half embedded", t0()).await;
    let doc = created.document.id;
    let chunks = vec![chunk(doc, "1", 0, "first"), chunk(doc, "1", 1, "second")];
    store
        .stage_chunks(doc, &created.document.owner, &chunks)
        .await
        .expect("stage");
    store
        .put_embeddings(MODEL, &[embedding("first", &[1.0, 0.0, 0.0])])
        .await
        .expect("put");
    assert_conflict(store.publish_staged(doc, MODEL, at(1)).await);
    assert!(store.live_chunks(doc).await.expect("live").is_empty());
    assert_eq!(
        store
            .staged_embedding_progress(doc, MODEL)
            .await
            .expect("progress"),
        (2, 1)
    );
    assert_not_found(
        store
            .publish_staged(DocumentId::new_v7(), MODEL, at(1))
            .await,
    );
}

pub async fn publish_atomically_replaces_the_previous_live_set(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "versioned", t0()).await;
    let doc = created.document.id;
    let v1 = publish(
        &store,
        &created,
        "1",
        &[
            ("aardvark anatomy", [1.0, 0.0, 0.0]),
            ("badger burrows", [0.0, 1.0, 0.0]),
        ],
    )
    .await;
    let live: Vec<_> = store
        .live_chunks(doc)
        .await
        .expect("live")
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(live, v1.iter().map(|c| c.id).collect::<Vec<_>>());
    let record = store
        .get_document(&OwnerScope::All, doc)
        .await
        .expect("get");
    assert_eq!(record.chunks, 2);

    let v2 = publish(
        &store,
        &created,
        "2",
        &[("capybara colonies", [0.0, 0.0, 1.0])],
    )
    .await;
    let live = store.live_chunks(doc).await.expect("live");
    assert_eq!(live.len(), 1);
    let only = &live[0];
    assert_eq!(only.id, v2[0].id);
    assert_eq!(only.document_id, doc);
    assert_eq!(only.text, "capybara colonies");
    assert_eq!(only.text_sha256, v2[0].text_sha256);
    assert_eq!((only.page_start, only.page_end), (1, 1));
    assert_eq!(only.section, "Section 0");
    assert_eq!(only.chunker_version, "2");
    assert_eq!(
        store
            .get_document(&OwnerScope::All, doc)
            .await
            .expect("get")
            .chunks,
        1
    );
    assert_eq!(
        store
            .staged_embedding_progress(doc, MODEL)
            .await
            .expect("progress"),
        (0, 0)
    );

    let all = OwnerScope::All;
    assert!(
        store
            .keyword_search(&search(&all, "aardvark"))
            .await
            .expect("search")
            .is_empty()
    );
    let hits = store
        .keyword_search(&search(&all, "capybara"))
        .await
        .expect("search");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chunk_id, v2[0].id);
    let near = store
        .vector_search(&search(&all, ""), MODEL, &[1.0, 0.0, 0.0])
        .await
        .expect("vector");
    assert_eq!(
        near.iter().map(|h| h.chunk_id).collect::<Vec<_>>(),
        vec![v2[0].id]
    );
}

pub async fn publishing_again_with_nothing_staged_keeps_the_live_set(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "published once", t0()).await;
    let doc = created.document.id;
    publish(&store, &created, "1", &[("kept text", [1.0, 0.0, 0.0])]).await;
    // A re-run of the index stage (work is at-least-once) must not wipe the live version.
    assert_eq!(
        store
            .publish_staged(doc, MODEL, at(5))
            .await
            .expect("publish"),
        1
    );
    assert_eq!(store.live_chunks(doc).await.expect("live").len(), 1);
}

// ---- deletion ------------------------------------------------------------------------------

pub async fn deleting_a_document_removes_everything_derived_from_it(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let scope = OwnerScope::Owner(alice.clone());
    let created = create(&store, &alice, "doomed", t0()).await;
    let doc = created.document.id;
    publish(&store, &created, "1", &[("zebra stripes", [1.0, 0.0, 0.0])]).await;
    store
        .stage_chunks(doc, &alice, &[chunk(doc, "2", 0, "zebra foals")])
        .await
        .expect("stage");
    store
        .put_embeddings(MODEL, &[embedding("zebra foals", &[0.0, 1.0, 0.0])])
        .await
        .expect("put");
    claim(&store, "w1", at(1)).await;
    let before = store.get_document(&scope, doc).await.expect("get");

    let deleted = store
        .delete_document(&scope, doc, at(2))
        .await
        .expect("delete");
    assert_eq!(deleted, before);
    assert_not_found(store.get_document(&OwnerScope::All, doc).await);
    assert!(
        store
            .list_documents(&OwnerScope::All, None, 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_not_found(store.delete_document(&scope, doc, at(3)).await);

    let cancelled = job(&store, &created).await;
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(cancelled.finished_at, Some(at(2)));
    let events = store.job_events(created.job.id, 0).await.expect("events");
    let last = events.last().expect("event");
    assert_eq!(
        (last.from, last.to),
        (Some(JobStatus::Running), JobStatus::Cancelled)
    );
    // The worker that held it finds out at its next step.
    assert_stale(
        store
            .transition(
                created.job.id,
                Transition::new(JobStatus::Running, JobStatus::Complete).leased_by("w1"),
                at(3),
            )
            .await,
    );

    assert!(store.live_chunks(doc).await.expect("live").is_empty());
    assert_eq!(
        store
            .staged_embedding_progress(doc, MODEL)
            .await
            .expect("progress"),
        (0, 0)
    );
    assert!(
        store
            .keyword_search(&search(&OwnerScope::All, "zebra"))
            .await
            .expect("kw")
            .is_empty()
    );
    assert!(
        store
            .vector_search(&search(&OwnerScope::All, ""), MODEL, &[1.0, 0.0, 0.0])
            .await
            .expect("vector")
            .is_empty()
    );

    // Its embeddings are gone: the same texts uploaded again need embedding again.
    let again = create(&store, &alice, "doomed", at(4)).await;
    assert_ne!(
        again.document.id, doc,
        "a deleted document is not a duplicate"
    );
    let new_doc = again.document.id;
    store
        .stage_chunks(
            new_doc,
            &alice,
            &[
                chunk(new_doc, "1", 0, "zebra stripes"),
                chunk(new_doc, "1", 1, "zebra foals"),
            ],
        )
        .await
        .expect("stage");
    assert_eq!(
        store
            .staged_embedding_progress(new_doc, MODEL)
            .await
            .expect("progress"),
        (2, 0)
    );
}

pub async fn deleting_a_document_keeps_embeddings_another_document_uses(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let first = create(&store, &alice, "first", t0()).await;
    let second = create(&store, &alice, "second", t0()).await;
    publish(
        &store,
        &first,
        "1",
        &[
            ("shared sentence", [1.0, 0.0, 0.0]),
            ("only first", [0.0, 1.0, 0.0]),
        ],
    )
    .await;
    publish(
        &store,
        &second,
        "1",
        &[("shared sentence", [1.0, 0.0, 0.0])],
    )
    .await;
    // A third document still staging the other text keeps its embedding too.
    let third = create(&store, &alice, "third", t0()).await;
    store
        .stage_chunks(
            third.document.id,
            &alice,
            &[chunk(third.document.id, "1", 0, "only first")],
        )
        .await
        .expect("stage");

    store
        .delete_document(&OwnerScope::All, first.document.id, at(1))
        .await
        .expect("delete");
    assert_eq!(
        store
            .staged_embedding_progress(third.document.id, MODEL)
            .await
            .expect("progress"),
        (1, 1)
    );
    let hits = store
        .vector_search(&search(&OwnerScope::All, ""), MODEL, &[1.0, 0.0, 0.0])
        .await
        .expect("vector");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].document_id, second.document.id);
}

// ---- search --------------------------------------------------------------------------------

pub async fn keyword_search_ranks_the_chunk_with_the_words_first(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let created = create(&store, &alice, "report", t0()).await;
    let chunks = publish(
        &store,
        &created,
        "1",
        &[
            (
                "The employee handbook explains the vacation policy.",
                [1.0, 0.0, 0.0],
            ),
            (
                "Quarterly revenue grew strongly in Europe and Asia.",
                [0.0, 1.0, 0.0],
            ),
            (
                "Revenue recognition follows the accounting policy.",
                [0.0, 0.0, 1.0],
            ),
        ],
    )
    .await;
    let scope = OwnerScope::Owner(alice);
    let hits = store
        .keyword_search(&search(&scope, "quarterly revenue in Europe?"))
        .await
        .expect("search");
    assert!(hits.len() >= 2, "{hits:?}");
    assert_eq!(hits[0].chunk_id, chunks[1].id);
    assert_eq!(hits[0].document_id, created.document.id);
    assert_eq!(hits[0].filename, "notes.txt");
    assert_eq!(hits[0].page_start, 2);
    assert_eq!(hits[0].section, "Section 1");
    assert_eq!(hits[0].text, chunks[1].text);
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "best first"
    );
    assert!(
        !hits.iter().any(|h| h.chunk_id == chunks[0].id),
        "no shared word, no hit"
    );

    let limited = store
        .keyword_search(&SearchQuery {
            limit: 1,
            ..search(&scope, "revenue policy")
        })
        .await
        .expect("search");
    assert_eq!(limited.len(), 1);
    assert!(
        store
            .keyword_search(&search(&scope, ""))
            .await
            .expect("empty")
            .is_empty()
    );
}

pub async fn keyword_search_is_owner_scoped_and_filters_documents(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let bob = owner("bob");
    let a = create(&store, &alice, "alice doc", t0()).await;
    let b = create(&store, &bob, "bob doc", t0()).await;
    publish(&store, &a, "1", &[("alpha banana", [1.0, 0.0, 0.0])]).await;
    publish(&store, &b, "1", &[("alpha cherry", [0.0, 1.0, 0.0])]).await;

    let alice_scope = OwnerScope::Owner(alice);
    let hits = store
        .keyword_search(&search(&alice_scope, "alpha"))
        .await
        .expect("search");
    assert_eq!(
        hits.iter().map(|h| h.document_id).collect::<Vec<_>>(),
        vec![a.document.id]
    );
    assert!(
        store
            .keyword_search(&search(&alice_scope, "cherry"))
            .await
            .expect("s")
            .is_empty()
    );

    let all = OwnerScope::All;
    assert_eq!(
        store
            .keyword_search(&search(&all, "alpha"))
            .await
            .expect("search")
            .len(),
        2
    );
    let only_b = [b.document.id];
    let filtered = SearchQuery {
        document_ids: Some(&only_b),
        ..search(&all, "alpha")
    };
    let hits = store.keyword_search(&filtered).await.expect("search");
    assert_eq!(
        hits.iter().map(|h| h.document_id).collect::<Vec<_>>(),
        vec![b.document.id]
    );
    let foreign = SearchQuery {
        document_ids: Some(&only_b),
        ..search(&alice_scope, "alpha")
    };
    assert!(
        store
            .keyword_search(&foreign)
            .await
            .expect("search")
            .is_empty()
    );
    let none: [DocumentId; 0] = [];
    let empty_filter = SearchQuery {
        document_ids: Some(&none),
        ..search(&all, "alpha")
    };
    assert!(
        store
            .keyword_search(&empty_filter)
            .await
            .expect("search")
            .is_empty()
    );
}

pub async fn keyword_search_survives_hostile_queries(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "target", t0()).await;
    publish(
        &store,
        &created,
        "1",
        &[("near the table one equals one or not", [1.0, 0.0, 0.0])],
    )
    .await;
    let scope = OwnerScope::All;
    let long = "x".repeat(10_000);
    let many_words = "table ".repeat(2_000);
    let hostile = [
        "\"",
        "*",
        "NEAR(",
        "' OR 1=1 --",
        "\"unbalanced",
        "table*",
        "text: table",
        "chunk_id:1",
        "NOT table",
        "table AND",
        "OR",
        "^table",
        "(table",
        "-table +table",
        "{text}: table",
        "\u{0}table",
        "tábla 表 🙂",
        long.as_str(),
        many_words.as_str(),
    ];
    for query in hostile {
        let result = store.keyword_search(&search(&scope, query)).await;
        assert!(
            result.is_ok(),
            "{:?} -> {result:?}",
            &query[..query.len().min(40)]
        );
    }
    let hits = store
        .keyword_search(&search(&scope, "NOT table"))
        .await
        .expect("search");
    assert_eq!(hits.len(), 1, "operators are words, not syntax");
}

pub async fn vector_search_returns_the_nearest_chunk_first(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "vectors", t0()).await;
    let chunks = publish(
        &store,
        &created,
        "1",
        &[
            ("east", [1.0, 0.0, 0.0]),
            ("north", [0.0, 1.0, 0.0]),
            ("north east", [0.707_106_77, 0.707_106_77, 0.0]),
        ],
    )
    .await;
    let scope = OwnerScope::All;
    let hits = store
        .vector_search(&search(&scope, "ignored"), MODEL, &[0.9, 0.1, 0.0])
        .await
        .expect("vector");
    let order: Vec<_> = hits.iter().map(|h| h.chunk_id).collect();
    assert_eq!(order, vec![chunks[0].id, chunks[2].id, chunks[1].id]);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    let expected = 0.9 / (0.9f64 * 0.9 + 0.1 * 0.1).sqrt();
    assert!(
        (hits[0].score - expected).abs() < 1e-4,
        "cosine: {}",
        hits[0].score
    );
    assert_eq!(hits[0].text, "east");
    assert_eq!(hits[0].filename, "notes.txt");

    let top = store
        .vector_search(
            &SearchQuery {
                limit: 1,
                ..search(&scope, "")
            },
            MODEL,
            &[0.0, 2.0, 0.0],
        )
        .await
        .expect("vector");
    assert_eq!(
        top.iter().map(|h| h.chunk_id).collect::<Vec<_>>(),
        vec![chunks[1].id]
    );
    assert!(
        store
            .vector_search(&search(&scope, ""), "unknown-model", &[1.0, 0.0, 0.0])
            .await
            .expect("vector")
            .is_empty()
    );
}

pub async fn vector_search_respects_scope_and_document_filter(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let bob = owner("bob");
    let a1 = create(&store, &alice, "a1", t0()).await;
    let a2 = create(&store, &alice, "a2", t0()).await;
    let b = create(&store, &bob, "b", t0()).await;
    publish(&store, &a1, "1", &[("a1 text", [1.0, 0.0, 0.0])]).await;
    publish(&store, &a2, "1", &[("a2 text", [0.8, 0.6, 0.0])]).await;
    publish(&store, &b, "1", &[("b text", [1.0, 0.0, 0.0])]).await;

    let query = [1.0, 0.0, 0.0];
    let alice_scope = OwnerScope::Owner(alice);
    let hits = store
        .vector_search(&search(&alice_scope, ""), MODEL, &query)
        .await
        .expect("vector");
    let docs: Vec<_> = hits.iter().map(|h| h.document_id).collect();
    assert_eq!(docs, vec![a1.document.id, a2.document.id]);

    let only_a2 = [a2.document.id, b.document.id];
    let filtered = SearchQuery {
        document_ids: Some(&only_a2),
        ..search(&alice_scope, "")
    };
    let hits = store
        .vector_search(&filtered, MODEL, &query)
        .await
        .expect("vector");
    assert_eq!(
        hits.iter().map(|h| h.document_id).collect::<Vec<_>>(),
        vec![a2.document.id]
    );

    let all = store
        .vector_search(&search(&OwnerScope::All, ""), MODEL, &query)
        .await
        .expect("vector");
    assert_eq!(all.len(), 3);
}

// ---- metrics -------------------------------------------------------------------------------

pub async fn queue_stats_count_every_status_and_the_oldest_eligible_age(store: Arc<dyn Store>) {
    let empty = store.queue_stats(t0()).await.expect("stats");
    assert_eq!(empty.by_status.len(), JobStatus::ALL.len());
    assert!(empty.by_status.iter().all(|(_, n)| *n == 0));
    assert_eq!(empty.oldest_eligible_age, None);

    let alice = owner("alice");
    let a = create(&store, &alice, "a", t0()).await;
    let b = create(&store, &alice, "b", at(1)).await;
    create(&store, &alice, "c", at(2)).await;
    create(&store, &alice, "d", at(100)).await;
    assert_eq!(claim(&store, "w1", at(3)).await.id, a.job.id);
    assert_eq!(claim(&store, "w1", at(3)).await.id, b.job.id);
    store
        .transition(
            b.job.id,
            Transition::new(JobStatus::Running, JobStatus::Failed)
                .leased_by("w1")
                .error(error(ErrorCode::EmptyDocument, "empty")),
            at(4),
        )
        .await
        .expect("fail");

    let stats = store.queue_stats(at(5)).await.expect("stats");
    let count = |s: JobStatus| {
        stats
            .by_status
            .iter()
            .find(|(status, _)| *status == s)
            .map(|(_, n)| *n)
            .expect("every status listed")
    };
    assert_eq!(stats.by_status.len(), JobStatus::ALL.len());
    assert_eq!(count(JobStatus::Queued), 2);
    assert_eq!(count(JobStatus::Running), 1);
    assert_eq!(count(JobStatus::Failed), 1);
    assert_eq!(count(JobStatus::Waiting), 0);
    assert_eq!(count(JobStatus::Retrying), 0);
    assert_eq!(count(JobStatus::Complete), 0);
    assert_eq!(count(JobStatus::Cancelled), 0);
    assert_eq!(stats.oldest_eligible_age, Some(Duration::from_secs(3)));
}

pub async fn handing_a_job_back_refunds_its_attempt(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "handed back", t0()).await;
    let id = created.job.id;
    for round in 1..=3 {
        let claimed = claim(&store, "w1", at(round)).await;
        assert_eq!(
            claimed.attempts, 1,
            "round {round}: every claim is the first attempt"
        );
        let back = store
            .transition(
                id,
                Transition::new(JobStatus::Running, JobStatus::Queued)
                    .leased_by("w1")
                    .detail("handed back on shutdown"),
                at(round),
            )
            .await
            .expect("hand back");
        assert_eq!(back.status, JobStatus::Queued);
        assert_eq!(back.attempts, 0);
    }
}

pub async fn orphan_embeddings_are_pruned_and_used_ones_kept(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let created = create(&store, &alice, "kept", t0()).await;
    let doc = created.document.id;
    let used = "Deductibles reset every January.";
    let chunk = NewChunk {
        id: navigator_domain::ChunkId::derive(doc, "test", "1", 0),
        ord: 0,
        text: used.to_owned(),
        text_sha256: Sha256Hex::of(used.as_bytes()),
        page_start: 1,
        page_end: 1,
        section: String::new(),
        token_count: 7,
        chunker: "test".to_owned(),
        chunker_version: "1".to_owned(),
    };
    store
        .stage_chunks(doc, &alice, &[chunk])
        .await
        .expect("stage");
    let orphan = Sha256Hex::of(b"text of a document deleted mid-round");
    store
        .put_embeddings(
            "m",
            &[
                Embedding {
                    text_sha256: Sha256Hex::of(used.as_bytes()),
                    vector: vec![1.0, 0.0],
                },
                Embedding {
                    text_sha256: orphan,
                    vector: vec![0.0, 1.0],
                },
            ],
        )
        .await
        .expect("put");
    assert_eq!(store.prune_orphan_embeddings().await.expect("prune"), 1);
    assert_eq!(
        store.prune_orphan_embeddings().await.expect("prune again"),
        0
    );
    let (total, embedded) = store
        .staged_embedding_progress(doc, "m")
        .await
        .expect("progress");
    assert_eq!(
        (total, embedded),
        (1, 1),
        "the staged chunk keeps its embedding"
    );
}

// ---- remote parsing ------------------------------------------------------------------------

pub async fn the_parse_cache_finds_a_live_copy_parsed_by_the_same_parser_for_any_owner(
    store: Arc<dyn Store>,
) {
    let alice = owner("alice");
    let bob = owner("bob");
    let content = "the same report, uploaded twice";
    let sha = Sha256Hex::of(content.as_bytes());
    let a = create(&store, &alice, content, t0()).await;
    let b = create(&store, &bob, content, at(1)).await;
    let (a_id, b_id) = (a.document.id, b.document.id);
    let unrelated = create(&store, &bob, "something else entirely", at(2)).await;
    store
        .set_document_parsed(unrelated.document.id, 9, "remote-x")
        .await
        .expect("parsed");

    assert_eq!(
        store
            .find_parsed_duplicate(&sha, "remote-x", b_id, None)
            .await
            .expect("lookup"),
        None,
        "nothing parsed yet"
    );

    store
        .set_document_parsed(a_id, 3, "remote-x")
        .await
        .expect("parsed");
    assert_eq!(
        store
            .get_document(&OwnerScope::All, a_id)
            .await
            .expect("get")
            .pages,
        Some(3)
    );
    assert_eq!(
        store
            .find_parsed_duplicate(&sha, "remote-x", b_id, None)
            .await
            .expect("lookup"),
        Some(a_id),
        "another owner's parsed copy is a hit"
    );
    assert_eq!(
        store
            .find_parsed_duplicate(&sha, "local", b_id, None)
            .await
            .expect("lookup"),
        None,
        "a copy parsed by another parser is a miss"
    );
    assert_eq!(
        store
            .find_parsed_duplicate(&sha, "remote-x", a_id, None)
            .await
            .expect("lookup"),
        None,
        "the document itself is excluded"
    );
    assert_eq!(
        store
            .find_parsed_duplicate(&Sha256Hex::of(b"other bytes"), "remote-x", b_id, None)
            .await
            .expect("lookup"),
        None,
        "other bytes are a miss"
    );

    // Re-parsing with another parser moves the document out of the first parser's cache.
    store
        .set_document_parsed(b_id, 3, "local")
        .await
        .expect("parsed");
    assert_eq!(
        store
            .find_parsed_duplicate(&sha, "local", a_id, None)
            .await
            .expect("lookup"),
        Some(b_id)
    );

    store
        .delete_document(&OwnerScope::All, a_id, at(5))
        .await
        .expect("delete");
    assert_eq!(
        store
            .find_parsed_duplicate(&sha, "remote-x", b_id, None)
            .await
            .expect("lookup"),
        None,
        "a deleted document is a miss"
    );
    assert_not_found(store.set_document_parsed(a_id, 3, "remote-x").await);
}

pub async fn an_owner_scoped_parse_cache_lookup_matches_only_that_owners_documents(
    store: Arc<dyn Store>,
) {
    let (alice, bob, carol) = (owner("alice"), owner("bob"), owner("carol"));
    let content = "the same contract, uploaded by three tenants";
    let sha = Sha256Hex::of(content.as_bytes());
    let a = create(&store, &alice, content, t0()).await.document.id;
    let b = create(&store, &bob, content, at(1)).await.document.id;
    let c = create(&store, &carol, content, at(2)).await.document.id;
    for id in [a, c] {
        store
            .set_document_parsed(id, 4, "remote-x")
            .await
            .expect("parsed");
    }
    let lookup = |except: DocumentId, scope: Option<OwnerId>| {
        let store = store.clone();
        let sha = sha.clone();
        async move {
            store
                .find_parsed_duplicate(&sha, "remote-x", except, scope.as_ref())
                .await
                .expect("lookup")
        }
    };

    assert_eq!(
        lookup(b, None).await,
        Some(a),
        "any owner: the earliest copy"
    );
    assert_eq!(
        lookup(b, Some(bob.clone())).await,
        None,
        "scoped to bob: alice's and carol's copies are not reused"
    );
    assert_eq!(lookup(b, Some(alice.clone())).await, Some(a));
    assert_eq!(
        lookup(b, Some(carol.clone())).await,
        Some(c),
        "the owner filter, not just the earliest copy"
    );
    assert_eq!(
        lookup(a, Some(alice.clone())).await,
        None,
        "the document itself is excluded"
    );
    assert_eq!(lookup(b, Some(owner("dave"))).await, None);
    assert_eq!(
        store
            .find_parsed_duplicate(&sha, "local", b, Some(&alice))
            .await
            .expect("lookup"),
        None,
        "the parser still has to match"
    );
}

fn remote_parse(created: &Created, provider_job_id: &str, submitted: i64) -> RemoteParseRecord {
    RemoteParseRecord {
        job_id: created.job.id,
        document_id: created.document.id,
        parser: "remote-x".to_owned(),
        provider_job_id: provider_job_id.to_owned(),
        submitted_at: at(submitted),
        delivered_at: None,
        polls: 0,
    }
}

pub async fn remote_parses_are_upserted_delivered_once_polled_and_deleted(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "sent away", t0()).await;
    let other = create(&store, &owner("alice"), "sent away too", t0()).await;
    let id = created.job.id;

    assert_eq!(store.get_remote_parse(id).await.expect("get"), None);
    assert_not_found(store.mark_remote_parse_delivered(id, "prov-1", at(1)).await);
    assert_not_found(store.count_remote_parse_poll(id).await);
    store
        .delete_remote_parse(id)
        .await
        .expect("deleting nothing is fine");

    let first = remote_parse(&created, "prov-1", 1);
    store.put_remote_parse(&first).await.expect("put");
    let untouched = remote_parse(&other, "prov-other", 1);
    store.put_remote_parse(&untouched).await.expect("put");
    assert_eq!(
        store.get_remote_parse(id).await.expect("get"),
        Some(first.clone())
    );

    assert_eq!(store.count_remote_parse_poll(id).await.expect("poll"), 1);
    assert_eq!(store.count_remote_parse_poll(id).await.expect("poll"), 2);
    assert!(
        store
            .mark_remote_parse_delivered(id, "prov-1", at(10))
            .await
            .expect("deliver"),
        "the first delivery sets it"
    );
    assert!(
        !store
            .mark_remote_parse_delivered(id, "prov-1", at(11))
            .await
            .expect("deliver again"),
        "a second delivery is refused"
    );
    assert_eq!(
        store.get_remote_parse(id).await.expect("get"),
        Some(RemoteParseRecord {
            delivered_at: Some(at(10)),
            polls: 2,
            ..first
        })
    );

    // A resubmission replaces the row, delivery and polls included.
    let second = RemoteParseRecord {
        parser: "remote-y".to_owned(),
        ..remote_parse(&created, "prov-2", 20)
    };
    store.put_remote_parse(&second).await.expect("upsert");
    assert_eq!(
        store.get_remote_parse(id).await.expect("get"),
        Some(second.clone())
    );
    assert_eq!(store.count_remote_parse_poll(id).await.expect("poll"), 1);
    assert!(
        store
            .mark_remote_parse_delivered(id, "prov-2", at(21))
            .await
            .expect("deliver")
    );

    store.delete_remote_parse(id).await.expect("delete");
    assert_eq!(store.get_remote_parse(id).await.expect("get"), None);
    store.delete_remote_parse(id).await.expect("idempotent");
    assert_not_found(store.count_remote_parse_poll(id).await);
    assert_not_found(
        store
            .mark_remote_parse_delivered(id, "prov-2", at(30))
            .await,
    );
    assert_eq!(
        store.get_remote_parse(other.job.id).await.expect("get"),
        Some(untouched),
        "other jobs' rows are untouched"
    );
}

pub async fn a_superseded_submissions_result_does_not_mark_the_resubmission_delivered(
    store: Arc<dyn Store>,
) {
    let alice = owner("alice");
    let created = create(&store, &alice, "resubmitted", t0()).await;
    let other = create(&store, &alice, "same provider id elsewhere", t0()).await;
    let id = created.job.id;
    assert_not_found(store.mark_remote_parse_delivered(id, "prov-1", at(1)).await);

    store
        .put_remote_parse(&remote_parse(&created, "prov-1", 1))
        .await
        .expect("put");
    // Another job whose submission happens to carry the same provider id.
    let others = remote_parse(&other, "prov-2", 1);
    store.put_remote_parse(&others).await.expect("put");
    let resubmitted = remote_parse(&created, "prov-2", 5);
    store
        .put_remote_parse(&resubmitted)
        .await
        .expect("resubmit");

    assert!(
        !store
            .mark_remote_parse_delivered(id, "prov-1", at(6))
            .await
            .expect("late result"),
        "a late result of the superseded submission is refused"
    );
    assert_eq!(
        store.get_remote_parse(id).await.expect("get"),
        Some(resubmitted.clone()),
        "and leaves the resubmission undelivered"
    );

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.mark_remote_parse_delivered(id, "prov-2", at(7)).await
        }));
    }
    let mut set = 0;
    for task in tasks {
        set += usize::from(task.await.expect("task").expect("deliver"));
    }
    assert_eq!(
        set, 1,
        "webhook and poll racing: exactly one delivery sets it"
    );
    assert!(
        !store
            .mark_remote_parse_delivered(id, "prov-1", at(8))
            .await
            .expect("late result after delivery")
    );
    assert_eq!(
        store.get_remote_parse(id).await.expect("get"),
        Some(RemoteParseRecord {
            delivered_at: Some(at(7)),
            ..resubmitted
        })
    );
    assert_eq!(
        store.get_remote_parse(other.job.id).await.expect("get"),
        Some(others),
        "only the job's own row is marked"
    );
    assert!(
        store
            .mark_remote_parse_delivered(other.job.id, "prov-2", at(9))
            .await
            .expect("deliver other")
    );
}

pub async fn deleting_a_document_forgets_its_remote_parse_and_keeps_the_history(
    store: Arc<dyn Store>,
) {
    let alice = owner("alice");
    let doomed = create(&store, &alice, "doomed remote", t0()).await;
    let kept = create(&store, &alice, "kept remote", t0()).await;
    store
        .put_remote_parse(&remote_parse(&doomed, "prov-doomed", 1))
        .await
        .expect("put");
    store
        .put_remote_parse(&remote_parse(&kept, "prov-kept", 1))
        .await
        .expect("put");
    assert!(
        store
            .record_webhook_delivery("delivery-doomed", doomed.job.id, at(2))
            .await
            .expect("webhook")
    );
    store
        .record_usage(&usage(&alice, Some(&doomed), 3, 1_000))
        .await
        .expect("usage");

    store
        .delete_document(&OwnerScope::All, doomed.document.id, at(4))
        .await
        .expect("delete");
    assert_eq!(
        store.get_remote_parse(doomed.job.id).await.expect("get"),
        None
    );
    assert!(
        store
            .get_remote_parse(kept.job.id)
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        !store
            .record_webhook_delivery("delivery-doomed", doomed.job.id, at(5))
            .await
            .expect("webhook"),
        "delivery ids outlive the document"
    );
    let summary = store
        .usage(&OwnerScope::All, t0(), at(10))
        .await
        .expect("usage");
    assert_eq!(summary.owners.len(), 1);
    assert_eq!(summary.owners[0].totals.cost_micro_usd, 1_000);
    assert_eq!(
        summary.documents.len(),
        1,
        "usage rows outlive the document"
    );
    assert_eq!(summary.documents[0].document_id, doomed.document.id);
}

pub async fn webhook_deliveries_are_accepted_once_even_when_racing(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "webhooked", t0()).await;
    let id = created.job.id;
    assert!(
        store
            .record_webhook_delivery("d-1", id, at(1))
            .await
            .expect("first")
    );
    assert!(
        !store
            .record_webhook_delivery("d-1", id, at(2))
            .await
            .expect("replay"),
        "a replayed delivery id is refused"
    );
    assert!(
        store
            .record_webhook_delivery("d-2", id, at(3))
            .await
            .expect("another id")
    );

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.record_webhook_delivery("d-race", id, at(4)).await
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += usize::from(task.await.expect("task").expect("record"));
    }
    assert_eq!(accepted, 1, "exactly one racing delivery is accepted");
    assert!(
        !store
            .record_webhook_delivery("d-race", id, at(5))
            .await
            .expect("after the race")
    );
}

pub async fn webhook_deliveries_received_before_the_cutoff_are_pruned(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "webhooks to prune", t0()).await;
    let id = created.job.id;
    assert_eq!(
        store
            .prune_webhook_deliveries(at(1_000))
            .await
            .expect("prune nothing"),
        0
    );
    for (delivery, secs) in [
        ("d-old", 0),
        ("d-older", -5),
        ("d-edge", 100),
        ("d-new", 700),
    ] {
        assert!(
            store
                .record_webhook_delivery(delivery, id, at(secs))
                .await
                .expect("record")
        );
    }
    assert_eq!(
        store
            .prune_webhook_deliveries(at(100))
            .await
            .expect("prune"),
        2,
        "strictly before the cutoff"
    );
    assert_eq!(
        store
            .prune_webhook_deliveries(at(100))
            .await
            .expect("prune again"),
        0
    );
    for (delivery, kept) in [("d-edge", true), ("d-new", true), ("d-old", false)] {
        assert_eq!(
            !store
                .record_webhook_delivery(delivery, id, at(701))
                .await
                .expect("record again"),
            kept,
            "{delivery}: kept ids are still refused, pruned ones forgotten"
        );
    }
    assert_eq!(
        store
            .prune_webhook_deliveries(at(10_000))
            .await
            .expect("prune all"),
        3
    );
}

// ---- waiting jobs --------------------------------------------------------------------------

/// A fresh job of `owner`, claimed by "w1" and moved to `waiting` with `wake_at` and `reason`.
/// Must be called while no other job is claimable at `at(created)`.
async fn waiting_job(
    store: &Arc<dyn Store>,
    owner: &OwnerId,
    content: &str,
    created: i64,
    wake_at: Option<OffsetDateTime>,
    reason: Option<JobError>,
) -> Created {
    let job = create(store, owner, content, at(created)).await;
    assert_eq!(claim(store, "w1", at(created)).await.id, job.job.id);
    let mut change = Transition::new(JobStatus::Running, JobStatus::Waiting).leased_by("w1");
    if let Some(wake_at) = wake_at {
        change = change.wake_at(wake_at);
    }
    if let Some(reason) = reason {
        change = change.error(reason);
    }
    let waiting = store
        .transition(job.job.id, change, at(created))
        .await
        .expect("wait");
    assert_eq!(waiting.status, JobStatus::Waiting);
    job
}

pub async fn waiting_refunds_the_attempt_and_keeps_its_reason_until_queued(store: Arc<dyn Store>) {
    let created = create(&store, &owner("alice"), "waits", t0()).await;
    let id = created.job.id;
    assert_eq!(claim(&store, "w1", at(1)).await.attempts, 1);
    let budget = error(ErrorCode::BudgetExceeded, "hard budget spent");
    let waiting = store
        .transition(
            id,
            Transition::new(JobStatus::Running, JobStatus::Waiting)
                .leased_by("w1")
                .wake_at(at(600))
                .error(budget.clone()),
            at(2),
        )
        .await
        .expect("wait");
    assert_eq!(waiting.status, JobStatus::Waiting);
    assert_eq!(waiting.attempts, 0, "waiting is not a failed attempt");
    assert_eq!(waiting.error, Some(budget.clone()), "the reason it waits");
    assert_eq!(waiting.wake_at, Some(at(600)));
    assert_eq!(waiting.lease_owner, None);
    assert_eq!(waiting.lease_expires_at, None);
    assert_eq!(waiting.finished_at, None);
    assert_eq!(job(&store, &created).await, waiting);
    let events = store.job_events(id, 0).await.expect("events");
    let last = events.last().expect("event");
    assert_eq!(
        (last.from, last.to),
        (Some(JobStatus::Running), JobStatus::Waiting)
    );
    assert_eq!(last.error_code, Some(ErrorCode::BudgetExceeded));
    assert!(
        store
            .claim_job("w2", LEASE, at(3))
            .await
            .expect("claim")
            .is_none(),
        "a waiting job is not claimable"
    );

    let queued = store
        .transition(
            id,
            Transition::new(JobStatus::Waiting, JobStatus::Queued),
            at(4),
        )
        .await
        .expect("wake");
    assert_eq!(queued.error, None, "queued clears the reason");
    assert_eq!(queued.wake_at, None);
    assert_eq!(queued.attempts, 0);
    assert_eq!(queued.run_at, at(4));
    assert_eq!(claim(&store, "w2", at(5)).await.attempts, 1);
}

pub async fn wake_due_wakes_only_due_waiting_jobs_and_records_events(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let due = waiting_job(&store, &alice, "due", 1, Some(at(100)), None).await;
    let also_due = waiting_job(
        &store,
        &alice,
        "also due",
        2,
        Some(at(90)),
        Some(error(ErrorCode::UpstreamRateLimited, "slow down")),
    )
    .await;
    let future = waiting_job(&store, &alice, "future", 3, Some(at(1000)), None).await;
    let no_wake = waiting_job(
        &store,
        &alice,
        "waits for a budget",
        4,
        None,
        Some(error(ErrorCode::BudgetExceeded, "spent")),
    )
    .await;
    let running = create(&store, &alice, "running", at(5)).await;
    assert_eq!(claim(&store, "w2", at(5)).await.id, running.job.id);
    let queued = create(&store, &alice, "queued", at(500)).await;

    assert!(
        store.wake_due(at(89)).await.expect("wake").is_empty(),
        "nothing due yet"
    );
    let woken = store.wake_due(at(100)).await.expect("wake");
    assert_eq!(
        woken.iter().copied().collect::<HashSet<_>>(),
        HashSet::from([due.job.id, also_due.job.id])
    );
    assert_eq!(woken.len(), 2);
    for created in [&due, &also_due] {
        let record = job(&store, created).await;
        assert_eq!(record.status, JobStatus::Queued);
        assert_eq!(record.run_at, at(100));
        assert_eq!(record.wake_at, None);
        assert_eq!(record.error, None);
        let events = store.job_events(created.job.id, 0).await.expect("events");
        let last = events.last().expect("event");
        assert_eq!(
            (last.from, last.to),
            (Some(JobStatus::Waiting), JobStatus::Queued)
        );
        assert_eq!(last.detail.as_deref(), Some("wake_at reached"));
        assert_eq!(last.at, at(100));
    }
    assert_eq!(job(&store, &future).await.status, JobStatus::Waiting);
    assert_eq!(job(&store, &no_wake).await.status, JobStatus::Waiting);
    assert_eq!(job(&store, &running).await.status, JobStatus::Running);
    assert_eq!(job(&store, &queued).await.status, JobStatus::Queued);
    assert_eq!(job(&store, &queued).await.run_at, at(500));
    assert!(store.wake_due(at(100)).await.expect("wake").is_empty());

    assert_eq!(
        store.wake_due(at(1000)).await.expect("wake"),
        vec![future.job.id],
        "wake_at itself is due"
    );
    assert_eq!(job(&store, &no_wake).await.status, JobStatus::Waiting);
    assert!(
        store
            .wake_due(at(1_000_000))
            .await
            .expect("wake")
            .is_empty()
    );
}

pub async fn wake_due_wakes_every_due_job_oldest_first(store: Arc<dyn Store>) {
    let alice = owner("alice");
    const { assert!(crate::WAKE_BATCH >= 3) };
    let late = waiting_job(&store, &alice, "late", 1, Some(at(300)), None).await;
    let early = waiting_job(&store, &alice, "early", 2, Some(at(100)), None).await;
    let middle = waiting_job(&store, &alice, "middle", 3, Some(at(200)), None).await;
    assert_eq!(
        store.wake_due(at(1_000)).await.expect("wake"),
        vec![early.job.id, middle.job.id, late.job.id],
        "every due job, oldest wake_at first"
    );
    for created in [&early, &middle, &late] {
        assert_eq!(job(&store, created).await.status, JobStatus::Queued);
    }
    assert!(store.wake_due(at(1_000)).await.expect("wake").is_empty());
}

/// Not stamped out by [`store_conformance_tests!`](crate::store_conformance_tests) (it makes
/// [`crate::WAKE_BATCH`] + 1 waiting jobs): one `wake_due` call wakes a full batch, oldest
/// `wake_at` first, and the next call wakes the rest.
pub async fn wake_due_wakes_at_most_one_batch_per_call(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let total = crate::WAKE_BATCH + 1;
    let mut ids = Vec::with_capacity(total);
    for n in 0..total {
        // Later jobs wake earlier, so the batch is not simply creation order.
        let wake_at = at(10_000 - n as i64);
        let created = waiting_job(
            &store,
            &alice,
            &format!("batch {n}"),
            1,
            Some(wake_at),
            None,
        )
        .await;
        ids.push(created.job.id);
    }
    ids.reverse();
    let first = store.wake_due(at(20_000)).await.expect("wake");
    assert_eq!(first, ids[..crate::WAKE_BATCH], "one batch, oldest first");
    let rest = store.wake_due(at(20_000)).await.expect("wake");
    assert_eq!(
        rest,
        ids[crate::WAKE_BATCH..],
        "the next call wakes the rest"
    );
    assert!(store.wake_due(at(20_000)).await.expect("wake").is_empty());
}

pub async fn wake_waiting_wakes_only_that_owners_jobs_waiting_for_that_reason(
    store: Arc<dyn Store>,
) {
    let alice = owner("alice");
    let bob = owner("bob");
    let budget = || Some(error(ErrorCode::BudgetExceeded, "hard budget spent"));
    let alice_budget = waiting_job(&store, &alice, "alice budget", 1, None, budget()).await;
    let alice_budget_2 = waiting_job(
        &store,
        &alice,
        "alice budget 2",
        2,
        Some(at(9_000)),
        budget(),
    )
    .await;
    let alice_other = waiting_job(
        &store,
        &alice,
        "alice other",
        3,
        None,
        Some(error(ErrorCode::UpstreamRateLimited, "slow down")),
    )
    .await;
    let bob_budget = waiting_job(&store, &bob, "bob budget", 4, None, budget()).await;
    let alice_running = create(&store, &alice, "alice running", at(5)).await;
    assert_eq!(claim(&store, "w2", at(5)).await.id, alice_running.job.id);

    let woken = store
        .wake_waiting(&alice, ErrorCode::BudgetExceeded, at(50))
        .await
        .expect("wake");
    assert_eq!(
        woken.iter().copied().collect::<HashSet<_>>(),
        HashSet::from([alice_budget.job.id, alice_budget_2.job.id])
    );
    assert_eq!(woken.len(), 2);
    for created in [&alice_budget, &alice_budget_2] {
        let record = job(&store, created).await;
        assert_eq!(record.status, JobStatus::Queued);
        assert_eq!(record.run_at, at(50));
        assert_eq!(record.error, None);
        assert_eq!(record.wake_at, None);
        let events = store.job_events(created.job.id, 0).await.expect("events");
        let last = events.last().expect("event");
        assert_eq!(
            (last.from, last.to),
            (Some(JobStatus::Waiting), JobStatus::Queued)
        );
        assert_eq!(
            last.detail.as_deref(),
            Some("woken: budget_exceeded cleared")
        );
        assert_eq!(last.at, at(50));
    }
    assert_eq!(job(&store, &alice_other).await.status, JobStatus::Waiting);
    assert_eq!(job(&store, &bob_budget).await.status, JobStatus::Waiting);
    assert_eq!(job(&store, &alice_running).await.status, JobStatus::Running);
    assert!(
        store
            .wake_waiting(&alice, ErrorCode::BudgetExceeded, at(51))
            .await
            .expect("wake")
            .is_empty()
    );
    assert_eq!(
        store
            .wake_waiting(&bob, ErrorCode::BudgetExceeded, at(52))
            .await
            .expect("wake"),
        vec![bob_budget.job.id]
    );
    assert_eq!(
        store
            .wake_waiting(&alice, ErrorCode::UpstreamRateLimited, at(53))
            .await
            .expect("wake"),
        vec![alice_other.job.id]
    );
}

// ---- usage and budgets ---------------------------------------------------------------------

/// A parse ledger row of `owner` (for `created`'s document and job, when given) at `at(secs)`.
fn usage(owner: &OwnerId, created: Option<&Created>, secs: i64, cost: i64) -> UsageRecord {
    UsageRecord {
        owner: owner.clone(),
        document_id: created.map(|c| c.document.id),
        job_id: created.map(|c| c.job.id),
        kind: UsageKind::Parse,
        provider: "acme".to_owned(),
        model: "acme-parse-1".to_owned(),
        pages: 1,
        tokens: 0,
        requests: 1,
        retries: 0,
        cost_micro_usd: cost,
        saved_pages: 0,
        saved_tokens: 0,
        saved_cost_micro_usd: 0,
        at: at(secs),
    }
}

fn totals(rows: &[&UsageRecord]) -> UsageTotals {
    let mut sum = UsageTotals::default();
    for r in rows {
        sum.add(&UsageTotals {
            pages: r.pages,
            tokens: r.tokens,
            requests: r.requests,
            retries: r.retries,
            cost_micro_usd: r.cost_micro_usd,
            saved_pages: r.saved_pages,
            saved_tokens: r.saved_tokens,
            saved_cost_micro_usd: r.saved_cost_micro_usd,
        });
    }
    sum
}

pub async fn usage_is_summed_per_owner_and_document_within_the_window(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let bob = owner("bob");
    let doc1 = create(&store, &alice, "usage one", t0()).await;
    let doc2 = create(&store, &alice, "usage two", t0()).await;
    let doc3 = create(&store, &bob, "usage three", t0()).await;

    let parse1 = UsageRecord {
        pages: 12,
        requests: 2,
        retries: 1,
        ..usage(&alice, Some(&doc1), 10, 1_200)
    };
    let embed1 = UsageRecord {
        kind: UsageKind::Embed,
        provider: "vec".to_owned(),
        model: "vec-small".to_owned(),
        pages: 0,
        tokens: 4_321,
        saved_tokens: 100,
        saved_cost_micro_usd: 3,
        ..usage(&alice, Some(&doc1), 20, 43)
    };
    let cached2 = UsageRecord {
        pages: 0,
        requests: 0,
        saved_pages: 7,
        saved_cost_micro_usd: 700,
        ..usage(&alice, Some(&doc2), 30, 0)
    };
    let query = UsageRecord {
        kind: UsageKind::Embed,
        pages: 0,
        tokens: 12,
        ..usage(&alice, None, 40, 5)
    };
    let bob3 = UsageRecord {
        pages: 2,
        ..usage(&bob, Some(&doc3), 50, 200)
    };
    let before = usage(&alice, Some(&doc1), 9, 1_000_000);
    let at_end = usage(&alice, Some(&doc2), 100, 2_000_000);
    let bob_after = usage(&bob, None, 150, 3_000_000);
    for record in [
        &parse1, &embed1, &cached2, &query, &bob3, &before, &at_end, &bob_after,
    ] {
        store.record_usage(record).await.expect("record usage");
    }

    let mut documents = vec![
        DocumentUsage {
            owner: alice.clone(),
            document_id: doc1.document.id,
            totals: totals(&[&parse1, &embed1]),
        },
        DocumentUsage {
            owner: alice.clone(),
            document_id: doc2.document.id,
            totals: totals(&[&cached2]),
        },
        DocumentUsage {
            owner: bob.clone(),
            document_id: doc3.document.id,
            totals: totals(&[&bob3]),
        },
    ];
    documents.sort_by_key(|d| d.document_id);
    let all = store
        .usage(&OwnerScope::All, at(10), at(100))
        .await
        .expect("usage");
    assert_eq!(
        all,
        UsageSummary {
            owners: vec![
                OwnerUsage {
                    owner: alice.clone(),
                    totals: totals(&[&parse1, &embed1, &cached2, &query]),
                },
                OwnerUsage {
                    owner: bob.clone(),
                    totals: totals(&[&bob3]),
                },
            ],
            documents: documents.clone(),
        },
        "from is inclusive, to exclusive; rows without a document count for the owner only"
    );
    assert_eq!(all.owners[0].totals.cost_micro_usd, 1_200 + 43 + 5);
    assert_eq!(all.owners[0].totals.saved_pages, 7);
    assert_eq!(all.owners[0].totals.tokens, 4_321 + 12);

    let bobs = store
        .usage(&OwnerScope::Owner(bob.clone()), t0(), at(100))
        .await
        .expect("usage");
    assert_eq!(
        bobs,
        UsageSummary {
            owners: vec![OwnerUsage {
                owner: bob.clone(),
                totals: totals(&[&bob3]),
            }],
            documents: vec![DocumentUsage {
                owner: bob.clone(),
                document_id: doc3.document.id,
                totals: totals(&[&bob3]),
            }],
        },
        "scoped to the owner"
    );

    let wide = store
        .usage(&OwnerScope::Owner(alice.clone()), t0(), at(1_000))
        .await
        .expect("usage");
    assert_eq!(
        wide.owners,
        vec![OwnerUsage {
            owner: alice.clone(),
            totals: totals(&[&parse1, &embed1, &cached2, &query, &before, &at_end]),
        }]
    );
    assert_eq!(wide.documents.len(), 2);

    assert_eq!(
        store
            .usage(&OwnerScope::All, at(200), at(300))
            .await
            .expect("usage"),
        UsageSummary::default(),
        "an empty window sums to nothing"
    );
    assert_eq!(
        store
            .usage(&OwnerScope::Owner(owner("carol")), t0(), at(1_000))
            .await
            .expect("usage"),
        UsageSummary::default()
    );
}

pub async fn owner_spend_sums_costs_since_a_time(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let bob = owner("bob");
    assert_eq!(store.owner_spend(&alice, t0()).await.expect("spend"), 0);
    for record in [
        usage(&alice, None, 10, 100),
        usage(&alice, None, 20, 20),
        UsageRecord {
            saved_cost_micro_usd: 1_000,
            ..usage(&alice, None, 30, 3)
        },
        usage(&bob, None, 30, 5_000),
    ] {
        store.record_usage(&record).await.expect("record usage");
    }
    assert_eq!(store.owner_spend(&alice, t0()).await.expect("spend"), 123);
    assert_eq!(
        store.owner_spend(&alice, at(20)).await.expect("spend"),
        23,
        "since is inclusive"
    );
    assert_eq!(store.owner_spend(&alice, at(31)).await.expect("spend"), 0);
    assert_eq!(store.owner_spend(&bob, t0()).await.expect("spend"), 5_000);
    assert_eq!(
        store
            .owner_spend(&owner("carol"), t0())
            .await
            .expect("spend"),
        0
    );
}

pub async fn budgets_are_upserted_per_owner(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let bob = owner("bob");
    assert_eq!(store.get_budget(&alice).await.expect("get"), None);
    let first = Budget {
        owner: alice.clone(),
        soft_micro_usd: Some(1_000_000),
        hard_micro_usd: Some(5_000_000),
        updated_at: at(1),
    };
    store.set_budget(&first).await.expect("set");
    assert_eq!(
        store.get_budget(&alice).await.expect("get"),
        Some(first.clone())
    );
    let raised = Budget {
        owner: alice.clone(),
        soft_micro_usd: None,
        hard_micro_usd: Some(9_000_000),
        updated_at: at(2),
    };
    store.set_budget(&raised).await.expect("upsert");
    assert_eq!(
        store.get_budget(&alice).await.expect("get"),
        Some(raised.clone())
    );
    assert_eq!(store.get_budget(&bob).await.expect("get"), None);
    let unlimited = Budget {
        owner: bob.clone(),
        soft_micro_usd: None,
        hard_micro_usd: None,
        updated_at: at(3),
    };
    store.set_budget(&unlimited).await.expect("set");
    assert_eq!(store.get_budget(&bob).await.expect("get"), Some(unlimited));
    assert_eq!(store.get_budget(&alice).await.expect("get"), Some(raised));
}

// ---- API keys --------------------------------------------------------------------------------

fn api_key(id: &str, owner_name: &str, created: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.to_owned(),
        owner: owner(owner_name),
        roles: vec!["service".to_owned(), "ingest".to_owned()],
        secret_sha256: sha(id.as_bytes()),
        label: format!("key {id}"),
        created_at: at(created),
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    }
}

async fn api_key_row(store: &Arc<dyn Store>, id: &str) -> ApiKeyRecord {
    store
        .get_api_key(id)
        .await
        .expect("get api key")
        .unwrap_or_else(|| panic!("api key {id} exists"))
}

pub async fn api_keys_are_created_fetched_listed_and_touched(store: Arc<dyn Store>) {
    assert_eq!(store.get_api_key("nope").await.expect("get"), None);
    assert!(store.list_api_keys().await.expect("list").is_empty());

    // Every field round-trips; roles keep their order (and may be empty).
    let late = ApiKeyRecord {
        roles: vec![
            "reader".to_owned(),
            "admin".to_owned(),
            "operator".to_owned(),
        ],
        expires_at: Some(at(1_000)),
        last_used_at: Some(at(4)),
        ..api_key("k-late", "alice", 3)
    };
    let early = ApiKeyRecord {
        roles: Vec::new(),
        ..api_key("k-early", "bob", 1)
    };
    // Two keys created at the same instant are listed by id.
    let tie_b = api_key("k-tie-b", "alice", 2);
    let tie_a = ApiKeyRecord {
        revoked_at: Some(at(2)),
        ..api_key("k-tie-a", "alice", 2)
    };
    for key in [&late, &early, &tie_b, &tie_a] {
        store.create_api_key(key).await.expect("create api key");
    }
    for key in [&late, &early, &tie_b, &tie_a] {
        assert_eq!(&api_key_row(&store, &key.id).await, key);
    }
    let listed: Vec<ApiKeyRecord> = store.list_api_keys().await.expect("list");
    assert_eq!(
        listed,
        vec![early.clone(), tie_a.clone(), tie_b.clone(), late.clone()]
    );

    // An existing id is a conflict whatever else differs, and the stored key is untouched.
    let impostor = ApiKeyRecord {
        owner: owner("mallory"),
        roles: vec!["admin".to_owned()],
        secret_sha256: [0xee; 32],
        ..api_key("k-late", "mallory", 9)
    };
    assert_conflict(store.create_api_key(&impostor).await);
    assert_eq!(api_key_row(&store, "k-late").await, late);
    assert_eq!(store.list_api_keys().await.expect("list").len(), 4);

    // Touching records the latest use and never moves back.
    store.touch_api_key("k-early", at(10)).await.expect("touch");
    assert_eq!(
        api_key_row(&store, "k-early").await.last_used_at,
        Some(at(10))
    );
    store.touch_api_key("k-early", at(5)).await.expect("touch");
    assert_eq!(
        api_key_row(&store, "k-early").await.last_used_at,
        Some(at(10)),
        "an older use does not move last_used_at back"
    );
    store.touch_api_key("k-early", at(20)).await.expect("touch");
    let touched = api_key_row(&store, "k-early").await;
    assert_eq!(touched.last_used_at, Some(at(20)));
    assert_eq!(
        ApiKeyRecord {
            last_used_at: None,
            ..touched
        },
        early,
        "touching changes nothing else"
    );
    // Touching applies whatever the key's state, and only to that key.
    store.touch_api_key("k-tie-a", at(21)).await.expect("touch");
    assert_eq!(
        api_key_row(&store, "k-tie-a").await.last_used_at,
        Some(at(21))
    );
    assert_eq!(api_key_row(&store, "k-tie-b").await.last_used_at, None);
    assert_eq!(
        api_key_row(&store, "k-late").await.last_used_at,
        Some(at(4))
    );
    assert_not_found(store.touch_api_key("nope", at(22)).await);
}

pub async fn revoking_an_api_key_reports_whether_it_was_active(store: Arc<dyn Store>) {
    let active = api_key("k-active", "alice", 1);
    let expiring = ApiKeyRecord {
        expires_at: Some(at(100)),
        ..api_key("k-expiring", "alice", 1)
    };
    let expired = ApiKeyRecord {
        expires_at: Some(at(50)),
        ..api_key("k-expired", "alice", 1)
    };
    let born_revoked = ApiKeyRecord {
        revoked_at: Some(at(2)),
        ..api_key("k-born-revoked", "alice", 1)
    };
    for key in [&active, &expiring, &expired, &born_revoked] {
        store.create_api_key(key).await.expect("create");
    }

    assert!(
        store
            .revoke_api_key("k-active", at(30))
            .await
            .expect("revoke")
    );
    let revoked = api_key_row(&store, "k-active").await;
    assert_eq!(revoked.revoked_at, Some(at(30)));
    assert!(!revoked.is_active(at(31)));
    assert_eq!(
        ApiKeyRecord {
            revoked_at: None,
            ..revoked
        },
        active,
        "revoking changes nothing else"
    );
    // Again: no longer active, and the first revocation time is kept.
    assert!(
        !store
            .revoke_api_key("k-active", at(40))
            .await
            .expect("revoke again")
    );
    assert_eq!(
        api_key_row(&store, "k-active").await.revoked_at,
        Some(at(30))
    );

    // Not yet expired: active. Expired (expires_at is the first instant it is not): not active,
    // but marked revoked all the same.
    assert!(
        store
            .revoke_api_key("k-expiring", at(99))
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .revoke_api_key("k-expired", at(50))
            .await
            .expect("revoke")
    );
    assert_eq!(
        api_key_row(&store, "k-expired").await.revoked_at,
        Some(at(50))
    );
    assert!(
        !store
            .revoke_api_key("k-born-revoked", at(60))
            .await
            .expect("revoke")
    );
    assert_eq!(
        api_key_row(&store, "k-born-revoked").await.revoked_at,
        Some(at(2))
    );

    assert_not_found(store.revoke_api_key("nope", at(70)).await);
    // Revoked keys are still returned (the caller decides) and still listed.
    assert_eq!(store.list_api_keys().await.expect("list").len(), 4);
    assert!(
        store
            .list_api_keys()
            .await
            .expect("list")
            .iter()
            .all(|k| k.revoked_at.is_some())
    );
}

// ---- data keys -------------------------------------------------------------------------------

fn data_key(document_id: DocumentId, kek_id: &str, wrapped: &[u8], created: i64) -> DataKeyRecord {
    DataKeyRecord {
        document_id,
        kek_id: kek_id.to_owned(),
        wrapped: wrapped.to_vec(),
        created_at: at(created),
    }
}

async fn data_key_row(store: &Arc<dyn Store>, document_id: DocumentId) -> Option<DataKeyRecord> {
    store.get_data_key(document_id).await.expect("get data key")
}

pub async fn racing_workers_get_one_data_key_per_document(store: Arc<dyn Store>) {
    let doc = DocumentId::new_v7();
    assert_eq!(data_key_row(&store, doc).await, None);
    // Wrapped keys are opaque bytes: zeros and high bytes included.
    let first = data_key(doc, "kek-1", &[0, 1, 0xfe, 0xff, 0], 1);
    assert!(store.put_data_key(&first).await.expect("put"));
    let second = data_key(doc, "kek-2", b"another key", 2);
    assert!(
        !store.put_data_key(&second).await.expect("put again"),
        "a document has one data key"
    );
    assert_eq!(data_key_row(&store, doc).await, Some(first.clone()));

    for round in 0..16 {
        let doc = DocumentId::new_v7();
        let mut tasks = Vec::new();
        for worker in 0..2u8 {
            let store = store.clone();
            let mine = data_key(doc, &format!("kek-{worker}"), &[worker; 40], round);
            tasks.push(tokio::spawn(async move {
                let won = store.put_data_key(&mine).await.expect("put");
                let used = store
                    .get_data_key(doc)
                    .await
                    .expect("get")
                    .expect("a key exists after put");
                (won, mine, used)
            }));
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        let winners: Vec<&DataKeyRecord> = results
            .iter()
            .filter(|(won, _, _)| *won)
            .map(|(_, mine, _)| mine)
            .collect();
        assert_eq!(winners.len(), 1, "exactly one racing put stores the key");
        for (_, _, used) in &results {
            assert_eq!(used, winners[0], "both workers use the winner's key");
        }
    }
    // The first document's key was never replaced.
    assert_eq!(data_key_row(&store, doc).await, Some(first));
}

pub async fn rewrapping_a_data_key_is_a_compare_and_set(store: Arc<dyn Store>) {
    let doc = DocumentId::new_v7();
    let other = DocumentId::new_v7();
    let original = data_key(doc, "kek-1", b"wrapped-by-1", 1);
    let bystander = data_key(other, "kek-1", b"wrapped-by-1", 1);
    assert!(store.put_data_key(&original).await.expect("put"));
    assert!(store.put_data_key(&bystander).await.expect("put"));
    let rewrapped = data_key(doc, "kek-2", b"wrapped-by-2", 9);

    // Either half of the expected state differing is a mismatch, and nothing changes.
    assert!(
        !store
            .rewrap_data_key(doc, "kek-2", b"wrapped-by-1", &rewrapped)
            .await
            .expect("wrong kek")
    );
    assert!(
        !store
            .rewrap_data_key(doc, "kek-1", b"wrapped-by-X", &rewrapped)
            .await
            .expect("wrong wrapped")
    );
    assert_eq!(data_key_row(&store, doc).await, Some(original.clone()));

    // A new record for another document is refused.
    assert_conflict(
        store
            .rewrap_data_key(
                doc,
                "kek-1",
                b"wrapped-by-1",
                &data_key(other, "kek-2", b"x", 9),
            )
            .await,
    );
    assert_eq!(data_key_row(&store, doc).await, Some(original.clone()));

    assert!(
        store
            .rewrap_data_key(doc, "kek-1", b"wrapped-by-1", &rewrapped)
            .await
            .expect("rewrap")
    );
    let after = DataKeyRecord {
        created_at: original.created_at,
        ..rewrapped.clone()
    };
    assert_eq!(
        data_key_row(&store, doc).await,
        Some(after.clone()),
        "kek and wrapped replaced, created_at kept"
    );
    assert_eq!(
        data_key_row(&store, other).await,
        Some(bystander),
        "only that document's key changes"
    );
    // A rewrap from the state that no longer holds fails.
    assert!(
        !store
            .rewrap_data_key(
                doc,
                "kek-1",
                b"wrapped-by-1",
                &data_key(doc, "kek-3", b"3", 9)
            )
            .await
            .expect("stale rewrap")
    );
    assert_eq!(data_key_row(&store, doc).await, Some(after));
    // No key: nothing to swap.
    let missing = DocumentId::new_v7();
    assert!(
        !store
            .rewrap_data_key(
                missing,
                "kek-1",
                b"w",
                &data_key(missing, "kek-2", b"w2", 9)
            )
            .await
            .expect("missing")
    );
    assert_eq!(data_key_row(&store, missing).await, None);

    // Two rewrappers racing from the same state: exactly one wins, and its key is the row.
    let mut tasks = Vec::new();
    for n in 0..4u8 {
        let store = store.clone();
        let new = data_key(doc, &format!("kek-race-{n}"), &[n; 48], 9);
        tasks.push(tokio::spawn(async move {
            let won = store
                .rewrap_data_key(doc, "kek-2", b"wrapped-by-2", &new)
                .await
                .expect("rewrap");
            (won, new)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (won, new) = task.await.expect("task");
        if won {
            winners.push(new);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one racing rewrap wins");
    assert_eq!(
        data_key_row(&store, doc).await,
        Some(DataKeyRecord {
            created_at: original.created_at,
            ..winners.remove(0)
        })
    );
}

pub async fn data_keys_to_rewrap_are_listed_in_batches_and_counted_by_kek(store: Arc<dyn Store>) {
    assert!(
        store
            .data_keys_wrapped_by_other_than("kek-new", 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        store
            .count_data_keys_by_kek()
            .await
            .expect("count")
            .is_empty()
    );

    let mut docs: Vec<DocumentId> = (0..6).map(|_| DocumentId::new_v7()).collect();
    docs.sort();
    let keks = [
        "kek-old", "kek-new", "kek-old", "kek-mid", "kek-old", "kek-new",
    ];
    // Inserted out of document order: the listing orders them.
    let mut keys = Vec::new();
    for (n, (doc, kek)) in docs.iter().zip(keks).enumerate().rev() {
        let key = data_key(*doc, kek, format!("{kek}/{n}").as_bytes(), n as i64);
        assert!(store.put_data_key(&key).await.expect("put"));
        keys.push(key);
    }
    keys.sort_by_key(|k| k.document_id);

    let not_new: Vec<DataKeyRecord> = keys
        .iter()
        .filter(|k| k.kek_id != "kek-new")
        .cloned()
        .collect();
    assert_eq!(not_new.len(), 4);
    assert_eq!(
        store
            .data_keys_wrapped_by_other_than("kek-new", 10)
            .await
            .expect("list"),
        not_new
    );
    assert_eq!(
        store
            .data_keys_wrapped_by_other_than("kek-new", 3)
            .await
            .expect("list"),
        not_new[..3]
    );
    assert_eq!(
        store
            .data_keys_wrapped_by_other_than("kek-none", 10)
            .await
            .expect("list"),
        keys,
        "every key when none is wrapped by that kek"
    );
    assert_eq!(
        store.count_data_keys_by_kek().await.expect("count"),
        vec![
            ("kek-mid".to_owned(), 1),
            ("kek-new".to_owned(), 2),
            ("kek-old".to_owned(), 3),
        ]
    );

    // What `navigator keys rewrap` does: batches until nothing is left.
    let mut batches = 0;
    loop {
        let batch = store
            .data_keys_wrapped_by_other_than("kek-new", 2)
            .await
            .expect("batch");
        if batch.is_empty() {
            break;
        }
        batches += 1;
        assert!(batches <= 2, "rewrapped keys drop out of the listing");
        for key in batch {
            let new = DataKeyRecord {
                kek_id: "kek-new".to_owned(),
                wrapped: [b"rewrapped:".as_slice(), key.wrapped.as_slice()].concat(),
                ..key.clone()
            };
            assert!(
                store
                    .rewrap_data_key(key.document_id, &key.kek_id, &key.wrapped, &new)
                    .await
                    .expect("rewrap")
            );
        }
    }
    assert_eq!(batches, 2);
    assert_eq!(
        store.count_data_keys_by_kek().await.expect("count"),
        vec![("kek-new".to_owned(), 6)]
    );
}

pub async fn deleting_a_document_deletes_its_data_key(store: Arc<dyn Store>) {
    let alice = owner("alice");
    let doomed = create(&store, &alice, "shred me", t0()).await;
    let kept = create(&store, &alice, "keep me", t0()).await;
    let doomed_key = data_key(doomed.document.id, "kek-1", b"doomed", 1);
    let kept_key = data_key(kept.document.id, "kek-1", b"kept", 1);
    assert!(store.put_data_key(&doomed_key).await.expect("put"));
    assert!(store.put_data_key(&kept_key).await.expect("put"));

    // A delete refused for scope keeps the key.
    assert_not_found(
        store
            .delete_document(&OwnerScope::Owner(owner("bob")), doomed.document.id, at(1))
            .await,
    );
    assert_eq!(
        data_key_row(&store, doomed.document.id).await,
        Some(doomed_key)
    );

    store
        .delete_document(&OwnerScope::Owner(alice), doomed.document.id, at(2))
        .await
        .expect("delete");
    assert_eq!(data_key_row(&store, doomed.document.id).await, None);
    assert_eq!(
        data_key_row(&store, kept.document.id).await,
        Some(kept_key.clone())
    );
    assert_eq!(
        store.count_data_keys_by_kek().await.expect("count"),
        vec![("kek-1".to_owned(), 1)]
    );
    assert_eq!(
        store
            .data_keys_wrapped_by_other_than("kek-2", 10)
            .await
            .expect("list"),
        vec![kept_key]
    );
}

// ---- audit log -------------------------------------------------------------------------------

fn sha(bytes: &[u8]) -> [u8; 32] {
    let hex = Sha256Hex::of(bytes);
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex.as_str()[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

/// A keyed SHA-256 over `(key, seq, prev_hash, entry)`: enough to show the chain is built from
/// exactly the values the contract names (a real deployment uses an HMAC).
struct TestSealer {
    key: &'static [u8],
}

impl AuditSealer for TestSealer {
    fn seal(&self, seq: i64, prev_hash: &[u8; 32], entry: &[u8]) -> [u8; 32] {
        sha(&[self.key, &seq.to_be_bytes(), prev_hash, entry].concat())
    }
}

const SEALER: TestSealer = TestSealer {
    key: b"conformance sealing key",
};
const GENESIS: [u8; 32] = [0x5a; 32];

fn audit_entry(secs: i64, actor: &str, action: &str, resource_id: Option<&str>) -> NewAuditEntry {
    let entry = serde_json::json!({
        "at": secs,
        "actor": actor,
        "action": action,
        "resource_id": resource_id,
    });
    NewAuditEntry {
        at: at(secs),
        actor: actor.to_owned(),
        action: action.to_owned(),
        resource_type: "document".to_owned(),
        resource_id: resource_id.map(str::to_owned),
        outcome: "success".to_owned(),
        request_id: Some(format!("req-{secs}")),
        source_ip: None,
        entry: serde_json::to_vec(&entry).expect("json"),
    }
}

async fn append(store: &Arc<dyn Store>, entry: &NewAuditEntry) -> AuditRecord {
    store
        .append_audit(entry, &SEALER, &GENESIS)
        .await
        .expect("append audit")
}

async fn whole_chain(store: &Arc<dyn Store>) -> Vec<AuditRecord> {
    store.audit_chain(0, 100_000).await.expect("audit chain")
}

/// What a verifier does: the first seq at which the chain does not hold.
fn first_break(rows: &[AuditRecord]) -> Option<i64> {
    let mut prev = GENESIS;
    for (n, row) in rows.iter().enumerate() {
        if row.seq != n as i64 + 1
            || row.prev_hash != prev
            || row.hash != SEALER.seal(row.seq, &row.prev_hash, &row.entry)
        {
            return Some(row.seq);
        }
        prev = row.hash;
    }
    None
}

pub async fn audit_appends_chain_each_row_to_the_previous_one(store: Arc<dyn Store>) {
    assert!(whole_chain(&store).await.is_empty());
    // Stored verbatim: not re-serialised or normalised (odd spacing, key order, escapes).
    let verbatim = NewAuditEntry {
        resource_id: None,
        request_id: None,
        source_ip: Some("2001:db8::7".to_owned()),
        outcome: "denied".to_owned(),
        resource_type: "api_key".to_owned(),
        entry: br#"{"z": 1,  "a":[ ],"s":"\u00e9\n"}"#.to_vec(),
        ..audit_entry(1, "svc:ingest", "api_key.revoke", None)
    };
    let first = append(&store, &verbatim).await;
    assert_eq!(first.seq, 1);
    assert_eq!(
        first.prev_hash, GENESIS,
        "the first row follows the genesis value"
    );
    assert_eq!(first.hash, SEALER.seal(1, &GENESIS, &verbatim.entry));
    assert_eq!(
        (
            first.at,
            &first.actor,
            &first.action,
            &first.resource_type,
            &first.resource_id,
            &first.outcome,
            &first.request_id,
            &first.source_ip,
            &first.entry,
        ),
        (
            verbatim.at,
            &verbatim.actor,
            &verbatim.action,
            &verbatim.resource_type,
            &verbatim.resource_id,
            &verbatim.outcome,
            &verbatim.request_id,
            &verbatim.source_ip,
            &verbatim.entry,
        )
    );

    // Later appends ignore the genesis value they are given: they follow the head.
    let other_genesis = [0x11; 32];
    let second_entry = audit_entry(2, "alice", "document.upload", Some("doc-1"));
    let second = store
        .append_audit(&second_entry, &SEALER, &other_genesis)
        .await
        .expect("append");
    assert_eq!(second.seq, 2);
    assert_eq!(second.prev_hash, first.hash);
    assert_eq!(
        second.hash,
        SEALER.seal(2, &first.hash, &second_entry.entry)
    );

    // Identical entries still chain (the seq and predecessor differ).
    let mut appended = vec![first, second];
    for _ in 0..3 {
        appended.push(append(&store, &audit_entry(3, "bob", "search", None)).await);
    }
    assert_eq!(
        appended.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    let chain = whole_chain(&store).await;
    assert_eq!(chain, appended, "what append returned is what is stored");
    assert_eq!(first_break(&chain), None);
    let distinct: HashSet<[u8; 32]> = chain.iter().map(|r| r.hash).collect();
    assert_eq!(distinct.len(), 5);

    // Paging through the chain.
    assert_eq!(
        store.audit_chain(2, 2).await.expect("page"),
        appended[2..4].to_vec()
    );
    assert_eq!(
        store.audit_chain(4, 10).await.expect("page"),
        appended[4..].to_vec()
    );
    assert!(store.audit_chain(5, 10).await.expect("page").is_empty());
    assert!(store.audit_chain(0, 0).await.expect("page").is_empty());
}

/// `tasks` concurrent writers × `per_task` appends each, spread over `stores` (several stores
/// on one database stand for several processes): the chain is `1..=tasks × per_task` with every
/// `prev_hash` the previous row's `hash`, and each writer's entries in its own order.
pub async fn concurrent_audit_appends_never_fork_across(
    stores: Vec<Arc<dyn Store>>,
    tasks: usize,
    per_task: usize,
) {
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = stores[task % stores.len()].clone();
        handles.push(tokio::spawn(async move {
            let mut returned = Vec::new();
            for n in 0..per_task {
                let mut entry = audit_entry(n as i64, &format!("writer-{task}"), "append", None);
                entry.entry = format!(r#"{{"task":{task},"n":{n}}}"#).into_bytes();
                returned.push(
                    store
                        .append_audit(&entry, &SEALER, &GENESIS)
                        .await
                        .expect("concurrent append"),
                );
            }
            returned
        }));
    }
    let mut returned = Vec::new();
    for handle in handles {
        returned.extend(handle.await.expect("task"));
    }
    let total = tasks * per_task;
    returned.sort_by_key(|r| r.seq);
    let chain = whole_chain(&stores[0]).await;
    assert_eq!(chain.len(), total);
    assert_eq!(
        chain.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=total as i64).collect::<Vec<_>>(),
        "seq is exactly 1..={total}"
    );
    assert_eq!(chain[0].prev_hash, GENESIS);
    for pair in chain.windows(2) {
        assert_eq!(
            pair[1].prev_hash, pair[0].hash,
            "row {} does not follow row {}: the chain forked",
            pair[1].seq, pair[0].seq
        );
    }
    assert_eq!(first_break(&chain), None);
    assert_eq!(returned, chain, "every append returned its stored row");
    for task in 0..tasks {
        let actor = format!("writer-{task}");
        let mine: Vec<i64> = chain
            .iter()
            .filter(|r| r.actor == actor)
            .map(|r| r.at.unix_timestamp() - t0().unix_timestamp())
            .collect();
        assert_eq!(
            mine,
            (0..per_task as i64).collect::<Vec<_>>(),
            "{actor}'s entries in its order"
        );
    }
}

pub async fn concurrent_audit_appends_never_fork_the_chain(store: Arc<dyn Store>) {
    concurrent_audit_appends_never_fork_across(vec![store], 8, 50).await;
}

pub async fn audit_entries_are_filtered_and_paged(store: Arc<dyn Store>) {
    let rows = vec![
        append(&store, &audit_entry(10, "alice", "login", None)).await,
        append(&store, &audit_entry(20, "bob", "upload", Some("doc-1"))).await,
        append(&store, &audit_entry(30, "alice", "delete", Some("doc-1"))).await,
        append(&store, &audit_entry(40, "alice", "upload", Some("doc-2"))).await,
        append(&store, &audit_entry(50, "svc", "upload", Some("doc-1"))).await,
    ];
    let all = AuditFilter {
        limit: 100,
        ..AuditFilter::default()
    };
    let seqs = |records: Vec<AuditRecord>| records.iter().map(|r| r.seq).collect::<Vec<_>>();
    let query = |filter: AuditFilter| {
        let store = store.clone();
        async move { store.audit_entries(&filter).await.expect("audit entries") }
    };

    assert_eq!(
        query(all.clone()).await,
        rows,
        "unfiltered: every row in seq order"
    );
    assert_eq!(
        seqs(
            query(AuditFilter {
                actor: Some("alice".to_owned()),
                ..all.clone()
            })
            .await
        ),
        [1, 3, 4]
    );
    assert_eq!(
        seqs(
            query(AuditFilter {
                action: Some("upload".to_owned()),
                ..all.clone()
            })
            .await
        ),
        [2, 4, 5]
    );
    assert_eq!(
        seqs(
            query(AuditFilter {
                resource_id: Some("doc-1".to_owned()),
                ..all.clone()
            })
            .await
        ),
        [2, 3, 5]
    );
    assert_eq!(
        seqs(
            query(AuditFilter {
                actor: Some("alice".to_owned()),
                action: Some("upload".to_owned()),
                ..all.clone()
            })
            .await
        ),
        [4],
        "filters combine"
    );
    assert_eq!(
        seqs(
            query(AuditFilter {
                actor: Some("alice".to_owned()),
                resource_id: Some("doc-1".to_owned()),
                action: Some("delete".to_owned()),
                ..all.clone()
            })
            .await
        ),
        [3]
    );
    assert_eq!(
        seqs(
            query(AuditFilter {
                from: Some(at(20)),
                to: Some(at(40)),
                ..all.clone()
            })
            .await
        ),
        [2, 3],
        "from is inclusive, to exclusive"
    );
    assert_eq!(
        seqs(
            query(AuditFilter {
                from: Some(at(41)),
                ..all.clone()
            })
            .await
        ),
        [5]
    );
    assert_eq!(
        seqs(
            query(AuditFilter {
                to: Some(at(10)),
                ..all.clone()
            })
            .await
        ),
        Vec::<i64>::new()
    );
    assert_eq!(
        seqs(
            query(AuditFilter {
                actor: Some("mallory".to_owned()),
                ..all.clone()
            })
            .await
        ),
        Vec::<i64>::new()
    );
    assert_eq!(
        seqs(
            query(AuditFilter {
                actor: Some("ALICE".to_owned()),
                ..all.clone()
            })
            .await
        ),
        Vec::<i64>::new(),
        "exact matches"
    );

    // Paging: after_seq and limit apply after the filters.
    assert_eq!(
        seqs(
            query(AuditFilter {
                after_seq: 2,
                limit: 2,
                ..all.clone()
            })
            .await
        ),
        [3, 4]
    );
    assert_eq!(
        seqs(
            query(AuditFilter {
                actor: Some("alice".to_owned()),
                after_seq: 1,
                limit: 1,
                ..all.clone()
            })
            .await
        ),
        [3]
    );
    assert_eq!(
        seqs(
            query(AuditFilter {
                action: Some("upload".to_owned()),
                after_seq: 4,
                ..all.clone()
            })
            .await
        ),
        [5]
    );
    assert!(
        query(AuditFilter {
            limit: 0,
            ..all.clone()
        })
        .await
        .is_empty()
    );
    // Full rows come back, not just their seq.
    assert_eq!(
        query(AuditFilter {
            resource_id: Some("doc-2".to_owned()),
            ..all
        })
        .await,
        vec![rows[3].clone()]
    );
}

fn assert_refused<T: Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::Conflict(message)) => {
            assert!(
                message.contains("append-only"),
                "{what}: refused for another reason: {message}"
            );
        }
        other => panic!("{what}: expected the append-only trigger to refuse, got {other:?}"),
    }
}

pub async fn the_audit_log_refuses_updates_deletes_and_forks(store: Arc<dyn Store>) {
    for secs in 1..=3 {
        append(&store, &audit_entry(secs, "alice", "login", None)).await;
    }
    let before = whole_chain(&store).await;

    assert_refused(
        store
            .execute_raw_for_tests("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
            .await,
        "update one row",
    );
    assert_refused(
        store
            .execute_raw_for_tests("UPDATE audit_log SET outcome = 'success'")
            .await,
        "update every row",
    );
    assert_refused(
        store
            .execute_raw_for_tests("DELETE FROM audit_log WHERE seq = 3")
            .await,
        "delete the head",
    );
    assert_refused(
        store.execute_raw_for_tests("DELETE FROM audit_log").await,
        "delete everything",
    );
    assert_eq!(whole_chain(&store).await, before, "nothing changed");

    // Inserts are allowed by the triggers, but a second row claiming an existing predecessor
    // (a fork) is refused by the schema.
    let fork = store
        .execute_raw_for_tests(
            "INSERT INTO audit_log (seq, at, actor, action, resource_type, resource_id, outcome, \
             request_id, source_ip, entry, prev_hash, hash) \
             SELECT seq + 100, at, 'mallory', action, resource_type, resource_id, outcome, \
             request_id, source_ip, entry, prev_hash, hash FROM audit_log WHERE seq = 2",
        )
        .await;
    assert!(
        matches!(fork, Err(StoreError::Conflict(_))),
        "a forking insert must be refused, got {fork:?}"
    );
    assert_eq!(whole_chain(&store).await, before);

    // The store still appends after the refusals.
    let next = append(&store, &audit_entry(4, "alice", "logout", None)).await;
    assert_eq!(next.seq, 4);
    assert_eq!(next.prev_hash, before[2].hash);
    assert_eq!(first_break(&whole_chain(&store).await), None);
}

pub async fn tampering_with_the_audit_log_breaks_the_chain(store: Arc<dyn Store>) {
    for secs in 1..=5 {
        append(&store, &audit_entry(secs, "alice", "read", Some("doc-1"))).await;
    }
    assert_eq!(first_break(&whole_chain(&store).await), None);

    // An attacker with database access deletes a row: the gap shows at the next one.
    assert_eq!(
        store
            .tamper_audit_for_tests("DELETE FROM audit_log WHERE seq = 4")
            .await
            .expect("tamper: delete"),
        1
    );
    let chain = whole_chain(&store).await;
    assert_eq!(
        chain.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 5]
    );
    assert_eq!(first_break(&chain), Some(5));

    // …and rewrites an entry: its hash no longer matches.
    assert_eq!(
        store
            .tamper_audit_for_tests(
                "UPDATE audit_log SET entry = (SELECT entry FROM audit_log WHERE seq = 1) \
                 WHERE seq = 2"
            )
            .await
            .expect("tamper: update"),
        1
    );
    let chain = whole_chain(&store).await;
    assert_eq!(chain[1].entry, chain[0].entry, "the tampering took effect");
    assert_eq!(first_break(&chain), Some(2));

    // The triggers are back after tampering, and after a tampering attempt that failed.
    assert_refused(
        store
            .execute_raw_for_tests("DELETE FROM audit_log WHERE seq = 1")
            .await,
        "delete after tampering",
    );
    assert!(
        store
            .tamper_audit_for_tests("DELETE FROM no_such_table")
            .await
            .is_err()
    );
    assert_refused(
        store
            .execute_raw_for_tests("UPDATE audit_log SET actor = 'x' WHERE seq = 1")
            .await,
        "update after a failed tampering",
    );
    assert_eq!(whole_chain(&store).await, chain);

    // Appends carry on from the head as it is now.
    let next = append(&store, &audit_entry(6, "alice", "read", None)).await;
    assert_eq!(next.seq, 6);
    assert_eq!(next.prev_hash, chain[3].hash);
}

pub use crate::test_databases::{POSTGRES_URL_VAR, fresh_postgres_database, postgres_admin_url};
