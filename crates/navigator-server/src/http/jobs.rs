//! `/v1/jobs`: one job, a list, manual retry, and server-sent events of its transitions.

use super::AppState;
use super::documents::{Page, job_view, page_limit};
use super::error::{ApiError, ApiPath, ApiQuery};
use super::principal::Principal;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use navigator_domain::{JobId, JobStatus};
use navigator_store::StoreError;
use serde::Deserialize;
use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

/// How often an open event stream looks for new transitions. The store is the source of truth
/// (a transition may be made by a worker in another process), so the stream polls it.
const EVENT_POLL_INTERVAL: Duration = Duration::from_millis(200);

fn parse_job_id(raw: &str) -> Result<JobId, ApiError> {
    JobId::parse(raw).map_err(|_| ApiError::not_found("job"))
}

fn job_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("job"),
        other => other.into(),
    }
}

pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_job_id(&id)?;
    let job = state
        .store
        .get_job(&principal.scope(), id)
        .await
        .map_err(job_not_found)?;
    Ok(Json(job_view(&job)))
}

#[derive(Deserialize)]
pub struct ListParams {
    pub status: Option<String>,
    pub after: Option<String>,
    pub limit: Option<u32>,
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Page<serde_json::Value>>, ApiError> {
    let limit = page_limit(params.limit)?;
    let status = params
        .status
        .as_deref()
        .map(|s| {
            JobStatus::parse(s).ok_or_else(|| {
                ApiError::invalid("status must be one of queued, running, waiting, retrying, complete, failed, cancelled")
            })
        })
        .transpose()?;
    let after = params
        .after
        .as_deref()
        .map(JobId::parse)
        .transpose()
        .map_err(|_| ApiError::invalid("after must be a job id"))?;
    let jobs = state
        .store
        .list_jobs(&principal.scope(), status, after, limit)
        .await?;
    let next = (jobs.len() as u32 == limit)
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    Ok(Json(Page {
        items: jobs.iter().map(job_view).collect(),
        next,
    }))
}

pub async fn retry(
    State(state): State<AppState>,
    principal: Principal,
    meta: crate::audit::RequestMeta,
    ApiPath(id): ApiPath<String>,
) -> Result<(axum::http::StatusCode, Json<serde_json::Value>), ApiError> {
    let id = parse_job_id(&id)?;
    let job = state
        .store
        .retry_job(&principal.scope(), id, state.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("job"),
            StoreError::StaleState { .. } => ApiError::new(
                navigator_domain::ErrorCode::Conflict,
                "only a failed job can be retried",
            ),
            other => other.into(),
        })?;
    state
        .audit
        .record(meta.event(
            principal.actor(),
            crate::audit::Action::JobRetry,
            "job",
            Some(id.to_string()),
            "success",
            serde_json::json!({"document_id": job.document_id, "stage": job.stage}),
        ))
        .await?;
    state.wake.notify_one();
    tracing::info!(job_id = %id, "job re-queued by request");
    Ok((axum::http::StatusCode::ACCEPTED, Json(job_view(&job))))
}

/// Streams each transition of the job as it happens (`event: transition`, `id` = event sequence),
/// ending after the job reaches a terminal status. `Last-Event-ID` resumes after that event.
pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = parse_job_id(&id)?;
    // Visibility check before streaming anything.
    state
        .store
        .get_job(&principal.scope(), id)
        .await
        .map_err(job_not_found)?;
    let after: i64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Each poll re-reads the job's events after the resume point and sends the ones not sent yet,
    // rather than only those above the highest sequence number seen: on PostgreSQL concurrent
    // writers can commit a lower `seq` after a higher one, and a cursor would skip it. A job has
    // few events (stages × attempts), so re-reading them is cheap.
    let stream = futures::stream::unfold(
        (state, HashSet::<i64>::new(), false),
        move |(state, mut sent, done)| async move {
            if done {
                return None;
            }
            loop {
                if state.shutdown.is_cancelled() {
                    return None;
                }
                match state.store.job_events(id, after).await {
                    Ok(events) if events.iter().any(|e| !sent.contains(&e.seq)) => {
                        let batch: Vec<Result<Event, Infallible>> = events
                            .iter()
                            .filter(|e| sent.insert(e.seq))
                            .map(|e| {
                                Ok(Event::default()
                                    .event("transition")
                                    .id(e.seq.to_string())
                                    .json_data(e)
                                    .unwrap_or_else(|_| {
                                        Event::default().comment("unserialisable event")
                                    }))
                            })
                            .collect();
                        let terminal = match state
                            .store
                            .get_job(&navigator_store::OwnerScope::All, id)
                            .await
                        {
                            Ok(job) => {
                                job.status.is_terminal()
                                    && events.last().is_some_and(|e| e.to == job.status)
                            }
                            Err(_) => true,
                        };
                        return Some((futures::stream::iter(batch), (state, sent, terminal)));
                    }
                    // Nothing new. If the job already ended (a client resuming after the terminal
                    // event with Last-Event-ID), end the stream instead of polling forever.
                    Ok(_) => match state
                        .store
                        .get_job(&navigator_store::OwnerScope::All, id)
                        .await
                    {
                        Ok(job) if job.status.is_terminal() => return None,
                        Ok(_) => {}
                        Err(navigator_store::StoreError::NotFound) => return None,
                        Err(e) => tracing::warn!(job_id = %id, error = %e, "failed to read a job"),
                    },
                    Err(e) => tracing::warn!(job_id = %id, error = %e, "failed to read job events"),
                }
                tokio::select! {
                    _ = state.shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(EVENT_POLL_INTERVAL) => {}
                }
            }
        },
    );
    use futures::StreamExt;
    Ok(Sse::new(stream.flatten()).keep_alive(KeepAlive::default()))
}
