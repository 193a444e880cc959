//! Issue 5: encryption at rest and the tamper-evident audit log, on SQLite and (where the test
//! services run) PostgreSQL.

mod support;

use navigator_crypto::audit::BreakKind;
use navigator_pipeline::vault::{BlobKind, VaultError};
use navigator_server::audit::{ChainBroken, verify_chain};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use support::{TestApp, spawn_app_with};

/// A marker that occurs in no file of the repository except these tests.
const MARKER: &str = "zebracanary7781quux";

fn marked_document(n: usize) -> Vec<u8> {
    format!("# Claim {n}\n\nMember record {MARKER}{n}: physiotherapy claim filed within 30 days.\n")
        .into_bytes()
}

async fn upload_text(app: &TestApp, body: Vec<u8>) -> serde_json::Value {
    let response = app
        .http
        .post(app.url("/v1/documents"))
        .header("content-type", "text/markdown")
        .header("x-filename", "claim.md")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn document_id(value: &serde_json::Value) -> navigator_domain::DocumentId {
    navigator_domain::DocumentId::parse(value["document_id"].as_str().unwrap()).unwrap()
}

/// No stored blob holds plaintext: every file in the blob store is sealed, and the document's
/// marker appears in none of them — while the API still serves and searches it.
#[tokio::test]
async fn no_stored_blob_contains_the_plaintext_of_a_document() {
    let app = spawn_app_with(|yaml| yaml).await;
    let accepted = upload_text(&app, marked_document(1)).await;
    let job = app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "complete", "{job}");
    let (_, hits) = app
        .search(json!({"query": format!("{MARKER}1"), "mode": "keyword"}))
        .await;
    assert_eq!(hits["results"][0]["document_id"], accepted["document_id"]);

    let blobs = files_under(&app.data_dir.path().join("blobs"));
    let id = accepted["document_id"].as_str().unwrap();
    let mine: Vec<_> = blobs
        .iter()
        .filter(|p| p.to_string_lossy().contains(id))
        .collect();
    assert_eq!(mine.len(), 2, "the original and the parsed text: {blobs:?}");
    for path in &blobs {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
            "plaintext in {}",
            path.display()
        );
        if mine.contains(&path) {
            assert!(
                navigator_crypto::envelope::is_sealed(&bytes),
                "{}",
                path.display()
            );
        }
    }
    app.stop().await;
}

