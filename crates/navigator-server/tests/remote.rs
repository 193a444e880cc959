//! Issue 4: remote parsing and OpenAI-compatible embeddings against the shipped mocks, the usage
//! ledger with its caches, and budgets. The server runs in-process; the mocks run in-process too
//! (the same code `navigator mock …` serves), so their counters can be read directly.

mod support;

use navigator_domain::{JobStatus, OwnerId, Sha256Hex};
use navigator_store::OwnerScope;
use serde_json::{Value, json};
use std::time::Duration;
use support::{TestApp, spawn_app_with};

/// A small Markdown policy whose every paragraph is unique to `n`.
fn policy_markdown(n: usize) -> Vec<u8> {
    let mut text = format!("# Policy {n} schedule of benefits\n\n");
    for section in 0..3 {
        text.push_str(&format!(
            "## Section {section} of policy {n}\n\nMember {n} is covered for service tier {section}x{n}: \
             ambulance transport, physiotherapy sessions numbered {n}{section}, and claims filed \
             within {days} days of treatment under plan code P{n}S{section}.\n\n",
            days = 30 + n + section
        ));
    }
    text.into_bytes()
}

async fn wait_for_job_in_store(
    app: &TestApp,
    job_id: navigator_domain::JobId,
) -> navigator_store::JobRecord {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let job = app
            .state
            .store
            .get_job(&OwnerScope::All, job_id)
            .await
            .unwrap();
        if job.status.is_terminal() {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job did not finish: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Uploads `bytes` for `owner` behind the API (auth is off, so the API has one owner) and waits
/// for its job.
async fn ingest_as(app: &TestApp, owner: &OwnerId, bytes: &[u8]) -> navigator_store::Created {
    let file = app.data_dir.path().join(format!("upload-{owner}.md"));
    std::fs::write(&file, bytes).unwrap();
    let created = navigator_pipeline::ingest::accept(
        app.state.store.as_ref(),
        &app.state.blobs,
        navigator_pipeline::ingest::Upload {
            owner: owner.clone(),
            filename: "same.md".to_owned(),
            declared_type: None,
            file: &file,
            bytes: bytes.len() as u64,
            sha256: Sha256Hex::of(bytes),
            metadata: json!({}),
            idempotency_key: None,
        },
        app.state.clock.now(),
    )
    .await
    .unwrap();
    assert!(
        !created.duplicate,
        "another owner's upload is its own document"
    );
    app.state.wake.notify_waiters();
    let job = wait_for_job_in_store(app, created.job.id).await;
    assert_eq!(job.status, JobStatus::Complete, "{job:?}");
    created
}

async fn owner_totals(app: &TestApp, owner: &OwnerId) -> navigator_store::UsageTotals {
    let now = app.state.clock.now();
    let summary = app
        .state
        .store
        .usage(
            &OwnerScope::Owner(owner.clone()),
            now - Duration::from_secs(3600),
            now + Duration::from_secs(1),
        )
        .await
        .unwrap();
    assert_eq!(summary.owners.len(), 1, "{summary:?}");
    summary.owners[0].totals
}

const CACHE_PRICES: &str = "usage:\n  prices:\n    \"test/hash-384\": {usd_per_million_tokens: 1000}\n    builtin: {usd_per_page: 0.01}\n";

/// By default the parse cache is per owner: another owner's identical file is parsed (and
/// charged) again, so nobody learns what another tenant uploaded from their savings.
#[tokio::test]
async fn the_parse_cache_is_per_owner_by_default() {
    let app = spawn_app_with(|yaml| format!("{yaml}{CACHE_PRICES}")).await;
    let bytes = policy_markdown(8);
    let first = app.upload_ok("policy.md", bytes.clone()).await;
    app.wait_for_job(first["job_id"].as_str().unwrap()).await;
    let other = OwnerId::parse("owner-c").unwrap();
    ingest_as(&app, &other, &bytes).await;
    let totals = owner_totals(&app, &other).await;
    assert_eq!(totals.pages, 1, "{totals:?}");
    assert_eq!(totals.saved_pages, 0, "{totals:?}");
    assert_eq!(
        totals.cost_micro_usd - (totals.tokens as i64) * 1000,
        10_000,
        "{totals:?}"
    );
    app.stop().await;
}

/// With the cache shared (single-tenant deployments), the same bytes uploaded by a second owner
/// reuse the first owner's parsed artifact and vectors: the ledger charges the second owner
/// nothing and records what the caches saved.
#[tokio::test]
async fn the_parse_and_embedding_caches_are_recorded_as_savings() {
    let app = spawn_app_with(|yaml| {
        let yaml = yaml.replace(
            "embedder:",
            "parser:\n  share_cache_across_owners: true\nembedder:",
        );
        format!("{yaml}{CACHE_PRICES}")
    })
    .await;
    let bytes = policy_markdown(7);
    let first = app.upload_ok("policy.md", bytes.clone()).await;
    let job = app.wait_for_job(first["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "complete", "{job}");

    let (status, usage) = app.get_json("/v1/usage").await;
    assert_eq!(status, 200, "{usage}");
    let local = &usage["owners"][0];
    assert_eq!(local["owner"], "local");
    assert_eq!(local["pages"], 1, "{usage}");
    let tokens = local["tokens"].as_u64().unwrap();
    assert!(tokens > 0, "{usage}");
    let expected_cost = (tokens as f64 * 1000.0 + 0.01 * 1e6) / 1e6;
    assert!(
        (local["cost_usd"].as_f64().unwrap() - expected_cost).abs() < 1e-9,
        "{usage}"
    );
    assert_eq!(
        local["saved"]["tokens"], 0,
        "nothing was cached yet: {usage}"
    );
    assert_eq!(usage["documents"][0]["document_id"], first["document_id"]);

    // A second owner uploads the same bytes.
    let other = OwnerId::parse("owner-b").unwrap();
    let created = ingest_as(&app, &other, &bytes).await;
    let doc = app
        .state
        .store
        .get_document(&OwnerScope::All, created.document.id)
        .await
        .unwrap();
    assert_eq!(doc.pages, Some(1));
    assert!(doc.chunks > 0);

    let totals = owner_totals(&app, &other).await;
    assert_eq!(totals.pages, 0, "the parse cache served it: {totals:?}");
    assert_eq!(totals.saved_pages, 1, "{totals:?}");
    assert_eq!(
        totals.tokens, 0,
        "every text was already embedded: {totals:?}"
    );
    assert_eq!(totals.saved_tokens, tokens, "{totals:?}");
    assert_eq!(totals.cost_micro_usd, 0, "{totals:?}");
    assert_eq!(
        totals.saved_cost_micro_usd,
        (tokens as f64 * 1000.0 + 0.01 * 1e6).round() as i64,
        "{totals:?}"
    );
    // The local owner's view is unchanged and never shows the other owner.
    let (_, usage) = app.get_json("/v1/usage?owner=owner-b").await;
    let owners: Vec<&Value> = usage["owners"].as_array().unwrap().iter().collect();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        owners[0]["owner"], "local",
        "a member sees only its own usage: {usage}"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Remote providers against the shipped mocks

const MASTER_SECRET: &str = "test-master-webhook-secret-0123456789abcdef";
const MODEL_ID: &str = "openai/text-embedding-3-small/384";

async fn loopback() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()
}

async fn start_openai(knobs: navigator_mock::openai::Knobs) -> navigator_mock::openai::MockOpenAi {
    navigator_mock::openai::serve(loopback().await, knobs)
        .await
        .unwrap()
}

async fn start_llamaparse(
    knobs: navigator_mock::llamaparse::Knobs,
) -> navigator_mock::llamaparse::MockLlamaParse {
    navigator_mock::llamaparse::serve(loopback().await, knobs)
        .await
        .unwrap()
}

/// The remote sections of a test config; `parser` is `None` for the built-in parsers.
struct Remote<'a> {
    port: u16,
    openai: &'a str,
    llamaparse: Option<&'a str>,
    /// Extra YAML under `embedder.openai`.
    openai_extra: &'a str,
    /// Extra YAML under `parser.llamaparse`.
    llamaparse_extra: &'a str,
    /// Extra top-level YAML sections (`usage:` …).
    extra: &'a str,
    retry_max_attempts: u32,
}

impl Remote<'_> {
    fn yaml(&self, base: &str) -> String {
        // The base's first line is `data_dir: …`; everything else is replaced.
        let data_dir = base.lines().next().unwrap();
        let parser = match self.llamaparse {
            Some(url) => format!(
                "parser:\n  kind: llamaparse\n  webhook_secret: {MASTER_SECRET}\n  llamaparse:\n    base_url: {url}\n    api_key: lp-test-key\n    requests_per_minute: 0\n{}",
                self.llamaparse_extra
            ),
            None => "parser:\n  kind: builtin\n".to_owned(),
        };
        format!(
            "{data_dir}\n\
             server:\n  listen: 127.0.0.1:{port}\n  public_url: http://127.0.0.1:{port}\n  max_upload_bytes: 2000000\n  shutdown_grace_secs: 5\n\
             {parser}\
             embedder:\n  kind: openai\n  batch_size: 8\n  openai:\n    base_url: {openai}\n    model: text-embedding-3-small\n    api_key: oa-test-key\n    dimensions: 384\n    request_dimensions: true\n    max_batch_tokens: 2000\n{openai_extra}\
             workers:\n  concurrency: 4\n  lease_secs: 10\n  poll_interval_ms: 50\n  rescue_interval_secs: 1\n  retry:\n    base_secs: 1\n    cap_secs: 2\n    max_attempts: {attempts}\n\
             {extra}\
             log:\n  level: warn\n",
            port = self.port,
            openai = self.openai,
            openai_extra = self.openai_extra,
            attempts = self.retry_max_attempts,
            extra = self.extra,
        )
    }
}

async fn spawn_remote_app(remote: Remote<'_>) -> TestApp {
    let port = remote.port;
    support::spawn_app_on(port, |base| remote.yaml(&base), support::sandbox_options()).await
}

async fn upload_markdown(app: &TestApp, n: usize) -> Value {
    let response = app
        .http
        .post(app.url("/v1/documents"))
        .header("content-type", "text/markdown")
        .header("x-filename", format!("policy-{n}.md"))
        .body(policy_markdown(n))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

async fn job_status(app: &TestApp, job_id: &str) -> Value {
    let (status, job) = app.get_json(&format!("/v1/jobs/{job_id}")).await;
    assert_eq!(status, 200, "{job}");
    job
}

/// Polls until the job reaches `status` (bounded).
async fn wait_for_status(app: &TestApp, job_id: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = job_status(app, job_id).await;
        if job["status"] == status {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job never became {status}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics_text(app: &TestApp) -> String {
    app.http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// 50 documents through a remote parser and a remote embedder that both misbehave: 20 % 5xx,
/// 10 % 429 with Retry-After, hung requests, lost and duplicated webhooks. Every document
/// completes and is searchable, and the embedding mock saw no text embedded twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_documents_complete_through_faulty_providers_without_paying_twice() {
    use std::collections::BTreeMap;
    let openai = start_openai(navigator_mock::openai::Knobs {
        api_key: Some("oa-test-key".to_owned()),
        dimensions: 384,
        error_rates: BTreeMap::from([(500, 0.1), (503, 0.1)]),
        rate_limit_rate: 0.1,
        retry_after_secs: 1,
        timeout_rate: 0.03,
        hang_secs: 4,
        ..Default::default()
    })
    .await;
    let llamaparse = start_llamaparse(navigator_mock::llamaparse::Knobs {
        api_key: Some("lp-test-key".to_owned()),
        latency_ms: 100,
        fail_rate: 0.2,
        rate_limit_rate: 0.1,
        retry_after_secs: 1,
        undelivered_rate: 0.3,
        duplicate_rate: 0.3,
        ..Default::default()
    })
    .await;
    let app = spawn_remote_app(Remote {
        port: support::free_port(),
        openai: &openai.base_url(),
        llamaparse: Some(&llamaparse.url()),
        openai_extra: "    max_concurrency: 4\n    request_timeout_secs: 1\n    max_attempts: 4\n    breaker:\n      failure_threshold: 10\n      open_secs: 1\n",
        llamaparse_extra: "    poll_interval_secs: 1\n    request_timeout_secs: 5\n    max_attempts: 4\n    breaker:\n      failure_threshold: 10\n      open_secs: 1\n",
        extra: "",
        retry_max_attempts: 20,
    })
    .await;

    let mut jobs = Vec::new();
    for n in 0..50 {
        let accepted = upload_markdown(&app, n).await;
        jobs.push((n, accepted));
    }
    for (n, accepted) in &jobs {
        let job = app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "complete", "document {n}: {job}");
        assert_eq!(job["progress"]["pages"], 1, "document {n}: {job}");
    }

    let embeddings = openai.stats();
    assert_eq!(
        embeddings.texts_embedded_more_than_once, 0,
        "a text was embedded again after a success: {embeddings:?}"
    );
    assert!(embeddings.errors_injected > 0, "{embeddings:?}");
    assert!(embeddings.rate_limited_injected > 0, "{embeddings:?}");
    assert!(embeddings.timeouts > 0, "{embeddings:?}");
    let parsing = llamaparse.stats();
    assert_eq!(
        parsing.jobs_by_status.get("SUCCESS").copied().unwrap_or(0),
        parsing.uploads
    );
    assert!(parsing.errors_injected > 0, "{parsing:?}");
    assert!(
        parsing.webhooks_skipped > 0,
        "some results had to be polled: {parsing:?}"
    );
    assert!(parsing.duplicates_sent > 0, "{parsing:?}");
    assert_eq!(
        parsing
            .webhook_responses_by_status
            .get("409")
            .copied()
            .unwrap_or(0),
        parsing.duplicates_sent,
        "every duplicated delivery is refused as a replay: {parsing:?}"
    );

    for n in [0usize, 17, 49] {
        let (status, body) = app
            .search(json!({"query": format!("plan code P{n}S1"), "mode": "keyword"}))
            .await;
        assert_eq!(status, 200, "{body}");
        let top = &body["results"][0];
        assert_eq!(
            top["document_id"], jobs[n].1["document_id"],
            "document {n}: {body}"
        );
    }

    let (_, usage) = app.get_json("/v1/usage").await;
    let local = &usage["owners"][0];
    assert_eq!(local["pages"], 50, "{usage}");
    assert!(local["tokens"].as_u64().unwrap() > 0, "{usage}");
    assert!(local["requests"].as_u64().unwrap() >= 100, "{usage}");
    assert!(local["retries"].as_u64().unwrap() > 0, "{usage}");

    let metrics = metrics_text(&app).await;
    for needle in [
        "navigator_external_requests_total{service=\"openai\",operation=\"embeddings\",outcome=\"5xx\"}",
        "navigator_external_requests_total{service=\"openai\",operation=\"embeddings\",outcome=\"429\"}",
        "navigator_external_requests_total{service=\"openai\",operation=\"embeddings\",outcome=\"timeout\"}",
        "navigator_external_request_duration_seconds_bucket{service=\"llamaparse\"",
        "navigator_external_retries_total{service=\"llamaparse\"",
        "navigator_external_breaker_state{service=\"openai\"}",
        "navigator_external_tokens_total{service=\"openai\"}",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in /metrics");
    }
    app.stop().await;
    openai.stop().await.unwrap();
    llamaparse.stop().await.unwrap();
}

/// A provider that always fails: jobs end `failed` with a clear code once the retry budget is
/// spent, and meanwhile the open breaker stops calling it.
#[tokio::test]
async fn an_always_failing_provider_fails_jobs_and_the_breaker_stops_calling_it() {
    use std::collections::BTreeMap;
    let openai = start_openai(navigator_mock::openai::Knobs {
        dimensions: 384,
        error_rates: BTreeMap::from([(503, 1.0)]),
        ..Default::default()
    })
    .await;
    let app = spawn_remote_app(Remote {
        port: 0,
        openai: &openai.base_url(),
        llamaparse: None,
        openai_extra: "    max_concurrency: 1\n    request_timeout_secs: 2\n    max_attempts: 2\n    breaker:\n      failure_threshold: 3\n      open_secs: 600\n",
        llamaparse_extra: "",
        extra: "",
        retry_max_attempts: 3,
    })
    .await;
    let mut jobs = Vec::new();
    for n in 0..3 {
        jobs.push(upload_markdown(&app, n).await);
    }
    for accepted in &jobs {
        let job = app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["stage"], "embed", "{job}");
        assert_eq!(job["error"]["code"], "retries_exhausted", "{job}");
        let message = job["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("circuit_open") || message.contains("upstream_unavailable"),
            "the last error names the upstream failure: {job}"
        );
        // Every job used its whole retry budget…
        let job_id = navigator_domain::JobId::parse(accepted["job_id"].as_str().unwrap()).unwrap();
        let events = app.state.store.job_events(job_id, 0).await.unwrap();
        let retries = events
            .iter()
            .filter(|e| e.to == JobStatus::Retrying)
            .count();
        assert_eq!(retries, 2, "3 attempts = 2 retries: {events:?}");
    }
    // …yet the provider saw only the requests that opened the breaker: without it, 3 jobs × 3
    // attempts × 2 tries would have sent 18.
    let stats = openai.stats();
    assert!(
        (3..=4).contains(&stats.requests_total),
        "the open breaker must stop calls: {stats:?}"
    );
    app.stop().await;
    openai.stop().await.unwrap();
}

/// Sends a parser callback for `job_id` signed with `secret` at `timestamp`.
async fn send_callback(
    app: &TestApp,
    job_id: &str,
    delivery_id: &str,
    signature: Option<String>,
    timestamp: i64,
    body: &[u8],
) -> (u16, Value) {
    use navigator_remote::webhook::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
    let mut request = app
        .http
        .post(app.url(&format!("/v1/webhooks/parser/{job_id}")))
        .header("content-type", "application/json")
        .header(HEADER_ID, delivery_id)
        .header(HEADER_TIMESTAMP, timestamp.to_string())
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header(HEADER_SIGNATURE, signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Forged, stale and replayed callbacks are refused and change nothing; a valid one resumes the
/// waiting job; a late duplicate is harmless and nothing is charged twice.
#[tokio::test]
async fn forged_stale_and_replayed_parser_callbacks_are_refused_and_change_nothing() {
    use navigator_remote::webhook::{job_secret, sign};
    let openai = start_openai(navigator_mock::openai::Knobs {
        dimensions: 384,
        ..Default::default()
    })
    .await;
    // The mock never calls back and the poll is an hour away: only our callbacks can resume it.
    let llamaparse = start_llamaparse(navigator_mock::llamaparse::Knobs {
        undelivered_rate: 1.0,
        ..Default::default()
    })
    .await;
    let app = spawn_remote_app(Remote {
        port: support::free_port(),
        openai: &openai.base_url(),
        llamaparse: Some(&llamaparse.url()),
        openai_extra: "",
        llamaparse_extra: "    poll_interval_secs: 3600\n",
        extra: "",
        retry_max_attempts: 3,
    })
    .await;
    let accepted = upload_markdown(&app, 3).await;
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    let waiting = wait_for_status(&app, &job_id, "waiting").await;
    assert_eq!(waiting["stage"], "parse", "{waiting}");
    let job = navigator_domain::JobId::parse(&job_id).unwrap();
    let record = app
        .state
        .store
        .get_remote_parse(job)
        .await
        .unwrap()
        .unwrap();

    // The result the service holds, fetched the way the service would send it.
    let result_url = format!(
        "{}/api/v1/parsing/job/{}/result/json",
        llamaparse.url(),
        record.provider_job_id
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let result: Value = loop {
        let response = app.http.get(&result_url).send().await.unwrap();
        if response.status() == 200 {
            break response.json().await.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the mock never finished parsing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let body = serde_json::to_vec(&json!({
        "id": record.provider_job_id,
        "status": "SUCCESS",
        "pages": result["pages"],
    }))
    .unwrap();
    let secret = job_secret(MASTER_SECRET.as_bytes(), &job_id);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    let unchanged = |app: &TestApp| {
        let store = app.state.store.clone();
        async move {
            let job = store.get_job(&OwnerScope::All, job).await.unwrap();
            assert_eq!(job.status, JobStatus::Waiting, "{job:?}");
            let record = store.get_remote_parse(job.id).await.unwrap().unwrap();
            assert_eq!(record.delivered_at, None);
        }
    };

    // Unsigned, signed with another key, signed for another job, tampered with.
    let wrong_key = job_secret(b"not-the-master-secret-not-the-master", &job_id);
    let other_job = job_secret(
        MASTER_SECRET.as_bytes(),
        &navigator_domain::JobId::new_v7().to_string(),
    );
    let mut tampered = body.clone();
    *tampered.last_mut().unwrap() = b' ';
    for (name, signature, sent) in [
        ("unsigned", None, body.clone()),
        (
            "wrong key",
            Some(sign(&wrong_key, "forged-1", now, &body)),
            body.clone(),
        ),
        (
            "other job's secret",
            Some(sign(&other_job, "forged-1", now, &body)),
            body.clone(),
        ),
        (
            "tampered body",
            Some(sign(&secret, "forged-1", now, &body)),
            tampered,
        ),
    ] {
        let (status, problem) =
            send_callback(&app, &job_id, "forged-1", signature, now, &sent).await;
        assert_eq!(status, 401, "{name}: {problem}");
        assert_eq!(
            problem["code"], "webhook_signature_invalid",
            "{name}: {problem}"
        );
        unchanged(&app).await;
    }
    // Correctly signed but captured long ago (or dated in the future).
    for skew in [-301, 301] {
        let ts = now + skew;
        let (status, problem) = send_callback(
            &app,
            &job_id,
            "stale-1",
            Some(sign(&secret, "stale-1", ts, &body)),
            ts,
            &body,
        )
        .await;
        assert_eq!(status, 401, "{problem}");
        assert_eq!(problem["code"], "webhook_stale", "{problem}");
        unchanged(&app).await;
    }
    // The refused deliveries did not burn their ids: a valid delivery may reuse one.
    let (status, answer) = send_callback(
        &app,
        &job_id,
        "delivery-1",
        Some(sign(&secret, "delivery-1", now, &body)),
        now,
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "accepted");
    let done = app.wait_for_job(&job_id).await;
    assert_eq!(done["status"], "complete", "{done}");
    let document_id =
        navigator_domain::DocumentId::parse(accepted["document_id"].as_str().unwrap()).unwrap();
    let chunks = app.state.store.live_chunks(document_id).await.unwrap();
    assert!(!chunks.is_empty());

    // Replayed: the same delivery again.
    let (status, problem) = send_callback(
        &app,
        &job_id,
        "delivery-1",
        Some(sign(&secret, "delivery-1", now, &body)),
        now,
        &body,
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "webhook_replayed");
    // Replayed under a fresh id: the id is signed too, so this is a forgery.
    let (status, problem) = send_callback(
        &app,
        &job_id,
        "delivery-9",
        Some(sign(&secret, "delivery-1", now, &body)),
        now,
        &body,
    )
    .await;
    assert_eq!(status, 401, "{problem}");
    assert_eq!(problem["code"], "webhook_signature_invalid");
    // A late duplicate with a fresh id (the provider re-sending) is harmless.
    let (status, answer) = send_callback(
        &app,
        &job_id,
        "delivery-2",
        Some(sign(&secret, "delivery-2", now, &body)),
        now,
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "already_processed");
    assert_eq!(
        app.state.store.live_chunks(document_id).await.unwrap(),
        chunks
    );
    let job = job_status(&app, &job_id).await;
    assert_eq!(job["status"], "complete");
    let (_, usage) = app.get_json("/v1/usage").await;
    assert_eq!(
        usage["owners"][0]["pages"], 1,
        "pages are charged once: {usage}"
    );

    // A callback for a job that awaits nothing.
    let stranger = navigator_domain::JobId::new_v7().to_string();
    let stranger_secret = job_secret(MASTER_SECRET.as_bytes(), &stranger);
    let (status, problem) = send_callback(
        &app,
        &stranger,
        "delivery-3",
        Some(sign(&stranger_secret, "delivery-3", now, &body)),
        now,
        &body,
    )
    .await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(
        llamaparse.stats().webhooks_sent,
        0,
        "only this test called back"
    );
    app.stop().await;
    openai.stop().await.unwrap();
    llamaparse.stop().await.unwrap();
}

/// A hard budget holds new work (`waiting`, `budget_exceeded`) until it is raised; the soft
/// budget only reports.
#[tokio::test]
async fn a_hard_budget_stops_new_work_until_it_is_raised() {
    let openai = start_openai(navigator_mock::openai::Knobs {
        dimensions: 384,
        ..Default::default()
    })
    .await;
    // One dollar per token: any document blows a $5 budget. Re-checks are an hour apart, so only
    // raising the budget can resume the held job within the test.
    let extra = format!(
        "usage:\n  prices:\n    \"{MODEL_ID}\": {{usd_per_million_tokens: 1000000}}\n  budgets:\n    recheck_secs: 3600\n"
    );
    let app = spawn_remote_app(Remote {
        port: 0,
        openai: &openai.base_url(),
        llamaparse: None,
        openai_extra: "",
        llamaparse_extra: "",
        extra: &extra,
        retry_max_attempts: 3,
    })
    .await;
    let put_budget = |body: Value| {
        let request = app.http.put(app.url("/v1/budgets/local")).json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, budget) = put_budget(json!({"soft_usd": 1.0, "hard_usd": 5.0})).await;
    assert_eq!(status, 200, "{budget}");
    assert_eq!(budget["hard_usd"], 5.0);

    let first = upload_markdown(&app, 1).await;
    let job = app.wait_for_job(first["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "complete", "work within budget runs: {job}");

    let second = upload_markdown(&app, 2).await;
    let second_id = second["job_id"].as_str().unwrap();
    let held = wait_for_status(&app, second_id, "waiting").await;
    assert_eq!(held["error"]["code"], "budget_exceeded", "{held}");
    assert_eq!(held["stage"], "parse", "no work was done: {held}");
    let (_, usage) = app.get_json("/v1/usage").await;
    let standing = &usage["owners"][0]["budget"];
    assert_eq!(standing["hard_exceeded"], true, "{usage}");
    assert_eq!(standing["soft_exceeded"], true, "{usage}");
    assert!(
        metrics_text(&app)
            .await
            .contains("navigator_budget_soft_exceeded_total")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(job_status(&app, second_id).await["status"], "waiting");

    // Invalid budgets are refused and change nothing.
    let (status, problem) = put_budget(json!({"hard_usd": -1})).await;
    assert_eq!(status, 400, "{problem}");
    let (status, problem) = put_budget(json!({"hard_usd": "lots"})).await;
    assert_eq!(status, 400, "{problem}");

    let (status, _) = put_budget(json!({"soft_usd": 1.0, "hard_usd": 1_000_000.0})).await;
    assert_eq!(status, 200);
    let resumed = app.wait_for_job(second_id).await;
    assert_eq!(
        resumed["status"], "complete",
        "raising the budget resumes the work: {resumed}"
    );
    let (_, budget) = app.get_json("/v1/budgets/local").await;
    assert_eq!(budget["hard_usd"], 1_000_000.0, "{budget}");
    assert_eq!(budget["source"], "owner");
    app.stop().await;
    openai.stop().await.unwrap();
}

/// `navigator mock openai|llamaparse` serve from the real binary, report where they listen, obey
/// runtime knob changes and stop cleanly on SIGTERM.
#[tokio::test]
async fn the_mocks_ship_in_the_binary() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let http = reqwest::Client::new();
    for (service, extra) in [
        ("openai", vec!["--dimensions", "8", "--fail", "500=1.0"]),
        ("llamaparse", vec![]),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_navigator"))
            .args(["mock", service, "--listen", "127.0.0.1:0"])
            .args(&extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap()
            .trim_end_matches("/v1")
            .to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{line}");
        let health = http.get(format!("{url}/health")).send().await.unwrap();
        assert_eq!(health.status(), 200, "{service}");
        if service == "openai" {
            let embed = |http: &reqwest::Client| {
                http.post(format!("{url}/v1/embeddings"))
                    .json(&json!({"model": "m", "input": ["deductible"]}))
                    .send()
            };
            assert_eq!(embed(&http).await.unwrap().status(), 500);
            let knobs = http
                .post(format!("{url}/_mock/config"))
                .json(&json!({"error_rates": {}}))
                .send()
                .await
                .unwrap();
            assert_eq!(knobs.status(), 200);
            let answer: Value = embed(&http).await.unwrap().json().await.unwrap();
            assert_eq!(answer["data"][0]["embedding"].as_array().unwrap().len(), 8);
            let stats: Value = http
                .get(format!("{url}/_mock/stats"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(stats["requests_total"], 2, "{stats}");
            assert_eq!(stats["successes"], 1, "{stats}");
        }
        // SIGTERM through kill(1): the test crate forbids unsafe code.
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        assert!(status.success(), "{service} exits 0 on SIGTERM: {status}");
    }
}

/// A hard budget holds only work that has not started: a document whose remote parse was
/// already submitted (and paid for) is still polled and finished, while a new one waits.
#[tokio::test]
async fn a_hard_budget_never_strands_a_remote_parse_already_paid_for() {
    let openai = start_openai(navigator_mock::openai::Knobs {
        dimensions: 384,
        ..Default::default()
    })
    .await;
    // No callbacks: results arrive by polling only, a second apart.
    let llamaparse = start_llamaparse(navigator_mock::llamaparse::Knobs {
        undelivered_rate: 1.0,
        latency_ms: 1500,
        ..Default::default()
    })
    .await;
    let app = spawn_remote_app(Remote {
        port: support::free_port(),
        openai: &openai.base_url(),
        llamaparse: Some(&llamaparse.url()),
        openai_extra: "",
        llamaparse_extra: "    poll_interval_secs: 1\n",
        extra: "usage:\n  budgets:\n    recheck_secs: 3600\n",
        retry_max_attempts: 3,
    })
    .await;
    let first = upload_markdown(&app, 1).await;
    let first_id = first["job_id"].as_str().unwrap();
    let waiting = wait_for_status(&app, first_id, "waiting").await;
    assert!(
        waiting["error"].is_null(),
        "waiting on the parser, not the budget: {waiting}"
    );
    // The budget is spent (zero) while the parse is in flight.
    let response = app
        .http
        .put(app.url("/v1/budgets/local"))
        .json(&json!({"hard_usd": 0.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let second = upload_markdown(&app, 2).await;
    let held = wait_for_status(&app, second["job_id"].as_str().unwrap(), "waiting").await;
    assert_eq!(held["error"]["code"], "budget_exceeded", "{held}");
    let done = app.wait_for_job(first_id).await;
    assert_eq!(
        done["status"], "complete",
        "the paid-for parse finishes: {done}"
    );
    assert!(llamaparse.stats().job_polls > 0);
    assert_eq!(
        llamaparse.stats().uploads,
        1,
        "the held document was never sent"
    );
    app.stop().await;
    openai.stop().await.unwrap();
    llamaparse.stop().await.unwrap();
}
