//! The LlamaParse client against a scripted in-process server.

mod common;

use bytes::Bytes;
use common::{MockServer, Recorded, Reply};
use navigator_domain::{ErrorCode, MediaType};
use navigator_remote::llamaparse::{LlamaParseClient, LlamaParseSettings};
use navigator_remote::parser::{RemoteParse, RemoteParser, Submission, WebhookTarget};
use navigator_remote::resilience::{CallStats, RemoteError, ResilienceSettings};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn client(server: &MockServer) -> LlamaParseClient {
    LlamaParseClient::new(LlamaParseSettings {
        base_url: server.url.clone(),
        api_key: Some("llx-test-key".into()),
        resilience: ResilienceSettings {
            request_timeout: Duration::from_secs(5),
            backoff_base: Duration::from_millis(1),
            backoff_cap: Duration::from_millis(10),
            ..ResilienceSettings::default()
        },
    })
    .unwrap()
}

fn body_text(r: &Recorded) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// A job that is PENDING on the first poll and SUCCESS afterwards.
fn provider(polls: Arc<AtomicUsize>) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |r: &Recorded| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/api/v1/parsing/upload") => {
            Reply::json(200, r#"{"id":"job-42","status":"PENDING"}"#)
        }
        ("GET", "/api/v1/parsing/job/job-42") => {
            let status = if polls.fetch_add(1, Ordering::SeqCst) == 0 {
                "PENDING"
            } else {
                "SUCCESS"
            };
            Reply::json(200, format!(r#"{{"id":"job-42","status":"{status}"}}"#))
        }
        ("GET", "/api/v1/parsing/job/job-42/result/json") => Reply::json(
            200,
            r##"{"pages":[{"page":1,"md":"# Title  \n\n\n\nBody","text":"Title Body"},{"page":2,"md":"Second"}]}"##,
        ),
        _ => Reply::json(404, "{}"),
    }
}

#[tokio::test]
async fn upload_poll_and_result_round_trip() {
    let server = MockServer::start(provider(Arc::new(AtomicUsize::new(0)))).await;
    let client = client(&server);
    assert_eq!(client.name(), "llamaparse");
    let submitted = client
        .submit(Submission {
            bytes: Bytes::from_static(b"%PDF-1.7 fake"),
            media_type: MediaType::Pdf,
            webhook: Some(WebhookTarget {
                url: "https://navigator.example/v1/webhooks/parser/j1".into(),
                secret: "per-job-secret".into(),
            }),
        })
        .await
        .unwrap();
    assert_eq!(submitted.value, "job-42");
    assert_eq!(
        submitted.calls,
        CallStats {
            requests: 1,
            retries: 0
        }
    );

    let upload = &server.requests()[0];
    assert_eq!(upload.authorization.as_deref(), Some("Bearer llx-test-key"));
    assert!(
        upload
            .content_type
            .as_deref()
            .unwrap()
            .starts_with("multipart/form-data")
    );
    let form = body_text(upload);
    assert!(
        form.contains(r#"name="file"; filename="document.pdf""#),
        "{form}"
    );
    assert!(form.contains("Content-Type: application/pdf"), "{form}");
    assert!(form.contains("%PDF-1.7 fake"));
    assert!(
        form.contains("name=\"result_type\"\r\n\r\nmarkdown"),
        "{form}"
    );
    assert!(
        form.contains(
            "name=\"webhook_url\"\r\n\r\nhttps://navigator.example/v1/webhooks/parser/j1"
        )
    );
    assert!(form.contains("name=\"webhook_secret\"\r\n\r\nper-job-secret"));

    let first = client.poll("job-42").await.unwrap();
    assert_eq!(first.value, RemoteParse::Pending);
    assert_eq!(first.calls.requests, 1);

    let second = client.poll("job-42").await.unwrap();
    assert_eq!(second.calls.requests, 2, "job status, then the result");
    let RemoteParse::Done(pages) = second.value else {
        panic!("expected Done, got {:?}", second.value);
    };
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].number, 1);
    assert_eq!(
        pages[0].text,
        navigator_parse::normalize::normalize_markdown("# Title  \n\n\n\nBody")
    );
    assert_eq!(pages[1].number, 2);
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer llx-test-key"))
    );
}