/// A blob moved onto another document (or from original to parsed) fails to open; deleting a
/// document destroys its data key, so a copy of its blob kept anywhere is unreadable.
#[tokio::test]
async fn swapped_blobs_fail_and_deleting_a_document_shreds_its_key() {
    let app = spawn_app_with(|yaml| yaml).await;
    let a = upload_text(&app, marked_document(2)).await;
    let b = upload_text(&app, marked_document(3)).await;
    for accepted in [&a, &b] {
        let job = app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "complete", "{job}");
    }
    let (a, b) = (document_id(&a), document_id(&b));
    let blobs = &app.state.blobs;
    let raw = blobs.raw();
    let original_a = raw
        .get(&navigator_pipeline::blob::BlobKeys::original(a))
        .await
        .unwrap();
    // Put A's sealed original in place of B's original, and of A's own parsed text.
    raw.put(
        &navigator_pipeline::blob::BlobKeys::original(b),
        original_a.clone(),
    )
    .await
    .unwrap();
    assert!(matches!(
        blobs.get(b, BlobKind::Original).await,
        Err(VaultError::Integrity)
    ));
    raw.put(
        &navigator_pipeline::blob::BlobKeys::parsed(a),
        original_a.clone(),
    )
    .await
    .unwrap();
    assert!(matches!(
        blobs.get(a, BlobKind::Parsed).await,
        Err(VaultError::Integrity)
    ));
    assert!(blobs.get(a, BlobKind::Original).await.is_ok());

    // Delete A: its data key goes with its rows.
    let response = app
        .http
        .delete(app.url(&format!("/v1/documents/{a}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(app.state.store.get_data_key(a).await.unwrap().is_none());
    // A copy of its ciphertext restored from "a backup" cannot be opened any more.
    raw.put(&navigator_pipeline::blob::BlobKeys::original(a), original_a)
        .await
        .unwrap();
    let fresh = navigator_pipeline::vault::DocumentBlobs::new(
        raw.clone(),
        Arc::new(navigator_pipeline::vault::DocumentKeys::new(
            app.state.store.clone(),
            Arc::new(
                navigator_crypto::keyring::LocalKeyring::load(
                    app.data_dir.path().join("keyring.json"),
                )
                .unwrap(),
            ),
            app.state.clock.clone(),
            std::time::Duration::from_secs(60),
        )),
    );
    assert!(matches!(
        fresh.get(a, BlobKind::Original).await,
        Err(VaultError::KeyDestroyed)
    ));
    app.stop().await;
}

/// Rotation: after `keys rotate` + `keys rewrap` every data key is wrapped by the new KEK and
/// every document still opens; the old KEK can then be dropped.
#[tokio::test]
async fn rewrap_moves_every_data_key_to_the_new_key_while_documents_stay_readable() {
    use navigator_crypto::keyring::LocalKeyring;
    use navigator_pipeline::vault::{DocumentBlobs, DocumentKeys};
    let app = spawn_app_with(|yaml| yaml).await;
    let mut ids = Vec::new();
    for n in 10..14 {
        let accepted = upload_text(&app, marked_document(n)).await;
        app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
        ids.push(document_id(&accepted));
    }
    let path = app.data_dir.path().join("keyring.json");
    let old = LocalKeyring::load(&path).unwrap();
    let new_id = LocalKeyring::rotate_file(&path).unwrap();
    let rotated = Arc::new(LocalKeyring::load(&path).unwrap());
    let keys = Arc::new(DocumentKeys::new(
        app.state.store.clone(),
        rotated.clone(),
        app.state.clock.clone(),
        std::time::Duration::from_secs(60),
    ));
    let report = keys.rewrap(2).await.unwrap();
    assert_eq!(report.rewrapped, 4, "{report:?}");
    let counts = app.state.store.count_data_keys_by_kek().await.unwrap();
    assert_eq!(
        counts,
        vec![(new_id.clone(), 4)],
        "old ids: {:?}",
        old.key_ids()
    );
    let blobs = DocumentBlobs::new(app.state.blobs.raw().clone(), keys);
    for id in &ids {
        let text = blobs.get(*id, BlobKind::Parsed).await.unwrap();
        assert!(String::from_utf8_lossy(&text).contains(MARKER));
    }
    // The old KEK can now be retired: a keyring holding only the new one opens every document.
    // (A keyring always needs its active key's bytes.)
    assert!(LocalKeyring::new(vec![], &new_id).is_err());
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let keys = file["keys"].as_object_mut().unwrap();
    keys.retain(|id, _| *id == new_id);
    assert_eq!(keys.len(), 1);
    let retired_dir = tempfile::tempdir().unwrap();
    let retired = retired_dir.path().join("keyring.json");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&retired)
            .unwrap()
            .write_all(file.to_string().as_bytes())
            .unwrap();
    }
    let only_new = Arc::new(LocalKeyring::load(&retired).unwrap());
    assert_eq!(only_new.key_ids(), vec![new_id.clone()]);
    let blobs = DocumentBlobs::new(
        app.state.blobs.raw().clone(),
        Arc::new(DocumentKeys::new(
            app.state.store.clone(),
            only_new,
            app.state.clock.clone(),
            std::time::Duration::from_secs(60),
        )),
    );
    for id in &ids {
        let text = blobs.get(*id, BlobKind::Original).await.unwrap();
        assert!(String::from_utf8_lossy(&text).contains(MARKER));
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The audit log

/// An app on SQLite, or on a fresh PostgreSQL database.
async fn app_on(postgres: bool) -> Option<TestApp> {
    if !postgres {
        return Some(spawn_app_with(|yaml| yaml).await);
    }
    let admin = navigator_store::conformance::postgres_admin_url()?;
    let url = navigator_store::conformance::fresh_postgres_database(&admin).await;
    Some(
        spawn_app_with(move |yaml| {
            yaml.replace("embedder:", &format!("database:\n  url: {url}\nembedder:"))
        })
        .await,
    )
}

fn audit_key(app: &TestApp) -> navigator_crypto::audit::AuditKey {
    navigator_crypto::keyring::LocalKeyring::load(app.data_dir.path().join("keyring.json"))
        .unwrap()
        .audit_key()
        .cloned()
        .unwrap()
}

fn anchor_path(app: &TestApp) -> std::path::PathBuf {
    app.data_dir.path().join("audit-anchor.json")
}

/// Moves the anchor to the current head now (the app also does so every few seconds).
async fn anchor_now(app: &TestApp) -> (i64, [u8; 32]) {
    navigator_server::audit::write_anchor(
        app.state.store.as_ref(),
        &audit_key(app),
        &anchor_path(app),
    )
    .await
    .unwrap()
    .or_else(|| {
        let text = std::fs::read_to_string(anchor_path(app)).ok()?;
        navigator_crypto::audit::verify_anchor(&audit_key(app), text.trim()).ok()
    })
    .expect("the log has entries")
}

async fn verify(app: &TestApp) -> Result<navigator_crypto::audit::Summary, ChainBroken> {
    verify_chain(
        app.state.store.as_ref(),
        audit_key(app),
        Some(&anchor_path(app)),
    )
    .await
    .unwrap()
}

/// Builds a log of a few dozen entries through the API, then tampers with it in each way an
/// attacker with database access could, one kind per fresh app, and checks that verification
/// names the first broken link.
async fn tampering_is_detected(postgres: bool) {
    // (what, SQL run with the append-only triggers disabled, acceptable first bad seqs). SQLite
    // checks the primary key row by row, so moves go through a spare range.
    let zero = if postgres {
        "decode(repeat('00', 32), 'hex')"
    } else {
        "zeroblob(32)"
    };
    let edit_entry = if postgres {
        "convert_to(replace(convert_from(entry, 'UTF8'), 'success', 'failure'), 'UTF8')"
    } else {
        "CAST(replace(CAST(entry AS TEXT), 'success', 'failure') AS BLOB)"
    };
    let kinds: Vec<(&str, String, Vec<i64>)> = vec![
        (
            "modification",
            format!("UPDATE audit_log SET entry = {edit_entry} WHERE seq = 5"),
            vec![5],
        ),
        (
            "deletion",
            "DELETE FROM audit_log WHERE seq = 4".to_owned(),
            vec![4, 5],
        ),
        (
            "insertion",
            format!(
                "UPDATE audit_log SET seq = seq + 100000 WHERE seq >= 6; \
                 UPDATE audit_log SET seq = seq - 99999 WHERE seq >= 100006; \
                 INSERT INTO audit_log (seq, at, actor, action, resource_type, resource_id, outcome, request_id, source_ip, entry, prev_hash, hash) \
                 SELECT 6, at, actor, action, resource_type, resource_id, outcome, request_id, source_ip, entry, {zero}, {zero} FROM audit_log WHERE seq = 5"
            ),
            vec![6],
        ),
        (
            "reordering",
            "UPDATE audit_log SET seq = 100000 WHERE seq = 3; \
             UPDATE audit_log SET seq = 3 WHERE seq = 7; \
             UPDATE audit_log SET seq = 7 WHERE seq = 100000"
                .to_owned(),
            vec![3],
        ),
        (
            "column edit",
            "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 6".to_owned(),
            vec![6],
        ),
    ];
    for (what, sql, first_bad) in kinds {
        let Some(app) = app_on(postgres).await else {
            return;
        };
        for n in 0..3 {
            let accepted = upload_text(&app, marked_document(100 + n)).await;
            app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
            let (status, _) = app
                .get_json(&format!(
                    "/v1/documents/{}",
                    accepted["document_id"].as_str().unwrap()
                ))
                .await;
            assert_eq!(status, 200);
            app.search(json!({"query": "physiotherapy"})).await;
        }
        anchor_now(&app).await;
        let intact = verify(&app).await.expect("an untampered log verifies");
        assert!(intact.entries >= 9, "{intact:?}");
        app.state.store.tamper_audit_for_tests(&sql).await.unwrap();
        let broken = verify(&app).await;
        let seq = match &broken {
            Err(ChainBroken::Link(b)) => b.seq,
            Err(ChainBroken::Columns { seq }) => *seq,
            other => panic!("{what}: not detected: {other:?}"),
        };
        assert!(
            first_bad.contains(&seq),
            "{what}: first bad seq {seq}, expected one of {first_bad:?}: {broken:?}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn every_kind_of_audit_tampering_is_detected_on_sqlite() {
    tampering_is_detected(false).await;
}

#[tokio::test]
async fn every_kind_of_audit_tampering_is_detected_on_postgres() {
    tampering_is_detected(true).await;
}

/// Cutting off the tail of the log leaves a valid-looking shorter chain; the anchor kept outside
/// the database catches it.
#[tokio::test]
async fn a_truncated_tail_is_caught_by_the_anchor() {
    let app = spawn_app_with(|yaml| yaml).await;
    for n in 0..3 {
        upload_text(&app, marked_document(200 + n)).await;
    }
    let anchor = anchor_path(&app);
    let head = anchor_now(&app).await;
    assert!(verify(&app).await.is_ok());
    let sql = format!("DELETE FROM audit_log WHERE seq >= {}", head.0 - 1);
    app.state.store.tamper_audit_for_tests(&sql).await.unwrap();
    match verify(&app).await {
        Err(ChainBroken::Link(b)) => assert_eq!(b.kind, BreakKind::TailMissing, "{b:?}"),
        other => panic!("truncation not detected: {other:?}"),
    }
    // New entries re-growing the log past the anchored seq do not hide it: the anchor never
    // moves onto a different chain, and verification still fails.
    for n in 0..4 {
        upload_text(&app, marked_document(210 + n)).await;
    }
    let moved =
        navigator_server::audit::write_anchor(app.state.store.as_ref(), &audit_key(&app), &anchor)
            .await;
    assert!(
        moved.is_err(),
        "the anchor refuses to move onto another chain"
    );
    assert!(verify(&app).await.is_err());
    // Deleting the anchor is no way out either.
    std::fs::remove_file(&anchor).unwrap();
    assert!(matches!(
        verify(&app).await,
        Err(ChainBroken::AnchorMissing)
    ));
    // A forged anchor is refused outright.
    std::fs::write(&anchor, "{\"seq\":1,\"hash\":\"00\",\"mac\":\"00\"}").unwrap();
    assert!(matches!(verify(&app).await, Err(ChainBroken::Anchor)));
    app.stop().await;
}

/// The database itself refuses to alter the log.
#[tokio::test]
async fn the_audit_table_refuses_updates_and_deletes() {
    let app = spawn_app_with(|yaml| yaml).await;
    upload_text(&app, marked_document(300)).await;
    for sql in ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"] {
        assert!(
            app.state.store.execute_raw_for_tests(sql).await.is_err(),
            "{sql} must be refused"
        );
    }
    app.stop().await;
}

/// Auditors read the log (filtered, and as JSON lines); the log holds ids, never content, and
/// reading it is itself recorded.
#[tokio::test]
async fn auditors_read_a_log_that_holds_ids_and_never_content() {
    let app = spawn_app_with(|yaml| yaml).await;
    let accepted = upload_text(&app, marked_document(400)).await;
    app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    app.search(json!({"query": format!("{MARKER}400")})).await;
    let id = accepted["document_id"].as_str().unwrap();
    let (status, page) = app.get_json(&format!("/v1/audit?resource_id={id}")).await;
    assert_eq!(status, 200, "{page}");
    let actions: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["entry"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["document.upload"], "{page}");
    let export = app
        .http
        .get(app.url("/v1/audit?format=jsonl&action=search"))
        .send()
        .await
        .unwrap();
    assert_eq!(export.headers()["content-type"], "application/x-ndjson");
    let text = export.text().await.unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0]["entry"]["details"]["documents"][0] == id, "{text}");
    // Nothing in the whole chain carries the marker (the search query was never recorded).
    let chain = app.state.store.audit_chain(0, 10_000).await.unwrap();
    for record in &chain {
        assert!(
            !String::from_utf8_lossy(&record.entry).contains(MARKER),
            "{}",
            String::from_utf8_lossy(&record.entry)
        );
    }
    assert!(chain.iter().any(|r| r.action == "audit.read"));
    app.stop().await;
}

/// Concurrent writers through the real auditor never fork the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_never_fork_the_chain() {
    let app = spawn_app_with(|yaml| yaml).await;
    let accepted = upload_text(&app, marked_document(500)).await;
    app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    let path = format!(
        "/v1/documents/{}",
        accepted["document_id"].as_str().unwrap()
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let http = app.http.clone();
        let url = app.url(&path);
        tasks.spawn(async move {
            for _ in 0..25 {
                let status = http.get(&url).send().await.unwrap().status();
                assert_eq!(status, 200);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    anchor_now(&app).await;
    let summary = verify(&app).await.expect("no fork");
    assert!(summary.entries >= 201, "{summary:?}");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The log canary

/// A document whose text, filename and search query carry a unique marker is uploaded, read,
/// searched and deleted through the real binary logging at `trace`; the marker appears in no
/// log line, and not in `/metrics` either.
#[tokio::test]
async fn the_log_canary_never_appears_in_any_log_line() {
    use support::process::Server;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("navigator.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {}\nserver:\n  listen: 127.0.0.1:0\nembedder:\n  kind: hash\nlog:\n  level: trace\n  format: json\nworkers:\n  poll_interval_ms: 50\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut server = Server::start(&config, &[]);
    let http = reqwest::Client::new();
    let canary = format!("{MARKER}-canary");
    let accepted: serde_json::Value = http
        .post(server.url("/v1/documents"))
        .header("content-type", "text/markdown")
        .header("x-filename", format!("{canary}.md"))
        .body(format!(
            "# {canary}\n\nThe member {canary} claimed physiotherapy.\n"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = accepted["document_id"].as_str().unwrap().to_owned();
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status: serde_json::Value = http
            .get(server.url(&format!("/v1/jobs/{job}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] == "complete" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let doc = http
        .get(server.url(&format!("/v1/documents/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        doc.contains(&canary),
        "the API serves the filename to its owner"
    );
    let hits = http
        .post(server.url("/v1/search"))
        .json(&json!({"query": canary}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(hits.contains(&canary), "the search finds it: {hits}");
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains(MARKER), "no canary in /metrics");
    let deleted = http
        .delete(server.url(&format!("/v1/documents/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    server.signal("-TERM");
    assert!(
        server
            .wait_exit(std::time::Duration::from_secs(30))
            .success()
    );
    let logs = server.logs();
    assert!(
        logs.len() > 10,
        "trace logging produced lines: {}",
        logs.len()
    );
    for line in &logs {
        assert!(!line.contains(MARKER), "canary in a log line: {line}");
    }
}

/// `navigator audit verify` exits 0 on an intact log and 2, naming the first broken link, on a
/// tampered one.
#[tokio::test]
async fn audit_verify_exits_non_zero_and_names_the_first_broken_link() {
    let app = spawn_app_with(|yaml| yaml).await;
    for n in 0..3 {
        let accepted = upload_text(&app, marked_document(600 + n)).await;
        app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    }
    anchor_now(&app).await;
    let config = app.data_dir.path().join("navigator.yaml");
    // The command runs beside the live app: await it (never block the runtime the app's
    // workers run on, or a worker holding SQLite's write lock would stall until it returns).
    let run = || {
        let config = config.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_navigator"))
                .args(["audit", "verify", "--config"])
                .arg(&config)
                .output()
                .await
                .unwrap()
        }
    };
    let ok = run().await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("audit log intact"));
    app.state
        .store
        .tamper_audit_for_tests("DELETE FROM audit_log WHERE seq = 2")
        .await
        .unwrap();
    let broken = run().await;
    assert_eq!(broken.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(stderr.contains("first broken link at seq"), "{stderr}");
    app.stop().await;
}

/// The production shape (PostgreSQL + S3) stores ciphertext only as well.
#[tokio::test]
async fn no_stored_blob_contains_plaintext_on_postgres_and_s3() {
    let Some(admin) = navigator_store::conformance::postgres_admin_url() else {
        return;
    };
    let (Ok(endpoint), Ok(bucket)) = (
        std::env::var("NAVIGATOR_TEST_S3_ENDPOINT"),
        std::env::var("NAVIGATOR_TEST_S3_BUCKET"),
    ) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "run scripts/services.sh start"
        );
        return;
    };
    let url = navigator_store::conformance::fresh_postgres_database(&admin).await;
    let prefix = uuid::Uuid::now_v7().simple().to_string();
    let app = spawn_app_with(|yaml| {
        format!(
            "{yaml}database:\n  url: {url}\nblobs:\n  url: s3://{bucket}/{prefix}\n  s3:\n    endpoint: {endpoint}\n    region: us-east-1\n    access_key_id: test\n    secret_access_key: test\n    allow_http: true\n"
        )
    })
    .await;
    let accepted = upload_text(&app, marked_document(700)).await;
    let job = app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "complete", "{job}");
    let id = document_id(&accepted);
    for key in [
        navigator_pipeline::blob::BlobKeys::original(id),
        navigator_pipeline::blob::BlobKeys::parsed(id),
    ] {
        let stored = app.state.blobs.raw().get(&key).await.unwrap();
        assert!(navigator_crypto::envelope::is_sealed(&stored), "{key}");
        assert!(
            !stored.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
            "plaintext in {key}"
        );
    }
    let text = app.state.blobs.get(id, BlobKind::Parsed).await.unwrap();
    assert!(String::from_utf8_lossy(&text).contains(MARKER));
    assert!(app.state.store.get_data_key(id).await.unwrap().is_some());
    app.stop().await;
}

/// Uploads and searches are limited per principal: over the limit, 429 with Retry-After.
#[tokio::test]
async fn uploads_and_searches_over_the_limit_get_429_with_retry_after() {
    let app = spawn_app_with(|yaml| {
        yaml.replace(
            "  shutdown_grace_secs: 5\n",
            "  shutdown_grace_secs: 5\n  rate_limits:\n    uploads_per_minute: 2\n    searches_per_minute: 3\n",
        )
    })
    .await;
    for n in 0..2 {
        upload_text(&app, marked_document(800 + n)).await;
    }
    let over = app
        .http
        .post(app.url("/v1/documents"))
        .header("content-type", "text/markdown")
        .header("x-filename", "claim.md")
        .body(marked_document(802))
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 429);
    let wait: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    let problem: serde_json::Value = over.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");
    for _ in 0..3 {
        let (status, _) = app.search(json!({"query": "claim"})).await;
        assert_eq!(status, 200);
    }
    let (status, problem) = app.search(json!({"query": "claim"})).await;
    assert_eq!(status, 429, "{problem}");
    // The server keeps serving everything else.
    let (status, _) = app.get_json("/v1/documents").await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// Losing the keyring must not silently mint new keys over sealed data and an audit chain.
#[tokio::test]
async fn a_lost_keyring_stops_start_up_instead_of_minting_new_keys() {
    let app = spawn_app_with(|yaml| yaml).await;
    let accepted = upload_text(&app, marked_document(900)).await;
    app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    let dir = app.data_dir.path().to_owned();
    let config_path = dir.join("navigator.yaml");
    let keyring = dir.join("keyring.json");
    let saved = std::fs::read(&keyring).unwrap();
    let TestApp {
        running, data_dir, ..
    } = app;
    running.unwrap().stop().await.unwrap();
    std::fs::remove_file(&keyring).unwrap();
    let config =
        navigator_server::config::load(Some(&config_path), &support::env_for_tests()).unwrap();
    let error = match navigator_server::app::App::build(config, support::sandbox_options()).await {
        Ok(_) => panic!("start-up must refuse"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains("keyring") && error.contains("missing"),
        "{error}"
    );
    assert!(!keyring.exists(), "no new keyring was written");
    // Restoring the file restores everything.
    std::fs::write(&keyring, saved).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config =
        navigator_server::config::load(Some(&config_path), &support::env_for_tests()).unwrap();
    let rebuilt = navigator_server::app::App::build(config, support::sandbox_options())
        .await
        .unwrap();
    let text = rebuilt
        .state
        .blobs
        .get(document_id(&accepted), BlobKind::Parsed)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&text).contains(MARKER));
    drop(data_dir);
}

/// A deployment upgraded in place has plaintext blobs and no data keys; `navigator keys
/// seal-existing` seals them (and only them), after which they read back as before.
#[tokio::test]
async fn seal_existing_seals_blobs_written_before_encryption() {
    let app = spawn_app_with(|yaml| yaml).await;
    let accepted = upload_text(&app, marked_document(950)).await;
    app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    let id = document_id(&accepted);
    let original = app.state.blobs.get(id, BlobKind::Original).await.unwrap();
    let parsed = app.state.blobs.get(id, BlobKind::Parsed).await.unwrap();
    // Make it look like a document stored before blobs were sealed.
    let raw = app.state.blobs.raw();
    raw.put(
        &navigator_pipeline::blob::BlobKeys::original(id),
        original.clone(),
    )
    .await
    .unwrap();
    raw.put(
        &navigator_pipeline::blob::BlobKeys::parsed(id),
        parsed.clone(),
    )
    .await
    .unwrap();
    app.state
        .store
        .execute_raw_for_tests(&format!("DELETE FROM data_keys WHERE document_id = '{id}'"))
        .await
        .unwrap();
    let config = app.data_dir.path().join("navigator.yaml");
    // The command runs beside the live app: await it (never block the runtime the app's
    // workers run on, or a worker holding SQLite's write lock would stall until it returns).
    let run = || {
        let config = config.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_navigator"))
                .args(["keys", "seal-existing", "--config"])
                .arg(&config)
                .output()
                .await
                .unwrap()
        }
    };
    let first = run().await;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("sealed 2 plaintext blobs"),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    let stored = raw
        .get(&navigator_pipeline::blob::BlobKeys::original(id))
        .await
        .unwrap();
    assert!(navigator_crypto::envelope::is_sealed(&stored));
    // The app's cached key is stale for this document (its key was re-created by the command);
    // a fresh reader opens both blobs.
    let fresh = navigator_pipeline::vault::DocumentBlobs::new(
        raw.clone(),
        Arc::new(navigator_pipeline::vault::DocumentKeys::new(
            app.state.store.clone(),
            Arc::new(
                navigator_crypto::keyring::LocalKeyring::load(
                    app.data_dir.path().join("keyring.json"),
                )
                .unwrap(),
            ),
            app.state.clock.clone(),
            std::time::Duration::from_secs(60),
        )),
    );
    assert_eq!(fresh.get(id, BlobKind::Original).await.unwrap(), original);
    assert_eq!(fresh.get(id, BlobKind::Parsed).await.unwrap(), parsed);
    let again = run().await;
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("sealed 0 plaintext blobs"),
        "{}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
    app.stop().await;
}

/// The key commands the README documents: `keys rotate` makes a new KEK active, `keys rewrap`
/// moves every data key onto it, and `keys status` reports the counts.
#[tokio::test]
async fn key_commands_rotate_rewrap_and_report() {
    let app = spawn_app_with(|yaml| yaml).await;
    let accepted = upload_text(&app, marked_document(990)).await;
    app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    let config = app.data_dir.path().join("navigator.yaml");
    let navigator = |args: &'static [&'static str]| {
        let config = config.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_navigator"))
                .args(args)
                .arg("--config")
                .arg(&config)
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let rotated = navigator(&["keys", "rotate"]).await;
    let new_id = rotated
        .strip_prefix("new key-encryption key ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{rotated}"))
        .to_owned();
    let rewrapped = navigator(&["keys", "rewrap"]).await;
    assert!(rewrapped.contains("re-wrapped 1 data keys"), "{rewrapped}");
    let status = navigator(&["keys", "status"]).await;
    assert!(
        status.contains(&format!("active key-encryption key: {new_id}")),
        "{status}"
    );
    let counts: Vec<&str> = status.lines().skip(1).collect();
    assert_eq!(counts.len(), 1, "{status}");
    assert!(
        counts[0].starts_with(&new_id) && counts[0].contains(" 1 data keys"),
        "{status}"
    );
    let actions: Vec<String> = app
        .state
        .store
        .audit_chain(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert!(actions.contains(&"keys.rotate".to_owned()), "{actions:?}");
    assert!(actions.contains(&"keys.rewrap".to_owned()), "{actions:?}");
    app.stop().await;
}
