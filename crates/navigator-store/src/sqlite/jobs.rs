//! The job state machine: every status change goes through [`compare_and_set`].

use super::db_err;
use super::rows::{self, job_columns, to_ms};
pub(super) use crate::cas::Cas;
use crate::{JobError, JobRecord, StoreError, StoreResult};
use navigator_domain::job::transition_allowed;
use navigator_domain::{ErrorCode, JobId, JobStatus, OwnerId, Stage};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use std::time::Duration;
use time::OffsetDateTime;

pub(super) async fn fetch(
    conn: &mut SqliteConnection,
    id: JobId,
) -> StoreResult<Option<JobRecord>> {
    sqlx::query(concat!(
        "SELECT ",
        job_columns!(),
        " FROM jobs WHERE id = ?1"
    ))
    .bind(id.to_string())
    .fetch_optional(conn)
    .await
    .map_err(db_err)?
    .as_ref()
    .map(rows::job)
    .transpose()
}

/// The only way a job's status changes: checks the domain table, updates the row only if it is
/// still in `cas.from` (and leased by `cas.expect_lease`), and records a `job_events` row — all on
/// the caller's transaction.
pub(super) async fn compare_and_set(
    conn: &mut SqliteConnection,
    id: JobId,
    cas: &Cas<'_>,
    now: OffsetDateTime,
) -> StoreResult<JobRecord> {
    if !transition_allowed(cas.from, cas.to) {
        return Err(StoreError::Illegal {
            from: cas.from,
            to: cas.to,
        });
    }
    let current = fetch(conn, id).await?.ok_or(StoreError::NotFound)?;
    let lease_matches = cas
        .expect_lease
        .is_none_or(|w| current.lease_owner.as_deref() == Some(w));
    if current.status != cas.from || !lease_matches {
        return Err(crate::cas::stale(cas, &current));
    }

    let next = crate::cas::next_state(&current, cas, now)?;

    let updated = sqlx::query(concat!(
        "UPDATE jobs SET status = ?1, stage = ?2, attempts = ?3, run_at = ?4, wake_at = ?5, \
         lease_owner = ?6, lease_expires_at = ?7, error_code = ?8, error_message = ?9, \
         finished_at = ?10, updated_at = ?11 \
         WHERE id = ?12 AND status = ?13 AND (?14 IS NULL OR lease_owner = ?14) \
         RETURNING ",
        job_columns!()
    ))
    .bind(next.status.as_str())
    .bind(next.stage.as_str())
    .bind(i64::from(next.attempts))
    .bind(to_ms(next.run_at))
    .bind(next.wake_at.map(to_ms))
    .bind(next.lease_owner.as_deref())
    .bind(next.lease_expires_at.map(to_ms))
    .bind(next.error.as_ref().map(|e| e.code.as_str()))
    .bind(next.error.as_ref().map(|e| e.message.as_str()))
    .bind(next.finished_at.map(to_ms))
    .bind(to_ms(now))
    .bind(id.to_string())
    .bind(cas.from.as_str())
    .bind(cas.expect_lease)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    let Some(row) = updated else {
        // Unreachable under SQLite's write lock, kept so the guard stays the source of truth.
        let current = fetch(conn, id).await?.ok_or(StoreError::NotFound)?;
        return Err(crate::cas::stale(cas, &current));
    };
    let record = rows::job(&row)?;

    let worker = cas
        .worker
        .or(cas.claim.map(|(w, _)| w))
        .or(cas.expect_lease);
    insert_event(
        conn,
        &Event {
            job_id: id,
            from: Some(cas.from),
            to: cas.to,
            stage: current.stage,
            worker,
            duration: cas.duration,
            detail: cas.detail,
            error_code: cas.error.map(|e| e.code),
            at: now,
        },
    )
    .await?;
    Ok(record)
}

pub(super) struct Event<'a> {
    pub job_id: JobId,
    pub from: Option<JobStatus>,
    pub to: JobStatus,
    pub stage: Stage,
    pub worker: Option<&'a str>,
    pub duration: Option<Duration>,
    pub detail: Option<&'a str>,
    pub error_code: Option<ErrorCode>,
    pub at: OffsetDateTime,
}

