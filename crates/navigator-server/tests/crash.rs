//! Crash safety on PostgreSQL with separate processes: one `navigator serve --no-workers` for the
//! API and several `navigator worker` processes sharing the queue, killed with SIGKILL while they
//! work. Every job still finishes exactly once with the chunks a calm run produces, and a dead
//! worker's job runs again within `lease_secs + rescue_interval_secs`.

mod support;

use navigator_domain::{DocumentId, JobId, JobStatus};
use navigator_store::Store;
use navigator_store::conformance::{fresh_postgres_database, postgres_admin_url};
use navigator_store::postgres::PgStore;
use navigator_testkit::docs;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::process::Server;

const LEASE_SECS: u64 = 2;
const RESCUE_SECS: u64 = 1;
/// Pages per document in the chaos test: enough that the run spans many kills.
const PAGES: usize = 60;

/// A fresh PostgreSQL database URL, or `None` (skip) when none is configured outside CI.
async fn postgres_database() -> Option<String> {
    let Some(admin) = postgres_admin_url() else {
        eprintln!("skipping: NAVIGATOR_TEST_DATABASE_URL is not set (scripts/services.sh start)");
        return None;
    };
    Some(fresh_postgres_database(&admin).await)
}

/// One config file shared by the API and every worker: same database, same blob directory.
fn write_config(dir: &Path, database_url: &str, embedder_yaml: &str) -> PathBuf {
    let path = dir.join("navigator.yaml");
    let yaml = format!(
        "data_dir: {data}\n\
         database:\n  url: {database_url}\n\
         server:\n  listen: 127.0.0.1:0\n  shutdown_grace_secs: 5\n\
         {embedder_yaml}\
         workers:\n  concurrency: 1\n  lease_secs: {LEASE_SECS}\n  poll_interval_ms: 50\n  rescue_interval_secs: {RESCUE_SECS}\n  retry:\n    base_secs: 1\n    cap_secs: 1\n    max_attempts: 50\n\
         log:\n  level: warn\n  format: json\n",
        data = dir.join("data").display()
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

/// `navigator worker`.
fn worker(config: &Path) -> Server {
    Server::start_with_args(config, &["worker"], &[])
}

/// `navigator serve --no-workers`, with its base URL.
fn api(config: &Path) -> (Server, String) {
    let server = Server::start_with_args(config, &["serve", "--no-workers"], &[]);
    let base = server.base.clone();
    (server, base)
}

/// SIGKILL through kill(1), then reap it (bounded).
fn kill_9(process: &mut Server) {
    process.signal("-KILL");
    process.wait_exit(Duration::from_secs(10));
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Uploads through the API; returns (document id, job id).
async fn upload(base: &str, name: &str, bytes: Vec<u8>) -> (DocumentId, JobId) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    );
    let r = http()
        .post(format!("{base}/v1/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "upload {name}");
    let v: Value = r.json().await.unwrap();
    (
        DocumentId::parse(v["document_id"].as_str().unwrap()).unwrap(),
        JobId::parse(v["job_id"].as_str().unwrap()).unwrap(),
    )
}

async fn job_status(base: &str, id: JobId) -> String {
    let v: Value = http()
        .get(format!("{base}/v1/jobs/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["status"].as_str().unwrap_or_default().to_owned()
}

fn is_terminal(status: &str) -> bool {
    matches!(status, "complete" | "failed" | "cancelled")
}

/// The chunks a calm, in-process run of the same PDF produces.
fn calm_chunk_texts(pdf: &[u8]) -> Vec<String> {
    let parsed = navigator_parse::parse(navigator_domain::MediaType::Pdf, pdf).unwrap();
    navigator_pipeline::chunk::chunk_document(
        &parsed,
        &navigator_embed::HashEmbedder::new(),
        &navigator_pipeline::chunk::ChunkerConfig::default(),
    )
    .into_iter()
    .map(|c| c.text)
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn four_workers_killed_repeatedly_still_finish_every_job_exactly_once_on_postgres() {
    let Some(url) = postgres_database().await else {
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &url, "embedder:\n  kind: hash\n");
    let (_api, base) = api(&config);

    // The hash embedder is fast: 8-page documents all finish before the first kill, so each one
    // has PAGES pages, and the workers start only once every job is queued.
    let mut accepted = Vec::new();
    for seed in 0..40u64 {
        let pdf = docs::pdf(&docs::insurance_policy_pages(PAGES, 1000 + seed));
        let (doc, job) = upload(&base, &format!("policy-{seed}.pdf"), pdf.clone()).await;
        accepted.push((doc, job, pdf));
    }
    let mut workers: Vec<Server> = (0..4).map(|_| worker(&config)).collect();

    // Chaos: every ~1.5 s SIGKILL one worker (round robin) and start a replacement at once.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut kills = 0usize;
    let mut next_kill = Instant::now() + Duration::from_millis(750);
    loop {
        let mut pending = 0;
        for (_, job, _) in &accepted {
            if !is_terminal(&job_status(&base, *job).await) {
                pending += 1;
            }
        }
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} of 40 jobs not terminal after 180 s ({kills} kills)"
        );
        if Instant::now() >= next_kill {
            let slot = kills % workers.len();
            kill_9(&mut workers[slot]);
            workers[slot] = worker(&config);
            kills += 1;
            next_kill = Instant::now() + Duration::from_millis(1500);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "all 40 jobs terminal after {kills} SIGKILLs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(kills >= 3, "the chaos loop killed several workers");

    let store = PgStore::connect(&url).await.unwrap();
    let mut rescued = 0;
    for (doc, job, pdf) in &accepted {
        assert_eq!(job_status(&base, *job).await, "complete", "job {job}");
        let live = store.live_chunks(*doc).await.unwrap();
        let ords: Vec<u32> = live.iter().map(|c| c.ord).collect();
        let expected: Vec<u32> = (0..live.len() as u32).collect();
        assert_eq!(ords, expected, "document {doc}: chunks are exactly 0..n");
        let live_texts: Vec<String> = live.iter().map(|c| c.text.clone()).collect();
        assert_eq!(
            live_texts,
            calm_chunk_texts(pdf),
            "document {doc}: the same chunks as a calm run"
        );

        let events = store.job_events(*job, 0).await.unwrap();
        assert!(!events.is_empty(), "job {job} has events");
        assert_eq!(events[0].from, None, "job {job} starts from nothing");
        for pair in events.windows(2) {
            assert_eq!(
                pair[1].from,
                Some(pair[0].to),
                "job {job}: each event leaves the state the previous one entered: {events:#?}"
            );
        }
        assert_eq!(events.last().unwrap().to, JobStatus::Complete, "job {job}");
        if events
            .iter()
            .any(|e| e.detail.as_deref().is_some_and(|d| d.contains("lease")))
        {
            rescued += 1;
        }
    }
    eprintln!("{rescued} of 40 jobs were rescued after a lease expired");
    assert!(
        rescued >= 1,
        "at least one killed worker's job was rescued after its lease expired"
    );
}

/// The local model directory when present (used only if the hash embedder is too fast to kill).
fn local_model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("NAVIGATOR_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            cache.join("navigator/models/all-MiniLM-L6-v2")
        });
    dir.join("model.safetensors").exists().then_some(dir)
}

/// Uploads a long document with one worker, SIGKILLs the worker while the job runs and starts a
/// new one; returns the time from the kill to the job's next `running` event, or `None` when the
/// job finished before it could be killed.
async fn death_to_rerun(url: &str, embedder_yaml: &str) -> Option<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), url, embedder_yaml);
    let (_api, base) = api(&config);
    let mut victim = worker(&config);
    let pdf = docs::pdf(&docs::insurance_policy_pages(150, 7));
    let (_, job) = upload(&base, "long-policy.pdf", pdf).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match job_status(&base, job).await.as_str() {
            "running" => break,
            s if is_terminal(s) => return None,
            _ => {}
        }
        assert!(Instant::now() < deadline, "the job never started running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give it a moment inside the stage so it is truly mid-flight, then kill without warning.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let store = PgStore::connect(url).await.unwrap();
    let before = store.job_events(job, 0).await.unwrap();
    let last_seq = before.last().map_or(0, |e| e.seq);
    let kill_at = time::OffsetDateTime::now_utc();
    kill_9(&mut victim);
    let killed_mid_flight = store
        .job_events(job, last_seq)
        .await
        .unwrap()
        .iter()
        .all(|e| !matches!(e.to, JobStatus::Complete | JobStatus::Failed));
    if !killed_mid_flight || before.last().map(|e| e.to) != Some(JobStatus::Running) {
        return None;
    }
    let _replacement = worker(&config);

    let deadline = Instant::now() + Duration::from_secs(30);
    let rerun_at = loop {
        let after = store.job_events(job, last_seq).await.unwrap();
        // A stage change may land between reading the events and the kill; the rerun is the
        // first `running` after the lease rescue.
        let rescue = after.iter().position(|e| {
            e.to == JobStatus::Retrying && e.detail.as_deref().is_some_and(|d| d.contains("lease"))
        });
        if let Some(e) = rescue.and_then(|i| after[i..].iter().find(|e| e.to == JobStatus::Running))
        {
            break e.at;
        }
        assert!(
            Instant::now() < deadline,
            "the killed job never ran again: {after:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = rerun_at - kill_at;
    let final_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = job_status(&base, job).await;
        if is_terminal(&s) {
            assert_eq!(s, "complete");
            break;
        }
        assert!(
            Instant::now() < final_deadline,
            "the rerun job did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(Duration::try_from(elapsed).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_workers_job_runs_again_within_lease_plus_rescue_interval() {
    let Some(url) = postgres_database().await else {
        return;
    };
    let measured = match death_to_rerun(&url, "embedder:\n  kind: hash\n").await {
        Some(d) => d,
        None => {
            let Some(model) = local_model_dir() else {
                eprintln!(
                    "skipping: the hash-embedder job finished before it could be killed and no local model is available"
                );
                return;
            };
            let url = postgres_database().await.unwrap();
            let local = format!(
                "embedder:\n  kind: local\n  local:\n    model_dir: {}\n",
                model.display()
            );
            death_to_rerun(&url, &local)
                .await
                .expect("a job on the local model runs long enough to be killed")
        }
    };
    let bound = Duration::from_secs(LEASE_SECS + RESCUE_SECS + 2);
    eprintln!(
        "death-to-rerun: {:.2} s (bound {} s = lease {LEASE_SECS} s + rescue {RESCUE_SECS} s + 2 s slack)",
        measured.as_secs_f64(),
        bound.as_secs()
    );
    assert!(
        measured <= bound,
        "a dead worker's job ran again after {measured:?}, more than {bound:?}"
    );
}
