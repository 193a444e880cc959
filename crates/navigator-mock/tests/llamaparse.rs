//! The mock LlamaParse API, driven over loopback HTTP, with a real webhook receiver.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use clap::Parser;
use navigator_mock::llamaparse::{self, Knobs, MockLlamaParse, Stats};
use navigator_remote::llamaparse::wire;
use navigator_remote::webhook;
use navigator_testkit::docs;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

const SECRET: &str = "per-job-secret-for-the-test";

async fn start(knobs: Knobs) -> MockLlamaParse {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    llamaparse::serve(listener, knobs)
        .await
        .expect("mock starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// One webhook as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: Option<String>,
    body: Bytes,
}

impl Received {
    fn verify(&self, secret: &str) -> Result<String, webhook::WebhookError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        webhook::verify(
            secret,
            webhook::Received {
                delivery_id: Some(&self.id),
                timestamp: Some(&self.timestamp),
                signature: self.signature.as_deref(),
            },
            &self.body,
            now,
        )
        .map(str::to_owned)
    }

    fn decoded(&self) -> wire::WebhookBody {
        serde_json::from_slice(&self.body).expect("webhook body is a WebhookBody")
    }
}

/// A tiny webhook receiver on loopback: every callback goes to the channel, answered 204.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    async fn hook(
        State(tx): State<mpsc::UnboundedSender<Received>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let _ = tx.send(Received {
            id: header(webhook::HEADER_ID).unwrap_or_default(),
            timestamp: header(webhook::HEADER_TIMESTAMP).unwrap_or_default(),
            signature: header(webhook::HEADER_SIGNATURE),
            body,
        });
        StatusCode::NO_CONTENT
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/v1/webhooks/parser/{job}", post(hook))
        .with_state(tx);
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1/webhooks/parser/job-1"), rx)
}

async fn upload(
    mock: &MockLlamaParse,
    file: Vec<u8>,
    webhook_url: Option<&str>,
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(file).file_name("document.pdf"),
        )
        .text("result_type", "markdown");
    if let Some(url) = webhook_url {
        form = form
            .text("webhook_url", url.to_owned())
            .text("webhook_secret", SECRET);
    }
    client()
        .post(format!("{}{}", mock.url(), wire::UPLOAD_PATH))
        .multipart(form)
        .send()
        .await
        .expect("answered")
}

async fn submit(mock: &MockLlamaParse, file: Vec<u8>, webhook_url: Option<&str>) -> String {
    let response = upload(mock, file, webhook_url).await;
    assert_eq!(response.status(), 200);
    let job: wire::Job = response.json().await.unwrap();
    assert_eq!(job.status, wire::STATUS_PENDING);
    job.id
}

async fn get_job(mock: &MockLlamaParse, id: &str) -> reqwest::Response {
    client()
        .get(format!(
            "{}{}",
            mock.url(),
            wire::JOB_PATH.replace("{id}", id)
        ))
        .send()
        .await
        .unwrap()
}

async fn get_result(mock: &MockLlamaParse, id: &str) -> reqwest::Response {
    client()
        .get(format!(
            "{}{}",
            mock.url(),
            wire::RESULT_PATH.replace("{id}", id)
        ))
        .send()
        .await
        .unwrap()
}

