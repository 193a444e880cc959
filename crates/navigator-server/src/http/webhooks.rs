//! `POST /v1/webhooks/parser/{job_id}`: a remote parser delivering its result. Authenticated by
//! the signature alone (HMAC-SHA256 with the job's own secret, a fresh timestamp, a delivery id
//! never seen before); see [`navigator_remote::webhook`]. Refusals change nothing.

use super::AppState;
use super::error::{ApiError, ApiPath};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use navigator_domain::JobId;
use navigator_pipeline::remote::{self, Delivered};
use navigator_remote::webhook::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Received};
use serde_json::json;

pub async fn parser_callback(
    State(state): State<AppState>,
    ApiPath(job_id): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let job_id = JobId::parse(&job_id).map_err(|_| ApiError::not_found("job"))?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let received = Received {
        delivery_id: header(HEADER_ID),
        timestamp: header(HEADER_TIMESTAMP),
        signature: header(HEADER_SIGNATURE),
    };
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
                navigator_domain::ErrorCode::WebhookSignatureInvalid => {
                    "missing or invalid webhook signature".to_owned()
                }
                navigator_domain::ErrorCode::WebhookStale => {
                    "webhook timestamp outside the accepted window".to_owned()
                }
                navigator_domain::ErrorCode::WebhookReplayed => {
                    "this delivery id was already received".to_owned()
                }
                navigator_domain::ErrorCode::NotFound => {
                    "no remote parse awaits a callback for this job".to_owned()
                }
                _ => e.to_string(),
            };
            Err(ApiError::new(code, detail))
        }
    }
}
