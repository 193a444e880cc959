//! `POST /v1/webhooks/parser/{job_id}`: a remote parser delivering its result. Authenticated by
//! the signature alone (HMAC-SHA256 with the job's own secret, a fresh timestamp, a delivery id
//! never seen before); see [`navigator_remote::webhook`]. Refusals change nothing.

use super::AppState;
use super::error::{ApiError, ApiPath};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use navigator_domain::{ErrorCode, JobId};
use navigator_pipeline::remote::{self, Delivered};
use navigator_remote::webhook::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Received};
use serde_json::json;

/// Largest callback body read: a whole document's text (the parser client refuses results over
/// 50 MiB of text anyway).
pub const MAX_CALLBACK_BYTES: usize = 64 * 1024 * 1024;

pub async fn parser_callback(
    State(state): State<AppState>,
    ApiPath(job_id): ApiPath<String>,
    request: Request,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let job_id = JobId::parse(&job_id).map_err(|_| ApiError::not_found("job"))?;
    // Refuse before reading the body: anyone can call this route, and only a deployment with a
    // remote parser that calls back, and a caller that signs, is worth buffering for.
    if state
        .pipeline
        .remote()
        .is_none_or(|remote| remote.callbacks.is_none())
    {
        return Err(ApiError::not_found("parser callback route"));
    }
    let headers = request.headers().clone();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let received = Received {
        delivery_id: header(HEADER_ID),
        timestamp: header(HEADER_TIMESTAMP),
        signature: header(HEADER_SIGNATURE),
    };
    if received.delivery_id.is_none()
        || received.timestamp.is_none()
        || received.signature.is_none()
    {
        metrics::counter!("navigator_parser_webhooks_total", "outcome" => ErrorCode::WebhookSignatureInvalid.as_str()).increment(1);
        return Err(ApiError::new(
            ErrorCode::WebhookSignatureInvalid,
            "missing or invalid webhook signature",
        ));
    }
    let body: Bytes = axum::body::to_bytes(request.into_body(), MAX_CALLBACK_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("a callback body may be at most {MAX_CALLBACK_BYTES} bytes"),
            )
        })?;
    match remote::deliver(&state.pipeline, job_id, received, &body).await {
        Ok(delivered) => {
            let status = match delivered {
                Delivered::Accepted => "accepted",
                Delivered::AlreadyProcessed => "already_processed",
            };
            metrics::counter!("navigator_parser_webhooks_total", "outcome" => status).increment(1);
            Ok((
                StatusCode::OK,
                Json(json!({ "status": status, "job_id": job_id })),
            ))
        }
        Err(e) => {
            let code = e.code();
            metrics::counter!("navigator_parser_webhooks_total", "outcome" => code.as_str())
                .increment(1);
            tracing::info!(job_id = %job_id, code = %code, "parser callback refused");
            let detail = match code {
                ErrorCode::WebhookSignatureInvalid => {
                    "missing or invalid webhook signature".to_owned()
                }
                ErrorCode::WebhookStale => {
                    "webhook timestamp outside the accepted window".to_owned()
                }
                ErrorCode::WebhookReplayed => "this delivery id was already received".to_owned(),
                ErrorCode::NotFound => "no remote parse awaits a callback for this job".to_owned(),
                _ => e.to_string(),
            };
            Err(ApiError::new(code, detail))
        }
    }
}
