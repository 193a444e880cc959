//! Every request is measured, with low-cardinality labels only.

mod common;

use common::{MockServer, Reply};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use navigator_embed::Embedder;
use navigator_remote::openai::{EstimatingTokenCounter, OpenAiEmbedder, OpenAiSettings};
use navigator_remote::resilience::ResilienceSettings;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records every metric as `name{k=v,...}` → value (counters summed, gauges last value,
/// histograms number of samples).
#[derive(Default, Clone)]
struct Capture(Arc<Mutex<BTreeMap<String, f64>>>);

struct Cell {
    key: String,
    store: Capture,
}

impl Capture {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        Arc::new(Cell {
            key: format!("{}{{{}}}", key.name(), labels.join(",")),
            store: self.clone(),
        })
    }

    fn get(&self, key: &str) -> f64 {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0.0)
    }

    fn keys(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }
}

impl Cell {
    fn update(&self, f: impl FnOnce(&mut f64)) {
        f(self
            .store
            .0
            .lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default());
    }
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.update(|v| *v += value as f64);
    }
    fn absolute(&self, value: u64) {
        self.update(|v| *v = value as f64);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        self.update(|v| *v += value);
    }
    fn decrement(&self, value: f64) {
        self.update(|v| *v -= value);
    }
    fn set(&self, value: f64) {
        self.update(|v| *v = value);
    }
}

impl HistogramFn for Cell {
    fn record(&self, _value: f64) {
        self.update(|v| *v += 1.0);
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

fn requests(outcome: &str) -> String {
    format!(
        "navigator_external_requests_total{{operation=embeddings,outcome={outcome},service=openai}}"
    )
}

fn per_operation(name: &str) -> String {
    format!("{name}{{operation=embeddings,service=openai}}")
}

#[tokio::test(flavor = "current_thread")]
async fn requests_retries_outcomes_breaker_and_tokens_are_measured() {
    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);

    let server = MockServer::start(|_| {
        Reply::json(
            200,
            r#"{"data":[{"index":0,"embedding":[1,0]}],"usage":{"prompt_tokens":9,"total_tokens":9}}"#,
        )
    })
    .await;
    server.enqueue(Reply::json(429, "{}").header("retry-after", "0"));
    server.enqueue(Reply::json(500, "{}"));
    server.enqueue(Reply::json(500, "{}"));
    let embedder = OpenAiEmbedder::new(
        OpenAiSettings {
            base_url: server.url.clone(),
            api_key: Some("sk-metric-secret".into()),
            dimensions: 2,
            resilience: ResilienceSettings {
                backoff_base: Duration::from_millis(1),
                backoff_cap: Duration::from_millis(5),
                breaker_threshold: 1,
                breaker_open_for: Duration::from_secs(60),
                ..ResilienceSettings::default()
            },
            ..OpenAiSettings::default()
        },
        Arc::new(EstimatingTokenCounter {
            max_input_tokens: 100,
        }),
    )
    .unwrap();

    // A 429 is backpressure (it halves the concurrency limit but leaves the breaker closed);
    // the 500 after it opens the breaker at threshold 1; the call ends there.
    let err = embedder.embed(&["a".to_string()]).await.unwrap_err();
    assert_eq!(err.code(), navigator_domain::ErrorCode::UpstreamUnavailable);

    assert_eq!(capture.get(&requests("429")), 1.0);
    assert_eq!(capture.get(&requests("5xx")), 1.0);
    assert_eq!(capture.get(&requests("circuit_open")), 1.0);
    assert_eq!(
        capture.get("navigator_external_breaker_state{service=openai}"),
        2.0
    );
    assert_eq!(
        capture.get("navigator_external_concurrency_limit{service=openai}"),
        2.0
    );
    assert_eq!(
        capture.get(&per_operation(
            "navigator_external_request_duration_seconds"
        )),
        2.0
    );
    assert_eq!(
        capture.get(&per_operation("navigator_external_retries_total")),
        1.0
    );

    // A fresh client (breaker closed): 500, then success, one retry, tokens counted.
    let embedder = OpenAiEmbedder::new(
        OpenAiSettings {
            base_url: server.url.clone(),
            dimensions: 2,
            resilience: ResilienceSettings {
                backoff_base: Duration::from_millis(1),
                backoff_cap: Duration::from_millis(5),
                ..ResilienceSettings::default()
            },
            ..OpenAiSettings::default()
        },
        Arc::new(EstimatingTokenCounter {
            max_input_tokens: 100,
        }),
    )
    .unwrap();
    embedder.embed(&["a".to_string()]).await.unwrap();
    assert_eq!(capture.get(&requests("5xx")), 2.0);
    assert_eq!(capture.get(&requests("2xx")), 1.0);
    assert_eq!(
        capture.get(&per_operation("navigator_external_retries_total")),
        2.0
    );
    assert_eq!(
        capture.get("navigator_external_tokens_total{service=openai}"),
        9.0
    );
    assert_eq!(
        capture.get("navigator_external_breaker_state{service=openai}"),
        0.0
    );

    for key in capture.keys() {
        assert!(
            !key.contains("127.0.0.1") && !key.contains("secret"),
            "{key}"
        );
    }
}