/// Polls until the job leaves PENDING.
async fn finished(mock: &MockLlamaParse, id: &str) -> wire::Job {
    for _ in 0..400 {
        let job: wire::Job = get_job(mock, id).await.json().await.unwrap();
        if job.status != wire::STATUS_PENDING {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {id} never finished");
}

async fn configure(mock: &MockLlamaParse, patch: Value) {
    let response = client()
        .post(format!("{}/_mock/config", mock.url()))
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{patch}");
}

async fn next_webhook(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a webhook arrives")
        .expect("receiver alive")
}

fn small_pdf() -> Vec<u8> {
    docs::pdf(&[
        "Page 1 opens with marker1.".to_owned(),
        "Page 2 opens with marker2.".to_owned(),
        "Page 3 opens with marker3.".to_owned(),
    ])
}

#[tokio::test]
async fn a_generated_pdf_round_trips_with_a_signed_webhook() {
    let (hook_url, mut hooks) = receiver().await;
    let mock = start(Knobs::default()).await;
    let id = submit(&mock, small_pdf(), Some(&hook_url)).await;

    let delivery = next_webhook(&mut hooks).await;
    assert_eq!(delivery.verify(SECRET), Ok(delivery.id.clone()));
    assert_eq!(
        delivery.verify("another-secret"),
        Err(webhook::WebhookError::Forged)
    );
    // The signature covers the delivery id: replaying it under a fresh id is forgery.
    let replayed = Received {
        id: format!("{}-replay", delivery.id),
        ..delivery.clone()
    };
    assert_eq!(replayed.verify(SECRET), Err(webhook::WebhookError::Forged));
    let body = delivery.decoded();
    assert_eq!(body.id, id);
    assert_eq!(body.status, wire::STATUS_SUCCESS);
    assert_eq!(body.pages.len(), 3);

    let job = finished(&mock, &id).await;
    assert_eq!(job.status, wire::STATUS_SUCCESS);
    assert_eq!(job.error_code, None);
    let result = get_result(&mock, &id).await;
    assert_eq!(result.status(), 200);
    let result: wire::JsonResult = result.json().await.unwrap();
    assert_eq!(result.pages.len(), 3);
    for (i, page) in result.pages.iter().enumerate() {
        let n = i + 1;
        assert_eq!(page.page as usize, n);
        assert!(
            page.md.contains(&format!("Page {n} opens with marker{n}.")),
            "{}",
            page.md
        );
        assert_eq!(page.md, body.pages[i].md);
    }

    // Let the delivery's accounting land, then check the counters.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats: Stats = client()
        .get(format!("{}/_mock/stats", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.uploads, 1);
    assert_eq!(stats.pages_parsed, 3);
    assert_eq!(stats.webhooks_sent, 1);
    assert_eq!(stats.webhook_responses_by_status["204"], 1);
    assert_eq!(stats.webhooks_skipped, 0);
    assert_eq!(stats.duplicates_sent, 0);
    assert_eq!(stats.jobs_by_status["SUCCESS"], 1);
    assert!(stats.job_polls >= 1);
    assert_eq!(stats.result_fetches, 1);
    assert!(hooks.try_recv().is_err(), "exactly one delivery");
    mock.stop().await.unwrap();
}

#[tokio::test]
async fn other_formats_parse_and_a_multi_page_pdf_keeps_its_pages() {
    let mock = start(Knobs::default()).await;
    let html = docs::html(
        "Policy",
        &[("Cover".to_owned(), "Fire damage is covered.".to_owned())],
    );
    let id = submit(&mock, html, None).await;
    assert_eq!(finished(&mock, &id).await.status, wire::STATUS_SUCCESS);
    let result: wire::JsonResult = get_result(&mock, &id).await.json().await.unwrap();
    assert!(result.pages[0].md.contains("Fire damage is covered."));

    let id = submit(&mock, docs::pdf(&docs::known_passage_pages()), None).await;
    assert_eq!(finished(&mock, &id).await.status, wire::STATUS_SUCCESS);
    let result: wire::JsonResult = get_result(&mock, &id).await.json().await.unwrap();
    assert_eq!(result.pages.len(), 5);
    assert_eq!(mock.stats().pages_parsed, 6);
    mock.stop().await.unwrap();
}

#[tokio::test]
async fn unparseable_documents_end_in_error_with_the_parse_error_code() {
    let (hook_url, mut hooks) = receiver().await;
    let mock = start(Knobs::default()).await;
    let cases = [
        (docs::corrupt_pdf(), "corrupt_document"),
        (docs::encrypted_pdf(), "encrypted_document"),
        (docs::pdf_without_text(2), "no_text_layer"),
        (
            vec![0x89, b'P', b'N', b'G', 0, 0, 0, 0],
            "unsupported_media_type",
        ),
    ];
    for (file, code) in cases {
        let id = submit(&mock, file, Some(&hook_url)).await;
        let job = finished(&mock, &id).await;
        assert_eq!(job.status, wire::STATUS_ERROR);
        assert_eq!(job.error_code.as_deref(), Some(code));
        assert_eq!(get_result(&mock, &id).await.status(), 400);
        let delivery = next_webhook(&mut hooks).await;
        assert!(delivery.verify(SECRET).is_ok());
        let body = delivery.decoded();
        assert_eq!(
            (body.status.as_str(), body.error_code.as_deref()),
            ("ERROR", Some(code))
        );
        assert!(body.pages.is_empty());
    }
    assert_eq!(get_job(&mock, "no-such-job").await.status(), 404);
    assert_eq!(get_result(&mock, "no-such-job").await.status(), 404);
    let stats = mock.stats();
    assert_eq!(stats.jobs_by_status["ERROR"], 4);
    assert_eq!(stats.pages_parsed, 0);
    mock.stop().await.unwrap();
}

#[tokio::test]
async fn a_job_stays_pending_for_the_latency_and_has_no_result_until_done() {
    let mock = start(Knobs {
        latency_ms: 400,
        ..Knobs::default()
    })
    .await;
    let id = submit(&mock, small_pdf(), None).await;
    let job: wire::Job = get_job(&mock, &id).await.json().await.unwrap();
    assert_eq!(job.status, wire::STATUS_PENDING);
    assert_eq!(get_result(&mock, &id).await.status(), 400);
    assert_eq!(mock.stats().jobs_by_status["PENDING"], 1);
    assert_eq!(finished(&mock, &id).await.status, wire::STATUS_SUCCESS);
    assert_eq!(get_result(&mock, &id).await.status(), 200);
    mock.stop().await.unwrap();
}

#[tokio::test]
async fn parse_error_rate_forces_error_at_one_and_never_at_zero() {
    let mock = start(Knobs {
        parse_error_rate: 1.0,
        ..Knobs::default()
    })
    .await;
    for _ in 0..3 {
        let id = submit(&mock, small_pdf(), None).await;
        let job = finished(&mock, &id).await;
        assert_eq!(job.status, wire::STATUS_ERROR);
        assert_eq!(
            job.error_code.as_deref(),
            Some(llamaparse::DEFAULT_PARSE_ERROR_CODE)
        );
    }
    configure(&mock, json!({"parse_error_rate": 0.0})).await;
    for _ in 0..3 {
        let id = submit(&mock, small_pdf(), None).await;
        assert_eq!(finished(&mock, &id).await.status, wire::STATUS_SUCCESS);
    }
    let stats = mock.stats();
    assert_eq!(stats.parse_errors_injected, 3);
    assert_eq!(stats.jobs_by_status["ERROR"], 3);
    assert_eq!(stats.jobs_by_status["SUCCESS"], 3);
    mock.stop().await.unwrap();
}

#[tokio::test]
async fn an_undelivered_webhook_leaves_the_result_to_polling() {
    let (hook_url, mut hooks) = receiver().await;
    let mock = start(Knobs {
        undelivered_rate: 1.0,
        ..Knobs::default()
    })
    .await;
    let id = submit(&mock, small_pdf(), Some(&hook_url)).await;
    assert_eq!(finished(&mock, &id).await.status, wire::STATUS_SUCCESS);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(hooks.try_recv().is_err(), "no webhook");
    let stats = mock.stats();
    assert_eq!(stats.webhooks_skipped, 1);
    assert_eq!(stats.webhooks_sent, 0);
    assert_eq!(get_result(&mock, &id).await.status(), 200);

    configure(&mock, json!({"undelivered_rate": 0.0})).await;
    let id = submit(&mock, small_pdf(), Some(&hook_url)).await;
    assert_eq!(next_webhook(&mut hooks).await.decoded().id, id);
    mock.stop().await.unwrap();
}

#[tokio::test]
async fn a_duplicated_webhook_is_the_same_signed_request_twice() {
    let (hook_url, mut hooks) = receiver().await;
    let mock = start(Knobs {
        duplicate_rate: 1.0,
        webhook_delay_ms: 200,
        ..Knobs::default()
    })
    .await;
    let id = submit(&mock, small_pdf(), Some(&hook_url)).await;
    assert_eq!(finished(&mock, &id).await.status, wire::STATUS_SUCCESS);
    let first = next_webhook(&mut hooks).await;
    let second = next_webhook(&mut hooks).await;
    assert_eq!(first.id, second.id, "same delivery id");
    assert_eq!(first.timestamp, second.timestamp);
    assert_eq!(first.signature, second.signature);
    assert_eq!(first.body, second.body);
    assert!(second.verify(SECRET).is_ok());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = mock.stats();
    assert_eq!(stats.webhooks_sent, 2);
    assert_eq!(stats.duplicates_sent, 1);
    assert_eq!(stats.webhook_responses_by_status["204"], 2);

    configure(&mock, json!({"duplicate_rate": 0.0, "webhook_delay_ms": 0})).await;
    let id = submit(&mock, small_pdf(), Some(&hook_url)).await;
    assert_eq!(next_webhook(&mut hooks).await.decoded().id, id);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(hooks.try_recv().is_err(), "no second copy");
    mock.stop().await.unwrap();
}

#[tokio::test]
async fn a_failed_delivery_is_recorded() {
    let mock = start(Knobs::default()).await;
    // Nothing listens there: bind a port and close it again.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let id = submit(&mock, small_pdf(), Some(&format!("http://{closed}/hook"))).await;
    assert_eq!(finished(&mock, &id).await.status, wire::STATUS_SUCCESS);
    for _ in 0..100 {
        if mock.stats().webhooks_sent == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mock.stats().webhook_responses_by_status["error"], 1);
    mock.stop().await.unwrap();
}

#[tokio::test]
async fn fail_and_rate_limit_knobs_hit_every_api_call_until_switched_off() {
    let mock = start(Knobs::default()).await;
    let healthy = submit(&mock, small_pdf(), None).await;
    finished(&mock, &healthy).await;

    configure(&mock, json!({"fail_rate": 1.0})).await;
    assert_eq!(upload(&mock, small_pdf(), None).await.status(), 500);
    assert_eq!(get_job(&mock, &healthy).await.status(), 500);
    assert_eq!(get_result(&mock, &healthy).await.status(), 500);

    configure(
        &mock,
        json!({"fail_rate": 0.0, "rate_limit_rate": 1.0, "retry_after_secs": 3}),
    )
    .await;
    for response in [
        upload(&mock, small_pdf(), None).await,
        get_job(&mock, &healthy).await,
        get_result(&mock, &healthy).await,
    ] {
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "3");
    }

    configure(&mock, json!({"rate_limit_rate": 0.0})).await;
    assert_eq!(get_result(&mock, &healthy).await.status(), 200);
    let stats = mock.stats();
    assert_eq!(stats.uploads, 1, "refused uploads create no job");
    assert_eq!(stats.errors_injected, 3);
    assert_eq!(stats.rate_limited_injected, 3);
    assert_eq!(stats.responses_by_status["500"], 3);
    assert_eq!(stats.responses_by_status["429"], 3);
    assert_eq!(stats.result_fetches, 3);
    mock.stop().await.unwrap();
}

#[tokio::test]
async fn the_api_key_and_the_upload_form_are_checked() {
    let mock = start(Knobs {
        api_key: Some("llx-test".to_owned()),
        ..Knobs::default()
    })
    .await;
    assert_eq!(upload(&mock, small_pdf(), None).await.status(), 401);
    let url = format!("{}{}", mock.url(), wire::UPLOAD_PATH);
    let form = || {
        reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(small_pdf()).file_name("document.pdf"),
            )
            .text("result_type", "markdown")
    };
    let ok = client()
        .post(&url)
        .bearer_auth("llx-test")
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let job: wire::Job = ok.json().await.unwrap();
    let unauthorised_poll = get_job(&mock, &job.id).await;
    assert_eq!(unauthorised_poll.status(), 401);

    let no_file = reqwest::multipart::Form::new().text("result_type", "markdown");
    let response = client()
        .post(&url)
        .bearer_auth("llx-test")
        .multipart(no_file)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let not_multipart = client()
        .post(&url)
        .bearer_auth("llx-test")
        .json(&json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(not_multipart.status(), 400);
    let bad_hook = client()
        .post(&url)
        .bearer_auth("llx-test")
        .multipart(form().text("webhook_url", "not a url"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_hook.status(), 400);
    mock.stop().await.unwrap();
}

#[tokio::test]
async fn reset_zeroes_counters_but_keeps_jobs_readable() {
    let mock = start(Knobs::default()).await;
    let id = submit(&mock, small_pdf(), None).await;
    finished(&mock, &id).await;
    let response = client()
        .post(format!("{}/_mock/reset", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let stats = mock.stats();
    assert_eq!(stats, Stats::default());
    assert_eq!(get_result(&mock, &id).await.status(), 200);
    let bad = client()
        .post(format!("{}/_mock/config", mock.url()))
        .json(&json!({"fail_rate": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(mock.knobs(), Knobs::default());
    mock.stop().await.unwrap();
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: llamaparse::Args,
}

#[test]
fn flags_parse_into_knobs_with_everything_off_by_default() {
    let defaults: Knobs = Cli::try_parse_from(["mock"]).unwrap().args.into();
    assert_eq!(defaults, Knobs::default());
    let knobs: Knobs = Cli::try_parse_from([
        "mock",
        "--undelivered-rate",
        "0.5",
        "--duplicate-rate",
        "0.25",
        "--webhook-delay-ms",
        "100",
        "--fail-rate",
        "0.1",
        "--parse-error-code",
        "parser_timeout",
    ])
    .unwrap()
    .args
    .into();
    assert_eq!(knobs.undelivered_rate, 0.5);
    assert_eq!(knobs.duplicate_rate, 0.25);
    assert_eq!(knobs.webhook_delay_ms, 100);
    assert_eq!(knobs.fail_rate, 0.1);
    assert_eq!(knobs.parse_error_code, "parser_timeout");
    assert!(Cli::try_parse_from(["mock", "--duplicate-rate", "1.5"]).is_err());
}

#[tokio::test]
async fn run_serves_until_its_shutdown_future_completes() {
    let args = Cli::try_parse_from(["mock"]).unwrap().args;
    let listen = "127.0.0.1:0".parse().unwrap();
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        llamaparse::run(args, listen, tokio::time::sleep(Duration::from_millis(100))),
    )
    .await
    .expect("stops promptly");
    outcome.expect("clean stop");
}
