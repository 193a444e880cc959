//! The HTTP API (SPEC §4): one module per resource, each a set of handlers; [`router`] wires
//! them with the cross-cutting layers (request ids, metrics, security headers, problem+json 404).

pub mod documents;
pub mod error;
pub mod jobs;
pub mod openapi;
pub mod ops;
pub mod principal;
pub mod search;
pub mod usage;
pub mod webhooks;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use navigator_domain::{Clock, ErrorCode};
use navigator_embed::Embedder;
use navigator_pipeline::blob::Blobs;
use navigator_pipeline::worker::Pipeline;
use navigator_store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

/// Limits the API enforces.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    pub max_upload_bytes: u64,
    pub search_default_limit: u32,
    pub search_max_limit: u32,
    pub rrf_k: u32,
    /// Deadline for a whole request, except uploads (bounded by size instead) and event streams.
    pub request_timeout: std::time::Duration,
}

/// What every handler can reach; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub blobs: Blobs,
    pub embedder: Arc<dyn Embedder>,
    pub clock: Arc<dyn Clock>,
    pub limits: ApiLimits,
    pub metrics: PrometheusHandle,
    /// Uploads are spooled here while streaming (same filesystem as the data dir).
    pub upload_dir: PathBuf,
    /// Wakes this process's idle workers when work is enqueued.
    pub wake: Arc<Notify>,
    /// Cancelled on shutdown: readiness turns false, event streams end.
    pub shutdown: CancellationToken,
    /// The workers' shared parts: remote-parser callbacks and the usage policy live there.
    pub pipeline: Arc<Pipeline>,
}

pub fn router(state: AppState) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route(
            "/v1/documents",
            post(documents::upload)
                .get(documents::list)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/documents/{id}",
            get(documents::get).delete(documents::delete),
        )
        .route("/v1/jobs", get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get))
        .route("/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/search", post(search::search))
        .route(
            "/v1/webhooks/parser/{job_id}",
            post(webhooks::parser_callback).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/usage", get(usage::usage))
        .route(
            "/v1/budgets/{owner}",
            get(usage::get_budget).put(usage::put_budget),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/version", get(ops::version))
        .route("/openapi.json", get(ops::openapi))
        .route("/docs", get(ops::docs))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(middleware::from_fn(observe))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .with_state(state)
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("route")
}

async fn method_not_allowed() -> error::ApiError {
    error::ApiError::new(
        ErrorCode::InvalidRequest,
        "method not allowed on this route",
    )
}

/// Answers `504 timeout` when a request runs past `server.request_timeout_secs`. Uploads (long
/// by nature, bounded by `server.max_upload_bytes`) and server-sent event streams are exempt.
async fn deadline(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str());
    let exempt = matches!(
        (request.method().as_str(), route),
        ("POST", Some("/v1/documents")) | (_, Some("/v1/jobs/{id}/events"))
    );
    if exempt {
        return next.run(request).await;
    }
    match tokio::time::timeout(state.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(error::ApiError::new(
            ErrorCode::Timeout,
            "the request took longer than the server allows",
        )),
    }
}

/// Records request metrics by route template (never the raw path: it may hold ids of other
/// tenants' documents, and unbounded label values would explode the series count), logs one
/// line per request, and adds the security headers every response carries.
async fn observe(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let started = Instant::now();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!("navigator_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("navigator_http_request_duration_seconds", "method" => method.clone(), "route" => route.clone()).record(elapsed);
    tracing::info!(request_id = %request_id, method = %method, route = %route, status, duration_ms = (elapsed * 1000.0) as u64, "request");
    let headers = response.headers_mut();
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'",
        ),
    );
    response
}
