//! HTTP API tests: the real server in-process on port 0, a fresh database per test, the
//! deterministic test embedder, and the real parser sandbox.

mod support;

use navigator_testkit::docs;
use serde_json::{Value, json};
use support::{TestApp, fixture, spawn_app, spawn_app_with, spawn_app_with_poison_hooks};

async fn upload_and_wait(app: &TestApp, name: &str, bytes: Vec<u8>) -> (Value, Value) {
    let accepted = app.upload_ok(name, bytes).await;
    let job = app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    (accepted, job)
}

#[tokio::test]
async fn an_uploaded_pdf_becomes_searchable_with_the_right_page() {
    let app = spawn_app().await;
    let (accepted, job) =
        upload_and_wait(&app, "eoc.pdf", docs::pdf(&docs::known_passage_pages())).await;
    assert_eq!(job["status"], "complete", "{job}");
    assert_eq!(job["progress"]["pages"], 5);
    assert!(job["progress"]["chunks_total"].as_u64().unwrap() >= 5);
    assert_eq!(
        job["progress"]["chunks_total"],
        job["progress"]["chunks_embedded"]
    );

    let (status, doc) = app
        .get_json(&format!(
            "/v1/documents/{}",
            accepted["document_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(doc["status"], "ready");
    assert_eq!(doc["pages"], 5);
    assert_eq!(doc["media_type"], "application/pdf");
    assert_eq!(doc["filename"], "eoc.pdf");

    for mode in ["hybrid", "keyword", "vector"] {
        let (status, body) = app
            .search(json!({"query": "emergency dental care reimbursed", "mode": mode}))
            .await;
        assert_eq!(status, 200, "{body}");
        let top = &body["results"][0];
        assert_eq!(top["page_start"], 3, "mode {mode}: {body}");
        assert!(
            top["text"]
                .as_str()
                .unwrap()
                .contains("Emergency dental care is reimbursed at 80 percent"),
            "mode {mode}: {top}"
        );
        assert_eq!(top["document_id"], accepted["document_id"]);
        assert_eq!(top["filename"], "eoc.pdf");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_fixture_policy_answers_the_claim_deadline_question_from_page_one() {
    let app = spawn_app().await;
    let bytes = std::fs::read(fixture("simulated_insurance_document.pdf")).unwrap();
    let (_, job) = upload_and_wait(&app, "simulated_insurance_document.pdf", bytes).await;
    assert_eq!(job["status"], "complete", "{job}");
    let (status, body) = app
        .search(json!({"query": "how long do I have to submit a claim"}))
        .await;
    assert_eq!(status, 200);
    let top = &body["results"][0];
    assert_eq!(top["page_start"], 1);
    assert!(top["text"].as_str().unwrap().contains("60 days"), "{top}");
    app.stop().await;
}

#[tokio::test]
async fn the_same_file_uploaded_twice_returns_the_first_document() {
    let app = spawn_app().await;
    let bytes = docs::pdf(&docs::known_passage_pages());
    let first = app.upload_ok("a.pdf", bytes.clone()).await;
    let second = app.upload_ok("b.pdf", bytes).await;
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    assert_eq!(first["document_id"], second["document_id"]);
    assert_eq!(first["job_id"], second["job_id"]);
    let (_, list) = app.get_json("/v1/documents").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let app = spawn_app().await;
    let send = |bytes: Vec<u8>| {
        app.http
            .post(app.url("/v1/documents"))
            .header("content-type", "text/plain")
            .header("x-filename", "note.txt")
            .header("idempotency-key", "upload-42")
            .body(bytes)
            .send()
    };
    let first: Value = send(b"Deductible notes, first draft.".to_vec())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second: Value = send(b"Deductible notes, a different body.".to_vec())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["document_id"], second["document_id"]);
    assert_eq!(second["duplicate"], true);
    app.stop().await;
}

/// Every kind of bad input gets its own code, nothing is lost, and the server stays healthy.
#[tokio::test]
async fn bad_input_gets_specific_codes_and_the_server_keeps_serving() {
    let app = spawn_app().await;

    // Refused at the door.
    for name in ["not-really-a.pdf", "not-really-a.docx"] {
        let response = app
            .upload(name, std::fs::read(fixture(name)).unwrap())
            .await;
        assert_eq!(response.status(), 415, "{name}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "media_type_mismatch", "{name}: {body}");
        assert!(
            !body.to_string().contains("Sample Insurance"),
            "problem bodies never echo document content"
        );
    }
    let zero = app
        .http
        .post(app.url("/v1/documents"))
        .header("content-type", "application/pdf")
        .body(Vec::<u8>::new())
        .send()
        .await
        .unwrap();
    assert_eq!(zero.status(), 400);
    assert_eq!(zero.json::<Value>().await.unwrap()["code"], "empty_body");

    let png = app
        .http
        .post(app.url("/v1/documents"))
        .header("content-type", "image/png")
        .body(vec![0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(png.status(), 415);
    assert_eq!(
        png.json::<Value>().await.unwrap()["code"],
        "unsupported_media_type"
    );

    let binary = app
        .http
        .post(app.url("/v1/documents"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 159, 146, 150, 0, 1, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(binary.status(), 415);
    assert_eq!(
        binary.json::<Value>().await.unwrap()["code"],
        "unsupported_media_type"
    );

    // Over the 2 MB test limit: refused by content-length, and (streamed without a length)
    // refused while streaming.
    let big = vec![b'a'; 2_500_000];
    let over = app.upload("big.txt", big.clone()).await;
    assert_eq!(over.status(), 413);
    assert_eq!(
        over.json::<Value>().await.unwrap()["code"],
        "payload_too_large"
    );
    let stream = futures::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let streamed = app
        .http
        .post(app.url("/v1/documents"))
        .header("content-type", "text/plain")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);

    // Accepted, then failed by their own jobs with their own codes.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.txt", Vec::new(), "empty_document"),
        ("scan.pdf", docs::pdf_without_text(3), "no_text_layer"),
        ("locked.pdf", docs::encrypted_pdf(), "encrypted_document"),
        ("broken.pdf", docs::corrupt_pdf(), "corrupt_document"),
    ];
    let mut jobs = Vec::new();
    for (name, bytes, code) in &cases {
        let accepted = app.upload_ok(name, bytes.clone()).await;
        jobs.push((accepted["job_id"].as_str().unwrap().to_owned(), *code));
    }
    // A good document uploaded alongside still completes.
    let good = app
        .upload_ok("good.pdf", docs::pdf(&docs::known_passage_pages()))
        .await;
    for (job_id, code) in jobs {
        let job = app.wait_for_job(&job_id).await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["error"]["code"], code, "{job}");
        assert_eq!(
            job["attempts"], 1,
            "permanent errors are not retried: {job}"
        );
    }
    let job = app.wait_for_job(good["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "complete");
    let (status, _) = app.get_json("/healthz").await;
    assert_eq!(status, 200);
    let (status, ready) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    app.stop().await;
}

#[tokio::test]
async fn a_failed_job_can_be_retried_and_a_complete_one_cannot() {
    let app = spawn_app().await;
    let (accepted, job) = upload_and_wait(&app, "scan.pdf", docs::pdf_without_text(1)).await;
    assert_eq!(job["status"], "failed");
    let job_id = accepted["job_id"].as_str().unwrap();
    let retried = app
        .http
        .post(app.url(&format!("/v1/jobs/{job_id}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 202);
    let again = app.wait_for_job(job_id).await;
    assert_eq!(again["status"], "failed");
    assert_eq!(again["error"]["code"], "no_text_layer");

    let (ok, _) = upload_and_wait(&app, "good.pdf", docs::pdf(&docs::known_passage_pages())).await;
    let refused = app
        .http
        .post(app.url(&format!(
            "/v1/jobs/{}/retry",
            ok["job_id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "conflict");

    let (status, failed) = app.get_json("/v1/jobs?status=failed").await;
    assert_eq!(status, 200);
    assert_eq!(failed["items"].as_array().unwrap().len(), 1);
    let (status, bad) = app.get_json("/v1/jobs?status=sideways").await;
    assert_eq!(status, 400);
    assert_eq!(bad["code"], "invalid_request");
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_document_removes_it_from_search_and_reads() {
    let app = spawn_app().await;
    let (accepted, _) =
        upload_and_wait(&app, "eoc.pdf", docs::pdf(&docs::known_passage_pages())).await;
    let id = accepted["document_id"].as_str().unwrap();
    let deleted = app
        .http
        .delete(app.url(&format!("/v1/documents/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let (status, body) = app.get_json(&format!("/v1/documents/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");
    let (_, results) = app
        .search(json!({"query": "emergency dental care", "mode": "keyword"}))
        .await;
    assert_eq!(results["results"].as_array().unwrap().len(), 0);
    let blobs = app.data_dir.path().join("blobs");
    let leftover: Vec<_> = walk(&blobs)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(id))
        .collect();
    assert!(leftover.is_empty(), "blobs left behind: {leftover:?}");
    let again = app
        .http
        .delete(app.url(&format!("/v1/documents/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    app.stop().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn job_events_stream_every_transition_and_end_with_the_terminal_one() {
    let app = spawn_app().await;
    let accepted = app
        .upload_ok("eoc.pdf", docs::pdf(&docs::known_passage_pages()))
        .await;
    let job_id = accepted["job_id"].as_str().unwrap();
    let body = app
        .http
        .get(app.url(&format!("/v1/jobs/{job_id}/events")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let moves: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap_or("-").to_owned(),
                e["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        moves.first().unwrap(),
        &("-".to_owned(), "queued".to_owned())
    );
    assert_eq!(moves.last().unwrap().1, "complete", "{moves:?}");
    let stages: Vec<&str> = events
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect();
    for stage in ["parse", "chunk", "embed", "index"] {
        assert!(stages.contains(&stage), "{stages:?}");
    }
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert!(body.contains("event: transition"));
    app.stop().await;
}

#[tokio::test]
async fn errors_are_problem_json_and_every_response_has_a_request_id() {
    let app = spawn_app().await;
    for (method, path, status, code) in [
        ("GET", "/v1/nowhere", 404, "not_found"),
        ("GET", "/v1/documents/not-a-uuid", 404, "not_found"),
        (
            "GET",
            "/v1/jobs/0190f3c4-0000-7000-8000-000000000000",
            404,
            "not_found",
        ),
        ("GET", "/v1/documents?limit=0", 400, "invalid_request"),
        ("PUT", "/v1/search", 400, "invalid_request"),
    ] {
        let r = app
            .http
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        assert!(r.headers().contains_key("x-request-id"), "{method} {path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], code, "{method} {path}: {body}");
        assert_eq!(body["status"], status);
    }
    let ok = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.headers()["x-request-id"], "trace-me-1");
    app.stop().await;
}

#[tokio::test]
async fn search_rejects_malformed_requests_with_invalid_request() {
    let app = spawn_app().await;
    for body in [
        json!({"query": ""}),
        json!({"query": "   "}),
        json!({"query": "x", "limit": 0}),
        json!({"query": "x", "limit": 100000}),
        json!({"query": "x", "mode": "psychic"}),
        json!({"query": "x", "document_ids": ["nope"]}),
        json!({"query": "x", "unknown": 1}),
        json!({"query": "q".repeat(5000)}),
        json!({"limit": 3}),
    ] {
        let (status, problem) = app.search(body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(problem["code"], "invalid_request", "{body}");
    }
    let raw = app
        .http
        .post(app.url("/v1/search"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    // Hostile but valid queries are answered, not errors.
    for q in ["\"", "*", "NEAR(", "' OR 1=1 --", "ü ß 漢字"] {
        let (status, _) = app.search(json!({"query": q})).await;
        assert_eq!(status, 200, "{q}");
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_version_and_openapi_describe_the_running_service() {
    let app = spawn_app().await;
    upload_and_wait(&app, "eoc.pdf", docs::pdf(&docs::known_passage_pages())).await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "navigator_stage_duration_seconds_bucket",
        "navigator_jobs{status=\"complete\"}",
        "navigator_queue_depth",
        "navigator_queue_oldest_age_seconds",
        "navigator_http_requests_total",
        "navigator_db_pool_connections{state=\"idle\"}",
        "navigator_db_pool_max_connections",
    ] {
        assert!(metrics.contains(series), "missing {series}");
    }
    assert!(
        !metrics.contains("eoc.pdf"),
        "filenames never become labels"
    );

    let (status, version) = app.get_json("/version").await;
    assert_eq!(status, 200);
    assert_eq!(version["embedder"], "test/hash-384");

    let (status, spec) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(spec["openapi"], "3.1.0");
    // Every documented route is served: none falls through to the "route not found" fallback.
    for navigator_server::http::openapi::Route { method, path, .. } in
        navigator_server::http::openapi::ROUTES
    {
        let concrete = path.replace("{id}", "0190f3c4-0000-7000-8000-000000000000");
        let r = app
            .http
            .request(method.to_uppercase().parse().unwrap(), app.url(&concrete))
            .send()
            .await
            .unwrap();
        let body = r.text().await.unwrap_or_default();
        assert!(
            !body.contains("route not found") && !body.contains("method not allowed"),
            "{method} {path} is documented but not served"
        );
    }
    let docs_page = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs_page.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn documents_list_paginates_with_a_cursor() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.upload_ok(
            &format!("n{i}.txt"),
            format!("Note number {i} about copays.").into_bytes(),
        )
        .await;
    }
    let (_, first) = app.get_json("/v1/documents?limit=2").await;
    let (_, second) = app
        .get_json(&format!(
            "/v1/documents?limit=2&after={}",
            first["next"].as_str().unwrap()
        ))
        .await;
    let (_, third) = app
        .get_json(&format!(
            "/v1/documents?limit=2&after={}",
            second["next"].as_str().unwrap()
        ))
        .await;
    let ids: Vec<String> = [&first, &second, &third]
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().clone())
        .map(|d| d["document_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 5);
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 5);
    assert!(third["next"].is_null());
    app.stop().await;
}

/// A parser that loops, panics or balloons in memory fails only its own job, with its own code;
/// the server keeps serving and a good document uploaded alongside completes.
#[tokio::test]
async fn poison_documents_fail_their_own_jobs_and_the_server_survives() {
    let app = spawn_app_with_poison_hooks(|yaml| {
        format!("{yaml}parser:\n  timeout_secs: 3\n  memory_mb: 256\n")
    })
    .await;
    let cases = [
        ("loop.txt", "__navigator_test_loop__", "parser_timeout"),
        ("panic.txt", "__navigator_test_panic__", "parser_crashed"),
        (
            "balloon.txt",
            "__navigator_test_balloon__",
            "parser_resource_limit",
        ),
    ];
    let mut jobs = Vec::new();
    for (name, body, code) in cases {
        let accepted = app.upload_ok(name, body.as_bytes().to_vec()).await;
        jobs.push((accepted["job_id"].as_str().unwrap().to_owned(), code));
    }
    let good = app
        .upload_ok("good.pdf", docs::pdf(&docs::known_passage_pages()))
        .await;
    for (job_id, code) in jobs {
        let job = app.wait_for_job(&job_id).await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["error"]["code"], code, "{job}");
    }
    let job = app.wait_for_job(good["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "complete");
    let (status, _) = app.get_json("/healthz").await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_metadata_part_is_refused_without_being_buffered() {
    let app = spawn_app().await;
    let big = format!("{{\"note\": \"{}\"}}", "x".repeat(100_000));
    let form = reqwest::multipart::Form::new().text("metadata", big).part(
        "file",
        reqwest::multipart::Part::bytes(b"Copay notes.".to_vec()).file_name("n.txt"),
    );
    let r = app
        .http
        .post(app.url("/v1/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "payload_too_large"
    );

    let form = reqwest::multipart::Form::new()
        .text("metadata", "{\"plan\": \"gold\"}")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"Copay notes.".to_vec()).file_name("n.txt"),
        );
    let r = app
        .http
        .post(app.url("/v1/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let accepted: Value = r.json().await.unwrap();
    let (_, doc) = app
        .get_json(&format!(
            "/v1/documents/{}",
            accepted["document_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(doc["metadata"]["plan"], "gold");
    app.stop().await;
}

#[tokio::test]
async fn resuming_the_event_stream_of_a_finished_job_ends_at_once() {
    let app = spawn_app().await;
    let (accepted, job) =
        upload_and_wait(&app, "eoc.pdf", docs::pdf(&docs::known_passage_pages())).await;
    assert_eq!(job["status"], "complete");
    let job_id = accepted["job_id"].as_str().unwrap();
    let all = app
        .http
        .get(app.url(&format!("/v1/jobs/{job_id}/events")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let last_id = all
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .next_back()
        .unwrap()
        .to_owned();
    // The request's own 60 s client timeout would fail this test if the stream never ended.
    let resumed = app
        .http
        .get(app.url(&format!("/v1/jobs/{job_id}/events")))
        .header("last-event-id", last_id)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !resumed.contains("data:"),
        "no events after the last one: {resumed}"
    );
    app.stop().await;
}

/// The production shape: PostgreSQL + pgvector (a fresh database) and S3 blobs (a fresh prefix on
/// the test bucket): upload, process, search with the right page, delete. Skipped on a laptop
/// without the services; required under CI=true.
#[tokio::test]
async fn the_pipeline_runs_end_to_end_on_postgres_and_s3() {
    let Some(admin) = navigator_store::conformance::postgres_admin_url() else {
        eprintln!("skipping: PostgreSQL not configured (scripts/services.sh start)");
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
        eprintln!("skipping: S3 not configured (scripts/services.sh start)");
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
    let (accepted, job) =
        upload_and_wait(&app, "eoc.pdf", docs::pdf(&docs::known_passage_pages())).await;
    assert_eq!(job["status"], "complete", "{job}");
    for mode in ["hybrid", "keyword", "vector"] {
        let (status, body) = app
            .search(json!({"query": "emergency dental care reimbursed", "mode": mode}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"][0]["page_start"], 3, "mode {mode}: {body}");
    }
    let id = accepted["document_id"].as_str().unwrap();
    let deleted = app
        .http
        .delete(app.url(&format!("/v1/documents/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let (_, results) = app
        .search(json!({"query": "emergency dental care", "mode": "keyword"}))
        .await;
    assert_eq!(results["results"].as_array().unwrap().len(), 0);
    let (status, ready) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    app.stop().await;
}
