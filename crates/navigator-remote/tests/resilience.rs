//! `Resilience::call` itself against a scripted in-process server: retry policy per
//! idempotency, 429 as backpressure, and Retry-After beyond the backoff cap.

mod common;

use common::{MockServer, Reply};
use navigator_remote::resilience::{
    BreakerState, Idempotency, RemoteError, Resilience, ResilienceSettings,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn fast(settings: ResilienceSettings) -> ResilienceSettings {
    ResilienceSettings {
        request_timeout: Duration::from_secs(5),
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(10),
        ..settings
    }
}

/// One logical call POSTing to `url`; returns the result and how many requests were built.
async fn post(
    resilience: &Resilience,
    idempotency: Idempotency,
    url: &str,
) -> (Result<String, RemoteError>, usize) {
    let http = reqwest::Client::new();
    let built = AtomicUsize::new(0);
    let result = resilience
        .call(
            "test",
            idempotency,
            0,
            1024,
            || {
                built.fetch_add(1, Ordering::SeqCst);
                http.post(url).body("payload")
            },
            |body| Ok(String::from_utf8_lossy(body).into_owned()),
        )
        .await
        .map(|(value, _)| value);
    (result, built.into_inner())
}

#[tokio::test]
async fn a_connect_error_is_retried_even_for_a_call_that_creates_a_resource() {
    // A port nothing listens on: connection refused, nothing sent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/create", listener.local_addr().unwrap());
    drop(listener);
    let resilience = Resilience::new(
        "test",
        &fast(ResilienceSettings {
            max_attempts: 3,
            ..ResilienceSettings::default()
        }),
    );
    let (result, built) = post(&resilience, Idempotency::CreatesResource, &url).await;
    assert_eq!(
        result.unwrap_err(),
        RemoteError::Unavailable("connect error".into())
    );
    assert_eq!(built, 3, "every attempt was certainly unprocessed");
}

#[tokio::test]
async fn only_unprocessed_failures_are_retried_when_the_call_creates_a_resource() {
    let server = MockServer::start(|_| Reply::json(200, "created")).await;
    let resilience = Resilience::new("test", &fast(ResilienceSettings::default()));
    let url = format!("{}/create", server.url);

    server.enqueue(Reply::json(500, "{}"));
    let (result, built) = post(&resilience, Idempotency::CreatesResource, &url).await;
    assert_eq!(
        result.unwrap_err(),
        RemoteError::Unavailable("status 500".into())
    );
    assert_eq!((built, server.request_count()), (1, 1));

    server.enqueue(Reply::json(429, "{}").header("retry-after", "0"));
    let (result, built) = post(&resilience, Idempotency::CreatesResource, &url).await;
    assert_eq!(result.unwrap(), "created");
    assert_eq!((built, server.request_count()), (2, 3));

    // The same 500 on an idempotent call is retried.
    server.enqueue(Reply::json(500, "{}"));
    let (result, built) = post(&resilience, Idempotency::Idempotent, &url).await;
    assert_eq!(result.unwrap(), "created");
    assert_eq!((built, server.request_count()), (2, 5));
}

#[tokio::test]
async fn a_run_of_429s_never_opens_the_breaker_but_still_shrinks_concurrency() {
    let server = MockServer::start(|_| Reply::json(200, "ok")).await;
    for _ in 0..10 {
        server.enqueue(Reply::json(429, "{}").header("retry-after", "0"));
    }
    let resilience = Resilience::new(
        "test",
        &fast(ResilienceSettings {
            max_attempts: 11,
            breaker_threshold: 5,
            breaker_open_for: Duration::from_secs(60),
            ..ResilienceSettings::default()
        }),
    );
    let initial = resilience.limiter().limit();
    let (result, built) = post(
        &resilience,
        Idempotency::Idempotent,
        &format!("{}/x", server.url),
    )
    .await;
    assert_eq!(result.unwrap(), "ok", "ten 429s, then the 200");
    assert_eq!(built, 11);
    assert_eq!(resilience.breaker().state(), BreakerState::Closed);
    assert!(
        resilience.limiter().limit() < initial,
        "429s still drive the AIMD decrease"
    );

    // And the streak of real failures is not reset by 429s in between.
    let resilience = Resilience::new(
        "test",
        &fast(ResilienceSettings {
            max_attempts: 1,
            breaker_threshold: 2,
            breaker_open_for: Duration::from_secs(60),
            ..ResilienceSettings::default()
        }),
    );
    let url = format!("{}/x", server.url);
    server.enqueue(Reply::json(500, "{}"));
    server.enqueue(Reply::json(429, "{}"));
    server.enqueue(Reply::json(500, "{}"));
    for _ in 0..3 {
        let _ = post(&resilience, Idempotency::Idempotent, &url).await;
    }
    assert_eq!(resilience.breaker().state(), BreakerState::Open);
}

#[tokio::test]
async fn a_retry_after_over_the_backoff_cap_is_honoured_up_to_max_retry_after() {
    let server = MockServer::start(|_| Reply::json(200, "ok")).await;
    server.enqueue(Reply::json(429, "{}").header("retry-after-ms", "300"));
    let resilience = Resilience::new(
        "test",
        &fast(ResilienceSettings {
            max_retry_after: Duration::from_secs(1),
            ..ResilienceSettings::default()
        }),
    );
    let started = Instant::now();
    let (result, built) = post(
        &resilience,
        Idempotency::Idempotent,
        &format!("{}/x", server.url),
    )
    .await;
    assert_eq!(result.unwrap(), "ok");
    assert_eq!(built, 2);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited the provider's 300 ms, not the 10 ms backoff cap: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_retry_after_over_max_retry_after_ends_the_call_for_the_caller_to_reschedule() {
    let server = MockServer::start(|_| Reply::json(200, "ok")).await;
    let url = format!("{}/x", server.url);
    for reply in [
        Reply::json(429, "{}").header("retry-after", "5"),
        Reply::json(503, "{}").header("retry-after", "5"),
    ] {
        // A fresh client each time: the 429 also pauses its client (for at most
        // max_retry_after).
        let resilience = Resilience::new(
            "test",
            &fast(ResilienceSettings {
                max_retry_after: Duration::from_secs(1),
                ..ResilienceSettings::default()
            }),
        );
        let before = server.request_count();
        server.enqueue(reply);
        let started = Instant::now();
        let (result, built) = post(&resilience, Idempotency::Idempotent, &url).await;
        assert_eq!(
            result.unwrap_err(),
            RemoteError::RateLimited {
                retry_after: Some(Duration::from_secs(5))
            }
        );
        assert_eq!(built, 1, "no in-call retry");
        assert_eq!(server.request_count(), before + 1);
        assert!(started.elapsed() < Duration::from_millis(500));
    }
}
