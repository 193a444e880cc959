//! Audit-log throughput: appends per second through the real `Auditor` (canonical entry, keyed
//! hash, serialised append) with 1 and 4 concurrent writers, then a full `verify_chain` pass
//! (every link, keyed hash and column) in entries per second.
//!
//! For SQLite (a fresh temporary file) and, when `NAVIGATOR_TEST_DATABASE_URL` is set,
//! PostgreSQL (a fresh database). Run with `bench/run.sh` (release build). `AUDIT_BENCH_ENTRIES`
//! overrides the entries per writer count (default 5000).

use navigator_crypto::audit::AuditKey;
use navigator_domain::SystemClock;
use navigator_server::audit::{Action, AuditEvent, AuditSink, Auditor, verify_chain};
use navigator_store::Store;
use navigator_store::postgres::PgStore;
use navigator_store::sqlite::SqliteStore;
use navigator_store::test_databases::{fresh_postgres_database, postgres_admin_url};
use std::sync::Arc;
use std::time::Instant;

const WRITERS: [usize; 2] = [1, 4];

fn entries() -> usize {
    std::env::var("AUDIT_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
}

fn event(n: usize) -> AuditEvent {
    AuditEvent {
        actor: format!("member-{}", n % 17),
        action: Action::DocumentRead,
        resource_type: "document",
        resource_id: Some(uuid::Uuid::now_v7().to_string()),
        outcome: "success".to_owned(),
        request_id: Some(uuid::Uuid::now_v7().simple().to_string()),
        source_ip: Some("127.0.0.1".to_owned()),
        details: serde_json::json!({"n": n}),
    }
}

async fn run(name: &str, store: Arc<dyn Store>) -> anyhow::Result<()> {
    store.migrate().await?;
    let key = AuditKey::generate();
    let auditor = Arc::new(Auditor::new(
        store.clone(),
        key.clone(),
        Arc::new(SystemClock),
    ));
    let n = entries();
    for writers in WRITERS {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..writers {
            let auditor = auditor.clone();
            let share = n / writers;
            tasks.spawn(async move {
                for i in 0..share {
                    auditor.record(event(w * share + i)).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        let took = started.elapsed().as_secs_f64();
        println!(
            "{name}: {writers} writer(s): {n} appends in {took:.2} s = {:.0} appends/s",
            n as f64 / took
        );
    }
    let started = Instant::now();
    let summary = match verify_chain(store.as_ref(), key, None).await? {
        Ok(summary) => summary,
        Err(broken) => anyhow::bail!("the chain did not verify: {broken}"),
    };
    let took = started.elapsed().as_secs_f64();
    println!(
        "{name}: verify: {} entries in {took:.2} s = {:.0} entries/s",
        summary.entries,
        summary.entries as f64 / took
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    run("sqlite", Arc::new(SqliteStore::connect(&url).await?)).await?;
    match postgres_admin_url() {
        Some(admin) => {
            let url = fresh_postgres_database(&admin).await;
            run("postgres", Arc::new(PgStore::connect(&url).await?)).await?;
        }
        None => println!("postgres: skipped (set NAVIGATOR_TEST_DATABASE_URL)"),
    }
    Ok(())
}