#[tokio::test]
async fn without_a_webhook_no_webhook_fields_are_sent_and_names_follow_the_type() {
    let server = MockServer::start(provider(Arc::new(AtomicUsize::new(0)))).await;
    client(&server)
        .submit(Submission {
            bytes: Bytes::from_static(b"PK docx bytes"),
            media_type: MediaType::Docx,
            webhook: None,
        })
        .await
        .unwrap();
    let form = body_text(&server.requests()[0]);
    assert!(form.contains(r#"filename="document.docx""#), "{form}");
    assert!(form.contains(
        "Content-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    ));
    assert!(!form.contains("webhook_url"));
    assert!(!form.contains("webhook_secret"));
}

#[tokio::test]
async fn a_failed_job_is_failed_with_its_error_code_only() {
    let server = MockServer::start(|r: &Recorded| match r.path.as_str() {
        "/api/v1/parsing/job/job-7" => Reply::json(
            200,
            r#"{"id":"job-7","status":"ERROR","error_code":"UNSUPPORTED_FILE"}"#,
        ),
        "/api/v1/parsing/job/job-8" => Reply::json(200, r#"{"id":"job-8","status":"CANCELED"}"#),
        _ => Reply::json(404, "{}"),
    })
    .await;
    let client = client(&server);
    let failed = client.poll("job-7").await.unwrap();
    assert_eq!(failed.value, RemoteParse::Failed("UNSUPPORTED_FILE".into()));
    let canceled = client.poll("job-8").await.unwrap();
    assert_eq!(canceled.value, RemoteParse::Failed("CANCELED".into()));
    assert_eq!(
        server.request_count(),
        2,
        "no result fetch for a failed job"
    );
}

#[tokio::test]
async fn broken_results_are_bad_responses() {
    let server = MockServer::start(|r: &Recorded| match r.path.as_str() {
        "/api/v1/parsing/job/j1" => Reply::json(200, r#"{"id":"j1","status":"SUCCESS"}"#),
        "/api/v1/parsing/job/j1/result/json" => Reply::json(
            200,
            r#"{"pages":[{"page":2,"md":"a"},{"page":1,"md":"b"}]}"#,
        ),
        "/api/v1/parsing/job/j2" => Reply::json(200, r#"{"id":"other","status":"PENDING"}"#),
        "/api/v1/parsing/job/j3" => Reply::json(200, r#"{"id":"j3","status":"EXPLODED"}"#),
        _ => Reply::json(404, "{}"),
    })
    .await;
    let client = LlamaParseClient::new(LlamaParseSettings {
        base_url: server.url.clone(),
        api_key: None,
        resilience: ResilienceSettings {
            max_attempts: 1,
            ..ResilienceSettings::default()
        },
    })
    .unwrap();
    for id in ["j1", "j2", "j3", "../etc"] {
        let err = client.poll(id).await.unwrap_err();
        assert!(matches!(err, RemoteError::BadResponse(_)), "{id}: {err:?}");
        assert_eq!(err.code(), ErrorCode::UpstreamBadResponse);
    }
    let err = client.poll("missing").await.unwrap_err();
    assert_eq!(err, RemoteError::Rejected { status: 404 });
}

fn text_submission() -> Submission {
    Submission {
        bytes: Bytes::from_static(b"hello"),
        media_type: MediaType::Text,
        webhook: None,
    }
}

fn uploads(server: &MockServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v1/parsing/upload")
        .count()
}

/// The upload creates (and bills) a provider job: when the provider may have created one, it is
/// attempted once and the call fails.
#[tokio::test]
async fn an_upload_that_may_have_created_a_job_is_never_retried() {
    let cases: [(&str, Reply, ErrorCode); 4] = [
        (
            "500",
            Reply::json(500, "{}"),
            ErrorCode::UpstreamUnavailable,
        ),
        (
            "503 with a short retry-after",
            Reply::json(503, "{}").header("retry-after", "0"),
            ErrorCode::UpstreamUnavailable,
        ),
        (
            "2xx that fails validation",
            Reply::json(200, r#"{"id":"../x","status":"PENDING"}"#),
            ErrorCode::UpstreamBadResponse,
        ),
        (
            "timeout",
            Reply::json(200, r#"{"id":"job-42","status":"PENDING"}"#)
                .delayed(Duration::from_millis(600)),
            ErrorCode::UpstreamUnavailable,
        ),
    ];
    for (name, reply, code) in cases {
        let server = MockServer::start(provider(Arc::new(AtomicUsize::new(0)))).await;
        server.enqueue(reply);
        let client = LlamaParseClient::new(LlamaParseSettings {
            base_url: server.url.clone(),
            api_key: None,
            resilience: ResilienceSettings {
                request_timeout: Duration::from_millis(200),
                backoff_base: Duration::from_millis(1),
                backoff_cap: Duration::from_millis(10),
                ..ResilienceSettings::default()
            },
        })
        .unwrap();
        let err = client.submit(text_submission()).await.unwrap_err();
        assert_eq!(err.code(), code, "{name}: {err:?}");
        assert_eq!(uploads(&server), 1, "{name}: attempted once");
    }
}

#[tokio::test]
async fn a_rate_limited_upload_is_retried_after_its_retry_after() {
    let server = MockServer::start(provider(Arc::new(AtomicUsize::new(0)))).await;
    server.enqueue(Reply::json(429, "{}").header("retry-after-ms", "50"));
    let started = std::time::Instant::now();
    let submitted = client(&server).submit(text_submission()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "the Retry-After is honoured"
    );
    assert_eq!(submitted.value, "job-42");
    assert_eq!(
        submitted.calls,
        CallStats {
            requests: 2,
            retries: 1
        }
    );
    let requests = server.requests();
    assert!(body_text(&requests[1]).contains(r#"filename="document.txt""#));
    assert!(
        body_text(&requests[1]).contains("hello"),
        "the file is resent whole"
    );
}

#[tokio::test]
async fn polls_and_result_fetches_keep_retrying_transient_failures() {
    let server = MockServer::start(provider(Arc::new(AtomicUsize::new(1)))).await;
    server.enqueue(Reply::json(502, "{}"));
    server.enqueue(
        Reply::json(200, r#"{"id":"job-42","status":"PENDING"}"#)
            .delayed(Duration::from_millis(600)),
    );
    server.enqueue(Reply::json(200, r#"{"id":"job-42","status":"SUCCESS"}"#));
    server.enqueue(Reply::json(500, "{}"));
    let client = LlamaParseClient::new(LlamaParseSettings {
        base_url: server.url.clone(),
        api_key: None,
        resilience: ResilienceSettings {
            request_timeout: Duration::from_millis(200),
            backoff_base: Duration::from_millis(1),
            backoff_cap: Duration::from_millis(10),
            ..ResilienceSettings::default()
        },
    })
    .unwrap();
    let polled = client.poll("job-42").await.unwrap();
    assert!(matches!(polled.value, RemoteParse::Done(ref p) if p.len() == 2));
    assert_eq!(
        polled.calls,
        CallStats {
            requests: 5,
            retries: 3
        },
        "502, timeout, SUCCESS; then 500, result"
    );
}
