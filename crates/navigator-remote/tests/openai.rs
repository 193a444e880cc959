//! The OpenAI-compatible embedder against a scripted in-process server.

mod common;

use common::{MockServer, Recorded, Reply};
use navigator_domain::ErrorCode;
use navigator_embed::{EmbedError, Embedder, TokenCounter};
use navigator_remote::openai::{EstimatingTokenCounter, OpenAiEmbedder, OpenAiSettings, wire};
use navigator_remote::resilience::ResilienceSettings;
use std::sync::Arc;
use std::time::Duration;

const DIMS: usize = 3;

fn fast_resilience() -> ResilienceSettings {
    ResilienceSettings {
        request_timeout: Duration::from_secs(5),
        max_attempts: 4,
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(20),
        ..ResilienceSettings::default()
    }
}

fn settings(server: &MockServer) -> OpenAiSettings {
    OpenAiSettings {
        base_url: format!("{}/v1/", server.url),
        model: "test-embed".into(),
        api_key: Some("sk-test-key".into()),
        dimensions: DIMS,
        resilience: fast_resilience(),
        ..OpenAiSettings::default()
    }
}

fn embedder(settings: OpenAiSettings) -> OpenAiEmbedder {
    let counter = Arc::new(EstimatingTokenCounter {
        max_input_tokens: 8191,
    });
    OpenAiEmbedder::new(settings, counter).unwrap()
}

fn request_of(recorded: &Recorded) -> wire::EmbeddingRequest {
    serde_json::from_slice(&recorded.body).unwrap()
}

/// Texts are `t{n}`; the answer for `t{n}` is the vector `[n + 1, 0, 0]`, so order is checkable.
fn echo(recorded: &Recorded) -> Reply {
    let request = request_of(recorded);
    let data: Vec<wire::EmbeddingData> = request
        .input
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let n: f32 = text[1..].parse().unwrap();
            wire::EmbeddingData {
                object: "embedding".into(),
                index,
                embedding: vec![n + 1.0, 0.0, 0.0],
            }
        })
        .collect();
    let response = wire::EmbeddingResponse {
        object: "list".into(),
        data,
        model: request.model,
        usage: Some(wire::Usage {
            prompt_tokens: 7 * request.input.len() as u64,
            total_tokens: 7 * request.input.len() as u64,
        }),
    };
    Reply::json(200, serde_json::to_vec(&response).unwrap())
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("t{i}")).collect()
}

fn assert_echoed(vectors: &[Vec<f32>], n: usize) {
    assert_eq!(vectors.len(), n);
    for (i, v) in vectors.iter().enumerate() {
        // [i + 1, 0, 0] normalised is [1, 0, 0]; check the order through the request log
        // instead, and here that every vector is unit length.
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "vector {i} norm {norm}");
    }
}

#[tokio::test]
async fn embeds_in_order_with_auth_and_reports_provider_usage() {
    let server = MockServer::start(|r| {
        // Distinct directions so the order is visible after normalisation.
        let request = request_of(r);
        let data: Vec<_> = (0..request.input.len())
            .map(|index| {
                let mut embedding = vec![0.0; DIMS];
                embedding[index % DIMS] = 2.0;
                wire::EmbeddingData {
                    object: "embedding".into(),
                    index,
                    embedding,
                }
            })
            .collect();
        let body = serde_json::json!({"object": "list", "data": data, "model": "m",
            "usage": {"prompt_tokens": 11, "total_tokens": 11}});
        Reply::json(200, body.to_string())
    })
    .await;
    let embedder = embedder(settings(&server));
    assert_eq!(embedder.model_id(), "openai/test-embed/3");
    assert_eq!(embedder.dimensions(), DIMS);
    let embedded = embedder.embed_metered(&texts(3)).await.unwrap();
    assert_eq!(
        embedded.vectors,
        vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0]
        ]
    );
    assert_eq!(embedded.usage.tokens, 11);
    assert_eq!(embedded.usage.requests, 1);
    assert_eq!(embedded.usage.retries, 0);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/embeddings");
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("Bearer sk-test-key")
    );
    assert_eq!(
        requests[0].content_type.as_deref(),
        Some("application/json")
    );
    let sent = request_of(&requests[0]);
    assert_eq!(sent.model, "test-embed");
    assert_eq!(sent.input, texts(3));
    assert_eq!(sent.encoding_format, "float");
    assert_eq!(sent.dimensions, None, "dimensions are sent only when asked");
}

