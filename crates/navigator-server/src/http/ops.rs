//! Operational endpoints: liveness, readiness, Prometheus metrics, build info, OpenAPI + docs.

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use serde_json::json;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers, the blob store round-trips and the embedder is loaded.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = state.store.ping().await.is_ok();
    let storage = state.blobs.raw().check().await.is_ok();
    // The embedder is constructed (model loaded) before the server starts listening.
    let embedder = true;
    let ready = database && storage && embedder && !state.shutdown.is_cancelled();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "unavailable" },
            "checks": {"database": database, "storage": storage, "embedder": embedder},
        })),
    )
}

/// Prometheus text format. Queue gauges are read from the store at scrape time, so they are right
/// even when the jobs were moved by other processes.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.queue_stats(state.clock.now()).await {
        Ok(stats) => {
            let mut depth = 0;
            for (status, count) in &stats.by_status {
                metrics::gauge!("navigator_jobs", "status" => status.as_str()).set(*count as f64);
                if status.is_claimable() {
                    depth += count;
                }
            }
            metrics::gauge!("navigator_queue_depth").set(depth as f64);
            metrics::gauge!("navigator_queue_oldest_age_seconds").set(
                stats
                    .oldest_eligible_age
                    .map(|a| a.as_secs_f64())
                    .unwrap_or(0.0),
            );
        }
        Err(e) => tracing::warn!(error = %e, "failed to read queue stats for metrics"),
    }
    let pool = state.store.pool_stats();
    metrics::gauge!("navigator_db_pool_connections", "state" => "in_use")
        .set(f64::from(pool.size.saturating_sub(pool.idle)));
    metrics::gauge!("navigator_db_pool_connections", "state" => "idle").set(f64::from(pool.idle));
    metrics::gauge!("navigator_db_pool_max_connections").set(f64::from(pool.max));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

pub async fn version(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "name": "navigator",
        "version": env!("CARGO_PKG_VERSION"),
        "git_sha": option_env!("NAVIGATOR_GIT_SHA").unwrap_or("unknown"),
        "embedder": state.embedder.model_id(),
        "chunker": format!("{}@{}", navigator_pipeline::chunk::CHUNKER_NAME, navigator_pipeline::chunk::CHUNKER_VERSION),
    }))
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::document().to_string(),
    )
}

/// A self-contained docs page (no CDN: it must work offline) that renders /openapi.json.
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