pub(super) async fn insert_event(
    conn: &mut SqliteConnection,
    event: &Event<'_>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO job_events \
         (job_id, from_status, to_status, stage, worker, duration_ms, detail, error_code, at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .bind(event.job_id.to_string())
    .bind(event.from.map(JobStatus::as_str))
    .bind(event.to.as_str())
    .bind(event.stage.as_str())
    .bind(event.worker)
    .bind(event.duration.map(rows::duration_ms))
    .bind(event.detail)
    .bind(event.error_code.map(ErrorCode::as_str))
    .bind(to_ms(event.at))
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Picks the eligible job with the earliest `run_at` and claims it. The caller's transaction
/// must hold the write lock (`BEGIN IMMEDIATE`), so no other claim can pick the same row between
/// this select and the compare-and-set.
pub(super) async fn claim(
    conn: &mut SqliteConnection,
    worker: &str,
    lease: Duration,
    now: OffsetDateTime,
) -> StoreResult<Option<JobRecord>> {
    let candidate = sqlx::query(
        "SELECT id, status FROM jobs \
         WHERE status IN ('queued', 'retrying') AND run_at <= ?1 \
         ORDER BY run_at, id LIMIT 1",
    )
    .bind(to_ms(now))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    let Some(row) = candidate else {
        return Ok(None);
    };
    let id: String = sqlx::Row::try_get(&row, "id").map_err(db_err)?;
    let id = JobId::parse(&id).map_err(|e| rows::corrupt(format!("column id: {e}")))?;
    let status: String = sqlx::Row::try_get(&row, "status").map_err(db_err)?;
    let cas = Cas {
        claim: Some((worker, lease)),
        ..Cas::new(rows::status(&status)?, JobStatus::Running)
    };
    compare_and_set(conn, id, &cas, now).await.map(Some)
}

/// Moves every running job whose lease expired before `now` to `retrying`.
pub(super) async fn rescue_expired(
    conn: &mut SqliteConnection,
    now: OffsetDateTime,
) -> StoreResult<Vec<JobId>> {
    let expired = sqlx::query(
        "SELECT id, lease_owner FROM jobs \
         WHERE status = 'running' AND lease_expires_at < ?1 \
         ORDER BY lease_expires_at, id",
    )
    .bind(to_ms(now))
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let error = JobError {
        code: ErrorCode::LeaseLost,
        message: "lease expired".to_owned(),
    };
    let mut rescued = Vec::with_capacity(expired.len());
    for row in expired {
        let id: String = sqlx::Row::try_get(&row, "id").map_err(db_err)?;
        let id = JobId::parse(&id).map_err(|e| rows::corrupt(format!("column id: {e}")))?;
        let holder: Option<String> = sqlx::Row::try_get(&row, "lease_owner").map_err(db_err)?;
        let cas = Cas {
            expect_lease: holder.as_deref(),
            run_at: Some(now),
            error: Some(&error),
            detail: Some("lease expired"),
            ..Cas::new(JobStatus::Running, JobStatus::Retrying)
        };
        compare_and_set(conn, id, &cas, now).await?;
        rescued.push(id);
    }
    Ok(rescued)
}

/// Moves up to [`crate::WAKE_BATCH`] waiting jobs whose `wake_at` has come to `queued`, oldest
/// `wake_at` first.
pub(super) async fn wake_due(
    conn: &mut SqliteConnection,
    now: OffsetDateTime,
) -> StoreResult<Vec<JobId>> {
    let due = sqlx::query(super::queries::WAKE_DUE)
        .bind(to_ms(now))
        .bind(i64::try_from(crate::WAKE_BATCH).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    wake(conn, &due, "wake_at reached", now).await
}

/// Moves every waiting job of `owner` that waits for `reason` to `queued`.
pub(super) async fn wake_waiting(
    conn: &mut SqliteConnection,
    owner: &OwnerId,
    reason: ErrorCode,
    now: OffsetDateTime,
) -> StoreResult<Vec<JobId>> {
    let waiting = sqlx::query(
        "SELECT id FROM jobs WHERE status = 'waiting' AND owner_id = ?1 AND error_code = ?2 \
         ORDER BY id",
    )
    .bind(owner.as_str())
    .bind(reason.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let detail = format!("woken: {} cleared", reason.as_str());
    wake(conn, &waiting, &detail, now).await
}

/// `waiting → queued` (eligible now) for each `id` row, through [`compare_and_set`].
async fn wake(
    conn: &mut SqliteConnection,
    rows: &[SqliteRow],
    detail: &str,
    now: OffsetDateTime,
) -> StoreResult<Vec<JobId>> {
    let mut woken = Vec::with_capacity(rows.len());
    for row in rows {
        let id = rows::parse_with(row, "id", JobId::parse)?;
        let cas = Cas {
            run_at: Some(now),
            detail: Some(detail),
            ..Cas::new(JobStatus::Waiting, JobStatus::Queued)
        };
        compare_and_set(conn, id, &cas, now).await?;
        woken.push(id);
    }
    Ok(woken)
}