#[tokio::test]
async fn dimensions_are_sent_when_configured_and_usage_falls_back_to_the_counter() {
    let server = MockServer::start(|r| {
        let request = request_of(r);
        let data: Vec<_> = (0..request.input.len())
            .map(|index| serde_json::json!({"index": index, "embedding": [3.0, 4.0, 0.0]}))
            .collect();
        Reply::json(200, serde_json::json!({"data": data}).to_string())
    })
    .await;
    let embedder = embedder(OpenAiSettings {
        send_dimensions: true,
        api_key: None,
        ..settings(&server)
    });
    let input = texts(2);
    let embedded = embedder.embed_metered(&input).await.unwrap();
    assert_eq!(embedded.vectors[0], vec![0.6, 0.8, 0.0]);
    let counted: usize = input.iter().map(|t| embedder.count_tokens(t)).sum();
    assert_eq!(embedded.usage.tokens, counted as u64);
    let requests = server.requests();
    assert_eq!(request_of(&requests[0]).dimensions, Some(DIMS as u32));
    assert_eq!(requests[0].authorization, None);
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_once_and_vectors_stay_in_order() {
    let server = MockServer::start(echo).await;
    server.enqueue(
        Reply::json(
            429,
            r#"{"error":{"message":"slow down","type":"rate_limit"}}"#,
        )
        .header("retry-after", "0"),
    );
    let embedder = embedder(settings(&server));
    let embedded = embedder.embed_metered(&texts(5)).await.unwrap();
    assert_echoed(&embedded.vectors, 5);
    assert_eq!(embedded.usage.requests, 2);
    assert_eq!(embedded.usage.retries, 1);
    assert_eq!(embedded.usage.tokens, 35);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        request_of(&requests[1]).input,
        texts(5),
        "the same batch is resent"
    );
}

#[tokio::test]
async fn retry_after_ms_is_honoured_too() {
    let server = MockServer::start(echo).await;
    server.enqueue(Reply::json(503, "{}").header("retry-after-ms", "5"));
    server.enqueue(Reply::json(502, "{}"));
    let embedded = embedder(settings(&server))
        .embed_metered(&texts(2))
        .await
        .unwrap();
    assert_eq!(embedded.usage.requests, 3);
    assert_eq!(embedded.usage.retries, 2);
}

#[tokio::test]
async fn persistent_5xx_opens_the_breaker_then_a_probe_closes_it() {
    let server = MockServer::start(|_| Reply::json(500, "{}")).await;
    let embedder = embedder(OpenAiSettings {
        resilience: ResilienceSettings {
            max_attempts: 1,
            breaker_threshold: 3,
            breaker_open_for: Duration::from_millis(300),
            ..fast_resilience()
        },
        ..settings(&server)
    });
    for _ in 0..3 {
        let err = embedder.embed(&texts(1)).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::UpstreamUnavailable, "{err}");
    }
    assert_eq!(server.request_count(), 3);
    for _ in 0..5 {
        let err = embedder.embed(&texts(1)).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::CircuitOpen);
    }
    assert_eq!(server.request_count(), 3, "no request while open");

    tokio::time::sleep(Duration::from_millis(400)).await;
    server.set_responder(echo);
    let vectors = embedder.embed(&texts(2)).await.unwrap();
    assert_echoed(&vectors, 2);
    assert_eq!(server.request_count(), 4, "exactly one probe");
    embedder.embed(&texts(2)).await.unwrap();
    assert_eq!(server.request_count(), 5, "closed again");
}

