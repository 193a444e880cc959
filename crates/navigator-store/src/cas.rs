//! The one definition of what a status change does to a job row, shared by every backend: the
//! backends fetch the row, guard the write on the expected status and lease, and store what
//! [`next_state`] computes — so a transition means the same thing on SQLite and PostgreSQL.

use crate::{JobError, JobRecord, StoreError, StoreResult};
use navigator_domain::{JobStatus, Stage};
use std::time::Duration;
use time::OffsetDateTime;

/// One requested status change and its side effects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cas<'a> {
    pub from: JobStatus,
    pub to: JobStatus,
    /// Applies only while the job is leased by this worker.
    pub expect_lease: Option<&'a str>,
    /// For `→ running`: the new lease holder and its length. Required: a running job without a
    /// lease could never be rescued.
    pub claim: Option<(&'a str, Duration)>,
    pub run_at: Option<OffsetDateTime>,
    pub wake_at: Option<OffsetDateTime>,
    pub error: Option<&'a JobError>,
    pub detail: Option<&'a str>,
    pub duration: Option<Duration>,
    /// Recorded on the event (defaults to the lease holder involved).
    pub worker: Option<&'a str>,
}

impl<'a> Cas<'a> {
    pub fn new(from: JobStatus, to: JobStatus) -> Self {
        Self {
            from,
            to,
            expect_lease: None,
            claim: None,
            run_at: None,
            wake_at: None,
            error: None,
            detail: None,
            duration: None,
            worker: None,
        }
    }
}

/// `at + duration`, refusing durations that overflow the calendar instead of panicking.
pub(crate) fn add(at: OffsetDateTime, duration: Duration) -> StoreResult<OffsetDateTime> {
    time::Duration::try_from(duration)
        .ok()
        .and_then(|d| at.checked_add(d))
        .ok_or_else(|| StoreError::Conflict("duration out of range".to_owned()))
}

/// The row after `cas` is applied to `current` at `now`. The caller has already checked the
/// transition table, the expected status and the lease.
pub(crate) fn next_state(
    current: &JobRecord,
    cas: &Cas<'_>,
    now: OffsetDateTime,
) -> StoreResult<JobRecord> {
    let mut next = current.clone();
    next.status = cas.to;
    next.lease_owner = None;
    next.lease_expires_at = None;
    next.wake_at = None;
    match cas.to {
        JobStatus::Running => {
            let (worker, lease) = cas.claim.ok_or_else(|| {
                StoreError::Conflict("a job becomes running only through claim_job".to_owned())
            })?;
            next.lease_owner = Some(worker.to_owned());
            next.lease_expires_at = Some(add(now, lease)?);
            next.attempts = current.attempts.saturating_add(1);
        }
        JobStatus::Queued => {
            next.run_at = cas.run_at.unwrap_or(now);
            next.error = None;
            next.finished_at = None;
            if current.status == JobStatus::Running {
                // A hand-back (shutdown) is not a failed attempt: refund the one its claim took,
                // so rolling restarts cannot exhaust a healthy job's retries.
                next.attempts = current.attempts.saturating_sub(1);
            }
            if current.status.is_terminal() {
                // A manual retry (failed) or re-process (complete) starts a fresh attempt count;
                // a re-process runs the whole pipeline again, since re-running `index` alone on
                // an empty staging area would publish nothing new.
                next.attempts = 0;
                if current.status == JobStatus::Complete {
                    next.stage = Stage::Parse;
                }
            }
        }
        JobStatus::Retrying => {
            next.run_at = cas.run_at.unwrap_or(now);
            if let Some(error) = cas.error {
                next.error = Some(error.clone());
            }
        }
        JobStatus::Waiting => {
            next.wake_at = cas.wake_at;
            // The reason it waits (e.g. `budget_exceeded`), so a later wake can find it.
            next.error = cas.error.cloned();
            if current.status == JobStatus::Running {
                // Waiting on an external event (a remote parser, a budget) is not a failed
                // attempt: refund the one its claim took, as a hand-back does.
                next.attempts = current.attempts.saturating_sub(1);
            }
        }
        JobStatus::Failed => {
            if let Some(error) = cas.error {
                next.error = Some(error.clone());
            }
            next.finished_at = Some(now);
        }
        JobStatus::Complete => {
            next.error = None;
            next.finished_at = Some(now);
        }
        JobStatus::Cancelled => {
            next.finished_at = Some(now);
        }
    }
    Ok(next)
}

fn describe(status: JobStatus, lease: Option<&str>) -> String {
    match lease {
        Some(worker) => format!("{status} leased by {worker}"),
        None => status.to_string(),
    }
}

/// A compare-and-set found the job in another state (or under another lease) than `cas` expected.
pub(crate) fn stale(cas: &Cas<'_>, current: &JobRecord) -> StoreError {
    StoreError::StaleState {
        expected: describe(cas.from, cas.expect_lease),
        actual: describe(
            current.status,
            cas.expect_lease.and(current.lease_owner.as_deref()),
        ),
    }
}

/// A lease-guarded update found the job no longer running under `worker`.
pub(crate) fn stale_lease(worker: &str, current: &JobRecord) -> StoreError {
    StoreError::StaleState {
        expected: describe(JobStatus::Running, Some(worker)),
        actual: describe(current.status, current.lease_owner.as_deref()),
    }
}
