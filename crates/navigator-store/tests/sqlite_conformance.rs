//! The store conformance suite against SQLite (a fresh temporary database file per case, and an
//! in-memory database), plus what only a file database can show: several processes sharing it.

#![cfg(feature = "conformance")]

use navigator_domain::{DocumentId, JobId, MediaType, OwnerId, Sha256Hex};
use navigator_store::conformance::Fixture;
use navigator_store::sqlite::SqliteStore;
use navigator_store::{NewDocument, OwnerScope, Store};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use time::macros::datetime;

async fn file_store() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("navigator.db").display());
    let store = SqliteStore::connect(&url).await.expect("connect");
    Fixture::new(store).with_guard(dir)
}

mod file {
    navigator_store::store_conformance_tests!(super::file_store);
}

mod memory {
    navigator_store::store_conformance_tests!(|| async {
        navigator_store::sqlite::SqliteStore::connect("sqlite::memory:")
            .await
            .expect("connect")
    });
}

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
async fn two_processes_claiming_from_one_file_never_get_the_same_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    // Two stores on one file behave like two processes: separate pools, separate write
    // connections, only SQLite's file locks between them.
    let first: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await.expect("connect"));
    let second: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await.expect("connect"));
    first.migrate().await.expect("migrate");
    second
        .migrate()
        .await
        .expect("migrate is idempotent across processes");

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
async fn connect_creates_missing_directories_and_data_survives_a_reconnect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir
        .path()
        .join("nested")
        .join("deeper")
        .join("navigator.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url).await.expect("connect");
    let before = store.migration_status().await.expect("status");
    assert!(!before.is_empty());
    assert!(
        before.iter().all(|m| !m.applied),
        "nothing applied before migrate"
    );
    store.migrate().await.expect("migrate");
    let created = store
        .create_document(document(1), datetime!(2030-01-01 00:00 UTC))
        .await
        .expect("create");
    store.close().await;
    assert!(path.exists());

    let reopened = SqliteStore::connect(&url).await.expect("reconnect");
    reopened.migrate().await.expect("migrate again");
    assert!(
        reopened
            .migration_status()
            .await
            .expect("status")
            .iter()
            .all(|m| m.applied)
    );
    let fetched = reopened
        .get_document(&OwnerScope::All, created.document.id)
        .await
        .expect("get");
    assert_eq!(fetched, created.document);
}

#[tokio::test]
async fn an_in_memory_store_is_one_database_across_calls() {
    let store = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let created = store
        .create_document(document(1), datetime!(2030-01-01 00:00 UTC))
        .await
        .expect("create");
    // Reads go through the reader side; they must see the writer's database.
    for _ in 0..5 {
        store
            .get_document(&OwnerScope::All, created.document.id)
            .await
            .expect("visible");
    }
    let other = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("connect");
    other.migrate().await.expect("migrate");
    assert!(
        other
            .list_documents(&OwnerScope::All, None, 10)
            .await
            .expect("list")
            .is_empty(),
        "each in-memory store is its own database"
    );
}

#[tokio::test]
async fn wake_due_wakes_at_most_one_batch_per_call() {
    let store = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    navigator_store::conformance::wake_due_wakes_at_most_one_batch_per_call(Arc::new(store)).await;
}

/// Two stores on one file (two processes): 8 writers × 50 appends still form one chain, the
/// write lock of `BEGIN IMMEDIATE` serialising appends across the stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_appending_to_one_audit_log_never_fork_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let first: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await.expect("connect"));
    let second: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await.expect("connect"));
    first.migrate().await.expect("migrate");
    second.migrate().await.expect("migrate");
    navigator_store::conformance::concurrent_audit_appends_never_fork_across(
        vec![first, second],
        8,
        50,
    )
    .await;
}
