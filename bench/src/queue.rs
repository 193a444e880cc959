//! Job-queue throughput with no-op stages, straight against the `Store` trait.
//!
//! For each backend (SQLite in a fresh temporary file; PostgreSQL in a fresh database when
//! `NAVIGATOR_TEST_DATABASE_URL` is set) and each worker count W: pre-create N documents (each
//! with its queued job), then run W concurrent tasks that each loop `claim_job` →
//! `transition(running → complete, leased_by)` until the queue is empty, and print jobs/s.
//! Then runs `pgbench` (simple-update) against the same PostgreSQL server as a ceiling.
//!
//! Run with `bench/run.sh` (release build). `QUEUE_BENCH_JOBS` overrides N (default 2000).

use navigator_domain::{
    Clock, DocumentId, JobId, JobStatus, MediaType, OwnerId, Sha256Hex, SystemClock,
};
use navigator_store::postgres::PgStore;
use navigator_store::sqlite::SqliteStore;
use navigator_store::test_databases::{fresh_postgres_database, postgres_admin_url};
use navigator_store::{NewDocument, Store, Transition};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WORKERS: [usize; 3] = [1, 2, 4];
const LEASE: Duration = Duration::from_secs(300);
const PGBENCH: &str = "/usr/lib/postgresql/15/bin/pgbench";

fn jobs() -> usize {
    std::env::var("QUEUE_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

async fn fill(store: &dyn Store, n: usize) -> anyhow::Result<Duration> {
    let owner = OwnerId::local();
    let started = Instant::now();
    for i in 0..n {
        let content = format!("queue bench document {i} {}", uuid::Uuid::now_v7());
        store
            .create_document(
                NewDocument {
                    id: DocumentId::new_v7(),
                    job_id: JobId::new_v7(),
                    owner: owner.clone(),
                    filename: format!("doc-{i}.txt"),
                    media_type: MediaType::Text,
                    bytes: content.len() as u64,
                    sha256: Sha256Hex::of(content.as_bytes()),
                    metadata: serde_json::json!({}),
                    idempotency_key: None,
                },
                SystemClock.now(),
            )
            .await?;
    }
    Ok(started.elapsed())
}

/// Claims and completes jobs until none is left; returns (completed, transient errors retried).
async fn worker(store: Arc<dyn Store>, name: String) -> anyhow::Result<(u64, u64)> {
    let (mut done, mut retried) = (0u64, 0u64);
    loop {
        let job = match store.claim_job(&name, LEASE, SystemClock.now()).await {
            Ok(Some(job)) => job,
            Ok(None) => return Ok((done, retried)),
            Err(e) if e.is_transient() => {
                retried += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        loop {
            let change = Transition::new(JobStatus::Running, JobStatus::Complete).leased_by(&name);
            match store.transition(job.id, change, SystemClock.now()).await {
                Ok(_) => break,
                Err(e) if e.is_transient() => retried += 1,
                Err(e) => return Err(e.into()),
            }
        }
        done += 1;
    }
}

async fn run_backend<F, Fut>(label: &str, n: usize, open: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Arc<dyn Store>, Box<dyn std::any::Any>)>>,
{
    for w in WORKERS {
        let (store, _guard) = open().await?;
        store.migrate().await?;
        let filled = fill(store.as_ref(), n).await?;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..w {
            tasks.spawn(worker(store.clone(), format!("bench-worker-{i}")));
        }
        let (mut done, mut retried) = (0u64, 0u64);
        while let Some(result) = tasks.join_next().await {
            let (d, r) = result??;
            done += d;
            retried += r;
        }
        let took = started.elapsed();
        anyhow::ensure!(done as usize == n, "{label}: completed {done} of {n} jobs");
        println!(
            "queue {label:<10} W={w}: {:>8.1} jobs/s  ({done} jobs in {:.2} s, {retried} transient retries; created in {:.2} s)",
            done as f64 / took.as_secs_f64(),
            took.as_secs_f64(),
            filled.as_secs_f64()
        );
    }
    Ok(())
}

/// `postgres://user[:password]@host[:port]/db` → (password, database name).
fn url_parts(url: &str) -> (Option<String>, String) {
    let base = url.split('?').next().unwrap_or(url);
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let (authority, db) = rest.split_once('/').unwrap_or((rest, "postgres"));
    let password = authority
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p.to_owned());
    (password, db.to_owned())
}

fn pgbench(database_url: &str) -> anyhow::Result<()> {
    let (password, db) = url_parts(database_url);
    let run = |args: &[&str]| -> anyhow::Result<String> {
        let mut cmd = Command::new(PGBENCH);
        cmd.args(["-h", "127.0.0.1", "-p", "55432", "-U", "postgres"])
            .args(args)
            .arg(&db);
        if let Some(p) = &password {
            cmd.env("PGPASSWORD", p);
        }
        let out = cmd.output()?;
        anyhow::ensure!(
            out.status.success(),
            "pgbench {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let started = Instant::now();
    run(&["-q", "-i", "-s", "10"])?;
    println!("pgbench -i -s 10: {:.1} s", started.elapsed().as_secs_f64());
    let report = run(&[
        "-n",
        "-c",
        "4",
        "-j",
        "2",
        "-T",
        "15",
        "-b",
        "simple-update",
    ])?;
    for line in report.lines() {
        if line.starts_with("tps") || line.contains("latency average") {
            println!(
                "pgbench -n -c 4 -j 2 -T 15 -b simple-update: {}",
                line.trim()
            );
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = jobs();
    println!("queue bench: {n} jobs per run, no-op stages, workers {WORKERS:?}");

    run_backend("sqlite", n, || async {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("queue.db").display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await?);
        Ok((store, Box::new(dir) as Box<dyn std::any::Any>))
    })
    .await?;

    let Some(admin) = postgres_admin_url() else {
        println!("postgres: skipped (NAVIGATOR_TEST_DATABASE_URL is not set)");
        return Ok(());
    };
    run_backend("postgres", n, || async {
        let url = fresh_postgres_database(&admin).await;
        let store: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await?);
        Ok((store, Box::new(()) as Box<dyn std::any::Any>))
    })
    .await?;

    let url = fresh_postgres_database(&admin).await;
    pgbench(&url)?;
    Ok(())
}