#[tokio::test]
async fn retries_within_one_call_stop_when_the_breaker_opens() {
    let server = MockServer::start(|_| Reply::json(503, "{}")).await;
    let embedder = embedder(OpenAiSettings {
        resilience: ResilienceSettings {
            max_attempts: 10,
            breaker_threshold: 2,
            breaker_open_for: Duration::from_secs(60),
            ..fast_resilience()
        },
        ..settings(&server)
    });
    let err = embedder.embed(&texts(1)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::UpstreamUnavailable);
    assert_eq!(server.request_count(), 2);
    let err = embedder.embed(&texts(1)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::CircuitOpen);
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn contract_breaking_answers_are_bad_responses_and_never_vectors() {
    const MARKER: &str = "PRIVATE-DOCUMENT-TEXT";
    let cases: Vec<(&str, String)> = vec![
        ("malformed json", format!("{{\"data\": [{MARKER}")),
        (
            "wrong type echoing text",
            format!(r#"{{"data": "{MARKER}"}}"#),
        ),
        (
            "wrong count",
            r#"{"data":[{"index":0,"embedding":[1,0,0]}]}"#.into(),
        ),
        (
            "wrong dims",
            r#"{"data":[{"index":0,"embedding":[1,0]},{"index":1,"embedding":[1,0]}]}"#.into(),
        ),
        (
            "NaN",
            r#"{"data":[{"index":0,"embedding":[NaN,0,0]},{"index":1,"embedding":[1,0,0]}]}"#
                .into(),
        ),
        (
            "overflow to infinity",
            r#"{"data":[{"index":0,"embedding":[1e39,0,0]},{"index":1,"embedding":[1,0,0]}]}"#
                .into(),
        ),
        (
            "duplicate index",
            r#"{"data":[{"index":0,"embedding":[1,0,0]},{"index":0,"embedding":[1,0,0]}]}"#.into(),
        ),
        (
            "out of order",
            r#"{"data":[{"index":1,"embedding":[1,0,0]},{"index":0,"embedding":[1,0,0]}]}"#.into(),
        ),
        (
            "index out of range",
            r#"{"data":[{"index":0,"embedding":[1,0,0]},{"index":2,"embedding":[1,0,0]}]}"#.into(),
        ),
        (
            "zero vector",
            r#"{"data":[{"index":0,"embedding":[0,0,0]},{"index":1,"embedding":[1,0,0]}]}"#.into(),
        ),
    ];
    for (name, body) in cases {
        let server = MockServer::start(move |_| Reply::json(200, body.clone())).await;
        let embedder = embedder(OpenAiSettings {
            resilience: ResilienceSettings {
                max_attempts: 2,
                ..fast_resilience()
            },
            ..settings(&server)
        });
        let err = embedder.embed_metered(&texts(2)).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::UpstreamBadResponse, "{name}: {err}");
        let message = err.to_string();
        assert!(!message.contains(MARKER), "{name}: {message}");
        assert!(!message.contains("sk-test-key"), "{name}: {message}");
        assert!(!message.contains("127.0.0.1"), "{name}: {message}");
        assert_eq!(
            server.request_count(),
            2,
            "{name}: bad answers are retried up to max"
        );
    }
}

#[tokio::test]
async fn a_400_is_rejected_without_retry() {
    let server = MockServer::start(|_| {
        Reply::json(
            400,
            r#"{"error":{"message":"bad input PRIVATE","type":"invalid_request"}}"#,
        )
    })
    .await;
    let err = embedder(settings(&server))
        .embed(&texts(1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::UpstreamRejected);
    assert!(matches!(err, EmbedError::Upstream { .. }));
    assert!(err.to_string().contains("400"), "{err}");
    assert!(!err.to_string().contains("PRIVATE"), "{err}");
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn many_4xx_do_not_open_the_breaker() {
    let server = MockServer::start(|_| Reply::json(401, "{}")).await;
    let embedder = embedder(OpenAiSettings {
        resilience: ResilienceSettings {
            breaker_threshold: 2,
            ..fast_resilience()
        },
        ..settings(&server)
    });
    for _ in 0..5 {
        let err = embedder.embed(&texts(1)).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::UpstreamRejected);
    }
    assert_eq!(server.request_count(), 5);
}

#[tokio::test]
async fn a_slow_answer_times_out_as_unavailable() {
    let server = MockServer::start(|r| echo(r).delayed(Duration::from_secs(5))).await;
    let embedder = embedder(OpenAiSettings {
        resilience: ResilienceSettings {
            request_timeout: Duration::from_millis(50),
            max_attempts: 2,
            ..fast_resilience()
        },
        ..settings(&server)
    });
    let err = embedder.embed(&texts(1)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::UpstreamUnavailable);
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let counter = Arc::new(EstimatingTokenCounter {
        max_input_tokens: 100,
    });
    let embedder = OpenAiEmbedder::new(
        OpenAiSettings {
            base_url: url.clone(),
            dimensions: DIMS,
            resilience: ResilienceSettings {
                max_attempts: 2,
                ..fast_resilience()
            },
            ..OpenAiSettings::default()
        },
        counter,
    )
    .unwrap();
    let err = embedder.embed(&texts(1)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::UpstreamUnavailable);
    assert!(!err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn six_hundred_inputs_go_out_in_batches_of_at_most_256_in_order() {
    let server = MockServer::start(echo).await;
    let embedder = embedder(OpenAiSettings {
        max_batch_inputs: 10_000,
        max_batch_tokens: 1_000_000,
        ..settings(&server)
    });
    assert_eq!(embedder.batch_limits().max_inputs, 256);
    let input = texts(600);
    let embedded = embedder.embed_metered(&input).await.unwrap();
    assert_echoed(&embedded.vectors, 600);
    let requests = server.requests();
    let mut sizes: Vec<usize> = requests.iter().map(|r| request_of(r).input.len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![88, 256, 256]);
    // Every input sent exactly once, and each batch is a contiguous slice of the input.
    let mut sent: Vec<String> = requests.iter().flat_map(|r| request_of(r).input).collect();
    sent.sort_by_key(|t| t[1..].parse::<usize>().unwrap());
    assert_eq!(sent, input);
    assert_eq!(embedded.usage.requests, 3);
    assert_eq!(embedded.usage.tokens, 7 * 600);
}

#[tokio::test]
async fn batches_are_also_bounded_by_tokens_and_results_keep_input_order() {
    // Each answer encodes its batch's first input number in the vector's direction.
    let server = MockServer::start(|r| {
        let request = request_of(r);
        let data: Vec<_> = request
            .input
            .iter()
            .enumerate()
            .map(|(index, text)| {
                let n: f32 = text[1..].parse().unwrap();
                serde_json::json!({"index": index, "embedding": [1.0, n, 0.0]})
            })
            .collect();
        Reply::json(200, serde_json::json!({"data": data}).to_string())
    })
    .await;
    let embedder = embedder(OpenAiSettings {
        max_batch_tokens: 12, // "t5" counts ceil(2/3)+2 = 3 tokens: 4 inputs per batch
        ..settings(&server)
    });
    let input = texts(10);
    let vectors = embedder.embed(&input).await.unwrap();
    for (i, v) in vectors.iter().enumerate() {
        let expected = i as f32 / (1.0 + (i * i) as f32).sqrt();
        assert!((v[1] - expected).abs() < 1e-5, "vector {i} is {v:?}");
    }
    assert_eq!(server.request_count(), 3);
}

#[tokio::test]
async fn an_input_over_the_limit_is_refused_before_any_request() {
    let server = MockServer::start(echo).await;
    let embedder = embedder(OpenAiSettings {
        max_input_tokens: 10,
        ..settings(&server)
    });
    assert_eq!(embedder.max_input_tokens(), 10);
    let input = vec!["t1".to_string(), "x".repeat(100)];
    match embedder.embed(&input).await {
        Err(EmbedError::InputTooLong { index, limit, .. }) => {
            assert_eq!((index, limit), (1, 10));
        }
        other => panic!("expected InputTooLong, got {other:?}"),
    }
    assert_eq!(server.request_count(), 0);
    assert!(embedder.embed(&[]).await.unwrap().is_empty());
    assert_eq!(server.request_count(), 0);
}

#[test]
fn invalid_settings_are_refused_and_the_key_never_printed() {
    let counter = Arc::new(EstimatingTokenCounter {
        max_input_tokens: 100,
    });
    for bad in [
        OpenAiSettings {
            base_url: "ftp://x".into(),
            ..OpenAiSettings::default()
        },
        OpenAiSettings {
            base_url: "not a url".into(),
            ..OpenAiSettings::default()
        },
        OpenAiSettings {
            model: " ".into(),
            ..OpenAiSettings::default()
        },
        OpenAiSettings {
            dimensions: 0,
            ..OpenAiSettings::default()
        },
        OpenAiSettings {
            api_key: Some("bad\nkey".into()),
            ..OpenAiSettings::default()
        },
    ] {
        assert!(OpenAiEmbedder::new(bad, counter.clone()).is_err());
    }
    let with_key = OpenAiSettings {
        api_key: Some("sk-very-secret".into()),
        ..OpenAiSettings::default()
    };
    assert!(!format!("{with_key:?}").contains("sk-very-secret"));
    let embedder = OpenAiEmbedder::new(with_key, counter).unwrap();
    assert!(!format!("{embedder:?}").contains("sk-very-secret"));
    assert_eq!(embedder.model_id(), "openai/text-embedding-3-small/1536");
}

#[test]
fn the_estimating_counter_over_counts() {
    let counter = EstimatingTokenCounter {
        max_input_tokens: 8191,
    };
    assert_eq!(counter.count_tokens(""), 2);
    assert_eq!(counter.count_tokens("abcd"), 4);
    assert_eq!(counter.count_tokens("ééé"), 3);
    assert_eq!(counter.max_input_tokens(), 8191);
}

#[tokio::test]
async fn a_multi_batch_call_through_a_half_open_breaker_probes_first_then_fans_out() {
    let server = MockServer::start(|_| Reply::json(500, "{}")).await;
    let embedder = embedder(OpenAiSettings {
        resilience: ResilienceSettings {
            max_attempts: 1,
            breaker_threshold: 1,
            breaker_open_for: Duration::from_millis(200),
            ..fast_resilience()
        },
        ..settings(&server)
    });
    embedder.embed(&texts(1)).await.unwrap_err();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.set_responder(echo);
    let vectors = embedder.embed(&texts(600)).await.unwrap();
    assert_echoed(&vectors, 600);
    assert_eq!(server.request_count(), 4);
}
