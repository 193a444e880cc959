//! `POST /v1/search`: hybrid (default), vector or keyword search over the caller's documents.

use super::AppState;
use super::error::{ApiError, ApiJson};
use super::principal::Principal;
use super::rate_limit::Limited;
use crate::audit::{Action, RequestMeta};
use axum::Json;
use axum::extract::State;
use navigator_domain::DocumentId;
use navigator_pipeline::search::{SearchMode, search as run_search};
use navigator_store::{ChunkHit, SearchQuery};
use serde::{Deserialize, Serialize};

/// Longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 2_000;
/// Most `document_ids` one search may name.
pub const MAX_DOCUMENT_IDS: usize = 1_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub query: String,
    pub limit: Option<u32>,
    pub document_ids: Option<Vec<String>>,
    #[serde(default)]
    pub mode: SearchMode,
}

#[derive(Serialize)]
pub struct SearchResponse {
    pub results: Vec<ChunkHit>,
}

pub async fn search(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    ApiJson(request): ApiJson<SearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    state
        .rate_limits
        .enforce(&principal.actor(), Limited::Search)?;
    let query = request.query.trim();
    if query.is_empty() {
        return Err(ApiError::invalid("query must not be empty"));
    }
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid(format!(
            "query must be at most {MAX_QUERY_CHARS} characters"
        )));
    }
    let max = state.limits.search_max_limit;
    let limit = match request.limit {
        None => state.limits.search_default_limit,
        Some(n) if (1..=max).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "limit must be between 1 and {max}"
            )));
        }
    };
    let document_ids = match &request.document_ids {
        None => None,
        Some(ids) if ids.len() > MAX_DOCUMENT_IDS => {
            return Err(ApiError::invalid(format!(
                "at most {MAX_DOCUMENT_IDS} document_ids"
            )));
        }
        Some(ids) => Some(
            ids.iter()
                .map(|s| DocumentId::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ApiError::invalid("document_ids must be document ids"))?,
        ),
    };
    let scope = principal.content_scope();
    let q = SearchQuery {
        scope: &scope,
        text: query,
        document_ids: document_ids.as_deref(),
        limit,
    };
    let started = std::time::Instant::now();
    let results = run_search(
        state.store.as_ref(),
        state.embedder.as_ref(),
        &q,
        request.mode,
        state.limits.rrf_k,
    )
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "search failed");
        ApiError::new(e.code(), "search failed; retry later")
    })?;
    metrics::histogram!("navigator_search_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    // Results carry document text. The query itself is never recorded (it may hold PHI); the
    // documents the results came from are.
    let mut documents: Vec<String> = results.iter().map(|r| r.document_id.to_string()).collect();
    documents.sort();
    documents.dedup();
    state
        .audit
        .record(meta.event(
            principal.actor(),
            Action::Search,
            "search",
            None,
            "success",
            serde_json::json!({"results": results.len(), "documents": documents}),
        ))
        .await?;
    Ok(Json(SearchResponse { results }))
}
