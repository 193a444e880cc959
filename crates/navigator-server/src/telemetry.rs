//! Logs and metrics. Logs are lowercase messages with values in fields, written to stderr as JSON
//! or text; they carry ids and hashes only. Metrics use one process-wide Prometheus recorder.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

/// Histogram buckets (seconds) for stage, request and search durations.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The process-wide recorder's handle; installs the recorder on first use (tests build many apps
/// in one process, and a global recorder can only be installed once).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), DURATION_BUCKETS)
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Ignore "already set": another recorder (e.g. a test's) wins, and render stays valid.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok();
            handle
        })
        .clone()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Installs the global tracing subscriber. `RUST_LOG` overrides `level` when set.
pub fn init_logging(format: LogFormat, level: &str) {
    // Third-party parsers log through `log` (bridged into tracing), and lopdf's warnings can dump
    // font dictionaries and other document bytes: silence them whatever the level says.
    let quiet = ",lopdf=off,pdf_extract=off,html5ever=off";
    let filter =
        EnvFilter::try_new(std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_owned()) + quiet)
            .unwrap_or_else(|_| EnvFilter::new(format!("info{quiet}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}
