//! The HTTP API (SPEC §4): one module per resource, each a set of handlers; [`router`] wires
//! them with the cross-cutting layers (authentication and per-route authorisation, request ids,
//! metrics, security headers, problem+json 404).

pub mod audit;
pub mod auth;
pub mod documents;
pub mod error;
pub mod jobs;
pub mod openapi;
pub mod ops;
pub mod principal;
pub mod rate_limit;
pub mod search;
pub mod usage;
pub mod webhooks;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use navigator_domain::{Clock, ErrorCode};
use navigator_embed::Embedder;
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
    pub blobs: navigator_pipeline::vault::DocumentBlobs,
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
    /// The audit trail.
    pub audit: Arc<dyn crate::audit::AuditSink>,
    /// Who is calling: JWTs, API keys, roles (or the local principal with `auth.mode: none`).
    pub auth: Arc<auth::Authenticator>,
    /// Per-principal limits on uploads and searches.
    pub rate_limits: Arc<rate_limit::RateLimiter>,
}

/// The handler of one [`openapi::ROUTES`] entry. The router is built by walking that table, so
/// every served route has an entry, and with it a declared permission that
/// [`auth::authorize`] enforces; an entry without a handler panics at startup (every test
/// catches it). Add routes here *and* in the table, never with `Router::route` directly.
fn handler(method: &str, path: &str) -> MethodRouter<AppState> {
    match (method, path) {
        ("post", "/v1/documents") => post(documents::upload).layer(DefaultBodyLimit::disable()),
        ("get", "/v1/documents") => get(documents::list),
        ("get", "/v1/documents/{id}") => get(documents::get),
        ("delete", "/v1/documents/{id}") => delete(documents::delete),
        ("get", "/v1/jobs") => get(jobs::list),
        ("get", "/v1/jobs/{id}") => get(jobs::get),
        ("post", "/v1/jobs/{id}/retry") => post(jobs::retry),
        ("get", "/v1/jobs/{id}/events") => get(jobs::events),
        ("post", "/v1/search") => post(search::search),
        ("post", "/v1/webhooks/parser/{job_id}") => {
            post(webhooks::parser_callback).layer(DefaultBodyLimit::disable())
        }
        ("get", "/v1/usage") => get(usage::usage),
        ("get", "/v1/budgets/{owner}") => get(usage::get_budget),
        ("put", "/v1/budgets/{owner}") => put(usage::put_budget),
        ("get", "/v1/audit") => get(audit::list),
        ("get", "/healthz") => get(ops::healthz),
        ("get", "/readyz") => get(ops::readyz),
        ("get", "/metrics") => get(ops::metrics),
        ("get", "/version") => get(ops::version),
        ("get", "/openapi.json") => get(ops::openapi),
        ("get", "/docs") => get(ops::docs),
        _ => {
            panic!("openapi::ROUTES lists {method} {path} but http::handler has no handler for it")
        }
    }
}

pub fn router(state: AppState) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    let mut router = Router::new();
    for route in openapi::ROUTES {
        router = router.route(route.path, handler(route.method, route.path));
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
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
