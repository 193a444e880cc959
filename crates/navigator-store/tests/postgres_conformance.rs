//! The store conformance suite against PostgreSQL: a fresh database per case, created through
//! the admin URL in `NAVIGATOR_TEST_DATABASE_URL` (`scripts/services.sh start` prints it), plus
//! what only a shared server can show: two processes' pools claiming from one queue.
//!
//! Without the variable, CI (`CI=true`) fails loudly; elsewhere the suite falls back to an
//! in-memory SQLite store with a note, so a laptop without PostgreSQL still runs green.

#![cfg(feature = "conformance")]

use navigator_domain::{DocumentId, JobId, MediaType, OwnerId, Sha256Hex};
use navigator_store::conformance::Fixture;
use navigator_store::postgres::PgStore;
use navigator_store::sqlite::SqliteStore;
use navigator_store::{NewDocument, Store};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use time::macros::datetime;

use navigator_store::conformance::{
    fresh_postgres_database as fresh_database, postgres_admin_url as postgres_url,
};

async fn pg_store() -> Fixture {
    match postgres_url() {
        Some(admin) => {
            let url = fresh_database(&admin).await;
            Fixture::new(PgStore::connect(&url).await.expect("connect"))
        }
        None => {
            eprintln!("postgres not configured; conformance ran against sqlite");
            Fixture::new(
                SqliteStore::connect("sqlite::memory:")
                    .await
                    .expect("connect"),
            )
        }
    }
}

navigator_store::store_conformance_tests!(pg_store);

fn document(n: usize) -> NewDocument {
    let content = format!("document {n}");
    NewDocument {
        id: DocumentId::new_v7(),
        job_id: JobId::new_v7(),
        owner: OwnerId::local(),
        filename: format!("{n}.txt"),
        media_type: MediaType::Text,
        bytes: content.len() as u64,
        sha256: Sha256Hex::of(content.as_bytes()),
        metadata: serde_json::json!({}),
        idempotency_key: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pg_stores_racing_claims_never_share_a_job() {
    let Some(admin) = postgres_url() else {
        eprintln!("postgres not configured; skipping");
        return;
    };
    let url = fresh_database(&admin).await;
    // Two pools on one database behave like two processes.
    let first: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.expect("connect"));
    let second: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.expect("connect"));
    let (a, b) = tokio::join!(first.migrate(), second.migrate());
    a.expect("migrate");
    b.expect("concurrent migrate is harmless");

    let now = datetime!(2030-01-01 00:00 UTC);
    const JOBS: usize = 40;
    for n in 0..JOBS {
        let store = if n % 2 == 0 { &first } else { &second };
        store
            .create_document(document(n), now)
            .await
            .expect("create");
    }

    let mut tasks = Vec::new();
    for w in 0..16 {
        let store = if w % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            while let Some(job) = store
                .claim_job(&format!("worker-{w}"), Duration::from_secs(30), now)
                .await
                .expect("claim")
            {
                claimed.push(job.id);
            }
            claimed
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), JOBS, "every job claimed exactly once");
    assert_eq!(distinct.len(), JOBS, "a job was claimed twice");
}

#[tokio::test]
async fn concurrent_uploads_of_the_same_bytes_yield_one_document() {
    let Some(admin) = postgres_url() else {
        eprintln!("postgres not configured; skipping");
        return;
    };
    let url = fresh_database(&admin).await;
    let store = Arc::new(PgStore::connect(&url).await.expect("connect"));
    store.migrate().await.expect("migrate");
    let now = datetime!(2030-01-01 00:00 UTC);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.create_document(document(7), now).await
        }));
    }
    let mut ids = HashSet::new();
    let mut fresh = 0;
    for task in tasks {
        let created = task.await.expect("task").expect("create");
        ids.insert(created.document.id);
        fresh += usize::from(!created.duplicate);
    }
    assert_eq!(ids.len(), 1, "one document for identical bytes");
    assert_eq!(fresh, 1, "exactly one upload created it");
}

fn unit(dims: usize, hot: usize) -> Vec<f32> {
    let mut v = vec![0.0; dims];
    v[hot] = 1.0;
    v
}

#[tokio::test]
async fn vector_search_over_384_dimensions_goes_through_the_index_path() {
    use navigator_domain::ChunkId;
    use navigator_store::{Embedding, NewChunk, OwnerScope, SearchQuery, StoreError};
    let Some(admin) = postgres_url() else {
        eprintln!("postgres not configured; skipping");
        return;
    };
    let url = fresh_database(&admin).await;
    let store = PgStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let now = datetime!(2030-01-01 00:00 UTC);
    let created = store
        .create_document(document(1), now)
        .await
        .expect("create");
    let doc = created.document.id;
    let texts = ["zero", "one", "two", "three"];
    let chunks: Vec<NewChunk> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| NewChunk {
            id: ChunkId::derive(doc, "test", "1", i as u32),
            ord: i as u32,
            text: (*text).to_owned(),
            text_sha256: Sha256Hex::of(text.as_bytes()),
            page_start: 1,
            page_end: 1,
            section: String::new(),
            token_count: 1,
            chunker: "test".to_owned(),
            chunker_version: "1".to_owned(),
        })
        .collect();
    store
        .stage_chunks(doc, &created.document.owner, &chunks)
        .await
        .expect("stage");
    let embeddings: Vec<Embedding> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| Embedding {
            text_sha256: Sha256Hex::of(text.as_bytes()),
            vector: unit(384, i),
        })
        .collect();
    store
        .put_embeddings("m384", &embeddings)
        .await
        .expect("put");
    assert_eq!(
        store
            .publish_staged(doc, "m384", now)
            .await
            .expect("publish"),
        4
    );

    let scope = OwnerScope::All;
    let query = SearchQuery {
        scope: &scope,
        text: "",
        document_ids: None,
        limit: 2,
    };
    let mut probe = unit(384, 2);
    probe[3] = 0.5;
    let hits = store
        .vector_search(&query, "m384", &probe)
        .await
        .expect("search");
    assert_eq!(
        hits.iter().map(|h| h.text.as_str()).collect::<Vec<_>>(),
        ["two", "three"]
    );
    let expected = 1.0 / (1.25f64).sqrt();
    assert!((hits[0].score - expected).abs() < 1e-4, "{}", hits[0].score);
    match store.vector_search(&query, "m384", &[1.0, 0.0]).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected Conflict for a dimension mismatch, got {other:?}"),
    }
}

