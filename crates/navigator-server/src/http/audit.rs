//! `GET /v1/audit`: the audit log for auditors, filtered, as JSON pages or JSON lines
//! (`?format=jsonl`, for export). Reading the log is itself audited.

use super::AppState;
use super::error::{ApiError, ApiQuery, timestamp_param};
use super::principal::Principal;
use crate::audit::{Action, RequestMeta};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use navigator_store::{AuditFilter, AuditRecord};
use serde::Deserialize;
use serde_json::{Value, json};

pub const DEFAULT_AUDIT_PAGE: u32 = 100;
pub const MAX_AUDIT_PAGE: u32 = 1000;

#[derive(Deserialize)]
pub struct AuditParams {
    /// Entries with a sequence number above this (the previous page's `next`).
    pub after: Option<i64>,
    pub limit: Option<u32>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub resource_id: Option<String>,
    /// RFC 3339.
    pub from: Option<String>,
    pub to: Option<String>,
    /// `json` (default) or `jsonl`.
    pub format: Option<String>,
}

/// One entry as served: the stored canonical entry plus its place in the chain.
fn view(record: &AuditRecord) -> Value {
    let entry: Value = serde_json::from_slice(&record.entry).unwrap_or(Value::Null);
    json!({
        "seq": record.seq,
        "entry": entry,
        "prev_hash": hex::encode(record.prev_hash),
        "hash": hex::encode(record.hash),
    })
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Response, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_AUDIT_PAGE);
    if limit == 0 || limit > MAX_AUDIT_PAGE {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_AUDIT_PAGE}"
        )));
    }
    let jsonl = match params.format.as_deref() {
        None | Some("json") => false,
        Some("jsonl") => true,
        Some(_) => return Err(ApiError::invalid("format must be json or jsonl")),
    };
    let bounded = |key: &str, value: &Option<String>| -> Result<(), ApiError> {
        match value {
            Some(v) if v.len() > 256 => Err(ApiError::invalid(format!("{key} is too long"))),
            _ => Ok(()),
        }
    };
    bounded("actor", &params.actor)?;
    bounded("action", &params.action)?;
    bounded("resource_id", &params.resource_id)?;
    let filter = AuditFilter {
        after_seq: params.after.unwrap_or(0).max(0),
        limit,
        actor: params.actor.clone(),
        action: params.action.clone(),
        resource_id: params.resource_id.clone(),
        from: timestamp_param("from", params.from.as_deref())?,
        to: timestamp_param("to", params.to.as_deref())?,
    };
    let records = state.store.audit_entries(&filter).await?;
    state
        .audit
        .record(meta.event(
            principal.actor(),
            Action::AuditRead,
            "audit_log",
            None,
            "success",
            json!({"entries": records.len(), "after": filter.after_seq}),
        ))
        .await?;
    let next = (records.len() as u32 == limit)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    if jsonl {
        let mut body = String::new();
        for record in &records {
            body.push_str(&view(record).to_string());
            body.push('\n');
        }
        let mut response = body.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        if let Some(next) = next
            && let Ok(value) = HeaderValue::from_str(&next.to_string())
        {
            response.headers_mut().insert("x-next-after", value);
        }
        return Ok(response);
    }
    let items: Vec<Value> = records.iter().map(view).collect();
    Ok(axum::Json(json!({ "items": items, "next": next })).into_response())
}
