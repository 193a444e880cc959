//! The mock OpenAI embeddings API, driven over loopback HTTP.

use clap::Parser;
use navigator_embed::HashEmbedder;
use navigator_mock::openai::{self, Knobs, MockOpenAi, Stats};
use navigator_remote::openai::wire;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

async fn start(knobs: Knobs) -> MockOpenAi {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    openai::serve(listener, knobs).await.expect("mock starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

async fn post_embeddings(mock: &MockOpenAi, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/embeddings", mock.base_url()))
        .json(&body)
        .send()
        .await
        .expect("answered")
}

fn request(texts: &[&str]) -> Value {
    json!({"model": "text-embedding-3-small", "input": texts, "encoding_format": "float"})
}

/// Embeds `texts` and insists on a valid answer.
async fn embed(mock: &MockOpenAi, body: Value) -> wire::EmbeddingResponse {
    let response = post_embeddings(mock, body).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("valid embeddings JSON")
}

async fn configure(mock: &MockOpenAi, patch: Value) -> reqwest::Response {
    client()
        .post(format!("{}/_mock/config", mock.url()))
        .json(&patch)
        .send()
        .await
        .expect("answered")
}

async fn fetch_stats(mock: &MockOpenAi) -> Stats {
    let stats: Stats = client()
        .get(format!("{}/_mock/stats", mock.url()))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("stats JSON");
    assert_eq!(stats, mock.stats());
    stats
}

fn norm(vector: &[f32]) -> f32 {
    vector.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn by_index(answer: &wire::EmbeddingResponse) -> Vec<Vec<f32>> {
    let mut data = answer.data.clone();
    data.sort_by_key(|d| d.index);
    data.into_iter().map(|d| d.embedding).collect()
}

/// What a strict client accepts: one finite vector of `dimensions` per input, indexes a
/// permutation of 0..n.
fn is_valid(answer: &wire::EmbeddingResponse, inputs: usize, dimensions: usize) -> bool {
    let mut indexes: Vec<usize> = answer.data.iter().map(|d| d.index).collect();
    indexes.sort_unstable();
    answer.data.len() == inputs
        && indexes == (0..inputs).collect::<Vec<_>>()
        && answer
            .data
            .iter()
            .all(|d| d.embedding.len() == dimensions && d.embedding.iter().all(|x| x.is_finite()))
}

#[tokio::test]
async fn vectors_depend_on_the_text_alone_and_are_unit_length() {
    let mock = start(Knobs::default()).await;
    let first = embed(
        &mock,
        request(&["fire damage to the premises", "flood cover"]),
    )
    .await;
    let second = embed(
        &mock,
        request(&[
            "unrelated words",
            "flood cover",
            "fire damage to the premises",
        ]),
    )
    .await;
    let (first, second) = (by_index(&first), by_index(&second));
    assert_eq!(first[0], second[2], "same text, other batch position");
    assert_eq!(first[1], second[1]);
    assert_ne!(first[0], first[1]);
    for vector in first.iter().chain(&second) {
        assert_eq!(vector.len(), openai::DEFAULT_DIMENSIONS);
        assert!((norm(vector) - 1.0).abs() < 1e-5);
    }
    assert_eq!(
        first[0],
        HashEmbedder::embedding_with_dimensions("fire damage to the premises", 1536)
    );

    // A single string is one input.
    let single = embed(
        &mock,
        json!({"model": "m", "input": "flood cover", "encoding_format": "float"}),
    )
    .await;
    assert_eq!(single.data.len(), 1);
    assert_eq!(single.data[0].embedding, first[1]);
    assert_eq!(single.object, "list");
    assert_eq!(single.model, "m");
    mock.stop().await.expect("stops");
}

#[tokio::test]
async fn dimensions_come_from_the_request_or_the_flag() {
    let mock = start(Knobs {
        dimensions: 64,
        ..Knobs::default()
    })
    .await;
    let answer = embed(&mock, request(&["a b c"])).await;
    assert_eq!(answer.data[0].embedding.len(), 64);

    let mut body = request(&["The cat sits on the mat."]);
    body["dimensions"] = json!(384);
    let answer = embed(&mock, body).await;
    assert_eq!(
        answer.data[0].embedding,
        HashEmbedder.embed_one("The cat sits on the mat."),
        "384 dimensions are the test embedder's vectors, bit for bit"
    );

    for bad in [json!(0), json!(openai::MAX_DIMENSIONS + 1), json!("x")] {
        let mut body = request(&["a"]);
        body["dimensions"] = bad;
        assert_eq!(post_embeddings(&mock, body).await.status(), 400);
    }
    mock.stop().await.expect("stops");
}

#[tokio::test]
async fn invalid_requests_get_openai_style_400s() {
    let mock = start(Knobs::default()).await;
    let too_many: Vec<String> = (0..=openai::MAX_INPUTS).map(|i| format!("t{i}")).collect();
    let cases = [
        request(&[]),
        json!({"model": "m", "input": too_many}),
        request(&["ok", ""]),
        json!({"input": ["no model"]}),
        json!({"model": "m", "input": [1, 2, 3]}),
        json!({"model": "m", "input": ["a"], "encoding_format": "base64"}),
        json!("not an object"),
    ];
    for body in cases {
        let response = post_embeddings(&mock, body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: wire::ErrorBody = response.json().await.expect("OpenAI error body");
        assert_eq!(error.error.kind, "invalid_request_error");
        assert!(!error.error.message.is_empty());
    }
    // Exactly the limit is fine.
    let at_limit: Vec<String> = (0..openai::MAX_INPUTS).map(|i| format!("t{i}")).collect();
    let answer = embed(
        &mock,
        json!({"model": "m", "input": at_limit, "dimensions": 8}),
    )
    .await;
    assert_eq!(answer.data.len(), openai::MAX_INPUTS);
    let stats = fetch_stats(&mock).await;
    assert_eq!(stats.responses_by_status["400"], 7);
    assert_eq!(stats.inputs_embedded, openai::MAX_INPUTS as u64);
    mock.stop().await.expect("stops");
}

#[tokio::test]
async fn the_api_key_is_enforced_when_set() {
    let mock = start(Knobs {
        api_key: Some("sk-test".to_owned()),
        ..Knobs::default()
    })
    .await;
    let url = format!("{}/embeddings", mock.base_url());
    let missing = client()
        .post(&url)
        .json(&request(&["a"]))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    let error: wire::ErrorBody = missing.json().await.unwrap();
    assert_eq!(error.error.code.as_deref(), Some("invalid_api_key"));
    let wrong = client()
        .post(&url)
        .bearer_auth("sk-other")
        .json(&request(&["a"]))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = client()
        .post(&url)
        .bearer_auth("sk-test")
        .json(&request(&["a"]))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    let models = client()
        .get(format!("{}/models", mock.base_url()))
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    // The key is never shown back.
    let knobs: Value = client()
        .get(format!("{}/_mock/config", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(knobs["api_key"], json!("sk-test"));
    mock.stop().await.expect("stops");
}

#[tokio::test]
async fn usage_counts_words_and_every_answer_carries_rate_limit_headers() {
    let mock = start(Knobs::default()).await;
    let response = post_embeddings(&mock, request(&["one two three", "four"])).await;
    let headers = response.headers().clone();
    let answer: wire::EmbeddingResponse = response.json().await.unwrap();
    let usage = answer.usage.expect("usage");
    assert_eq!(usage.prompt_tokens, 3 + 1 + 1 + 1);
    assert_eq!(usage.total_tokens, usage.prompt_tokens);
    for name in [
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ] {
        assert!(headers.contains_key(name), "{name} missing");
    }
    let remaining: u64 = headers["x-ratelimit-remaining-requests"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(remaining, openai::NOMINAL_RPM - 1);
    let bad = post_embeddings(&mock, request(&[])).await;
    assert!(bad.headers().contains_key("x-ratelimit-remaining-tokens"));
    mock.stop().await.expect("stops");
}

#[tokio::test]
async fn the_real_limiter_refuses_requests_beyond_the_minute_with_the_real_wait() {
    let mock = start(Knobs {
        rpm_limit: 3,
        ..Knobs::default()
    })
    .await;
    for left in (0..3).rev() {
        let response = post_embeddings(&mock, request(&["a"])).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["x-ratelimit-remaining-requests"],
            left.to_string().as_str()
        );
    }
    let refused = post_embeddings(&mock, request(&["a"])).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let retry_after_ms: u64 = refused.headers()["retry-after-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((58..=60).contains(&retry_after), "{retry_after}");
    assert!(
        (58_000..=60_000).contains(&retry_after_ms),
        "{retry_after_ms}"
    );
    let stats = fetch_stats(&mock).await;
    assert_eq!(stats.rate_limited_by_limiter, 1);
    assert_eq!(stats.successes, 3);

    // Lifting the limit at runtime takes effect at once.
    assert_eq!(
        configure(&mock, json!({"rpm_limit": 0})).await.status(),
        200
    );
    assert_eq!(post_embeddings(&mock, request(&["a"])).await.status(), 200);
    mock.stop().await.expect("stops");
}

/// One fault kind at rate 1.0 and how to recognise it in an answer to three inputs.
async fn assert_fault(
    mock: &MockOpenAi,
    patch: Value,
    check: impl Fn(u16, &str, &reqwest::header::HeaderMap),
) {
    assert_eq!(
        configure(mock, patch.clone()).await.status(),
        200,
        "{patch}"
    );
    for _ in 0..5 {
        let response =
            post_embeddings(mock, request(&["alpha beta", "gamma", "delta epsilon"])).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        check(status, &body, &headers);
    }
}

#[tokio::test]
async fn each_fault_appears_at_rate_one_and_never_at_zero() {
    let mock = start(Knobs {
        dimensions: 32,
        retry_after_secs: 7,
        ..Knobs::default()
    })
    .await;
    let parse = |body: &str| serde_json::from_str::<wire::EmbeddingResponse>(body);

    // All rates at zero: every answer is valid.
    for _ in 0..20 {
        let answer = embed(&mock, request(&["alpha beta", "gamma", "delta epsilon"])).await;
        assert!(is_valid(&answer, 3, 32));
    }

    assert_fault(
        &mock,
        json!({"error_rates": {"503": 1.0}}),
        |status, body, _| {
            assert_eq!(status, 503);
            let error: wire::ErrorBody = serde_json::from_str(body).unwrap();
            assert_eq!(error.error.kind, "server_error");
        },
    )
    .await;
    assert_fault(
        &mock,
        json!({"error_rates": {"500": 1.0}}),
        |status, _, _| assert_eq!(status, 500),
    )
    .await;
    assert_fault(
        &mock,
        json!({"error_rates": {}, "rate_limit_rate": 1.0}),
        |status, _, headers| {
            assert_eq!(status, 429);
            assert_eq!(headers["retry-after"], "7");
        },
    )
    .await;
    assert_fault(
        &mock,
        json!({"rate_limit_rate": 0.0, "malformed_rate": 1.0}),
        |status, body, _| {
            assert_eq!(status, 200);
            assert!(serde_json::from_str::<Value>(body).is_err(), "{body}");
        },
    )
    .await;
    assert_fault(
        &mock,
        json!({"malformed_rate": 0.0, "wrong_count_rate": 1.0}),
        |status, body, _| {
            assert_eq!(status, 200);
            assert_eq!(parse(body).unwrap().data.len(), 2);
        },
    )
    .await;
    assert_fault(
        &mock,
        json!({"wrong_count_rate": 0.0, "wrong_dimensions_rate": 1.0}),
        |status, body, _| {
            assert_eq!(status, 200);
            let answer = parse(body).unwrap();
            assert!(!is_valid(&answer, 3, 32));
            assert!(answer.data.iter().any(|d| d.embedding.len() != 32));
        },
    )
    .await;
    assert_fault(
        &mock,
        json!({"wrong_dimensions_rate": 0.0, "non_finite_rate": 1.0}),
        |status, body, _| {
            assert_eq!(status, 200);
            assert!(body.contains(openai::NON_FINITE_LITERAL));
            // Decodes into the wire type; only the finiteness check catches it.
            let answer = parse(body).unwrap();
            assert!(!is_valid(&answer, 3, 32));
            assert!(
                answer
                    .data
                    .iter()
                    .any(|d| d.embedding.iter().any(|x| !x.is_finite()))
            );
        },
    )
    .await;
    assert_fault(
        &mock,
        json!({"non_finite_rate": 0.0, "shuffled_index_rate": 1.0}),
        |status, body, _| {
            assert_eq!(status, 200);
            let answer = parse(body).unwrap();
            assert!(!is_valid(&answer, 3, 32));
            assert_eq!(answer.data.len(), 3);
        },
    )
    .await;

    // Back to zero: valid again.
    configure(&mock, json!({"shuffled_index_rate": 0.0})).await;
    let answer = embed(&mock, request(&["alpha beta", "gamma", "delta epsilon"])).await;
    assert!(is_valid(&answer, 3, 32));

    let stats = fetch_stats(&mock).await;
    assert_eq!(stats.errors_injected, 10);
    assert_eq!(stats.rate_limited_injected, 5);
    assert_eq!(stats.malformed, 5);
    assert_eq!(stats.wrong_count, 5);
    assert_eq!(stats.wrong_dimensions, 5);
    assert_eq!(stats.non_finite, 5);
    assert_eq!(stats.shuffled_index, 5);
    assert_eq!(stats.successes, 21, "faulty 200s are not successes");
    assert_eq!(stats.inputs_embedded, 63);
    assert_eq!(stats.responses_by_status["200"], 21 + 25);
    assert_eq!(stats.responses_by_status["503"], 5);
    assert_eq!(stats.responses_by_status["429"], 5);
    assert_eq!(stats.requests_total, 21 + 40);
    mock.stop().await.expect("stops");
}

#[tokio::test]
async fn a_single_input_still_gets_each_body_fault() {
    let mock = start(Knobs {
        dimensions: 8,
        ..Knobs::default()
    })
    .await;
    for knob in [
        "wrong_count_rate",
        "wrong_dimensions_rate",
        "non_finite_rate",
        "shuffled_index_rate",
    ] {
        configure(&mock, json!({knob: 1.0})).await;
        let body = post_embeddings(&mock, request(&["only"]))
            .await
            .text()
            .await
            .unwrap();
        let answer: wire::EmbeddingResponse = serde_json::from_str(&body).unwrap();
        assert!(!is_valid(&answer, 1, 8), "{knob}: {body}");
        configure(&mock, json!({knob: 0.0})).await;
    }
    assert_eq!(mock.stats().successes, 0);
    mock.stop().await.expect("stops");
}

#[tokio::test]
async fn a_timeout_hangs_then_drops_the_connection_without_an_answer() {
    let mock = start(Knobs {
        timeout_rate: 1.0,
        hang_secs: 1,
        ..Knobs::default()
    })
    .await;
    let started = Instant::now();
    let outcome = client()
        .post(format!("{}/embeddings", mock.base_url()))
        .json(&request(&["a"]))
        .send()
        .await;
    let error = outcome.expect_err("no answer");
    eprintln!("timeout fault seen by the client as: {error:?}");
    assert!(
        !error.is_timeout(),
        "the mock dropped it, the client did not time out: {error}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    let stats = fetch_stats(&mock).await;
    assert_eq!(stats.timeouts, 1);
    assert_eq!(stats.successes, 0);
    assert!(stats.responses_by_status.is_empty(), "{stats:?}");

    configure(&mock, json!({"timeout_rate": 0.0})).await;
    embed(&mock, request(&["a"])).await;
    mock.stop().await.expect("stops");
}

#[tokio::test]
async fn stopping_cuts_a_hanging_request_short() {
    let mock = start(Knobs {
        timeout_rate: 1.0,
        hang_secs: 600,
        ..Knobs::default()
    })
    .await;
    let url = format!("{}/embeddings", mock.base_url());
    let pending =
        tokio::spawn(async move { client().post(url).json(&request(&["a"])).send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    mock.stop().await.expect("stops");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(pending.await.unwrap().is_err());
}

#[tokio::test]
async fn config_updates_apply_at_once_and_bad_ones_are_refused() {
    let mock = start(Knobs {
        error_rates: BTreeMap::from([(500, 1.0)]),
        ..Knobs::default()
    })
    .await;
    assert_eq!(post_embeddings(&mock, request(&["a"])).await.status(), 500);
    let knobs: Knobs = configure(&mock, json!({"error_rates": {}}))
        .await
        .json()
        .await
        .unwrap();
    assert!(knobs.error_rates.is_empty());
    assert_eq!(post_embeddings(&mock, request(&["a"])).await.status(), 200);

    for bad in [
        json!({"malformed_rate": 1.5}),
        json!({"error_rates": {"200": 0.5}}),
        json!({"no_such_knob": true}),
        json!({"dimensions": 0}),
        json!([1, 2]),
    ] {
        assert_eq!(configure(&mock, bad.clone()).await.status(), 400, "{bad}");
    }
    assert_eq!(
        mock.knobs(),
        Knobs::default(),
        "refused updates change nothing"
    );
    mock.set_knobs(Knobs {
        latency_ms: 1,
        ..Knobs::default()
    })
    .unwrap();
    assert_eq!(mock.knobs().latency_ms, 1);
    assert!(
        mock.set_knobs(Knobs {
            timeout_rate: -0.1,
            ..Knobs::default()
        })
        .is_err()
    );
    mock.stop().await.expect("stops");
}

#[tokio::test]
async fn stats_count_successful_answers_per_text_and_reset_zeroes_them() {
    let mock = start(Knobs {
        dimensions: 8,
        ..Knobs::default()
    })
    .await;
    embed(&mock, request(&["a", "b"])).await;
    embed(&mock, request(&["b", "c", "c"])).await;
    // A faulty answer the client must reject is not a success for "c" or "d".
    configure(&mock, json!({"wrong_count_rate": 1.0})).await;
    post_embeddings(&mock, request(&["c", "d"])).await;
    configure(
        &mock,
        json!({"wrong_count_rate": 0.0, "error_rates": {"500": 1.0}}),
    )
    .await;
    post_embeddings(&mock, request(&["a"])).await;

    let stats = fetch_stats(&mock).await;
    assert_eq!(stats.successes, 2);
    assert_eq!(stats.inputs_embedded, 5);
    assert_eq!(stats.distinct_texts_embedded, 3);
    assert_eq!(
        stats.texts_embedded_more_than_once, 1,
        "only b came back twice"
    );
    assert_eq!(stats.max_successes_per_text, 2);
    assert_eq!(stats.responses_by_status["200"], 3);
    assert_eq!(stats.responses_by_status["500"], 1);

    let json: Value = client()
        .get(format!("{}/_mock/stats", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for field in [
        "requests_total",
        "responses_by_status",
        "timeouts",
        "malformed",
        "wrong_count",
        "wrong_dimensions",
        "non_finite",
        "shuffled_index",
        "inputs_embedded",
        "max_successes_per_text",
        "texts_embedded_more_than_once",
        "max_in_flight",
    ] {
        assert!(json.get(field).is_some(), "{field} missing from {json}");
    }

    let reset = client()
        .post(format!("{}/_mock/reset", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    let stats = fetch_stats(&mock).await;
    assert_eq!(stats.successes, 0);
    assert_eq!(stats.texts_embedded_more_than_once, 0);
    assert!(stats.responses_by_status.is_empty());
    configure(&mock, json!({"error_rates": {}})).await;
    embed(&mock, request(&["b"])).await;
    assert_eq!(mock.stats().texts_embedded_more_than_once, 0);
    mock.stop().await.expect("stops");
}

#[tokio::test]
async fn latency_applies_and_concurrency_is_measured() {
    let mock = start(Knobs {
        latency_ms: 300,
        dimensions: 8,
        ..Knobs::default()
    })
    .await;
    let started = Instant::now();
    let body = request(&["x"]);
    let answers = futures_join(&mock, body, 4).await;
    assert!(answers.iter().all(|&s| s == 200));
    assert!(started.elapsed() >= Duration::from_millis(300));
    let stats = fetch_stats(&mock).await;
    assert!(stats.max_in_flight >= 2, "{stats:?}");
    assert_eq!(stats.in_flight, 0);
    mock.stop().await.expect("stops");
}

async fn futures_join(mock: &MockOpenAi, body: Value, n: usize) -> Vec<u16> {
    let url = format!("{}/embeddings", mock.base_url());
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            tokio::spawn(async move {
                client()
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

#[tokio::test]
async fn the_same_seed_injects_the_same_faults_and_reset_replays_them() {
    let knobs = Knobs {
        error_rates: BTreeMap::from([(500, 0.3), (503, 0.2)]),
        dimensions: 8,
        seed: 42,
        ..Knobs::default()
    };
    let sequence = |mock: MockOpenAi| async move {
        let mut statuses = Vec::new();
        for _ in 0..30 {
            statuses.push(
                post_embeddings(&mock, request(&["a"]))
                    .await
                    .status()
                    .as_u16(),
            );
        }
        (statuses, mock)
    };
    let (first, one) = sequence(start(knobs.clone()).await).await;
    let (second, other) = sequence(start(knobs).await).await;
    assert_eq!(first, second);
    assert!(
        first.contains(&200) && first.contains(&500) && first.contains(&503),
        "{first:?}"
    );
    one.reset();
    let (replayed, one) = sequence(one).await;
    assert_eq!(first, replayed);
    one.stop().await.unwrap();
    other.stop().await.unwrap();
}

#[tokio::test]
async fn health_and_models_answer() {
    let mock = start(Knobs::default()).await;
    let health: Value = client()
        .get(format!("{}/health", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let models: Value = client()
        .get(format!("{}/models", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert!(models["data"].as_array().is_some_and(|d| !d.is_empty()));
    mock.stop().await.expect("stops");
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: openai::Args,
}

#[test]
fn flags_parse_into_knobs_with_everything_off_by_default() {
    let defaults: Knobs = Cli::try_parse_from(["mock"]).unwrap().args.into();
    assert_eq!(defaults, Knobs::default());
    let knobs: Knobs = Cli::try_parse_from([
        "mock",
        "--fail",
        "500=0.2",
        "--fail",
        "503=0.1",
        "--timeout-rate",
        "0.05",
        "--hang-secs",
        "5",
        "--rpm-limit",
        "100",
        "--dimensions",
        "384",
        "--seed",
        "7",
        "--api-key",
        "k",
    ])
    .unwrap()
    .args
    .into();
    assert_eq!(knobs.error_rates, BTreeMap::from([(500, 0.2), (503, 0.1)]));
    assert_eq!(knobs.timeout_rate, 0.05);
    assert_eq!(knobs.hang_secs, 5);
    assert_eq!(knobs.rpm_limit, 100);
    assert_eq!(knobs.dimensions, 384);
    assert_eq!(knobs.seed, 7);
    assert_eq!(knobs.api_key.as_deref(), Some("k"));
    assert!(Cli::try_parse_from(["mock", "--fail", "500=2"]).is_err());
    assert!(Cli::try_parse_from(["mock", "--malformed-rate", "-1"]).is_err());
}

#[tokio::test]
async fn run_serves_until_its_shutdown_future_completes() {
    let args = Cli::try_parse_from(["mock"]).unwrap().args;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listen = "127.0.0.1:0".parse().unwrap();
    let running = tokio::spawn(openai::run(args, listen, async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!running.is_finished());
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("stops promptly")
        .unwrap()
        .expect("clean stop");
}