/// A job enqueued through one store (process) wakes a listener on another at once, without
/// waiting for a poll.
#[tokio::test]
async fn enqueuing_work_notifies_listeners_in_other_processes() {
    let Some(admin) = postgres_url() else {
        return;
    };
    let url = fresh_database(&admin).await;
    let listener_store = PgStore::connect(&url).await.expect("connect");
    listener_store.migrate().await.expect("migrate");
    let writer_store = PgStore::connect(&url).await.expect("connect");
    let wake = Arc::new(tokio::sync::Notify::new());
    assert!(
        listener_store
            .listen_for_work(wake.clone())
            .await
            .expect("listen")
    );
    let woken = wake.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    writer_store
        .create_document(document(1), datetime!(2026-01-01 0:00 UTC))
        .await
        .expect("create");
    tokio::time::timeout(Duration::from_secs(10), woken)
        .await
        .expect("the listener was woken by the other store's enqueue");
}

/// Only one process leads maintenance at a time, and leadership passes on when the leader goes.
#[tokio::test]
async fn one_process_leads_maintenance_and_another_takes_over_when_it_goes() {
    let Some(admin) = postgres_url() else {
        return;
    };
    let url = fresh_database(&admin).await;
    let first = PgStore::connect(&url).await.expect("connect");
    let second = PgStore::connect(&url).await.expect("connect");
    let mut lead = first
        .try_lead()
        .await
        .expect("ask")
        .expect("the first asker leads");
    assert!(lead.still_leading().await);
    assert!(
        second.try_lead().await.expect("ask").is_none(),
        "only one leader"
    );
    drop(lead);
    // The lock goes with the leader's connection; the server notices the closed session quickly.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(mut taken) = second.try_lead().await.expect("ask") {
            assert!(taken.still_leading().await);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "leadership was never released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn wake_due_wakes_at_most_one_batch_per_call() {
    let Some(admin) = postgres_url() else {
        eprintln!("postgres not configured; skipping");
        return;
    };
    let url = fresh_database(&admin).await;
    let store = PgStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    navigator_store::conformance::wake_due_wakes_at_most_one_batch_per_call(Arc::new(store)).await;
}

/// Two pools on one database (two processes): 8 writers × 50 appends still form one chain, the
/// advisory lock serialising appends across the pools.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_appending_to_one_audit_log_never_fork_it() {
    let Some(admin) = postgres_url() else {
        eprintln!("postgres not configured; skipping");
        return;
    };
    let url = fresh_database(&admin).await;
    let first: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.expect("connect"));
    let second: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.expect("connect"));
    first.migrate().await.expect("migrate");
    navigator_store::conformance::concurrent_audit_appends_never_fork_across(
        vec![first, second],
        8,
        50,
    )
    .await;
}

/// PostgreSQL also refuses TRUNCATE of the audit log (a statement trigger: row triggers do not
/// fire on TRUNCATE).
#[tokio::test]
async fn the_audit_log_refuses_truncate() {
    use navigator_store::{AuditSealer, NewAuditEntry, StoreError};
    let Some(admin) = postgres_url() else {
        eprintln!("postgres not configured; skipping");
        return;
    };
    struct Xor;
    impl AuditSealer for Xor {
        fn seal(&self, seq: i64, prev_hash: &[u8; 32], _entry: &[u8]) -> [u8; 32] {
            prev_hash.map(|b| b ^ seq as u8)
        }
    }
    let url = fresh_database(&admin).await;
    let store = PgStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let entry = NewAuditEntry {
        at: datetime!(2030-01-01 00:00 UTC),
        actor: "alice".to_owned(),
        action: "login".to_owned(),
        resource_type: "session".to_owned(),
        resource_id: None,
        outcome: "success".to_owned(),
        request_id: None,
        source_ip: None,
        entry: b"{}".to_vec(),
    };
    store
        .append_audit(&entry, &Xor, &[0; 32])
        .await
        .expect("append");
    for sql in ["TRUNCATE audit_log", "TRUNCATE audit_log CASCADE"] {
        match store.execute_raw_for_tests(sql).await {
            Err(StoreError::Conflict(message)) => assert!(message.contains("append-only")),
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(store.audit_chain(0, 10).await.expect("chain").len(), 1);
}
