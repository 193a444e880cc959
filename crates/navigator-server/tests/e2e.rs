//! End-to-end tests that run the real `navigator` executable: the real local model, a kill -9 in
//! the middle of ingest, a SIGTERM drain, poison documents against the parser sandbox, and the CLI.

mod support;

use navigator_testkit::docs;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::fixture;
use support::process::{BIN, Server};

/// The local model directory, or `None` (skip) outside CI; under `CI=true` a missing model fails.
fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("NAVIGATOR_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            cache.join("navigator/models/all-MiniLM-L6-v2")
        });
    if dir.join("model.safetensors").exists() {
        Some(dir)
    } else if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "the local model is missing at {}: run scripts/fetch-model.sh",
            dir.display()
        );
    } else {
        eprintln!(
            "skipping: no local model at {} (run scripts/fetch-model.sh)",
            dir.display()
        );
        None
    }
}

fn write_config(dir: &Path, embedder_yaml: &str, extra: &str) -> PathBuf {
    let path = dir.join("navigator.yaml");
    let yaml = format!(
        "data_dir: {data}\n\
         server:\n  listen: 127.0.0.1:0\n  shutdown_grace_secs: 10\n\
         {embedder_yaml}\
         workers:\n  concurrency: 2\n  lease_secs: 3\n  poll_interval_ms: 100\n  rescue_interval_secs: 1\n\
         log:\n  level: info\n  format: json\n{extra}",
        data = dir.join("data").display()
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

fn local_embedder(model: &Path) -> String {
    format!(
        "embedder:\n  kind: local\n  local:\n    model_dir: {}\n",
        model.display()
    )
}

const HASH_EMBEDDER: &str = "embedder:\n  kind: hash\n";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

async fn upload(server: &Server, name: &str, bytes: Vec<u8>) -> Value {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    );
    let r = http()
        .post(server.url("/v1/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "upload {name}");
    r.json().await.unwrap()
}

async fn job(server: &Server, id: &str) -> Value {
    http()
        .get(server.url(&format!("/v1/jobs/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_terminal(server: &Server, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let j = job(server, id).await;
        if matches!(
            j["status"].as_str(),
            Some("complete" | "failed" | "cancelled")
        ) {
            return j;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn search(server: &Server, query: &str) -> Value {
    http()
        .post(server.url("/v1/search"))
        .json(&json!({"query": query}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_real_binary_with_the_local_model_answers_from_the_right_pages() {
    let Some(model) = model_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &local_embedder(&model), "");
    let server = Server::start(&config, &[]);

    let fixture_doc = upload(
        &server,
        "simulated_insurance_document.pdf",
        std::fs::read(fixture("simulated_insurance_document.pdf")).unwrap(),
    )
    .await;
    let multi = upload(
        &server,
        "multi-page.pdf",
        docs::pdf(&docs::known_passage_pages()),
    )
    .await;
    for accepted in [&fixture_doc, &multi] {
        let j = wait_terminal(
            &server,
            accepted["job_id"].as_str().unwrap(),
            Duration::from_secs(180),
        )
        .await;
        assert_eq!(j["status"], "complete", "{j}");
    }

    let answer = search(&server, "how long do I have to submit a claim").await;
    let top = &answer["results"][0];
    assert_eq!(top["document_id"], fixture_doc["document_id"], "{answer}");
    assert_eq!(top["page_start"], 1);
    assert!(top["text"].as_str().unwrap().contains("60 days"), "{top}");

    let dental = search(&server, "what share of emergency dental care is paid").await;
    let top = &dental["results"][0];
    assert_eq!(top["document_id"], multi["document_id"], "{dental}");
    assert_eq!(top["page_start"], 3, "{dental}");

    let logs = server.logs().join("\n");
    assert!(
        !logs.contains("60 days"),
        "document text must never be logged"
    );
    assert!(
        !logs.contains("simulated_insurance_document"),
        "filenames must never be logged"
    );
}

/// Kill -9 while documents are being processed, restart, and every job still finishes with exactly
/// the chunks a calm run produces.
#[tokio::test]
async fn kill_9_mid_ingest_then_restart_finishes_every_job_without_duplicates() {
    let Some(model) = model_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &local_embedder(&model), "");
    let mut server = Server::start(&config, &[]);

    let mut accepted = Vec::new();
    for seed in 0..4u64 {
        let pages = docs::insurance_policy_pages(12, seed + 10);
        accepted.push(upload(&server, &format!("policy-{seed}.pdf"), docs::pdf(&pages)).await);
    }
    // Wait until a job is mid-flight, then kill without warning.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running: Value = http()
            .get(server.url("/v1/jobs?status=running"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !running["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no job started running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.signal("-KILL");
    server.wait_exit(Duration::from_secs(10));
    drop(server);

    let server = Server::start(&config, &[]);
    for a in &accepted {
        let j = wait_terminal(
            &server,
            a["job_id"].as_str().unwrap(),
            Duration::from_secs(300),
        )
        .await;
        assert_eq!(j["status"], "complete", "{j}");
    }
    let store = navigator_store::sqlite::SqliteStore::connect(&format!(
        "sqlite://{}",
        dir.path().join("data/navigator.db").display()
    ))
    .await
    .unwrap();
    use navigator_store::Store;
    let mut rescued = 0;
    for (seed, a) in accepted.iter().enumerate() {
        let doc_id =
            navigator_domain::DocumentId::parse(a["document_id"].as_str().unwrap()).unwrap();
        let live = store.live_chunks(doc_id).await.unwrap();
        let ords: Vec<u32> = live.iter().map(|c| c.ord).collect();
        let expected: Vec<u32> = (0..live.len() as u32).collect();
        assert_eq!(
            ords, expected,
            "chunks are exactly 0..n, none duplicated or missing"
        );
        // A calm run of the same document yields the same chunks.
        let pages = docs::insurance_policy_pages(12, seed as u64 + 10);
        let parsed =
            navigator_parse::parse(navigator_domain::MediaType::Pdf, &docs::pdf(&pages)).unwrap();
        let counter = navigator_embed::WordPieceCounter::from_model_dir(&model).unwrap();
        let calm = navigator_pipeline::chunk::chunk_document(
            &parsed,
            &counter,
            &navigator_pipeline::chunk::ChunkerConfig::default(),
        );
        assert_eq!(calm.len(), live.len());
        for (c, l) in calm.iter().zip(&live) {
            assert_eq!(c.text, l.text);
        }
        let job_id = navigator_domain::JobId::parse(a["job_id"].as_str().unwrap()).unwrap();
        let events = store.job_events(job_id, 0).await.unwrap();
        if events
            .iter()
            .any(|e| e.detail.as_deref().is_some_and(|d| d.contains("lease")))
        {
            rescued += 1;
        }
    }
    assert!(
        rescued >= 1,
        "at least the interrupted job was rescued after its lease expired"
    );
    let list: Value = http()
        .get(server.url("/v1/documents"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero_and_the_work_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), HASH_EMBEDDER, "");
    let mut server = Server::start(&config, &[]);
    let a = upload(
        &server,
        "policy.pdf",
        docs::pdf(&docs::insurance_policy_pages(30, 3)),
    )
    .await;
    server.signal("-TERM");
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "navigator exits 0 on SIGTERM, got {status:?}"
    );
    drop(server);
    let server = Server::start(&config, &[]);
    let j = wait_terminal(
        &server,
        a["job_id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(j["status"], "complete", "{j}");
}

fn navigator(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("navigator runs")
}

#[test]
fn the_cli_ingests_then_searches_and_reports_pages() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), HASH_EMBEDDER, "");
    let multi = dir.path().join("multi-page.pdf");
    std::fs::write(&multi, docs::pdf(&docs::known_passage_pages())).unwrap();
    let broken = fixture("not-really-a.pdf");

    let out = navigator(
        &config,
        &["ingest", multi.to_str().unwrap(), broken.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "one of two failed: {stdout}\n{stderr}"
    );
    assert!(stdout.contains("1 of 1 documents searchable"), "{stdout}");
    assert!(stderr.contains("media_type_mismatch"), "{stderr}");

    let out = navigator(
        &config,
        &["search", "emergency dental care reimbursed", "--limit", "3"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("1. multi-page.pdf — p. 3 ")
            || first.starts_with("1. multi-page.pdf — pp. 3–"),
        "the top passage cites page 3: {stdout}"
    );

    let out = navigator(&config, &["jobs", "list"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("complete"));

    let out = navigator(&config, &["migrate", "status"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied"));
}

#[test]
fn config_commands_check_show_redacted_and_print_a_valid_example() {
    let dir = tempfile::tempdir().unwrap();
    let example = Command::new(BIN)
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(example.status.success());
    let path = dir.path().join("example.yaml");
    std::fs::write(&path, &example.stdout).unwrap();
    let check = navigator(&path, &["config", "check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let secret = dir.path().join("secret.yaml");
    std::fs::write(
        &secret,
        "auth:\n  mode: jwt\n  jwt:\n    hs256_secret: ${NAV_TEST_SECRET}\n    issuer: https://issuer.test\n    audience: navigator\n",
    )
    .unwrap();
    let show = Command::new(BIN)
        .args(["--config", secret.to_str().unwrap(), "config", "show"])
        .env("NAV_TEST_SECRET", "do-not-print-me-0123456789abcdef")
        .output()
        .unwrap();
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(!text.contains("do-not-print-me"), "{text}");
    assert!(text.contains("[redacted]"));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "workers:\n  concurrency: 0\nserver:\n  listen: nowhere\n",
    )
    .unwrap();
    let check = navigator(&bad, &["config", "check"]);
    assert_eq!(check.status.code(), Some(2));
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        err.contains("workers.concurrency") && err.contains("server.listen"),
        "{err}"
    );
}

#[test]
fn serve_with_jwt_auth_refuses_anonymous_requests_and_never_prints_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        HASH_EMBEDDER,
        "auth:\n  mode: jwt\n  jwt:\n    hs256_secret: 0123456789abcdef0123456789abcdef\n    issuer: https://issuer.test\n    audience: navigator\n",
    );
    let mut server = Server::start(&config, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let protected = http.get(server.url("/v1/documents")).send().await.unwrap();
        assert_eq!(protected.status(), 401);
        assert_eq!(protected.headers()["www-authenticate"], "Bearer");
        let health = http.get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    });
    server.signal("-TERM");
    assert!(server.wait_exit(Duration::from_secs(30)).success());
    let logs = server.logs().join("\n");
    assert!(
        !logs.contains("0123456789abcdef"),
        "secrets never printed: {logs}"
    );
}
